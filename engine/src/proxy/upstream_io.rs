//! The upstream side of an exchange: phase 5 `write_request_head`, then
//! `round_trip` — phase 6 `connect` (or reuse), the head, phase 7
//! `send_request_body`, phase 8 `read_response_head` — sent once more on a
//! fresh connection when a reused one turns out dead before any response byte.

use super::body_reader::Body;
use super::context::{Exchange, Step};
use super::error::{Failure, RelayError, Side};
use super::framing::relay_body;
use super::local::Worker;
use super::relay::{self, Direction, Encode, Leg, write_all};
use super::respond::{fail_before_response, refuse_upstream};
use super::retry::{count_outcome, judge, may_retry, rehost, retry, retry_after};
use super::stream::Upstream as UpConn;
use super::target::Chosen;
use crate::h1::Framing;
use crate::h1::response;
use crate::h1::write::{self, Forward, Persist};
use crate::resilience::{Breaker, RetryReason};
use crate::snapshot::ProxyVersion;
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Phase 5: the upstream request head in a pooled buffer, followed by the
/// body bytes that came with the client's head (or the whole checked body),
/// so a small request is one write. Returns it and how many body bytes of a
/// Content-Length body are still to come. Synchronous: nothing of it lives
/// in the future's state.
pub fn write_request_head(
    ex: &mut Exchange<'_>,
    chosen: &mut Chosen<'_>,
    body: Option<Body>,
) -> (Vec<u8>, u64) {
    let local: &Worker = ex.local;
    let length = body.as_ref().map(Body::length);
    if let Some(n) = length {
        ex.outcome.body_in = n;
        ex.info.framing = Framing::None;
    }
    let mut out = local.pools.take_buf();
    {
        let buf = &ex.rbuf[..];
        let fwd = Forward {
            // HEAD stays HEAD: the response is read as the client's method says.
            method: chosen
                .route
                .upstream_method
                .as_deref()
                .filter(|_| !ex.info.is_head),
            client_ip: ex.ip.as_bytes(),
            proto: if ex.client.is_tls() {
                b"https"
            } else {
                b"http"
            },
            // An HTTP/1.0 client may send no Host at all: name the target then.
            host: (!chosen.route.preserve_host || ex.head.host.is_none())
                .then_some(chosen.target.authority.as_bytes()),
            target: chosen.request_target.get(buf),
            trusted_peer: ex.snap.trusted_proxies.contains(ex.peer),
            forwarded: ex.snap.forwarded,
            upgrade: ex.info.upgrading,
            fields: ex.upstream_fields,
            replaced: &chosen.route.policies.replaced,
            request_id: ex.snap.request_id.as_deref(),
            length,
        };
        write::request_head(&mut out, buf, ex.head, &fwd);
    }
    chosen.request_target.release(&local.pools);
    ex.rbuf.drain(..ex.head.head_len);
    Body::forward(body, &local.pools, &mut out, ex.rbuf);
    let mut remaining = 0;
    if let Framing::Length(n) = ex.info.framing {
        let first = (ex.rbuf.len() as u64).min(n) as usize;
        out.extend_from_slice(&ex.rbuf[..first]);
        ex.rbuf.drain(..first);
        remaining = n - first as u64;
    }
    (out, remaining)
}

/// Phases 6–8: connect, send `out` (the head), relay the rest of the body,
/// read the response head into `ubuf` — tried again, on another target when
/// there is one, as the upstream's `[upstream.retry]` allows (see
/// [`may_retry`]); `out` keeps its head until the body is sent. Each
/// attempt's result feeds outlier detection. Returns the connection and
/// when the request went out.
pub async fn round_trip<'a>(
    ex: &mut Exchange<'a>,
    chosen: &mut Chosen<'a>,
    (out, ubuf): (&mut Vec<u8>, &mut Vec<u8>),
    remaining: u64,
) -> Step<(UpConn, Instant)> {
    let body_pending = remaining > 0 || ex.info.framing == Framing::Chunked;
    let policy = chosen.up.resilience.retry;
    let limit = policy.per_try_timeout.unwrap_or(chosen.up.response_timeout);
    let (mut attempt, mut tried, mut stale_retried) = (1u32, 0u64, false);
    // The authority the head names when it names the target, not the client's Host.
    let mut named = chosen.target.authority.as_str();
    loop {
        chosen.ticket.begin_attempt();
        tried |= 1 << chosen.ticket.target;
        let (result, reused) = match attempt_once(ex, chosen, (out, ubuf), remaining, limit).await {
            Attempt::Answered(conn, sent_at) => {
                let status = ex.resp.status;
                judge(ex, chosen, Ok(status));
                let reason = RetryReason::Status(status);
                if status >= 500 && may_retry(ex, chosen, reason, attempt, body_pending) {
                    // A 503 asking for longer than a try may take is relayed as it is.
                    if let Some(wait) = retry_after(ex, ubuf, limit) {
                        drop(conn);
                        ubuf.clear();
                        retry(ex, chosen, reason, (attempt, tried), Some(wait)).await;
                        named = name_the_target(ex, chosen, out, named);
                        attempt += 1;
                        continue;
                    }
                }
                count_outcome(chosen, usize::from(status >= 500));
                return Ok((conn, sent_at));
            }
            Attempt::Failed(e, reused) => (e, reused),
            Attempt::Finished(next) => {
                count_outcome(chosen, 2);
                return Err(next);
            }
        };
        let reason = match (result.side, result.failure) {
            (_, Failure::Connect) => Some(RetryReason::Connect),
            (Side::Upstream, Failure::Timeout) => Some(RetryReason::Timeout),
            (Side::Upstream, Failure::Closed | Failure::Io) => Some(RetryReason::Reset),
            _ => None,
        };
        // A pooled connection that turned out dead says nothing of the
        // target: sent once more on a fresh one, as before any policy.
        let stale = reused && reason == Some(RetryReason::Reset) && ubuf.is_empty();
        if stale && !stale_retried && ex.info.idempotent && !body_pending && !ex.info.upgrading {
            stale_retried = true;
            chosen.ticket.end_attempt();
            ex.local.count_retry();
            continue;
        }
        if let Some(r) = reason {
            judge(ex, chosen, Err(r));
        }
        match reason {
            Some(r) if ubuf.is_empty() && may_retry(ex, chosen, r, attempt, body_pending) => {
                retry(ex, chosen, r, (attempt, tried), None).await;
                named = name_the_target(ex, chosen, out, named);
                attempt += 1;
            }
            _ => {
                count_outcome(chosen, 2);
                // Part of the body may still be on the wire: the connection closes then.
                return Err(fail_before_response(ex, result, body_pending).await);
            }
        }
    }
}

/// After a retry moved the request to a target of another name: a head that
/// named the first target as Host (a route with `preserve_host = false`,
/// or a client that sent no Host) names the new one.
/// Returns the authority the head names now.
fn name_the_target<'a>(
    ex: &Exchange<'_>,
    chosen: &Chosen<'a>,
    out: &mut Vec<u8>,
    named: &'a str,
) -> &'a str {
    let names_target = !chosen.route.preserve_host || ex.head.host.is_none();
    if names_target && chosen.target.authority != named {
        rehost(out, chosen.target.authority.as_bytes());
        return chosen.target.authority.as_str();
    }
    named
}

/// How one attempt ended.
enum Attempt {
    /// A final response head is in `ubuf` (`ex.resp`).
    Answered(UpConn, Instant),
    /// It failed before a response head; whether the connection was a pooled one.
    Failed(RelayError, bool),
    /// It failed while the body was sent: the client was answered.
    Finished(super::context::Next),
}

/// One attempt: connect (or reuse), send the head and the body, read the response head.
async fn attempt_once(
    ex: &mut Exchange<'_>,
    chosen: &mut Chosen<'_>,
    (out, ubuf): (&mut Vec<u8>, &mut Vec<u8>),
    remaining: u64,
    limit: Duration,
) -> Attempt {
    let body_pending = remaining > 0 || ex.info.framing == Framing::Chunked;
    let (mut conn, reused) = match connect(ex, chosen).await {
        Ok(c) => c,
        Err(Refusal::Breaker(b)) => {
            if let Some(mut balance) = chosen.ticket.balance() {
                balance.count_breaker(chosen.ticket.upstream, b);
            }
            return Attempt::Finished(refuse_upstream(ex, b.message(), body_pending).await);
        }
        Err(Refusal::Failed(f)) => return Attempt::Failed(RelayError::upstream(f), false),
    };
    chosen.ticket.set_connected(true);
    let sent_at = crate::clock::now();
    if let Err(f) = write_all(&mut conn, out, limit).await {
        return Attempt::Failed(RelayError::upstream(f), reused);
    }
    if body_pending && let Err(next) = send_request_body(ex, &mut conn, out, remaining).await {
        return Attempt::Finished(next);
    }
    match read_response_head(ex, &mut conn, ubuf, limit).await {
        Ok(()) => Attempt::Answered(conn, sent_at),
        Err(e) => Attempt::Failed(e, reused),
    }
}

/// The key of this request's upstream connection in the pool: the
/// client's address when the upstream gets a PROXY header (the connection
/// speaks for that client only), else none.
pub fn pool_key(ex: &Exchange<'_>, chosen: &Chosen<'_>) -> Option<IpAddr> {
    chosen.up.send_proxy.map(|_| ex.peer)
}

/// Phase 6: a pooled connection to the chosen target (LIFO; stale or
/// closed ones are discarded; for an upstream with `send_proxy_protocol`,
/// one that named this client), or a new one within `connect_timeout`
/// (its PROXY header first, then the TLS handshake for an https://
/// target). The flag says whether it was reused.
pub async fn connect(ex: &Exchange<'_>, chosen: &Chosen<'_>) -> Result<(UpConn, bool), Refusal> {
    let (local, up, target) = (ex.local, chosen.up, chosen.target);
    let key = pool_key(ex, chosen);
    let pooled = local
        .pool
        .borrow_mut()
        .take(target.id, up.idle_timeout, key);
    if let Some(c) = pooled {
        return Ok((c, true));
    }
    // A new connection: within the upstream's circuit breaker limits.
    let pending = Pending::enter(ex, chosen)?;
    if let Err(b) = pending.room_for_a_connection(up.connect_timeout).await {
        return Err(Refusal::Breaker(b));
    }
    drop(pending);
    match new_connection(ex, chosen).await {
        Ok(c) => Ok((c, false)),
        Err(f) => Err(Refusal::Failed(f)),
    }
}

/// Why no connection was had.
pub enum Refusal {
    /// A circuit breaker limit of the upstream.
    Breaker(Breaker),
    Failed(Failure),
}

/// A request counted among those waiting for a connection (`max_pending`) until dropped.
/// (Uncounted when a reload replaced this worker's counts.)
struct Pending<'e, 'w> {
    ex: &'e Exchange<'w>,
    chosen: &'e Chosen<'w>,
}

impl<'e, 'w> Pending<'e, 'w> {
    fn enter(ex: &'e Exchange<'w>, chosen: &'e Chosen<'w>) -> Result<Self, Refusal> {
        if let Some(mut b) = chosen.ticket.balance() {
            let st = &mut b.upstreams[chosen.ticket.upstream];
            if st.pending >= chosen.up.resilience.limits.max_pending {
                return Err(Refusal::Breaker(Breaker::MaxPending));
            }
            st.pending += 1;
        }
        Ok(Pending { ex, chosen })
    }

    /// Waits (up to `limit`) until the upstream has fewer than
    /// `max_connections` open on this worker (in use plus idle; an idle one
    /// to another target is closed to make room).
    async fn room_for_a_connection(&self, limit: Duration) -> Result<(), Breaker> {
        let max = self.chosen.up.resilience.limits.max_connections;
        if max == u32::MAX {
            return Ok(());
        }
        let local = self.ex.local;
        let ids = || self.chosen.up.targets.iter().map(|t| t.id);
        let room = || {
            let Some(b) = self.chosen.ticket.balance() else {
                return true;
            };
            let connected = b.upstreams[self.chosen.ticket.upstream].connected;
            drop(b);
            let mut pool = local.pool.borrow_mut();
            let open = connected as usize + pool.idle_among(ids());
            open < max as usize || (pool.evict_among(ids()) && open - 1 < max as usize)
        };
        let wait = std::future::poll_fn(|cx| {
            if room() {
                return std::task::Poll::Ready(());
            }
            local.conn_waiters.borrow_mut().push(cx.waker().clone());
            std::task::Poll::Pending
        });
        crate::deadline::timed(crate::clock::now() + limit, wait)
            .await
            .map_err(|_| Breaker::MaxConnections)
    }
}

impl Drop for Pending<'_, '_> {
    fn drop(&mut self) {
        if let Some(mut b) = self.chosen.ticket.balance() {
            let st = &mut b.upstreams[self.chosen.ticket.upstream];
            st.pending = st.pending.saturating_sub(1);
        }
    }
}

/// A new connection to the chosen target within `connect_timeout` (PROXY
/// header first, then TLS for an `https://` target).
async fn new_connection(ex: &Exchange<'_>, chosen: &Chosen<'_>) -> Result<UpConn, Failure> {
    let (local, up, target) = (ex.local, chosen.up, chosen.target);
    local.count_upstream_connect();
    let connect = async {
        let mut s = TcpStream::connect_addr(target.addr)
            .await
            .map_err(|_| Failure::Connect)?;
        let _ = s.set_nodelay(true);
        local
            .pool
            .borrow_mut()
            .opened(std::os::fd::AsRawFd::as_raw_fd(&s));
        if let Some(version) = up.send_proxy {
            send_proxy_header(ex, &mut s, version).await?;
        }
        if !target.tls {
            return Ok(UpConn::Plain(s));
        }
        let tls = up.tls.as_ref().ok_or(Failure::Connect)?;
        let name = tls.server_name.as_deref().unwrap_or_else(|| target.host());
        // Boxed: a handshake future is large and only new TLS connections need it.
        match Box::pin(ringway_tls::connect(tls.config.clone(), name, s)).await {
            Ok(t) => Ok(UpConn::Tls(Box::new(t))),
            Err(e) => {
                let authority = &target.authority;
                tracing::warn!("TLS handshake with upstream {authority} failed: {e}");
                Err(Failure::Connect)
            }
        }
    };
    let by = crate::clock::now() + up.connect_timeout;
    match crate::deadline::timed(by, connect).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(f)) => Err(f),
        Err(_) => Err(Failure::Connect),
    }
}

/// Writes the PROXY header naming the client (and the address it reached
/// ringway on) at the start of a new upstream connection.
async fn send_proxy_header(
    ex: &Exchange<'_>,
    s: &mut TcpStream,
    version: ProxyVersion,
) -> Result<(), Failure> {
    let client = SocketAddr::new(ex.peer, ex.peer_port);
    let reached = ex.client.local_addr().map_err(|_| Failure::Connect)?;
    let mut header = ex.local.pools.take_buf();
    match version {
        ProxyVersion::V1 => crate::proxy_protocol::write_v1(&mut header, client, reached),
        ProxyVersion::V2 => crate::proxy_protocol::write_v2(&mut header, client, reached),
    }
    let (sent, header) = s.write_all(header).await;
    ex.local.pools.put_buf(header);
    sent.map(|_| ()).map_err(|_| Failure::Connect)
}

/// Phase 7: the rest of the request body, after the head went out.
/// `Expect: 100-continue` is answered by ringway itself once the upstream
/// connection is ready (the upstream never sees `Expect`). A broken chunk or
/// a vanished client abandons the upstream connection mid-request.
pub async fn send_request_body(
    ex: &mut Exchange<'_>,
    conn: &mut UpConn,
    out: &mut Vec<u8>,
    remaining: u64,
) -> Step<()> {
    let idle = ex.snap.timeouts.body_idle;
    out.clear();
    if ex.info.expect_continue && ex.rbuf.is_empty() {
        out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        if write_all(ex.client, out, idle).await.is_err() {
            return Err(super::context::Next::Close);
        }
        out.clear();
    }
    let framing = match ex.info.framing {
        Framing::Length(_) => Framing::Length(remaining),
        other => other,
    };
    // The body is copied through `rbuf`. An HTTP/2 stream's starts with
    // room for its head only: give it a whole buffer's worth, or a 1 MiB
    // body would move in 2 KiB steps (a third of the throughput).
    let room = super::local::BUF_SIZE;
    if ex.rbuf.capacity() < room {
        ex.rbuf.reserve(room - ex.rbuf.len());
    }
    let leg = Leg {
        dir: Direction::Up,
        encode: Encode::Chunked,
        idle,
        splice_threshold: ex.snap.splice_threshold,
    };
    let local: &Worker = ex.local;
    let sent = relay_body(
        &local.pools,
        (ex.client, conn),
        framing,
        (ex.rbuf, out),
        leg,
    )
    .await;
    match sent {
        Ok(_) => Ok(()),
        Err(e) => Err(fail_before_response(ex, e, true).await),
    }
}

/// Phase 8: the final response head into `ubuf` within `limit` (504 past
/// it; 502 for a closed connection or an invalid head). Interim 1xx
/// responses other than 100 are relayed to HTTP/1.1 clients; a 101 is
/// accepted only for a request that upgrades.
pub async fn read_response_head(
    ex: &mut Exchange<'_>,
    conn: &mut UpConn,
    ubuf: &mut Vec<u8>,
    limit: Duration,
) -> Result<(), RelayError> {
    let deadline = crate::clock::now() + limit;
    loop {
        if !ubuf.is_empty() {
            let parsed = response::parse(ubuf, &ex.snap.limits, ex.info.is_head, ex.resp);
            match parsed {
                Ok(false) => {}
                Ok(true) if ex.resp.status == 101 && ex.info.upgrading => return Ok(()),
                Ok(true) if ex.resp.status == 101 => {
                    let e = Failure::Protocol(crate::h1::H1Error::Syntax);
                    return Err(RelayError::upstream(e));
                }
                Ok(true) if ex.resp.status < 200 => {
                    relay_interim(ex, ubuf).await?;
                    continue;
                }
                Ok(true) => return Ok(()),
                Err(e) => return Err(RelayError::upstream(Failure::Protocol(e))),
            }
        }
        let left = deadline.saturating_duration_since(crate::clock::now());
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

/// Passes an interim (1xx) response at the front of `ubuf` on to an
/// HTTP/1.1 client (100 is ringway's own business), then drops it.
async fn relay_interim(ex: &mut Exchange<'_>, ubuf: &mut Vec<u8>) -> Result<(), RelayError> {
    if ex.resp.status != 100 && ex.info.minor == 1 {
        let local: &Worker = ex.local;
        let mut interim = local.pools.take_buf();
        let (empty, added) = (Framing::None, write::Added::default());
        write::response_head(&mut interim, ubuf, ex.resp, empty, Persist::Default, added);
        // From here on a retry would answer twice: none follows.
        ex.info.interim_sent = true;
        let r = write_all(ex.client, &mut interim, ex.snap.timeouts.body_idle).await;
        local.pools.put_buf(interim);
        r.map_err(RelayError::client)?;
    }
    ubuf.drain(..ex.resp.head_len);
    Ok(())
}
