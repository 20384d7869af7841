//! Per-route policies, in the order they run on a request: CORS → IP rules →
//! API key (and its usage plan) → JWT → throttle → validation → mock
//! integration.
//!
//! Each policy is one file with a `compile` (control plane, at config load:
//! errors become config errors naming file, line and key) and a synchronous,
//! I/O-free check (data plane). A route's compiled [`Chain`] holds an
//! `Option<Box<_>>` per policy, so a route without policies costs one
//! branch on [`Chain::is_empty`]. Mutable state (token buckets, quota
//! counters) is per worker, in [`WorkerState`].

pub mod api_key;
pub mod cors;
pub mod ip;
pub mod schema;
pub mod jwt;
pub mod mapping;
pub mod mock;
pub mod responses;
pub mod throttle;
pub mod validate;

use crate::config::model;
use crate::h1::request::RequestHead;
use crate::snapshot::Snapshot;
use std::net::IpAddr;
use std::ops::Range;
use std::time::Instant;

/// A policy config problem: where it is, the key below the policy's table, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Byte range in the config text; `0..0` means "the policy's table".
    pub span: Range<usize>,
    pub key: String,
    pub message: String,
}

impl Problem {
    pub fn new(span: Range<usize>, key: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            span,
            key: key.into(),
            message: message.into(),
        }
    }
}

/// One route's compiled policies.
#[derive(Debug, Default)]
pub struct Chain {
    pub cors: Option<Box<cors::Cors>>,
    pub ip: Option<Box<ip::IpRules>>,
    pub api_key: Option<Box<api_key::KeySource>>,
    pub jwt: Option<Box<jwt::Jwt>>,
    pub throttle: Option<Box<throttle::Throttle>>,
    pub validate: Option<Box<validate::Validate>>,
    pub mapping: Option<Box<mapping::Mapping>>,
    pub mock: Option<Box<mock::Mock>>,
    /// Request header names policies set (JWT claims, mappings): the client's are dropped.
    pub replaced: Vec<Box<[u8]>>,
}

impl Chain {
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.cors.is_none()
            && self.ip.is_none()
            && self.api_key.is_none()
            && self.jwt.is_none()
            && self.throttle.is_none()
            && self.validate.is_none()
            && self.mapping.is_none()
            && self.mock.is_none()
    }
}

impl Chain {
    /// The policies present, in the order they run (for `ringway check`).
    pub fn names(&self) -> Vec<&'static str> {
        [
            ("cors", self.cors.is_some()),
            ("ip", self.ip.is_some()),
            ("api_key", self.api_key.is_some()),
            ("jwt", self.jwt.is_some()),
            ("throttle", self.throttle.is_some()),
            ("validate", self.validate.is_some()),
            ("mapping", self.mapping.is_some()),
            ("mock", self.mock.is_some()),
        ]
        .into_iter()
        .filter_map(|(n, on)| on.then_some(n))
        .collect()
    }
}

/// Control plane: compiles a route's policy tables. Problems carry keys
/// relative to the route (`cors.allow_origins[1]`).
pub fn compile(
    r: &model::Route,
    inherited: &Defaults<'_>,
    base: &std::path::Path,
    params: &[&str],
) -> (Chain, Vec<Problem>) {
    let mut problems = Vec::new();
    let d = inherited;
    let mut chain = Chain {
        cors: one(
            r.cors.as_ref().or(d.cors),
            "cors",
            cors::compile,
            &mut problems,
        ),
        ip: one(r.ip.as_ref().or(d.ip), "ip", ip::compile, &mut problems),
        api_key: one(
            r.api_key.as_ref().or(d.api_key),
            "api_key",
            api_key::compile,
            &mut problems,
        ),
        jwt: one(
            r.jwt.as_ref().or(d.jwt),
            "jwt",
            |t| jwt::compile(t, base),
            &mut problems,
        ),
        throttle: one(
            r.throttle.as_ref().or(d.throttle),
            "throttle",
            throttle::compile,
            &mut problems,
        ),
        validate: one(
            r.validate.as_ref().or(d.validate),
            "validate",
            |t| validate::compile(t, base),
            &mut problems,
        ),
        mapping: one(
            r.mapping.as_ref().or(d.mapping),
            "mapping",
            |t| mapping::compile(t, params),
            &mut problems,
        ),
        replaced: Vec::new(),
        mock: one(r.mock.as_ref(), "mock", mock::compile, &mut problems),
    };
    if let Some(j) = &chain.jwt {
        chain.replaced.extend(j.forwarded_names().iter().cloned());
    }
    if let Some(m) = &chain.mapping {
        chain.replaced.extend(m.replaced().iter().cloned());
    }
    (chain, problems)
}

/// Inherited policy tables (`[server]`, `[[host]]`) that compiled: routes
/// without their own table of that name inherit these.
#[derive(Default, Clone, Copy)]
pub struct Defaults<'a> {
    pub cors: Option<&'a toml::Spanned<model::Cors>>,
    pub ip: Option<&'a toml::Spanned<model::IpPolicy>>,
    pub api_key: Option<&'a toml::Spanned<model::RouteApiKey>>,
    pub jwt: Option<&'a toml::Spanned<model::Jwt>>,
    pub throttle: Option<&'a toml::Spanned<model::Throttle>>,
    pub validate: Option<&'a toml::Spanned<model::Validate>>,
    pub mapping: Option<&'a toml::Spanned<model::Mapping>>,
}

/// The names `disable = [...]` may give.
pub const INHERITABLE: [&str; 7] = [
    "cors", "ip", "api_key", "jwt", "throttle", "validate", "mapping",
];

impl<'a> Defaults<'a> {
    /// The `[server]` tables, unchecked.
    pub fn of_server(s: &'a model::Server) -> Defaults<'a> {
        Defaults {
            cors: s.cors.as_ref(),
            ip: s.ip.as_ref(),
            api_key: s.api_key.as_ref(),
            jwt: s.jwt.as_ref(),
            throttle: s.throttle.as_ref(),
            validate: s.validate.as_ref(),
            mapping: s.mapping.as_ref(),
        }
    }

    /// A `[[host]]` block's tables, unchecked.
    pub fn of_host(h: &'a model::Host) -> Defaults<'a> {
        Defaults {
            cors: h.cors.as_ref(),
            ip: h.ip.as_ref(),
            api_key: h.api_key.as_ref(),
            jwt: h.jwt.as_ref(),
            throttle: h.throttle.as_ref(),
            validate: h.validate.as_ref(),
            mapping: h.mapping.as_ref(),
        }
    }

    /// These tables where present, else `outer`'s.
    pub fn over(self, outer: Defaults<'a>) -> Defaults<'a> {
        Defaults {
            cors: self.cors.or(outer.cors),
            ip: self.ip.or(outer.ip),
            api_key: self.api_key.or(outer.api_key),
            jwt: self.jwt.or(outer.jwt),
            throttle: self.throttle.or(outer.throttle),
            validate: self.validate.or(outer.validate),
            mapping: self.mapping.or(outer.mapping),
        }
    }

    /// Without the policies `names` (`disable = ["jwt"]`); names already checked.
    pub fn without(mut self, names: &[toml::Spanned<String>]) -> Defaults<'a> {
        for n in names {
            match n.get_ref().as_str() {
                "cors" => self.cors = None,
                "ip" => self.ip = None,
                "api_key" => self.api_key = None,
                "jwt" => self.jwt = None,
                "throttle" => self.throttle = None,
                "validate" => self.validate = None,
                "mapping" => self.mapping = None,
                _ => {}
            }
        }
        self
    }
}

/// Control plane: `disable = [...]` names policies a route or host does not inherit.
pub fn check_disable(names: &[toml::Spanned<String>]) -> Vec<Problem> {
    names
        .iter()
        .enumerate()
        .filter(|(_, n)| !INHERITABLE.contains(&n.get_ref().as_str()))
        .map(|(i, n)| {
            Problem::new(
                n.span(),
                format!("disable[{i}]"),
                format!(
                    "{:?} is not an inherited policy (one of {INHERITABLE:?})",
                    n.get_ref()
                ),
            )
        })
        .collect()
}

/// Control plane: checks inherited policy tables once (problems keyed
/// `cors.allow_origins[0]`, ... below their table's owner), keeping those
/// that compile. An inherited mapping has no path parameters to read.
pub fn defaults<'a>(d: Defaults<'a>, base: &std::path::Path) -> (Defaults<'a>, Vec<Problem>) {
    let mut problems = Vec::new();
    fn keep<'a, T, C>(
        t: Option<&'a toml::Spanned<T>>,
        name: &str,
        f: impl Fn(&T) -> Result<C, Problem>,
        problems: &mut Vec<Problem>,
    ) -> Option<&'a toml::Spanned<T>> {
        one(t, name, f, problems).map(|_| t.expect("compiled"))
    }
    let d = Defaults {
        cors: keep(d.cors, "cors", cors::compile, &mut problems),
        ip: keep(d.ip, "ip", ip::compile, &mut problems),
        api_key: keep(d.api_key, "api_key", api_key::compile, &mut problems),
        jwt: keep(d.jwt, "jwt", |t| jwt::compile(t, base), &mut problems),
        throttle: keep(d.throttle, "throttle", throttle::compile, &mut problems),
        validate: keep(
            d.validate,
            "validate",
            |t| validate::compile(t, base),
            &mut problems,
        ),
        mapping: keep(
            d.mapping,
            "mapping",
            |t| mapping::compile(t, &[]),
            &mut problems,
        ),
    };
    (d, problems)
}

/// Compiles one policy table, turning its problem into one keyed below `name`.
fn one<T, C>(
    t: Option<&toml::Spanned<T>>,
    name: &str,
    f: impl Fn(&T) -> Result<C, Problem>,
    problems: &mut Vec<Problem>,
) -> Option<Box<C>> {
    let t = t?;
    match f(t.get_ref()) {
        Ok(c) => Some(Box::new(c)),
        Err(p) => {
            problems.push(Problem {
                span: if p.span == (0..0) { t.span() } else { p.span },
                key: format!("{name}.{}", p.key),
                message: p.message,
            });
            None
        }
    }
}

/// What the chain decided for a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict<'c> {
    /// Go on to the upstream.
    Forward,
    /// An allowed CORS preflight: answer 204 with the fields gathered.
    Preflight,
    /// Answer with ringway's own JSON error (and the fields gathered: CORS, Retry-After).
    Reject(u16, &'c str),
    /// Answer from the route's mock integration.
    Mock(&'c mock::Mock),
}

/// The request as the chain sees it.
pub struct Request<'a> {
    pub buf: &'a [u8],
    pub head: &'a RequestHead,
    /// The connection's peer (canonical: IPv4-mapped addresses as IPv4).
    pub peer: IpAddr,
    /// Index of the matched route in `snap.routes`.
    pub route: usize,
    /// The path the route matched, and the match (for path parameters).
    pub path: &'a [u8],
    pub found: Option<&'a ringway_router::Match>,
    /// Where this request's id is in `fields` (empty when ids are off).
    pub request_id: std::ops::Range<usize>,
}

/// Data plane: runs `chain` on a request. `fields` (cleared by the caller)
/// receives the header lines every response to this request carries: CORS
/// fields, `Retry-After` on a 429, `WWW-Authenticate` on a 401.
/// `upstream` (cleared by the caller) receives field lines for the upstream
/// request (forwarded JWT claims). Synchronous; no I/O; allocates only when
/// a throttle meets a key it has not seen on this worker, and to decode a JWT
/// this worker has not verified yet.
pub fn run<'c>(
    chain: &'c Chain,
    snap: &Snapshot,
    state: &mut WorkerState,
    req: &Request<'_>,
    fields: &mut Vec<u8>,
    upstream: &mut Vec<u8>,
) -> Verdict<'c> {
    let (buf, head) = (req.buf, req.head);
    if let Some(c) = &chain.cors {
        match c.preflight(buf, head, fields) {
            cors::Preflight::Allowed => return Verdict::Preflight,
            cors::Preflight::Refused(why) => return Verdict::Reject(403, why),
            cors::Preflight::No => c.actual(cors::field(buf, head, b"origin"), fields),
        }
    }
    let by_ip = chain.ip.is_some()
        || chain.mapping.as_ref().is_some_and(|m| m.uses_client_ip())
        || chain
            .throttle
            .as_ref()
            .is_some_and(|t| t.key == throttle::Key::ClientIp);
    let client = if by_ip {
        ip::client_ip(req.peer, &snap.trusted_proxies, buf, head)
    } else {
        req.peer
    };
    if let Some(rules) = &chain.ip
        && !rules.allows(client)
    {
        return Verdict::Reject(403, "client address not allowed");
    }
    // Counters belong to the snapshot the worker serves; a request that began
    // under an older one (a reload during its head) is checked but not counted.
    let fresh = state.generation == snap.generation;
    let now = Instant::now();
    if let Some(src) = &chain.api_key {
        let Some(digest) = src.digest(buf, head) else {
            return Verdict::Reject(403, "missing API key");
        };
        let Some(k) = snap.api_keys.find(&digest) else {
            return Verdict::Reject(403, "invalid API key");
        };
        if fresh && let Some(s) = state.keys.get_mut(k) {
            let key = &snap.api_keys.keys[k];
            let plan = &snap.api_keys.plans[key.plan];
            let unix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            match api_key::charge(s, plan, &key.ledger, snap.workers, now, unix) {
                Ok(()) => {}
                Err(api_key::Over::Rate(secs)) => {
                    retry_after(fields, secs);
                    return Verdict::Reject(429, "too many requests");
                }
                Err(api_key::Over::Quota(secs)) => {
                    retry_after(fields, secs);
                    return Verdict::Reject(429, "limit exceeded: this API key's quota is used up");
                }
            }
        }
    }
    if let Some(j) = &chain.jwt {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // The worker's key set and token cache for this route; a request from
        // before a reload checks with a throwaway one.
        let mut spare;
        let local = match state.jwts.get_mut(req.route) {
            Some(Some(l)) if fresh => l,
            _ => {
                spare = j.local();
                &mut spare
            }
        };
        if let Err((status, message)) = j.check(local, buf, head, unix, upstream) {
            fields.extend_from_slice(if status == 403 {
                b"WWW-Authenticate: Bearer error=\"insufficient_scope\"\r\n".as_slice()
            } else if message == "missing token" {
                b"WWW-Authenticate: Bearer\r\n".as_slice()
            } else {
                b"WWW-Authenticate: Bearer error=\"invalid_token\"\r\n".as_slice()
            });
            return Verdict::Reject(status, message);
        }
    }
    if let Some(t) = &chain.throttle
        && fresh
        && let Some(Some((_, buckets))) = state.throttles.get_mut(req.route)
    {
        let value = match &t.key {
            throttle::Key::Header(name) => cors::field(buf, head, name),
            _ => None,
        };
        if let Err(secs) = buckets.take(snap.workers, client, value, now) {
            retry_after(fields, secs);
            return Verdict::Reject(429, "too many requests");
        }
    }
    if let Some(v) = &chain.validate
        && let Err((status, message)) = v.check(buf, head)
    {
        return Verdict::Reject(status, message);
    }
    if let Some(m) = &chain.mapping {
        // The id is copied out of `fields`, which the response rules append to.
        let mut id = [0u8; crate::request_id::MAX_LEN];
        let src = fields.get(req.request_id.clone()).unwrap_or_default();
        let id = &mut id[..src.len()];
        id.copy_from_slice(src);
        let cx = mapping::Context {
            buf,
            head,
            client,
            path: req.path,
            found: req.found,
            router: &snap.router,
            request_id: id,
        };
        m.request_fields(&cx, upstream);
        m.response_fields(&cx, fields);
    }
    match &chain.mock {
        Some(m) => Verdict::Mock(m),
        None => Verdict::Forward,
    }
}

fn retry_after(fields: &mut Vec<u8>, secs: u64) {
    fields.extend_from_slice(b"Retry-After: ");
    fields.extend_from_slice(itoa::Buffer::new().format(secs).as_bytes());
    fields.extend_from_slice(b"\r\n");
}

/// One worker's policy counters: throttle buckets per route, and per API key
/// its plan's bucket and quota count.
#[derive(Debug, Default)]
pub struct WorkerState {
    /// The snapshot generation these vectors are indexed for.
    generation: u64,
    /// Per route: its path and buckets (routes with a throttle only).
    throttles: Vec<Option<(String, throttle::Buckets)>>,
    /// Per key of `snap.api_keys.keys`.
    keys: Vec<api_key::KeyState>,
    /// Per route: its JWT key set and verified tokens (routes with a JWT authorizer only).
    jwts: Vec<Option<jwt::Local>>,
}

impl WorkerState {
    pub fn new(snap: &Snapshot) -> WorkerState {
        let mut s = WorkerState::default();
        s.install(snap);
        s
    }

    /// Re-indexes the counters for a reloaded snapshot. A route keeps its
    /// buckets if the route at its index has the same path and the same
    /// throttle; any other change starts that route's buckets over. A key
    /// keeps its quota count if its digest is unchanged (its bucket starts full).
    pub fn install(&mut self, snap: &Snapshot) {
        let mut old_throttles = std::mem::take(&mut self.throttles);
        self.throttles = snap
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let t = r.policies.throttle.as_deref()?;
                match old_throttles.get_mut(i).and_then(Option::take) {
                    Some((path, b)) if path == r.path && b.config == *t => Some((path, b)),
                    _ => Some((r.path.clone(), throttle::Buckets::new(t.clone()))),
                }
            })
            .collect();
        let old_keys: std::collections::HashMap<api_key::KeyHash, api_key::KeyState> =
            self.keys.drain(..).map(|k| (k.hash, k)).collect();
        self.keys = snap
            .api_keys
            .keys
            .iter()
            .map(|k| {
                old_keys
                    .get(&k.hash)
                    .map_or_else(|| api_key::KeyState::new(k.hash), |o| o.carried())
            })
            .collect();
        // Verified tokens start over with each snapshot (its key sets may differ).
        self.jwts = snap
            .routes
            .iter()
            .map(|r| r.policies.jwt.as_ref().map(|j| j.local()))
            .collect();
        self.generation = snap.generation;
    }

    /// Forgets every verified JWT (benchmarks use it to measure the uncached path).
    pub fn forget_tokens(&mut self) {
        for l in self.jwts.iter_mut().flatten() {
            l.forget_tokens();
        }
    }
}

/// Control plane: starts the background work a snapshot's policies need
/// (fetching JWKS URLs) before workers serve it. Idempotent; never called by
/// `ringway check`.
pub fn start_background(snap: &Snapshot) {
    for r in &snap.routes {
        if let Some(j) = &r.policies.jwt {
            j.start();
        }
    }
}
