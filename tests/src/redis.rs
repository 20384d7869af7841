//! A real `redis-server` (Debian's package) on a free loopback port, for
//! the cluster tests: started by the test, nothing saved to disk, stopped
//! by its pid. Readiness is read from its log, never guessed.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: PathBuf,
    tls: Option<(PathBuf, PathBuf, PathBuf)>,
    role: Role,
    starts: u32,
}

/// What the process is besides a plain server.
#[derive(Clone)]
enum Role {
    Primary,
    /// A replica of the server on this port.
    Replica(u16),
    /// A Sentinel watching the primary on this port under this name.
    Sentinel(u16, String),
}

impl RedisServer {
    /// A plain server on a free port.
    pub fn start() -> RedisServer {
        Self::launch(None, Role::Primary)
    }

    /// A server that speaks TLS only, with this certificate, key and CA (PEM files).
    pub fn start_tls(cert: PathBuf, key: PathBuf, ca: PathBuf) -> RedisServer {
        Self::launch(Some((cert, key, ca)), Role::Primary)
    }

    /// A replica of `primary`, ready once it has synchronised with it.
    pub fn start_replica(primary: &RedisServer) -> RedisServer {
        Self::launch(None, Role::Replica(primary.port))
    }

    /// A Sentinel (quorum 1) watching `primary` as `name`.
    pub fn start_sentinel(primary: &RedisServer, name: &str) -> RedisServer {
        Self::launch(None, Role::Sentinel(primary.port, name.to_owned()))
    }

    fn launch(tls: Option<(PathBuf, PathBuf, PathBuf)>, role: Role) -> RedisServer {
        let port = crate::free_port();
        let dir = std::env::temp_dir().join(format!("ringway-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = RedisServer {
            port,
            child: None,
            dir,
            tls,
            role,
            starts: 0,
        };
        server.run();
        server
    }

    /// Starts the server process (again, on the same port after [`RedisServer::kill`]).
    pub fn run(&mut self) {
        assert!(self.child.is_none(), "redis-server is already running");
        self.starts += 1;
        let log = self.dir.join(format!("redis-{}.log", self.starts));
        let port = self.port.to_string();
        let mut cmd = Command::new("redis-server");
        let ready = match &self.role {
            Role::Primary => "Ready to accept connections",
            Role::Replica(of) => {
                cmd.args(["--replicaof", "127.0.0.1", &of.to_string()]);
                "MASTER <-> REPLICA sync: Finished with success"
            }
            Role::Sentinel(of, name) => {
                // Sentinel rewrites its configuration file: it must be its own.
                let conf = self.dir.join("sentinel.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "sentinel monitor {name} 127.0.0.1 {of} 1\n\
                         sentinel down-after-milliseconds {name} 1000\n\
                         sentinel failover-timeout {name} 10000\n"
                    ),
                )
                .unwrap();
                cmd.arg(conf).arg("--sentinel");
                "+monitor master"
            }
        };
        cmd.args(["--bind", "127.0.0.1"]);
        if !matches!(self.role, Role::Sentinel(..)) {
            cmd.args(["--save", "", "--appendonly", "no"]);
        }
        cmd.arg("--dir").arg(&self.dir).arg("--logfile").arg(&log);
        match &self.tls {
            None => {
                cmd.args(["--port", &port]);
            }
            Some((cert, key, ca)) => {
                cmd.args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port,
                    "--tls-auth-clients",
                    "no",
                ])
                .arg("--tls-cert-file")
                .arg(cert)
                .arg("--tls-key-file")
                .arg(key)
                .arg("--tls-ca-cert-file")
                .arg(ca);
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("redis-server could not start ({e}): install Debian's redis-server (.ci/run does)")
            });
        self.child = Some(child);
        let deadline = Instant::now() + crate::WAIT;
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains(ready) {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("redis-server exited ({status}) at start:\n{text}");
            }
            assert!(Instant::now() < deadline, "redis-server not ready:\n{text}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// `redis://127.0.0.1:PORT/0` (or `rediss://…` for a TLS server).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// Stops the server (SIGKILL: an outage, not a shutdown) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs one command on a plain server and returns the reply line(s) as text.
    pub fn cmd(&self, args: &[&str]) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        s.set_read_timeout(Some(crate::WAIT)).unwrap();
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).unwrap();
        let mut r = BufReader::new(s);
        read_reply(&mut r)
    }
}

/// One RESP2 reply, flattened to text (arrays as lines).
fn read_reply(r: &mut impl BufRead) -> String {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let body = line.trim_end().to_string();
    match body.as_bytes().first() {
        Some(b'$') => {
            let n: i64 = body[1..].parse().unwrap();
            if n < 0 {
                return String::new();
            }
            let mut data = vec![0u8; n as usize + 2];
            r.read_exact(&mut data).unwrap();
            String::from_utf8_lossy(&data[..n as usize]).into_owned()
        }
        Some(b'*') => {
            let n: i64 = body[1..].parse().unwrap();
            (0..n.max(0))
                .map(|_| read_reply(r))
                .collect::<Vec<_>>()
                .join("\n")
        }
        _ => body[1..].to_string(),
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
