//! The client side of a proxied response: phase 9 `write_response_head`,
//! phase 10 `relay_response_body`, phase 11 `finish` (pool or close the
//! upstream connection), and `switch_protocols` for a 101 (the connection
//! then becomes a tunnel, see `tunnel.rs`).

use super::context::{Exchange, Next};
use super::error::RelayError;
use super::framing::relay_body;
use super::local::Worker;
use super::relay::{Direction, Encode, Leg, write_all};
use super::respond::persist_for;
use super::stream::Upstream as UpConn;
use super::target::Chosen;
use crate::h1::Framing;
use crate::h1::write::{self, Persist};
use crate::snapshot::Route;

/// Relays the 101 head; the connection then becomes a tunnel with the
/// upstream connection and what it sent after the head.
pub async fn switch_protocols(
    ex: &mut Exchange<'_>,
    conn: UpConn,
    (out, ubuf): (&mut Vec<u8>, &mut Vec<u8>),
) -> Next {
    let added = write::Added::default();
    write::response_head(out, ubuf, ex.resp, Framing::None, Persist::Default, added);
    ubuf.drain(..ex.resp.head_len);
    match write_all(ex.client, out, ex.snap.timeouts.body_idle).await {
        Ok(()) => Next::Tunnel(conn, std::mem::take(ubuf)),
        Err(_) => Next::Close,
    }
}

/// Phase 9: the response head for this client into `out`, followed (in
/// phase 10) by its body. Returns the body's framing towards the client and
/// what the connection does afterwards: a chunked or close-delimited body
/// goes on chunked to an HTTP/1.1 client and close-delimited to HTTP/1.0.
pub fn write_response_head(
    ex: &mut Exchange<'_>,
    route: &Route,
    (out, ubuf): (&mut Vec<u8>, &mut Vec<u8>),
) -> (Framing, Next) {
    let keep = ex.info.keep_alive && !ex.local.draining.get();
    let (down, keep) = match ex.resp.framing {
        Framing::None => (Framing::None, keep),
        Framing::Length(n) => (Framing::Length(n), keep),
        Framing::Chunked | Framing::UntilClose if ex.info.minor == 1 => (Framing::Chunked, keep),
        Framing::Chunked | Framing::UntilClose => (Framing::UntilClose, false),
    };
    let next = if keep { Next::KeepAlive } else { Next::Close };
    let mapping = route.policies.mapping.as_deref();
    let added = write::Added {
        fields: ex.fields,
        replace_cors: route.policies.cors.is_some(),
        replaced: mapping.map_or(&[], |m| m.response_replaced()),
        request_id: ex.snap.request_id.as_deref(),
    };
    let persist = persist_for(&next, ex.info.minor);
    write::response_head(out, ubuf, ex.resp, down, persist, added);
    ex.outcome.bytes_sent = out.len() as u64 + down.known_length().unwrap_or(0);
    ubuf.drain(..ex.resp.head_len);
    (down, next)
}

/// Phase 10: the head in `out`, then the response body framed as `down`
/// (see `framing::relay_body`). `Ok(true)`: the body ended exactly where
/// the upstream's framing said, with no stray bytes after it.
pub async fn relay_response_body(
    ex: &mut Exchange<'_>,
    conn: &mut UpConn,
    down: Framing,
    (out, ubuf): (&mut Vec<u8>, &mut Vec<u8>),
) -> Result<bool, RelayError> {
    let leg = Leg {
        dir: Direction::Down,
        encode: if down == Framing::Chunked {
            Encode::Chunked
        } else {
            Encode::Raw
        },
        idle: ex.snap.timeouts.body_idle,
        splice_threshold: ex.snap.splice_threshold,
    };
    let framing = ex.resp.framing;
    let local: &Worker = ex.local;
    // What went out, head included: also for chunked and close-delimited bodies.
    ex.outcome.bytes_sent =
        relay_body(&local.pools, (conn, ex.client), framing, (ubuf, out), leg).await?;
    Ok(framing != Framing::UntilClose && ubuf.is_empty())
}

/// Phase 11: a cleanly finished upstream connection goes back to this
/// worker's pool — unless the upstream refuses keep-alive, the request was
/// HEAD (some servers send a body anyway; it would be read as the next
/// response), or the target ids changed meaning with a reload. A failure
/// after the response head closes the client connection (the truncated
/// body is the signal).
pub fn finish(
    ex: &Exchange<'_>,
    chosen: &Chosen<'_>,
    conn: UpConn,
    (relayed, next): (Result<bool, RelayError>, Next),
) -> Next {
    let Ok(clean) = relayed else {
        return Next::Close;
    };
    let same_generation = ex.snap.generation == ex.local.current_generation();
    if clean && ex.resp.reusable && !ex.info.is_head && same_generation {
        let max_idle = chosen.up.max_idle_per_target;
        let key = super::upstream_io::pool_key(ex, chosen);
        ex.local
            .pool
            .borrow_mut()
            .put(chosen.target.id, conn, max_idle, key);
    }
    next
}
