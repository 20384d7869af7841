//! One worker thread: pin, build its monoio runtime, accept and serve until drained.

use super::proxy_header::Refused;
use crate::control::{ListenerChange, Shared};
use crate::observe::access_log::AccessLog;
use crate::observe::scrape::Scrape;
use crate::proxy::catch::{CatchUnwind, panic_message};
use crate::proxy::conn::{self, Ended};
use crate::proxy::local::Worker;
use crate::proxy::stream::Client;
use crate::snapshot::{ListenMode, Snapshot};
use monoio::io::{CancelHandle, Canceller};
use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tracing::{debug, error, info, warn};

/// io_uring submission queue entries per worker.
const RING_ENTRIES: u32 = 4096;
/// How often a worker looks for a drain request.
const DRAIN_POLL: Duration = Duration::from_millis(25);
/// How often idle upstream connections are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How often idle keep-alive connections past `keepalive_idle` are closed
/// (so they close up to this much late).
const IDLE_SWEEP_EVERY: Duration = Duration::from_millis(250);

/// Parked connections (each had a task of ~1 KiB) after which the sweep
/// asks the allocator to return freed pages (`sys::collect_freed_memory`).
const COLLECT_AFTER_PARKS: u64 = 64;
/// ... once the worker has served no request for this many sweeps (2 s).
const COLLECT_WHEN_QUIET_SWEEPS: u32 = 8;

/// io_uring setup flags, most efficient first.
#[derive(Clone, Copy, Debug)]
enum RingFlags {
    Deferred,
    Cooperative,
    Plain,
}

impl RingFlags {
    fn builder(self) -> io_uring::Builder {
        let mut ring = io_uring::IoUring::builder();
        match self {
            RingFlags::Deferred => {
                ring.setup_coop_taskrun()
                    .setup_single_issuer()
                    .setup_defer_taskrun();
            }
            RingFlags::Cooperative => {
                ring.setup_coop_taskrun();
            }
            RingFlags::Plain => {}
        }
        ring
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    IoUring,
    Epoll,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::IoUring => "io_uring",
            Driver::Epoll => "epoll",
        }
    }
}

pub struct WorkerSpec {
    pub id: usize,
    pub core: Option<core_affinity::CoreId>,
    pub driver: Driver,
    pub listeners: Vec<std::net::TcpListener>,
    pub snapshot: Arc<Snapshot>,
    pub shared: Arc<Shared>,
    pub scrape: Arc<Scrape>,
    pub access_log: Option<Arc<AccessLog>>,
}

/// The body of a worker thread. Returns when the worker has drained.
pub fn run(spec: WorkerSpec) -> std::io::Result<()> {
    let pinned = match spec.core {
        Some(c) if core_affinity::set_for_current(c) => format!("core {}", c.id),
        Some(c) => {
            warn!(
                worker = spec.id,
                "could not pin to core {}; running unpinned", c.id
            );
            "unpinned".to_string()
        }
        None => "unpinned".to_string(),
    };
    let mut driver = spec.driver;
    if driver == Driver::IoUring {
        // Cheapest ring first: completions run only when this thread asks for
        // them (DEFER_TASKRUN, which needs SINGLE_ISSUER), then cooperative
        // task running, then a plain ring; epoll if none can be set up.
        for flags in [
            RingFlags::Deferred,
            RingFlags::Cooperative,
            RingFlags::Plain,
        ] {
            let built = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .uring_builder(flags.builder())
                .enable_timer()
                .with_entries(RING_ENTRIES)
                .build();
            match built {
                Ok(mut rt) => {
                    return rt.block_on(main(spec, format!("{pinned}, ring {flags:?}"), driver));
                }
                Err(e) => warn!(
                    worker = spec.id,
                    "io_uring ring ({flags:?}) failed to start: {e}"
                ),
            }
        }
        warn!(
            worker = spec.id,
            "no io_uring ring could be set up; this worker falls back to epoll"
        );
        driver = Driver::Epoll;
    }
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()?;
    rt.block_on(main(spec, pinned, driver))
}

async fn main(spec: WorkerSpec, pinned: String, driver: Driver) -> std::io::Result<()> {
    let w = Worker::new(spec.id, spec.snapshot.clone(), spec.access_log.clone());
    w.identity.set((spec.core.map(|c| c.id), driver.name()));
    let mut listening: HashMap<SocketAddr, Listening> = HashMap::new();
    let mut addrs = Vec::new();
    for (i, l) in spec.listeners.into_iter().enumerate() {
        let tls = spec.snapshot.listen_tls.get(i).cloned().flatten();
        let mode = spec
            .snapshot
            .listen_mode
            .get(i)
            .copied()
            .unwrap_or_default();
        let (addr, handle) = start_listener(&w, l, tls, mode)?;
        addrs.push(addr.to_string());
        listening.insert(addr, handle);
    }
    info!(
        worker = spec.id,
        "worker {} on {pinned}, driver {}, listening on {}",
        spec.id,
        driver.name(),
        addrs.join(", ")
    );
    monoio::spawn(sweep_loop(w.clone()));
    monoio::spawn(park_loop(w.clone()));
    monoio::spawn(upstream_close_loop(w.clone()));

    let mut generation = spec.shared.generation.load(Ordering::Acquire);
    let mut reloads = spec.snapshot.reloads;
    let mut scrape = 0;
    while !spec.shared.draining.load(Ordering::Acquire) {
        monoio::time::sleep(DRAIN_POLL).await;
        w.flush_log();
        w.close_down_targets();
        spec.scrape.answer(spec.id, &mut scrape, || w.report());
        let g = spec.shared.generation.load(Ordering::Acquire);
        if g != generation {
            generation = g;
            let latest = spec.shared.latest();
            if latest.reloads != reloads {
                reloads = latest.reloads;
                w.goaway_h2();
            }
            w.install(latest);
            // Listeners the reload added or removed (unchanged ones are never touched).
            for change in spec.shared.take_listener_changes(spec.id) {
                match change {
                    ListenerChange::Add(l, tls, mode) => match start_listener(&w, l, tls, mode) {
                        Ok((addr, handle)) => {
                            info!(worker = spec.id, "worker {} now listens on {addr}", spec.id);
                            listening.insert(addr, handle);
                        }
                        Err(e) => error!(worker = spec.id, "cannot start a new listener: {e}"),
                    },
                    ListenerChange::Remove(addr) => {
                        if let Some(h) = listening.remove(&addr) {
                            h.stop();
                            info!(
                                worker = spec.id,
                                "worker {} stopped listening on {addr}", spec.id
                            );
                        }
                    }
                }
            }
            info!(
                worker = spec.id,
                "worker {} serves config generation {g}", spec.id
            );
        }
    }
    // Drain: stop accepting, close idle keep-alive connections, let the rest finish.
    w.draining.set(true);
    for (_, h) in listening.drain() {
        h.stop();
    }
    let waiting = w.stats.active.get();
    let deadline = Instant::now() + spec.snapshot.shutdown_timeout;
    while w.stats.active.get() > 0 && Instant::now() < deadline {
        w.close_idle();
        monoio::time::sleep(DRAIN_POLL).await;
    }
    w.flush_log();
    let left = w.stats.active.get();
    info!(
        worker = spec.id,
        "worker {} drained: waited for {waiting} connection(s), {left} cut off at shutdown_timeout; served {} requests, {} connection panics, {} bytes spliced",
        spec.id,
        w.stats.requests.get(),
        w.stats.panics.get(),
        w.pools.spliced_bytes()
    );
    Ok(())
}

/// A running accept loop, and how to stop it.
struct Listening {
    stop: Rc<Cell<bool>>,
    canceller: Canceller,
}

impl Listening {
    /// Ends the accept loop; the listener closes when the loop drops it.
    fn stop(self) {
        self.stop.set(true);
        let _ = self.canceller.cancel();
    }
}

/// Spawns the accept loop of one listener; TLS listeners get this worker's
/// own rustls config; `mode`: whether connections start with a PROXY
/// header, and whether cleartext ones may speak HTTP/2.
fn start_listener(
    w: &Rc<Worker>,
    l: std::net::TcpListener,
    tls: Option<Arc<ringway_tls::ServerTls>>,
    mode: ListenMode,
) -> std::io::Result<(SocketAddr, Listening)> {
    let l = monoio::net::TcpListener::from_std(l)?;
    let addr = l.local_addr()?;
    let canceller = Canceller::new();
    let stop = Rc::new(Cell::new(false));
    // Each worker gets its own rustls config: shared certificates and
    // ticket keys, but its own session cache.
    let tls = tls.map(|t| t.worker_config());
    let how = Accepting {
        tls,
        mode,
        cancel: canceller.handle(),
        stop: stop.clone(),
    };
    monoio::spawn(accept_loop(w.clone(), l, how));
    Ok((addr, Listening { stop, canceller }))
}

/// What an accept loop does with each connection, and how it is stopped.
struct Accepting {
    tls: Option<Arc<ringway_tls::rustls::ServerConfig>>,
    /// A PROXY protocol header first (before any TLS); HTTP/2 prior knowledge.
    mode: ListenMode,
    cancel: CancelHandle,
    stop: Rc<Cell<bool>>,
}

/// One accepted connection: the PROXY header and the TLS handshake, if
/// any (`open`), then HTTP until it closes. Their state (rustls' and its
/// timer's, ~2.5 KiB; the header's buffer, 2 KiB) runs in a block of the
/// worker's pool, so it is not part of the task every idle connection
/// keeps (see `sys::pooled`).
async fn connection(
    w: Rc<Worker>,
    stream: monoio::net::TcpStream,
    (tls, mode): (Option<Arc<ringway_tls::rustls::ServerConfig>>, ListenMode),
    peer: SocketAddr,
    slot: usize,
    handshake_limit: Duration,
) -> Ended {
    if tls.is_none() && mode == ListenMode::default() {
        return conn::serve(w.clone(), Client::Plain(stream), peer, slot).await;
    }
    let open = || open(&w, stream, (tls, mode), peer, handshake_limit);
    let Some((client, peer, h2)) = crate::sys::pooled::run(&w.blocks, open).await else {
        return Ended::Closed;
    };
    if h2 {
        // Boxed: an HTTP/2 connection's state stays out of every other
        // connection's task.
        Box::pin(crate::proxy::h2conn::serve(w.clone(), client, peer, slot)).await;
        return Ended::Closed;
    }
    conn::serve(w.clone(), client, peer, slot).await
}

/// What comes before HTTP on a connection: the PROXY header (its address
/// replaces the peer's), then the TLS handshake, each within `limit`;
/// then whether the connection speaks HTTP/2 (ALPN `h2`, or the client
/// preface on an `h2c` listener). `None`: refused (counted) or gone.
async fn open(
    w: &Worker,
    stream: monoio::net::TcpStream,
    (tls, mode): (Option<Arc<ringway_tls::rustls::ServerConfig>>, ListenMode),
    mut peer: SocketAddr,
    limit: Duration,
) -> Option<(Client, SocketAddr, bool)> {
    if mode.proxy_protocol {
        match super::proxy_header::read(&stream, limit).await {
            Ok(Some(client)) => peer = client,
            Ok(None) => {}
            Err(Refused::Silent) => return None,
            Err(e) => {
                let errors = &w.stats.proxy_protocol_errors;
                errors.set(errors.get() + 1);
                debug!(worker = w.id, %peer, "PROXY protocol header refused: {e:?}");
                return None;
            }
        }
    }
    let Some(cfg) = tls else {
        let h2 = mode.h2c && crate::proxy::h2conn::sniff_preface(&stream, limit).await?;
        return Some((Client::Plain(stream), peer, h2));
    };
    match monoio::time::timeout(limit, ringway_tls::accept(cfg, stream)).await {
        Ok(Ok(s)) => {
            let h2 = s.alpn_protocol() == Some(b"h2");
            Some((Client::Tls(Box::new(s)), peer, h2))
        }
        Ok(Err(e)) => {
            w.stats.tls_failures.set(w.stats.tls_failures.get() + 1);
            debug!(worker = w.id, %peer, "TLS handshake failed: {e}");
            None
        }
        Err(_) => {
            w.stats.tls_failures.set(w.stats.tls_failures.get() + 1);
            None
        }
    }
}

async fn accept_loop(w: Rc<Worker>, listener: monoio::net::TcpListener, how: Accepting) {
    let Accepting {
        tls,
        mode,
        cancel,
        stop,
    } = how;
    loop {
        if w.draining.get() || stop.get() {
            return;
        }
        let (stream, peer) = match listener.cancelable_accept(cancel.clone()).await {
            Ok(x) => x,
            Err(_) if w.draining.get() || stop.get() => return,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                warn!(worker = w.id, "accept failed: {e}");
                monoio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        w.stats.accepted.set(w.stats.accepted.get() + 1);
        let snap = w.snapshot();
        if w.stats.active.get() >= snap.max_connections {
            w.stats.shed.set(w.stats.shed.get() + 1);
            drop(stream);
            continue;
        }
        let slot = w.register(stream.as_raw_fd());
        let handshake_limit = snap.timeouts.header_read;
        let serving = connection(
            w.clone(),
            stream,
            (tls.clone(), mode),
            peer,
            slot,
            handshake_limit,
        );
        spawn_connection(w.clone(), slot, peer, serving);
    }
}

/// Runs a connection's task (see [`ConnectionTask`]).
fn spawn_connection<F: Future<Output = Ended> + 'static>(
    w: Rc<Worker>,
    slot: usize,
    peer: SocketAddr,
    serving: F,
) {
    monoio::spawn(ConnectionTask {
        serving: CatchUnwind::new(serving),
        w,
        slot,
        peer,
        timer: crate::deadline::Lease::default(),
    });
}

pin_project_lite::pin_project! {
    /// A connection's task: a panic in the connection's future is caught,
    /// counted and logged (the worker goes on), and its registry slot is
    /// freed when it ends, unless the connection parked (then the slot
    /// stays, with the socket). A plain struct rather than an `async`
    /// block: the future is polled where it lies, not kept twice (an
    /// `async` block keeps what it captured beside what it polls).
    struct ConnectionTask<F> {
        #[pin]
        serving: CatchUnwind<F>,
        w: Rc<Worker>,
        slot: usize,
        peer: SocketAddr,
        // The timer its operations' deadlines share, held only while one waits.
        timer: crate::deadline::Lease,
    }
}

impl<F: Future<Output = Ended>> Future for ConnectionTask<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Every stamp and deadline taken in this poll is the wakeup's instant.
        let _clock = crate::clock::Polling::enter();
        let this = self.project();
        let serving = this.serving;
        let polled =
            crate::deadline::poll_scoped(&this.w.timers, this.timer, cx, |cx| serving.poll(cx));
        let ended = match polled {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(ended)) => ended,
            Poll::Ready(Err(payload)) => {
                let w = &this.w;
                w.stats.panics.set(w.stats.panics.get() + 1);
                error!(worker = w.id, peer = %this.peer, "connection task panicked: {}; closed that connection", panic_message(&*payload));
                Ended::Closed
            }
        };
        if ended == Ended::Closed {
            this.w.unregister(*this.slot);
        }
        Poll::Ready(())
    }
}

/// Gives parked connections a task again when their socket becomes ready
/// (bytes, end of stream or an error): the task starts by reading.
async fn park_loop(w: Rc<Worker>) {
    let waiter = match w.park_waiter() {
        Some(Ok(waiter)) => waiter,
        Some(Err(e)) => {
            warn!(worker = w.id, "idle connections will not park: {e}");
            return;
        }
        None => return,
    };
    let mut ready = Vec::new();
    loop {
        // Not relaxed: on the epoll driver a stale readiness bit would spin.
        if waiter.readable(false).await.is_err() {
            warn!(worker = w.id, "the parked connections' epoll set failed");
            return;
        }
        w.parked_ready(&mut ready);
        for key in ready.drain(..) {
            let slot = key as usize;
            let Some(parked) = w.unpark(slot) else {
                continue;
            };
            let peer = parked.peer;
            match monoio::net::TcpStream::from_std(std::net::TcpStream::from(parked.fd)) {
                Ok(stream) => {
                    let serving = conn::serve(w.clone(), Client::Plain(stream), peer, slot);
                    spawn_connection(w.clone(), slot, peer, serving);
                }
                Err(e) => {
                    warn!(worker = w.id, %peer, "a parked connection could not resume: {e}");
                    w.unregister(slot);
                }
            }
        }
    }
}

/// Drops pooled upstream connections the upstream closed or reset, as the
/// pool's close watch reports them (see `proxy::pool`), so that taking one
/// from the pool needs no check of its own.
async fn upstream_close_loop(w: Rc<Worker>) {
    let waiter = w.pool.borrow().close_waiter();
    let waiter = match waiter {
        Some(Ok(waiter)) => waiter,
        Some(Err(e)) => {
            warn!(
                worker = w.id,
                "pooled upstream connections will be peeked before reuse: {e}"
            );
            w.pool.borrow_mut().stop_watching();
            return;
        }
        None => return,
    };
    loop {
        // Not relaxed, as for the parked connections' set.
        if waiter.readable(false).await.is_err() {
            warn!(
                worker = w.id,
                "the upstream close watch failed: pooled connections will be peeked before reuse"
            );
            w.pool.borrow_mut().stop_watching();
            return;
        }
        w.pool.borrow_mut().read_closes();
    }
}

async fn sweep_loop(w: Rc<Worker>) {
    let mut tick = 0u32;
    let (mut parks_collected, mut requests_seen, mut quiet_sweeps) = (0u64, 0u64, 0u32);
    loop {
        monoio::time::sleep(IDLE_SWEEP_EVERY).await;
        let now = Instant::now();
        w.close_expired(now);
        w.ask_to_park(now);
        // Connections that parked (after the previous sweep asked them)
        // freed their tasks: once enough did for it to matter and the
        // worker has served no request for 2 s, have the allocator give
        // those pages back. Not while it is busy: the pages would be
        // faulted back in by the next burst.
        let (parks, requests) = (w.stats.parks.get(), w.stats.requests.get());
        quiet_sweeps = if requests == requests_seen {
            quiet_sweeps + 1
        } else {
            0
        };
        requests_seen = requests;
        if quiet_sweeps >= COLLECT_WHEN_QUIET_SWEEPS
            && parks - parks_collected >= COLLECT_AFTER_PARKS
        {
            parks_collected = parks;
            crate::sys::collect_freed_memory();
        }
        tick += 1;
        if !tick.is_multiple_of((SWEEP_EVERY.as_millis() / IDLE_SWEEP_EVERY.as_millis()) as u32) {
            continue;
        }
        let snap = w.snapshot();
        let mut timeouts = vec![Duration::MAX; snap.target_count];
        for u in &snap.upstreams {
            for t in &u.targets {
                timeouts[t.id] = u.idle_timeout;
            }
        }
        w.pool.borrow_mut().sweep(|t| timeouts[t]);
    }
}

#[cfg(test)]
mod size_tests {
    /// The task every connection keeps while idle (until it parks) holds
    /// this future; the TLS handshake must not make it larger than the HTTP
    /// part (`conn::serve`) plus the few things around it (the handshake
    /// state alone is ~2.5 KiB).
    #[test]
    fn the_connection_task_does_not_hold_the_handshake() {
        let snap = crate::config::from_str(std::path::Path::new("x"), "").unwrap();
        let w = super::Worker::new(0, std::sync::Arc::new(snap), None);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        let (whole, http) = rt.block_on(async move {
            let connect = || monoio::net::TcpStream::connect_addr(listener.local_addr().unwrap());
            let s = connect().await.unwrap();
            let peer = s.local_addr().unwrap();
            let d = std::time::Duration::from_secs(1);
            // The whole task: the connection's future, the panic guard and
            // the registry bookkeeping.
            let mode = super::ListenMode {
                proxy_protocol: true,
                h2c: true,
            };
            let whole = std::mem::size_of_val(&super::ConnectionTask {
                serving: super::CatchUnwind::new(super::connection(
                    w.clone(),
                    s,
                    (None, mode),
                    peer,
                    0,
                    d,
                )),
                w: w.clone(),
                slot: 0,
                peer,
                timer: crate::deadline::Lease::default(),
            });
            let s = connect().await.unwrap();
            let http = std::mem::size_of_val(&super::conn::serve(
                w.clone(),
                super::Client::Plain(s),
                peer,
                0,
            ));
            (whole, http)
        });
        // 776 bytes with a 488-byte HTTP part: the accept path's arguments
        // (socket, TLS config, mode, peer, limits) and the task's own fields,
        // in the task's one allocation (the connection future is not boxed).
        assert!(
            whole <= http + 320,
            "the connection task is {whole} bytes, its HTTP part {http}"
        );
    }
}
