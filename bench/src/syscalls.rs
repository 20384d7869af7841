//! `ringway-bench compare --syscalls`: the system calls each proxy makes
//! per request, by name. During every measured run, `perf stat` counts the
//! kernel's syscall tracepoints (`syscalls:sys_enter_*` for the names below
//! and `raw_syscalls:sys_enter` for all of them) on the proxy's whole
//! process tree; the counts are divided by the run's completed requests and
//! written to `NAME-syscalls.md` next to the main report. Counting through
//! tracepoints leaves the proxy running at full speed (unlike `strace -c`,
//! which stops it on every call and so changes what it does).

use crate::proxy::Target;
use crate::report::ScenarioSummary;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The calls counted by name (those this kernel has a tracepoint for); the
/// rest are in the total.
const NAMES: &[&str] = &[
    "io_uring_enter",
    "epoll_wait",
    "epoll_pwait",
    "epoll_ctl",
    "recvfrom",
    "recvmsg",
    "read",
    "readv",
    "sendto",
    "sendmsg",
    "write",
    "writev",
    "splice",
    "accept4",
    "connect",
    "socket",
    "close",
    "shutdown",
    "setsockopt",
    "getsockopt",
    "getsockname",
    "ioctl",
    "futex",
    "clock_gettime",
];

/// Metric key of one call's count per request (`total` for all calls).
pub fn key(name: &str) -> String {
    format!("sys_{name}")
}

const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// The names this kernel can count.
fn available() -> Vec<&'static str> {
    NAMES
        .iter()
        .copied()
        .filter(|n| {
            TRACEFS
                .iter()
                .any(|t| Path::new(&format!("{t}/events/syscalls/sys_enter_{n}")).exists())
        })
        .collect()
}

/// A running `perf stat` on some processes.
pub struct Counter {
    child: Child,
    out: PathBuf,
    names: Vec<&'static str>,
}

impl Counter {
    /// Starts counting the calls of `pids` (every thread of each).
    pub fn start(pids: &[u32], dir: &Path) -> Result<Counter> {
        if pids.is_empty() {
            bail!("no process to count the system calls of");
        }
        let perf = crate::setup::find_program("perf")
            .context("perf is not installed (Debian: linux-perf); --syscalls needs it")?;
        let names = available();
        let mut events: Vec<String> = names
            .iter()
            .map(|n| format!("syscalls:sys_enter_{n}"))
            .collect();
        events.push("raw_syscalls:sys_enter".into());
        let out = dir.join("perf-stat.csv");
        let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
        let child = Command::new(perf)
            .args(["stat", "-x", ",", "-o"])
            .arg(&out)
            .arg("-e")
            .arg(events.join(","))
            .arg("-p")
            .arg(pids.join(","))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start perf stat")?;
        // perf attaches before it prints anything; give it the moment it
        // needs by waiting for its output file to exist.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !out.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Ok(Counter { child, out, names })
    }

    /// Stops counting; returns the count of each name and `total`.
    pub fn stop(self) -> Result<BTreeMap<String, f64>> {
        // SAFETY: a plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGINT);
        }
        let output = self.child.wait_with_output()?;
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        let mut counts = BTreeMap::new();
        for line in text.lines() {
            let mut f = line.split(',');
            let (Some(value), Some(_unit), Some(event)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let Ok(v) = value.trim().parse::<f64>() else {
                continue;
            };
            let name = match event.trim() {
                "raw_syscalls:sys_enter" => "total",
                e => match e.strip_prefix("syscalls:sys_enter_") {
                    Some(n) => n,
                    None => continue,
                },
            };
            counts.insert(name.to_string(), v);
        }
        if !counts.contains_key("total") {
            bail!(
                "perf stat counted nothing: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        for n in &self.names {
            counts.entry((*n).to_string()).or_insert(0.0);
        }
        Ok(counts)
    }
}

/// The table: per scenario and proxy, the median calls per request of each
/// name any proxy made at least 0.01 of per request, and the total.
pub fn markdown(scenarios: &[ScenarioSummary], header: &str) -> String {
    let mut names: Vec<String> = Vec::new();
    for s in scenarios {
        for t in &s.targets {
            for (k, v) in &t.metrics {
                if let Some(n) = k.strip_prefix("sys_")
                    && n != "total"
                    && v.median >= 0.01
                    && !names.iter().any(|x| x == n)
                {
                    names.push(n.to_string());
                }
            }
        }
    }
    names.sort_by_key(|n| NAMES.iter().position(|x| x == n).unwrap_or(usize::MAX));
    let mut md = format!("# System calls per request\n\n{header}\n\n");
    md.push_str("| scenario | proxy | all calls |");
    for n in &names {
        md.push_str(&format!(" {n} |"));
    }
    md.push_str(" other |\n|---|---|---:|");
    for _ in &names {
        md.push_str("---:|");
    }
    md.push_str("---:|\n");
    for s in scenarios {
        for t in &s.targets {
            if t.target == Target::Direct {
                continue;
            }
            let Some(total) = t.metrics.get(&key("total")) else {
                continue;
            };
            let mut named = 0.0;
            md.push_str(&format!(
                "| {} | {} | {:.2} |",
                s.scenario.key,
                t.target.name(),
                total.median
            ));
            for n in &names {
                let v = t.metrics.get(&key(n)).map_or(0.0, |m| m.median);
                named += v;
                md.push_str(&format!(" {} |", cell(v)));
            }
            md.push_str(&format!(" {} |\n", cell((total.median - named).max(0.0))));
        }
    }
    md
}

fn cell(v: f64) -> String {
    if v < 0.005 {
        "0".into()
    } else {
        format!("{v:.2}")
    }
}
