//! One exchange, phase by phase, in the order LIFECYCLE.md tells: each
//! phase is one function, takes the [`Exchange`] context and returns what
//! the next one needs (or how the exchange ended early).

use super::body_reader::{read_checked_body, schema_for};
use super::context::{Exchange, Next, Step};
use super::local::Worker;
use super::policies::apply_policies;
use super::response::{finish, relay_response_body, switch_protocols, write_response_head};
use super::route::route;
use super::target::{Chosen, choose_target};
use super::upstream_io::{round_trip, write_request_head};

/// Proxies one request whose head is at the front of `ex.rbuf`.
pub async fn exchange(ex: &mut Exchange<'_>) -> Next {
    #[cfg(feature = "fault-injection")]
    inject_fault(ex);
    match to_upstream(ex).await {
        Ok(next) | Err(next) => next,
    }
}

/// Phases 1–5, then the upstream ones with buffers that go back to the pool
/// however they end.
async fn to_upstream(ex: &mut Exchange<'_>) -> Step<Next> {
    // `m` in a block of its own: it must not stay in the future's state
    // across the later phases.
    let mut chosen = {
        let m = route(ex).await?;
        apply_policies(ex, &m).await?;
        choose_target(ex, &m).await?
    };
    let local: &Worker = ex.local;
    // Never borrow `body`: a borrowed local stays in the future's state
    // across every later await.
    let body = match schema_for(chosen.route, ex.head) {
        None => None,
        Some(json) => match Box::pin(read_checked_body(ex, json)).await {
            Ok(b) => Some(b),
            Err(next) => {
                chosen.request_target.release(&local.pools);
                return Err(next);
            }
        },
    };
    let (mut out, remaining) = write_request_head(ex, &mut chosen, body);
    let mut ubuf = local.pools.take_buf();
    let next = from_upstream(ex, &mut chosen, (&mut out, &mut ubuf), remaining).await;
    local.pools.put_buf(out);
    local.pools.put_buf(ubuf);
    Ok(next)
}

/// Phases 6–11: the round trip upstream, then the response relayed.
async fn from_upstream<'a>(
    ex: &mut Exchange<'a>,
    chosen: &mut Chosen<'a>,
    (out, ubuf): (&mut Vec<u8>, &mut Vec<u8>),
    remaining: u64,
) -> Next {
    let (mut conn, sent_at) = match round_trip(ex, chosen, (out, ubuf), remaining).await {
        Ok(c) => c,
        Err(next) => return next,
    };
    out.clear();
    ex.outcome.status = ex.resp.status;
    ex.outcome.upstream_time = Some(crate::clock::elapsed(sent_at));
    if ex.resp.status == 101 {
        return switch_protocols(ex, conn, (out, ubuf)).await;
    }
    let (down, next) = write_response_head(ex, chosen.route, (out, ubuf));
    let relayed = relay_response_body(ex, &mut conn, down, (out, ubuf)).await;
    finish(ex, chosen, conn, (relayed, next))
}

/// The `fault-injection` build's hook: a request for
/// `RINGWAY_FAULT_PANIC_PATH` panics, to test that a panic costs one connection.
#[cfg(feature = "fault-injection")]
fn inject_fault(ex: &Exchange<'_>) {
    let path = ex.head.path(ex.rbuf);
    if ex.snap.fault_panic_path.as_deref() == Some(path) {
        let path = String::from_utf8_lossy(path);
        panic!("fault injection: request for {path:?}");
    }
}
