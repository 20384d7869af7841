//! One HTTP/2 session on an open connection: the HTTP/2 counterpart of
//! `Connection::session`. It keeps the connection's bookkeeping (the
//! `in_flight` queue, `-n` tokens, the open-loop pace, the watchdog
//! deadline) exactly as HTTP/1.1 does, and adds a queue of stream ids kept
//! in step with `in_flight`, because HTTP/2 answers out of order.
//!
//! The loop: admit up to `--streams` requests (as the pace, the budget and
//! the server's MAX_CONCURRENT_STREAMS allow) and open a stream for each →
//! write everything queued → read once and process every complete frame →
//! repeat. A GOAWAY stops new streams; the session ends when the streams
//! the server kept have finished, and the connection loop reconnects.
//!
//! Known limit: like `--pipeline`, a send that falls due while the session
//! waits for a read goes out when the next bytes arrive; its latency still
//! counts from the scheduled time, and the report's "behind schedule"
//! shows the lag.

use std::cell::Cell;
use std::collections::VecDeque;
use std::time::Instant;

use monoio::buf::IoBufMut;

use super::conn::{Event, H2Conn};
use super::frame::code;
use crate::connection::{Admitted, Connection, Outcome};
use crate::report::ErrorKind;
use crate::transport::Stream;

/// Read buffer size per HTTP/2 connection (holds at least one full frame).
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// Compact the read buffer when less than this much room is left at its end.
const MIN_READ_ROOM: usize = 16 * 1024 + super::frame::HEADER_BYTES;

/// Runs requests over HTTP/2 on `stream` until the connection ends.
pub(crate) async fn session(
    conn: &mut Connection,
    stream: &mut Stream,
    deadline: &Cell<Option<Instant>>,
) -> Outcome {
    if let Stream::Tls(tls) = stream
        && tls.alpn_protocol().as_deref() != Some(b"h2")
    {
        // The pre-flight handshake saw h2; this server has changed its mind.
        return Outcome::Failed(ErrorKind::Connect);
    }
    let worker = conn.worker.clone();
    let plan = &worker.plan;
    let request = plan.targets[conn.target]
        .h2
        .as_ref()
        .expect("h2 sessions run only for h2 targets");
    let timeout = plan.timeout;
    let mut h2 = H2Conn::new(request.body.clone());
    // The stream id of each request in `conn.in_flight`, in the same order.
    let mut streams: VecDeque<u32> = VecDeque::with_capacity(plan.streams);
    let mut events = Vec::new();
    let mut buffer = Vec::with_capacity(READ_BUFFER_BYTES);
    let mut consumed = 0usize;
    let mut writing = Vec::with_capacity(4096);
    let mut opened = 0usize;
    loop {
        let now = Instant::now();
        let stopping = conn.stopping(now);
        let window = if plan.keepalive { plan.streams } else { 1 };
        let mut out_of_budget = false;
        if !stopping && (plan.keepalive || opened == 0) && h2.room() > 0 {
            let window = window.min(conn.in_flight.len() + h2.room());
            let admitted: Admitted = conn.admit(window, now);
            out_of_budget = admitted.out_of_budget;
            for _ in 0..admitted.batch {
                streams.push_back(h2.open(&request.block));
            }
            opened += admitted.batch;
            if admitted.batch > 0 && conn.in_flight.len() == admitted.batch {
                deadline.set(Some(now + timeout));
            }
        }
        if !h2.output().is_empty() {
            std::mem::swap(&mut writing, h2.output());
            let (result, written) = stream.write_all(writing).await;
            writing = written;
            writing.clear();
            if result.is_err() {
                return Outcome::Failed(ErrorKind::Write);
            }
        }
        if conn.in_flight.is_empty() {
            if h2.closing() || (!plan.keepalive && opened > 0) {
                return Outcome::Reconnect;
            }
            if conn.wait_for_schedule(stopping, out_of_budget).await {
                continue;
            }
            return Outcome::Finished;
        }

        // Make room, then read once.
        if consumed == buffer.len() {
            buffer.clear();
            consumed = 0;
        } else if buffer.capacity() - buffer.len() < MIN_READ_ROOM {
            buffer.copy_within(consumed.., 0);
            buffer.truncate(buffer.len() - consumed);
            consumed = 0;
        }
        let (len, cap) = (buffer.len(), buffer.capacity());
        let (result, read) = stream.read(buffer.slice_mut(len..cap)).await;
        buffer = read.into_inner();
        let now = Instant::now();
        conn.read_at = now;
        match result {
            // Closed with streams outstanding.
            Ok(0) | Err(_) => return Outcome::Failed(ErrorKind::Read),
            Ok(n) => {
                if worker.phases.measuring(now) {
                    worker.tally.borrow_mut().bytes_read += n as u64;
                }
            }
        }
        match h2.receive(&buffer[consumed..], &mut events) {
            Ok(used) => consumed += used,
            Err(_) => {
                // Tell the server why (best effort), then give up on the connection.
                let _ = stream.write_all(std::mem::take(h2.output())).await;
                return Outcome::Failed(ErrorKind::Parse);
            }
        }
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
                    // their requests go back to be sent again elsewhere.
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
            deadline.set(if conn.in_flight.is_empty() {
                None
            } else {
                Some(conn.read_at + timeout)
            });
        }
    }
}
