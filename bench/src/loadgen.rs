//! `ringway-bench loadgen`: how much does ringway-load's own CPU cost per
//! request, next to wrk (and oha, when installed)? One plain nginx origin
//! (one worker, `return 200`) pinned to one CPU; every generator gets one
//! thread pinned to another. Each scenario runs in interleaved pairs
//! (ringway-load then wrk, the next pair the other way round), and the
//! figure is requests per generator CPU-second: the generator's utime +
//! stime from /proc, read from its zombie before it is reaped, so exactly
//! its whole life is counted. Writes `bench/results/loadgen.{md,json}`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use crate::process::{self, Guard};
use crate::setup;

/// The origin's response body (nginx `return 200`).
const BODY: &str = "hello, ringway\n";
/// A generator gets this long past its duration before it is killed.
const GRACE: Duration = Duration::from_secs(30);
/// How long nginx may take to answer its first request.
const START_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub struct LoadgenArgs {
    /// Interleaved pairs per scenario (each runs every tool once).
    #[arg(long, default_value_t = 5)]
    pairs: usize,
    /// Length of each run.
    #[arg(long, value_parser = crate::parse_duration, default_value = "5s")]
    duration: Duration,
    /// Only these scenarios (comma separated: ka-64, ka-256, close-64).
    #[arg(long, value_delimiter = ',')]
    scenarios: Option<Vec<String>>,
    /// Extra ringway-load options for every ringway-load run (e.g. "--pipeline=1").
    #[arg(long, allow_hyphen_values = true, value_name = "ARGS")]
    load_args: Option<String>,
    /// The oha binary (default: `oha` on PATH or in ~/.cargo/bin; skipped if absent).
    #[arg(long)]
    oha: Option<PathBuf>,
    /// Also run this other ringway-load build (e.g. of the previous commit)
    /// in every pair, as "baseline", to measure a change.
    #[arg(long, value_name = "BINARY")]
    baseline: Option<PathBuf>,
    /// Also run ringway-load with `--pipeline K` in the keep-alive scenarios
    /// (reported apart: wrk and oha do not pipeline).
    #[arg(long, value_name = "K")]
    pipeline: Option<usize>,
    /// Where NAME.md and NAME.json go.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results"))]
    out_dir: PathBuf,
    /// File name stem of the report.
    #[arg(long, default_value = "loadgen", value_name = "NAME")]
    report_name: String,
}

/// One comparison setting.
#[derive(Debug, Clone, Copy)]
struct Scenario {
    key: &'static str,
    connections: usize,
    keepalive: bool,
}

const SCENARIOS: [Scenario; 3] = [
    Scenario {
        key: "ka-64",
        connections: 64,
        keepalive: true,
    },
    Scenario {
        key: "ka-256",
        connections: 256,
        keepalive: true,
    },
    Scenario {
        key: "close-64",
        connections: 64,
        keepalive: false,
    },
];

/// A load generator under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    RingwayLoad,
    /// ringway-load with `--pipeline K`.
    Pipelined,
    Baseline,
    Wrk,
    Oha,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::RingwayLoad => "ringway-load",
            Tool::Pipelined => "ringway-load --pipeline",
            Tool::Baseline => "baseline",
            Tool::Wrk => "wrk",
            Tool::Oha => "oha",
        }
    }
}

/// One run of one tool.
#[derive(Debug, Clone, serde::Serialize)]
struct Run {
    tool: &'static str,
    pair: usize,
    requests: f64,
    wall_s: f64,
    rps: f64,
    cpu_s: f64,
    req_per_cpu_s: f64,
    /// Load average of the machine (1 min) when the run ended.
    loadavg: f64,
}

struct Programs {
    load: PathBuf,
    pipeline: Option<usize>,
    baseline: Option<PathBuf>,
    wrk: PathBuf,
    oha: Option<PathBuf>,
}

pub fn run(args: LoadgenArgs) -> Result<()> {
    let started = Instant::now();
    let date = setup::utc_now();
    if args.pipeline.is_some_and(|k| !(2..=1024).contains(&k)) {
        bail!("--pipeline must be 2..=1024");
    }
    if args.pairs == 0 || args.pairs > 50 {
        bail!("--pairs must be 1..=50");
    }
    if args.duration.is_zero() || args.duration > Duration::from_secs(600) {
        bail!("--duration must be over 0 and at most 600s");
    }
    crate::suite::check_report_name(&args.report_name)?;
    let mut scenarios = SCENARIOS.to_vec();
    if let Some(only) = &args.scenarios {
        for key in only {
            if !SCENARIOS.iter().any(|s| s.key == key) {
                bail!("--scenarios: unknown scenario '{key}' (ka-64, ka-256, close-64)");
            }
        }
        scenarios.retain(|s| only.iter().any(|k| k == s.key));
    }
    process::install_stop_handler();
    setup::raise_nofile();
    let nginx = setup::ensure_program("nginx")?;
    let programs = Programs {
        load: setup::load_binary()?,
        pipeline: args.pipeline,
        baseline: args.baseline.clone(),
        wrk: setup::ensure_program("wrk")?,
        oha: args.oha.clone().or_else(find_oha),
    };
    let nproc = setup::cpu_count();
    let (origin_cpus, load_cpus): (Vec<usize>, Vec<usize>) = if nproc >= 2 {
        (vec![0], vec![1])
    } else {
        (Vec::new(), Vec::new())
    };
    let pinning = if nproc >= 2 {
        "nginx on CPU 0, the generator on CPU 1 (sched_setaffinity before exec)".to_string()
    } else {
        "off (fewer than 2 CPUs)".to_string()
    };
    let dir = std::env::temp_dir().join(format!("rwbench-lg-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = (|| {
        let (mut origin, addr) = start_nginx(&nginx, &dir, &origin_cpus)?;
        let mut tools = vec![Tool::RingwayLoad, Tool::Wrk];
        if programs.baseline.is_some() {
            tools.insert(1, Tool::Baseline);
        }
        if programs.oha.is_some() {
            tools.push(Tool::Oha);
        }
        let extra: Vec<String> = args
            .load_args
            .as_deref()
            .map(|a| a.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        let mut results = Vec::new();
        for sc in &scenarios {
            let mut runs = Vec::new();
            for pair in 0..args.pairs {
                let mut order = tools.clone();
                if programs.pipeline.is_some() && sc.keepalive {
                    order.insert(1, Tool::Pipelined);
                }
                if pair % 2 == 1 {
                    order.reverse();
                }
                for tool in order {
                    if process::stop_requested() {
                        bail!("stopped by signal");
                    }
                    if let Some(status) = origin.exit_status() {
                        bail!("nginx died ({status})\n{}", origin.log_tail());
                    }
                    eprint!(
                        "bench: [{:>4.0}s] {} pair {}/{} {:<12} ",
                        started.elapsed().as_secs_f64(),
                        sc.key,
                        pair + 1,
                        args.pairs,
                        tool.name()
                    );
                    let r = run_tool(
                        tool,
                        &programs,
                        sc,
                        addr,
                        args.duration,
                        &load_cpus,
                        &dir,
                        pair,
                        &extra,
                    )?;
                    eprintln!(
                        "{:>9.0} req/s  cpu {:>5.2} s  {:>8.0} req/cpu-s  load {:.1}",
                        r.rps, r.cpu_s, r.req_per_cpu_s, r.loadavg
                    );
                    runs.push(r);
                }
            }
            results.push((*sc, runs));
        }
        Ok(results)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let results = result?;
    let nginx_version = Command::new(&nginx)
        .arg("-v")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
        .unwrap_or_default();
    let wrk_version = Command::new(&programs.wrk)
        .arg("-v")
        .output()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).to_string()
                + &String::from_utf8_lossy(&o.stderr);
            text.lines().next().unwrap_or("").trim().to_string()
        })
        .unwrap_or_default();
    let oha_version = programs.oha.as_ref().map(|p| {
        Command::new(p)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    });
    let machine = setup::Machine::describe(Some(&nginx), None);
    let meta = Meta {
        date,
        command: crate::suite::command_line(),
        machine: format!(
            "{} CPUs ({}), Linux {}",
            machine.nproc, machine.cpu_model, machine.kernel
        ),
        versions: format!(
            "{nginx_version}; {wrk_version}; {}",
            oha_version.unwrap_or_else(|| "oha not installed".into())
        ),
        pinning,
        pairs: args.pairs,
        duration_s: args.duration.as_secs_f64(),
        pipeline: args.pipeline,
        load_args: args.load_args.clone().unwrap_or_default(),
        elapsed_s: started.elapsed().as_secs_f64(),
    };
    let (md, json) = (markdown(&meta, &results), to_json(&meta, &results));
    let files = [
        ("md", md),
        ("json", serde_json::to_string_pretty(&json)? + "\n"),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(e, t)| (*e, t.as_str())).collect();
    crate::suite::write_reports(&args.out_dir, &args.report_name, &files)?;
    print!("{}", files[0].1);
    let name = args.out_dir.join(&args.report_name);
    eprintln!("bench: wrote {}.md and .json", name.display());
    Ok(())
}

fn find_oha() -> Option<PathBuf> {
    setup::find_program("oha").or_else(|| {
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
        let p = home.join("bin/oha");
        p.is_file().then_some(p)
    })
}

/// Starts nginx with one worker answering every request with [`BODY`].
fn start_nginx(nginx: &Path, dir: &Path, cpus: &[usize]) -> Result<(Guard, SocketAddr)> {
    let port = crate::proxy::free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let d = dir.display();
    let conf = format!(
        r#"# written by ringway-bench loadgen
user root;
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 65536;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
    worker_connections 16384;
}}
http {{
    access_log off;
    keepalive_timeout 60s;
    keepalive_requests 1000000;
    client_body_temp_path {d}/client_body;
    server {{
        listen {addr} backlog=4096;
        location / {{
            return 200 "{}";
        }}
    }}
}}
"#,
        BODY.replace('\n', "\\n")
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    let mut cmd = Command::new(nginx);
    cmd.arg("-c").arg(&conf_path).arg("-p").arg(dir);
    process::prepare(&mut cmd, cpus, &dir.join("nginx.log"))?;
    let mut guard = Guard::spawn("nginx", cmd, dir.join("nginx.log"))?;
    if let Err(e) = crate::idle::wait_ready(
        addr,
        START_TIMEOUT,
        &mut || guard.exit_status().is_none(),
        None,
        &[],
    ) {
        bail!("nginx failed to start: {e:#}\n{}", guard.log_tail());
    }
    Ok((guard, addr))
}

/// Runs one tool once and measures it.
#[allow(clippy::too_many_arguments)]
fn run_tool(
    tool: Tool,
    programs: &Programs,
    sc: &Scenario,
    addr: SocketAddr,
    duration: Duration,
    cpus: &[usize],
    dir: &Path,
    pair: usize,
    extra: &[String],
) -> Result<Run> {
    let url = format!("http://{addr}/");
    let secs = format!("{}s", duration.as_secs().max(1));
    let conns = sc.connections.to_string();
    let json = dir.join(format!("{}-{}-{pair}.json", sc.key, tool.name()));
    let log = dir.join(format!("{}-{}-{pair}.log", sc.key, tool.name()));
    let mut cmd = match tool {
        Tool::RingwayLoad | Tool::Pipelined | Tool::Baseline => {
            let program = match tool {
                Tool::Baseline => programs.baseline.as_ref().context("no baseline")?,
                _ => &programs.load,
            };
            let mut c = Command::new(program);
            c.arg(&url)
                .args(["-c", &conns, "-d", &secs, "-t", "1", "--json"])
                .arg(&json);
            if tool == Tool::RingwayLoad {
                c.args(extra);
            }
            if let (Tool::Pipelined, Some(k)) = (tool, programs.pipeline) {
                c.args(["--pipeline", &k.to_string()]);
            }
            if !sc.keepalive {
                c.arg("--no-keepalive");
            }
            c
        }
        Tool::Wrk => {
            let mut c = Command::new(&programs.wrk);
            c.args(["-c", &conns, "-d", &secs, "-t", "1"]);
            if !sc.keepalive {
                c.args(["-H", "Connection: close"]);
            }
            c.arg(&url);
            c
        }
        Tool::Oha => {
            let mut c = Command::new(programs.oha.as_ref().context("no oha")?);
            c.args([
                "-z",
                &secs,
                "-c",
                &conns,
                "--worker-threads",
                "1",
                "--no-tui",
                "--output-format",
                "json",
            ]);
            if !sc.keepalive {
                c.arg("--disable-keepalive");
            }
            c.arg(&url);
            c
        }
    };
    process::prepare(&mut cmd, cpus, &log)?;
    let wall = Instant::now();
    let mut guard = Guard::spawn(tool.name(), cmd, log.clone())?;
    let pid = guard.pid();
    let deadline = wall + duration + GRACE;
    // Wait for the exit without reaping, so /proc still has its CPU times.
    loop {
        if exited_unreaped(pid) {
            break;
        }
        if process::stop_requested() {
            bail!("stopped by signal");
        }
        if Instant::now() >= deadline {
            bail!("{} did not finish\n{}", tool.name(), guard.log_tail());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let wall_s = wall.elapsed().as_secs_f64();
    let cpu_s = process::tree_cpu_seconds(pid);
    let status = guard.stop();
    if !status.is_some_and(|s| s.success()) {
        bail!("{} failed ({status:?})\n{}", tool.name(), guard.log_tail());
    }
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let (requests, rps) = match tool {
        Tool::RingwayLoad | Tool::Pipelined | Tool::Baseline => {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&json)?)
                .context("ringway-load JSON")?;
            (
                v["requests"].as_f64().unwrap_or(0.0),
                v["rps"].as_f64().unwrap_or(0.0),
            )
        }
        Tool::Wrk => parse_wrk(&output).with_context(|| format!("wrk output: {output}"))?,
        Tool::Oha => parse_oha(&output).with_context(|| format!("oha output: {output}"))?,
    };
    Ok(Run {
        tool: tool.name(),
        pair,
        requests,
        wall_s,
        rps,
        cpu_s,
        req_per_cpu_s: if cpu_s > 0.0 { requests / cpu_s } else { 0.0 },
        loadavg: loadavg(),
    })
}

/// True once `pid` has exited; it stays a zombie (not reaped).
fn exited_unreaped(pid: u32) -> bool {
    // SAFETY: waitid fills a local siginfo_t; WNOWAIT leaves the child waitable.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let r = libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        r == 0 && info.si_pid() != 0
    }
}

fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// `N requests in 5.00s` and `Requests/sec: X` from wrk's summary.
fn parse_wrk(out: &str) -> Result<(f64, f64)> {
    let requests = out
        .lines()
        .find_map(|l| {
            let l = l.trim();
            let (n, rest) = l.split_once(' ')?;
            rest.starts_with("requests in")
                .then(|| n.parse::<f64>().ok())?
        })
        .context("no 'requests in' line")?;
    let rps = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:")?.trim().parse().ok())
        .context("no 'Requests/sec:' line")?;
    Ok((requests, rps))
}

/// Completed requests (all status codes) and req/s from oha's JSON.
fn parse_oha(out: &str) -> Result<(f64, f64)> {
    let start = out.find('{').context("no JSON")?;
    let v: Value = serde_json::from_str(&out[start..]).context("oha JSON")?;
    let requests: f64 = v["statusCodeDistribution"]
        .as_object()
        .context("no statusCodeDistribution")?
        .values()
        .filter_map(Value::as_f64)
        .sum();
    let rps = v["summary"]["requestsPerSec"].as_f64().unwrap_or(0.0);
    Ok((requests, rps))
}

struct Meta {
    date: String,
    command: String,
    machine: String,
    versions: String,
    pinning: String,
    pairs: usize,
    duration_s: f64,
    pipeline: Option<usize>,
    load_args: String,
    elapsed_s: f64,
}

/// Median, min, max.
fn spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (median, v[0], v[n - 1])
}

fn of(runs: &[Run], tool: &str, pick: fn(&Run) -> f64) -> Vec<f64> {
    runs.iter().filter(|r| r.tool == tool).map(pick).collect()
}

/// Per pair: `mine`'s req/CPU-s over `other`'s.
fn pair_ratios(runs: &[Run], other: &str, mine: &str) -> Vec<f64> {
    let mine = of(runs, mine, |r| r.req_per_cpu_s);
    let theirs = of(runs, other, |r| r.req_per_cpu_s);
    mine.iter()
        .zip(&theirs)
        .filter(|(_, t)| **t > 0.0)
        .map(|(m, t)| m / t)
        .collect()
}

fn markdown(meta: &Meta, results: &[(Scenario, Vec<Run>)]) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# ringway-load vs wrk: requests per generator CPU-second\n"
    );
    let _ = writeln!(
        md,
        "{}. `{}`. {}. {}. Pinning: {}. {} interleaved pairs of {:.0} s per scenario \
         (ringway-load first in odd pairs, last in even ones); every generator runs one thread. \
         Origin: nginx, one worker, `return 200 \"hello, ringway\\n\"`, `access_log off`.{}\n",
        meta.date,
        meta.command,
        meta.machine,
        meta.versions,
        meta.pinning,
        meta.pairs,
        meta.duration_s,
        if meta.load_args.is_empty() {
            String::new()
        } else {
            format!(" Extra ringway-load options: `{}`.", meta.load_args)
        } + &meta.pipeline.map_or(String::new(), |k| format!(
            " The keep-alive scenarios also run ringway-load with `--pipeline {k}` \
             (not like for like: wrk and oha send one request at a time per connection)."
        ))
    );
    let _ = writeln!(
        md,
        "CPU is the generator's own utime + stime from `/proc/PID/stat`, read when it has exited \
         and before it is reaped. The machine is shared (other sessions build and benchmark on it; \
         the load average is in the JSON), so req/s is noisy; the ratio within a pair is the figure.\n"
    );
    let _ = writeln!(
        md,
        "| scenario | tool | median req/s | median req/CPU-s (min–max) | ringway-load ÷ tool, per pair: median (min–max) |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|");
    for (sc, runs) in results {
        let mut tools: Vec<&str> = Vec::new();
        for r in runs {
            if !tools.contains(&r.tool) {
                tools.push(r.tool);
            }
        }
        for tool in tools {
            let (rps, _, _) = spread(of(runs, tool, |r| r.rps));
            let (c, cmin, cmax) = spread(of(runs, tool, |r| r.req_per_cpu_s));
            let ratio = if tool == "ringway-load" {
                "—".to_string()
            } else if tool == Tool::Pipelined.name() {
                let (m, lo, hi) = spread(pair_ratios(runs, "wrk", tool));
                format!("wrk: **{m:.2}×** ({lo:.2}–{hi:.2}) for the pipelined run ÷ wrk")
            } else {
                let (m, lo, hi) = spread(pair_ratios(runs, tool, "ringway-load"));
                format!("**{m:.2}×** ({lo:.2}–{hi:.2})")
            };
            let _ = writeln!(
                md,
                "| {} | {tool} | {rps:.0} | {c:.0} ({cmin:.0}–{cmax:.0}) | {ratio} |",
                sc.key
            );
        }
    }
    let _ = writeln!(
        md,
        "\nScenarios: `ka-64` and `ka-256` are keep-alive with 64 and 256 connections; `close-64` \
         is 64 connections with a new connection per request (ringway-load `--no-keepalive`, \
         wrk `-H 'Connection: close'`, oha `--disable-keepalive`). Suite time {:.0} s.",
        meta.elapsed_s
    );
    md
}

fn to_json(meta: &Meta, results: &[(Scenario, Vec<Run>)]) -> Value {
    json!({
        "date": meta.date,
        "command": meta.command,
        "machine": meta.machine,
        "versions": meta.versions,
        "pinning": meta.pinning,
        "pairs": meta.pairs,
        "duration_s": meta.duration_s,
        "pipeline": meta.pipeline,
        "load_args": meta.load_args,
        "scenarios": results.iter().map(|(sc, runs)| {
            let ratio = |other: &str| {
                let v = pair_ratios(runs, other, "ringway-load");
                let (m, lo, hi) = spread(v.clone());
                json!({"median": m, "min": lo, "max": hi, "pairs": v})
            };
            json!({
                "key": sc.key,
                "connections": sc.connections,
                "keepalive": sc.keepalive,
                "runs": runs,
                "ratio_req_per_cpu_s_vs_wrk": ratio("wrk"),
                "ratio_pipelined_vs_wrk_req_per_cpu_s": if runs.iter().any(|r| r.tool == Tool::Pipelined.name()) {
                    let v = pair_ratios(runs, "wrk", Tool::Pipelined.name());
                    let (m, lo, hi) = spread(v.clone());
                    json!({"median": m, "min": lo, "max": hi, "pairs": v})
                } else { Value::Null },
                "ratio_req_per_cpu_s_vs_oha": if runs.iter().any(|r| r.tool == "oha") { ratio("oha") } else { Value::Null },
            })
        }).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_summary() {
        let out = "Running 5s test @ http://127.0.0.1:1/\n  1 threads and 64 connections\n  \
                   336455 requests in 5.00s, 51.34MB read\nRequests/sec:  67283.10\nTransfer/sec:     10.27MB\n";
        assert_eq!(parse_wrk(out).unwrap(), (336_455.0, 67_283.10));
        assert!(parse_wrk("nothing").is_err());
    }

    #[test]
    fn parses_oha_json() {
        let out =
            r#"{"summary":{"requestsPerSec":100.5},"statusCodeDistribution":{"200":90,"503":10}}"#;
        assert_eq!(parse_oha(out).unwrap(), (100.0, 100.5));
    }

    #[test]
    fn spreads() {
        assert_eq!(spread(vec![3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
        assert_eq!(spread(vec![1.0, 2.0]), (1.5, 1.0, 2.0));
    }
}
