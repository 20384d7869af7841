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
use super::respond::fail_before_response;
use super::stream::Upstream as UpConn;
use super::target::Chosen;
use crate::h1::Framing;
use crate::h1::response;
use crate::h1::write::{self, Forward, Persist};
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
/// read the response head into `ubuf`. A bodiless idempotent request whose
/// reused connection turns out dead before any response byte is sent
/// again, once, on a new connection; `out` keeps its head until then.
/// Returns the connection and when the request went out.
pub async fn round_trip(
    ex: &mut Exchange<'_>,
    chosen: &Chosen<'_>,
    (out, ubuf): (&mut Vec<u8>, &mut Vec<u8>),
    remaining: u64,
) -> Step<(UpConn, Instant)> {
    let body_pending = remaining > 0 || ex.info.framing == Framing::Chunked;
    let retryable = ex.info.idempotent && !body_pending && !ex.info.upgrading;
    let limit = chosen.up.response_timeout;
    let mut attempt = 0;
    loop {
        let (mut conn, reused) = match connect(ex, chosen).await {
            Ok(c) => c,
            Err(f) => {
                let e = RelayError::upstream(f);
                return Err(fail_before_response(ex, e, body_pending).await);
            }
        };
        let may_retry = reused && retryable && attempt == 0;
        let sent_at = Instant::now();
        if let Err(f) = write_all(&mut conn, out, limit).await {
            if may_retry && f != Failure::Timeout {
                attempt += 1;
                ex.local.count_retry();
                continue;
            }
            let e = RelayError::upstream(f);
            return Err(fail_before_response(ex, e, body_pending).await);
        }
        if body_pending {
            send_request_body(ex, &mut conn, out, remaining).await?;
        }
        match read_response_head(ex, &mut conn, ubuf, limit).await {
            Ok(()) => return Ok((conn, sent_at)),
            Err(e)
                if may_retry
                    && ubuf.is_empty()
                    && e.side == Side::Upstream
                    && matches!(e.failure, Failure::Closed | Failure::Io) =>
            {
                attempt += 1;
                ex.local.count_retry();
            }
            Err(e) => return Err(fail_before_response(ex, e, false).await),
        }
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
pub async fn connect(ex: &Exchange<'_>, chosen: &Chosen<'_>) -> Result<(UpConn, bool), Failure> {
    let (local, up, target) = (ex.local, chosen.up, chosen.target);
    let key = pool_key(ex, chosen);
    let pooled = local
        .pool
        .borrow_mut()
        .take(target.id, up.idle_timeout, key);
    if let Some(c) = pooled {
        return Ok((c, true));
    }
    local.count_upstream_connect();
    let connect = async {
        let mut s = TcpStream::connect_addr(target.addr)
            .await
            .map_err(|_| Failure::Connect)?;
        let _ = s.set_nodelay(true);
        if let Some(version) = up.send_proxy {
            send_proxy_header(ex, &mut s, version).await?;
        }
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
                let authority = &target.authority;
                tracing::warn!("TLS handshake with upstream {authority} failed: {e}");
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

/// Writes the PROXY header naming the client (and the address it reached
/// ringway on) at the start of a new upstream connection.
async fn send_proxy_header(
    ex: &Exchange<'_>,
    s: &mut TcpStream,
    version: ProxyVersion,
) -> Result<(), Failure> {
    let client = SocketAddr::new(ex.peer, ex.peer_port);
    let reached = ex.client.tcp().local_addr().map_err(|_| Failure::Connect)?;
    let mut header = ex.local.pools.take_buf();
    match version {
        ProxyVersion::V1 => crate::proxy_protocol::write_v1(&mut header, client, reached),
        ProxyVersion::V2 => crate::proxy_protocol::write_v2(&mut header, client, reached),
    }
    let (sent, header) = s.write_all(header).await;
    ex.local.pools.put_buf(header);
    sent.map(|_| ()).map_err(|_| Failure::Connect)
}

/// The host part of `host:port` (brackets of an IPv6 literal removed).
fn host_of(authority: &str) -> &str {
    let host = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => &authority[..i],
        _ => authority,
    };
    host.trim_start_matches('[').trim_end_matches(']')
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
    let deadline = Instant::now() + limit;
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

/// Passes an interim (1xx) response at the front of `ubuf` on to an
/// HTTP/1.1 client (100 is ringway's own business), then drops it.
async fn relay_interim(ex: &mut Exchange<'_>, ubuf: &mut Vec<u8>) -> Result<(), RelayError> {
    if ex.resp.status != 100 && ex.info.minor == 1 {
        let local: &Worker = ex.local;
        let mut interim = local.pools.take_buf();
        let (empty, added) = (Framing::None, write::Added::default());
        write::response_head(&mut interim, ubuf, ex.resp, empty, Persist::Default, added);
        let r = write_all(ex.client, &mut interim, ex.snap.timeouts.body_idle).await;
        local.pools.put_buf(interim);
        r.map_err(RelayError::client)?;
    }
    ubuf.drain(..ex.resp.head_len);
    Ok(())
}
