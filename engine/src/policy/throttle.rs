//! `[route.throttle]`: token buckets without API keys, one per route, per
//! client IP or per header value.
//!
//! The buckets are shared by every worker of the process (see
//! [`crate::limit`]): `burst = 5` admits exactly 5 at once, whichever cores
//! the connections landed on. Keyed buckets (client IP, header value) live
//! in a bounded map of [`MAX_KEYS_PER_ROUTE`] keys per route. A reload that
//! leaves a route's throttle as it was keeps its buckets.

use super::{Check, Compile, Policy, Problem, Verdict};
use crate::config::model;
use crate::limit::{self, Rate};
use std::net::IpAddr;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

/// Distinct keys kept per route (client addresses or header values). Past
/// it, keys whose bucket is full again are forgotten first (they would start
/// full anyway); see [`limit::Keyed`] for the rest. About 40 bytes each.
pub const MAX_KEYS_PER_ROUTE: usize = 100_000;

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

/// A compiled throttle: a gateway-wide rate and burst, and its buckets.
#[derive(Clone, Debug)]
pub struct Throttle {
    pub rate: f64,
    pub burst: f64,
    pub key: Key,
    buckets: Buckets,
}

/// The buckets of one route's throttle, shared by all workers.
#[derive(Clone, Debug)]
enum Buckets {
    Route(Arc<limit::Bucket>),
    Keyed(Arc<limit::Keyed>),
}

impl PartialEq for Throttle {
    fn eq(&self, other: &Throttle) -> bool {
        (self.rate, self.burst, &self.key) == (other.rate, other.burst, &other.key)
    }
}

impl Policy for Throttle {
    type Table = model::Throttle;
    type Local = ();

    fn compile(t: &model::Throttle, cx: &Compile<'_>) -> Result<Throttle, Problem> {
        compile(t, cx.route)
    }

    fn check<'c>(&'c self, cx: &mut Check<'_>, _: Option<&mut ()>) -> ControlFlow<Verdict<'c>> {
        let now = limit::now();
        let taken = match &self.buckets {
            Buckets::Route(b) => b.take(self.limit(), now),
            Buckets::Keyed(map) => match &self.key {
                Key::Header(name) => {
                    let value = super::cors::field(cx.req.buf, cx.req.head, name);
                    map.take(value.unwrap_or_default(), now)
                }
                _ => match cx.client {
                    IpAddr::V4(a) => map.take(&a.octets(), now),
                    IpAddr::V6(a) => map.take(&a.octets(), now),
                },
            },
        };
        match taken {
            Ok(()) => ControlFlow::Continue(()),
            Err(wait) => cx.too_many(retry_after(wait), "too many requests"),
        }
    }

    fn uses_client_ip(&self) -> bool {
        self.key == Key::ClientIp
    }
}

impl Throttle {
    fn limit(&self) -> Rate {
        Rate::new(self.rate, self.burst)
    }
}

/// Whole seconds to wait (at least 1), for `Retry-After`.
pub fn retry_after(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

/// Control plane: `[route.throttle]` → [`Throttle`]. `route` names the route
/// (its buckets are kept across reloads under that name and limit).
pub fn compile(t: &model::Throttle, route: &str) -> Result<Throttle, Problem> {
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
    let limit = Rate::new(rate, burst);
    let identity = format!("throttle:{route}:{key:?}");
    let buckets = match key {
        Key::Route => Buckets::Route(limit::shared(&identity, limit)),
        _ => Buckets::Keyed(limit::shared_keyed(&identity, limit, MAX_KEYS_PER_ROUTE)),
    };
    Ok(Throttle {
        rate,
        burst,
        key,
        buckets,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(key: &str, route: &str) -> Throttle {
        let text = format!("rate = 1.0\nburst = 2.0\nkey = \"{key}\"");
        let t: model::Throttle = toml::from_str(&text).unwrap();
        compile(&t, route).unwrap()
    }

    #[test]
    fn the_same_route_and_limit_share_buckets_across_compiles() {
        let (a, b) = (throttle("route", "/same"), throttle("route", "/same"));
        let now = limit::now();
        assert!(
            matches!((&a.buckets, &b.buckets), (Buckets::Route(x), Buckets::Route(y)) if Arc::ptr_eq(x, y))
        );
        let c = throttle("route", "/other");
        assert!(
            matches!((&a.buckets, &c.buckets), (Buckets::Route(x), Buckets::Route(y)) if !Arc::ptr_eq(x, y))
        );
        let Buckets::Route(bucket) = &a.buckets else {
            unreachable!()
        };
        assert_eq!(
            (0..5)
                .filter(|_| bucket.take(a.limit(), now).is_ok())
                .count(),
            2
        );
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after(Duration::from_millis(1)), 1);
        assert_eq!(retry_after(Duration::from_millis(9_001)), 10);
    }

    #[test]
    fn keys_are_checked() {
        let t: model::Throttle = toml::from_str("rate = 1.0\nkey = \"header:\"").unwrap();
        assert!(compile(&t, "/x").is_err());
        assert!(matches!(
            throttle("client_ip", "/k").buckets,
            Buckets::Keyed(_)
        ));
    }
}
