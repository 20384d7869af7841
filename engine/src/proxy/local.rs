//! Everything one worker thread owns: its view of the config snapshot, its
//! upstream pool, buffer and pipe pools ([`Pools`]), connection registry and
//! counters. It lives in an `Rc` on its own thread; nothing here is shared
//! across cores.

use super::balance::Balancer;
use super::error::{Failure, RelayError, Side};
use super::outcome::Outcome;
use super::pool::Pool;
use super::stream::Client;
use crate::h1::request::RequestHead;
use crate::h1::response::ResponseHead;
use crate::observe::access_log::{AccessLog, Captured, FLUSH_BYTES, LineBuffer, Served};
use crate::observe::{Metrics, WorkerReport};
use crate::snapshot::Snapshot;
use monoio::net::Pipe;
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

/// Capacity of a pooled I/O buffer, in bytes.
pub const BUF_SIZE: usize = 32 * 1024;
/// Buffers kept for reuse per worker.
const MAX_POOLED_BUFS: usize = 256;
/// Starting capacity of an HTTP/2 stream's read buffer: it only ever holds
/// the stream's head in HTTP/1.1 form (the body comes through the stream).
const STREAM_BUF_SIZE: usize = 2 * 1024;
/// HTTP/2 streams' request states kept for reuse per worker.
const MAX_POOLED_STREAMS: usize = 1024;
/// Pipe pairs kept for reuse per worker.
const MAX_POOLED_PIPES: usize = 64;
/// Capacity asked for each pipe (F_SETPIPE_SZ; the default is 64 KiB): a
/// spliced body moves in a quarter of the calls. An empty pipe holds no pages.
const PIPE_BYTES: usize = 256 * 1024;

/// A per-worker random seed (worker id and the clock).
fn seed(id: usize) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    crate::resilience::hash64(&t.to_le_bytes(), id as u64)
}

/// Per-worker counters: plain cells, summed across workers only when asked.
#[derive(Default)]
pub struct Stats {
    pub accepted: Cell<u64>,
    pub shed: Cell<u64>,
    pub active: Cell<usize>,
    /// Idle connections parked without a task (`Worker::park`), and how
    /// many times one parked.
    pub parked: Cell<usize>,
    pub parks: Cell<u64>,
    pub requests: Cell<u64>,
    pub panics: Cell<u64>,
    pub upstream_connects: Cell<u64>,
    pub retries: Cell<u64>,
    pub tls_failures: Cell<u64>,
    /// Connections closed for a malformed, truncated or late PROXY header.
    pub proxy_protocol_errors: Cell<u64>,
    /// HTTP/2: requests (streams served), streams in flight, RST_STREAM
    /// frames received and sent, GOAWAY frames sent, connections.
    pub h2_requests: Cell<u64>,
    pub h2_streams: Cell<u64>,
    pub h2_resets_received: Cell<u64>,
    pub h2_resets_sent: Cell<u64>,
    pub h2_goaways: Cell<u64>,
    pub h2_connections: Cell<u64>,
}

impl Stats {
    pub fn add(c: &Cell<u64>, n: u64) {
        c.set(c.get() + n);
    }
}

/// A non-blocking pipe, both ends (see [`Pools::take_body_pipe`]).
pub struct BodyPipe {
    pub rd: std::os::fd::OwnedFd,
    pub wr: std::os::fd::OwnedFd,
}

/// The buffers and pipes a worker lends to whatever moves bytes (relays,
/// body readers, tunnels), and the count of bytes moved by splice(2): the
/// narrow handle those take instead of the whole [`Worker`].
#[derive(Default)]
pub struct Pools {
    bufs: RefCell<Vec<Vec<u8>>>,
    pipes: RefCell<Vec<(Pipe, Pipe)>>,
    body_pipes: RefCell<Vec<BodyPipe>>,
    pipe_capacity: Cell<usize>,
    spliced_bytes: Cell<u64>,
}

impl Pools {
    pub fn take_buf(&self) -> Vec<u8> {
        self.bufs
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BUF_SIZE))
    }

    pub fn put_buf(&self, mut buf: Vec<u8>) {
        if buf.capacity() < BUF_SIZE || buf.capacity() > 4 * BUF_SIZE {
            return;
        }
        buf.clear();
        let mut bufs = self.bufs.borrow_mut();
        if bufs.len() < MAX_POOLED_BUFS {
            bufs.push(buf);
        }
    }

    pub fn take_pipe(&self) -> std::io::Result<(Pipe, Pipe)> {
        match self.pipes.borrow_mut().pop() {
            Some(p) => Ok(p),
            None => monoio::net::unix::new_pipe(),
        }
    }

    /// A pipe for a body spliced on this thread ([`super::relay::splice_exact`]),
    /// and what it holds at most.
    pub fn take_body_pipe(&self) -> std::io::Result<(BodyPipe, usize)> {
        if let Some(p) = self.body_pipes.borrow_mut().pop() {
            return Ok((p, self.pipe_capacity.get()));
        }
        let (rd, wr) = crate::sys::pipe()?;
        use std::os::fd::AsRawFd;
        let size = crate::sys::set_pipe_size(wr.as_raw_fd(), PIPE_BYTES).max(4096);
        self.pipe_capacity.set(size);
        Ok((BodyPipe { rd, wr }, size))
    }

    /// Returns an empty body pipe. One that may still hold bytes must be dropped instead.
    pub fn put_body_pipe(&self, pipe: BodyPipe) {
        let mut pipes = self.body_pipes.borrow_mut();
        if pipes.len() < MAX_POOLED_PIPES {
            pipes.push(pipe);
        }
    }

    /// Returns an empty pipe pair. A pipe that may still hold bytes must be dropped instead.
    pub fn put_pipe(&self, pipe: (Pipe, Pipe)) {
        let mut pipes = self.pipes.borrow_mut();
        if pipes.len() < MAX_POOLED_PIPES {
            pipes.push(pipe);
        }
    }

    /// Counts bytes moved by splice(2).
    pub fn count_spliced(&self, n: u64) {
        self.spliced_bytes.set(self.spliced_bytes.get() + n);
    }

    pub fn spliced_bytes(&self) -> u64 {
        self.spliced_bytes.get()
    }
}

/// What a connection needs only while it is busy with a request: taken
/// from the worker when bytes arrive, given back when it is idle again.
pub struct Active {
    pub rbuf: Vec<u8>,
    pub head: RequestHead,
    pub resp: ResponseHead,
    /// Field lines the policy chain adds to this request's response (CORS, Retry-After).
    pub fields: Vec<u8>,
    /// Field lines the policy chain adds to the upstream request (JWT claims).
    pub upstream_fields: Vec<u8>,
    /// Request fields for the access log line (filled only when logging).
    pub captured: Captured,
}

impl Active {
    fn with_buffer(capacity: usize) -> Self {
        Active {
            rbuf: Vec::with_capacity(capacity),
            head: RequestHead::default(),
            resp: ResponseHead::default(),
            fields: Vec::new(),
            upstream_fields: Vec::new(),
            captured: Captured::default(),
        }
    }
}

/// A worker's spare request states, all with read buffers of one size.
/// Boxed: a state (about 400 bytes) then moves in and out of the pool
/// and a connection's busy future as a pointer, not by copying it three
/// times per request.
pub struct ActivePool {
    // Boxed on purpose (see above): clippy's `vec_box` assumes the boxes
    // never leave the vector.
    #[allow(clippy::vec_box)]
    free: RefCell<Vec<Box<Active>>>,
    /// Capacity of a new state's read buffer.
    buf: usize,
    /// States kept at most.
    keep: usize,
}

impl ActivePool {
    fn new(buf: usize, keep: usize) -> Self {
        ActivePool {
            free: RefCell::default(),
            buf,
            keep,
        }
    }

    pub fn take(&self) -> Box<Active> {
        self.free
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Box::new(Active::with_buffer(self.buf)))
    }

    /// Keeps `a` for reuse, unless its read buffer grew past four times
    /// the pool's size (a large head, or a request body relayed through
    /// it) or the pool is full.
    pub fn put(&self, mut a: Box<Active>) {
        let cap = a.rbuf.capacity();
        if cap < self.buf || cap > 4 * self.buf {
            return;
        }
        a.rbuf.clear();
        let mut free = self.free.borrow_mut();
        if free.len() < self.keep {
            free.push(a);
        }
    }
}

pub struct Worker {
    pub id: usize,
    // An Rc around the Arc: requests clone the Rc (a plain increment), never
    // the Arc, whose shared counter would bounce between cores.
    #[allow(clippy::redundant_allocation)]
    snapshot: RefCell<Rc<Arc<Snapshot>>>,
    pub pool: RefCell<Pool>,
    /// Balancing, outlier ejection, retry budget and breaker counts per upstream.
    pub balance: RefCell<Balancer>,
    /// Requests waiting for an upstream connection to free up (`max_connections`).
    pub conn_waiters: RefCell<Vec<std::task::Waker>>,
    pub pools: Pools,
    /// Per-request connection state (read buffer, head storage), reused across connections.
    pub actives: ActivePool,
    /// The same for HTTP/2 streams: their read buffer holds only the
    /// stream's head, so a thousand open streams do not each hold a
    /// connection-sized buffer.
    pub stream_actives: ActivePool,
    /// Open client connections: fd and whether it is idle between requests.
    conns: RefCell<Registry>,
    /// The epoll set parked idle connections wait in (`None`: it could not
    /// be created, and connections never park).
    watch: Option<crate::sys::Watch>,
    pub draining: Cell<bool>,
    pub stats: Stats,
    pub metrics: RefCell<Metrics>,
    /// The access log, when enabled, and this worker's pending lines.
    pub log: Option<Arc<AccessLog>>,
    log_lines: RefCell<LineBuffer>,
    /// Core and driver, for the metrics.
    pub identity: Cell<(Option<usize>, &'static str)>,
    /// Policy counters: throttle buckets and API key quotas of this worker.
    pub policy: RefCell<crate::policy::WorkerState>,
    /// Blocks the connections' busy states run in (see `conn::serve`).
    pub blocks: crate::sys::pooled::Blocks,
    /// This worker's request id source.
    pub ids: crate::request_id::Ids,
    /// Spare timers for the connections' deadlines (see `deadline`).
    pub timers: Rc<crate::deadline::Timers>,
    /// Open HTTP/2 connections, told to GOAWAY when the worker drains.
    pub h2: RefCell<Vec<std::rc::Weak<RefCell<crate::h2::session::Session>>>>,
}

impl Worker {
    pub fn new(id: usize, snapshot: Arc<Snapshot>, log: Option<Arc<AccessLog>>) -> Rc<Self> {
        let routes = snapshot.routes.len();
        let policy = RefCell::new(crate::policy::WorkerState::new(&snapshot));
        Rc::new(Worker {
            id,
            pool: RefCell::new(Pool::new(snapshot.target_count)),
            balance: RefCell::new(Balancer::new(&snapshot, seed(id))),
            conn_waiters: RefCell::default(),
            snapshot: RefCell::new(Rc::new(snapshot)),
            pools: Pools::default(),
            actives: ActivePool::new(BUF_SIZE, MAX_POOLED_BUFS),
            stream_actives: ActivePool::new(STREAM_BUF_SIZE, MAX_POOLED_STREAMS),
            conns: RefCell::default(),
            watch: crate::sys::Watch::new().ok(),
            draining: Cell::new(false),
            h2: RefCell::default(),
            stats: Stats::default(),
            metrics: RefCell::new(Metrics::new(routes)),
            log,
            log_lines: RefCell::default(),
            identity: Cell::new((None, "")),
            policy,
            blocks: Default::default(),
            ids: crate::request_id::Ids::new(id),
            timers: Rc::default(),
        })
    }

    /// The snapshot new requests are served from (a non-atomic `Rc` clone).
    pub fn snapshot(&self) -> Rc<Arc<Snapshot>> {
        self.snapshot.borrow().clone()
    }

    /// Switches new requests to `next`. Requests in flight keep the snapshot
    /// they started with; pooled connections to targets that remain are kept.
    pub fn install(&self, next: Arc<Snapshot>) {
        let old = self.snapshot();
        let addrs = |s: &Snapshot| {
            let mut v = vec![None; s.target_count];
            for t in s.upstreams.iter().flat_map(|u| &u.targets) {
                v[t.id] = Some(t.addr);
            }
            v.into_iter().flatten().collect::<Vec<_>>()
        };
        self.pool.borrow_mut().remap(&addrs(&old), &addrs(&next));
        let mut balance = Balancer::new(&next, seed(self.id));
        balance.adopt(&next, &self.balance.borrow(), &old);
        *self.balance.borrow_mut() = balance;
        self.metrics.borrow_mut().reset_routes(next.routes.len());
        self.policy.borrow_mut().install(&next);
        *self.snapshot.borrow_mut() = Rc::new(next);
    }

    /// Counts one finished exchange. A route index from before a reload is
    /// not counted per route (its series started over).
    pub fn record(&self, snap: &Snapshot, outcome: Outcome, started: Instant) {
        let route = outcome
            .route
            .filter(|_| snap.generation == self.current_generation());
        let micros = crate::clock::elapsed(started)
            .as_micros()
            .min(u128::from(u64::MAX)) as u64;
        let mut m = self.metrics.borrow_mut();
        m.record(route, outcome.method_class, outcome.status, micros);
        if outcome.h2 {
            self.stats.h2_requests.set(self.stats.h2_requests.get() + 1);
        }
        m.bytes_in += outcome.head_in + outcome.body_in;
        m.bytes_out += outcome.bytes_sent;
    }

    /// Formats one access log line; hands the batch over when it is full.
    pub fn log_line(
        &self,
        snap: &Snapshot,
        captured: &Captured,
        ip: &str,
        o: &Outcome,
        took: std::time::Duration,
    ) {
        let Some(log) = &self.log else { return };
        let target = o.target.and_then(|id| {
            snap.upstreams
                .iter()
                .flat_map(|u| &u.targets)
                .find(|t| t.id == id)
        });
        let route = o
            .route
            .and_then(|r| snap.routes.get(r))
            .map(|r| r.path.as_str());
        let entry = captured.entry(Served {
            remote_addr: ip,
            status: o.status,
            bytes_sent: o.bytes_sent,
            body_in: o.body_in,
            request_time: took,
            upstream_addr: target.map(|t| t.authority.as_str()),
            upstream_time: o.upstream_time,
            route,
        });
        let mut lines = self.log_lines.borrow_mut();
        lines.push(&log.format, &entry);
        if lines.buf.len() >= FLUSH_BYTES {
            log.submit(std::mem::take(&mut lines.buf));
        }
    }

    /// Hands pending access log lines to the writer (every few ms, and when draining).
    pub fn flush_log(&self) {
        if let Some(log) = &self.log {
            let mut lines = self.log_lines.borrow_mut();
            if !lines.buf.is_empty() {
                log.submit(std::mem::take(&mut lines.buf));
            }
        }
    }

    /// Counts a request sent again on a fresh connection.
    pub fn count_retry(&self) {
        self.stats.retries.set(self.stats.retries.get() + 1);
    }

    /// Counts a new upstream connection (pool miss).
    pub fn count_upstream_connect(&self) {
        let c = &self.stats.upstream_connects;
        c.set(c.get() + 1);
    }

    /// Counts a failed exchange by its cause.
    pub fn count_failure(&self, e: RelayError) {
        let mut m = self.metrics.borrow_mut();
        match (e.side, e.failure) {
            (Side::Upstream, Failure::Connect) => m.upstream_connect_errors += 1,
            (Side::Upstream, Failure::Timeout) => m.upstream_timeouts += 1,
            (Side::Upstream, _) => m.upstream_bad_responses += 1,
            (Side::Client, _) => m.client_aborts += 1,
        }
    }

    /// A copy of this worker's numbers for a scrape.
    pub fn report(&self) -> WorkerReport {
        let pool = self.pool.borrow();
        let s = &self.stats;
        let (core, driver) = self.identity.get();
        WorkerReport {
            id: self.id,
            core,
            driver,
            generation: self.current_generation(),
            accepted: s.accepted.get(),
            shed: s.shed.get(),
            open: s.active.get() as u64,
            parked: s.parked.get() as u64,
            requests: s.requests.get(),
            panics: s.panics.get(),
            spliced_bytes: self.pools.spliced_bytes(),
            upstream_connects: s.upstream_connects.get(),
            retries: s.retries.get(),
            tls_failures: s.tls_failures.get(),
            proxy_protocol_errors: s.proxy_protocol_errors.get(),
            h2: crate::observe::H2Report {
                requests: s.h2_requests.get(),
                streams: s.h2_streams.get(),
                resets_received: s.h2_resets_received.get(),
                resets_sent: s.h2_resets_sent.get(),
                goaways: s.h2_goaways.get(),
                connections: s.h2_connections.get(),
            },
            pool_hits: pool.hits,
            pool_misses: pool.misses,
            pool_closed_idle: pool.closed_idle,
            pool_idle: pool.idle_count() as u64,
            metrics: self.metrics.borrow().clone(),
            upstreams: self.balance.borrow().report(),
        }
    }

    /// Whether a connection checked out under `generation` may go back into the pool.
    pub fn current_generation(&self) -> u64 {
        self.snapshot.borrow().generation
    }

    /// Closes the pooled connections of targets that went down (active
    /// checks) since the last look. Called every few ms, not per request.
    pub fn close_down_targets(&self) {
        let snap = self.snapshot();
        let down = self.balance.borrow_mut().newly_down(&snap);
        let mut pool = self.pool.borrow_mut();
        for id in down {
            pool.close_target(id);
        }
    }

    /// Wakes requests waiting for an upstream connection to free up.
    pub fn wake_conn_waiters(&self) {
        for w in self.conn_waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    pub fn register(&self, fd: RawFd) -> usize {
        self.stats.active.set(self.stats.active.get() + 1);
        self.conns.borrow_mut().insert(fd)
    }

    pub fn unregister(&self, slot: usize) {
        self.stats.active.set(self.stats.active.get() - 1);
        self.conns.borrow_mut().remove(slot);
    }

    /// Marks a connection idle between requests until `deadline` (`None`: busy).
    pub fn set_idle(&self, slot: usize, deadline: Option<Instant>) {
        self.conns.borrow_mut().set_idle(slot, deadline, None);
    }

    /// Marks a plain HTTP/1.1 connection idle until `deadline`, to give up
    /// its task at `park_at` if it is still idle then (`None`: never).
    pub fn set_idle_parkable(&self, slot: usize, deadline: Instant, park_at: Option<Instant>) {
        let park_at = park_at.filter(|_| self.watch.is_some());
        self.conns
            .borrow_mut()
            .set_idle(slot, Some(deadline), park_at);
    }

    /// Whether the sweep asked this idle connection to park; otherwise
    /// keeps `waker` so the sweep can (only for connections that may park).
    pub fn park_asked(&self, slot: usize, waker: &Waker) -> bool {
        let mut conns = self.conns.borrow_mut();
        let Some(c) = conns.get(slot) else {
            return false;
        };
        if c.park_asked {
            return true;
        }
        if c.park_at.is_some() && !c.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            c.waker = Some(waker.clone());
        }
        false
    }

    /// Parks an idle plain connection: its socket goes into the worker's
    /// epoll set and the connection's task ends, so an idle connection costs
    /// a registry entry instead of a task, a pending io_uring operation and
    /// monoio's handle. Bytes, end of stream or an error on the socket give
    /// it a new task (`unpark`). `Err`: it could not be parked (the client
    /// is given back and keeps waiting as before).
    pub fn park(&self, slot: usize, client: Client, peer: SocketAddr) -> Result<(), Client> {
        let mut conns = self.conns.borrow_mut();
        let (Some(watch), Client::Plain(s), Some(c)) = (&self.watch, &client, conns.get(slot))
        else {
            return Err(client);
        };
        c.park_asked = false;
        c.park_at = None;
        c.waker = None;
        let Ok(fd) = crate::sys::dup(s.as_raw_fd()) else {
            return Err(client);
        };
        if watch.add(fd.as_raw_fd(), slot as u64).is_err() {
            return Err(client);
        }
        c.fd = fd.as_raw_fd();
        c.parked = Some(Parked { fd, peer });
        self.stats.parked.set(self.stats.parked.get() + 1);
        Stats::add(&self.stats.parks, 1);
        drop(conns);
        // Closes monoio's descriptor; the socket lives on in the parked one.
        drop(client);
        Ok(())
    }

    /// Takes a parked connection out of the epoll set to give it a task again.
    pub fn unpark(&self, slot: usize) -> Option<Parked> {
        let mut conns = self.conns.borrow_mut();
        let p = conns.get(slot)?.parked.take()?;
        if let Some(watch) = &self.watch {
            watch.remove(p.fd.as_raw_fd());
        }
        self.stats.parked.set(self.stats.parked.get() - 1);
        Some(p)
    }

    /// The registry slots of parked connections that became ready.
    pub fn parked_ready(&self, slots: &mut Vec<u64>) {
        if let Some(watch) = &self.watch {
            watch.ready(slots);
        }
    }

    /// What the worker waits on for parked connections to become ready.
    pub fn park_waiter(&self) -> Option<std::io::Result<monoio::net::TcpStream>> {
        self.watch.as_ref().map(crate::sys::Watch::waiter)
    }

    /// Asks idle connections whose `park_at` has passed to park.
    pub fn ask_to_park(&self, now: Instant) {
        let mut conns = self.conns.borrow_mut();
        for c in conns.slots.iter_mut().flatten() {
            if c.idle && !c.park_asked && c.park_at.is_some_and(|t| t <= now) {
                c.park_asked = true;
                if let Some(w) = c.waker.take() {
                    w.wake();
                }
            }
        }
    }

    /// Closes a parked connection (no task to tell).
    fn close_parked(&self, slot: usize) {
        let Some(p) = self.unpark(slot) else {
            return;
        };
        drop(p);
        self.unregister(slot);
    }

    /// Wakes the idle keep-alive connections whose `keepalive_idle` ran out,
    /// so they close (parked ones are closed here). One sweep replaces a
    /// timer per connection.
    pub fn close_expired(&self, now: Instant) {
        let mut parked = Vec::new();
        for (slot, c) in self.conns.borrow().expired(now) {
            if c.parked.is_some() {
                parked.push(slot);
            } else {
                crate::sys::shutdown_read(c.fd);
            }
        }
        for slot in parked {
            self.close_parked(slot);
        }
    }

    /// Wakes every connection idle between requests so it closes (used
    /// when draining; parked ones are closed here); HTTP/2 connections get
    /// GOAWAY and close once their streams are done.
    pub fn close_idle(&self) {
        let parked: Vec<usize> = {
            let conns = self.conns.borrow();
            for fd in conns.idle_fds() {
                crate::sys::shutdown_read(fd);
            }
            conns
                .live()
                .filter(|(_, c)| c.parked.is_some())
                .map(|(i, _)| i)
                .collect()
        };
        for slot in parked {
            self.close_parked(slot);
        }
        self.goaway_h2();
    }

    /// Sends every HTTP/2 connection GOAWAY (NO_ERROR, the last stream it
    /// took): streams in flight finish, then the connection closes.
    pub fn goaway_h2(&self) {
        self.h2.borrow_mut().retain(|s| {
            let Some(s) = s.upgrade() else {
                return false;
            };
            let mut s = s.borrow_mut();
            s.send_goaway(crate::h2::frame::code::NO_ERROR);
            if s.streams.is_empty() {
                crate::sys::shutdown_read(s.fd);
            }
            true
        });
    }
}

/// A slab of open connections, indexed by a slot number each connection keeps.
#[derive(Default)]
struct Registry {
    slots: Vec<Option<Conn>>,
    free: Vec<usize>,
}

/// One open client connection as the worker sees it.
struct Conn {
    fd: RawFd,
    /// Between requests (or not yet started): draining closes it.
    idle: bool,
    /// When an idle keep-alive connection is closed by the sweep.
    deadline: Option<Instant>,
    /// When an idle connection gives up its task (`Worker::park`); `None`:
    /// never (TLS, HTTP/2, busy, or parking off).
    park_at: Option<Instant>,
    /// The sweep asked the idle task to park (it is woken through `waker`).
    park_asked: bool,
    /// The idle task's waker, kept once it may be asked to park (it is the
    /// same task for the connection's life; dropped when it parks or closes).
    waker: Option<Waker>,
    /// Set while parked: the connection has no task, only this.
    parked: Option<Parked>,
}

/// A parked connection: its socket (watched by the worker's epoll set) and
/// the peer its requests are served for.
pub struct Parked {
    pub fd: OwnedFd,
    pub peer: SocketAddr,
}

impl Registry {
    fn insert(&mut self, fd: RawFd) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(Conn::new(fd));
                i
            }
            None => {
                self.slots.push(Some(Conn::new(fd)));
                self.slots.len() - 1
            }
        }
    }
    fn remove(&mut self, i: usize) {
        if self.slots[i].take().is_some() {
            self.free.push(i);
        }
    }
    fn get(&mut self, i: usize) -> Option<&mut Conn> {
        self.slots.get_mut(i).and_then(Option::as_mut)
    }
    fn set_idle(&mut self, i: usize, deadline: Option<Instant>, park_at: Option<Instant>) {
        if let Some(c) = self.get(i) {
            c.idle = deadline.is_some();
            c.deadline = deadline;
            c.park_at = park_at;
            c.park_asked = false;
            // The waker stays (it is the same task's next time, so
            // `park_asked` need not clone it again each request).
        }
    }
    /// Idle connections that still have a task (parked ones have none to wake).
    fn idle_fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.live()
            .filter(|(_, c)| c.idle && c.parked.is_none())
            .map(|(_, c)| c.fd)
    }
    fn expired(&self, now: Instant) -> impl Iterator<Item = (usize, &Conn)> + '_ {
        self.live()
            .filter(move |(_, c)| c.idle && c.deadline.is_some_and(|d| d <= now))
    }
    fn live(&self) -> impl Iterator<Item = (usize, &Conn)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((i, c.as_ref()?)))
    }
}

impl Conn {
    fn new(fd: RawFd) -> Conn {
        Conn {
            fd,
            idle: true,
            deadline: None,
            park_at: None,
            park_asked: false,
            waker: None,
            parked: None,
        }
    }
}
