//! One client connection, from accept to close: the request loop and the
//! phases of one proxied exchange. See LIFECYCLE.md beside this file.

use super::error::{Failure, RelayError, Side};
use super::relay::{
    self, Direction, Encode, copy_exact, read_more, relay_chunked, relay_until_close, splice_exact,
    write_all,
};
use super::stream::{Client, Upstream as UpConn};
use super::worker::Worker;
use crate::h1::request::{self, BodyFraming, RequestHead};
use crate::h1::response::{self, ResponseFraming, ResponseHead};
use crate::h1::write::{self, Downstream, Forward, Persist};
use crate::policy::{self, Verdict};
use crate::snapshot::{Snapshot, Target, Upstream};
use monoio::net::TcpStream;
use ringway_router::{ExpandError, Lookup};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

enum Next {
    KeepAlive,
    Close,
    /// The upstream switched protocols (101): tunnel the two connections.
    /// Carries the upstream connection and bytes it sent after the 101 head.
    Tunnel(UpConn, Vec<u8>),
}

/// What the exchange still needs of the request once its head bytes are gone.
#[derive(Clone, Copy)]
struct ReqInfo {
    keep_alive: bool,
    minor: u8,
    is_head: bool,
    idempotent: bool,
    framing: BodyFraming,
    expect_continue: bool,
    /// The request asks to upgrade and its route allows it.
    upgrading: bool,
}

/// Serves one client connection until it closes, times out or the worker drains.
///
/// The task itself holds only what an idle keep-alive connection needs: the
/// socket, the peer, and a readiness wait. No timer either: the worker's
/// sweep wakes connections idle past `keepalive_idle` (see
/// `Worker::close_expired`). Everything a request needs (buffers, head
/// storage, the exchange's state) is taken when bytes arrive, in a block of
/// the worker's pool, and goes back when the connection is idle again, so
/// thousands of idle clients cost little.
pub async fn serve(w: Rc<Worker>, mut client: Client, peer: SocketAddr, slot: usize) {
    let peer_ip = peer.ip().to_canonical();
    let ip = peer_ip.to_string();
    let mut first = true;
    loop {
        // A new connection reads its first request straight away (it usually
        // arrived with the handshake); later, an idle connection waits for
        // readability alone.
        if !first {
            if w.draining.get() {
                return;
            }
            let limit = w.snapshot().timeouts.keepalive_idle;
            w.set_idle(slot, Some(Instant::now() + limit));
            let ready = client.wait_readable().await;
            if ready.is_err() {
                return;
            }
        }
        first = false;
        w.set_idle(slot, None);
        let done = crate::sys::pooled::run(&w.blocks, || busy(&w, &mut client, peer_ip, &ip)).await;
        match done {
            Busy::Idle => {}
            Busy::Close => return,
            // Boxed: a tunnel is rare and long-lived; inlining its state
            // would make every idle connection's future larger.
            Busy::Tunnel(t) => return Box::pin(tunnel(&w, client, t)).await,
        }
    }
}

/// Relays an upgraded connection both ways until either side is done.
async fn tunnel(w: &Worker, client: Client, t: Box<(UpConn, Vec<u8>, Active)>) {
    let (upstream, pending, a) = *t;
    let idle = w.snapshot().timeouts.tunnel_idle;
    // Upgrades are only let through between plain sockets (see `exchange`).
    if let (Client::Plain(c), UpConn::Plain(u)) = (client, upstream) {
        relay::tunnel(w, c, u, &a.rbuf, &pending, idle).await;
    }
    w.put_active(a);
}

/// How a connection's busy spell ended.
enum Busy {
    /// Every request read so far is answered: wait for the next.
    Idle,
    Close,
    /// The upstream switched protocols: the connection becomes a tunnel
    /// (with the upstream connection, what it sent after the 101, and the
    /// client bytes read past the request).
    Tunnel(Box<(UpConn, Vec<u8>, Active)>),
}

/// Serves requests on a connection that has bytes to read, until none are
/// left (pipelined requests are served in turn) or the connection closes.
async fn busy(w: &Worker, client: &mut Client, peer_ip: IpAddr, ip: &str) -> Busy {
    let mut a = w.take_active();
    let done = loop {
        match request(w, client, &mut a, peer_ip, ip).await {
            Next::KeepAlive if a.rbuf.is_empty() => break Busy::Idle,
            Next::KeepAlive => {}
            Next::Close => break Busy::Close,
            Next::Tunnel(upstream, pending) => {
                return Busy::Tunnel(Box::new((upstream, pending, a)));
            }
        }
    };
    w.put_active(a);
    done
}

/// Reads one request head and serves it.
async fn request(
    w: &Worker,
    client: &mut Client,
    a: &mut Active,
    peer_ip: IpAddr,
    ip: &str,
) -> Next {
    // Taken after the idle wait: a reload meanwhile applies to this request.
    let snap_rc = w.snapshot();
    let snap: &Snapshot = &snap_rc;
    match read_head(client, &mut a.rbuf, &mut a.head, snap).await {
        Ok(true) => {}
        Ok(false) => return Next::Close,
        Err((status, message)) => {
            a.fields.clear();
            if let Some(name) = &snap.request_id {
                let mut up = std::mem::take(&mut a.upstream_fields);
                crate::request_id::assign(&w.ids, name, None, &mut a.fields, &mut up);
                a.upstream_fields = up;
            }
            respond_with(w, client, snap, status, message, Persist::Close, &a.fields).await;
            w.record(
                snap,
                // The head did not parse: its method is unknown.
                Outcome {
                    status,
                    method_class: 2,
                    ..Outcome::default()
                },
                Instant::now(),
            );
            return Next::Close;
        }
    }
    w.stats.requests.set(w.stats.requests.get() + 1);
    let started = Instant::now();
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
        a.captured.capture(&a.rbuf, &a.head, rid);
    }
    let mut outcome = Outcome {
        method_class: crate::observe::method_class(a.head.method(&a.rbuf)),
        head_in: a.head.head_len as u64,
        ..Outcome::default()
    };
    let next = exchange(
        w,
        snap,
        client,
        &mut a.rbuf,
        &a.head,
        &mut a.resp,
        (&mut a.fields, &mut a.upstream_fields),
        (peer_ip, ip),
        &mut outcome,
    )
    .await;
    w.record(snap, outcome, started);
    if logging {
        w.log_line(snap, &a.captured, ip, &outcome, started.elapsed());
    }
    next
}

/// What an exchange ended with, for the metrics: the route (if one matched)
/// and the status the client got (0: none, the connection just closed).
#[derive(Clone, Copy, Default)]
pub struct Outcome {
    pub route: Option<usize>,
    pub status: u16,
    /// `Target::id` of the upstream target used, if any.
    pub target: Option<usize>,
    /// From sending the request upstream to its response head.
    pub upstream_time: Option<Duration>,
    /// Response head and body bytes, where the body length is known up front.
    pub bytes_sent: u64,
    /// Request body bytes, where known up front (Content-Length).
    pub body_in: u64,
    /// Request head bytes.
    pub head_in: u64,
    /// `observe::METHOD_CLASSES` index of the request method.
    pub method_class: u8,
}

/// What a connection needs only while it is busy with a request.
pub struct Active {
    pub rbuf: Vec<u8>,
    pub head: RequestHead,
    pub resp: ResponseHead,
    /// Field lines the policy chain adds to this request's response (CORS, Retry-After).
    pub fields: Vec<u8>,
    /// Field lines the policy chain adds to the upstream request (JWT claims).
    pub upstream_fields: Vec<u8>,
    /// Request fields for the access log line (filled only when logging).
    pub captured: crate::observe::access_log::Captured,
}

impl Default for Active {
    fn default() -> Self {
        Active {
            rbuf: Vec::with_capacity(super::worker::BUF_SIZE),
            head: RequestHead::default(),
            resp: ResponseHead::default(),
            fields: Vec::new(),
            upstream_fields: Vec::new(),
            captured: Default::default(),
        }
    }
}

/// Reads until `rbuf` starts with a whole request head, which must arrive
/// within `header_read` (408 past it). `Ok(false)`: the client closed first.
async fn read_head(
    client: &mut Client,
    rbuf: &mut Vec<u8>,
    head: &mut RequestHead,
    snap: &Snapshot,
) -> Result<bool, (u16, &'static str)> {
    let deadline = Instant::now() + snap.timeouts.header_read;
    loop {
        if !rbuf.is_empty() {
            match request::parse(rbuf, &snap.limits, head) {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(e) => return Err((e.status(), e.as_str())),
            }
        }
        let limit = deadline.saturating_duration_since(Instant::now());
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

/// Sends one of ringway's own responses with extra header lines (each ending in CRLF).
async fn respond_with(
    w: &Worker,
    client: &mut Client,
    snap: &Snapshot,
    status: u16,
    message: &str,
    persist: Persist,
    extra: &[u8],
) -> bool {
    let mut out = w.take_buf();
    match snap.gateway_responses.find(status) {
        Some(custom) => {
            let rid = crate::request_id::range(extra, snap.request_id.as_deref());
            custom.write(
                &mut out,
                status,
                message,
                &extra[rid],
                extra,
                write::persist_line(persist),
            );
        }
        None => write::error_response(&mut out, status, message, persist, extra),
    }
    let ok = write_all(client, &mut out, snap.timeouts.body_idle)
        .await
        .is_ok();
    w.put_buf(out);
    ok
}

/// Proxies one request whose head is at the front of `rbuf`.
#[allow(clippy::too_many_arguments)]
async fn exchange(
    w: &Worker,
    snap: &Snapshot,
    client: &mut Client,
    rbuf: &mut Vec<u8>,
    head: &RequestHead,
    resp: &mut ResponseHead,
    (fields, upstream_fields): (&mut Vec<u8>, &mut Vec<u8>),
    (peer, ip): (IpAddr, &str),
    outcome: &mut Outcome,
) -> Next {
    let buf = &rbuf[..];
    let info = ReqInfo {
        keep_alive: head.keep_alive,
        minor: head.minor_version,
        is_head: head.is_head(buf),
        idempotent: head.is_idempotent(buf),
        framing: head.framing,
        expect_continue: head.expect_continue,
        upgrading: false,
    };
    let path = head.path(buf);
    if snap.fault_panic_path.as_deref() == Some(path) {
        panic!(
            "fault injection: request for {:?}",
            String::from_utf8_lossy(path)
        );
    }

    // Phase 1: route (host → path → method), then the backend target. `OPTIONS *`
    // goes where the root path goes.
    let route_path: &[u8] = if path == b"*" || path.is_empty() {
        b"/"
    } else {
        path
    };
    let host = head.host.map(|h| h.get(buf));
    let m = match snap.router.find(head.method(buf), host, route_path) {
        Lookup::Found(m) => m,
        Lookup::MethodNotAllowed { .. }
            if let Some(m) = preflight_route(snap, buf, head, host, route_path) =>
        {
            m
        }
        Lookup::MethodNotAllowed { allow } => {
            fields.extend_from_slice(b"Allow: ");
            fields.extend_from_slice(allow.as_bytes());
            fields.extend_from_slice(b"\r\n");
            return reject(
                w,
                snap,
                client,
                rbuf,
                head,
                info,
                outcome,
                405,
                "method not allowed on this resource",
                fields,
            )
            .await;
        }
        Lookup::NotFound => {
            return reject(
                w,
                snap,
                client,
                rbuf,
                head,
                info,
                outcome,
                404,
                "no route matches this path",
                fields,
            )
            .await;
        }
    };
    let route = &snap.routes[m.route];
    outcome.route = Some(m.route);

    // Phase 1b: the route's policy chain (CORS, IP rules, API key, throttle,
    // mock), before any upstream work. `fields` collects what every response
    // to this request carries (CORS fields; Retry-After on a 429).
    let cors = route.policies.cors.is_some();
    if !route.policies.is_empty() {
        // `req` in a block of its own: a borrowed local would stay in the
        // future's state across the awaits below.
        let verdict = {
            let req = policy::Request {
                buf,
                head,
                peer,
                route: m.route,
                path: route_path,
                found: Some(&m),
            };
            policy::run(
                &route.policies,
                &snap.policy_env(),
                &mut w.policy.borrow_mut(),
                &req,
                fields,
                upstream_fields,
            )
        };
        match verdict {
            Verdict::Forward => {}
            Verdict::Reject(status, message) => {
                return reject(
                    w, snap, client, rbuf, head, info, outcome, status, message, fields,
                )
                .await;
            }
            Verdict::Preflight => {
                let answer = Fixed {
                    status: 204,
                    fields: b"",
                    body: b"",
                };
                return answer_locally(w, snap, client, rbuf, head, info, outcome, answer, fields)
                    .await;
            }
            Verdict::Mock(mock) => {
                if let Some(json) = schema_for(route, head) {
                    let read = read_json_body(w, snap, client, rbuf, head, outcome, json, fields);
                    match Box::pin(read).await {
                        Some(b) => b.discard(w),
                        None => return Next::Close,
                    }
                }
                let answer = Fixed {
                    status: mock.status,
                    fields: &mock.fields,
                    body: &mock.body,
                };
                return answer_locally(w, snap, client, rbuf, head, info, outcome, answer, fields)
                    .await;
            }
        }
    }
    let fields: &[u8] = fields;
    // `tbuf` holds a rewritten request-target when the original cannot be forwarded as is.
    let mut tbuf: Option<Vec<u8>> = None;
    let mut target_slice: Option<&[u8]> = None;
    match &route.template {
        Some(t) => {
            // The buffer goes back before any await: it must not live in the future's state.
            let expanded = {
                let mut b = w.take_buf();
                match t.expand(route_path, &m, &snap.router, head.query(buf), &mut b) {
                    Ok(()) => Ok(b),
                    Err(e) => {
                        w.put_buf(b);
                        Err(e)
                    }
                }
            };
            match expanded {
                Ok(b) => tbuf = Some(b),
                Err(e) => {
                    let status = if e == ExpandError::Unbound { 500 } else { 400 };
                    let message = if e == ExpandError::Traversal {
                        "path parameter would leave the backend path"
                    } else {
                        "invalid path parameter"
                    };
                    return reject(
                        w, snap, client, rbuf, head, info, outcome, status, message, fields,
                    )
                    .await;
                }
            }
        }
        None => {
            // The stage is a gateway concept: the upstream sees the path after it.
            if let Some(stage) = snap.router.stage() {
                let full = head.target.get(buf);
                let rest = full.get(stage.len()..).unwrap_or_default();
                if rest.first() == Some(&b'/') {
                    target_slice = Some(rest);
                } else if path != b"*" {
                    let mut b = w.take_buf();
                    b.push(b'/');
                    b.extend_from_slice(rest);
                    tbuf = Some(b);
                }
            }
        }
    }
    let up = &snap.upstreams[route.upstream];
    let target = w.pick_target(snap, route.upstream);
    outcome.target = Some(target.id);
    if let BodyFraming::Length(n) = head.framing {
        outcome.body_in = n;
    }
    // Tunnels splice between plain sockets; upgrades over TLS are not let through yet.
    let upgrading = route.websocket
        && head.upgrade.is_some()
        && !head.has_body()
        && !client.is_tls()
        && !target.tls;
    let mut info = ReqInfo { upgrading, ..info };

    // Query string mapping (`[route.mapping]`) applies to the target as the
    // upstream would get it.
    // Mapping the path and query: done before any await, so that nothing of it
    // lives on in the future's state.
    let mapping_failed = match route
        .policies
        .mapping
        .as_deref()
        .filter(|m| m.rewrites_target())
    {
        None => None,
        Some(map) => {
            let now = tbuf
                .as_deref()
                .or(target_slice)
                .unwrap_or(head.target.get(buf));
            let mut b = w.take_buf();
            let rid = crate::request_id::range(fields, snap.request_id.as_deref());
            let r = map_target(
                map,
                &snap.policy_env(),
                (buf, head),
                peer,
                route_path,
                &m,
                &fields[rid],
                now,
                &mut b,
            );
            if let Some(old) = tbuf.replace(b) {
                w.put_buf(old);
            }
            r.err()
        }
    };
    if let Some(message) = mapping_failed {
        if let Some(b) = tbuf.take() {
            w.put_buf(b);
        }
        return reject(
            w, snap, client, rbuf, head, info, outcome, 400, message, fields,
        )
        .await;
    }

    // Phase 1c: a route with a JSON Schema reads the whole body and checks
    // it before any upstream work; it goes on with a Content-Length. (Never
    // borrow `body`: a borrowed local stays in the future's state across
    // every later await.)
    let (body, length) = match schema_for(route, head) {
        None => (None, None),
        Some(json) => {
            let read = read_json_body(w, snap, client, rbuf, head, outcome, json, fields);
            let Some(b) = Box::pin(read).await else {
                if let Some(b) = tbuf {
                    w.put_buf(b);
                }
                return Next::Close;
            };
            let n = b.length();
            (Some(b), Some(n))
        }
    };
    if let Some(n) = length {
        outcome.body_in = n;
        info.framing = BodyFraming::None;
    }

    // Phase 2: the upstream request head, plus whatever body bytes came with it.
    let mut out = w.take_buf();
    // In a block of its own: `fwd` must not live on in the future's state.
    {
        let fwd = Forward {
            client_ip: ip.as_bytes(),
            proto: if client.is_tls() { b"https" } else { b"http" },
            // An HTTP/1.0 client may send no Host at all: name the target then.
            host: (!route.preserve_host || head.host.is_none())
                .then_some(target.authority.as_bytes()),
            target: tbuf.as_deref().or(target_slice),
            upgrade: info.upgrading,
            fields: upstream_fields,
            replaced: &route.policies.replaced,
            request_id: snap.request_id.as_deref(),
            length,
        };
        write::request_head(&mut out, buf, head, &fwd);
    }
    if let Some(b) = tbuf {
        w.put_buf(b);
    }
    rbuf.drain(..head.head_len);
    super::json_body::Body::forward(body, w, &mut out, rbuf);
    let mut remaining = 0u64;
    if let BodyFraming::Length(n) = info.framing {
        let first = (rbuf.len() as u64).min(n) as usize;
        out.extend_from_slice(&rbuf[..first]);
        rbuf.drain(..first);
        remaining = n - first as u64;
    }
    let body_pending = remaining > 0 || info.framing == BodyFraming::Chunked;
    let retryable = info.idempotent && !body_pending && !info.upgrading;

    // Phase 3: connect (or reuse), send, relay the request body, read the
    // response head. A bodiless idempotent request whose reused connection
    // turns out dead before any response byte is sent again, once, on a new
    // connection; `out` keeps its head until then.
    let mut ubuf = w.take_buf();
    let mut attempt = 0;
    let mut sent_at;
    let mut conn = loop {
        let (mut conn, reused) = match acquire(w, up, target).await {
            Ok(c) => c,
            Err(f) => {
                let e = RelayError::upstream(f);
                return fail_before_response(
                    w,
                    snap,
                    client,
                    outcome,
                    out,
                    ubuf,
                    e,
                    body_pending,
                    info,
                    fields,
                )
                .await;
            }
        };
        let may_retry = reused && retryable && attempt == 0;
        sent_at = Instant::now();
        if let Err(f) = write_all(&mut conn, &mut out, up.response_timeout).await {
            if may_retry && f != Failure::Timeout {
                attempt += 1;
                w.stats.retries.set(w.stats.retries.get() + 1);
                continue;
            }
            return fail_before_response(
                w,
                snap,
                client,
                outcome,
                out,
                ubuf,
                RelayError::upstream(f),
                body_pending,
                info,
                fields,
            )
            .await;
        }
        if body_pending {
            out.clear();
            if info.expect_continue && rbuf.is_empty() {
                out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                if write_all(client, &mut out, snap.timeouts.body_idle)
                    .await
                    .is_err()
                {
                    w.put_buf(out);
                    w.put_buf(ubuf);
                    return Next::Close;
                }
                out.clear();
            }
            let idle = snap.timeouts.body_idle;
            let sent = match info.framing {
                BodyFraming::Length(_)
                    if remaining >= snap.splice_threshold
                        && rbuf.is_empty()
                        && !client.is_tls()
                        && !conn.is_tls() =>
                {
                    let (c, u) = (client.plain().expect("plain"), conn.plain().expect("plain"));
                    splice_exact(w, c, u, remaining, idle, Direction::Up).await
                }
                BodyFraming::Length(_) => {
                    copy_exact(client, &mut conn, rbuf, remaining, idle, Direction::Up).await
                }
                _ => {
                    relay_chunked(
                        client,
                        &mut conn,
                        rbuf,
                        &mut out,
                        Encode::Chunked,
                        idle,
                        Direction::Up,
                    )
                    .await
                }
            };
            if let Err(e) = sent {
                return fail_before_response(
                    w, snap, client, outcome, out, ubuf, e, true, info, fields,
                )
                .await;
            }
        }
        match read_response_head(
            w,
            snap,
            &mut conn,
            client,
            &mut ubuf,
            resp,
            up.response_timeout,
            info,
        )
        .await
        {
            Ok(()) => break conn,
            Err(e)
                if may_retry
                    && ubuf.is_empty()
                    && e.side == Side::Upstream
                    && matches!(e.failure, Failure::Closed | Failure::Io) =>
            {
                attempt += 1;
                w.stats.retries.set(w.stats.retries.get() + 1);
            }
            Err(e) => {
                return fail_before_response(
                    w, snap, client, outcome, out, ubuf, e, false, info, fields,
                )
                .await;
            }
        }
    };
    out.clear();

    outcome.status = resp.status;
    outcome.upstream_time = Some(sent_at.elapsed());
    // Phase 4a: switching protocols — relay the 101, then the connection is a tunnel.
    if resp.status == 101 {
        write::response_head(
            &mut out,
            &ubuf,
            resp,
            Downstream::Empty,
            Persist::Default,
            write::Added::default(),
        );
        ubuf.drain(..resp.head_len);
        let sent = write_all(client, &mut out, snap.timeouts.body_idle).await;
        w.put_buf(out);
        return match sent {
            Ok(()) => Next::Tunnel(conn, ubuf),
            Err(_) => Next::Close,
        };
    }

    // Phase 4: the response head, then its body, framed for this client.
    let keep = info.keep_alive && !w.draining.get();
    let (down, keep) = match resp.framing {
        ResponseFraming::Empty => (Downstream::Empty, keep),
        ResponseFraming::Length(n) => (Downstream::Length(n), keep),
        ResponseFraming::Chunked | ResponseFraming::Close if info.minor == 1 => {
            (Downstream::Chunked, keep)
        }
        ResponseFraming::Chunked | ResponseFraming::Close => (Downstream::Close, false),
    };
    let next = if keep { Next::KeepAlive } else { Next::Close };
    write::response_head(
        &mut out,
        &ubuf,
        resp,
        down,
        persist_for(&next, info.minor),
        write::Added {
            fields,
            replace_cors: cors,
            replaced: route
                .policies
                .mapping
                .as_deref()
                .map_or(&[], |m| m.response_replaced()),
            request_id: snap.request_id.as_deref(),
        },
    );
    outcome.bytes_sent = out.len() as u64
        + if let Downstream::Length(n) = down {
            n
        } else {
            0
        };
    let (framing, reusable) = (resp.framing, resp.reusable);
    ubuf.drain(..resp.head_len);
    let idle = snap.timeouts.body_idle;
    let encode = if down == Downstream::Chunked {
        Encode::Chunked
    } else {
        Encode::Raw
    };
    let relayed: Result<bool, RelayError> = match framing {
        ResponseFraming::Empty => write_all(client, &mut out, idle)
            .await
            .map(|()| ubuf.is_empty())
            .map_err(RelayError::client),
        ResponseFraming::Length(n) => {
            let first = (ubuf.len() as u64).min(n) as usize;
            out.extend_from_slice(&ubuf[..first]);
            ubuf.drain(..first);
            let rest = n - first as u64;
            match write_all(client, &mut out, idle).await {
                Err(f) => Err(RelayError::client(f)),
                Ok(()) if rest == 0 => Ok(ubuf.is_empty()),
                Ok(()) if rest >= snap.splice_threshold && !client.is_tls() && !conn.is_tls() => {
                    let (u, c) = (conn.plain().expect("plain"), client.plain().expect("plain"));
                    splice_exact(w, u, c, rest, idle, Direction::Down)
                        .await
                        .map(|()| true)
                }
                Ok(()) => copy_exact(&mut conn, client, &mut ubuf, rest, idle, Direction::Down)
                    .await
                    .map(|()| ubuf.is_empty()),
            }
        }
        ResponseFraming::Chunked => relay_chunked(
            &mut conn,
            client,
            &mut ubuf,
            &mut out,
            encode,
            idle,
            Direction::Down,
        )
        .await
        .map(|()| ubuf.is_empty()),
        ResponseFraming::Close => {
            relay_until_close(&mut conn, client, &mut ubuf, &mut out, encode, idle)
                .await
                .map(|()| false)
        }
    };
    w.put_buf(out);
    w.put_buf(ubuf);
    match relayed {
        // Phase 5: a cleanly finished upstream connection goes back to this worker's pool.
        Ok(clean) => {
            // A connection from before a reload goes back only if the target ids still mean the same.
            // After HEAD it is closed: some servers send the body anyway, and those bytes
            // would arrive as the start of the next response on this connection.
            if clean && reusable && !info.is_head && snap.generation == w.current_generation() {
                w.pool
                    .borrow_mut()
                    .put(target.id, conn, up.max_idle_per_target);
            }
            next
        }
        // The head is out: a failure now can only be signalled by closing.
        Err(_) => Next::Close,
    }
}

/// Writes the request-target a route's mapping makes of `now` into `out`.
#[allow(clippy::too_many_arguments)]
fn map_target(
    map: &policy::mapping::Mapping,
    env: &policy::Env<'_>,
    (buf, head): (&[u8], &RequestHead),
    peer: IpAddr,
    path: &[u8],
    found: &ringway_router::Match,
    request_id: &[u8],
    now: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), &'static str> {
    let client = if map.uses_client_ip() {
        policy::ip::client_ip(peer, env.trusted_proxies, buf, head)
    } else {
        peer
    };
    let cx = policy::mapping::Context {
        buf,
        head,
        client,
        path,
        found: Some(found),
        router: env.router,
        request_id,
    };
    map.rewrite_target(now, &cx, out)
}

/// Answers a request that will not be forwarded. The connection stays open
/// only if the request had no body to skip and the client wants keep-alive.
#[allow(clippy::too_many_arguments)]
async fn reject(
    w: &Worker,
    snap: &Snapshot,
    client: &mut Client,
    rbuf: &mut Vec<u8>,
    head: &RequestHead,
    info: ReqInfo,
    outcome: &mut Outcome,
    status: u16,
    message: &str,
    extra: &[u8],
) -> Next {
    outcome.status = status;
    let next = if head.has_body() || !info.keep_alive {
        Next::Close
    } else {
        Next::KeepAlive
    };
    rbuf.drain(..head.head_len);
    if !respond_with(
        w,
        client,
        snap,
        status,
        message,
        persist_for(&next, info.minor),
        extra,
    )
    .await
    {
        return Next::Close;
    }
    next
}

/// The JSON Schema a request's body must be checked against, if its route
/// has one and the request has a body (one branch for other routes).
#[inline]
fn schema_for<'s>(
    route: &'s crate::snapshot::Route,
    head: &RequestHead,
) -> Option<&'s policy::schema::JsonBody> {
    route
        .policies
        .validate
        .as_deref()
        .and_then(|v| v.json())
        .filter(|_| head.has_body())
}

/// Phase 1c (see `json_body.rs`): reads the whole body of a request on a
/// route with a JSON Schema and checks it. `None` ends the exchange with a
/// closed connection: the body was refused (and answered), or the client is
/// gone. Rare, so boxed by the caller.
#[allow(clippy::too_many_arguments)]
async fn read_json_body(
    w: &Worker,
    snap: &Snapshot,
    client: &mut Client,
    rbuf: &[u8],
    head: &RequestHead,
    outcome: &mut Outcome,
    json: &policy::schema::JsonBody,
    fields: &[u8],
) -> Option<super::json_body::Body> {
    match super::json_body::read_and_check(w, snap, client, rbuf, head, json).await {
        Ok(b) => Some(b),
        Err(None) => None,
        Err(Some((status, message))) => {
            // Part of the body may be unread: the connection closes either way.
            outcome.status = status;
            respond_with(w, client, snap, status, &message, Persist::Close, fields).await;
            None
        }
    }
}

/// A response the gateway makes up itself: a mock integration's or a CORS preflight's.
struct Fixed<'a> {
    status: u16,
    fields: &'a [u8],
    body: &'a [u8],
}

/// Answers a request from the gateway itself (mock, preflight). Like
/// [`reject`], the connection stays open only if there is no body to skip.
#[allow(clippy::too_many_arguments)]
async fn answer_locally(
    w: &Worker,
    snap: &Snapshot,
    client: &mut Client,
    rbuf: &mut Vec<u8>,
    head: &RequestHead,
    info: ReqInfo,
    outcome: &mut Outcome,
    answer: Fixed<'_>,
    extra: &[u8],
) -> Next {
    outcome.status = answer.status;
    let next = if head.has_body() || !info.keep_alive || w.draining.get() {
        Next::Close
    } else {
        Next::KeepAlive
    };
    rbuf.drain(..head.head_len);
    let mut out = w.take_buf();
    write::fixed_response(
        &mut out,
        answer.status,
        answer.fields,
        extra,
        answer.body,
        persist_for(&next, info.minor),
        info.is_head,
    );
    outcome.bytes_sent = out.len() as u64;
    let ok = write_all(client, &mut out, snap.timeouts.body_idle)
        .await
        .is_ok();
    w.put_buf(out);
    if ok { next } else { Next::Close }
}

/// For a CORS preflight (`OPTIONS` with `Access-Control-Request-Method`) on
/// a resource without an OPTIONS route: the route of the method it asks
/// about, if that route has CORS, so the gateway can answer the preflight.
fn preflight_route(
    snap: &Snapshot,
    buf: &[u8],
    head: &RequestHead,
    host: Option<&[u8]>,
    path: &[u8],
) -> Option<ringway_router::Match> {
    if head.method(buf) != b"OPTIONS" {
        return None;
    }
    let asked = policy::cors::field(buf, head, b"access-control-request-method")?;
    match snap.router.find(asked, host, path) {
        Lookup::Found(m) if snap.routes[m.route].policies.cors.is_some() => Some(m),
        _ => None,
    }
}

fn persist_for(next: &Next, minor: u8) -> Persist {
    match (next, minor) {
        (Next::Close, _) => Persist::Close,
        (Next::KeepAlive, 0) => Persist::KeepAlive,
        (Next::KeepAlive | Next::Tunnel(..), _) => Persist::Default,
    }
}

/// A pooled connection to `target`, or a new one. The flag says whether it was reused.
async fn acquire(w: &Worker, up: &Upstream, target: &Target) -> Result<(UpConn, bool), Failure> {
    let pooled = w.pool.borrow_mut().take(target.id, up.idle_timeout);
    if let Some(c) = pooled {
        return Ok((c, true));
    }
    w.stats
        .upstream_connects
        .set(w.stats.upstream_connects.get() + 1);
    // Connect and, for an https:// target, the TLS handshake: both within connect_timeout.
    let connect = async {
        let s = TcpStream::connect_addr(target.addr)
            .await
            .map_err(|_| Failure::Connect)?;
        let _ = s.set_nodelay(true);
        if !target.tls {
            return Ok(UpConn::Plain(s));
        }
        let tls = up.tls.as_ref().ok_or(Failure::Connect)?;
        let name = tls
            .server_name
            .as_deref()
            .unwrap_or_else(|| host_of(&target.authority));
        // Boxed: a handshake future is large and only new TLS connections need it.
        match Box::pin(ringway_tls::connect(tls.config.clone(), name, s)).await {
            Ok(t) => Ok(UpConn::Tls(Box::new(t))),
            Err(e) => {
                tracing::warn!(
                    "TLS handshake with upstream {} failed: {e}",
                    target.authority
                );
                Err(Failure::Connect)
            }
        }
    };
    match monoio::time::timeout(up.connect_timeout, connect).await {
        Ok(Ok(c)) => Ok((c, false)),
        Ok(Err(f)) => Err(f),
        Err(_) => Err(Failure::Connect),
    }
}

/// The host part of `host:port` (brackets of an IPv6 literal removed).
fn host_of(authority: &str) -> &str {
    let host = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => &authority[..i],
        _ => authority,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Reads the final response head into `ubuf` within `limit`, relaying
/// interim 1xx responses (other than 100, which ringway answers itself).
#[allow(clippy::too_many_arguments)]
async fn read_response_head(
    w: &Worker,
    snap: &Snapshot,
    conn: &mut UpConn,
    client: &mut Client,
    ubuf: &mut Vec<u8>,
    resp: &mut ResponseHead,
    limit: Duration,
    info: ReqInfo,
) -> Result<(), RelayError> {
    let deadline = Instant::now() + limit;
    loop {
        if !ubuf.is_empty() {
            match response::parse(ubuf, &snap.limits, info.is_head, resp) {
                Ok(false) => {}
                Ok(true) if resp.status == 101 && info.upgrading => return Ok(()),
                Ok(true) if resp.status == 101 => {
                    return Err(RelayError::upstream(Failure::Protocol(
                        crate::h1::H1Error::Syntax,
                    )));
                }
                Ok(true) if resp.status < 200 => {
                    if resp.status != 100 && info.minor == 1 {
                        let mut interim = w.take_buf();
                        write::response_head(
                            &mut interim,
                            ubuf,
                            resp,
                            Downstream::Empty,
                            Persist::Default,
                            write::Added::default(),
                        );
                        let r = write_all(client, &mut interim, snap.timeouts.body_idle).await;
                        w.put_buf(interim);
                        r.map_err(RelayError::client)?;
                    }
                    ubuf.drain(..resp.head_len);
                    continue;
                }
                Ok(true) => return Ok(()),
                Err(e) => return Err(RelayError::upstream(Failure::Protocol(e))),
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(RelayError::upstream(Failure::Timeout));
        }
        match relay::read_more(conn, ubuf, left).await {
            Ok(0) => return Err(RelayError::upstream(Failure::Closed)),
            Ok(_) => {}
            Err(f) => return Err(RelayError::upstream(f)),
        }
    }
}

/// Answers a failure that happened before any response byte went to the client.
#[allow(clippy::too_many_arguments)]
async fn fail_before_response(
    w: &Worker,
    snap: &Snapshot,
    client: &mut Client,
    outcome: &mut Outcome,
    out: Vec<u8>,
    ubuf: Vec<u8>,
    e: RelayError,
    body_unread: bool,
    info: ReqInfo,
    extra: &[u8],
) -> Next {
    w.put_buf(out);
    w.put_buf(ubuf);
    w.count_failure(e);
    let Some(status) = e.status() else {
        return Next::Close;
    };
    outcome.status = status;
    let next = if body_unread || !info.keep_alive || w.draining.get() || e.side == Side::Client {
        Next::Close
    } else {
        Next::KeepAlive
    };
    if !respond_with(
        w,
        client,
        snap,
        status,
        e.message(),
        persist_for(&next, info.minor),
        extra,
    )
    .await
    {
        return Next::Close;
    }
    next
}

#[cfg(test)]
mod size_tests {
    /// An idle keep-alive connection costs its task, whose size is the
    /// largest state of `serve`. This guards against a change that makes
    /// every idle connection heavier without anyone noticing.
    #[test]
    fn the_connection_future_stays_small() {
        let snap = crate::config::from_str(std::path::Path::new("x"), "").unwrap();
        let w = super::Worker::new(0, std::sync::Arc::new(snap), None);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        let size = rt.block_on(async move {
            let s = monoio::net::TcpStream::connect_addr(listener.local_addr().unwrap())
                .await
                .unwrap();
            let peer = s.local_addr().unwrap();
            std::mem::size_of_val(&super::serve(w, super::Client::Plain(s), peer, 0))
        });
        // It holds the socket, the peer and a readiness wait; a request's
        // state lives in a pooled block (`sys::pooled`) only while busy.
        assert!(size <= 512, "the connection future grew to {size} bytes");
    }
}
