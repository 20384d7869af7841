//! `[[upstream]]` resilience keys: `balance`, `hash_key`,
//! `resolve_interval`, `[upstream.health]`, `[upstream.outlier]`,
//! `[upstream.retry]`, `[upstream.limits]` — checked (every problem with
//! its file, line and key) and compiled into [`Resilience`].

use super::error::Collector;
use super::model;
use super::units::Dur;
use crate::resilience::{
    Balance, CircuitLimits, HashKey, HealthCheck, OutlierPolicy, Resilience, RetryPolicy, maglev,
};
use crate::snapshot::Target;
use std::time::Duration;
use toml::Spanned;

/// Compiles the resilience keys of upstream `u` (whose targets are `targets`).
pub(super) fn compile(
    u: &model::Upstream,
    targets: &[Target],
    key: &dyn Fn(&str) -> String,
    c: &mut Collector<'_>,
) -> Resilience {
    let mut r = Resilience::default();
    let mut check = Check { c, key };
    r.balance = check.balance(u);
    // A `hash_key` beside another balance is checked, and unused (the
    // issue's own example sets both).
    let hashing = u.balance.as_ref().is_some_and(|b| b.get_ref() == "hash");
    if let Some(h) = u.hash_key.as_ref().filter(|_| !hashing)
        && let Err(m) = HashKey::parse(h.get_ref())
    {
        check.c.at(h.span(), (check.key)("hash_key"), m);
    }
    if matches!(r.balance, Balance::Hash(_)) {
        let names: Vec<String> = targets.iter().map(|t| t.label.clone()).collect();
        let weights: Vec<u32> = targets.iter().map(|t| t.weight).collect();
        r.maglev = maglev::build(&names, &weights);
    }
    if let Some(d) = &u.resolve_interval {
        r.resolve_interval = Some(check.positive(d, "resolve_interval"));
    }
    if let Some(h) = &u.health {
        r.health = Some(check.health(h.get_ref()));
    }
    if let Some(o) = &u.outlier {
        let o = o.get_ref();
        r.outlier = Some(check.outlier(o));
        r.max_ejected_percent = check.count(
            &o.max_ejected_percent,
            "outlier.max_ejected_percent",
            0,
            100,
        );
    }
    if let Some(t) = &u.retry {
        r.retry = check.retry(t.get_ref());
    }
    if let Some(l) = &u.limits {
        r.limits = check.limits(l.get_ref());
    }
    r
}

/// The collector and the key namer of one upstream.
struct Check<'c, 's> {
    c: &'c mut Collector<'s>,
    key: &'c dyn Fn(&str) -> String,
}

impl Check<'_, '_> {
    fn balance(&mut self, u: &model::Upstream) -> Balance {
        let Some(b) = &u.balance else {
            return Balance::RoundRobin;
        };
        match b.get_ref().as_str() {
            "round_robin" => Balance::RoundRobin,
            "least_request" => Balance::LeastRequest,
            "random" => Balance::Random,
            "hash" => match &u.hash_key {
                None => {
                    let m =
                        "balance = \"hash\" needs `hash_key` (e.g. \"$request.header.x-user-id\")";
                    self.c.at(b.span(), (self.key)("balance"), m);
                    Balance::RoundRobin
                }
                Some(h) => match HashKey::parse(h.get_ref()) {
                    Ok(k) => Balance::Hash(k),
                    Err(m) => {
                        self.c.at(h.span(), (self.key)("hash_key"), m);
                        Balance::RoundRobin
                    }
                },
            },
            other => {
                let m = format!(
                    "unknown balance {other:?}: expected \"round_robin\", \"least_request\", \"hash\" or \"random\"{}",
                    did_you_mean(other, &["round_robin", "least_request", "hash", "random"])
                );
                self.c.at(b.span(), (self.key)("balance"), m);
                Balance::RoundRobin
            }
        }
    }

    /// A duration that must not be zero.
    fn positive(&mut self, d: &Spanned<Dur>, name: &str) -> Duration {
        let v = d.get_ref().0;
        if v.is_zero() {
            self.c
                .at(d.span(), (self.key)(name), "must be more than zero");
            return Duration::from_secs(1);
        }
        v
    }

    /// An integer in `lo..=hi`.
    fn count(&mut self, n: &Spanned<i64>, name: &str, lo: i64, hi: i64) -> u32 {
        let v = *n.get_ref();
        if v < lo || v > hi {
            let m = if hi == i64::from(u32::MAX) {
                format!("{v}: must be at least {lo}")
            } else {
                format!("{v}: must be {lo} to {hi}")
            };
            self.c.at(n.span(), (self.key)(name), m);
            return lo.max(1) as u32;
        }
        v as u32
    }

    fn health(&mut self, h: &model::Health) -> HealthCheck {
        let path = h.path.get_ref().clone();
        if !path.starts_with('/') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            let m = format!("{path:?}: a check path starts with / and has no spaces or controls");
            self.c.at(h.path.span(), (self.key)("health.path"), m);
        }
        let interval = self.positive(&h.interval, "health.interval");
        let timeout = self.positive(&h.timeout, "health.timeout");
        let max = i64::from(u32::MAX);
        let healthy = self.count(&h.healthy, "health.healthy", 1, max);
        let unhealthy = self.count(&h.unhealthy, "health.unhealthy", 1, max);
        let mut expect = Vec::new();
        if let Some(list) = &h.expect {
            if list.get_ref().is_empty() {
                self.c.at(
                    list.span(),
                    (self.key)("health.expect"),
                    "list at least one status",
                );
            }
            for s in list.get_ref() {
                match u16::try_from(*s.get_ref()) {
                    Ok(v @ 100..=599) => expect.push(v),
                    _ => {
                        let m = format!("{}: a status is 100 to 599", s.get_ref());
                        self.c.at(s.span(), (self.key)("health.expect"), m);
                    }
                }
            }
        }
        let host = h.host.as_ref().map(|v| {
            let host = v.get_ref();
            if host.is_empty() || host.bytes().any(|b| b <= b' ' || b == 0x7f) {
                let m = format!("{host:?}: not a valid Host value");
                self.c.at(v.span(), (self.key)("health.host"), m);
            }
            host.clone()
        });
        HealthCheck {
            path,
            interval,
            timeout,
            healthy,
            unhealthy,
            expect,
            host,
        }
    }

    fn outlier(&mut self, o: &model::Outlier) -> OutlierPolicy {
        let max = i64::from(u32::MAX);
        let p = OutlierPolicy {
            consecutive_5xx: self.count(&o.consecutive_5xx, "outlier.consecutive_5xx", 1, max),
            consecutive_failures: self.count(
                &o.consecutive_failures,
                "outlier.consecutive_failures",
                1,
                max,
            ),
            ejection: self.positive(&o.ejection, "outlier.ejection"),
            max_ejection: self.positive(&o.max_ejection, "outlier.max_ejection"),
        };
        if p.max_ejection < p.ejection {
            let m = format!(
                "{:?} is shorter than ejection ({:?})",
                p.max_ejection, p.ejection
            );
            self.c
                .at(o.max_ejection.span(), (self.key)("outlier.max_ejection"), m);
        }
        p
    }

    fn retry(&mut self, t: &model::Retry) -> RetryPolicy {
        let mut p = RetryPolicy {
            attempts: self.count(&t.attempts, "retry.attempts", 1, 10),
            budget_percent: self.count(&t.budget_percent, "retry.budget_percent", 0, 100),
            non_idempotent: t.non_idempotent,
            ..RetryPolicy::default()
        };
        if let Some(on) = &t.on {
            p.on_connect = false;
            p.on_reset = false;
            for r in on.get_ref() {
                if let Err(m) = p.add_reason(r.get_ref()) {
                    self.c.at(r.span(), (self.key)("retry.on"), m);
                }
            }
        }
        if let Some(d) = &t.per_try_timeout {
            p.per_try_timeout = Some(self.positive(d, "retry.per_try_timeout"));
        }
        if let Some(d) = &t.backoff {
            p.backoff = d.get_ref().0;
        }
        p
    }

    fn limits(&mut self, l: &model::UpstreamLimits) -> CircuitLimits {
        let max = i64::from(u32::MAX);
        let mut one = |v: &Option<Spanned<i64>>, name: &str| {
            v.as_ref().map_or(u32::MAX, |n| self.count(n, name, 1, max))
        };
        CircuitLimits {
            max_connections: one(&l.max_connections, "limits.max_connections"),
            max_pending: one(&l.max_pending, "limits.max_pending"),
            max_requests: one(&l.max_requests, "limits.max_requests"),
        }
    }
}

/// `": did you mean X?"` for the known value nearest `s`, if one is near.
fn did_you_mean(s: &str, known: &[&str]) -> String {
    let near = known
        .iter()
        .map(|k| (super::read::edit_distance(s, k), k))
        .filter(|(d, k)| *d <= k.len() / 3 + 1)
        .min();
    near.map(|(_, k)| format!(": did you mean \"{k}\"?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use crate::resilience::{Balance, HashKey};
    use std::path::Path;

    fn errors(text: &str) -> String {
        match crate::config::from_str(Path::new("t.toml"), text) {
            Ok(_) => panic!("expected errors for:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    const ROUTE: &str = "\n[[route]]\npath = \"/\"\nupstream = \"app\"\n";

    #[test]
    fn the_issue_example_compiles() {
        let text = format!(
            "[[upstream]]\nname = \"app\"\ntargets = [\"127.0.0.1:8080\", {{ addr = \"127.0.0.2:8080\", weight = 3 }}, \"localhost:8081\"]\nbalance = \"hash\"\nhash_key = \"$request.header.x-user-id\"\nresolve_interval = \"30s\"\n\n[upstream.health]\npath = \"/healthz\"\ninterval = \"5s\"\ntimeout = \"1s\"\nhealthy = 2\nunhealthy = 3\nexpect = [200, 204]\n\n[upstream.outlier]\nconsecutive_5xx = 5\nconsecutive_failures = 3\nejection = \"30s\"\nmax_ejection = \"5m\"\nmax_ejected_percent = 50\n\n[upstream.retry]\nattempts = 2\non = [\"connect\", \"reset\", \"502\", \"503\", \"504\"]\nper_try_timeout = \"2s\"\nbudget_percent = 20\nbackoff = \"25ms\"\n\n[upstream.limits]\nmax_connections = 1024\nmax_pending = 256\nmax_requests = 4096\n{ROUTE}"
        );
        let s = crate::config::from_str(Path::new("t.toml"), &text).unwrap();
        let u = &s.upstreams[0];
        assert_eq!(u.targets.len(), 3);
        assert_eq!(u.targets[1].weight, 3);
        let r = &u.resilience;
        assert_eq!(
            r.balance,
            Balance::Hash(HashKey::Header(b"x-user-id".to_vec().into()))
        );
        assert_eq!(r.maglev.len(), crate::resilience::maglev::SLOTS);
        assert_eq!(r.health.as_ref().unwrap().expect, [200, 204]);
        assert_eq!(r.outlier.unwrap().consecutive_5xx, 5);
        assert_eq!(r.retry.attempts, 2);
        assert!(r.retry.covers(crate::resilience::RetryReason::Status(503)));
        assert_eq!(r.limits.max_pending, 256);
    }

    #[test]
    fn the_issue_text_passes_as_written() {
        // Verbatim from issue #18, but for the DNS name (it must resolve here).
        let text = format!(
            r#"[[upstream]]
name = "app"
targets = ["10.0.0.1:8080", {{ addr = "10.0.0.2:8080", weight = 3 }}, "localhost:8080"]   # DNS names allowed
balance = "round_robin"          # "round_robin" (smooth weighted; default) | "least_request" (power of two choices) | "hash" | "random"
hash_key = "$request.header.x-user-id"   # with "hash": $context.identity.sourceIp, $request.header.X, $request.querystring.X, $request.path; consistent (Maglev or ring), so adding a target moves ~1/N of keys
resolve_interval = "30s"         # DNS names re-resolved off the hot path; every address becomes a target

[upstream.health]                # active checks, from one control thread, results published to every worker
path = "/healthz"
interval = "5s"
timeout = "1s"
healthy = 2                      # consecutive passes to bring a target back
unhealthy = 3                    # consecutive failures to take it out
expect = [200, 204]              # statuses that pass (default 2xx)
# host = "app.internal"          # Host field of the check (default: the target)

[upstream.outlier]               # passive: judged from real traffic, per worker
consecutive_5xx = 5
consecutive_failures = 3         # connect errors, resets, timeouts
ejection = "30s"                 # first ejection; doubles on each repeat, up to max_ejection
max_ejection = "5m"
max_ejected_percent = 50         # never eject more than this share; below it the upstream "panics" to all targets (logged)

[upstream.retry]
attempts = 2                     # total tries (default 2 for idempotent requests without a body already sent)
on = ["connect", "reset", "502", "503", "504"]
per_try_timeout = "2s"
budget_percent = 20              # retries at most this share of the upstream's active requests, so retries never amplify an outage
backoff = "25ms"                 # jittered, doubled per try
# non_idempotent = false         # POST/PATCH retried only on connect failure (nothing was sent), unless true

[upstream.limits]                # circuit breaking, per worker; over a limit: 503 with a JSON reason
max_connections = 1024
max_pending = 256                # requests waiting for a connection
max_requests = 4096              # concurrent requests in flight
{ROUTE}"#
        );
        let s = crate::config::from_str(Path::new("t.toml"), &text).unwrap();
        assert_eq!(s.upstreams[0].resilience.balance, Balance::RoundRobin);
        assert_eq!(s.upstreams[0].targets.len(), 3);
    }

    #[test]
    fn every_bad_value_is_named_with_its_line() {
        let text = format!(
            "[[upstream]]\nname = \"app\"\ntargets = [{{ addr = \"127.0.0.1:1\", weight = 0 }}]\nbalance = \"hash\"\nresolve_interval = \"0s\"\n\n[upstream.health]\ninterval = \"0s\"\nhealthy = 0\nexpect = [700]\n\n[upstream.outlier]\nconsecutive_failures = 0\nmax_ejected_percent = 101\n\n[upstream.retry]\non = [\"connect\", \"bogus\"]\nper_try_timeout = \"0ms\"\n\n[upstream.limits]\nmax_requests = 0\n{ROUTE}"
        );
        let e = errors(&text);
        for want in [
            "t.toml:3:12: key `upstream[0].targets`: weight 0 of \"127.0.0.1:1\": a weight is 1 to 10000",
            "t.toml:4:11: key `upstream[0].balance`: balance = \"hash\" needs `hash_key`",
            "t.toml:5:20: key `upstream[0].resolve_interval`: must be more than zero",
            "t.toml:8:12: key `upstream[0].health.interval`: must be more than zero",
            "t.toml:9:11: key `upstream[0].health.healthy`: 0: must be at least 1",
            "t.toml:10:11: key `upstream[0].health.expect`: 700: a status is 100 to 599",
            "t.toml:13:24: key `upstream[0].outlier.consecutive_failures`: 0: must be at least 1",
            "t.toml:14:23: key `upstream[0].outlier.max_ejected_percent`: 101: must be 0 to 100",
            "t.toml:17:18: key `upstream[0].retry.on`: unknown retry reason \"bogus\"",
            "t.toml:18:19: key `upstream[0].retry.per_try_timeout`: must be more than zero",
            "t.toml:21:16: key `upstream[0].limits.max_requests`: 0: must be at least 1",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
    }

    #[test]
    fn unknown_keys_and_values_get_suggestions() {
        let e = errors(&format!(
            "[[upstream]]\nname = \"app\"\ntargets = [\"127.0.0.1:1\"]\nbalance = \"round_robbin\"\nhash_key = \"$request.path\"\n\n[upstream.retry]\nattemps = 3\n{ROUTE}"
        ));
        assert!(
            e.contains("t.toml:4:11: key `upstream[0].balance`: unknown balance \"round_robbin\"")
                && e.contains("did you mean \"round_robin\"?"),
            "{e}"
        );
        assert!(
            !e.contains("hash_key"),
            "a valid hash_key beside round robin is fine: {e}"
        );
        assert!(
            e.contains(
                "key `upstream[0].retry.attemps`: unknown field `attemps`: did you mean `attempts`?"
            ),
            "{e}"
        );
        let e = errors(&format!(
            "[[upstream]]\nname = \"app\"\ntargets = [{{ adr = \"127.0.0.1:1\" }}]\n{ROUTE}"
        ));
        assert!(e.contains("key `upstream[0].targets"), "{e}");
        assert!(e.contains("unknown field `adr`"), "{e}");
    }

    #[test]
    fn a_name_with_two_addresses_is_two_targets() {
        // localhost resolves through /etc/hosts; whatever it gives, each address is a target.
        let text = format!("[[upstream]]\nname = \"app\"\ntargets = [\"localhost:9\"]\n{ROUTE}");
        let s = crate::config::from_str(Path::new("t.toml"), &text).unwrap();
        let want = crate::config::lookup("localhost:9").unwrap();
        let got: Vec<_> = s.upstreams[0].targets.iter().map(|t| t.addr).collect();
        assert_eq!(got, want);
        assert!(
            s.upstreams[0]
                .targets
                .iter()
                .all(|t| t.authority == "localhost:9")
        );
    }
}
