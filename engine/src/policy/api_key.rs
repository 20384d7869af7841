//! API keys and usage plans: `[[usage_plan]]`, `[[api_key]]` (top level) and
//! `[route.api_key] source = "header:x-api-key" | "query:api_key"`.
//!
//! Keys are kept only as SHA-256 digests; a request's key is hashed and
//! looked up. Each key's plan gives a token bucket (rate, burst) and a quota
//! per UTC day, week (from Monday) or month.
//!
//! A key's bucket is shared by all workers (`crate::limit`): `burst = 3`
//! admits exactly 3, whichever cores the connections landed on, and it is
//! kept across reloads while the plan's limit stays. Quotas are exact across workers: each key has one shared
//! [`Ledger`] (one atomic word: period and count), and a worker takes leases
//! of several requests from it at a time, smaller as the quota runs low, so
//! the shared word is touched once per lease, not per request. The ledger
//! lives as long as the process, keyed by the key's digest, so counts are
//! kept across reloads.

mod quota;

pub use quota::{
    KeyState, Ledger, Over, Period, Plan, Quota, charge, lease_size, period_end, period_of,
};

use super::throttle::rate_and_burst;
use super::{Check, Compile, Policy, Problem, Verdict};
use crate::config::model;
use crate::h1::request::RequestHead;
use ringway_router::percent;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::ops::ControlFlow;

pub type KeyHash = [u8; 32];

/// Where a route reads the key from.
#[derive(Debug, PartialEq, Eq)]
pub enum KeySource {
    /// A header, by lower-case name.
    Header(Box<[u8]>),
    /// A query parameter, by name.
    Query(Box<[u8]>),
}

impl Policy for KeySource {
    type Table = model::RouteApiKey;
    type Local = ();

    fn compile(t: &model::RouteApiKey, _: &Compile<'_>) -> Result<KeySource, Problem> {
        compile(t)
    }

    fn check<'c>(&'c self, cx: &mut Check<'_>, _: Option<&mut ()>) -> ControlFlow<Verdict<'c>> {
        let Some(digest) = self.digest(cx.req.buf, cx.req.head) else {
            return ControlFlow::Break(Verdict::Reject(403, "missing API key"));
        };
        let keys = cx.env.api_keys;
        let Some(k) = keys.find(&digest) else {
            return ControlFlow::Break(Verdict::Reject(403, "invalid API key"));
        };
        let times = (crate::limit::now(), cx.unix());
        let key = &keys.keys[k];
        let plan = &keys.plans[key.plan];
        // The worker's key states follow its current snapshot; a request
        // that took its snapshot before a reload indexes keys by the older
        // one. Such a request is still counted: its key's state is found by
        // digest (its bucket is the same shared one). A key the reload
        // removed charges a state of its own (what it leases is lost: the
        // quota errs on the side of admitting less, never more).
        let slot = match cx.keys.get(k) {
            Some(s) if s.hash == key.hash => Some(k),
            _ => cx.keys.iter().position(|s| s.hash == key.hash),
        };
        let mut gone;
        let state = match slot {
            Some(i) => &mut cx.keys[i],
            None => {
                gone = KeyState::new(key.hash);
                &mut gone
            }
        };
        match charge(state, plan, key, cx.env.workers, times) {
            Ok(()) => ControlFlow::Continue(()),
            Err(Over::Rate(secs)) => cx.too_many(secs, "too many requests"),
            Err(Over::Quota(secs)) => {
                cx.too_many(secs, "limit exceeded: this API key's quota is used up")
            }
            Err(Over::Wait) => ControlFlow::Break(Verdict::Wait),
            Err(Over::Down) => ControlFlow::Break(Verdict::Reject(
                503,
                "the fleet's limit store is unreachable",
            )),
        }
    }
}

/// Control plane: `[route.api_key]` → [`KeySource`].
pub fn compile(t: &model::RouteApiKey) -> Result<KeySource, Problem> {
    let s = t.source.get_ref().as_str();
    match s.split_once(':') {
        Some(("header", name)) if super::throttle::is_token(name) => Ok(KeySource::Header(
            name.to_ascii_lowercase().into_bytes().into(),
        )),
        Some(("query", name)) if !name.is_empty() && !name.contains(['&', '=', '#', ' ']) => {
            Ok(KeySource::Query(name.as_bytes().into()))
        }
        _ => Err(Problem::new(
            t.source.span(),
            "source",
            format!("unknown key source {s:?}: use \"header:NAME\" or \"query:NAME\""),
        )),
    }
}

/// The longest key value looked at; longer ones are unknown keys.
const MAX_KEY_BYTES: usize = 512;

impl KeySource {
    /// Data plane: the key's SHA-256, or `None` when the request carries none.
    pub fn digest(&self, buf: &[u8], head: &RequestHead) -> Option<KeyHash> {
        match self {
            KeySource::Header(name) => {
                let v = super::cors::field(buf, head, name)?;
                let v = crate::h1::header::trim_ows(v);
                (!v.is_empty()).then(|| Sha256::digest(v).into())
            }
            KeySource::Query(name) => {
                let raw = head.query(buf).split(|&b| b == b'&').find_map(|pair| {
                    let (k, v) = match pair.iter().position(|&b| b == b'=') {
                        Some(i) => (&pair[..i], &pair[i + 1..]),
                        None => (pair, &[][..]),
                    };
                    (k == &**name).then_some(v)
                })?;
                if raw.is_empty() {
                    return None;
                }
                let mut tmp = [0u8; MAX_KEY_BYTES];
                let v = percent::decode_query_value(raw, &mut tmp)
                    .map_or(&b"\0too long"[..], |n| &tmp[..n]);
                Some(Sha256::digest(v).into())
            }
        }
    }
}

#[derive(Debug)]
pub struct Key {
    pub name: String,
    pub hash: KeyHash,
    pub plan: usize,
    /// The key's quota count, shared by all workers and snapshots.
    pub ledger: std::sync::Arc<Ledger>,
    /// The plan's bucket for this key (shared by all workers, kept across
    /// reloads while the plan's rate and burst stay) and its limit.
    pub bucket: Option<(std::sync::Arc<crate::limit::Bucket>, crate::limit::Rate)>,
    /// Cluster mode: the key's fleet-wide bucket and quota (they replace the
    /// local bucket and cap the local ledger).
    pub fleet: Option<FleetLimits>,
    /// Admitted requests per day, for `/usage` (by name, kept across reloads).
    pub book: std::sync::Arc<crate::cluster::usage::Book>,
}

/// A key's limits shared through Redis (cluster mode).
#[derive(Debug, Clone)]
pub struct FleetLimits {
    pub fleet: std::sync::Arc<crate::cluster::Fleet>,
    pub bucket: Option<std::sync::Arc<crate::cluster::FleetBucket>>,
    pub quota: Option<std::sync::Arc<crate::cluster::FleetQuota>>,
}

/// Every key and plan of the config.
#[derive(Debug, Default)]
pub struct Keys {
    pub plans: Vec<Plan>,
    pub keys: Vec<Key>,
    by_hash: HashMap<KeyHash, usize>,
}

impl Keys {
    #[inline]
    pub fn find(&self, hash: &KeyHash) -> Option<usize> {
        self.by_hash.get(hash).copied()
    }
}

/// Control plane: `[[usage_plan]]` and `[[api_key]]` → [`Keys`]. The keys come
/// from several files (`sources[0]` the config, then the keys file); names and
/// values must be unique across all of them. Every problem is reported with its
/// key path and the index of the source it is in (plans are in source 0).
pub fn compile_keys(
    plans: &[model::UsagePlan],
    sources: &[&[model::ApiKey]],
    fleet: Option<&std::sync::Arc<crate::cluster::Fleet>>,
) -> (Keys, Vec<(usize, Problem)>) {
    let mut out = Keys::default();
    let mut problems = Vec::new();
    let plan_index = compile_plans(plans, &mut out, &mut problems);
    let mut tagged: Vec<(usize, Problem)> = problems.into_iter().map(|p| (0, p)).collect();
    let mut names = std::collections::HashSet::new();
    for (src, keys) in sources.iter().enumerate() {
        let mut problems = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            compile_key(i, k, &plan_index, &mut names, &mut out, &mut problems);
            if let (Some(fleet), Some(key)) = (fleet, out.keys.last_mut())
                && key.fleet.is_none()
            {
                key.fleet = Some(fleet_limits(fleet, key, &out.plans[key.plan]));
            }
        }
        tagged.extend(problems.into_iter().map(|p| (src, p)));
    }
    (out, tagged)
}

/// The plans, into `out.plans`; returns the index of each plan by name.
fn compile_plans(
    plans: &[model::UsagePlan],
    out: &mut Keys,
    problems: &mut Vec<Problem>,
) -> HashMap<String, usize> {
    let mut plan_index = HashMap::new();
    for (i, p) in plans.iter().enumerate() {
        let at = |k: &str| format!("usage_plan[{i}].{k}");
        if plan_index.insert(p.name.get_ref().clone(), i).is_some() {
            problems.push(Problem::new(
                p.name.span(),
                at("name"),
                format!("a second plan named {:?}", p.name.get_ref()),
            ));
        }
        let rate = match (&p.rate, &p.burst) {
            (None, None) => None,
            (None, Some(b)) => {
                problems.push(Problem::new(
                    b.span(),
                    at("burst"),
                    "a burst needs a `rate`",
                ));
                None
            }
            (Some(r), b) => match rate_and_burst(r, b.as_ref()) {
                Ok(rb) => Some(rb),
                Err(e) => {
                    problems.push(Problem {
                        key: at(&e.key),
                        ..e
                    });
                    None
                }
            },
        };
        let quota = p.quota.as_ref().and_then(|q| {
            let period = match q.get_ref().period.as_str() {
                "day" => Period::Day,
                "week" => Period::Week,
                "month" => Period::Month,
                other => {
                    problems.push(Problem::new(
                        q.span(),
                        at("quota.period"),
                        format!("unknown period {other:?}: use \"day\", \"week\" or \"month\""),
                    ));
                    return None;
                }
            };
            Some(Quota {
                limit: q.get_ref().limit,
                period,
            })
        });
        out.plans.push(Plan {
            name: p.name.get_ref().clone(),
            rate,
            quota,
        });
    }
    plan_index
}

/// One `[[api_key]]` (entry `i` of its file), into `out.keys`. `names` holds the
/// key names seen so far in any file.
fn compile_key(
    i: usize,
    k: &model::ApiKey,
    plan_index: &HashMap<String, usize>,
    names: &mut std::collections::HashSet<String>,
    out: &mut Keys,
    problems: &mut Vec<Problem>,
) {
    let at = |f: &str| format!("api_key[{i}].{f}");
    if !names.insert(k.name.get_ref().clone()) {
        problems.push(Problem::new(
            k.name.span(),
            at("name"),
            format!("a second key named {:?}", k.name.get_ref()),
        ));
    }
    let hash: Option<KeyHash> = match (&k.value, &k.value_sha256) {
        (Some(v), None) if !v.get_ref().is_empty() => {
            Some(Sha256::digest(v.get_ref().as_bytes()).into())
        }
        (None, Some(h)) => match parse_hex32(h.get_ref()) {
            Some(d) => Some(d),
            None => {
                problems.push(Problem::new(
                    h.span(),
                    at("value_sha256"),
                    "64 hex digits expected (a SHA-256 digest)",
                ));
                None
            }
        },
        (Some(v), None) => {
            problems.push(Problem::new(
                v.span(),
                at("value"),
                "an API key may not be empty",
            ));
            None
        }
        (Some(_), Some(h)) => {
            problems.push(Problem::new(
                h.span(),
                at("value_sha256"),
                "give `value` or `value_sha256`, not both",
            ));
            None
        }
        (None, None) => {
            problems.push(Problem::new(
                k.name.span(),
                at("value"),
                "a key needs `value` or `value_sha256`",
            ));
            None
        }
    };
    let plan = match plan_index.get(k.plan.get_ref()) {
        Some(&p) => Some(p),
        None => {
            let mut known: Vec<_> = plan_index.keys().cloned().collect();
            known.sort();
            problems.push(Problem::new(
                k.plan.span(),
                at("plan"),
                format!(
                    "no [[usage_plan]] is named {:?} (defined: {known:?})",
                    k.plan.get_ref()
                ),
            ));
            None
        }
    };
    if let (Some(hash), Some(plan)) = (hash, plan) {
        if let Some(&other) = out.by_hash.get(&hash) {
            let span = k.value.as_ref().map_or_else(|| k.name.span(), |v| v.span());
            problems.push(Problem::new(
                span,
                at("value"),
                format!("the same key as {:?}", out.keys[other].name),
            ));
            return;
        }
        out.by_hash.insert(hash, out.keys.len());
        let bucket = out.plans[plan].rate.map(|(rate, burst)| {
            let limit = crate::limit::Rate::new(rate, burst);
            let id: String = hash.iter().map(|b| format!("{b:02x}")).collect();
            (crate::limit::shared(&format!("key:{id}"), limit), limit)
        });
        out.keys.push(Key {
            name: k.name.get_ref().clone(),
            hash,
            plan,
            ledger: Ledger::of(&hash),
            bucket,
            fleet: None,
            book: crate::cluster::usage::Book::of(k.name.get_ref()),
        });
    }
}

/// The fleet-wide bucket and quota of `key` (by its name, as on API
/// Gateway: usage is reported per key name).
fn fleet_limits(
    fleet: &std::sync::Arc<crate::cluster::Fleet>,
    key: &Key,
    plan: &Plan,
) -> FleetLimits {
    FleetLimits {
        fleet: fleet.clone(),
        bucket: plan.rate.map(|(rate, burst)| {
            fleet.bucket(
                &format!("key:{}", key.name),
                crate::limit::Rate::new(rate, burst),
            )
        }),
        quota: Some(fleet.quota(
            &key.name,
            plan.quota.map_or(u64::MAX, |q| q.limit),
            &key.ledger,
        )),
    }
}

fn parse_hex32(s: &str) -> Option<KeyHash> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut d = [0u8; 32];
    for (i, b) in d.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h1::{Limits, request};

    #[test]
    fn keys_come_from_a_header_or_the_query() {
        let digest = |src: KeySource, raw: &str| {
            let mut head = request::RequestHead::default();
            assert_eq!(
                request::parse(raw.as_bytes(), &Limits::default(), &mut head),
                Ok(true)
            );
            src.digest(raw.as_bytes(), &head)
        };
        let k: KeyHash = Sha256::digest(b"k-123").into();
        let header = || KeySource::Header(b"x-api-key".as_slice().into());
        let query = || KeySource::Query(b"api_key".as_slice().into());
        assert_eq!(
            digest(
                header(),
                "GET / HTTP/1.1\r\nHost: h\r\nX-API-Key: k-123\r\n\r\n"
            ),
            Some(k)
        );
        assert_eq!(digest(header(), "GET / HTTP/1.1\r\nHost: h\r\n\r\n"), None);
        assert_eq!(
            digest(header(), "GET / HTTP/1.1\r\nHost: h\r\nX-API-Key: \r\n\r\n"),
            None
        );
        assert_eq!(
            digest(
                query(),
                "GET /?a=1&api_key=k-123 HTTP/1.1\r\nHost: h\r\n\r\n"
            ),
            Some(k)
        );
        assert_eq!(
            digest(query(), "GET /?api_key=k%2D123 HTTP/1.1\r\nHost: h\r\n\r\n"),
            Some(k)
        );
        assert_eq!(
            digest(query(), "GET /?xapi_key=k-123 HTTP/1.1\r\nHost: h\r\n\r\n"),
            None
        );
        assert_eq!(
            digest(query(), "GET /?api_key= HTTP/1.1\r\nHost: h\r\n\r\n"),
            None
        );
    }

    #[test]
    fn key_config_errors_are_all_reported() {
        let f: model::File = toml::from_str(
            "[[usage_plan]]\nname = \"basic\"\nrate = 0\nquota = { limit = 5, period = \"year\" }\n\n[[api_key]]\nname = \"a\"\nvalue = \"k\"\nplan = \"gold\"\n\n[[api_key]]\nname = \"b\"\nvalue_sha256 = \"zz\"\nplan = \"basic\"\n",
        )
        .unwrap();
        let (_, problems) = compile_keys(&f.usage_plan, &[&f.api_key], None);
        let keys: Vec<&str> = problems.iter().map(|(_, p)| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "usage_plan[0].rate",
                "usage_plan[0].quota.period",
                "api_key[0].plan",
                "api_key[1].value_sha256"
            ]
        );
    }
}
