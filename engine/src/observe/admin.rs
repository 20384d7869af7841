//! The admin endpoint: a separate listener, served by its own thread, never
//! by the workers. `GET /metrics` (Prometheus text), `GET /healthz` (200
//! while serving, 503 while draining), `GET /config` (the compiled route
//! table as JSON).
//!
//! The thread runs a small monoio runtime of its own (epoll: it needs no
//! ring), so connections are served concurrently: a client that drips its
//! request, or never finishes it, holds one task and nothing else, and
//! `/healthz` stays answerable for everybody else. Each connection gets
//! [`HEAD_TIMEOUT`] for its request head (408 past it), heads over
//! [`MAX_HEAD`] get 431, bodies over [`MAX_BODY`] get 413, and past
//! [`MAX_CONNECTIONS`] open admin connections new ones are closed at once.
//! One request per connection (`Connection: close`).
//!
//! A scrape is a message to the workers (`scrape.rs`); the admin thread
//! sums what they publish, waiting without blocking its other connections.

use super::WorkerReport;
use super::prometheus::{self, Process};
use super::scrape::Scrape;
use crate::control::Shared;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use std::cell::Cell;
use std::net::TcpListener;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tracing::warn;

/// A request head must arrive whole within this (408 past it).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Writing the response must finish within this, or the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head, in bytes (431 past it).
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest request body, in bytes (413 past it); admin requests need none.
pub const MAX_BODY: u64 = 64 * 1024;
/// Open admin connections; more are closed as they are accepted.
pub const MAX_CONNECTIONS: usize = 1024;

/// Starts the admin thread on an already bound listener.
pub fn spawn(
    listener: TcpListener,
    shared: Arc<Shared>,
    scrape: Arc<Scrape>,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("ringway-admin".into())
        .spawn(move || {
            let runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .enable_timer()
                .build();
            match runtime {
                Ok(mut rt) => rt.block_on(accept_loop(listener, Admin { shared, scrape })),
                Err(e) => warn!("admin listener not started: {e}"),
            }
        })?;
    Ok(())
}

/// What the admin answers from.
#[derive(Clone)]
struct Admin {
    shared: Arc<Shared>,
    scrape: Arc<Scrape>,
}

async fn accept_loop(listener: TcpListener, admin: Admin) {
    let listener = match monoio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => return warn!("admin listener not started: {e}"),
    };
    let open = Rc::new(Cell::new(0usize));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                warn!("admin accept failed: {e}");
                monoio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if open.get() >= MAX_CONNECTIONS {
            continue;
        }
        open.set(open.get() + 1);
        let (admin, open) = (admin.clone(), open.clone());
        monoio::spawn(async move {
            serve(stream, &admin).await;
            open.set(open.get() - 1);
        });
    }
}

/// What the client asked for, once its head is read.
struct Asked {
    get: bool,
    path: Vec<u8>,
    /// The query string (for `/usage`).
    query: Vec<u8>,
}

async fn serve(mut s: TcpStream, admin: &Admin) {
    let asked = match monoio::time::timeout(HEAD_TIMEOUT, read_request(&mut s)).await {
        Ok(Ok(Some(asked))) => asked,
        Ok(Ok(None)) => return,
        Ok(Err(status)) => {
            return reply(
                &mut s,
                status,
                "text/plain",
                format!("{}\n", crate::h1::error::reason(status)),
            )
            .await;
        }
        Err(_) => return reply(&mut s, 408, "text/plain", "request head timed out\n".into()).await,
    };
    let (status, ctype, body) = answer(&asked, admin).await;
    reply(&mut s, status, ctype, body).await;
}

/// Reads a request head (and a small body, which admin requests ignore).
/// `Ok(None)`: the client closed or failed before a whole head.
async fn read_request(s: &mut TcpStream) -> Result<Option<Asked>, u16> {
    let mut buf = Vec::with_capacity(1024);
    let head_len = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(431);
        }
        if !read_some(s, &mut buf).await {
            return Ok(None);
        }
    };
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut slots);
    if !matches!(
        req.parse(&buf[..head_len]),
        Ok(httparse::Status::Complete(_))
    ) {
        return Err(400);
    }
    let mut body_len = 0u64;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(413);
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            body_len = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or(400u16)?;
        }
    }
    if body_len > MAX_BODY {
        return Err(413);
    }
    let target = req.path.unwrap_or_default().as_bytes();
    let (path, query) = match target.iter().position(|&b| b == b'?') {
        Some(i) => (&target[..i], &target[i + 1..]),
        None => (target, &b""[..]),
    };
    let asked = Asked {
        get: req.method == Some("GET"),
        path: path.to_vec(),
        query: query.to_vec(),
    };
    // The body is read (and dropped) so that closing after the answer does
    // not reset the connection under the client's feet.
    let want = head_len + body_len as usize;
    while buf.len() < want {
        if !read_some(s, &mut buf).await {
            return Ok(None);
        }
    }
    Ok(Some(asked))
}

/// Reads more bytes onto the end of `buf`; false at end of stream or on error.
async fn read_some(s: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    use monoio::buf::IoBufMut;
    buf.reserve(4096);
    let owned = std::mem::take(buf);
    let (len, cap) = (owned.len(), owned.capacity());
    let (res, slice) = s.read(owned.slice_mut(len..cap)).await;
    *buf = slice.into_inner();
    matches!(res, Ok(n) if n > 0)
}

async fn reply(s: &mut TcpStream, status: u16, ctype: &str, body: String) {
    let reason = crate::h1::error::reason(status);
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    let _ = monoio::time::timeout(WRITE_TIMEOUT, s.write_all(out)).await;
}

/// The answer to one admin request: status, content type, body.
async fn answer(asked: &Asked, admin: &Admin) -> (u16, &'static str, String) {
    let shared = &admin.shared;
    if !asked.get {
        return (405, "text/plain", "only GET\n".to_string());
    }
    match &asked.path[..] {
        b"/metrics" => {
            let reports = collect(&admin.scrape).await;
            let snap = shared.latest();
            let p = Process {
                reloads_ok: shared.reloads_ok.load(Ordering::Relaxed),
                reloads_failed: shared.reloads_failed.load(Ordering::Relaxed),
                draining: shared.draining.load(Ordering::Relaxed),
            };
            (
                200,
                "text/plain; version=0.0.4",
                prometheus::render(&reports, &snap, &p),
            )
        }
        b"/healthz" if shared.draining.load(Ordering::Relaxed) => {
            (503, "text/plain", "draining\n".to_string())
        }
        b"/healthz" => (200, "text/plain", "ok\n".to_string()),
        b"/config" => {
            let reports = collect(&admin.scrape).await;
            (
                200,
                "application/json",
                config_json(&shared.latest(), &reports),
            )
        }
        b"/usage" => usage(&asked.query, shared).await,
        _ => (404, "text/plain", "not found\n".to_string()),
    }
}

/// `GET /usage?key=NAME&from=…&to=…`. Made on a thread of its own (in
/// cluster mode it asks Redis, a blocking client), waited for without
/// blocking other admin connections.
async fn usage(query: &[u8], shared: &Shared) -> (u16, &'static str, String) {
    use super::usage::{query_value, report, today};
    let Some(key) = query_value(query, "key") else {
        return (400, "text/plain", "give ?key=NAME\n".into());
    };
    let (day, unix) = today();
    let from = query_value(query, "from");
    let to = query_value(query, "to");
    let days = match crate::cluster::usage::Days::parse(from.as_deref(), to.as_deref(), day) {
        Ok(d) => d,
        Err(e) => return (400, "text/plain", format!("{e}\n")),
    };
    let snap = shared.latest();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(report(&snap, &key, days, unix));
    });
    loop {
        match rx.try_recv() {
            Ok(Ok(r)) => return (200, "application/json", r.to_json()),
            Ok(Err((status, message))) => return (status, "text/plain", format!("{message}\n")),
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                return (500, "text/plain", "the usage report failed\n".into());
            }
            Err(std::sync::mpsc::TryRecvError::Empty) => {
                monoio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }
}

/// Asks every worker for its numbers and waits (bounded) for the answers,
/// serving other admin connections meanwhile.
async fn collect(scrape: &Scrape) -> Vec<WorkerReport> {
    let (wanted, deadline) = scrape.ask();
    loop {
        if let Some(reports) = scrape.answered(wanted, deadline) {
            return reports;
        }
        monoio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn config_json(snap: &crate::snapshot::Snapshot, reports: &[WorkerReport]) -> String {
    let routes: Vec<_> = snap
        .router
        .table()
        .map(|e| {
            let r = &snap.routes[e.route];
            serde_json::json!({
                "host": e.host,
                "method": e.method,
                "path": e.path,
                // A mock route answers by itself: it has no upstream.
                "upstream": if r.policies.mock.is_some() { None } else { snap.upstreams.get(r.upstream).map(|u| u.name.as_str()) },
                "mock": r.policies.mock.is_some(),
                "uri": r.uri_text,
                "websocket": r.websocket,
            })
        })
        .collect();
    let upstreams: Vec<_> = snap
        .upstreams
        .iter()
        .enumerate()
        .map(|(ui, u)| {
            serde_json::json!({
                "name": u.name,
                "balance": super::upstreams::balance_name(u),
                "target_table": super::upstreams::target_table(reports, snap, ui),
                "targets": u.targets.iter().map(|t| format!("{}{}", if t.tls { "https://" } else { "" }, t.authority)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let doc = serde_json::json!({
        "generation": snap.generation,
        "stage": snap.router.stage(),
        "listen": snap.listen.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "upstreams": upstreams,
        "routes": routes,
    });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}
