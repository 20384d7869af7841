//! One client connection, from accept to close: the request loop. Each
//! request's exchange runs its phases in `exchange.rs`; see LIFECYCLE.md
//! beside this file.

use super::context::{Exchange, Next, ReqInfo};
use super::error::Failure;
use super::exchange::exchange;
use super::local::{Active, Worker};
use super::outcome::Outcome;
use super::relay::read_more;
use super::respond::{ErrorAnswer, send_error};
use super::stream::Client;
use super::tunnel::{Handover, tunnel};
use crate::h1::request::{self, RequestHead};
use crate::h1::write::Persist;
use crate::snapshot::Snapshot;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::Poll;
use std::time::Instant;

/// How a connection's task ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The connection is closed (its registry slot can go).
    Closed,
    /// The connection lives on without a task (`Worker::park`).
    Parked,
}

/// Serves one client connection until it closes, times out, parks or the
/// worker drains.
///
/// The task itself holds only what an idle keep-alive connection needs: the
/// socket, the peer, and a readiness wait. No timer either: the worker's
/// sweep wakes connections idle past `keepalive_idle` (see
/// `Worker::close_expired`). Everything a request needs (buffers, head
/// storage, the exchange's state) is taken when bytes arrive, in a block of
/// the worker's pool, and goes back when the connection is idle again, so
/// thousands of idle clients cost little. A plain connection idle past
/// `keepalive_park` gives up even its task: the sweep asks it to park, its
/// socket goes into the worker's epoll set, and bytes on it start a new
/// task here (`first` then reads at once).
pub async fn serve(w: Rc<Worker>, mut client: Client, peer: SocketAddr, slot: usize) -> Ended {
    // Kept apart: an `IpAddr` and a port take less of the task than a `SocketAddr`.
    let (peer_ip, port) = (peer.ip().to_canonical(), peer.port());
    let mut first = true;
    loop {
        // A new connection reads its first request straight away (it usually
        // arrived with the handshake); later, an idle connection waits for
        // readability alone.
        if !first {
            if w.draining.get() {
                return Ended::Closed;
            }
            mark_idle(&w, &client, slot);
            // Inline rather than an `async fn`: each idle connection's task
            // holds this wait, and a nested future would add its own frame.
            let woke = {
                let mut ready = std::pin::pin!(client.wait_readable());
                std::future::poll_fn(|cx| idle_poll(&w, ready.as_mut(), slot, cx)).await
            };
            match woke {
                Woke::Readable => {}
                Woke::Gone => return Ended::Closed,
                Woke::Park => match w.park(slot, client, SocketAddr::new(peer_ip, port)) {
                    Ok(()) => return Ended::Parked,
                    Err(c) => {
                        // Not parked (no descriptor left?): wait as before.
                        client = c;
                        continue;
                    }
                },
            }
        }
        first = false;
        w.set_idle(slot, None);
        let done = crate::sys::pooled::run(&w.blocks, || {
            busy(&w, &mut client, SocketAddr::new(peer_ip, port))
        })
        .await;
        match done {
            Busy::Idle => {}
            Busy::Close => return Ended::Closed,
            // Boxed: a tunnel is rare and long-lived; inlining its state
            // would make every idle connection's future larger.
            Busy::Tunnel(t) => {
                Box::pin(tunnel(&w, client, t)).await;
                return Ended::Closed;
            }
        }
    }
}

/// Registers the connection as idle: when `keepalive_idle` closes it and
/// (plain HTTP/1.1 only) when it parks. A function of its own so none of
/// its locals become part of every idle connection's task.
fn mark_idle(w: &Worker, client: &Client, slot: usize) {
    let snap = w.snapshot();
    let t = &snap.timeouts;
    let now = crate::clock::now();
    if matches!(client, Client::Plain(_)) {
        let park_at = (!t.keepalive_park.is_zero()).then(|| now + t.keepalive_park);
        w.set_idle_parkable(slot, now + t.keepalive_idle, park_at);
    } else {
        w.set_idle(slot, Some(now + t.keepalive_idle));
    }
}

/// What ended an idle connection's wait.
enum Woke {
    /// Bytes (or end of stream) to read.
    Readable,
    /// The socket failed.
    Gone,
    /// The sweep asked it to park.
    Park,
}

/// One poll of an idle connection's wait: the client's next bytes, or the
/// sweep asking this connection to park (the worker keeps the waker, see
/// `Worker::park_asked`).
fn idle_poll(
    w: &Worker,
    ready: std::pin::Pin<&mut impl Future<Output = std::io::Result<()>>>,
    slot: usize,
    cx: &mut std::task::Context<'_>,
) -> Poll<Woke> {
    if let Poll::Ready(r) = ready.poll(cx) {
        return Poll::Ready(if r.is_ok() {
            Woke::Readable
        } else {
            Woke::Gone
        });
    }
    if w.park_asked(slot, cx.waker()) {
        Poll::Ready(Woke::Park)
    } else {
        Poll::Pending
    }
}

/// How a connection's busy spell ended.
enum Busy {
    /// Every request read so far is answered: wait for the next.
    Idle,
    Close,
    /// The upstream switched protocols: the connection becomes a tunnel.
    Tunnel(Box<Handover>),
}

/// Serves requests on a connection that has bytes to read, until none are
/// left (pipelined requests are served in turn) or the connection closes.
async fn busy(w: &Worker, client: &mut Client, peer: SocketAddr) -> Busy {
    // The address as text for forwarding fields, logs and IP policies:
    // written here, in the busy state, so idle connections do not keep it.
    let ip = crate::ip_text::IpText::new(peer.ip());
    let ip = &*ip;
    let mut a = w.actives.take();
    let done = loop {
        match request(w, client, &mut a, peer, ip).await {
            Next::KeepAlive if a.rbuf.is_empty() => break Busy::Idle,
            Next::KeepAlive => {}
            Next::Close => break Busy::Close,
            Next::Tunnel(upstream, upstream_pending) => {
                return Busy::Tunnel(Box::new(Handover {
                    upstream,
                    upstream_pending,
                    active: a,
                }));
            }
        }
    };
    w.actives.put(a);
    done
}

/// Reads one request head and serves it: the request id, the access log
/// capture, the exchange, then the metrics and the log line.
async fn request(
    w: &Worker,
    client: &mut Client,
    a: &mut Active,
    peer: SocketAddr,
    ip: &str,
) -> Next {
    // Taken after the idle wait: a reload meanwhile applies to this request.
    let snap_rc = w.snapshot();
    let snap: &Snapshot = &snap_rc;
    let began = crate::clock::now();
    match read_head(client, &mut a.rbuf, &mut a.head, snap).await {
        Ok(true) => {}
        Ok(false) => return Next::Close,
        Err(refusal) => return refuse_head(w, client, a, snap, refusal, (ip, began)).await,
    }
    serve_head(w, client, a, (peer, ip), snap).await
}

/// Serves the request whose head is parsed at the front of `a.rbuf`: the
/// request id, the access log capture, the exchange, then the metrics and
/// the log line. HTTP/2 streams come in here too (`h2conn`).
pub async fn serve_head(
    w: &Worker,
    client: &mut Client,
    a: &mut Active,
    (peer, ip): (SocketAddr, &str),
    snap: &Snapshot,
) -> Next {
    w.stats.requests.set(w.stats.requests.get() + 1);
    let started = crate::clock::now();
    // The request id: every response carries its field line (`fields`), and so does the upstream request.
    a.fields.clear();
    a.upstream_fields.clear();
    let rid = match &snap.request_id {
        Some(name) => crate::request_id::assign(
            &w.ids,
            name,
            Some((&a.rbuf, &a.head)),
            &mut a.fields,
            &mut a.upstream_fields,
        ),
        None => 0..0,
    };
    let logging = w.log.is_some();
    if logging {
        let rid = snap.request_id.is_some().then(|| &a.fields[rid]);
        a.captured
            .capture(&a.rbuf, &a.head, rid, matches!(client, Client::H2(_)));
    }
    let mut outcome = Outcome {
        method_class: crate::observe::method_class(a.head.method(&a.rbuf)),
        head_in: a.head.head_len as u64,
        h2: matches!(client, Client::H2(_)),
        ..Outcome::default()
    };
    let info = ReqInfo::of(&a.head, &a.rbuf);
    let mut ex = Exchange {
        local: w,
        snap,
        client,
        rbuf: &mut a.rbuf,
        head: &a.head,
        resp: &mut a.resp,
        fields: &mut a.fields,
        upstream_fields: &mut a.upstream_fields,
        peer: peer.ip(),
        peer_port: peer.port(),
        ip,
        outcome: &mut outcome,
        info,
    };
    let next = exchange(&mut ex).await;
    w.record(snap, outcome, started);
    if logging {
        w.log_line(
            snap,
            &a.captured,
            ip,
            &outcome,
            crate::clock::elapsed(started),
        );
    }
    next
}

/// Answers a head that did not parse (400/408/414/417/431) and closes
/// (an HTTP/2 stream: ends);
/// the access log gets what is known (client, status, bytes, request id).
pub async fn refuse_head(
    w: &Worker,
    client: &mut Client,
    a: &mut Active,
    snap: &Snapshot,
    (status, message): (u16, &str),
    (ip, began): (&str, Instant),
) -> Next {
    a.fields.clear();
    let rid = match &snap.request_id {
        Some(name) => {
            crate::request_id::assign(&w.ids, name, None, &mut a.fields, &mut a.upstream_fields)
        }
        None => 0..0,
    };
    let answer = ErrorAnswer {
        status,
        message,
        persist: Persist::Close,
    };
    let sent = send_error(&w.pools, client, snap, answer, &a.fields).await;
    // The head did not parse: its method is unknown.
    let outcome = Outcome {
        status,
        method_class: 2,
        bytes_sent: sent.unwrap_or(0),
        ..Outcome::default()
    };
    w.record(snap, outcome, crate::clock::now());
    if w.log.is_some() {
        let rid = snap.request_id.is_some().then(|| &a.fields[rid]);
        a.captured.refused(rid, a.rbuf.len() as u64);
        w.log_line(
            snap,
            &a.captured,
            ip,
            &outcome,
            crate::clock::elapsed(began),
        );
    }
    Next::Close
}

/// Reads until `rbuf` starts with a whole request head, which must arrive
/// within `header_read` (408 past it). `Ok(false)`: the client closed first.
async fn read_head(
    client: &mut Client,
    rbuf: &mut Vec<u8>,
    head: &mut RequestHead,
    snap: &Snapshot,
) -> Result<bool, (u16, &'static str)> {
    let deadline = crate::clock::now() + snap.timeouts.header_read;
    loop {
        if !rbuf.is_empty() {
            match request::parse(rbuf, &snap.limits, head) {
                Ok(true) => {
                    // Before anything reads the path: dot segments resolved.
                    return match head.normalize_path(rbuf, snap.merge_slashes) {
                        Ok(()) => Ok(true),
                        Err(_) => Err((400, "the path climbs above the root")),
                    };
                }
                Ok(false) => {}
                Err(e) => return Err((e.status(), e.as_str())),
            }
        }
        let limit = deadline.saturating_duration_since(crate::clock::now());
        let had_bytes = !rbuf.is_empty();
        if limit.is_zero() {
            return if had_bytes {
                Err((408, "request header timed out"))
            } else {
                Ok(false)
            };
        }
        match read_more(client, rbuf, limit).await {
            Ok(0) => return Ok(false),
            Ok(_) => {}
            Err(Failure::Timeout) if had_bytes => return Err((408, "request header timed out")),
            Err(_) => return Ok(false),
        }
    }
}

#[cfg(test)]
mod size_tests {
    /// Runs `f` with a worker and a connected plain client, on a runtime.
    fn with_connection<T>(
        f: impl FnOnce(std::rc::Rc<super::Worker>, super::Client, std::net::SocketAddr) -> T,
    ) -> T {
        let snap = crate::config::from_str(std::path::Path::new("x"), "").unwrap();
        let w = super::Worker::new(0, std::sync::Arc::new(snap), None);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(async move {
            let s = monoio::net::TcpStream::connect_addr(listener.local_addr().unwrap())
                .await
                .unwrap();
            let peer = s.local_addr().unwrap();
            f(w, super::Client::Plain(s), peer)
        })
    }

    /// An idle keep-alive connection costs its task, whose size is the
    /// largest state of `serve`. This guards against a change that makes
    /// every idle connection heavier without anyone noticing.
    #[test]
    fn the_connection_future_stays_small() {
        let size = with_connection(|w, client, peer| {
            std::mem::size_of_val(&super::serve(w, client, peer, 0))
        });
        // It holds the socket, the peer and a readiness wait; a request's
        // state lives in a pooled block (`sys::pooled`) only while busy.
        // 456 since the HTTP/2 arm of `Client`: a third variant costs the enum a tag word;
        // 488 since the idle wait also listens for the sweep's request to park
        // (a parked connection has no task at all); 464 since the client's
        // address as text is made per busy spell (`ip_text`), not kept.
        assert!(size <= 464, "the connection future grew to {size} bytes");
    }

    /// A busy connection's state (the request path's nested futures) is
    /// walked level by level on every poll. Nothing in it may ask for more
    /// than word alignment: one monoio `Sleep` inline (640 bytes, aligned
    /// to 128) padded every level above it, 3,072 bytes in all against
    /// 2,528, and ~9% more simulated cache misses per request at 256
    /// connections (see `retry::retry`). (Moving values held on rare
    /// paths out of the usual awaits' scope took it to 2,224 bytes and
    /// helped at 256 connections, but cost 3–7% at 64 in fixed-rate A/Bs,
    /// and was not kept.)
    #[test]
    fn the_busy_state_is_word_aligned_and_compact() {
        let (align, size) = with_connection(|w, mut client, peer| {
            let busy = super::busy(&w, &mut client, peer);
            (std::mem::align_of_val(&busy), std::mem::size_of_val(&busy))
        });
        assert!(align <= 8, "the busy state asks for {align}-byte alignment");
        assert!(size <= 2528, "the busy state grew to {size} bytes");
    }
}
