//! One worker thread: a monoio runtime owning its share of the connections.
//! Each connection is one task running the request loop; all counting goes
//! into the worker's own [`Tally`] (no atomics except progress and `-n`).
//!
//! A connection's life: connect (TCP, then TLS) → session (send up to
//! `pipeline` requests, read responses, repeat) → on close or error,
//! count it and connect again, until the run ends. A per-connection
//! watchdog timer enforces `--timeout`; it is armed by writing a deadline
//! into a `Cell` and only re-armed when it fires, so requests cost no timer
//! operations.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use monoio::buf::{IoBuf, IoBufMut};
use monoio::time::Sleep;

use crate::codec::{ResponseReader, Step};
use crate::report::{ErrorKind, Tally};
use crate::schedule::{Abort, Budget, Pace, Phases};
use crate::transport::{Connector, Stream};

/// Read buffer size per connection.
const READ_BUFFER_BYTES: usize = 16 * 1024;
/// Compact the read buffer when less than this much room is left at its end.
const MIN_READ_ROOM: usize = 4 * 1024;
/// Pause after a failed connect, so a dead server is not hammered in a loop.
const CONNECT_BACKOFF: Duration = Duration::from_millis(10);
/// The runtime's timers tick in milliseconds and wake up to a tick late.
/// Open loop therefore wakes one tick early and may send up to this much
/// before the scheduled time (measuring such a request from its actual
/// send), instead of adding a tick of the generator's own lateness to
/// every latency.
const TIMER_SLACK: Duration = Duration::from_millis(1);
/// io_uring submission queue entries per worker.
const URING_ENTRIES: u32 = 4096;

/// One target as the workers see it.
pub(crate) struct TargetPlan {
    pub connector: Connector,
    /// `pipeline` copies of the request, back to back, built once.
    pub requests: Vec<u8>,
    /// Length of one request inside `requests`.
    pub request_len: usize,
    /// The method is HEAD (responses carry no body).
    pub head: bool,
}

/// Progress counters of one worker, read by the control thread.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Live {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
}

/// Everything the workers share, read-only except the atomics.
pub(crate) struct Plan {
    pub targets: Vec<TargetPlan>,
    pub connections: usize,
    pub threads: usize,
    pub pipeline: usize,
    pub keepalive: bool,
    pub timeout: Duration,
    pub rate: Option<f64>,
    pub budget: Option<Budget>,
    pub abort: Abort,
    pub live: Vec<Live>,
}

/// Start-up rendezvous: every worker builds its runtime, then waits; the
/// control thread fixes the clock; then all start together.
pub(crate) struct StartLine {
    pub barrier: Barrier,
    pub phases: OnceLock<Phases>,
}

impl StartLine {
    fn wait(&self) -> Phases {
        self.barrier.wait();
        self.barrier.wait();
        *self
            .phases
            .get()
            .expect("control thread sets the phases between the two waits")
    }
}

/// Body of a worker thread.
pub(crate) fn run_worker(
    plan: Arc<Plan>,
    index: usize,
    core: Option<core_affinity::CoreId>,
    start: Arc<StartLine>,
) -> anyhow::Result<Tally> {
    if let Some(core) = core {
        core_affinity::set_for_current(core);
    }
    if monoio::utils::detect_uring() {
        // Cooperative, deferred task running saves the kernel an interrupt
        // and a context switch per completion (~20% less CPU per request,
        // measured); older kernels reject the flags, so step down.
        for flags in [
            RingFlags::Deferred,
            RingFlags::Cooperative,
            RingFlags::Plain,
        ] {
            let built = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .uring_builder(flags.builder())
                .with_entries(URING_ENTRIES)
                .enable_timer()
                .build();
            if let Ok(mut rt) = built {
                return Ok(rt.block_on(worker_main(plan, index, start)));
            }
        }
    }
    match monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
    {
        Ok(mut rt) => Ok(rt.block_on(worker_main(plan, index, start))),
        Err(e) => {
            start.wait();
            Err(anyhow::anyhow!(
                "worker {index}: cannot build the monoio runtime: {e}"
            ))
        }
    }
}

/// io_uring setup flags, from the most to the least demanding kernel.
#[derive(Debug, Clone, Copy)]
enum RingFlags {
    /// COOP_TASKRUN + SINGLE_ISSUER + DEFER_TASKRUN (Linux 6.1+).
    Deferred,
    /// COOP_TASKRUN (Linux 5.19+).
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

/// State shared by the connections of one worker.
struct Worker {
    plan: Arc<Plan>,
    index: usize,
    phases: Phases,
    tally: RefCell<Tally>,
}

async fn worker_main(plan: Arc<Plan>, index: usize, start: Arc<StartLine>) -> Tally {
    let phases = start.wait();
    let worker = Rc::new(Worker {
        plan: plan.clone(),
        index,
        phases,
        tally: RefCell::new(Tally::new()),
    });
    let mut tasks = Vec::new();
    for global in (index..plan.connections).step_by(plan.threads) {
        let conn = Connection::new(worker.clone(), global);
        tasks.push(monoio::spawn(conn.run()));
    }
    for task in tasks {
        task.await;
    }
    Rc::try_unwrap(worker)
        .ok()
        .expect("all connection tasks ended")
        .tally
        .into_inner()
}

/// How one connect-and-session cycle ended.
enum Outcome {
    /// Clean close (keep-alive off, `Connection: close`, idle close): go again.
    Reconnect,
    /// Nothing more to send: the run is over for this connection.
    Finished,
    Failed(ErrorKind),
}

/// A request on the wire, waiting for its response.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    /// Latency is measured from here: the send time (closed loop) or the
    /// scheduled send time (open loop).
    since: Instant,
    /// Sent during measurement (holds a `-n` token).
    measured: bool,
}

struct Connection {
    worker: Rc<Worker>,
    target: usize,
    pace: Option<Pace>,
    /// Pre-built request bytes. Empty only after a cancelled write took them.
    requests: Vec<u8>,
    /// Read buffer; `consumed..len()` is unparsed. Empty after a cancelled read.
    buffer: Vec<u8>,
    consumed: usize,
    reader: ResponseReader,
    in_flight: VecDeque<InFlight>,
    /// A `-n` token taken before connecting (so no connection is opened
    /// without a request to send); used by the first request.
    reserved: bool,
    /// When the bytes now in `buffer` arrived.
    read_at: Instant,
    /// A connect is under way (so a timeout is a connect error).
    connecting: bool,
}

impl Connection {
    fn new(worker: Rc<Worker>, global: usize) -> Self {
        let plan = &worker.plan;
        let target = global % plan.targets.len();
        let pace = plan
            .rate
            .map(|rate| Pace::new(worker.phases.start, global, plan.connections, rate));
        let head = plan.targets[target].head;
        let read_at = worker.phases.start;
        Connection {
            target,
            pace,
            requests: Vec::new(),
            buffer: Vec::new(),
            consumed: 0,
            reader: ResponseReader::new(head),
            in_flight: VecDeque::with_capacity(plan.pipeline),
            reserved: false,
            read_at,
            connecting: false,
            worker,
        }
    }

    fn plan(&self) -> &Plan {
        &self.worker.plan
    }

    async fn run(mut self) {
        let timeout = self.plan().timeout;
        let deadline = Cell::new(None);
        let mut dog = pin!(monoio::time::sleep(timeout));
        let end = self.worker.phases.end;
        let mut end_of_run = pin!(async move {
            match end {
                Some(end) => monoio::time::sleep_until(end.into()).await,
                None => std::future::pending().await,
            }
        });
        while !self.plan().abort.is_set() {
            let outcome = monoio::select! {
                outcome = self.cycle(&deadline) => outcome,
                _ = watchdog(&deadline, dog.as_mut(), timeout) => Outcome::Failed(ErrorKind::Timeout),
                _ = &mut end_of_run => Outcome::Finished,
            };
            deadline.set(None);
            self.abandon_in_flight();
            let outcome = match outcome {
                // A connect that timed out is a connect error.
                Outcome::Failed(ErrorKind::Timeout) if self.connecting => {
                    Outcome::Failed(ErrorKind::Connect)
                }
                outcome => outcome,
            };
            self.connecting = false;
            match outcome {
                Outcome::Reconnect => {}
                Outcome::Finished => break,
                Outcome::Failed(kind) => self.count_error(kind),
            }
        }
        self.abandon_in_flight();
    }

    /// Connect, then run a session until the connection ends.
    async fn cycle(&mut self, deadline: &Cell<Option<Instant>>) -> Outcome {
        let now = Instant::now();
        if let Some(budget) = &self.worker.plan.budget
            && self.worker.phases.measuring(now)
            && !self.reserved
        {
            if !budget.claim() {
                return Outcome::Finished;
            }
            self.reserved = true;
        }
        deadline.set(Some(now + self.plan().timeout));
        self.connecting = true;
        let connected = self.plan().targets[self.target].connector.connect().await;
        self.connecting = false;
        deadline.set(None);
        match connected {
            Ok(mut stream) => self.session(&mut stream, deadline).await,
            Err(_) => {
                monoio::time::sleep(CONNECT_BACKOFF).await;
                Outcome::Failed(ErrorKind::Connect)
            }
        }
    }

    /// Requests and responses on one open connection.
    async fn session(&mut self, stream: &mut Stream, deadline: &Cell<Option<Instant>>) -> Outcome {
        let target = &self.worker.plan.targets[self.target];
        if self.requests.is_empty() {
            self.requests = target.requests.clone();
        }
        if self.buffer.capacity() < READ_BUFFER_BYTES {
            self.buffer = Vec::with_capacity(READ_BUFFER_BYTES);
        }
        self.buffer.clear();
        self.consumed = 0;
        self.reader.reset();
        let request_len = target.request_len;
        let keepalive = self.plan().keepalive;
        let window = if keepalive { self.plan().pipeline } else { 1 };
        let mut sent_here = 0usize;
        loop {
            let now = Instant::now();
            let mut batch = 0usize;
            let mut out_of_budget = false;
            let stopping = self.plan().abort.is_set() || self.worker.phases.ended(now);
            if !stopping && (keepalive || sent_here == 0) {
                while self.in_flight.len() < window {
                    let since = match &self.pace {
                        Some(pace) if pace.next() > now + TIMER_SLACK => break,
                        // Late: count from the schedule (coordinated omission).
                        // Early (within the timer's slack): count from now.
                        Some(pace) => pace.next().min(now),
                        None => now,
                    };
                    let measured = self.worker.phases.measuring(since);
                    if measured && !self.take_token() {
                        out_of_budget = true;
                        break;
                    }
                    if let Some(pace) = &mut self.pace {
                        let scheduled = pace.next();
                        pace.advance();
                        if measured {
                            let mut tally = self.worker.tally.borrow_mut();
                            tally.behind =
                                tally.behind.max(now.saturating_duration_since(scheduled));
                        }
                    }
                    self.in_flight.push_back(InFlight { since, measured });
                    batch += 1;
                }
            }
            if batch > 0 {
                if self.in_flight.len() == batch {
                    deadline.set(Some(now + self.plan().timeout));
                }
                let requests = std::mem::take(&mut self.requests);
                let (result, requests) = stream
                    .write_all(requests.slice(..batch * request_len))
                    .await;
                self.requests = requests.into_inner();
                if result.is_err() {
                    return Outcome::Failed(ErrorKind::Write);
                }
                sent_here += batch;
            }
            if self.in_flight.is_empty() {
                match &self.pace {
                    Some(pace) if !stopping && !out_of_budget => {
                        let wake = pace.next().checked_sub(TIMER_SLACK).unwrap_or(pace.next());
                        monoio::time::sleep_until(wake.into()).await;
                        continue;
                    }
                    _ => return Outcome::Finished,
                }
            }
            match self.receive(stream, deadline).await {
                Ok(true) => {}
                Ok(false) => return Outcome::Reconnect,
                Err(kind) => return Outcome::Failed(kind),
            }
        }
    }

    /// Reads until at least one response completes. `Ok(false)`: the
    /// connection is done (the server closes it, or keep-alive is off).
    async fn receive(
        &mut self,
        stream: &mut Stream,
        deadline: &Cell<Option<Instant>>,
    ) -> Result<bool, ErrorKind> {
        let keepalive = self.plan().keepalive;
        let mut completed = 0usize;
        loop {
            while self.consumed < self.buffer.len() {
                let (used, step) = self
                    .reader
                    .advance(&self.buffer[self.consumed..])
                    .map_err(|_| ErrorKind::Parse)?;
                self.consumed += used;
                match step {
                    Step::NeedMore => break,
                    Step::Done(response) => {
                        self.complete(response.status)?;
                        completed += 1;
                        if response.close || !keepalive {
                            return Ok(false);
                        }
                        if self.in_flight.is_empty() {
                            break;
                        }
                    }
                }
            }
            if completed > 0 {
                deadline.set(if self.in_flight.is_empty() {
                    None
                } else {
                    Some(self.read_at + self.plan().timeout)
                });
                return Ok(true);
            }
            // Make room, then read more.
            if self.consumed == self.buffer.len() {
                self.buffer.clear();
                self.consumed = 0;
            } else if self.buffer.capacity() - self.buffer.len() < MIN_READ_ROOM {
                self.buffer.copy_within(self.consumed.., 0);
                self.buffer.truncate(self.buffer.len() - self.consumed);
                self.consumed = 0;
                if self.buffer.capacity() - self.buffer.len() < MIN_READ_ROOM {
                    // A head bigger than the buffer (the parser caps it).
                    self.buffer.reserve(self.buffer.capacity());
                }
            }
            let buffer = std::mem::take(&mut self.buffer);
            let (len, cap) = (buffer.len(), buffer.capacity());
            let (result, buffer) = stream.read(buffer.slice_mut(len..cap)).await;
            self.buffer = buffer.into_inner();
            let now = Instant::now();
            self.read_at = now;
            match result {
                Ok(0) => {
                    return match self.reader.at_eof() {
                        Ok(Some(response)) => {
                            self.complete(response.status)?;
                            Ok(false)
                        }
                        // Closed between responses with requests outstanding.
                        Ok(None) | Err(()) => Err(ErrorKind::Read),
                    };
                }
                Ok(n) => {
                    if self.worker.phases.measuring(now) {
                        self.worker.tally.borrow_mut().bytes_read += n as u64;
                    }
                }
                Err(_) => return Err(ErrorKind::Read),
            }
        }
    }

    /// A response ended (at `self.read_at`): match it to its request.
    fn complete(&mut self, status: u16) -> Result<(), ErrorKind> {
        // A response nobody asked for is a protocol error.
        let request = self.in_flight.pop_front().ok_or(ErrorKind::Parse)?;
        let now = self.read_at;
        if request.measured && !self.worker.phases.ended(now) {
            let mut tally = self.worker.tally.borrow_mut();
            tally.record(status, now.saturating_duration_since(request.since), now);
            self.plan().live[self.worker.index]
                .requests
                .store(tally.requests, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Takes a `-n` token for a measured request (always succeeds without `-n`).
    fn take_token(&mut self) -> bool {
        match &self.worker.plan.budget {
            None => true,
            Some(_) if std::mem::take(&mut self.reserved) => true,
            Some(budget) => budget.claim(),
        }
    }

    /// The connection ended with requests unanswered: they are neither
    /// completed nor (by themselves) errors; give their tokens back.
    fn abandon_in_flight(&mut self) {
        let mut unused = self.in_flight.drain(..).filter(|r| r.measured).count() as u64;
        if std::mem::take(&mut self.reserved) {
            unused += 1;
        }
        if let Some(budget) = &self.worker.plan.budget {
            budget.give_back(unused);
        }
    }

    fn count_error(&mut self, kind: ErrorKind) {
        let now = Instant::now();
        let phases = &self.worker.phases;
        if !phases.measuring(now) || phases.ended(now) {
            return;
        }
        let mut tally = self.worker.tally.borrow_mut();
        tally.errors.add(kind, 1);
        self.worker.plan.live[self.worker.index]
            .errors
            .store(tally.errors.total(), Ordering::Relaxed);
        if let Some(budget) = &self.worker.plan.budget
            && budget.note_error()
        {
            self.worker.plan.abort.set();
        }
    }
}

/// Completes when the deadline in `deadline` passes. The timer is re-armed
/// only when it fires early (the deadline moved on) or while idle.
async fn watchdog(deadline: &Cell<Option<Instant>>, mut sleep: Pin<&mut Sleep>, timeout: Duration) {
    loop {
        sleep.as_mut().await;
        let now = Instant::now();
        match deadline.get() {
            Some(at) if at <= now => return,
            Some(at) => sleep.as_mut().reset(at.into()),
            None => sleep.as_mut().reset((now + timeout).into()),
        }
    }
}
