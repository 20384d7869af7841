//! The `ringway-upstreams` control thread: active health checks and DNS
//! re-resolution, off the workers.
//!
//! - **Checks.** Every target of an upstream with `[upstream.health]` gets
//!   an HTTP/1.1 `GET path` (Host: `host`, or the target's `host:port`;
//!   over TLS for an `https://` target) every `interval`, each on a
//!   connection of its own, bounded by `timeout` (connect, write and read
//!   together). `unhealthy` failures in a row take the target out,
//!   `healthy` passes in a row bring it back; the state goes into the
//!   snapshot's [`Live`] table (written on a change only) and the change is
//!   logged. The checks of one round run in parallel, one scoped thread
//!   each, so a slow target does not delay the others.
//! - **DNS.** Every `resolve_interval`, each target name of the upstream is
//!   resolved again (the system resolver: /etc/hosts, then DNS). When the
//!   addresses differ from the running snapshot's, the thread hands the
//!   answers to the main thread (`rebuild`), which compiles the running
//!   config text again with them and installs it as a new generation, as a
//!   reload does. A name that stops resolving keeps its last addresses
//!   (logged once).
//!
//! State is keyed by (upstream name, address), so it survives reloads and
//! DNS changes for targets that stay.

use super::{DOWN, Live, Resolved, UP};
use crate::control::Shared;
use crate::snapshot::{Snapshot, Upstream};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// How often the thread looks at its schedule.
const TICK: Duration = Duration::from_millis(20);
/// The most of a check response read to find its status line.
const MAX_STATUS_BYTES: usize = 4096;

/// One target's check record.
#[derive(Debug, Default)]
struct Record {
    passes: u32,
    fails: u32,
    next: Option<Instant>,
}

/// Starts the thread if any upstream of the current config (or a later
/// one) has health checks or DNS names to re-resolve. `rebuild` asks the
/// main thread to compile the config again with new DNS answers.
pub fn spawn(shared: Arc<Shared>, rebuild: Box<dyn Fn(Resolved) + Send>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("ringway-upstreams".into())
        .spawn(move || run(&shared, &*rebuild))
        .map(|_| ())
}

fn run(shared: &Shared, rebuild: &dyn Fn(Resolved)) {
    let mut records: HashMap<(String, SocketAddr), Record> = HashMap::new();
    let mut next_resolve: HashMap<String, Instant> = HashMap::new();
    let mut unresolved: HashMap<String, bool> = HashMap::new();
    let mut generation = u64::MAX;
    let mut snap = shared.latest();
    while !shared.draining.load(Ordering::Acquire) {
        let g = shared.generation.load(Ordering::Acquire);
        if g != generation {
            generation = g;
            snap = shared.latest();
            // Forget targets no config has any more.
            let keys = snap.target_keys();
            records.retain(|k, _| keys.contains(k));
        }
        let now = Instant::now();
        check_round(&snap, &mut records, now);
        if let Some(r) = resolve_round(&snap, &mut next_resolve, &mut unresolved, now) {
            rebuild(r);
        }
        std::thread::sleep(TICK);
    }
}

/// Runs the checks that are due, in parallel, and records their results.
fn check_round(snap: &Snapshot, records: &mut HashMap<(String, SocketAddr), Record>, now: Instant) {
    let mut due = Vec::new();
    for u in &snap.upstreams {
        let Some(h) = &u.resilience.health else {
            continue;
        };
        for (i, t) in u.targets.iter().enumerate() {
            let r = records.entry((u.name.clone(), t.addr)).or_default();
            if r.next.is_none_or(|n| n <= now) {
                r.next = Some(now + h.interval);
                due.push((u, i));
            }
        }
    }
    if due.is_empty() {
        return;
    }
    let results: Vec<Result<u16, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = due
            .iter()
            .map(|&(u, i)| s.spawn(move || check(u, i)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("the check panicked".into()))
            })
            .collect()
    });
    for ((u, i), result) in due.into_iter().zip(results) {
        let h = u.resilience.health.as_ref().expect("due only with checks");
        let t = &u.targets[i];
        let r = records.entry((u.name.clone(), t.addr)).or_default();
        let passed = matches!(result, Ok(s) if h.passes(s));
        snap.live.checks[t.id][usize::from(!passed)].fetch_add(1, Ordering::Relaxed);
        record(&snap.live, (u, i), r, (passed, &result));
    }
}

/// Counts one check result and flips the published state at the thresholds.
fn record(
    live: &Live,
    (u, i): (&Upstream, usize),
    r: &mut Record,
    (passed, result): (bool, &Result<u16, String>),
) {
    let h = u.resilience.health.as_ref().expect("checked upstream");
    let t = &u.targets[i];
    let Some(cell) = live.cell(t.id) else {
        return;
    };
    if passed {
        r.passes += 1;
        r.fails = 0;
        if r.passes >= h.healthy && cell.load(Ordering::Relaxed) == DOWN {
            cell.store(UP, Ordering::Relaxed);
            info!(
                "upstream {} target {} is up again ({} checks passed)",
                u.name, t.label, r.passes
            );
        }
    } else {
        r.fails += 1;
        r.passes = 0;
        if r.fails >= h.unhealthy && cell.load(Ordering::Relaxed) == UP {
            cell.store(DOWN, Ordering::Relaxed);
            let why = match result {
                Ok(s) => format!("status {s}"),
                Err(e) => e.clone(),
            };
            warn!(
                "upstream {} target {} is down ({} checks failed; last: {why})",
                u.name, t.label, r.fails
            );
        }
    }
}

/// One check of target `i` of `u`: its response status, or why there is none.
fn check(u: &Upstream, i: usize) -> Result<u16, String> {
    let h = u.resilience.health.as_ref().expect("checked upstream");
    let t = &u.targets[i];
    let deadline = Instant::now() + h.timeout;
    let tcp =
        TcpStream::connect_timeout(&t.addr, h.timeout).map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let host = h.host.as_deref().unwrap_or(&t.authority);
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ringway-health\r\nConnection: close\r\n\r\n",
        h.path
    );
    let sock = tcp.try_clone().map_err(|e| e.to_string())?;
    // Before each read and write: what is left of the check's time.
    let bound = move || -> Result<(), String> {
        let d = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| "timed out".to_string())?;
        sock.set_read_timeout(Some(d)).map_err(|e| e.to_string())?;
        sock.set_write_timeout(Some(d)).map_err(|e| e.to_string())
    };
    bound()?;
    if !t.tls {
        let mut tcp = tcp;
        tcp.write_all(request.as_bytes())
            .map_err(|e| format!("send: {e}"))?;
        return read_status(&mut tcp, &bound);
    }
    let tls = u.tls.as_ref().ok_or("no TLS config")?;
    let name = tls
        .server_name
        .clone()
        .unwrap_or_else(|| t.host().to_string());
    let server_name = ringway_tls::rustls::pki_types::ServerName::try_from(name)
        .map_err(|e| format!("server name: {e}"))?;
    let conn = ringway_tls::rustls::ClientConnection::new(tls.config.clone(), server_name)
        .map_err(|e| format!("TLS: {e}"))?;
    let mut s = ringway_tls::rustls::StreamOwned::new(conn, tcp);
    s.write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    read_status(&mut s, &bound)
}

/// Reads until the status line is complete; its status code.
fn read_status(s: &mut impl Read, bound: &dyn Fn() -> Result<(), String>) -> Result<u16, String> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    loop {
        if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = &buf[..end];
            let mut parts = line.splitn(3, |&b| b == b' ');
            let version = parts.next().unwrap_or_default();
            let code = parts.next().unwrap_or_default();
            if !version.starts_with(b"HTTP/1.") || code.len() != 3 {
                return Err("not an HTTP/1.x response".into());
            }
            return std::str::from_utf8(code)
                .ok()
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| "bad status line".to_string());
        }
        if buf.len() > MAX_STATUS_BYTES {
            return Err("no status line".into());
        }
        bound()?;
        match s.read(&mut chunk) {
            Ok(0) => return Err("closed before a status line".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err("timed out".into());
            }
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// Re-resolves the names of upstreams whose `resolve_interval` is due.
/// Returns every name's answer when one differs from the running snapshot.
fn resolve_round(
    snap: &Snapshot,
    next: &mut HashMap<String, Instant>,
    unresolved: &mut HashMap<String, bool>,
    now: Instant,
) -> Option<Resolved> {
    let mut answers: HashMap<String, Vec<SocketAddr>> = HashMap::new();
    let mut changed = false;
    for u in &snap.upstreams {
        let Some(every) = u.resilience.resolve_interval else {
            continue;
        };
        let due = next.entry(u.name.clone()).or_insert(now + every);
        if *due > now {
            continue;
        }
        *due = now + every;
        let mut names: Vec<&str> = u
            .targets
            .iter()
            .map(|t| t.authority.as_str())
            .filter(|a| a.parse::<SocketAddr>().is_err())
            .collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            let mut running: Vec<SocketAddr> = u
                .targets
                .iter()
                .filter(|t| t.authority == name)
                .map(|t| t.addr)
                .collect();
            running.sort();
            match crate::config::lookup(name) {
                Ok(addrs) => {
                    if unresolved.remove(name).is_some() {
                        info!("upstream {}: {name} resolves again", u.name);
                    }
                    if addrs != running {
                        info!(
                            "upstream {}: {name} now resolves to {addrs:?} (was {running:?})",
                            u.name
                        );
                        changed = true;
                    }
                    answers.insert(name.to_string(), addrs);
                }
                Err(e) => {
                    if unresolved.insert(name.to_string(), true).is_none() {
                        warn!("upstream {}: {e}; keeping {running:?}", u.name);
                    }
                }
            }
        }
    }
    if !changed {
        return None;
    }
    // Names not due this round keep the answers the snapshot was built with.
    for (name, addrs) in snap.resolved.0.iter() {
        answers.entry(name.clone()).or_insert_with(|| addrs.clone());
    }
    Some(Resolved(Arc::new(answers)))
}
