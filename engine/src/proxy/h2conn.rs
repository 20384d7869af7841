//! One HTTP/2 client connection (RFC 9113): the task that reads frames and
//! feeds them to the connection's `Session`, a writer task that sends what
//! the session queues, and a task per stream that runs the same exchange as
//! an HTTP/1.1 request (`conn::serve_head`) over an `h2::io::StreamIo`.
//! All of them live on the worker that accepted the connection and use its
//! upstream pools.
//!
//! Closing: an idle connection (no stream open) is marked idle with the
//! `idle_timeout` deadline, so the worker's sweep half-closes it; the read
//! then ends and the connection says GOAWAY and closes. A draining worker,
//! or one that takes up a reloaded config, sends GOAWAY at once
//! (`Worker::goaway_h2`) and half-closes the connection once its last
//! stream is done.

use super::catch::{CatchUnwind, panic_message};
use super::conn::{refuse_head, serve_head};
use super::local::{Stats, Worker};
use super::stream::Client;
use super::tunnel::halves;
use crate::h1::request;
use crate::h2::frame::{self, PREFACE, code};
use crate::h2::io::{ConnInfo, StreamIo};
use crate::h2::session::{Counts, OUT_HIGH, Session};
use std::cell::RefCell;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};
use tracing::{debug, error};

/// What every stream task of a connection needs to know about it.
#[derive(Clone)]
struct Shared {
    w: Rc<Worker>,
    sess: Rc<RefCell<Session>>,
    conn: ConnInfo,
    peer: SocketAddr,
    ip: Rc<str>,
    slot: usize,
}

/// Serves an HTTP/2 connection until it closes. The client preface has
/// not been read yet.
pub async fn serve(w: Rc<Worker>, client: Client, peer: SocketAddr, slot: usize) {
    let snap = w.snapshot();
    let cfg = snap.h2;
    let (header_read, body_idle) = (snap.timeouts.header_read, snap.timeouts.body_idle);
    let max_head = snap.limits.max_head_bytes;
    drop(snap);
    let conn = ConnInfo {
        tls: client.is_tls(),
        local: client.local_addr().unwrap_or(peer),
        fd: client.as_raw_fd(),
    };
    Stats::add(&w.stats.h2_connections, 1);
    let (mut reader, writer) = halves::client(client);
    let sess = Rc::new(RefCell::new(Session::new(cfg, max_head, conn.fd)));
    sess.borrow_mut().start();
    {
        let mut all = w.h2.borrow_mut();
        all.retain(|s| s.strong_count() > 0);
        all.push(Rc::downgrade(&sess));
    }
    if w.draining.get() {
        sess.borrow_mut().send_goaway(code::NO_ERROR);
    }
    let writing = monoio::spawn(write_loop(writer, sess.clone(), body_idle));
    let shared = Shared {
        w: w.clone(),
        sess: sess.clone(),
        conn,
        peer,
        ip: peer.ip().to_canonical().to_string().into(),
        slot,
    };
    // The preface and the client's SETTINGS must come within header_read.
    w.set_idle(slot, Some(Instant::now() + header_read));
    let mut buf = w.pools.take_buf();
    let mut reported = Counts::default();
    let ended = read_loop(&shared, &mut reader, &mut buf, &mut reported).await;
    {
        let mut s = sess.borrow_mut();
        match &ended {
            Some(e) => {
                debug!(worker = w.id, %peer, "HTTP/2 connection error: {}", e.why);
                s.send_goaway(e.code);
            }
            None => s.send_goaway(code::NO_ERROR),
        }
        s.kill();
    }
    report(&w, &sess, &mut reported);
    let _ = writing.await;
    report(&w, &sess, &mut reported);
    if ended.is_some() {
        linger(&mut reader, &mut buf).await;
    }
    w.pools.put_buf(buf);
}

/// How long, and how many bytes, a connection ended by an error is read
/// (and discarded) after its GOAWAY and FIN went out.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 1 << 20;

/// Closing a socket with unread bytes in it sends RST, and a client that
/// is still writing (a flood) then loses the GOAWAY before reading it. So,
/// as nginx's lingering close does, read what the client still sends,
/// bounded in time and bytes, until it closes its side.
async fn linger(reader: &mut halves::Reader, buf: &mut Vec<u8>) {
    let deadline = Instant::now() + LINGER;
    let mut total = 0;
    while total < LINGER_BYTES {
        buf.clear();
        let left = deadline.saturating_duration_since(Instant::now());
        match monoio::time::timeout(left, reader.read_into(buf)).await {
            Ok(Ok(n)) if n > 0 => total += n,
            _ => return,
        }
    }
}

/// Reads and processes frames until the client goes, the connection is
/// half-closed by the worker, or a connection error (returned).
async fn read_loop(
    sh: &Shared,
    reader: &mut halves::Reader,
    buf: &mut Vec<u8>,
    reported: &mut Counts,
) -> Option<crate::h2::session::ConnError> {
    let mut preface = false;
    let frame_room = sh.sess.borrow().cfg.max_frame_size as usize + 9;
    loop {
        // A client that sends without reading what we owe it (PING and
        // SETTINGS acknowledgements) waits for its own socket to drain.
        let backlog = poll_fn(|cx| {
            let mut s = sh.sess.borrow_mut();
            if s.dead || s.out.len() < 2 * OUT_HIGH {
                Poll::Ready(())
            } else {
                s.wait(cx.waker());
                Poll::Pending
            }
        });
        backlog.await;
        if buf.capacity() - buf.len() < frame_room.min(16 * 1024) {
            buf.reserve(frame_room);
        }
        match reader.read_into(buf).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        if !preface {
            let n = buf.len().min(PREFACE.len());
            if buf[..n] != PREFACE[..n] {
                return Some(crate::h2::session::ConnError {
                    code: code::PROTOCOL_ERROR,
                    why: "no client preface",
                });
            }
            if n < PREFACE.len() {
                continue;
            }
            buf.drain(..PREFACE.len());
            preface = true;
        }
        let used = sh.sess.borrow_mut().receive(buf);
        match used {
            Ok(n) => {
                buf.drain(..n);
            }
            Err(e) => return Some(e),
        }
        let started = std::mem::take(&mut sh.sess.borrow_mut().started);
        for id in started {
            start_stream(sh, id);
        }
        idle_mark(sh);
        report(&sh.w, &sh.sess, reported);
    }
}

/// Marks the connection idle (the sweep closes it after `idle_timeout`)
/// while no stream is open.
fn idle_mark(sh: &Shared) {
    let s = sh.sess.borrow();
    if s.streams.is_empty() {
        if s.goaway {
            crate::sys::shutdown_read(s.fd);
        }
        sh.w.set_idle(sh.slot, Some(Instant::now() + s.cfg.idle_timeout));
    } else {
        sh.w.set_idle(sh.slot, None);
    }
}

/// Moves the session's counters into the worker's.
fn report(w: &Worker, sess: &RefCell<Session>, last: &mut Counts) {
    let now = sess.borrow().counts;
    Stats::add(
        &w.stats.h2_resets_received,
        now.resets_received - last.resets_received,
    );
    Stats::add(&w.stats.h2_resets_sent, now.resets_sent - last.resets_sent);
    Stats::add(&w.stats.h2_goaways, now.goaways_sent - last.goaways_sent);
    *last = now;
}

/// Sends what the session queues until the connection is over.
async fn write_loop(mut wr: halves::Writer, sess: Rc<RefCell<Session>>, limit: Duration) {
    let mut buf = Vec::new();
    loop {
        let ready = poll_fn(|cx| {
            let mut s = sess.borrow_mut();
            if !s.out.is_empty() {
                std::mem::swap(&mut s.out, &mut buf);
                s.wake_waiting();
                Poll::Ready(true)
            } else if s.dead {
                Poll::Ready(false)
            } else {
                s.writer = Some(cx.waker().clone());
                Poll::Pending
            }
        });
        if !ready.await {
            break;
        }
        let owned = std::mem::take(&mut buf);
        match monoio::time::timeout(limit, wr.write_owned(owned)).await {
            Ok((Ok(()), b)) => {
                buf = b;
                buf.clear();
            }
            // A client that reads nothing for body_idle, or is gone.
            _ => {
                sess.borrow_mut().kill();
                return;
            }
        }
    }
    let _ = monoio::time::timeout(limit, wr.shutdown()).await;
}

fn start_stream(sh: &Shared, id: u32) {
    let sh = sh.clone();
    Stats::add(&sh.w.stats.h2_streams, 1);
    monoio::spawn(async move {
        // The exchange's state lives in one of the worker's reused blocks,
        // as an HTTP/1.1 request's does: the task itself stays small, so
        // spawning it neither copies nor allocates the whole state.
        let run = crate::sys::pooled::run(&sh.w.blocks, || stream(&sh, id));
        // Its deadlines share one of the worker's pooled timers.
        let outcome = crate::deadline::scoped(sh.w.timers.clone(), CatchUnwind::new(run)).await;
        let w = &sh.w;
        if let Err(payload) = outcome {
            Stats::add(&w.stats.panics, 1);
            error!(worker = w.id, peer = %sh.peer, "HTTP/2 stream task panicked: {}; reset that stream", panic_message(&*payload));
            sh.sess.borrow_mut().finish(id, false);
        }
        w.stats.h2_streams.set(w.stats.h2_streams.get() - 1);
        idle_mark(&sh);
    });
}

/// One stream: its request head parsed as HTTP/1.1, then the exchange.
async fn stream(sh: &Shared, id: u32) {
    let w = &*sh.w;
    let (head, is_head) = {
        let mut s = sh.sess.borrow_mut();
        let Some(st) = s.streams.get_mut(&id) else {
            return;
        };
        (std::mem::take(&mut st.head), st.request.is_head)
    };
    let snap_rc = w.snapshot();
    let snap = &**snap_rc;
    let mut a = w.stream_actives.take();
    a.rbuf.extend_from_slice(&head);
    sh.sess.borrow_mut().recycle_head(head);
    let io = StreamIo::new(
        sh.sess.clone(),
        id,
        sh.conn,
        (is_head, snap.timeouts.body_idle),
    );
    let mut client = Client::H2(Box::new(io));
    let began = Instant::now();
    let parsed = match request::parse(&a.rbuf, &snap.limits, &mut a.head) {
        Ok(true) => match a.head.normalize_path(&mut a.rbuf, snap.merge_slashes) {
            Ok(()) => Ok(()),
            Err(_) => Err((400, "the path climbs above the root")),
        },
        Ok(false) => Err((400, "incomplete request head")),
        Err(e) => Err((e.status(), e.as_str())),
    };
    match parsed {
        Ok(()) => {
            serve_head(w, &mut client, &mut a, (sh.peer, &sh.ip), snap).await;
        }
        Err(refusal) => {
            refuse_head(w, &mut client, &mut a, snap, refusal, (&sh.ip, began)).await;
        }
    }
    let complete = match &mut client {
        Client::H2(io) => io.end(),
        _ => false,
    };
    w.stream_actives.put(a);
    sh.sess.borrow_mut().finish(id, complete);
}

/// Whether the first bytes of a connection are the HTTP/2 client preface:
/// peeked (nothing is consumed), waiting up to `limit` for 24 bytes.
/// `None`: the client went away or sent nothing in time.
pub async fn sniff_preface(stream: &monoio::net::TcpStream, limit: Duration) -> Option<bool> {
    let deadline = Instant::now() + limit;
    let mut seen = [0u8; 24];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        // Not relaxed: the bytes are peeked outside monoio.
        match monoio::time::timeout(left, stream.readable(false)).await {
            Ok(Ok(())) => {}
            _ => return None,
        }
        let n = crate::sys::recv_now(stream.as_raw_fd(), &mut seen, true);
        match n {
            Ok(0) => return None,
            Ok(n) if seen[..n] != frame::PREFACE[..n] => return Some(false),
            Ok(n) if n == PREFACE.len() => return Some(true),
            // A prefix of the preface: wait for the rest.
            Ok(_) => monoio::time::sleep(Duration::from_millis(1)).await,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return None,
        }
    }
}
