//! A redis-server for the cluster-mode variants: Debian's, installed when
//! missing, on a free loopback port, without persistence; stopped (by pid,
//! SIGTERM) when dropped.

use crate::process::{self, Guard};
use crate::setup;
use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Redis {
    pub url: String,
    guard: Guard,
}

impl Redis {
    /// Starts redis-server with its files in `dir`; returns once it answers PING.
    pub fn start(dir: &Path) -> Result<Redis> {
        let program = setup::ensure_program("redis-server")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut cmd = Command::new(program);
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir);
        let log = dir.join("redis.log");
        process::prepare(&mut cmd, &[], &log)?;
        let mut guard = Guard::spawn("redis-server", cmd, log)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pong(port) {
            if let Some(status) = guard.exit_status() {
                bail!("redis-server exited ({status})\n{}", guard.log_tail());
            }
            if Instant::now() > deadline {
                bail!("redis-server did not answer in 10 s\n{}", guard.log_tail());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("bench: redis-server on 127.0.0.1:{port}");
        Ok(Redis {
            url: format!("redis://127.0.0.1:{port}/0"),
            guard,
        })
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.guard.stop();
    }
}

fn pong(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).is_ok() && line.starts_with("+PONG")
}
