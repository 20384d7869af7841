//! Child processes of the suite (proxies, upstreams, load generator) and
//! what /proc says about them.
//!
//! Every long-lived child is held by a [`Guard`]: it runs in its own process
//! group, gets SIGKILL if the suite dies (`PR_SET_PDEATHSIG`), and is stopped
//! (SIGTERM, then SIGKILL of the whole group) when the guard is dropped — on
//! the normal path and on every error path alike.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

/// How long a SIGTERM'd child gets before the group is SIGKILL'd.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// Lines of a child's log quoted when it fails.
const LOG_TAIL_LINES: usize = 12;

static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// SIGINT and SIGTERM ask the suite to stop: the waits notice within
/// milliseconds, and the guards then stop every child and the scratch
/// directory is removed.
pub fn install_stop_handler() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_stop_signal as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            on_stop_signal as *const () as libc::sighandler_t,
        );
    }
}

/// True once SIGINT or SIGTERM has arrived.
pub fn stop_requested() -> bool {
    STOP.load(std::sync::atomic::Ordering::Relaxed)
}

/// Prepares `cmd` so the child runs on `cpus` (empty: inherit), in its own
/// process group, dies with the suite, and writes stdout+stderr to `log`.
pub fn prepare(cmd: &mut Command, cpus: &[usize], log: &Path) -> Result<()> {
    let out = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let cpus = cpus.to_vec();
    // SAFETY: the closure runs between fork and exec and calls only
    // async-signal-safe functions (setpgid, prctl, sched_setaffinity) on
    // memory that was allocated before the fork.
    unsafe {
        cmd.pre_exec(move || {
            libc::setpgid(0, 0);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if !cpus.is_empty() {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                for &c in &cpus {
                    libc::CPU_SET(c, &mut set);
                }
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
            }
            Ok(())
        });
    }
    Ok(())
}

/// A running child that is stopped when dropped.
pub struct Guard {
    child: Child,
    log: PathBuf,
    exited: Option<ExitStatus>,
}

impl Guard {
    /// Spawns a command prepared with [`prepare`].
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Result<Guard> {
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name} ({:?})", cmd.get_program()))?;
        Ok(Guard {
            child,
            log,
            exited: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once the child has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// The last lines of the child's log, for failure reports.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// SIGTERM, wait up to [`STOP_GRACE`], then SIGKILL the process group.
    /// Returns the exit status if the child exited on its own terms.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if let Some(s) = self.exit_status() {
            self.kill_group(); // leftovers of a tree whose root died
            return Some(s);
        }
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: plain syscall on our own child's process group.
        unsafe { libc::kill(-pid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Some(s) = self.exit_status() {
                self.kill_group();
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill_group();
        let _ = self.child.wait();
        None
    }

    fn kill_group(&self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: plain syscall on our own child's process group; harmless if
        // the group is already gone (ESRCH).
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// True for the ways a process ends when something sends it a signal to
/// stop (exit 0 after a drain, or death by SIGTERM/SIGINT/SIGHUP/SIGKILL),
/// as opposed to a crash (SIGSEGV, SIGABRT, a non-zero exit code).
pub fn stopped_from_outside(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt as _;
    status.success()
        || matches!(
            status.signal(),
            Some(libc::SIGTERM | libc::SIGINT | libc::SIGHUP | libc::SIGKILL)
        )
}

/// The last [`LOG_TAIL_LINES`] lines of a log file.
pub fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(LOG_TAIL_LINES);
    lines[from..].join("\n")
}

/// The pid and all its descendants (walks /proc once).
pub fn tree(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten().take(1_000_000) {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(ppid) = stat_fields(pid).and_then(|f| f.get(1).and_then(|p| p.parse().ok()))
            {
                parents.push((pid, ppid));
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() && i < 100_000 {
        let p = out[i];
        out.extend(parents.iter().filter(|&&(_, pp)| pp == p).map(|&(c, _)| c));
        i += 1;
    }
    out
}

/// A `stat` file of /proc (a process's or a thread's): the command name
/// and the fields after it (index 0 is `state`, 1 `ppid`, 11 `utime`,
/// 12 `stime`, 13 `cutime`, 14 `cstime`).
fn read_stat(path: &str) -> Option<(String, Vec<String>)> {
    let text = fs::read_to_string(path).ok()?;
    let (open, close) = (text.find('(')?, text.rfind(')')?);
    let fields = text[close + 1..]
        .split_whitespace()
        .map(str::to_string)
        .collect();
    Some((text[open + 1..close].to_string(), fields))
}

/// Fields of /proc/PID/stat after the command name (see [`read_stat`]).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    read_stat(&format!("/proc/{pid}/stat")).map(|(_, fields)| fields)
}

/// Clock ticks per second, the unit of /proc's CPU times.
fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64
}

/// CPU seconds (user + system, including reaped children) of the tree.
pub fn tree_cpu_seconds(root: u32) -> f64 {
    let ticks = clock_ticks();
    let mut total = 0u64;
    for pid in tree(root) {
        if let Some(f) = stat_fields(pid) {
            for i in 11..=14 {
                total += f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            }
        }
    }
    total as f64 / ticks
}

/// CPU ticks (user + system) of each io_uring kernel worker thread in the
/// tree, by thread id: io-wq's `iou-wrk-*` threads (requests the kernel
/// could not complete inline, e.g. io_uring's own splice) and SQPOLL's
/// `iou-sqp-*`. Their time is part of [`tree_cpu_seconds`] already; this
/// says how much of it they took.
pub fn io_worker_ticks(root: u32) -> BTreeMap<u32, u64> {
    let mut out = BTreeMap::new();
    for pid in tree(root) {
        let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten().take(100_000) {
            let Some(tid) = task
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Some((comm, f)) = read_stat(&format!("/proc/{pid}/task/{tid}/stat")) else {
                continue;
            };
            if !(comm.starts_with("iou-wrk") || comm.starts_with("iou-sqp")) {
                continue;
            }
            let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            out.insert(tid, ticks(11) + ticks(12));
        }
    }
    out
}

/// CPU seconds the io_uring worker threads alive at `after` spent since
/// `before` (threads that exited in between are not counted: io-wq keeps
/// an idle worker for seconds, longer than a gap between two readings of
/// one run).
pub fn io_worker_cpu_seconds(before: &BTreeMap<u32, u64>, after: &BTreeMap<u32, u64>) -> f64 {
    let spent: u64 = after
        .iter()
        .map(|(tid, t)| t.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum();
    spent as f64 / clock_ticks()
}

/// CPU seconds of this process's children that have been waited for.
pub fn reaped_children_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills a local struct.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// CPU seconds of this process (all threads), e.g. the bench's own TLS client.
pub fn own_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills a local struct.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// Busy seconds (all but idle and iowait) of the given CPUs since boot,
/// from /proc/stat; None when unpinned (empty list) or unreadable.
pub fn cpus_busy_seconds(cpus: &[usize]) -> Option<f64> {
    if cpus.is_empty() {
        return None;
    }
    let ticks = clock_ticks();
    let text = fs::read_to_string("/proc/stat").ok()?;
    let mut busy = 0u64;
    for &cpu in cpus {
        let name = format!("cpu{cpu}");
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name.as_str()))?;
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal ...
        let total: u64 = v.iter().take(8).sum();
        busy += total - v.get(3).copied().unwrap_or(0) - v.get(4).copied().unwrap_or(0);
    }
    Some(busy as f64 / ticks)
}

/// Sum over the tree of a `/proc/PID/status` line in kB (`VmRSS`, `VmHWM`).
pub fn tree_status_kib(root: u32, key: &str) -> u64 {
    tree(root)
        .into_iter()
        .filter_map(|pid| {
            let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            text.lines()
                .find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))
                .and_then(|l| {
                    l[key.len() + 1..]
                        .split_whitespace()
                        .next()?
                        .parse::<u64>()
                        .ok()
                })
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread named as io-wq names its workers is found, with the CPU it
    /// spent; the test's other threads are not.
    #[test]
    fn io_worker_threads_are_found_by_name_with_their_cpu() {
        let me = std::process::id();
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::Builder::new()
            .name("iou-wrk-test".into())
            .spawn(move || {
                // SAFETY: gettid has no preconditions.
                let tid = unsafe { libc::gettid() } as u32;
                // Spin until /proc credits this thread a tick (bounded: 30 s).
                let start = Instant::now();
                let mut x = 0u64;
                while start.elapsed() < Duration::from_secs(30) {
                    for i in 0..100_000u64 {
                        x = x.wrapping_mul(31).wrapping_add(i);
                    }
                    if io_worker_ticks(me).get(&tid).copied().unwrap_or(0) > 0 {
                        break;
                    }
                }
                tx.send((tid, x)).unwrap();
                // Alive until the test has read /proc.
                let _ = done_rx.recv();
            })
            .unwrap();
        let (tid, _) = rx.recv().unwrap();
        let after = io_worker_ticks(me);
        done_tx.send(()).unwrap();
        worker.join().unwrap();
        assert!(after.get(&tid).copied().unwrap_or(0) > 0, "{after:?}");
        // SAFETY: gettid has no preconditions.
        let own = unsafe { libc::gettid() } as u32;
        assert!(!after.contains_key(&own), "{after:?}");
        assert!(io_worker_cpu_seconds(&BTreeMap::new(), &after) > 0.0);
        assert_eq!(io_worker_cpu_seconds(&after, &after), 0.0);
    }
}
