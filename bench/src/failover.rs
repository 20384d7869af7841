//! `ringway-bench compare --scenarios failover`: three upstream targets,
//! one killed (SIGKILL) at t = 2 s of a 10 s run and started again on the
//! same port at t = 6 s, behind ringway, nginx and HAProxy each configured
//! to route around failure as well as it can:
//!
//! - ringway: active checks (`interval = "1s"`, 2 to go down or up),
//!   passive ejection (3 failures), 3 attempts on connect/reset/502/503/504;
//! - nginx: `max_fails=1 fail_timeout=5s` (passive; no active checks in open
//!   source nginx), `proxy_next_upstream error timeout http_502 http_503
//!   http_504`, `proxy_next_upstream_tries 3`;
//! - HAProxy: `check inter 1s fall 2 rise 2`, `observe layer7 error-limit 3
//!   on-error mark-down`, `retries 3`, `retry-on conn-failure empty-response
//!   response-timeout 502 503 504`, `option redispatch 1`.
//!
//! The load is the bench's own closed loop of blocking keep-alive clients,
//! so every answer is seen: per second, requests, client errors (non-200
//! answers and failed connections) and p99. Then ringway alone, every
//! target up, once per `balance` algorithm: requests per ringway
//! CPU-second under `ringway-load`. Writes `bench/results/failover.md`.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::process::{self, Guard};
use crate::proxy::free_port;

/// Length of a failover run, when the target dies and when it returns.
const RUN: Duration = Duration::from_secs(10);
const KILL_AT: Duration = Duration::from_secs(2);
const RESTART_AT: Duration = Duration::from_secs(6);
/// Concurrent clients of the failover load.
const CLIENTS: usize = 16;
/// A request without an answer within this counts as an error.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(3);
/// Length of each balanced-cost run, and its connections.
const COST_RUN: Duration = Duration::from_secs(4);
const COST_CONNECTIONS: usize = 32;

/// One answer: seconds since the start, latency, whether it was a 200.
struct Sample {
    at: f64,
    micros: u64,
    ok: bool,
}

/// What a proxy's failover run saw, per second.
struct Timeline {
    proxy: &'static str,
    seconds: Vec<(u64, u64, f64)>,
    failure: Option<String>,
}

pub struct Paths {
    pub ringway: PathBuf,
    pub load: PathBuf,
    pub nginx: Option<PathBuf>,
    pub haproxy: Option<PathBuf>,
    pub dir: PathBuf,
    pub out_dir: PathBuf,
}

/// Runs the scenario for every proxy and writes `failover.md`.
pub fn run(p: &Paths) -> Result<()> {
    std::fs::create_dir_all(&p.dir)?;
    let mut timelines = Vec::new();
    for proxy in ["ringway", "nginx", "haproxy"] {
        eprintln!("bench: failover {proxy}");
        let t = match one_proxy(p, proxy) {
            Ok(seconds) => Timeline {
                proxy,
                seconds,
                failure: None,
            },
            Err(e) => Timeline {
                proxy,
                seconds: Vec::new(),
                failure: Some(format!("{e:#}")),
            },
        };
        if process::stop_requested() {
            bail!("stopped by signal");
        }
        timelines.push(t);
    }
    let mut costs = Vec::new();
    for balance in ["round_robin", "least_request", "hash", "random"] {
        eprintln!("bench: balanced cost {balance}");
        costs.push((
            balance,
            balanced_cost(p, balance).map_err(|e| format!("{e:#}")),
        ));
    }
    let md = report(&timelines, &costs);
    std::fs::create_dir_all(&p.out_dir)?;
    std::fs::write(p.out_dir.join("failover.md"), &md)?;
    println!("{md}");
    Ok(())
}

/// Three `ringway upstream` origins (64-byte answers), started on `ports`.
struct Fleet {
    program: PathBuf,
    dir: PathBuf,
    ports: Vec<u16>,
    guards: Vec<Option<Guard>>,
}

impl Fleet {
    fn start(program: &Path, dir: &Path) -> Result<Fleet> {
        std::fs::create_dir_all(dir)?;
        let mut f = Fleet {
            program: program.to_path_buf(),
            dir: dir.to_path_buf(),
            ports: Vec::new(),
            guards: Vec::new(),
        };
        for i in 0..3 {
            f.ports.push(free_port()?);
            f.guards.push(None);
            f.spawn(i)?;
        }
        Ok(f)
    }

    fn addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports[i]))
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let addr = self.addr(i);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut cmd = Command::new(&self.program);
            cmd.args([
                "upstream",
                "--listen",
                &addr.to_string(),
                "--threads",
                "1",
                "--body-size",
                "64",
            ]);
            process::prepare(&mut cmd, &[], &self.dir.join(format!("origin-{i}.log")))?;
            let mut g = Guard::spawn("origin", cmd, self.dir.join(format!("origin-{i}.log")))?;
            if wait_listening(addr, Duration::from_secs(2)) {
                self.guards[i] = Some(g);
                return Ok(());
            }
            g.stop();
            if Instant::now() > deadline {
                bail!("origin {i} did not listen on {addr}");
            }
        }
    }

    /// SIGKILL: connections reset, the port refuses.
    fn kill(&mut self, i: usize) {
        if let Some(g) = self.guards[i].take() {
            // SAFETY: a plain signal to our own child.
            unsafe { libc::kill(g.pid() as libc::pid_t, libc::SIGKILL) };
            drop(g);
        }
    }
}

fn wait_listening(addr: SocketAddr, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Starts `proxy` in front of `fleet`; returns its guard and listen address.
fn start_proxy(
    p: &Paths,
    proxy: &str,
    fleet: &Fleet,
    balance: &str,
    dir: &Path,
) -> Result<(Guard, SocketAddr)> {
    std::fs::create_dir_all(dir)?;
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let targets: Vec<SocketAddr> = (0..3).map(|i| fleet.addr(i)).collect();
    let mut cmd = match proxy {
        "ringway" => {
            let conf = dir.join("ringway.toml");
            std::fs::write(&conf, ringway_config(listen, &targets, balance))?;
            let mut c = Command::new(&p.ringway);
            c.arg("serve").arg("-c").arg(&conf).env("RUST_LOG", "warn");
            c
        }
        "nginx" => {
            let program = p.nginx.as_ref().context("nginx is not available")?;
            let conf = dir.join("nginx.conf");
            std::fs::create_dir_all(dir.join("tmp"))?;
            std::fs::write(&conf, nginx_config(listen, &targets, dir))?;
            let mut c = Command::new(program);
            c.arg("-c").arg(&conf).arg("-p").arg(dir);
            c
        }
        _ => {
            let program = p.haproxy.as_ref().context("haproxy is not available")?;
            let conf = dir.join("haproxy.cfg");
            std::fs::write(&conf, haproxy_config(listen, &targets))?;
            let mut c = Command::new(program);
            c.arg("-f").arg(&conf).arg("-db");
            c
        }
    };
    process::prepare(&mut cmd, &[], &dir.join("proxy.log"))?;
    let mut g = Guard::spawn(proxy, cmd, dir.join("proxy.log"))?;
    if !wait_listening(listen, Duration::from_secs(10)) {
        let tail = g.log_tail();
        g.stop();
        bail!("{proxy} did not listen on {listen}\n{tail}");
    }
    Ok((g, listen))
}

fn one_proxy(p: &Paths, proxy: &'static str) -> Result<Vec<(u64, u64, f64)>> {
    let dir = p.dir.join(format!("failover-{proxy}"));
    let mut fleet = Fleet::start(&p.ringway, &dir)?;
    let (mut guard, listen) = start_proxy(p, proxy, &fleet, "round_robin", &dir)?;
    // Let the proxy's checks see every target up once.
    std::thread::sleep(Duration::from_millis(1500));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (samples, stop) = (samples.clone(), stop.clone());
            std::thread::spawn(move || client(listen, started, &stop, &samples))
        })
        .collect();
    let at = |d: Duration| {
        while started.elapsed() < d && !process::stop_requested() {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    at(KILL_AT);
    fleet.kill(1);
    at(RESTART_AT);
    let restarted = fleet.spawn(1);
    at(RUN);
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        let _ = c.join();
    }
    guard.stop();
    restarted?;
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    Ok(per_second(&samples))
}

/// Per whole second of the run: requests, errors, p99 in ms.
fn per_second(samples: &[Sample]) -> Vec<(u64, u64, f64)> {
    let secs = RUN.as_secs() as usize;
    let mut by: Vec<Vec<&Sample>> = (0..secs).map(|_| Vec::new()).collect();
    for s in samples {
        if let Some(v) = by.get_mut(s.at as usize) {
            v.push(s);
        }
    }
    by.into_iter()
        .map(|v| {
            let errors = v.iter().filter(|s| !s.ok).count() as u64;
            let mut lat: Vec<u64> = v.iter().map(|s| s.micros).collect();
            lat.sort_unstable();
            let p99 = if lat.is_empty() {
                0.0
            } else {
                lat[((lat.len() as f64 * 0.99).ceil() as usize).clamp(1, lat.len()) - 1] as f64
                    / 1e3
            };
            (v.len() as u64, errors, p99)
        })
        .collect()
}

/// One closed-loop client: GET / on keep-alive, reconnecting after a failure.
fn client(addr: SocketAddr, started: Instant, stop: &AtomicBool, out: &Mutex<Vec<Sample>>) {
    let mut conn: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(4096);
    let mut local = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let t0 = Instant::now();
        let s = match &mut conn {
            Some(s) => s,
            None => match TcpStream::connect_timeout(&addr, CLIENT_TIMEOUT) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    let _ = s.set_read_timeout(Some(CLIENT_TIMEOUT));
                    buf.clear();
                    conn.insert(s)
                }
                Err(_) => {
                    local.push(sample(started, t0, false));
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        let status = s
            .write_all(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
            .ok()
            .and_then(|_| read_status(s, &mut buf));
        if status.is_none_or(|(_, close)| close) {
            conn = None;
        }
        local.push(sample(started, t0, status.is_some_and(|(s, _)| s == 200)));
    }
    out.lock().unwrap().extend(local);
}

fn sample(started: Instant, t0: Instant, ok: bool) -> Sample {
    Sample {
        at: t0.duration_since(started).as_secs_f64(),
        micros: t0.elapsed().as_micros() as u64,
        ok,
    }
}

/// Reads one response (Content-Length bodies only): its status, and
/// whether the server closes the connection after it.
fn read_status(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(u16, bool)> {
    let mut tmp = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status: u16 = head.get(9..12)?.parse().ok()?;
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = s.read(&mut tmp).ok().filter(|&n| n > 0)?;
                buf.extend_from_slice(&tmp[..n]);
            }
            buf.drain(..end + 4 + len);
            let close = head
                .lines()
                .any(|l| l.starts_with("connection:") && l.contains("close"));
            return Some((status, close));
        }
        let n = s.read(&mut tmp).ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&tmp[..n]);
    }
}

/// ringway with every target up and `balance`: requests per ringway CPU-second under ringway-load.
fn balanced_cost(p: &Paths, balance: &str) -> Result<f64> {
    let dir = p.dir.join(format!("cost-{balance}"));
    let fleet = Fleet::start(&p.ringway, &dir)?;
    let (mut guard, listen) = start_proxy(p, "ringway", &fleet, balance, &dir)?;
    let json = dir.join("load.json");
    let mut cmd = Command::new(&p.load);
    cmd.arg(format!("http://{listen}/"))
        .args([
            "-c",
            &COST_CONNECTIONS.to_string(),
            "-d",
            &format!("{}ms", COST_RUN.as_millis()),
            "-t",
            "1",
            "--json",
        ])
        .arg(&json);
    process::prepare(&mut cmd, &[], &dir.join("load.log"))?;
    let cpu_before = process::tree_cpu_seconds(guard.pid());
    let mut load = Guard::spawn("ringway-load", cmd, dir.join("load.log"))?;
    let deadline = Instant::now() + COST_RUN + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = load.exit_status() {
            break s;
        }
        if Instant::now() > deadline || process::stop_requested() {
            bail!("ringway-load did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let cpu = process::tree_cpu_seconds(guard.pid()) - cpu_before;
    guard.stop();
    if !status.success() {
        bail!("ringway-load failed\n{}", load.log_tail());
    }
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
    let requests = report["requests"].as_f64().context("no request count")?;
    let errors = report["errors"]["total"].as_f64().unwrap_or(0.0);
    if errors > 0.0 {
        bail!("{errors} errors in the balanced run");
    }
    Ok(requests / cpu.max(1e-3))
}

fn ringway_config(listen: SocketAddr, targets: &[SocketAddr], balance: &str) -> String {
    let list: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    let hash_key = if balance == "hash" {
        "hash_key = \"$request.path\"\n"
    } else {
        ""
    };
    format!(
        r#"# written by ringway-bench (failover)
[server]
listen = ["{listen}"]
workers = 1
pin = false

[[upstream]]
name = "app"
targets = [{}]
balance = "{balance}"
{hash_key}connect_timeout = "1s"
response_timeout = "5s"
max_idle_per_target = 256

[upstream.health]
path = "/"
interval = "1s"
timeout = "500ms"
healthy = 2
unhealthy = 2

[upstream.outlier]
consecutive_failures = 3
ejection = "5s"

[upstream.retry]
attempts = 3
on = ["connect", "reset", "502", "503", "504"]

[[route]]
path = "/"
upstream = "app"

[[route]]
path = "/{{proxy+}}"
upstream = "app"
"#,
        list.join(", ")
    )
}

fn nginx_config(listen: SocketAddr, targets: &[SocketAddr], dir: &Path) -> String {
    let mut servers = String::new();
    for t in targets {
        let _ = writeln!(servers, "        server {t} max_fails=1 fail_timeout=5s;");
    }
    let d = dir.display();
    format!(
        r#"# written by ringway-bench (failover)
user root;
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {d}/tmp;
    proxy_temp_path {d}/tmp;
    upstream app {{
{servers}        keepalive 256;
        keepalive_requests 1000000;
    }}
    server {{
        listen {listen};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout 1s;
            proxy_next_upstream error timeout http_502 http_503 http_504;
            proxy_next_upstream_tries 3;
        }}
    }}
}}
"#
    )
}

fn haproxy_config(listen: SocketAddr, targets: &[SocketAddr]) -> String {
    let mut servers = String::new();
    for (i, t) in targets.iter().enumerate() {
        let _ = writeln!(servers, "    server s{i} {t}");
    }
    format!(
        r#"# written by ringway-bench (failover)
global
    nbthread 1
    maxconn 2000
    no strict-limits

defaults
    mode http
    timeout connect 1s
    timeout client 60s
    timeout server 30s
    timeout http-keep-alive 60s
    retries 3
    retry-on conn-failure empty-response response-timeout 502 503 504
    option redispatch 1

frontend bench
    bind {listen}
    default_backend app

backend app
    balance roundrobin
    http-reuse always
    option httpchk GET /
    default-server check inter 1s fall 2 rise 2 observe layer7 error-limit 3 on-error mark-down
{servers}"#
    )
}

fn report(timelines: &[Timeline], costs: &[(&str, Result<f64, String>)]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Failover: one of three targets killed at t = 2 s, restarted at t = 6 s\n"
    );
    let _ = writeln!(
        o,
        "Written by `ringway-bench compare --scenarios failover` on {}. {CLIENTS} closed-loop keep-alive clients \
         (the bench's own blocking client) send `GET /` for {} s; target 2 of 3 (`ringway upstream`, 64-byte answers) \
         gets SIGKILL at t = {} s and starts again on its port at t = {} s. An error is any answer but 200, or a failed \
         connection. One worker/thread per proxy, not pinned, on a shared 2-core machine.\n",
        crate::setup::utc_now(),
        RUN.as_secs(),
        KILL_AT.as_secs(),
        RESTART_AT.as_secs()
    );
    let _ = writeln!(
        o,
        "Settings: ringway `[upstream.health] interval = \"1s\" healthy = 2 unhealthy = 2`, `[upstream.outlier] consecutive_failures = 3 ejection = \"5s\"`, \
         `[upstream.retry] attempts = 3 on = [\"connect\", \"reset\", \"502\", \"503\", \"504\"]`; nginx `max_fails=1 fail_timeout=5s`, \
         `proxy_next_upstream error timeout http_502 http_503 http_504`, `proxy_next_upstream_tries 3` (open-source nginx has no active checks); \
         HAProxy `check inter 1s fall 2 rise 2 observe layer7 error-limit 3 on-error mark-down`, `retries 3`, \
         `retry-on conn-failure empty-response response-timeout 502 503 504`, `option redispatch 1`.\n"
    );
    let _ = writeln!(o, "## Client errors and p99 (ms) per second\n");
    let mut head = "| second |".to_string();
    let mut rule = "|---|".to_string();
    for t in timelines {
        let _ = write!(
            head,
            " {} req | {} errors | {} p99 ms |",
            t.proxy, t.proxy, t.proxy
        );
        rule.push_str("---|---|---|");
    }
    let _ = writeln!(o, "{head}\n{rule}");
    for s in 0..RUN.as_secs() as usize {
        let _ = write!(o, "| {s}–{} |", s + 1);
        for t in timelines {
            match t.seconds.get(s) {
                Some((n, e, p99)) => {
                    let _ = write!(o, " {n} | {e} | {p99:.2} |");
                }
                None => o.push_str(" – | – | – |"),
            }
        }
        o.push('\n');
    }
    let _ = write!(o, "| **total** |");
    for t in timelines {
        let n: u64 = t.seconds.iter().map(|s| s.0).sum();
        let e: u64 = t.seconds.iter().map(|s| s.1).sum();
        let _ = write!(o, " **{n}** | **{e}** | |");
    }
    o.push('\n');
    for t in timelines {
        if let Some(f) = &t.failure {
            let _ = writeln!(
                o,
                "\n{} failed: {}",
                t.proxy,
                f.lines().next().unwrap_or("")
            );
        }
    }
    let _ = writeln!(
        o,
        "\n## Balanced case: ringway requests per CPU-second by algorithm\n\nEvery target up; `ringway-load` with {COST_CONNECTIONS} connections for {} s, \
         one ringway worker; ringway's CPU time from /proc. `hash` hashes `$request.path` (one path: every request \
         goes to one target, which is what a hash does with one key).\n\n| balance | req per CPU-second |\n|---|---|",
        COST_RUN.as_secs()
    );
    for (b, r) in costs {
        match r {
            Ok(v) => {
                let _ = writeln!(o, "| {b} | {v:.0} |");
            }
            Err(e) => {
                let _ = writeln!(o, "| {b} | failed: {} |", e.lines().next().unwrap_or(""));
            }
        }
    }
    o
}
