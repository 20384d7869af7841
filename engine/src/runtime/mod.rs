//! Starting and stopping the gateway: listeners, worker threads (one per
//! core, pinned on request), the io_uring/epoll choice, signals and drain.

pub mod listener;
pub mod proxy_header;
pub mod worker;

use crate::control::{ListenerChange, Shared};
use crate::observe::access_log::AccessLog;
use crate::observe::scrape::Scrape;
use crate::snapshot::{DriverChoice, Pin, Snapshot};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{error, info, warn};
use worker::{Driver, WorkerSpec};

enum Event {
    Signal(i32),
    /// The upstreams thread found DNS names resolving to new addresses.
    Resolved(crate::resilience::Resolved),
    WorkerExited {
        id: usize,
        result: Result<(), String>,
    },
}

/// A started gateway: its concrete listen addresses and how to stop it.
pub struct Running {
    pub addrs: Vec<SocketAddr>,
    /// Per configured listen entry, in order: the address actually bound (they differ for port 0).
    bound: Mutex<Vec<SocketAddr>>,
    backlog: u32,
    pub shared: Arc<Shared>,
    /// The access log writer, reopened on SIGUSR1.
    access_log: Option<Arc<AccessLog>>,
    events: mpsc::Receiver<Event>,
    events_tx: mpsc::Sender<Event>,
    workers: usize,
    shutdown_timeout: Duration,
    /// The upstreams thread (health checks, DNS) runs.
    checker: std::sync::atomic::AtomicBool,
}

/// For each entry of `next`, the entry of `current` it keeps (same address,
/// each used once, in order), or `None` for a new listener.
fn match_listeners(current: &[SocketAddr], next: &[SocketAddr]) -> Vec<Option<usize>> {
    let mut taken = vec![false; current.len()];
    next.iter()
        .map(|a| {
            let j = (0..current.len()).find(|&j| !taken[j] && current[j] == *a)?;
            taken[j] = true;
            Some(j)
        })
        .collect()
}

/// Picks the driver for the process (logged once).
pub fn choose_driver(choice: DriverChoice) -> Result<Driver, String> {
    let uring = monoio::utils::detect_uring();
    match (choice, uring) {
        (DriverChoice::Epoll, _) => Ok(Driver::Epoll),
        (_, true) => Ok(Driver::IoUring),
        (DriverChoice::IoUring, false) => {
            Err("driver = \"io_uring\" but io_uring cannot be set up here".into())
        }
        (DriverChoice::Auto, false) => {
            warn!(
                "io_uring is not available (kernel, seccomp, or MONOIO_FORCE_LEGACY_DRIVER); falling back to epoll"
            );
            Ok(Driver::Epoll)
        }
    }
}

/// The core each worker is pinned to, if any.
fn cores_for(pin: &Pin, workers: usize) -> Vec<Option<core_affinity::CoreId>> {
    let ids = core_affinity::get_core_ids().unwrap_or_default();
    (0..workers)
        .map(|i| match pin {
            Pin::Off => None,
            Pin::Auto if ids.is_empty() => None,
            Pin::Auto => Some(ids[i % ids.len()]),
            Pin::Cpus(list) => Some(core_affinity::CoreId {
                id: list[i % list.len()],
            }),
        })
        .collect()
}

/// Cluster mode: the fleet takes this config's `[cluster]` table and its
/// sync thread runs (started once; a changed table reconnects it).
fn install_cluster(snap: &Snapshot) {
    let Some(config) = &snap.cluster else {
        return;
    };
    let fleet = crate::cluster::fleet(config.clone());
    if *fleet.config() != *config {
        fleet.reconfigure(config.clone());
    }
    match crate::cluster::start(&fleet) {
        Ok(()) => info!(
            "cluster: limits shared through Redis at {} (sync every {:?}, on_redis_down = {:?})",
            config.shown, config.interval, config.on_down
        ),
        Err(e) => error!("cluster: the sync thread did not start: {e}"),
    }
}

/// Binds every listener and starts the workers. Errors here are startup errors.
pub fn start(snapshot: Arc<Snapshot>) -> Result<Running, String> {
    let driver = choose_driver(snapshot.driver)?;
    // Compiling the config read the default roots only if something needs them.
    if let Some(trust) = ringway_tls::default_trust_in_use() {
        info!("https upstreams and key URLs without `ca` trust {trust}");
    }
    crate::policy::start_background(&snapshot);
    install_cluster(&snapshot);
    let (listeners, addrs) =
        listener::bind_all(&snapshot.listen, snapshot.workers, snapshot.backlog)
            .map_err(|e| e.to_string())?;
    let shared = Arc::new(Shared::new(snapshot.clone()));
    let scrape = Arc::new(Scrape::new(snapshot.workers));
    let access_log = match &snapshot.access_log {
        Some((format, dest)) => Some(
            AccessLog::start(format.clone(), dest.clone())
                .map_err(|e| format!("access log {dest:?}: {e}"))?,
        ),
        None => None,
    };
    if let Some(admin) = snapshot.admin {
        listener::ensure_free(admin).map_err(|e| format!("admin listener: {e}"))?;
        let l = std::net::TcpListener::bind(admin)
            .map_err(|e| format!("admin listener {admin}: {e}"))?;
        let bound = l.local_addr().map_err(|e| e.to_string())?;
        crate::observe::admin::spawn(l, shared.clone(), scrape.clone())
            .map_err(|e| format!("admin thread: {e}"))?;
        info!("admin endpoint on {bound}");
    }
    let (tx, rx) = mpsc::channel();
    let cores = cores_for(&snapshot.pin, snapshot.workers);
    for (id, (listeners, core)) in listeners.into_iter().zip(cores).enumerate() {
        let spec = WorkerSpec {
            id,
            core,
            driver,
            listeners,
            snapshot: snapshot.clone(),
            shared: shared.clone(),
            scrape: scrape.clone(),
            access_log: access_log.clone(),
        };
        let tx = tx.clone();
        std::thread::Builder::new()
            .name(format!("ringway-w{id}"))
            .spawn(move || {
                let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    worker::run(spec)
                })) {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(p) => Err(format!(
                        "panicked: {}",
                        crate::proxy::catch::panic_message(&*p)
                    )),
                };
                let _ = tx.send(Event::WorkerExited { id, result });
            })
            .map_err(|e| format!("cannot start worker thread: {e}"))?;
    }
    for a in &addrs {
        info!("listening on {a}");
    }
    let bound = Mutex::new(addrs.clone());
    Ok(Running {
        bound,
        backlog: snapshot.backlog,
        addrs,
        shared,
        access_log,
        events: rx,
        events_tx: tx,
        workers: snapshot.workers,
        shutdown_timeout: snapshot.shutdown_timeout,
        checker: std::sync::atomic::AtomicBool::new(false),
    })
    .inspect(|r| r.ensure_checker(&snapshot))
}

/// Whether a config needs the upstreams thread (health checks or DNS re-resolution).
fn needs_checker(snap: &Snapshot) -> bool {
    snap.upstreams
        .iter()
        .any(|u| u.resilience.health.is_some() || u.resilience.resolve_interval.is_some())
}

/// Why a new snapshot replaces the running one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    /// SIGHUP or `ringway reload`: the files were read again.
    Reload,
    /// The upstreams thread found new DNS answers.
    Resolved,
}

impl Change {
    /// How the log line names it.
    fn verb(self) -> &'static str {
        match self {
            Change::Reload => "reloaded",
            Change::Resolved => "re-resolved targets of",
        }
    }
}

impl Running {
    /// Starts the upstreams thread once a config needs it.
    fn ensure_checker(&self, snap: &Snapshot) {
        if !needs_checker(snap) || self.checker.swap(true, Ordering::AcqRel) {
            return;
        }
        let tx = Mutex::new(self.events_tx.clone());
        let rebuild = Box::new(move |r| {
            let _ = tx
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .send(Event::Resolved(r));
        });
        match crate::resilience::checker::spawn(self.shared.clone(), rebuild) {
            Ok(()) => info!("upstreams thread started (health checks, DNS re-resolution)"),
            Err(e) => error!("the upstreams thread did not start: {e}"),
        }
    }

    /// Re-reads and recompiles the config file; on success every worker
    /// switches to it for new requests. On failure the running config stays.
    pub fn reload(&self) {
        let current = self.shared.latest();
        let loaded = crate::openapi::load(&current.sources).map(|(next, warnings)| {
            for w in &warnings {
                warn!("reload: {w}");
            }
            next
        });
        self.replace(current.clone(), loaded, Change::Reload);
    }

    /// Compiles the running config text again with new DNS answers and
    /// installs it like a reload (the TOML file is not read again; OpenAPI
    /// documents it names are).
    fn rebuild(&self, resolved: crate::resilience::Resolved) {
        let current = self.shared.latest();
        let next = crate::openapi::load_resolved(&current.sources, Some(&current.text), &resolved)
            .map(|(next, _)| next);
        self.replace(current, next, Change::Resolved);
    }

    /// Installs `loaded` in place of `current` (a reload, or a DNS change).
    fn replace(
        &self,
        current: Arc<Snapshot>,
        loaded: Result<Snapshot, crate::config::ConfigError>,
        what: Change,
    ) {
        match loaded {
            Err(e) => {
                self.shared.reloads_failed.fetch_add(1, Ordering::Relaxed);
                error!(
                    "reload failed; keeping generation {}:\n{e}",
                    current.generation
                );
            }
            Ok(mut next) => {
                if next.workers != current.workers {
                    warn!(
                        "reload: a `workers` change needs a restart; keeping {} workers",
                        current.workers
                    );
                }
                next.generation = current.generation + 1;
                next.reloads = current.reloads + u64::from(what == Change::Reload);
                next.workers = current.workers;
                next.backlog = self.backlog;
                // Listeners: unchanged ones stay open (their TLS files are re-read in
                // place); new ones are bound now and handed to every worker; removed
                // ones are closed by the workers.
                let matched = match_listeners(&current.listen, &next.listen);
                let mut tls = Vec::with_capacity(next.listen.len());
                for (i, addr) in next.listen.iter().enumerate() {
                    match matched[i] {
                        Some(j) => {
                            if let Some(t) = &current.listen_tls[j] {
                                if next.listen_tls[i].is_none() {
                                    warn!(
                                        "reload: TLS on {addr} cannot be turned off without a restart; keeping it"
                                    );
                                }
                                if let Err(e) = t.reload() {
                                    error!("reload: {addr} certificates kept: {e}");
                                }
                            } else if next.listen_tls[i].is_some() {
                                warn!(
                                    "reload: TLS on {addr} cannot be turned on without a restart; keeping plain HTTP"
                                );
                            }
                            tls.push(current.listen_tls[j].clone());
                        }
                        None => tls.push(next.listen_tls[i].clone()),
                    }
                    // Each accept loop knows its PROXY protocol setting from its start.
                    if let Some(j) = matched[i]
                        && next.listen_mode[i] != current.listen_mode[j]
                    {
                        warn!(
                            "reload: proxy_protocol and h2c on {addr} change only with a restart; keeping {:?}",
                            current.listen_mode[j]
                        );
                        next.listen_mode[i] = current.listen_mode[j];
                    }
                }
                next.listen_tls = tls;
                if let Err(e) = self.apply_listener_changes(&current, &next, &matched) {
                    self.shared.reloads_failed.fetch_add(1, Ordering::Relaxed);
                    error!(
                        "reload failed; keeping generation {}: {e}",
                        current.generation
                    );
                    return;
                }
                crate::policy::start_background(&next);
                install_cluster(&next);
                // Targets that stay keep what the health checks found.
                next.live
                    .adopt(&next.target_keys(), &current.live, &current.target_keys());
                self.ensure_checker(&next);
                let g = next.generation;
                *self.shared.config.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
                self.shared.generation.store(g, Ordering::Release);
                self.shared.reloads_ok.fetch_add(1, Ordering::Relaxed);
                info!(
                    "{} {}: generation {g}",
                    what.verb(),
                    current.source.display()
                );
            }
        }
    }

    /// Binds the listeners `next` adds and queues them, and the ones it drops,
    /// for every worker (applied when the workers see the new generation).
    fn apply_listener_changes(
        &self,
        current: &Snapshot,
        next: &Snapshot,
        matched: &[Option<usize>],
    ) -> Result<(), String> {
        let mut bound_guard = self.bound.lock().unwrap_or_else(|e| e.into_inner());
        // `bound[i]` is the address `current.listen[i]` actually bound (they differ for port 0).
        let mut bound = Vec::with_capacity(next.listen.len());
        let mut per_worker: Vec<Vec<ListenerChange>> =
            (0..self.workers).map(|_| Vec::new()).collect();
        for (i, addr) in next.listen.iter().enumerate() {
            if let Some(j) = matched[i] {
                bound.push(bound_guard[j]);
                continue;
            }
            let (listeners, actual) = listener::bind_all(&[*addr], self.workers, self.backlog)
                .map_err(|e| format!("new listener {addr}: {e}"))?;
            for (w, mut ls) in listeners.into_iter().enumerate() {
                if let Some(l) = ls.pop() {
                    per_worker[w].push(ListenerChange::Add(
                        l,
                        next.listen_tls[i].clone(),
                        next.listen_mode[i],
                    ));
                }
            }
            info!("listening on {}", actual[0]);
            bound.push(actual[0]);
        }
        for (j, actual) in bound_guard.iter().enumerate() {
            if !matched.contains(&Some(j)) {
                for changes in per_worker.iter_mut() {
                    changes.push(ListenerChange::Remove(*actual));
                }
                info!("stopped listening on {actual} ({})", current.listen[j]);
            }
        }
        let mut queues = self
            .shared
            .listener_changes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for (q, changes) in queues.iter_mut().zip(per_worker) {
            q.extend(changes);
        }
        *bound_guard = bound;
        Ok(())
    }

    /// Starts the drain: workers stop accepting and finish what is in flight.
    pub fn drain(&self) {
        self.shared.draining.store(true, Ordering::Release);
    }

    /// Runs until SIGTERM/SIGINT has drained every worker (exit code 0), or a
    /// worker dies (exit code 1).
    pub fn wait_with_signals(self) -> i32 {
        let tx = self.events_tx.clone();
        match signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR1]) {
            Ok(mut signals) => {
                std::thread::Builder::new()
                    .name("ringway-signals".into())
                    .spawn(move || {
                        for s in signals.forever() {
                            if tx.send(Event::Signal(s)).is_err() {
                                break;
                            }
                        }
                    })
                    .expect("signal thread starts");
            }
            Err(e) => error!("cannot install signal handlers: {e}"),
        }
        self.wait()
    }

    /// Runs until drained (after [`Running::drain`] or a signal) or a worker dies.
    pub fn wait(self) -> i32 {
        let mut exited = 0;
        let mut drain_started: Option<Instant> = None;
        loop {
            let ev = match drain_started {
                // Workers stop by themselves at shutdown_timeout; this is the backstop.
                Some(t) => match self.events.recv_timeout(
                    (self.shutdown_timeout + Duration::from_secs(5)).saturating_sub(t.elapsed()),
                ) {
                    Ok(ev) => ev,
                    Err(_) => {
                        warn!("workers did not stop within shutdown_timeout; exiting");
                        return 0;
                    }
                },
                None => match self.events.recv() {
                    Ok(ev) => ev,
                    Err(_) => return 1,
                },
            };
            match ev {
                Event::Signal(SIGHUP) => self.reload(),
                Event::Resolved(r) => self.rebuild(r),
                Event::Signal(SIGUSR1) => {
                    if let Some(log) = &self.access_log {
                        log.reopen.store(true, Ordering::Release);
                        info!("SIGUSR1: reopening the access log");
                    }
                }
                Event::Signal(sig) => {
                    if drain_started.is_some() {
                        warn!("second signal {sig}: exiting without waiting");
                        return 0;
                    }
                    info!(
                        "signal {sig}: draining (stop accepting, finish in-flight requests, up to {:?})",
                        self.shutdown_timeout
                    );
                    drain_started = Some(Instant::now());
                    self.drain();
                }
                Event::WorkerExited { id, result: Err(e) } => {
                    error!("worker {id} died: {e}; exiting so a supervisor can restart ringway");
                    return 1;
                }
                Event::WorkerExited { id, result: Ok(()) } => {
                    if drain_started.is_none() && !self.shared.draining.load(Ordering::Acquire) {
                        error!("worker {id} stopped unexpectedly; exiting");
                        return 1;
                    }
                    drain_started.get_or_insert_with(Instant::now);
                    exited += 1;
                    if exited == self.workers {
                        info!("all workers drained; exiting");
                        return 0;
                    }
                }
            }
        }
    }
}
