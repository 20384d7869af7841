//! ringway's own answers: errors (the route's gateway response, if it has
//! one for the status), refusals before anything went upstream, local
//! answers (mock integrations, CORS preflights), and failures before any
//! response byte reached the client. Whether the connection survives is
//! decided here, in one place per kind of answer.

use super::context::{Exchange, Next};
use super::error::{RelayError, Side};
use super::local::Pools;
use super::relay::write_all;
use super::stream::Client;
use crate::h1::write::{self, Persist};
use crate::policy::responses::json_escape;
use crate::snapshot::Snapshot;

/// An error answer: its status, message, and what it says about the connection.
pub struct ErrorAnswer<'m> {
    pub status: u16,
    pub message: &'m str,
    pub persist: Persist,
}

/// Sends one of ringway's own error responses, with `extra` field lines
/// (each ending in CRLF). The bytes written, or `None` if the client could
/// not be written to.
pub async fn send_error(
    pools: &Pools,
    client: &mut Client,
    snap: &Snapshot,
    answer: ErrorAnswer<'_>,
    extra: &[u8],
) -> Option<u64> {
    let ErrorAnswer {
        status,
        message,
        persist,
    } = answer;
    let mut out = pools.take_buf();
    match snap.gateway_responses.find(status) {
        Some(custom) => {
            let rid = crate::request_id::range(extra, snap.request_id.as_deref());
            let line = write::persist_line(persist);
            custom.write(&mut out, status, message, &extra[rid], extra, line);
        }
        None => {
            let plain = !message
                .bytes()
                .any(|b| b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f);
            let mut escaped = Vec::new();
            let text = if plain {
                message.as_bytes()
            } else {
                json_escape(&mut escaped, message.as_bytes());
                &escaped
            };
            write::error_response(&mut out, status, text, persist, extra);
        }
    }
    let len = out.len() as u64;
    let ok = write_all(client, &mut out, snap.timeouts.body_idle)
        .await
        .is_ok();
    pools.put_buf(out);
    ok.then_some(len)
}

/// The `Connection` semantics of a response, from what comes next.
pub fn persist_for(next: &Next, minor: u8) -> Persist {
    match (next, minor) {
        (Next::Close, _) => Persist::Close,
        (Next::KeepAlive, 0) => Persist::KeepAlive,
        (Next::KeepAlive | Next::Tunnel(..), _) => Persist::Default,
    }
}

/// Answers `status` with `message` on the connection and says what comes
/// next; `keep` is whether the connection may otherwise stay open.
async fn answer_error(ex: &mut Exchange<'_>, status: u16, message: &str, keep: bool) -> Next {
    ex.outcome.status = status;
    let next = if keep { Next::KeepAlive } else { Next::Close };
    let answer = ErrorAnswer {
        status,
        message,
        persist: persist_for(&next, ex.info.minor),
    };
    let pools = &ex.local.pools;
    match send_error(pools, ex.client, ex.snap, answer, ex.fields).await {
        Some(sent) => {
            ex.outcome.bytes_sent = sent;
            next
        }
        None => Next::Close,
    }
}

/// Answers a request that will not be forwarded. The connection stays open
/// only if the request had no body to skip and the client wants keep-alive.
pub async fn reject(ex: &mut Exchange<'_>, status: u16, message: &str) -> Next {
    let keep = !ex.head.has_body() && ex.info.keep_alive;
    ex.rbuf.drain(..ex.head.head_len);
    answer_error(ex, status, message, keep).await
}

/// Answers a body that was refused while it was read (phase
/// `read_checked_body`): part of it may be unread, so the connection closes.
pub async fn refuse_body(ex: &mut Exchange<'_>, status: u16, message: &str) -> Next {
    answer_error(ex, status, message, false).await;
    Next::Close
}

/// Answers a failure that happened before any response byte went to the
/// client. `body_unread`: part of the request body may still be on the wire.
pub async fn fail_before_response(ex: &mut Exchange<'_>, e: RelayError, body_unread: bool) -> Next {
    ex.local.count_failure(e);
    let Some(status) = e.status() else {
        return Next::Close;
    };
    let keep =
        !body_unread && ex.info.keep_alive && !ex.local.draining.get() && e.side != Side::Client;
    answer_error(ex, status, e.message(), keep).await
}

/// Answers 503 for an upstream whose circuit breaker refused the request
/// (`message` names the limit). `body_unread`: the request body is still on the wire.
pub async fn refuse_upstream(ex: &mut Exchange<'_>, message: &str, body_unread: bool) -> Next {
    let keep = !body_unread && ex.info.keep_alive && !ex.local.draining.get();
    answer_error(ex, 503, message, keep).await
}

/// A response the gateway makes up itself: a mock integration's or a CORS preflight's.
pub struct Fixed<'a> {
    pub status: u16,
    pub fields: &'a [u8],
    pub body: &'a [u8],
}

/// Answers a request from the gateway itself (mock, preflight). Like
/// [`reject`], the connection stays open only if there is no body to skip.
pub async fn answer_locally(ex: &mut Exchange<'_>, answer: Fixed<'_>) -> Next {
    ex.outcome.status = answer.status;
    let next = if ex.head.has_body() || !ex.info.keep_alive || ex.local.draining.get() {
        Next::Close
    } else {
        Next::KeepAlive
    };
    ex.rbuf.drain(..ex.head.head_len);
    let pools = &ex.local.pools;
    let mut out = pools.take_buf();
    write::fixed_response(
        &mut out,
        answer.status,
        answer.fields,
        ex.fields,
        answer.body,
        persist_for(&next, ex.info.minor),
        ex.info.is_head,
    );
    ex.outcome.bytes_sent = out.len() as u64;
    let ok = write_all(ex.client, &mut out, ex.snap.timeouts.body_idle)
        .await
        .is_ok();
    pools.put_buf(out);
    if ok { next } else { Next::Close }
}
