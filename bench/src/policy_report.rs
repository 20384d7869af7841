//! The policy benchmark's report: requests per proxy CPU-second per
//! variant, each policy's cost against the plain proxy (ratio, % more CPU
//! per request, nanoseconds per request), and ringway against nginx, as
//! markdown and JSON.

use std::fmt::Write as _;

use crate::measure::RunRecord;
use crate::report::{Spread, TargetSummary, cell, count_cell, grouped};
use crate::setup::Machine;
use crate::variants::{Setup, Variant};

/// The figure every comparison is made on.
const RATE: &str = "req_per_cpu_s";

/// One variant's runs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VariantResult {
    pub variant: Variant,
    /// What the variant adds to the proxy's configuration.
    pub config: String,
    pub summary: TargetSummary,
}

impl VariantResult {
    /// A variant with any failed run (a non-2xx response included) has no
    /// figure: a refused request is cheaper than a forwarded one.
    pub fn failed(&self) -> bool {
        self.summary.runs == 0 || self.summary.ok_runs < self.summary.runs
    }

    /// Median requests per proxy CPU-second, unless the variant failed.
    fn rate(&self) -> Option<f64> {
        if self.failed() {
            None
        } else {
            self.summary.median(RATE)
        }
    }

    /// The rate of each run, by run index.
    fn rate_of_run(&self, run: usize) -> Option<f64> {
        self.summary
            .records
            .iter()
            .find(|r: &&RunRecord| r.run == run)
            .and_then(|r| r.metrics.get(RATE).copied())
    }
}

/// What a variant's policies cost against its proxy's plain variant.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Overhead {
    pub variant: &'static str,
    pub baseline: &'static str,
    /// Median requests per CPU-second of the variant over the baseline's.
    pub ratio: f64,
    /// CPU per request relative to the baseline, in % (baseline / variant − 1).
    pub cpu_per_request_pct: f64,
    /// CPU nanoseconds added per request: 1e9 / variant − 1e9 / baseline (medians).
    pub ns_per_request: f64,
    /// The same for each pair of runs with the same index (run next to each
    /// other, so under the same neighbours): median, min, max.
    pub ns_per_request_paired: Option<Spread>,
}

/// The baseline of `v`: the plain variant of the same proxy.
fn baseline<'a>(v: &VariantResult, all: &'a [VariantResult]) -> Option<&'a VariantResult> {
    if v.variant.is_plain() {
        return None;
    }
    let target = v.variant.target();
    all.iter()
        .find(|b| b.variant.is_plain() && b.variant.target() == target)
}

/// The overhead of every non-plain variant whose baseline was measured too.
pub fn overheads(all: &[VariantResult]) -> Vec<Overhead> {
    all.iter()
        .filter_map(|v| {
            let b = baseline(v, all)?;
            let (rv, rb) = (v.rate()?, b.rate()?);
            let mut paired: Vec<f64> = (0..v.summary.runs)
                .filter_map(|i| Some(1e9 / v.rate_of_run(i)? - 1e9 / b.rate_of_run(i)?))
                .collect();
            Some(Overhead {
                variant: v.variant.key,
                baseline: b.variant.key,
                ratio: rv / rb,
                cpu_per_request_pct: (rb / rv - 1.0) * 100.0,
                ns_per_request: 1e9 / rv - 1e9 / rb,
                ns_per_request_paired: Spread::of(&mut paired),
            })
        })
        .collect()
}

/// ringway against nginx, both plain or both with policies.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Versus {
    pub what: &'static str,
    pub ringway: &'static str,
    pub nginx: &'static str,
    /// ringway's median requests per CPU-second over nginx's.
    pub ratio: Option<f64>,
}

pub fn versus_nginx(all: &[VariantResult]) -> Vec<Versus> {
    let rate = |key: &str| all.iter().find(|v| v.variant.key == key)?.rate();
    [
        ("plain proxy", "ringway-plain", "nginx-plain"),
        (
            "with policies (ringway: all four; nginx: CORS + limit_req)",
            "ringway-all",
            "nginx-cors-limit",
        ),
    ]
    .into_iter()
    .filter(|(_, r, n)| {
        all.iter().any(|v| v.variant.key == *r) && all.iter().any(|v| v.variant.key == *n)
    })
    .map(|(what, ringway, nginx)| Versus {
        what,
        ringway,
        nginx,
        ratio: rate(ringway).zip(rate(nginx)).map(|(r, n)| r / n),
    })
    .collect()
}

/// The whole report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PolicyReport {
    pub date: String,
    pub command: String,
    pub machine: Machine,
    pub pinning: String,
    pub quick: bool,
    pub runs: usize,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub workers: usize,
    pub load_threads: usize,
    pub connections: usize,
    pub response_bytes: usize,
    /// The fields every request carries (the token elided).
    pub fields: Vec<String>,
    pub ringway_source: String,
    /// How the RS256 key and token were made.
    pub jwt: String,
    pub elapsed_s: f64,
    pub overheads: Vec<Overhead>,
    pub versus_nginx: Vec<Versus>,
    pub variants: Vec<VariantResult>,
}

impl PolicyReport {
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        md.push_str("# ringway API gateway policies — what each costs per request\n\n");
        let _ = writeln!(md, "- date: {} (start of the suite)", self.date);
        let _ = writeln!(md, "- command: `{}`", self.command);
        let _ = writeln!(
            md,
            "- machine: {} CPUs (nproc), {}, Linux {}",
            m.nproc, m.cpu_model, m.kernel
        );
        let _ = writeln!(
            md,
            "- proxies: ringway ({}), {}",
            self.ringway_source, m.nginx_version
        );
        let _ = writeln!(md, "- pinning: {}", self.pinning);
        let _ = writeln!(
            md,
            "- load: `ringway-load`, {} thread(s), {} keep-alive connections, closed loop, `GET /` answered by one \
             `ringway upstream` origin with {} B bodies; every request of every variant carries {}",
            self.load_threads,
            self.connections,
            self.response_bytes,
            self.fields
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(
            md,
            "- every proxy: {} worker(s), upstream keep-alive on, access log off",
            self.workers
        );
        let _ = writeln!(
            md,
            "- each run: {:.1} s warm-up (not counted), then {:.1} s measured; {} run(s) per variant, interleaved \
             (each variant once, in the order of the table, then again); cells are `median (min–max)`{}",
            self.warmup_s,
            self.duration_s,
            self.runs,
            if self.quick { "; --quick" } else { "" }
        );
        let _ = writeln!(
            md,
            "- JWT: {}. One token for all requests: ringway verifies it once per worker and then finds it in \
             its verified-token cache, so `ringway-jwt` and `ringway-all` measure the cache; \
             `ringway-jwt-uncached` sets `cache = false` and measures an RS256 verification per request",
            self.jwt
        );
        md.push_str(
            "- correctness: before each run's load, the proxy must answer a request with every field 200 (with \
             `Access-Control-Allow-Origin` exactly where CORS is on, without it elsewhere), and refuse a request \
             without the API key (403) or without the token (401) where those policies are on; during the load, \
             any non-2xx response or client error fails the run, and a variant with a failed run gets no figure\n",
        );
        let _ = writeln!(md, "- suite took {:.0} s\n", self.elapsed_s);

        md.push_str("## Requests per proxy CPU-second\n\n");
        md.push_str(
            "Higher is better. The proxy's CPU is utime+stime of its process tree from /proc, before and after the \
             measured run. `vs plain`: the variant's median over its proxy's plain variant; `CPU/request`: how much \
             more CPU each request takes; `ns/request`: CPU nanoseconds added per request, 1e9/rate − 1e9/rate(plain) \
             from the medians, then in brackets the median (min–max) of the same difference between runs of the same \
             round (run side by side, under the same neighbours).\n\n",
        );
        md.push_str(
            "| variant | req per CPU-s | vs plain | CPU/request | ns/request | ns/request, paired runs | req/s | p99 ms | non-2xx + errors | others on proxy CPU % |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for v in &self.variants {
            let s = &v.summary;
            let c = |k: &str| cell(s.metrics.get(k));
            if v.failed() {
                let _ = writeln!(
                    md,
                    "| {} | **failed** ({} of {} runs) | | | | | | | | |",
                    v.variant.key,
                    s.runs - s.ok_runs,
                    s.runs
                );
                continue;
            }
            let o = self.overheads.iter().find(|o| o.variant == v.variant.key);
            let (ratio, pct, ns, paired) = match o {
                None if v.variant.is_plain() => ("1".into(), "—".into(), "—".into(), "—".into()),
                None => (
                    "—".into(),
                    "—".into(),
                    "—".into(),
                    "no plain variant".into(),
                ),
                Some(o) => (
                    format!("{:.3}×", o.ratio),
                    format!("{:+.1}%", o.cpu_per_request_pct),
                    format!("{:+.0}", o.ns_per_request),
                    o.ns_per_request_paired
                        .as_ref()
                        .map_or_else(|| "—".into(), signed_spread),
                ),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {ratio} | {pct} | {ns} | {paired} | {} | {} | {} | {} |",
                v.variant.key,
                c(RATE),
                c("rps"),
                c("p99_ms"),
                count_cell(s.metrics.get("errors")),
                count_cell(s.metrics.get("others_on_proxy_cpus_pct")),
            );
        }
        md.push('\n');

        let singles: Vec<&Overhead> = self
            .overheads
            .iter()
            .filter(|o| {
                o.baseline == "ringway-plain"
                    && o.variant != "ringway-all"
                    && self.variants.iter().any(|v| {
                        v.variant.key == o.variant
                            && matches!(v.variant.setup, Setup::Ringway(p)
                                if !p.jwt_uncached
                                    && [p.cors, p.api_key, p.throttle, p.jwt].iter().filter(|x| **x).count() == 1)
                    })
            })
            .collect();
        if let Some(all) = self.overheads.iter().find(|o| o.variant == "ringway-all")
            && singles.len() == 4
        {
            let sum: f64 = singles.iter().map(|o| o.ns_per_request).sum();
            let _ = writeln!(
                md,
                "The four policies alone add {:+.0} ns per request together ({}); all four on one route add {:+.0} ns.\n",
                sum,
                singles
                    .iter()
                    .map(|o| format!(
                        "{} {:+.0}",
                        o.variant.trim_start_matches("ringway-"),
                        o.ns_per_request
                    ))
                    .collect::<Vec<_>>()
                    .join(", "),
                all.ns_per_request
            );
        }

        if !self.versus_nginx.is_empty() {
            md.push_str("## ringway vs nginx\n\n| | ringway | nginx | ringway / nginx |\n|---|---|---|---:|\n");
            for x in &self.versus_nginx {
                let rate = |key: &str| {
                    self.variants
                        .iter()
                        .find(|v| v.variant.key == key)
                        .and_then(VariantResult::rate)
                        .map_or_else(|| "failed".into(), |r| format!("{} ({key})", grouped(r)))
                };
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} |",
                    x.what,
                    rate(x.ringway),
                    rate(x.nginx),
                    x.ratio.map_or_else(|| "—".into(), |r| format!("{r:.2}×"))
                );
            }
            md.push_str(
                "\nnginx has no API keys, usage plans or JWT verification of its own (JWT is in the commercial \
                 NGINX Plus, or needs a module or `auth_request` to another service): its row with policies does \
                 CORS and a per-address request limit only, so it does less than ringway-all.\n\n",
            );
        }

        md.push_str("## What each variant adds to the proxy's configuration\n\n");
        for v in &self.variants {
            let (lang, base) = match v.variant.setup {
                Setup::Ringway(_) => (
                    "toml",
                    "routes `/` and `/{proxy+}` to the origin; these tables on both routes",
                ),
                Setup::Nginx { .. } => (
                    "nginx",
                    "`proxy_pass` with upstream keep-alive; these directives in `http` and `location /`",
                ),
            };
            if v.config.trim().is_empty() {
                let _ = writeln!(md, "- `{}` ({}): nothing", v.variant.key, v.variant.title);
            } else {
                let _ = writeln!(
                    md,
                    "<details><summary><code>{}</code> ({}): {base}</summary>\n\n```{lang}\n{}\n```\n</details>\n",
                    v.variant.key,
                    v.variant.title,
                    v.config.trim_matches('\n')
                );
            }
        }
        md.push('\n');

        for v in &self.variants {
            for f in &v.summary.failures {
                let _ = writeln!(
                    md,
                    "<details><summary>{}: failure</summary>\n\n```\n{}\n```\n</details>\n",
                    v.variant.key,
                    f.trim()
                );
            }
            if !v.summary.notes.is_empty() {
                let _ = writeln!(md, "Notes for {}:\n", v.variant.key);
                for n in &v.summary.notes {
                    let _ = writeln!(md, "- {}", n.replace('\n', " "));
                }
                md.push('\n');
            }
        }
        md
    }
}

/// `+median (min – max)` of a signed quantity, in whole units.
fn signed_spread(s: &Spread) -> String {
    if s.n == 1 || s.min == s.max {
        format!("{:+.0}", s.median)
    } else {
        format!("{:+.0} ({:+.0} – {:+.0})", s.median, s.min, s.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::Metrics;
    use crate::variants;

    fn result(key: &str, rates: &[Option<f64>]) -> VariantResult {
        let variant = variants::all().into_iter().find(|v| v.key == key).unwrap();
        let records = rates
            .iter()
            .enumerate()
            .map(|(run, rate)| RunRecord {
                target: variant.target(),
                run,
                metrics: rate
                    .map(|r| Metrics::from([(RATE.to_string(), r)]))
                    .unwrap_or_default(),
                failure: rate
                    .is_none()
                    .then(|| "3 of 9 responses were not 2xx".into()),
                notes: Vec::new(),
                tls_session: None,
            })
            .collect();
        VariantResult {
            summary: TargetSummary::from_records(variant.target(), records),
            config: String::new(),
            variant,
        }
    }

    #[test]
    fn overhead_is_against_the_plain_variant_of_the_same_proxy() {
        let all = vec![
            result("ringway-plain", &[Some(100_000.0), Some(50_000.0)]),
            result("ringway-jwt", &[Some(50_000.0), Some(40_000.0)]),
            result("nginx-plain", &[Some(80_000.0), Some(80_000.0)]),
            result("nginx-cors-limit", &[Some(64_000.0), Some(64_000.0)]),
        ];
        let o = overheads(&all);
        assert_eq!(o.len(), 2);
        // Medians: plain 75,000, jwt 45,000.
        assert_eq!(
            (o[0].variant, o[0].baseline),
            ("ringway-jwt", "ringway-plain")
        );
        assert!((o[0].ratio - 0.6).abs() < 1e-9);
        assert!((o[0].cpu_per_request_pct - 66.666_666).abs() < 1e-3);
        assert!((o[0].ns_per_request - (1e9 / 45_000.0 - 1e9 / 75_000.0)).abs() < 1e-6);
        // Paired by run: 1e9/50k − 1e9/100k = 10,000; 1e9/40k − 1e9/50k = 5,000.
        let p = o[0].ns_per_request_paired.unwrap();
        assert_eq!((p.min.round(), p.max.round(), p.n), (5_000.0, 10_000.0, 2));
        assert_eq!(o[1].baseline, "nginx-plain");
        assert!((o[1].cpu_per_request_pct - 25.0).abs() < 1e-9);
    }

    #[test]
    fn a_variant_with_one_failed_run_gets_no_figure() {
        let all = vec![
            result("ringway-plain", &[Some(100_000.0), Some(90_000.0)]),
            result("ringway-api-key", &[Some(95_000.0), None]),
            result("ringway-all", &[Some(70_000.0), Some(70_000.0)]),
            result("nginx-cors-limit", &[None, None]),
        ];
        assert!(all[1].failed());
        let o = overheads(&all);
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].variant, "ringway-all");
        let vs = versus_nginx(&all);
        assert_eq!(vs.len(), 1);
        assert_eq!(vs[0].ratio, None);
        let report = PolicyReport {
            date: "d".into(),
            command: "c".into(),
            machine: Machine::describe(None, None),
            pinning: "p".into(),
            quick: true,
            runs: 2,
            duration_s: 1.0,
            warmup_s: 0.5,
            workers: 1,
            load_threads: 1,
            connections: 64,
            response_bytes: 13,
            fields: Vec::new(),
            ringway_source: "s".into(),
            jwt: "j".into(),
            elapsed_s: 1.0,
            overheads: o,
            versus_nginx: vs,
            variants: all,
        };
        let md = report.markdown();
        assert!(
            md.contains("| ringway-api-key | **failed** (1 of 2 runs) |"),
            "{md}"
        );
        assert!(md.contains("| nginx-cors-limit | **failed** (2 of 2 runs) |"));
        assert!(md.contains("3 of 9 responses were not 2xx"));
    }
}
