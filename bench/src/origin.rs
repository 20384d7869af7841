//! The shared upstream origins (`ringway upstream`): one with small
//! responses, one with 16 KiB responses. If something outside the suite
//! kills one, it is started again before the next run.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::idle;
use crate::process::{self, Guard};
use crate::proxy::free_port;

/// How long an origin may take to answer its first request.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Restarts allowed over the whole suite.
const MAX_RESTARTS: usize = 20;

struct Origin {
    body_size: usize,
    guard: Guard,
    addr: SocketAddr,
}

/// The origins every target forwards to.
pub struct Origins {
    program: PathBuf,
    dir: PathBuf,
    cpus: Vec<usize>,
    running: RefCell<Vec<Origin>>,
    restarts: RefCell<usize>,
}

impl Origins {
    /// Starts one origin per body size.
    pub fn start(
        program: &Path,
        dir: &Path,
        body_sizes: &[usize],
        cpus: &[usize],
    ) -> Result<Origins> {
        std::fs::create_dir_all(dir)?;
        let mut running = Vec::new();
        for &size in body_sizes {
            running.push(start_one(program, dir, size, cpus)?);
        }
        Ok(Origins {
            program: program.to_path_buf(),
            dir: dir.to_path_buf(),
            cpus: cpus.to_vec(),
            running: RefCell::new(running),
            restarts: RefCell::new(0),
        })
    }

    /// The address of the origin with `body_size` bodies, started again
    /// first if it has died.
    pub fn addr(&self, body_size: usize) -> Result<SocketAddr> {
        let mut running = self.running.borrow_mut();
        let Some(o) = running.iter_mut().find(|o| o.body_size == body_size) else {
            bail!("no origin with {body_size} B bodies");
        };
        if let Some(status) = o.guard.exit_status() {
            let mut restarts = self.restarts.borrow_mut();
            if *restarts >= MAX_RESTARTS {
                bail!(
                    "origin ({body_size} B) died ({status}) and was restarted {MAX_RESTARTS} times already"
                );
            }
            *restarts += 1;
            eprintln!("bench: origin ({body_size} B) had exited ({status}); starting it again");
            *o = start_one(&self.program, &self.dir, body_size, &self.cpus)?;
        }
        Ok(o.addr)
    }

    /// True while every origin is running.
    pub fn all_alive(&self) -> bool {
        self.running
            .borrow_mut()
            .iter_mut()
            .all(|o| o.guard.exit_status().is_none())
    }

    /// CPU seconds the running origins have used.
    pub fn cpu_seconds(&self) -> f64 {
        self.running
            .borrow()
            .iter()
            .map(|o| process::tree_cpu_seconds(o.guard.pid()))
            .sum()
    }

    /// Addresses, for the log.
    pub fn describe(&self) -> String {
        let running = self.running.borrow();
        let parts: Vec<String> = running
            .iter()
            .map(|o| format!("{} ({} B)", o.addr, o.body_size))
            .collect();
        parts.join(", ")
    }
}

fn start_one(program: &Path, dir: &Path, body_size: usize, cpus: &[usize]) -> Result<Origin> {
    let port = free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let log = dir.join(format!("origin-{body_size}-{port}.log"));
    let mut cmd = Command::new(program);
    cmd.arg("upstream")
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--threads")
        .arg("1")
        .arg("--body-size")
        .arg(body_size.to_string());
    process::prepare(&mut cmd, cpus, &log)?;
    let mut guard = Guard::spawn("upstream", cmd, log)?;
    if let Err(e) = idle::wait_ready(
        addr,
        START_TIMEOUT,
        &mut || guard.exit_status().is_none(),
        None,
        &[],
    ) {
        bail!(
            "origin ({body_size} B bodies) failed to start: {e:#}\n{}",
            guard.log_tail()
        );
    }
    Ok(Origin {
        body_size,
        guard,
        addr,
    })
}
