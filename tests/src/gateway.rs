//! Starting the real `ringway` binary.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Path of the built `ringway` binary. Panics when it is missing, or older
/// than the sources it is built from (the tests would run an old ringway).
pub fn binary(name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os("RINGWAY_BIN").filter(|_| name == "ringway") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} not found: build the binaries first with `cargo build --workspace --bins`",
        bin.display()
    );
    if let Err(stale) = crate::fresh::check(&bin) {
        panic!("{stale}");
    }
    bin
}

/// A running gateway process, killed on drop.
pub struct Gateway {
    pub child: Child,
    /// The first listen address (concrete port).
    pub addr: SocketAddr,
    pub addrs: Vec<SocketAddr>,
    /// The config file it was started with (rewrite it, then SIGHUP, to reload).
    pub config_path: PathBuf,
    /// How many workers it runs.
    pub workers: usize,
    log: Arc<Mutex<Vec<String>>>,
    /// Set once stderr has closed and every line of it is in `log`.
    log_complete: Arc<AtomicBool>,
    _dir: TempDir,
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("ringway-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Gateway {
    /// Starts `ringway serve` on `config` (TOML text) and waits until it listens.
    pub fn start(config: &str) -> Gateway {
        Self::start_with_env(config, &[])
    }

    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Gateway {
        match Self::try_start(config, env) {
            Ok(g) => g,
            Err((msg, log)) => panic!(
                "ringway did not start: {msg}\n--- log ---\n{}",
                log.join("\n")
            ),
        }
    }

    /// Starts the gateway; on failure returns the reason and its log.
    pub fn try_start(config: &str, env: &[(&str, &str)]) -> Result<Gateway, (String, Vec<String>)> {
        Self::try_start_without(config, env, &[])
    }

    /// Like [`Gateway::start_with_env`], with the variables `removed` taken
    /// out of the environment the gateway inherits.
    pub fn start_without(config: &str, env: &[(&str, &str)], removed: &[&str]) -> Gateway {
        Self::start_with_all(config, env, removed, &[])
    }

    fn try_start_without(
        config: &str,
        env: &[(&str, &str)],
        removed: &[&str],
    ) -> Result<Gateway, (String, Vec<String>)> {
        Self::try_start_with_args(config, env, removed, &[])
    }

    /// Starts `ringway serve -c FILE ARGS...` (`--openapi api.yaml`, ...).
    pub fn start_with_args(config: &str, args: &[&str]) -> Gateway {
        Self::start_with_all(config, &[], &[], args)
    }

    fn start_with_all(
        config: &str,
        env: &[(&str, &str)],
        removed: &[&str],
        args: &[&str],
    ) -> Gateway {
        Self::try_start_with_args(config, env, removed, args).unwrap_or_else(|(msg, log)| {
            panic!(
                "ringway did not start: {msg}\n--- log ---\n{}",
                log.join("\n")
            )
        })
    }

    fn try_start_with_args(
        config: &str,
        env: &[(&str, &str)],
        removed: &[&str],
        args: &[&str],
    ) -> Result<Gateway, (String, Vec<String>)> {
        let dir = TempDir::new();
        let path = dir.0.join("ringway.toml");
        std::fs::write(&path, config).expect("write config");
        let mut cmd = Command::new(binary("ringway"));
        cmd.arg("serve")
            .arg("-c")
            .arg(&path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd.env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        for k in removed {
            cmd.env_remove(k);
        }
        let mut child = cmd.spawn().expect("spawn ringway");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = log.clone();
        let log_complete = Arc::new(AtomicBool::new(false));
        let complete = log_complete.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(a) = line
                    .split("listening on ")
                    .nth(1)
                    .filter(|_| !line.contains("worker"))
                {
                    let _ = tx.send(a.trim().parse::<SocketAddr>().ok());
                }
                log2.lock().unwrap().push(line);
            }
            complete.store(true, Ordering::Release);
            let _ = tx.send(None);
        });
        let mut addrs = Vec::new();
        let deadline = Instant::now() + crate::WAIT;
        // Collect "listening on" lines (printed together once every listener
        // is bound); stop when none followed for a moment.
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = if addrs.is_empty() {
                left
            } else {
                Duration::from_millis(300).min(left)
            };
            match rx.recv_timeout(wait) {
                Ok(Some(a)) => addrs.push(a),
                Ok(None) => {
                    let _ = child.wait();
                    let lines = log.lock().unwrap().clone();
                    return Err(("process exited".into(), lines));
                }
                Err(_) if !addrs.is_empty() => break,
                Err(_) => {
                    let _ = child.kill();
                    let lines = log.lock().unwrap().clone();
                    return Err(("no listening line within 10 s".into(), lines));
                }
            }
        }
        let gw = Gateway {
            child,
            addr: addrs[0],
            addrs,
            config_path: path,
            workers: workers_in(config),
            log,
            log_complete,
            _dir: dir,
        };
        // Every worker says when its accept loops run (connections would
        // queue in the backlog anyway; this keeps logs tidy).
        if !gw.wait_for_workers("listening on") {
            return Err((format!("not all {} workers started", gw.workers), gw.log()));
        }
        Ok(gw)
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn log_contains(&self, needle: &str) -> bool {
        self.log().iter().any(|l| l.contains(needle))
    }

    /// The admin endpoint's address, from the log.
    pub fn admin_addr(&self) -> SocketAddr {
        self.log()
            .iter()
            .find_map(|l| {
                l.split("admin endpoint on ")
                    .nth(1)
                    .and_then(|a| a.trim().parse().ok())
            })
            .expect("an admin endpoint in the log")
    }

    /// Waits up to [`crate::WAIT`] for a log line containing `needle`.
    pub fn wait_for_log(&self, needle: &str) -> bool {
        crate::wait_until(|| self.log_contains(needle))
    }

    /// Waits until every worker has logged a `worker N ...` line containing `needle`.
    fn wait_for_workers(&self, needle: &str) -> bool {
        crate::wait_until(|| {
            let log = self.log();
            (0..self.workers).all(|i| {
                let me = format!("worker {i} ");
                log.iter().any(|l| l.contains(&me) && l.contains(needle))
            })
        })
    }

    /// Waits until every worker serves config generation `g` (after a reload).
    pub fn wait_for_generation(&self, g: u64) -> bool {
        self.wait_for_workers(&format!("serves config generation {g}"))
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: i32) {
        let pid = self.child.id() as i32;
        // SAFETY: kill(2) takes plain integers and has no memory-safety preconditions.
        let r = unsafe { libc::kill(pid, sig) };
        assert_eq!(r, 0, "kill({pid}, {sig})");
    }

    /// Waits for the process to exit, up to `limit`; returns its exit code.
    /// Once it has exited, its log is complete: the last lines written
    /// before exiting (a drain report) are read before this returns.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                assert!(
                    crate::wait_until(|| self.log_complete.load(Ordering::Acquire)),
                    "ringway exited but its stderr stayed open"
                );
                return st.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// How many workers ringway runs for `config`: `workers = N`, or one per
/// core when it says 0 or nothing.
fn workers_in(config: &str) -> usize {
    let n = config.lines().find_map(|l| {
        let v = l
            .trim()
            .strip_prefix("workers")?
            .trim_start()
            .strip_prefix('=')?;
        v.split('#').next()?.trim().parse::<usize>().ok()
    });
    match n {
        Some(n) if n > 0 => n,
        _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal config: `listen` on an ephemeral loopback port, one upstream `app` at `upstream`, and
/// catch-all routes (`/` and `/{proxy+}`, ANY method) that forward paths unchanged.
pub fn simple_config(upstream: SocketAddr, workers: usize, extra_server: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = {workers}\npin = false\n{extra_server}\n\n[[upstream]]\nname = \"app\"\ntargets = [\"{upstream}\"]\nconnect_timeout = \"1s\"\nresponse_timeout = \"2s\"\n\n[[route]]\npath = \"/\"\nupstream = \"app\"\n\n[[route]]\npath = \"/{{proxy+}}\"\nupstream = \"app\"\n"
    )
}

/// Runs `ringway check -c FILE` on `config` (written as `ringway.toml` in a
/// temp dir): exit code, stdout, stderr.
pub fn check(config: &str) -> (i32, String, String) {
    let dir = TempDir::new();
    check_in(&dir.0, config)
}

/// Like [`check`], with the file written into `dir` (for configs that name
/// files relative to themselves).
pub fn check_in(dir: &std::path::Path, config: &str) -> (i32, String, String) {
    let path = dir.join("ringway.toml");
    std::fs::write(&path, config).expect("write config");
    let out = Command::new(binary("ringway"))
        .arg("check")
        .arg("-c")
        .arg(&path)
        .output()
        .expect("run ringway check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
