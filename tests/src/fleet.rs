//! Upstream fleets for the resilience tests: origins that run as processes
//! of their own (`ringway-test-origin`), so a test can kill one mid-load and
//! start it again on the same port, switch it to 503s or to stalling, and
//! count what it served; and a load of concurrent keep-alive GETs that
//! records every answer.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

/// A `ringway-test-origin` process, killed on drop.
pub struct OriginProcess {
    pub name: String,
    pub addr: SocketAddr,
    child: Option<(Child, ChildStdin, mpsc::Receiver<String>)>,
}

impl OriginProcess {
    /// Starts an origin named `name` on a free 127.0.0.1 port.
    pub fn start(name: &str) -> OriginProcess {
        Self::start_on(name, "127.0.0.1:0".parse().unwrap())
    }

    /// Starts an origin on `addr` (a port a killed one used: bound again
    /// with SO_REUSEADDR, retried while the old socket lingers).
    pub fn start_on(name: &str, addr: SocketAddr) -> OriginProcess {
        let mut o = OriginProcess {
            name: name.to_string(),
            addr,
            child: None,
        };
        assert!(
            crate::wait_until(|| o.spawn()),
            "origin {name} could not listen on {addr}"
        );
        o
    }

    fn spawn(&mut self) -> bool {
        let mut child = Command::new(crate::gateway::binary("ringway-test-origin"))
            .args(["--listen", &self.addr.to_string(), "--name", &self.name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ringway-test-origin");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        match rx.recv_timeout(crate::WAIT) {
            Ok(line) if line.starts_with("listening on ") => {
                self.addr = line["listening on ".len()..]
                    .trim()
                    .parse()
                    .expect("address");
                self.child = Some((child, stdin, rx));
                true
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                false
            }
        }
    }

    /// Sends a mode command (`ok`, `status 503`, `stall`, …) and waits for its acknowledgement.
    pub fn set(&mut self, command: &str) {
        let (_, stdin, rx) = self.child.as_mut().expect("a running origin");
        writeln!(stdin, "{command}").expect("origin stdin");
        stdin.flush().unwrap();
        assert_eq!(rx.recv_timeout(crate::WAIT).as_deref(), Ok("ok"));
    }

    /// Kills the process (SIGKILL: its connections reset, its port refuses).
    pub fn kill(&mut self) {
        if let Some((mut child, _, _)) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same address.
    pub fn restart(&mut self) {
        self.kill();
        let addr = self.addr;
        assert!(
            crate::wait_until(|| self.spawn()),
            "origin {} could not listen on {addr} again",
            self.name
        );
    }

    /// Requests it served since it started (health checks apart), and health checks.
    pub fn counts(&self) -> (u64, u64) {
        let r = crate::client::get(self.addr, "/__count");
        let text = String::from_utf8_lossy(&r.body).into_owned();
        let field = |k: &str| {
            text.split_whitespace()
                .find_map(|kv| kv.strip_prefix(k))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("requests="), field("checks="))
    }

    pub fn requests(&self) -> u64 {
        self.counts().0
    }
}

impl Drop for OriginProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One answer a load client got: when the request was sent, and the
/// status and `X-Origin`, or `None` when the connection failed.
#[derive(Clone, Debug)]
pub struct Answer {
    pub sent: Instant,
    pub status: Option<u16>,
    pub origin: String,
}

/// Concurrent keep-alive GET loops against the gateway.
pub struct Load {
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    /// `conns` clients, each sending GET `path` one after the other until
    /// stopped (or `max_each` requests), reconnecting after a failure.
    pub fn start(gateway: SocketAddr, conns: usize, path: &str, max_each: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..conns)
            .map(|_| {
                let (stop, answers, path) = (stop.clone(), answers.clone(), path.to_string());
                std::thread::spawn(move || client(gateway, &path, max_each, &stop, &answers))
            })
            .collect();
        Load {
            stop,
            answers,
            threads,
        }
    }

    pub fn answers(&self) -> Vec<Answer> {
        self.answers.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.answers.lock().unwrap().len()
    }

    /// Stops the clients (each finishes its request in flight) and returns every answer.
    pub fn stop(mut self) -> Vec<Answer> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.answers()
    }

    /// Waits until every client is done (`max_each` each), and returns every answer.
    pub fn finish(mut self) -> Vec<Answer> {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.answers()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn client(
    gateway: SocketAddr,
    path: &str,
    max_each: usize,
    stop: &AtomicBool,
    answers: &Mutex<Vec<Answer>>,
) {
    let mut conn: Option<std::net::TcpStream> = None;
    let mut buf = Vec::new();
    for _ in 0..max_each {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let s = conn.get_or_insert_with(|| {
            buf.clear();
            crate::client::connect(gateway)
        });
        let sent = Instant::now();
        let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
        let r = s
            .write_all(req.as_bytes())
            .ok()
            .and_then(|_| crate::client::read_response(s, &mut buf, false));
        let answer = match &r {
            Some(r) => Answer {
                sent,
                status: Some(r.status),
                origin: r.header("x-origin").unwrap_or_default().to_string(),
            },
            None => Answer {
                sent,
                status: None,
                origin: String::new(),
            },
        };
        if r.as_ref()
            .is_none_or(|r| r.header("connection") == Some("close"))
        {
            conn = None;
        }
        answers.lock().unwrap().push(answer);
    }
}

/// Entries added to /etc/hosts for a test, removed on drop (the rest of
/// the file is left as it is). The tests run as root.
pub struct HostsEntries {
    marker: String,
}

impl HostsEntries {
    /// A guard for lines tagged with a marker unique to this process.
    pub fn new() -> HostsEntries {
        HostsEntries {
            marker: format!("# ringway-test-{}", std::process::id()),
        }
    }

    /// Adds `ip name`.
    pub fn add(&self, ip: &str, name: &str) {
        let _lock = hosts_lock();
        let mut text = std::fs::read_to_string("/etc/hosts").expect("read /etc/hosts");
        if !text.ends_with('\n') && !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&format!("{ip} {name} {}\n", self.marker));
        std::fs::write("/etc/hosts", text).expect("write /etc/hosts (the tests run as root)");
    }

    /// Removes the lines this guard added for `ip`.
    pub fn remove(&self, ip: &str) {
        self.retain(|l| !(l.contains(&self.marker) && l.split_whitespace().next() == Some(ip)));
    }

    fn retain(&self, keep: impl Fn(&str) -> bool) {
        let _lock = hosts_lock();
        let text = std::fs::read_to_string("/etc/hosts").expect("read /etc/hosts");
        let kept: String = text
            .lines()
            .filter(|l| keep(l))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write("/etc/hosts", kept).expect("write /etc/hosts");
    }
}

/// Tests in other processes edit /etc/hosts too: one read-modify-write at
/// a time (an exclusive flock on a lock file, released when dropped).
fn hosts_lock() -> std::fs::File {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/ringway-tests-etc-hosts.lock")
        .expect("open the /etc/hosts lock file");
    // SAFETY: flock(2) on a descriptor this function owns.
    unsafe {
        libc::flock(f.as_raw_fd(), libc::LOCK_EX);
    }
    f
}

impl Default for HostsEntries {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for HostsEntries {
    fn drop(&mut self) {
        self.retain(|l| !l.contains(&self.marker));
    }
}
