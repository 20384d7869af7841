//! `ringway-bench compare`: how does ringway compare with nginx and HAProxy
//! on this machine? Starts one fast upstream, then each proxy configured the
//! same way, loads them with `ringway-load` in interleaved repeated runs, and
//! writes `bench/results/latest.{md,json,svg}`.
//!
//! `ringway-bench loadgen`: ringway-load's requests per generator
//! CPU-second next to wrk (and oha), against a plain nginx origin, in
//! interleaved pairs. Writes `bench/results/loadgen.{md,json}`.
//!
//! `ringway-bench policies`: what do CORS, API keys, throttles and JWT cost
//! per request, alone and together, and how does that compare with nginx
//! doing CORS and `limit_req`? Writes `bench/results/policies.{md,json}`.

mod failover;
mod h2load;
mod idle;
mod jwt;
mod loadgen;
mod measure;
mod origin;
mod plot;
mod policies;
mod policy_report;
mod process;
mod proxy;
mod redis;
mod report;
mod scenario;
mod setup;
mod suite;
mod syscalls;
mod tls;
mod variants;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};

use measure::{Bench, RunRecord};
use proxy::{Policies, Programs, Target};
use report::{Report, ScenarioSummary, TargetSummary};
use scenario::Kind;
use suite::{Pinning, Scratch, Timing};

/// Open-loop rate when no closed-loop rate is known.
const OPEN_LOOP_FALLBACK_RATE: f64 = 5000.0;
/// Upper bound on `--idle-conns`.
const MAX_IDLE_CONNECTIONS: usize = 100_000;

#[derive(Debug, Parser)]
#[command(name = "ringway-bench", about = "ringway end-to-end benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compare ringway with nginx and HAProxy (and the direct path) on this machine.
    Compare(CompareArgs),
    /// The cost of CORS, API key, throttle and JWT policies, against the
    /// plain proxy and against nginx with CORS fields and limit_req.
    Policies(policies::PoliciesArgs),
    /// ringway-load's requests per generator CPU-second next to wrk (and
    /// oha), against one nginx origin, in interleaved pairs.
    Loadgen(loadgen::LoadgenArgs),
}

#[derive(Debug, clap::Args)]
struct CompareArgs {
    /// About 2 minutes: 1 run of 2 s per target and scenario (all scenarios).
    #[arg(long)]
    quick: bool,
    /// Runs per target and scenario (default 3; 1 with --quick).
    #[arg(long)]
    runs: Option<usize>,
    /// Measured duration of each run (default 5s; 2s with --quick).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Warm-up before each measured run, not counted (default 1s; 500ms with --quick).
    #[arg(long, value_parser = parse_duration)]
    warmup: Option<Duration>,
    /// Workers (threads / processes) of every proxy.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Threads of the load generator.
    #[arg(long, default_value_t = 1)]
    load_threads: usize,
    /// Do not pin: let the kernel place proxies, upstream and load generator.
    #[arg(long)]
    no_pin: bool,
    /// Open-loop rate in requests/s (default: 50% of the slowest get-64 run of any proxy).
    #[arg(long)]
    rate: Option<f64>,
    /// Idle connections parked on each proxy in the idle-conns scenario.
    #[arg(long, default_value_t = 10_000)]
    idle_conns: usize,
    /// Only these targets (comma separated: ringway,nginx,haproxy,direct).
    #[arg(long, value_delimiter = ',')]
    targets: Option<Vec<String>>,
    /// Only these scenarios (comma separated keys, e.g. get-64,idle-conns;
    /// `failover` runs only when named, and writes failover.md).
    #[arg(long, value_delimiter = ',')]
    scenarios: Option<Vec<String>>,
    /// Where latest.{md,json,svg} go.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results"))]
    out_dir: PathBuf,
    /// File name stem of the report: NAME.md, NAME.json and NAME.svg.
    #[arg(long, default_value = "latest", value_name = "NAME")]
    report_name: String,
    /// Also count each proxy's system calls per request, by name, during
    /// the measured runs (`perf stat` on syscall tracepoints; needs perf
    /// and root) and write NAME-syscalls.md.
    #[arg(long)]
    syscalls: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, scale) = if let Some(ms) = s.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(sec) = s.strip_suffix('s') {
        (sec, 1.0)
    } else {
        (s, 1.0)
    };
    num.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| Duration::from_secs_f64(v * scale))
        .ok_or_else(|| format!("'{s}' is not a duration like 5s or 500ms"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Compare(args) => compare(args),
        Command::Policies(args) => policies::run(args),
        Command::Loadgen(args) => loadgen::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringway-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn compare(mut args: CompareArgs) -> Result<()> {
    // `failover` runs apart from the other scenarios (its own timeline and
    // report, bench/results/failover.md), and only when asked for.
    if let Some(only) = &mut args.scenarios
        && only.iter().any(|s| s == "failover")
    {
        only.retain(|s| s != "failover");
        let rest = only.len();
        run_failover(&args)?;
        if rest == 0 {
            return Ok(());
        }
    }
    let started = Instant::now();
    let start_date = setup::utc_now();
    let default = Timing::defaults(args.quick, 3);
    let Timing {
        runs,
        duration,
        warmup,
    } = Timing::resolve(args.runs, args.duration, args.warmup, default)?;
    if args.workers == 0 || args.load_threads == 0 {
        bail!("--workers and --load-threads must be at least 1");
    }
    suite::check_report_name(&args.report_name)?;
    if args.idle_conns == 0 || args.idle_conns > MAX_IDLE_CONNECTIONS {
        bail!("--idle-conns must be 1..={MAX_IDLE_CONNECTIONS}");
    }
    if let Some(r) = args.rate
        && !(r.is_finite() && r > 0.0)
    {
        bail!("--rate must be a positive number of requests per second");
    }

    let mut targets = vec![
        Target::Ringway,
        Target::Nginx,
        Target::Haproxy,
        Target::Direct,
    ];
    if let Some(only) = &args.targets {
        for name in only {
            if !targets.iter().any(|t| t.name() == name) {
                bail!("--targets: unknown target '{name}' (ringway, nginx, haproxy, direct)");
            }
        }
        targets.retain(|t| only.iter().any(|n| n == t.name()));
    }
    let mut scenarios = scenario::all(args.idle_conns);
    if let Some(only) = &args.scenarios {
        for key in only {
            if !scenarios.iter().any(|s| s.key == key) {
                let keys: Vec<_> = scenarios.iter().map(|s| s.key).collect();
                bail!(
                    "--scenarios: unknown scenario '{key}' ({})",
                    keys.join(", ")
                );
            }
        }
        scenarios.retain(|s| only.iter().any(|k| k == s.key));
    }

    process::install_stop_handler();
    let nofile = setup::raise_nofile();
    eprintln!("bench: RLIMIT_NOFILE {nofile}");
    if (nofile as usize) < args.idle_conns + 1000
        && scenarios
            .iter()
            .any(|s| matches!(s.kind, Kind::Idle { .. }))
    {
        eprintln!(
            "bench: warning: RLIMIT_NOFILE {nofile} is low for {} idle connections",
            args.idle_conns
        );
    }
    let (ringway, load) = setup::ringway_binaries()?;
    let nginx = if targets.contains(&Target::Nginx) {
        setup::ensure_program("nginx")
            .map_err(|e| eprintln!("bench: {e:#}; nginx will be reported as failed"))
            .ok()
    } else {
        None
    };
    let haproxy = if targets.contains(&Target::Haproxy) {
        setup::ensure_program("haproxy")
            .map_err(|e| eprintln!("bench: {e:#}; haproxy will be reported as failed"))
            .ok()
    } else {
        None
    };
    let h2load = if scenarios.iter().any(|s| s.kind.h2()) {
        setup::ensure_program("h2load").map_err(|e| {
            eprintln!("bench: {e:#}; the HTTP/2 scenarios will fail");
            format!("{e:#}")
        })
    } else {
        Err("no HTTP/2 scenario selected".to_string())
    };
    let machine = setup::Machine::describe(nginx.as_deref(), haproxy.as_deref());
    let ringway_source = setup::ringway_source(&ringway);

    let Pinning {
        proxy_cpus,
        load_cpus,
        text: pinning,
    } = Pinning::plan(args.workers, args.no_pin);
    eprintln!("bench: pinning: {pinning}");

    let scratch = Scratch::create(&ringway, &load)?;
    let (tls, tls_error) = if scenarios.iter().any(|s| s.kind.tls()) {
        match tls::Material::generate(&scratch.dir.join("tls")) {
            Ok(m) => (Some(m), None),
            Err(e) => {
                eprintln!("bench: {e:#}; the HTTPS scenarios will fail");
                (None, Some(format!("{e:#}")))
            }
        }
    } else {
        (None, None)
    };
    let h2_setup = if scenarios.iter().any(|s| s.kind.h2()) {
        let version = h2load
            .as_ref()
            .ok()
            .and_then(|p| std::process::Command::new(p).arg("--version").output().ok())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "h2load not available".into());
        format!(
            ". HTTP/2 scenarios (`h2-*`): ringway adds `alpn = [\"h2\", \"http/1.1\"]` to the listener; nginx `listen … ssl http2` \
             (`http2 on;` from nginx 1.25.1), default h2 settings; haproxy `alpn h2,http/1.1`, default h2 settings. \
             Load: `h2load -c C -m STREAMS -D DURATION --npn-list=h2` ({version}; OpenSSL, ALPN h2 only, certificate not verified), \
             latency percentiles from its per-request log (`--log-file`), errors = h2load's `failed` (4xx/5xx, reset or lost streams) plus 3xx"
        )
    } else {
        String::new()
    };
    let tls_setup = tls.as_ref().map(|m| {
        format!(
            "{}; ringway `listen = [{{ addr, tls = {{ cert, key }} }}]`; nginx `listen … ssl`, `ssl_certificate`/`ssl_certificate_key`, \
             `ssl_protocols TLSv1.2 TLSv1.3`, default ciphers and session settings (TLS 1.3 tickets on, no shared cache); \
             haproxy `bind … ssl crt <cert+key> alpn http/1.1`, default ciphers and session settings. \
             Load: `ringway-load https://… --insecure` (rustls with ring, default suites and groups, ALPN http/1.1, \
             certificate not verified but the handshake signature is; it keeps session tickets and resumes with them), \
             and for `https-full-handshake` the bench's own blocking rustls client (same settings, resumption off, one thread per connection){h2_setup}",
            m.description
        )
    });
    let post_body_file = scratch.dir.join("post-body.bin");
    std::fs::write(&post_body_file, vec![b'x'; scenario::POST_BYTES])?;

    let origins = origin::Origins::start(
        &scratch.gateway,
        &scratch.dir.join("origin"),
        &[
            scenario::SMALL_RESPONSE_BYTES,
            scenario::LARGE_RESPONSE_BYTES,
        ],
        &load_cpus,
    )?;
    eprintln!("bench: origins on {}", origins.describe());

    let bench = Bench {
        programs: Programs {
            ringway: scratch.gateway.clone(),
            nginx,
            haproxy,
        },
        load: scratch.load.clone(),
        work_dir: scratch.dir.join("runs"),
        workers: args.workers,
        load_threads: args.load_threads,
        proxy_cpus,
        load_cpus,
        duration,
        warmup,
        origins,
        post_body_file: Some(post_body_file),
        tls,
        tls_error,
        count_syscalls: args.syscalls,
        h2load,
    };

    let plain = Policies::default();
    let mut summaries = Vec::new();
    let mut seq = 0;
    let mut closed_loop_floor: Option<(f64, String)> = None;
    for sc in &scenarios {
        let (rate, rate_basis) = match sc.kind {
            // The share of the slowest closed-loop get-64 run of any proxy:
            // at 50% every proxy keeps up even when a neighbour takes half of
            // its CPU; 80% shows the tail when the proxy is busier.
            Kind::Load {
                open_loop: Some(share),
                ..
            } => match (args.rate, &closed_loop_floor) {
                (Some(r), _) => (Some(r), Some("set with --rate".to_string())),
                (None, Some((r, who))) => (
                    Some((r * share).round()),
                    Some(format!(
                        "{:.0}% of the slowest get-64 run of any proxy, {who}",
                        share * 100.0
                    )),
                ),
                (None, None) => (
                    Some(OPEN_LOOP_FALLBACK_RATE),
                    Some("fixed fallback: no get-64 rate measured".into()),
                ),
            },
            _ => (None, None),
        };
        let mut records: Vec<(Target, Vec<RunRecord>)> =
            targets.iter().map(|&t| (t, Vec::new())).collect();
        {
            for run in 0..runs {
                for (target, recs) in &mut records {
                    if !sc.kind.measures_direct() && *target == Target::Direct {
                        continue;
                    }
                    seq += 1;
                    eprint!(
                        "bench: [{:>4.0}s] {} run {}/{} {:<8} ",
                        started.elapsed().as_secs_f64(),
                        sc.key,
                        run + 1,
                        runs,
                        target.name()
                    );
                    let r = bench.run(&sc.kind, rate, *target, &plain, run, seq);
                    eprintln!("{}", one_line(&r));
                    if process::stop_requested() {
                        bail!("stopped by signal; every child stopped, no results written");
                    }
                    recs.push(r);
                }
            }
        }
        let targets_summary: Vec<TargetSummary> = records
            .into_iter()
            .filter(|(t, recs)| {
                !(!sc.kind.measures_direct() && *t == Target::Direct && recs.is_empty())
            })
            .map(|(t, recs)| TargetSummary::from_records(t, recs))
            .collect();
        if sc.key == "get-64" {
            closed_loop_floor = targets_summary
                .iter()
                .filter(|t| t.target != Target::Direct)
                .filter_map(|t| t.metrics.get("rps").map(|r| (r.min, t.target.name())))
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(r, name)| (r, format!("{name} at {r:.0} req/s")));
        }
        summaries.push(ScenarioSummary {
            scenario: sc.clone(),
            rate,
            rate_basis,
            targets: targets_summary,
        });
    }

    let all_keys: Vec<&str> = scenario::all(args.idle_conns)
        .iter()
        .map(|s| s.key)
        .collect();
    let ran: Vec<&str> = scenarios.iter().map(|s| s.key).collect();
    let scope = if ran.len() == all_keys.len() && targets.len() == 4 {
        format!("all scenarios ({}) and all targets", ran.join(", "))
    } else {
        let names: Vec<_> = targets.iter().map(|t| t.name()).collect();
        format!(
            "scenarios {} of {}; targets {}",
            ran.join(", "),
            all_keys.join(", "),
            names.join(", ")
        )
    };
    let command = suite::command_line();
    let tls_sessions: Vec<(String, String)> = targets
        .iter()
        .filter_map(|&t| {
            summaries
                .iter()
                .flat_map(|s| s.targets.iter().filter(move |x| x.target == t))
                .flat_map(|x| x.records.iter())
                .find_map(|r| r.tls_session.clone())
                .map(|s| (t.name().to_string(), s))
        })
        .collect();
    let report = Report {
        tls_setup,
        tls_sessions,
        date: start_date,
        command,
        machine,
        pinning,
        quick: args.quick,
        runs,
        duration_s: duration.as_secs_f64(),
        warmup_s: warmup.as_secs_f64(),
        workers: args.workers,
        load_threads: args.load_threads,
        scope,
        ringway_source,
        elapsed_s: started.elapsed().as_secs_f64(),
        scenarios: summaries,
    };
    let md = report.markdown();
    let json = serde_json::to_string_pretty(&report)? + "\n";
    let name = &args.report_name;
    if args.syscalls {
        let header = format!(
            "{}. `{}`. {}. Pinning: {}. Median over {runs} run(s) of {:.0} s per proxy and scenario, \
             {} worker(s) per proxy; calls counted by `perf stat` on the kernel's syscall tracepoints over the \
             proxy's whole process tree during the measured run, divided by the requests it completed. \
             `other` is every call not named in a column.",
            report.date,
            report.command,
            format_args!(
                "{} CPUs, {}, Linux {}",
                report.machine.nproc, report.machine.cpu_model, report.machine.kernel
            ),
            report.pinning,
            duration.as_secs_f64(),
            args.workers
        );
        let table = syscalls::markdown(&report.scenarios, &header);
        suite::write_reports(
            &args.out_dir,
            &format!("{name}-syscalls"),
            &[("md", &table)],
        )?;
        println!("{table}");
    }
    suite::write_reports(
        &args.out_dir,
        name,
        &[("md", &md), ("json", &json), ("svg", &plot::plot(&report))],
    )?;
    println!("{md}");
    eprintln!(
        "bench: wrote {}/{name}.{{md,json,svg}} in {:.0} s",
        args.out_dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The `failover` scenario (see `failover.rs`).
fn run_failover(args: &CompareArgs) -> Result<()> {
    process::install_stop_handler();
    let (ringway, load) = setup::ringway_binaries()?;
    let found = |name: &str| {
        setup::ensure_program(name)
            .map_err(|e| eprintln!("bench: {e:#}; {name} will be reported as failed"))
            .ok()
    };
    let dir = std::env::temp_dir().join(format!("ringway-bench-failover-{}", std::process::id()));
    let paths = failover::Paths {
        ringway,
        load,
        nginx: found("nginx"),
        haproxy: found("haproxy"),
        dir: dir.clone(),
        out_dir: args.out_dir.clone(),
    };
    let result = failover::run(&paths);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// A progress line for one run.
fn one_line(r: &RunRecord) -> String {
    if let Some(f) = &r.failure {
        return format!("FAILED: {}", f.lines().next().unwrap_or(""));
    }
    let g = |k: &str| r.metrics.get(k).copied().unwrap_or(f64::NAN);
    let mut s = if r.metrics.contains_key("kib_per_conn") {
        format!(
            "{:.0} conns, {:.2} KiB/conn",
            g("idle_conns"),
            g("kib_per_conn")
        )
    } else {
        format!(
            "{:>8.0} req/s  p99 {:>7.2} ms  cpu {:>5.2} s  {:>8.0} req/cpu-s",
            g("rps"),
            g("p99_ms"),
            g("cpu_s"),
            g("req_per_cpu_s")
        )
    };
    if !r.notes.is_empty() {
        s.push_str(&format!("  [{}]", r.notes.join("; ").replace('\n', " ")));
    }
    s
}
