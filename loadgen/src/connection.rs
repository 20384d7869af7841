//! One connection's request loop. A connection's life: connect (TCP, then
//! TLS) → session (HTTP/1.1 here: send up to `pipeline` requests, read
//! responses, repeat; HTTP/2 in `h2::session`, on the same bookkeeping:
//! [`Connection::admit`], [`Connection::complete_nth`]) → on close or
//! error, count it and connect again, until the run ends. Everything it counts goes to the worker's
//! [`Recorder`]; the requests it sends were rendered once by the control
//! thread (`plan::RequestSet`) and are written with one submission per batch.
//!
//! A per-connection watchdog timer enforces `--timeout`: it is armed by
//! writing a deadline into a `Cell` and only re-armed when it fires, so
//! requests cost no timer operations.

use std::cell::Cell;
use std::collections::VecDeque;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::buf::{IoBuf, IoBufMut};
use monoio::time::Sleep;

use crate::codec::{ResponseReader, Step};
use crate::plan::{Plan, Protocol};
use crate::recorder::Recorder;
use crate::report::ErrorKind;
use crate::schedule::Pace;
use crate::transport::Stream;

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
pub(crate) const TIMER_SLACK: Duration = Duration::from_millis(1);
/// How one connect-and-session cycle ended.
pub(crate) enum Outcome {
    /// Clean close (keep-alive off, `Connection: close`, idle close): go again.
    Reconnect,
    /// Nothing more to send: the run is over for this connection.
    Finished,
    Failed(ErrorKind),
}

/// A request on the wire, waiting for its response.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InFlight {
    /// Latency is measured from here: the send time (closed loop) or the
    /// scheduled send time (open loop).
    since: Instant,
    /// Sent during measurement (holds a `-n` token).
    measured: bool,
    /// Which request of the target's set (mix line) it is.
    pub(crate) line: u32,
}

/// What [`Connection::admit`] did.
pub(crate) struct Admitted {
    /// Requests added to `in_flight`, to be sent now.
    pub batch: usize,
    /// The `-n` budget ran out: nothing more will be admitted.
    pub out_of_budget: bool,
}

pub(crate) struct Connection {
    pub(crate) recorder: Rc<Recorder>,
    pub(crate) target: usize,
    pub(crate) pace: Option<Pace>,
    /// HTTP/1.1: the bytes of the next write. With one request: `pipeline`
    /// copies of it, built once, and a batch writes a prefix. With a mix:
    /// rebuilt per batch from the rendered lines (a copy, no allocation once
    /// grown). Empty only after a cancelled write took it.
    out: Vec<u8>,
    /// Position in the target's wheel of mix lines.
    cursor: usize,
    /// Read buffer; `consumed..len()` is unparsed. Empty after a cancelled read.
    buffer: Vec<u8>,
    consumed: usize,
    reader: ResponseReader,
    /// Requests sent and not answered, in send order (HTTP/2 answers
    /// out of order: see `h2::session`).
    pub(crate) in_flight: VecDeque<InFlight>,
    /// A `-n` token taken before connecting (so no connection is opened
    /// without a request to send); used by the first request.
    reserved: bool,
    /// When the bytes now in `buffer` arrived.
    pub(crate) read_at: Instant,
    /// A connect is under way (so a timeout is a connect error).
    connecting: bool,
    /// A connection opened before the start line, used by the first cycle.
    ready: Option<Stream>,
}

impl Connection {
    pub fn new(recorder: Rc<Recorder>, global: usize, ready: Option<Stream>) -> Self {
        let plan = &recorder.plan;
        let target = global % plan.targets.len();
        let pace = plan
            .rate
            .map(|rate| Pace::new(recorder.phases.start, global, plan.connections, rate));
        let set = &plan.targets[target].requests;
        let head = set.lines[0].head;
        // Connections start spread over the wheel, so that together they
        // keep the mix's proportions from the first requests on.
        let cursor = global * set.wheel.len() / plan.connections % set.wheel.len();
        let read_at = recorder.phases.start;
        Connection {
            target,
            pace,
            out: Vec::new(),
            cursor,
            buffer: Vec::new(),
            consumed: 0,
            reader: ResponseReader::new(head),
            in_flight: VecDeque::with_capacity(plan.pipeline),
            reserved: false,
            read_at,
            connecting: false,
            ready,
            recorder,
        }
    }

    fn plan(&self) -> &Plan {
        &self.recorder.plan
    }

    pub async fn run(mut self) {
        let timeout = self.plan().timeout;
        let deadline = Cell::new(None);
        let end = self.recorder.phases.end;
        let first = Instant::now() + timeout;
        let mut dog = pin!(monoio::time::sleep_until(
            end.map_or(first, |end| end.min(first)).into()
        ));
        while !self.plan().abort.is_set() {
            // One timer for both the request timeout and the end of the
            // run: every wake-up of this task polls it once.
            let outcome = monoio::select! {
                outcome = self.cycle(&deadline) => outcome,
                alarm = watchdog(&deadline, dog.as_mut(), timeout, end) => match alarm {
                    Alarm::Timeout => Outcome::Failed(ErrorKind::Timeout),
                    Alarm::End => Outcome::Finished,
                },
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
        if self.plan().budget.is_some() && self.recorder.phases.measuring(now) && !self.reserved {
            if !self.recorder.claim() {
                return Outcome::Finished;
            }
            self.reserved = true;
        }
        let connected = match self.ready.take() {
            Some(stream) => Ok(stream),
            None => {
                deadline.set(Some(now + self.plan().timeout));
                self.connecting = true;
                let connected = self.plan().targets[self.target].connector.connect().await;
                self.connecting = false;
                deadline.set(None);
                connected
            }
        };
        match (connected, self.plan().protocol) {
            (Ok(mut stream), Protocol::Http1) => self.session(&mut stream, deadline).await,
            (Ok(stream), Protocol::H2 { .. }) => crate::h2::session(self, stream, deadline).await,
            (Err(_), _) => {
                monoio::time::sleep(CONNECT_BACKOFF).await;
                Outcome::Failed(ErrorKind::Connect)
            }
        }
    }

    /// Requests and responses on one open connection.
    async fn session(&mut self, stream: &mut Stream, deadline: &Cell<Option<Instant>>) -> Outcome {
        let recorder = self.recorder.clone();
        let plan = &recorder.plan;
        let set = &plan.targets[self.target].requests;
        let single = set.lines.len() == 1;
        let keepalive = plan.keepalive;
        let window = if keepalive { plan.pipeline } else { 1 };
        if single && self.out.is_empty() {
            self.out = set.lines[0].bytes.repeat(window);
        }
        if self.buffer.capacity() < READ_BUFFER_BYTES {
            self.buffer = Vec::with_capacity(READ_BUFFER_BYTES);
        }
        self.buffer.clear();
        self.consumed = 0;
        self.reader.reset();
        let mut sent_here = 0usize;
        loop {
            // Closed loop sends right after a read: that read's timestamp is
            // the send time, so a request costs no clock read of its own.
            let now = if self.pace.is_none() && sent_here > 0 {
                self.read_at
            } else {
                Instant::now()
            };
            let stopping = self.stopping(now);
            let Admitted {
                batch,
                out_of_budget,
            } = if !stopping && (keepalive || sent_here == 0) {
                self.admit(window, now)
            } else {
                Admitted {
                    batch: 0,
                    out_of_budget: false,
                }
            };
            if batch > 0 {
                if self.in_flight.len() == batch {
                    deadline.set(Some(now + plan.timeout));
                }
                let len = if single {
                    batch * set.lines[0].bytes.len()
                } else {
                    self.out.clear();
                    let admitted = self.in_flight.len() - batch..;
                    for request in self.in_flight.range(admitted) {
                        self.out
                            .extend_from_slice(&set.lines[request.line as usize].bytes);
                    }
                    self.out.len()
                };
                let out = std::mem::take(&mut self.out);
                let (result, out) = stream.write_all(out.slice(..len)).await;
                self.out = out.into_inner();
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
        let recorder = self.recorder.clone();
        let lines = &recorder.plan.targets[self.target].requests.lines;
        let keepalive = recorder.plan.keepalive;
        let mut completed = 0usize;
        loop {
            while self.consumed < self.buffer.len() {
                if lines.len() > 1
                    && self.reader.at_boundary()
                    && let Some(next) = self.in_flight.front()
                {
                    self.reader.expect_head(lines[next.line as usize].head);
                }
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
                Ok(n) => self.recorder.bytes_read(n, now),
                Err(_) => return Err(ErrorKind::Read),
            }
        }
    }

    /// The run is over for new requests (aborted, or past its end).
    pub(crate) fn stopping(&self, now: Instant) -> bool {
        self.plan().abort.is_set() || self.recorder.phases.ended(now)
    }

    /// Adds requests to `in_flight` until `window` are in flight, as far as
    /// the open-loop schedule and the `-n` budget allow, each the next line
    /// of the target's wheel. The caller sends the last `batch` of
    /// `in_flight` right away.
    pub(crate) fn admit(&mut self, window: usize, now: Instant) -> Admitted {
        let recorder = &*self.recorder;
        let phases = &recorder.phases;
        let wheel = &recorder.plan.targets[self.target].requests.wheel;
        let mut admitted = Admitted {
            batch: 0,
            out_of_budget: false,
        };
        while self.in_flight.len() < window {
            let scheduled = match &self.pace {
                Some(pace) if pace.next() > now + TIMER_SLACK => break,
                // Scheduled after the end: not part of this run.
                Some(pace) if phases.ended(pace.next()) => break,
                Some(pace) => pace.next(),
                None => now,
            };
            // Late: count from the schedule (coordinated omission).
            // Early (within the timer's slack): count from now.
            let since = scheduled.min(now);
            let measured = phases.measuring(scheduled);
            // A measured request takes a `-n` token (the reserved one first).
            if measured && !(std::mem::take(&mut self.reserved) || recorder.claim()) {
                admitted.out_of_budget = true;
                break;
            }
            if let Some(pace) = &mut self.pace {
                pace.advance();
                if measured {
                    recorder.behind(now.saturating_duration_since(scheduled));
                }
            }
            let line = if wheel.len() == 1 {
                wheel[0]
            } else {
                let line = wheel[self.cursor];
                self.cursor = (self.cursor + 1) % wheel.len();
                line
            };
            self.in_flight.push_back(InFlight {
                since,
                measured,
                line,
            });
            admitted.batch += 1;
        }
        admitted
    }

    /// A response ended (at `self.read_at`): match it to its request.
    fn complete(&mut self, status: u16) -> Result<(), ErrorKind> {
        self.complete_nth(0, status)
    }

    /// The response to the `index`th request in flight ended (at `self.read_at`).
    pub(crate) fn complete_nth(&mut self, index: usize, status: u16) -> Result<(), ErrorKind> {
        // A response nobody asked for is a protocol error.
        let request = self.in_flight.remove(index).ok_or(ErrorKind::Parse)?;
        self.recorder.complete(
            request.measured,
            status,
            request.line as usize,
            request.since,
            self.read_at,
        );
        Ok(())
    }

    /// The `index`th request in flight will get no answer (HTTP/2: reset,
    /// or refused by a GOAWAY): its `-n` token goes back for a retry.
    pub(crate) fn forget_nth(&mut self, index: usize) {
        if let Some(request) = self.in_flight.remove(index)
            && request.measured
        {
            self.recorder.give_back(1);
        }
    }

    /// The connection ended with requests unanswered: they are neither
    /// completed nor (by themselves) errors; give their tokens back.
    fn abandon_in_flight(&mut self) {
        let mut unused = self.in_flight.drain(..).filter(|r| r.measured).count() as u64;
        if std::mem::take(&mut self.reserved) {
            unused += 1;
        }
        self.recorder.give_back(unused);
    }

    pub(crate) fn count_error(&mut self, kind: ErrorKind) {
        self.recorder.error(kind, Instant::now());
    }
}

/// Why the watchdog fired.
enum Alarm {
    /// The deadline in the `Cell` passed.
    Timeout,
    /// The run's end (`-d`) passed.
    End,
}

/// Completes when the deadline in `deadline` or the run's `end` passes.
/// The timer is re-armed only when it fires early (the deadline moved on)
/// or while idle, never per request.
async fn watchdog(
    deadline: &Cell<Option<Instant>>,
    mut sleep: Pin<&mut Sleep>,
    timeout: Duration,
    end: Option<Instant>,
) -> Alarm {
    loop {
        sleep.as_mut().await;
        let now = Instant::now();
        if end.is_some_and(|end| now >= end) {
            return Alarm::End;
        }
        let next = match deadline.get() {
            Some(at) if at <= now => return Alarm::Timeout,
            Some(at) => at,
            None => now + timeout,
        };
        sleep
            .as_mut()
            .reset(end.map_or(next, |end| end.min(next)).into());
    }
}
