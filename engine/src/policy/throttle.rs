//! `[route.throttle]`: token buckets without API keys, one per route, per
//! client IP or per header value.
//!
//! State is per worker: with N workers, each worker's bucket refills at
//! `rate / N` per second and holds `burst / N` tokens (at least one). A
//! client whose connections all land on one worker therefore gets about
//! `rate / N`; the whole gateway admits about `rate` once connections are
//! spread over the workers (see the README's Policies section).

use super::{Check, Compile, Policy, Problem, Verdict};
use crate::config::model;
use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::ControlFlow;
use std::time::Instant;

/// Distinct keys kept per route and worker. Past it, keys whose bucket has
/// refilled completely are forgotten (they would start full anyway); if that
/// frees nothing, every key of the route starts over.
pub const MAX_KEYS_PER_ROUTE: usize = 65_536;

/// What a bucket is keyed by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    /// One bucket for the whole route.
    Route,
    /// One bucket per client address (after `trusted_proxies`).
    ClientIp,
    /// One bucket per value of this header (lower-case name); requests without it share one.
    Header(Box<[u8]>),
}

/// A compiled throttle: gateway-wide rate and burst, split per worker at check time.
#[derive(Clone, Debug, PartialEq)]
pub struct Throttle {
    pub rate: f64,
    pub burst: f64,
    pub key: Key,
}

impl Policy for Throttle {
    type Table = model::Throttle;
    type Local = Buckets;

    fn compile(t: &model::Throttle, _: &Compile<'_>) -> Result<Throttle, Problem> {
        compile(t)
    }

    fn check<'c>(
        &'c self,
        cx: &mut Check<'_>,
        buckets: Option<&mut Buckets>,
    ) -> ControlFlow<Verdict<'c>> {
        let Some(buckets) = buckets else {
            return ControlFlow::Continue(());
        };
        let value = match &self.key {
            Key::Header(name) => super::cors::field(cx.req.buf, cx.req.head, name),
            _ => None,
        };
        let now = cx.now();
        match buckets.take(cx.env.workers, cx.client, value, now) {
            Ok(()) => ControlFlow::Continue(()),
            Err(secs) => cx.too_many(secs, "too many requests"),
        }
    }

    /// The route's buckets carry over a reload that leaves its throttle as it was.
    fn local(&self, old: Option<Buckets>) -> Option<Buckets> {
        Some(match old {
            Some(b) if b.config == *self => b,
            _ => Buckets::new(self.clone()),
        })
    }

    fn uses_client_ip(&self) -> bool {
        self.key == Key::ClientIp
    }
}

/// Control plane: `[route.throttle]` → [`Throttle`].
pub fn compile(t: &model::Throttle) -> Result<Throttle, Problem> {
    let (rate, burst) = rate_and_burst(&t.rate, t.burst.as_ref())?;
    let key = match t.key.as_ref().map(|k| k.get_ref().as_str()) {
        None | Some("route") => Key::Route,
        Some("client_ip") => Key::ClientIp,
        Some(k) => match k.strip_prefix("header:") {
            Some(name) if is_token(name) => {
                Key::Header(name.to_ascii_lowercase().into_bytes().into())
            }
            _ => {
                let span = t.key.as_ref().map(|k| k.span()).unwrap_or_default();
                return Err(Problem::new(
                    span,
                    "key",
                    format!(
                        "unknown throttle key {k:?}: use \"route\", \"client_ip\" or \"header:NAME\""
                    ),
                ));
            }
        },
    };
    Ok(Throttle { rate, burst, key })
}

/// Checks a `rate` (requests per second, > 0) and an optional `burst` (≥ 1,
/// default: the rate rounded up).
pub fn rate_and_burst(
    rate: &toml::Spanned<f64>,
    burst: Option<&toml::Spanned<f64>>,
) -> Result<(f64, f64), Problem> {
    let r = *rate.get_ref();
    if !(r.is_finite() && r > 0.0) {
        return Err(Problem::new(
            rate.span(),
            "rate",
            "the rate (requests per second) must be above 0",
        ));
    }
    let b = match burst {
        None => r.ceil(),
        Some(b) if b.get_ref().is_finite() && *b.get_ref() >= 1.0 => *b.get_ref(),
        Some(b) => {
            return Err(Problem::new(
                b.span(),
                "burst",
                "the burst must be at least 1",
            ));
        }
    };
    Ok((r, b))
}

/// An HTTP token (RFC 9110 §5.6.2), as a header name must be.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A token bucket. Tokens are fractional; a request takes one.
#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn full(burst: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: burst,
            last: now,
        }
    }

    /// Takes a token, or says how many whole seconds until one is there (≥ 1).
    #[inline]
    pub fn take(&mut self, rate: f64, burst: f64, now: Instant) -> Result<(), u64> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - self.tokens) / rate).ceil() as u64).max(1))
        }
    }

    fn is_full(&self, rate: f64, burst: f64, now: Instant) -> bool {
        self.tokens + now.saturating_duration_since(self.last).as_secs_f64() * rate >= burst
    }
}

/// This worker's share of a gateway-wide rate and burst.
#[inline]
pub fn share(rate: f64, burst: f64, workers: usize) -> (f64, f64) {
    let n = workers.max(1) as f64;
    (rate / n, (burst / n).max(1.0))
}

/// One route's buckets on one worker.
#[derive(Debug)]
pub struct Buckets {
    /// The throttle they were made for: a reload that changes it starts over.
    pub config: Throttle,
    route: Option<Bucket>,
    by_ip: HashMap<IpAddr, Bucket>,
    by_value: HashMap<Box<[u8]>, Bucket>,
}

impl Buckets {
    pub fn new(config: Throttle) -> Buckets {
        Buckets {
            config,
            route: None,
            by_ip: HashMap::new(),
            by_value: HashMap::new(),
        }
    }

    /// Data plane: takes a token for this request. `value` is the header value
    /// for `Key::Header` (None: absent); `client` the client address.
    pub fn take(
        &mut self,
        workers: usize,
        client: IpAddr,
        value: Option<&[u8]>,
        now: Instant,
    ) -> Result<(), u64> {
        let (rate, burst) = share(self.config.rate, self.config.burst, workers);
        let bucket = match self.config.key {
            Key::Route => self.route.get_or_insert_with(|| Bucket::full(burst, now)),
            Key::ClientIp => {
                if !self.by_ip.contains_key(&client) {
                    make_room(&mut self.by_ip, rate, burst, now);
                }
                self.by_ip
                    .entry(client)
                    .or_insert_with(|| Bucket::full(burst, now))
            }
            Key::Header(_) => {
                let v = value.unwrap_or_default();
                if !self.by_value.contains_key(v) {
                    make_room(&mut self.by_value, rate, burst, now);
                    self.by_value.insert(v.into(), Bucket::full(burst, now));
                }
                self.by_value.get_mut(v).expect("inserted above")
            }
        };
        bucket.take(rate, burst, now)
    }
}

fn make_room<K: Eq + std::hash::Hash>(
    map: &mut HashMap<K, Bucket>,
    rate: f64,
    burst: f64,
    now: Instant,
) {
    if map.len() < MAX_KEYS_PER_ROUTE {
        return;
    }
    map.retain(|_, b| !b.is_full(rate, burst, now));
    if map.len() >= MAX_KEYS_PER_ROUTE {
        map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_spends_its_burst_then_refills_at_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::full(3.0, t0);
        for _ in 0..3 {
            assert_eq!(b.take(2.0, 3.0, t0), Ok(()));
        }
        assert_eq!(b.take(2.0, 3.0, t0), Err(1));
        // Half a second at 2/s is one token.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(b.take(2.0, 3.0, t1), Ok(()));
        assert!(b.take(2.0, 3.0, t1).is_err());
        // Never more than the burst, however long it waited.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(b.take(2.0, 3.0, t2), Ok(()));
        }
        assert!(b.take(2.0, 3.0, t2).is_err());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let t0 = Instant::now();
        let mut b = Bucket::full(1.0, t0);
        assert_eq!(b.take(0.1, 1.0, t0), Ok(()));
        assert_eq!(b.take(0.1, 1.0, t0), Err(10));
    }

    #[test]
    fn the_share_of_a_worker() {
        assert_eq!(share(100.0, 200.0, 4), (25.0, 50.0));
        assert_eq!(share(10.0, 1.0, 4), (2.5, 1.0));
        assert_eq!(share(10.0, 5.0, 0), (10.0, 5.0));
    }

    #[test]
    fn keys_get_their_own_buckets() {
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let cfg = |key| Throttle {
            rate: 1.0,
            burst: 1.0,
            key,
        };
        let mut by_ip = Buckets::new(cfg(Key::ClientIp));
        assert!(by_ip.take(1, a, None, t0).is_ok());
        assert!(by_ip.take(1, a, None, t0).is_err());
        assert!(by_ip.take(1, b, None, t0).is_ok());
        let mut by_header = Buckets::new(cfg(Key::Header(b"x-tenant".as_slice().into())));
        assert!(by_header.take(1, a, Some(b"t1"), t0).is_ok());
        assert!(by_header.take(1, a, Some(b"t1"), t0).is_err());
        assert!(by_header.take(1, a, Some(b"t2"), t0).is_ok());
        assert!(by_header.take(1, a, None, t0).is_ok());
        assert!(by_header.take(1, a, None, t0).is_err());
        let mut route = Buckets::new(cfg(Key::Route));
        assert!(route.take(1, a, None, t0).is_ok());
        assert!(route.take(1, b, None, t0).is_err());
    }

    #[test]
    fn the_key_table_is_bounded() {
        let t0 = Instant::now();
        let mut m = Buckets::new(Throttle {
            rate: 1.0,
            burst: 2.0,
            key: Key::ClientIp,
        });
        for i in 0..(MAX_KEYS_PER_ROUTE as u32 + 10) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(i));
            let _ = m.take(1, ip, None, t0);
        }
        assert!(m.by_ip.len() <= MAX_KEYS_PER_ROUTE);
    }
}
