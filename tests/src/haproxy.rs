//! A real `haproxy` (Debian's package) on a free loopback port in front of
//! a backend, for the PROXY protocol tests: started by the test from a
//! temporary config, ready when its port accepts a connection, stopped by
//! its pid on drop.

use crate::gateway::TempDir;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct HaProxy {
    pub addr: SocketAddr,
    child: Child,
    _dir: TempDir,
}

impl HaProxy {
    /// Starts HAProxy in TCP mode forwarding to `backend`; `frontend` adds
    /// lines to its frontend, `server` options to its one server line
    /// (such as `send-proxy-v2`).
    pub fn start(backend: SocketAddr, frontend: &str, server: &str) -> HaProxy {
        let port = crate::free_port();
        let dir = TempDir::new();
        let cfg = dir.0.join("haproxy.cfg");
        let text = format!(
            "global\n  maxconn 100\n\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\nfrontend fe\n  bind 127.0.0.1:{port}\n{frontend}\n  default_backend be\n\nbackend be\n  server gw {backend} {server}\n"
        );
        std::fs::write(&cfg, text).expect("write haproxy.cfg");
        // -db: stay in the foreground, so the pid we hold is HAProxy's.
        let mut child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("haproxy could not start ({e}): install Debian's haproxy (.ci/run does)")
            });
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + crate::WAIT;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("haproxy exited ({status}) at start");
            }
            assert!(
                Instant::now() < deadline,
                "haproxy did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        HaProxy {
            addr,
            child,
            _dir: dir,
        }
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
