//! Turning runs into medians with min–max spread, and writing them down as
//! markdown and JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::measure::RunRecord;
use crate::proxy::Target;
use crate::scenario::{Kind, Scenario};
use crate::setup::Machine;

/// Median, min and max of one metric over the runs that produced it.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Spread {
    pub fn of(values: &mut [f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if !n.is_multiple_of(2) {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: values[0],
            max: values[n - 1],
            n,
        })
    }
}

/// One target's results in one scenario.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TargetSummary {
    pub target: Target,
    pub runs: usize,
    pub ok_runs: usize,
    pub metrics: BTreeMap<String, Spread>,
    pub failures: Vec<String>,
    pub notes: Vec<String>,
    pub records: Vec<RunRecord>,
}

impl TargetSummary {
    pub fn from_records(target: Target, records: Vec<RunRecord>) -> TargetSummary {
        let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for r in records.iter().filter(|r| r.failure.is_none()) {
            for (k, v) in &r.metrics {
                values.entry(k.clone()).or_default().push(*v);
            }
        }
        let metrics = values
            .into_iter()
            .filter_map(|(k, mut v)| Spread::of(&mut v).map(|s| (k, s)))
            .collect();
        let mut failures: Vec<String> = records.iter().filter_map(|r| r.failure.clone()).collect();
        failures.dedup();
        let mut notes: Vec<String> = records
            .iter()
            .flat_map(|r| r.notes.iter().cloned())
            .collect();
        notes.sort();
        notes.dedup();
        TargetSummary {
            target,
            runs: records.len(),
            ok_runs: records.iter().filter(|r| r.failure.is_none()).count(),
            metrics,
            failures,
            notes,
            records,
        }
    }

    pub fn median(&self, key: &str) -> Option<f64> {
        self.metrics.get(key).map(|s| s.median)
    }
}

/// One scenario's results.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScenarioSummary {
    pub scenario: Scenario,
    /// The open-loop rate used, if any.
    pub rate: Option<f64>,
    pub rate_basis: Option<String>,
    pub targets: Vec<TargetSummary>,
}

/// The whole report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
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
    pub scope: String,
    pub ringway_source: String,
    /// How TLS was set up for the HTTPS scenarios (None: none ran).
    pub tls_setup: Option<String>,
    /// Per proxy: what a rustls client negotiated, and whether a second
    /// connection resumed.
    pub tls_sessions: Vec<(String, String)>,
    pub elapsed_s: f64,
    pub scenarios: Vec<ScenarioSummary>,
}

/// Formats a number with thousands separators (`35120` → `35,120`).
pub fn grouped(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A value with a sensible number of digits for its size.
fn short(v: f64) -> String {
    if v.abs() >= 1000.0 {
        grouped(v)
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// `median (min–max)`, or the bare value for a single run.
pub fn cell(s: Option<&Spread>) -> String {
    spread_with(s, short)
}

/// Like [`cell`], for counts.
pub fn count_cell(s: Option<&Spread>) -> String {
    spread_with(s, grouped)
}

fn spread_with(s: Option<&Spread>, fmt: fn(f64) -> String) -> String {
    match s {
        None => "—".into(),
        Some(s) if s.n == 1 || s.min == s.max => fmt(s.median),
        Some(s) => format!("{} ({}–{})", fmt(s.median), fmt(s.min), fmt(s.max)),
    }
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let _ = writeln!(
            md,
            "# ringway vs nginx vs HAProxy — end-to-end comparison\n"
        );
        let _ = writeln!(md, "- date: {} (start of the suite)", self.date);
        let _ = writeln!(md, "- command: `{}`", self.command);
        let _ = writeln!(
            md,
            "- machine: {} CPUs, {}, Linux {}",
            m.nproc, m.cpu_model, m.kernel
        );
        let _ = writeln!(
            md,
            "- proxies: ringway ({}), {}, {}",
            self.ringway_source, m.nginx_version, m.haproxy_version
        );
        let _ = writeln!(md, "- pinning: {}", self.pinning);
        let _ = writeln!(
            md,
            "- each run: {:.1} s warm-up (not counted), then {:.1} s measured; {} run(s) per target, interleaved \
             (ringway, nginx, haproxy, direct, ringway, …); cells are `median (min–max)`",
            self.warmup_s, self.duration_s, self.runs
        );
        let _ = writeln!(
            md,
            "- every proxy: {} worker(s), upstream keep-alive on, access log off; one `ringway upstream` origin shared by all; \
             load generator `ringway-load` with {} thread(s)",
            self.workers, self.load_threads
        );
        let _ = writeln!(
            md,
            "- mode: {}",
            if self.quick {
                "--quick (1 run of 2 s per target unless overridden; every scenario kept)"
            } else {
                "full"
            }
        );
        let _ = writeln!(md, "- scope: {}", self.scope);
        if let Some(tls) = &self.tls_setup {
            let _ = writeln!(md, "- TLS: {tls}");
            for (target, session) in &self.tls_sessions {
                let _ = writeln!(md, "  - {target}: {session}");
            }
        }
        let _ = writeln!(md, "- suite took {:.0} s\n", self.elapsed_s);

        md.push_str("## Headline: requests per proxy CPU-second (median)\n\n");
        md.push_str("Higher is better. The proxy's CPU is utime+stime of its whole process tree, read from /proc before and after the measured run.\n\n");
        md.push_str("| scenario | ringway | nginx | haproxy | ringway / nginx | ringway / haproxy |\n|---|---:|---:|---:|---:|---:|\n");
        for s in &self.scenarios {
            let get = |t: Target, key: &str| {
                s.targets
                    .iter()
                    .find(|x| x.target == t)
                    .and_then(|x| x.median(key))
            };
            let (key, unit) = match s.scenario.kind {
                Kind::Load { .. } => ("req_per_cpu_s", ""),
                Kind::Idle { .. } => ("kib_per_conn", " KiB/conn"),
            };
            let v =
                |t| get(t, key).map_or_else(|| "failed".into(), |v| format!("{}{unit}", short(v)));
            let ratio = |t| match (get(Target::Ringway, key), get(t, key)) {
                (Some(a), Some(b)) if b > 0.0 => format!("{a:.2}×", a = a / b),
                _ => "—".into(),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                s.scenario.key,
                v(Target::Ringway),
                v(Target::Nginx),
                v(Target::Haproxy),
                ratio(Target::Nginx),
                ratio(Target::Haproxy)
            );
        }
        if self
            .scenarios
            .iter()
            .any(|s| matches!(s.scenario.kind, Kind::Idle { .. }))
        {
            md.push_str("\n(For `idle-conns` the figure is KiB of proxy RSS per idle connection: lower is better.)\n\n");
        } else {
            md.push('\n');
        }

        for s in &self.scenarios {
            let _ = writeln!(md, "## `{}` — {}\n", s.scenario.key, s.scenario.title);
            match s.scenario.kind {
                Kind::Load { .. } => {
                    if let Some(rate) = s.rate {
                        let _ = writeln!(
                            md,
                            "Fixed rate {} req/s ({}); latency is measured from each request's scheduled send time.\n",
                            grouped(rate),
                            s.rate_basis.as_deref().unwrap_or("")
                        );
                    }
                    md.push_str("| target | req/s | p50 ms | p99 ms | p99.9 ms | proxy CPU-s | req per CPU-s | peak RSS MiB | errors | proxy CPU % | others on its CPU % | others on load CPU % |\n");
                    md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
                    for t in &s.targets {
                        let c = |k: &str| cell(t.metrics.get(k));
                        if t.ok_runs == 0 {
                            let _ = writeln!(
                                md,
                                "| {} | **failed** ({} of {} runs) | | | | | | | | | | |",
                                t.target.name(),
                                t.runs,
                                t.runs
                            );
                            continue;
                        }
                        let name = if t.ok_runs < t.runs {
                            format!("{} ({}/{} runs ok)", t.target.name(), t.ok_runs, t.runs)
                        } else {
                            t.target.name().to_string()
                        };
                        let _ = writeln!(
                            md,
                            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                            c("rps"),
                            c("p50_ms"),
                            c("p99_ms"),
                            c("p99_9_ms"),
                            c("cpu_s"),
                            c("req_per_cpu_s"),
                            c("peak_rss_mib"),
                            count_cell(t.metrics.get("errors")),
                            count_cell(t.metrics.get("proxy_cpu_pct")),
                            count_cell(t.metrics.get("others_on_proxy_cpus_pct")),
                            count_cell(t.metrics.get("others_on_load_cpus_pct"))
                        );
                    }
                    if s.targets
                        .iter()
                        .any(|t| t.metrics.contains_key("handshake_p50_ms"))
                    {
                        md.push_str(
                            "\nWhere the time goes, per request, as the client sees it (each run's p50 / p99, then median over runs): \
                             TCP connect, TLS handshake (ClientHello until the client has the server's Finished and sent its own), \
                             request (GET sent until the response is read).\n\n\
                             | target | connect p50 ms | connect p99 ms | handshake p50 ms | handshake p99 ms | request p50 ms | request p99 ms |\n\
                             |---|---:|---:|---:|---:|---:|---:|\n",
                        );
                        for t in s.targets.iter().filter(|t| t.ok_runs > 0) {
                            let c = |k: &str| cell(t.metrics.get(k));
                            let _ = writeln!(
                                md,
                                "| {} | {} | {} | {} | {} | {} | {} |",
                                t.target.name(),
                                c("connect_p50_ms"),
                                c("connect_p99_ms"),
                                c("handshake_p50_ms"),
                                c("handshake_p99_ms"),
                                c("request_p50_ms"),
                                c("request_p99_ms")
                            );
                        }
                    }
                    body_moves(&mut md, &s.targets);
                    md.push_str(if s.scenario.kind.tls() {
                        "\n`direct` is not measured: the origin speaks plain HTTP. The load generator and the origin share their CPU(s), \
                         so with TLS the client's own handshake work often caps req/s; `req per CPU-s` is the figure to compare. "
                    } else {
                        "\n`direct` is the load generator talking straight to the upstream: the ceiling of this machine, no proxy CPU. "
                    });
                    md.push_str(
                        "`proxy CPU %`: the proxy's CPU time over the wall time of the run; `others on its CPU %`: time the proxy's \
                         pinned CPUs spent on other processes (a busy neighbour, not the proxy, is then what limits req/s); \
                         `others on load CPU %`: the same for the CPU(s) of the load generator and the origins.\n\n",
                    );
                }
                Kind::Idle { connections } => {
                    let _ = writeln!(
                        md,
                        "A helper opens {connections} connections, sends one keep-alive GET on each, reads the response and holds the connection. \
                         RSS is the proxy tree's VmRSS just before they open, 0.3 s after the last one opened (`at 0.3 s`), and once they \
                         have sat idle 7 s (`after`, the headline: how a server holds idle connections for most of their life; ringway parks \
                         plain HTTP/1.1 connections idle past `keepalive_park`, 5 s by default). Peak RSS is the high-water mark over the whole run.\n"
                    );
                    md.push_str("| target | connections held | RSS before MiB | RSS after MiB | KiB per connection | KiB per connection at 0.3 s | peak RSS MiB |\n");
                    md.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
                    for t in s.targets.iter().filter(|t| t.target != Target::Direct) {
                        let c = |k: &str| cell(t.metrics.get(k));
                        if t.ok_runs == 0 {
                            let _ = writeln!(md, "| {} | **failed** | | | | | |", t.target.name());
                            continue;
                        }
                        let _ = writeln!(
                            md,
                            "| {} | {} | {} | {} | {} | {} | {} |",
                            t.target.name(),
                            count_cell(t.metrics.get("idle_conns")),
                            c("rss_before_mib"),
                            c("rss_after_mib"),
                            c("kib_per_conn"),
                            c("kib_per_conn_fresh"),
                            c("peak_rss_mib")
                        );
                    }
                    md.push('\n');
                }
            }
            for t in &s.targets {
                for f in &t.failures {
                    let _ = writeln!(
                        md,
                        "<details><summary>{}: failure</summary>\n\n```\n{}\n```\n</details>\n",
                        t.target.name(),
                        f.trim()
                    );
                }
                if !t.notes.is_empty() {
                    let _ = writeln!(md, "Notes for {}:\n", t.target.name());
                    for n in &t.notes {
                        let _ = writeln!(md, "- {}", n.replace('\n', " "));
                    }
                    md.push('\n');
                }
            }
        }
        md
    }
}

/// For scenarios with bodies past a few KiB, or where io_uring's kernel
/// workers ran: how each proxy moved the body bytes (ringway says how many
/// it spliced; the rest it copied) and the CPU io-wq's threads took.
fn body_moves(md: &mut String, targets: &[TargetSummary]) {
    let big = |t: &TargetSummary| t.median("body_kib_per_req").is_some_and(|k| k >= 4.0);
    let io_wq = |t: &TargetSummary| t.median("io_worker_cpu_s").is_some_and(|c| c > 0.0);
    let shown: Vec<&TargetSummary> = targets
        .iter()
        .filter(|t| t.ok_runs > 0 && t.target != Target::Direct)
        .collect();
    if !shown.iter().any(|t| big(t) || io_wq(t)) {
        return;
    }
    md.push_str(
        "\nBody bytes per request (request and response bodies), how many of them ringway moved with splice(2) \
         (its `ringway_spliced_bytes_total`; the rest were copied through its buffers), and the CPU of io_uring's \
         kernel worker threads (`iou-wrk-*`, `iou-sqp-*`) within the proxy's CPU:\n\n\
         | target | body KiB per request | spliced KiB per request | copied KiB per request | io_uring worker CPU-s | of the proxy's CPU % |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    for t in shown {
        let body = t.median("body_kib_per_req");
        let spliced = t.median("spliced_kib_per_req");
        let kib = |v: Option<f64>| v.map_or_else(|| "—".to_string(), |v| format!("{v:.1}"));
        let copied = match (body, spliced) {
            (Some(b), Some(sp)) => kib(Some((b - sp).max(0.0))),
            _ => "—".to_string(),
        };
        let io = t.median("io_worker_cpu_s");
        let share = match (io, t.median("cpu_s")) {
            (Some(i), Some(c)) if c > 0.0 => format!("{:.1}", i / c * 100.0),
            _ => "—".to_string(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {copied} | {} | {share} |",
            t.target.name(),
            kib(body),
            kib(spliced),
            io.map_or_else(|| "—".to_string(), |v| format!("{v:.2}")),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_median_min_max() {
        let s = Spread::of(&mut [3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        let s = Spread::of(&mut [4.0, 1.0]).unwrap();
        assert_eq!(s.median, 2.5);
        assert!(Spread::of(&mut []).is_none());
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(grouped(1234567.4), "1,234,567");
        assert_eq!(grouped(999.0), "999");
        assert_eq!(short(0.456), "0.46");
        assert_eq!(short(12.34), "12.3");
        let s = Spread {
            median: 2.0,
            min: 1.0,
            max: 3.0,
            n: 3,
        };
        assert_eq!(cell(Some(&s)), "2.00 (1.00–3.00)");
        assert_eq!(cell(None), "—");
    }

    fn summary(target: Target, metrics: &[(&str, f64)]) -> TargetSummary {
        let record = RunRecord {
            target,
            run: 0,
            metrics: metrics.iter().map(|&(k, v)| (k.to_string(), v)).collect(),
            failure: None,
            notes: Vec::new(),
            tls_session: None,
        };
        TargetSummary::from_records(target, vec![record])
    }

    /// The spliced/copied table shows for large bodies, with copied bytes
    /// as body minus spliced and io-wq's share of the CPU; small GETs
    /// without io-wq CPU get none.
    #[test]
    fn body_moves_say_spliced_copied_and_io_wq_cpu() {
        let post = [
            summary(
                Target::Ringway,
                &[
                    ("body_kib_per_req", 1024.0),
                    ("spliced_kib_per_req", 1000.0),
                    ("io_worker_cpu_s", 0.5),
                    ("cpu_s", 2.0),
                ],
            ),
            summary(
                Target::Nginx,
                &[
                    ("body_kib_per_req", 1024.0),
                    ("io_worker_cpu_s", 0.0),
                    ("cpu_s", 4.0),
                ],
            ),
        ];
        let mut md = String::new();
        body_moves(&mut md, &post);
        assert!(
            md.contains("| ringway | 1024.0 | 1000.0 | 24.0 | 0.50 | 25.0 |"),
            "{md}"
        );
        assert!(
            md.contains("| nginx | 1024.0 | — | — | 0.00 | 0.0 |"),
            "{md}"
        );
        let small = [summary(
            Target::Ringway,
            &[("body_kib_per_req", 0.01), ("io_worker_cpu_s", 0.0)],
        )];
        let mut md = String::new();
        body_moves(&mut md, &small);
        assert!(md.is_empty(), "{md}");
    }
}
