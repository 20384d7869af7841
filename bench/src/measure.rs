//! One run: start a proxy, load it (or park idle connections on it), read
//! its CPU and memory from /proc, stop it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::idle;
use crate::origin::Origins;
use crate::process::{self, Guard};
use crate::proxy::{self, Policies, Programs, Setup, Target};
use crate::scenario::{Kind, Tls};
use crate::scenario::{LARGE_RESPONSE_BYTES, SMALL_RESPONSE_BYTES};
use crate::tls::Material;

/// The load generator gets this long past its own duration before it is killed.
const LOAD_GRACE: Duration = Duration::from_secs(30);
/// Time for connections to settle before RSS is read.
const SETTLE: Duration = Duration::from_millis(300);
/// Opening the idle connections may take at most this long.
const PARK_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the idle connections sit before the proxy's RSS is read for the
/// headline figure (a first reading is taken `SETTLE` after they opened).
const IDLE_AGE: Duration = Duration::from_secs(7);
/// An open-loop run this far behind its schedule gets a note.
const BEHIND_NOTE_MS: f64 = 100.0;
/// Attempts per run when a run is interrupted from outside.
const MAX_ATTEMPTS: usize = 3;

/// A run spoiled by something outside the suite (a process of the run was
/// sent a stop signal by someone else, or the origin died): it is retried.
#[derive(Debug)]
struct Interrupted(String);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted from outside: {}", self.0)
    }
}

impl std::error::Error for Interrupted {}

/// Fails the run as a proxy crash, or as an interruption when the process
/// was stopped by a signal the suite did not send.
fn died(
    target: Target,
    when: &str,
    status: std::process::ExitStatus,
    log_tail: String,
) -> anyhow::Error {
    if process::stopped_from_outside(status) {
        anyhow::Error::new(Interrupted(format!(
            "{} stopped {when} ({status})\n{log_tail}",
            target.name()
        )))
    } else {
        anyhow::anyhow!("{} died {when} ({status})\n{log_tail}", target.name())
    }
}

/// Named measurements of one run (`rps`, `p99_ms`, `req_per_cpu_s`, ...).
pub type Metrics = BTreeMap<String, f64>;

/// What one run produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRecord {
    pub target: Target,
    pub run: usize,
    /// Empty when the run failed.
    pub metrics: Metrics,
    /// Why the run produced no numbers (start failure, crash, ...), with the
    /// tail of the proxy's log.
    pub failure: Option<String>,
    /// Things worth knowing about a run that did produce numbers.
    pub notes: Vec<String>,
    /// HTTPS runs (the first of each target): what a rustls client
    /// negotiates with the proxy, and whether a second connection resumes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_session: Option<String>,
}

/// Everything a run needs besides the scenario.
pub struct Bench {
    pub programs: Programs,
    pub load: PathBuf,
    pub work_dir: PathBuf,
    pub workers: usize,
    pub load_threads: usize,
    pub proxy_cpus: Vec<usize>,
    pub load_cpus: Vec<usize>,
    pub duration: Duration,
    pub warmup: Duration,
    pub origins: Origins,
    /// The body of the POST scenarios (None: no POST scenario runs).
    pub post_body_file: Option<PathBuf>,
    /// The certificate for the HTTPS scenarios (None: could not be made).
    pub tls: Option<Material>,
    /// Why `tls` is None.
    pub tls_error: Option<String>,
    /// Count the proxy's system calls during each measured run (`perf stat`).
    pub count_syscalls: bool,
    /// `h2load` for the HTTP/2 scenarios (Err: why it is missing).
    pub h2load: Result<PathBuf, String>,
}

/// Load-scenario parameters resolved for a run.
pub struct LoadSpec<'a> {
    pub connections: usize,
    pub keepalive: bool,
    pub post: bool,
    pub large_responses: bool,
    pub rate: Option<f64>,
    pub tls: Tls,
    /// What the proxy does besides forwarding; every request carries its fields.
    pub policies: &'a Policies,
}

impl Bench {
    /// Runs `kind` once against `target` set up with `policies`; failures
    /// become a record, never an error, so the suite goes on. A run
    /// interrupted from outside is tried again (at most [`MAX_ATTEMPTS`]
    /// times).
    pub fn run(
        &self,
        kind: &Kind,
        rate: Option<f64>,
        target: Target,
        policies: &Policies,
        run: usize,
        seq: usize,
    ) -> RunRecord {
        let mut interruptions = Vec::new();
        for attempt in 1..=MAX_ATTEMPTS {
            let tag = format!("{seq:03}-{attempt}");
            let mut record = self.run_once(kind, rate, target, policies, run, &tag);
            let interrupted = record
                .failure
                .as_ref()
                .is_some_and(|f| f.starts_with("interrupted from outside"))
                && !process::stop_requested();
            if interrupted && attempt < MAX_ATTEMPTS {
                let why = record.failure.take().unwrap_or_default();
                eprint!("(retrying: {}) ", why.lines().next().unwrap_or(""));
                interruptions.push(why.lines().next().unwrap_or("").to_string());
                continue;
            }
            for i in interruptions {
                record
                    .notes
                    .push(format!("an earlier attempt was discarded: {i}"));
            }
            return record;
        }
        unreachable!("the last attempt always returns")
    }

    fn run_once(
        &self,
        kind: &Kind,
        rate: Option<f64>,
        target: Target,
        policies: &Policies,
        run: usize,
        tag: &str,
    ) -> RunRecord {
        let short = if target == Target::Ringway {
            "rw"
        } else {
            target.name()
        };
        let dir = if policies.label.is_empty() {
            self.work_dir.join(format!("{tag}-{short}"))
        } else {
            self.work_dir
                .join(format!("{tag}-{short}-{}", policies.label))
        };
        let mut record = RunRecord {
            target,
            run,
            metrics: Metrics::new(),
            failure: None,
            notes: Vec::new(),
            tls_session: None,
        };
        let result = match kind {
            Kind::Load {
                connections,
                keepalive,
                post_bytes,
                large_responses,
                open_loop,
                tls,
            } => {
                let spec = LoadSpec {
                    tls: *tls,
                    connections: *connections,
                    keepalive: *keepalive,
                    post: post_bytes.is_some(),
                    large_responses: *large_responses,
                    rate: if open_loop.is_some() { rate } else { None },
                    policies,
                };
                self.run_load(&spec, target, &dir, &mut record)
            }
            Kind::Idle { connections } => {
                self.run_idle(*connections, target, policies, &dir, &mut record)
            }
        };
        if let Err(e) = result {
            record.metrics.clear();
            record.failure = Some(match e.downcast_ref::<Interrupted>() {
                Some(i) => i.to_string(),
                None => format!("{e:#}"),
            });
        }
        record
    }

    fn run_load(
        &self,
        spec: &LoadSpec,
        target: Target,
        dir: &Path,
        record: &mut RunRecord,
    ) -> Result<()> {
        let body = if spec.large_responses {
            LARGE_RESPONSE_BYTES
        } else {
            SMALL_RESPONSE_BYTES
        };
        let upstream = self.origins.addr(body)?;
        let tls = if spec.tls == Tls::Off {
            None
        } else {
            Some(self.tls.as_ref().with_context(|| {
                format!(
                    "no certificate for the HTTPS scenarios: {}",
                    self.tls_error.as_deref().unwrap_or("?")
                )
            })?)
        };
        let h2 = matches!(spec.tls, Tls::H2load { .. });
        let setup = Setup {
            upstream,
            workers: self.workers,
            cpus: &self.proxy_cpus,
            tls,
            h2,
            policies: spec.policies,
        };
        let mut running = proxy::start(target, &self.programs, dir, &setup)?;
        std::fs::create_dir_all(dir)?;
        for check in &spec.policies.checks {
            check.verify(running.addr)?;
        }
        // The HTTP/2 runs record what h2load negotiated instead (below).
        if tls.is_some() && !h2 && record.run == 0 {
            record.tls_session = Some(
                crate::tls::probe(running.addr).unwrap_or_else(|e| format!("probe failed: {e:#}")),
            );
        }
        let counters_setup = running.admin.map(scrape_counters);
        if !self.warmup.is_zero() {
            // A separate warm-up invocation, so the CPU counted below is
            // exactly the CPU of the measured requests.
            if let Err(e) = self.load_once(spec, running.addr, self.warmup, dir, "warmup") {
                record.notes.push(format!("warm-up: {e:#}"));
            }
        }
        let counters_warm = running.admin.map(scrape_counters);
        let pid = running.guard.as_ref().map(Guard::pid);
        let cpu_before = pid.map(process::tree_cpu_seconds);
        let io_workers_before = pid.map(process::io_worker_ticks);
        let busy_before = process::cpus_busy_seconds(&self.proxy_cpus);
        let load_busy_before = process::cpus_busy_seconds(&self.load_cpus);
        let ours_before = process::reaped_children_cpu_seconds()
            + self.origins.cpu_seconds()
            + process::own_cpu_seconds();
        let counter = match (self.count_syscalls, pid) {
            (true, Some(p)) => Some(crate::syscalls::Counter::start(&process::tree(p), dir)?),
            _ => None,
        };
        let wall = Instant::now();
        let report = self.load_once(spec, running.addr, self.duration, dir, "load");
        let syscalls = counter.map(crate::syscalls::Counter::stop).transpose()?;
        let cpu_after = pid.map(process::tree_cpu_seconds);
        let io_workers_after = pid.map(process::io_worker_ticks);
        let busy_after = process::cpus_busy_seconds(&self.proxy_cpus);
        let load_busy_after = process::cpus_busy_seconds(&self.load_cpus);
        let ours_after = process::reaped_children_cpu_seconds()
            + self.origins.cpu_seconds()
            + process::own_cpu_seconds();
        let wall = wall.elapsed().as_secs_f64();
        let hwm_kib = pid.map(|p| process::tree_status_kib(p, "VmHWM"));
        let counters_end = running.admin.map(scrape_counters);
        if let Some(g) = running.guard.as_mut()
            && let Some(status) = g.exit_status()
        {
            return Err(died(target, "during the run", status, g.log_tail()));
        }
        if !self.origins.all_alive() {
            return Err(Interrupted("the origin died during the run".into()).into());
        }
        let report = report?;
        let m = &mut record.metrics;
        let num = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
        let requests = num(&report["requests"]);
        m.insert("requests".into(), requests);
        for (name, count) in syscalls.iter().flatten() {
            m.insert(crate::syscalls::key(name), count / requests.max(1.0));
        }
        m.insert("rps".into(), num(&report["rps"]));
        let lat = &report["latency_us"];
        m.insert("p50_ms".into(), num(&lat["p50"]) / 1e3);
        m.insert("p99_ms".into(), num(&lat["p99"]) / 1e3);
        m.insert("p99_9_ms".into(), num(&lat["p99_9"]) / 1e3);
        let errors = num(&report["errors"]["total"]);
        let non_2xx: f64 = report["status"]
            .as_object()
            .map(|s| {
                s.iter()
                    .filter(|(code, _)| !code.starts_with('2'))
                    .map(|(_, n)| num(n))
                    .sum()
            })
            .unwrap_or(0.0);
        m.insert("errors".into(), errors + non_2xx);
        if errors > 0.0 {
            let kinds: Vec<String> = report["errors"]
                .as_object()
                .map(|e| {
                    e.iter()
                        .filter(|(k, n)| *k != "total" && num(n) > 0.0)
                        .map(|(k, n)| format!("{k} {}", num(n)))
                        .collect()
                })
                .unwrap_or_default();
            record
                .notes
                .push(format!("load generator errors: {}", kinds.join(", ")));
            if let Some(first) = report["first_error"].as_str() {
                record.notes.push(format!("first client error: {first}"));
            }
        }
        // The full-handshake client times the TCP connect, the handshake
        // and the request apart.
        if let Some(phases) = report["phases_us"].as_object() {
            for (phase, q) in phases {
                for p in ["p50", "p99"] {
                    if let Some(v) = q[p].as_f64() {
                        m.insert(format!("{phase}_{p}_ms"), v / 1e3);
                    }
                }
            }
        }
        if let Some(session) = report["session"].as_str() {
            if record.run == 0 {
                record.tls_session = Some(session.to_string());
            }
            record.notes.push(format!("negotiated: {session}"));
        }
        if let Some(resumed) = report["resumed"].as_f64()
            && resumed > 0.0
        {
            record.notes.push(format!(
                "{resumed} handshakes were resumptions although the client offers no session"
            ));
        }
        if non_2xx > 0.0 {
            record
                .notes
                .push(format!("non-2xx responses: {}", report["status"]));
        }
        if let Some(behind) = report["behind_schedule_ms"].as_f64()
            && behind > 0.0
        {
            m.insert("behind_schedule_ms".into(), behind);
        }
        if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
            let cpu = after - before;
            m.insert("cpu_s".into(), cpu);
            // How much of the time the proxy ran, and how much of its CPUs
            // went to other work (other processes, other sessions' builds):
            // a busy neighbour explains a low req/s better than the proxy.
            m.insert("proxy_cpu_pct".into(), cpu / wall * 100.0);
            if let (Some(b0), Some(b1)) = (busy_before, busy_after) {
                let capacity = wall * self.proxy_cpus.len() as f64;
                m.insert(
                    "others_on_proxy_cpus_pct".into(),
                    ((b1 - b0 - cpu) / capacity * 100.0).max(0.0),
                );
            }
            if cpu > 0.0 {
                m.insert("req_per_cpu_s".into(), requests / cpu);
            }
            // Of that CPU, what io_uring's kernel worker threads took (#20:
            // io_uring splice requests were punted to io-wq).
            if let (Some(b), Some(a)) = (&io_workers_before, &io_workers_after) {
                m.insert(
                    "io_worker_cpu_s".into(),
                    process::io_worker_cpu_seconds(b, a),
                );
            }
        }
        // Body bytes a request moves through the proxy (request and
        // response), to put the bytes ringway spliced against.
        let body_bytes = if spec.post { self.post_body_bytes() } else { 0 } + body as u64;
        m.insert("body_kib_per_req".into(), body_bytes as f64 / 1024.0);
        // The same for the CPUs of the load generator and the origins.
        if let (Some(b0), Some(b1)) = (load_busy_before, load_busy_after) {
            let capacity = wall * self.load_cpus.len() as f64;
            let ours = ours_after - ours_before;
            m.insert(
                "others_on_load_cpus_pct".into(),
                ((b1 - b0 - ours) / capacity * 100.0).max(0.0),
            );
        }
        if let Some(behind) = m.get("behind_schedule_ms").copied()
            && behind > BEHIND_NOTE_MS
        {
            record.notes.push(format!(
                "open loop fell {behind:.0} ms behind its schedule: the rate was not sustained in this run"
            ));
        }
        if let Some(kib) = hwm_kib {
            m.insert("peak_rss_mib".into(), kib as f64 / 1024.0);
        }
        if let (Some(a), Some(b), Some(c)) = (counters_setup, counters_warm, counters_end) {
            match (a, b, c) {
                (Ok(a), Ok(b), Ok(c)) => {
                    let get = |m: &BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
                    let spliced = get(&c, "ringway_spliced_bytes_total")
                        - get(&b, "ringway_spliced_bytes_total");
                    if requests > 0.0 {
                        m.insert("spliced_kib_per_req".into(), spliced / requests / 1024.0);
                    }
                    for (metric, key, what) in [
                        (
                            "ringway_tls_handshake_failures_total",
                            "tls_handshake_failures",
                            "failed or timed-out TLS handshakes",
                        ),
                        (
                            "ringway_connection_panics_total",
                            "connection_panics",
                            "connection tasks that panicked",
                        ),
                    ] {
                        let (setup, warm, end) =
                            (get(&a, metric), get(&b, metric), get(&c, metric));
                        m.insert(key.into(), end - warm);
                        if end > 0.0 {
                            // ringway-load stops at its deadline with the
                            // connections still in their handshake open, and
                            // closes them: at most one per connection and
                            // invocation (warm-up and measured run; the
                            // warm-up's may be counted after the scrape
                            // between them, when ringway gets to them late).
                            let cut_off = key == "tls_handshake_failures"
                                && spec.tls == Tls::RingwayLoad
                                && !spec.keepalive
                                && end - setup <= 2.0 * spec.connections as f64;
                            let why = if cut_off {
                                " — together at most one per connection for each of the two ringway-load invocations: \
                                 the handshakes ringway-load cuts off when its duration ends (see bench/README.md)"
                            } else {
                                ""
                            };
                            record.notes.push(format!(
                                "ringway /metrics `{metric}` ({what}): {setup} by the end of start-up (readiness check, TLS probe), \
                                 {} in the warm-up, {} in the measured run{why}",
                                warm - setup,
                                end - warm
                            ));
                        }
                    }
                }
                (a, b, c) => {
                    for e in [a.err(), b.err(), c.err()].into_iter().flatten() {
                        record
                            .notes
                            .push(format!("ringway /metrics could not be read: {e:#}"));
                    }
                }
            }
        }
        if let Some(mut g) = running.guard.take() {
            match g.stop() {
                None => record.notes.push(format!(
                    "{} did not exit within 3 s of SIGTERM (killed)",
                    target.name()
                )),
                Some(s) if !process::stopped_from_outside(s) => record
                    .notes
                    .push(format!("{} exited with {s} after SIGTERM", target.name())),
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Bytes of the POST scenarios' request body.
    fn post_body_bytes(&self) -> u64 {
        self.post_body_file
            .as_ref()
            .and_then(|f| std::fs::metadata(f).ok())
            .map_or(0, |m| m.len())
    }

    /// One ringway-load invocation (or, for full handshakes, the bench's own
    /// client); returns its JSON report.
    fn load_once(
        &self,
        spec: &LoadSpec,
        addr: SocketAddr,
        duration: Duration,
        dir: &Path,
        tag: &str,
    ) -> Result<serde_json::Value> {
        if !addr.ip().is_loopback() {
            bail!("only loopback targets: {addr}");
        }
        if spec.tls == Tls::FullHandshakes {
            let report =
                crate::tls::full_handshake_load(addr, spec.connections, duration, &self.load_cpus)?;
            let _ = std::fs::write(
                dir.join(format!("{tag}.json")),
                serde_json::to_string_pretty(&report).unwrap_or_default(),
            );
            return Ok(report);
        }
        if let Tls::H2load { streams } = spec.tls {
            return self.h2load_once(spec, streams, addr, duration, dir, tag);
        }
        let json = dir.join(format!("{tag}.json"));
        let log = dir.join(format!("{tag}.log"));
        let mut cmd = Command::new(&self.load);
        let scheme = if spec.tls == Tls::Off {
            "http"
        } else {
            "https"
        };
        cmd.arg(format!("{scheme}://{addr}/"))
            .arg("-c")
            .arg(spec.connections.to_string())
            .arg("-d")
            .arg(format!("{}ms", duration.as_millis()))
            .arg("-t")
            .arg(self.load_threads.to_string())
            .arg("--json")
            .arg(&json);
        for field in &spec.policies.fields {
            cmd.arg("-H").arg(field);
        }
        if spec.policies.spread_keys > 0 {
            let mix = dir.join(format!("{tag}.mix"));
            let lines: String = (0..spec.policies.spread_keys)
                .map(|i| format!("GET / X-Client:k{i}\n"))
                .collect();
            std::fs::write(&mix, lines).with_context(|| format!("writing {}", mix.display()))?;
            cmd.arg("--mix").arg(&mix);
        }
        if let Some(rate) = spec.rate {
            cmd.arg("--rate").arg(format!("{rate:.0}"));
        }
        if spec.post {
            let body = self
                .post_body_file
                .as_ref()
                .context("no POST body file was written")?;
            cmd.arg("-m").arg("POST").arg("--body-file").arg(body);
        }
        if !spec.keepalive {
            cmd.arg("--no-keepalive");
        }
        if spec.tls != Tls::Off {
            // The certificate is self-signed; the handshake is complete
            // (the server signs, the client checks the signature).
            cmd.arg("--insecure");
        }
        process::prepare(&mut cmd, &self.load_cpus, &log)?;
        run_client("ringway-load", cmd, &log, duration)?;
        let text = std::fs::read_to_string(&json)
            .with_context(|| format!("ringway-load wrote no {}", json.display()))?;
        serde_json::from_str(&text).context("ringway-load JSON does not parse")
    }

    /// One h2load invocation (HTTP/2 over TLS, ALPN h2); returns a report
    /// shaped like ringway-load's JSON.
    fn h2load_once(
        &self,
        spec: &LoadSpec,
        streams: usize,
        addr: SocketAddr,
        duration: Duration,
        dir: &Path,
        tag: &str,
    ) -> Result<serde_json::Value> {
        let program = self
            .h2load
            .as_ref()
            .map_err(|e| anyhow::anyhow!("h2load is not available: {e}"))?;
        let log = dir.join(format!("{tag}.log"));
        let requests = dir.join(format!("{tag}.requests.tsv"));
        let body = if spec.post {
            Some(
                self.post_body_file
                    .as_deref()
                    .context("no POST body file was written")?,
            )
        } else {
            None
        };
        let mut cmd = crate::h2load::command(
            program,
            &crate::h2load::Spec {
                addr,
                connections: spec.connections,
                streams,
                threads: self.load_threads,
                duration,
                body,
                log_file: &requests,
            },
        );
        for field in &spec.policies.fields {
            cmd.arg("-H").arg(field);
        }
        process::prepare(&mut cmd, &self.load_cpus, &log)?;
        run_client("h2load", cmd, &log, duration)?;
        let text = std::fs::read_to_string(&log)
            .with_context(|| format!("cannot read {}", log.display()))?;
        let summary = crate::h2load::parse(&text)
            .with_context(|| format!("h2load output:\n{}", process::log_tail(&log)))?;
        crate::h2load::check(&summary)?;
        // The per-request log is large (a row per request); only the
        // latencies are kept.
        let rows = std::fs::read_to_string(&requests)
            .with_context(|| format!("h2load wrote no {}", requests.display()))?;
        let _ = std::fs::remove_file(&requests);
        let (latencies, _) = crate::h2load::read_log(&rows);
        let report = crate::h2load::report(&summary, latencies);
        let _ = std::fs::write(
            dir.join(format!("{tag}.json")),
            serde_json::to_string_pretty(&report).unwrap_or_default(),
        );
        Ok(report)
    }

    fn run_idle(
        &self,
        count: usize,
        target: Target,
        policies: &Policies,
        dir: &Path,
        record: &mut RunRecord,
    ) -> Result<()> {
        if target == Target::Direct {
            bail!("not measured (the upstream is shared)");
        }
        let upstream = self.origins.addr(SMALL_RESPONSE_BYTES)?;
        let setup = Setup {
            upstream,
            workers: self.workers,
            cpus: &self.proxy_cpus,
            tls: None,
            h2: false,
            policies,
        };
        let mut running = proxy::start(target, &self.programs, dir, &setup)?;
        let pid = running
            .guard
            .as_ref()
            .map(Guard::pid)
            .context("no proxy process")?;
        std::thread::sleep(SETTLE);
        let before = process::tree_status_kib(pid, "VmRSS");
        let parked = idle::park(running.addr, count, Instant::now() + PARK_TIMEOUT);
        let opened = Instant::now();
        std::thread::sleep(SETTLE);
        let fresh = process::tree_status_kib(pid, "VmRSS");
        // Idle connections as a server holds them for most of their life:
        // after they have sat idle a while (ringway parks plain ones idle
        // past `keepalive_park`, 5 s by default, and returns the freed pages
        // once it has served nothing for 2 s). The same wait for every proxy.
        std::thread::sleep(IDLE_AGE.saturating_sub(opened.elapsed()));
        let after = process::tree_status_kib(pid, "VmRSS");
        let hwm = process::tree_status_kib(pid, "VmHWM");
        if let Some(g) = running.guard.as_mut()
            && let Some(status) = g.exit_status()
        {
            return Err(died(
                target,
                "while connections were opened",
                status,
                g.log_tail(),
            ));
        }
        let held = parked.conns.len();
        if parked.failures > 0 {
            record.notes.push(format!(
                "{} of {count} connections failed (first: {})",
                parked.failures,
                parked.first_error.as_deref().unwrap_or("?")
            ));
        }
        if held == 0 {
            bail!(
                "no idle connection could be opened: {}",
                parked.first_error.unwrap_or_default()
            );
        }
        let m = &mut record.metrics;
        m.insert("idle_conns".into(), held as f64);
        m.insert("rss_before_mib".into(), before as f64 / 1024.0);
        m.insert("rss_after_mib".into(), after as f64 / 1024.0);
        m.insert(
            "kib_per_conn_fresh".into(),
            (fresh as f64 - before as f64) / held as f64,
        );
        m.insert("peak_rss_mib".into(), hwm as f64 / 1024.0);
        m.insert(
            "kib_per_conn".into(),
            (after as f64 - before as f64) / held as f64,
        );
        drop(parked);
        if let Some(mut g) = running.guard.take()
            && g.stop().is_none()
        {
            record.notes.push(format!(
                "{} did not exit within 3 s of SIGTERM (killed)",
                target.name()
            ));
        }
        Ok(())
    }
}

/// Runs a load client (`cmd`, prepared to log to `log`) to its end; it
/// gets [`LOAD_GRACE`] past `duration`. An error carries the log's tail.
fn run_client(name: &str, cmd: Command, log: &Path, duration: Duration) -> Result<()> {
    let mut guard = Guard::spawn(name, cmd, log.to_path_buf())?;
    let deadline = Instant::now() + duration + LOAD_GRACE;
    let status = loop {
        if let Some(s) = guard.exit_status() {
            break s;
        }
        if process::stop_requested() {
            bail!("stopped by signal");
        }
        if Instant::now() >= deadline {
            bail!(
                "{name} did not finish in {:?}\n{}",
                duration + LOAD_GRACE,
                guard.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if !status.success() {
        if process::stopped_from_outside(status) {
            return Err(Interrupted(format!("{name} stopped ({status})")).into());
        }
        bail!("{name} failed ({status})\n{}", guard.log_tail());
    }
    Ok(())
}

/// Counters (lines without labels, summed per name) from ringway's admin
/// `/metrics`.
fn scrape_counters(admin: SocketAddr) -> Result<BTreeMap<String, f64>> {
    let (status, body) = idle::get_text(admin, "/metrics")?;
    if status != 200 {
        bail!("/metrics answered {status}");
    }
    let mut out = BTreeMap::new();
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = name.split('{').next().unwrap_or(name).trim();
        if let Ok(v) = value.trim().parse::<f64>() {
            *out.entry(name.to_string()).or_insert(0.0) += v;
        }
    }
    Ok(out)
}
