//! One HTTP/2 session on an open connection: the HTTP/2 counterpart of
//! `Connection::session`. It keeps the connection's bookkeeping (the
//! `in_flight` queue, `-n` tokens, the open-loop pace, the watchdog
//! deadline) exactly as HTTP/1.1 does, and adds a queue of stream ids kept
//! in step with `in_flight`, because HTTP/2 answers out of order.
//!
//! The connection is split and two loops share it, taking turns on the one
//! thread (state in `RefCell`s, never borrowed across an `.await`):
//!
//! - the sender admits requests (as the pace, the `-n` budget, `--streams`
//!   and the server's MAX_CONCURRENT_STREAMS allow), opens a stream for
//!   each and writes whatever the connection state queued; then it sleeps
//!   until the receiver signals or the next scheduled send is due — so in
//!   open loop a request goes out on time while others are still waiting
//!   for their responses;
//! - the receiver reads, feeds the frames to [`H2Conn`], matches responses,
//!   resets and GOAWAYs to requests, and signals the sender.
//!
//! A GOAWAY stops new streams; the session ends when the streams the server
//! kept have finished, and the connection loop reconnects.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::{Poll, Waker};
use std::time::Instant;

use monoio::buf::IoBufMut;

use super::conn::{Event, H2Conn};
use super::frame::code;
use crate::connection::{Connection, Outcome, TIMER_SLACK};
use crate::plan::Protocol;
use crate::report::ErrorKind;
use crate::transport::{Stream, StreamReader, StreamWriter};

/// Read buffer size per HTTP/2 connection (holds at least one full frame).
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// Compact the read buffer when less than this much room is left at its end.
const MIN_READ_ROOM: usize = 16 * 1024 + super::frame::HEADER_BYTES;

/// What the two loops share.
struct Shared<'a> {
    conn: RefCell<&'a mut Connection>,
    h2: RefCell<H2Conn>,
    /// The stream id of each request in `conn.in_flight`, in the same order.
    streams: RefCell<VecDeque<u32>>,
    /// The receiver changed something the sender should look at.
    wake: Signal,
    deadline: &'a Cell<Option<Instant>>,
}

/// Runs requests over HTTP/2 on `stream` until the connection ends.
pub(crate) async fn session(
    conn: &mut Connection,
    stream: Stream,
    deadline: &Cell<Option<Instant>>,
) -> Outcome {
    if let Stream::Tls(tls) = &stream
        && tls.alpn_protocol().as_deref() != Some(super::ALPN)
    {
        // The pre-flight handshake saw h2; this server has changed its mind.
        return Outcome::Failed(ErrorKind::Connect);
    }
    let streams = match conn.recorder.plan.protocol {
        Protocol::H2 { streams } => streams,
        Protocol::Http1 => 1,
    };
    let shared = Shared {
        conn: RefCell::new(conn),
        h2: RefCell::new(H2Conn::new()),
        streams: RefCell::new(VecDeque::with_capacity(streams)),
        wake: Signal::default(),
        deadline,
    };
    let (reader, writer) = stream.into_split();
    monoio::select! {
        outcome = send(&shared, writer, streams) => outcome,
        outcome = receive(&shared, reader) => outcome,
    }
}

/// The sending loop: see the module doc.
async fn send(shared: &Shared<'_>, mut writer: StreamWriter, streams: usize) -> Outcome {
    let recorder = shared.conn.borrow().recorder.clone();
    let plan = &recorder.plan;
    let target = shared.conn.borrow().target;
    let lines = &plan.targets[target].requests.lines;
    let window = if plan.keepalive { streams } else { 1 };
    let mut writing = Vec::with_capacity(4096);
    let mut opened = 0usize;
    loop {
        let now = Instant::now();
        let stopping = shared.conn.borrow().stopping(now);
        let mut out_of_budget = false;
        let mut admitted_now = 0;
        let idle_before;
        {
            let mut conn = shared.conn.borrow_mut();
            let mut h2 = shared.h2.borrow_mut();
            idle_before = conn.in_flight.is_empty();
            if !stopping && (plan.keepalive || opened == 0) && h2.room() > 0 {
                let window = window.min(conn.in_flight.len() + h2.room());
                let admitted = conn.admit(window, now);
                out_of_budget = admitted.out_of_budget;
                admitted_now = admitted.batch;
                let mut streams = shared.streams.borrow_mut();
                let batch = conn.in_flight.len() - admitted.batch..;
                for request in conn.in_flight.range(batch) {
                    let request = lines[request.line as usize]
                        .h2
                        .as_ref()
                        .expect("HTTP/2 runs render an h2 form of every request");
                    streams.push_back(h2.open(&request.block, request.body.as_ref()));
                }
                opened += admitted.batch;
                if admitted.batch > 0 && conn.in_flight.len() == admitted.batch {
                    shared.deadline.set(Some(now + plan.timeout));
                }
            }
            std::mem::swap(&mut writing, h2.output());
        }
        if !writing.is_empty() {
            let (result, written) = writer.write_all(writing).await;
            writing = written;
            writing.clear();
            if result.is_err() {
                return Outcome::Failed(ErrorKind::Write);
            }
        }
        // Sleep until the receiver has news, or until the next scheduled
        // send if a stream is free for it.
        let go_round = {
            let conn = shared.conn.borrow();
            let h2 = shared.h2.borrow();
            if conn.in_flight.is_empty() {
                if h2.closing() || (!plan.keepalive && opened > 0) {
                    return Outcome::Reconnect;
                }
                // Closed loop: done when nothing was in flight and nothing
                // could be admitted this turn.
                if stopping
                    || out_of_budget
                    || conn.pace.is_none() && idle_before && admitted_now == 0
                {
                    return Outcome::Finished;
                }
            }
            // Closed loop with nothing in flight now although requests were
            // in flight or sent this turn: they were answered while this
            // turn's write was pending (the receiver runs meanwhile). Admit
            // the next ones; finishing here ended `-n` runs after a single
            // request.
            conn.in_flight.is_empty() && conn.pace.is_none()
        };
        if go_round {
            continue;
        }
        let due = {
            let conn = shared.conn.borrow();
            let h2 = shared.h2.borrow();
            let free = conn.in_flight.len() < window && h2.room() > 0;
            match &conn.pace {
                Some(pace) if free && !stopping && !out_of_budget => {
                    Some(pace.next().checked_sub(TIMER_SLACK).unwrap_or(pace.next()))
                }
                _ => None,
            }
        };
        match due {
            Some(at) => {
                monoio::select! {
                    _ = shared.wake.wait() => {},
                    _ = monoio::time::sleep_until(at.into()) => {},
                }
            }
            None => shared.wake.wait().await,
        }
    }
}

/// The receiving loop: see the module doc. It ends the session on a read
/// error, a protocol error, or a GOAWAY with an error code.
async fn receive(shared: &Shared<'_>, mut reader: StreamReader) -> Outcome {
    let recorder = shared.conn.borrow().recorder.clone();
    let timeout = recorder.plan.timeout;
    let mut buffer = Vec::with_capacity(READ_BUFFER_BYTES);
    let mut consumed = 0usize;
    let mut events = Vec::new();
    loop {
        // Make room, then read.
        if consumed == buffer.len() {
            buffer.clear();
            consumed = 0;
        } else if buffer.capacity() - buffer.len() < MIN_READ_ROOM {
            buffer.copy_within(consumed.., 0);
            buffer.truncate(buffer.len() - consumed);
            consumed = 0;
        }
        let (len, cap) = (buffer.len(), buffer.capacity());
        let (result, read) = reader.read(buffer.slice_mut(len..cap)).await;
        buffer = read.into_inner();
        let now = Instant::now();
        let mut conn = shared.conn.borrow_mut();
        conn.read_at = now;
        match result {
            // Closed between responses: a clean close.
            Ok(0) if conn.in_flight.is_empty() => return Outcome::Reconnect,
            // Closed with requests outstanding.
            Ok(0) | Err(_) => return Outcome::Failed(ErrorKind::Read),
            Ok(n) => recorder.bytes_read(n, now),
        }
        let received = shared
            .h2
            .borrow_mut()
            .receive(&buffer[consumed..], &mut events);
        match received {
            Ok(used) => consumed += used,
            // A connection error. The GOAWAY the state queued is not
            // sent: the session ends and the connection is dropped.
            Err(_) => return Outcome::Failed(ErrorKind::Parse),
        }
        let mut streams = shared.streams.borrow_mut();
        let mut completed = 0usize;
        for event in events.drain(..) {
            match event {
                Event::Response { stream, status } => {
                    let Some(index) = streams.iter().position(|&id| id == stream) else {
                        continue;
                    };
                    streams.remove(index);
                    if let Err(kind) = conn.complete_nth(index, status) {
                        return Outcome::Failed(kind);
                    }
                    completed += 1;
                }
                Event::Reset { stream, .. } => {
                    if let Some(index) = streams.iter().position(|&id| id == stream) {
                        streams.remove(index);
                        conn.forget_nth(index);
                        conn.count_error(ErrorKind::Reset);
                    }
                }
                Event::GoAway { last_stream, code } => {
                    // Streams above `last_stream` were never processed:
                    // their requests go back to be sent again.
                    while let Some(index) = streams.iter().position(|&id| id > last_stream) {
                        streams.remove(index);
                        conn.forget_nth(index);
                    }
                    if code != code::NO_ERROR {
                        return Outcome::Failed(ErrorKind::Reset);
                    }
                }
            }
        }
        if completed > 0 || conn.in_flight.is_empty() {
            shared.deadline.set(if conn.in_flight.is_empty() {
                None
            } else {
                Some(conn.read_at + timeout)
            });
        }
        shared.wake.notify();
    }
}

/// A one-slot wake-up for one waiting task on the same thread: `notify`
/// before `wait` is remembered, so no news is lost between the two.
#[derive(Default)]
struct Signal {
    fired: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Signal {
    fn notify(&self) {
        self.fired.set(true);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    async fn wait(&self) {
        poll_fn(|cx| {
            if self.fired.replace(false) {
                Poll::Ready(())
            } else {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}
