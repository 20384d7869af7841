//! Retries and what every attempt's result feeds: whether a failed attempt
//! goes again (`[upstream.retry]`: attempts, `on`, resendability, the
//! budget), the wait before it (jittered backoff or a 503's
//! `Retry-After`), moving the request to another target, outlier judging
//! and the per-upstream outcome counts. `round_trip` (in `upstream_io.rs`)
//! drives them; see LIFECYCLE.md, phase 8.

use super::context::Exchange;
use super::target::Chosen;
use crate::resilience::RetryReason;
use std::time::Duration;

/// Whether a request whose attempt number `attempt` failed for `reason`
/// goes again: attempts are left, `on` lists the reason, no byte of a
/// response reached the client, the request can be sent again (nothing was
/// sent — a connect failure — or it is idempotent, or `non_idempotent`,
/// and its body, if any, is all in hand), and the retry budget allows it.
pub fn may_retry(
    ex: &Exchange<'_>,
    chosen: &Chosen<'_>,
    reason: RetryReason,
    attempt: u32,
    body_pending: bool,
) -> bool {
    let policy = &chosen.up.resilience.retry;
    if attempt >= policy.attempts || !policy.covers(reason) || ex.info.interim_sent {
        return false;
    }
    let resendable = reason == RetryReason::Connect
        || (!body_pending && !ex.info.upgrading && (ex.info.idempotent || policy.non_idempotent));
    if !resendable {
        return false;
    }
    let ui = chosen.ticket.upstream;
    let Some(mut b) = chosen.ticket.balance() else {
        return true;
    };
    if chosen.ticket.retrying || b.budget_allows(chosen.up, ui) {
        return true;
    }
    b.count_retry(ui, None);
    false
}

/// Waits out the backoff (or a 503's Retry-After) and moves the request
/// to another target.
pub async fn retry<'a>(
    ex: &mut Exchange<'a>,
    chosen: &mut Chosen<'a>,
    reason: RetryReason,
    (attempt, tried): (u32, u64),
    wait: Option<Duration>,
) {
    chosen.ticket.end_attempt();
    chosen.ticket.set_retrying();
    let backoff = chosen.up.resilience.retry.backoff;
    let base = backoff.saturating_mul(1 << (attempt - 1).min(10));
    let wait = match chosen.ticket.balance() {
        Some(mut b) => {
            b.count_retry(chosen.ticket.upstream, Some(reason));
            match wait {
                Some(w) if !w.is_zero() => w,
                _ => b.jitter(base),
            }
        }
        None => wait.filter(|w| !w.is_zero()).unwrap_or(base),
    };
    ex.local.count_retry();
    if !wait.is_zero() {
        // Boxed: a monoio `Sleep` is 640 bytes aligned to 128, and inline it
        // would align every future of the request path above it to 128
        // (padding between their levels, which each poll of a busy
        // connection walks). A backoff is rare; one allocation then is not.
        Box::pin(monoio::time::sleep(wait)).await;
    }
    chosen.retarget(ex.snap, tried);
    ex.outcome.target = Some(chosen.target.id);
}

/// A 503's `Retry-After` (delta-seconds) when it is within `limit`:
/// `Some(wait)`, or `Some(0)` for other statuses or no field (the backoff
/// applies); `None` when it asks for longer (no retry).
pub fn retry_after(ex: &Exchange<'_>, ubuf: &[u8], limit: Duration) -> Option<Duration> {
    if ex.resp.status != 503 {
        return Some(Duration::ZERO);
    }
    let field = ex
        .resp
        .headers
        .iter()
        .find(|h| h.name.get(ubuf).eq_ignore_ascii_case(b"retry-after"));
    let Some(h) = field else {
        return Some(Duration::ZERO);
    };
    let secs: u64 = std::str::from_utf8(h.value.get(ubuf))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let wait = Duration::from_secs(secs);
    (wait <= limit).then_some(wait)
}

/// Feeds one attempt's result to outlier detection; an ejected target's
/// pooled connections close.
pub fn judge(ex: &Exchange<'_>, chosen: &Chosen<'_>, result: Result<u16, RetryReason>) {
    let (ui, ti) = (chosen.ticket.upstream, chosen.ticket.target);
    let ejected = chosen
        .ticket
        .balance()
        .is_some_and(|mut b| b.judge(chosen.up, ui, ti, result));
    if ejected {
        ex.local.pool.borrow_mut().close_target(chosen.target.id);
    }
}

pub fn count_outcome(chosen: &Chosen<'_>, outcome: usize) {
    if let Some(mut b) = chosen.ticket.balance() {
        b.count_outcome(chosen.ticket.upstream, outcome);
    }
}

/// Puts `authority` in place of the Host value of the request head at the
/// front of `out` (a retry to a target of another name, when the head named
/// the first target). Host is the first field ringway writes, right after
/// the request line.
pub fn rehost(out: &mut Vec<u8>, authority: &[u8]) {
    const FIELD: &[u8] = b"\r\nHost: ";
    let Some(at) = out.windows(FIELD.len()).position(|w| w == FIELD) else {
        return;
    };
    let start = at + FIELD.len();
    let Some(len) = out[start..].windows(2).position(|w| w == b"\r\n") else {
        return;
    };
    out.splice(start..start + len, authority.iter().copied());
}

#[cfg(test)]
mod tests {
    #[test]
    fn rehost_replaces_the_host_value_only() {
        let mut out = b"GET /a HTTP/1.1\r\nHost: 10.0.0.1:80\r\nX-Host: keep\r\n\r\nbody".to_vec();
        super::rehost(&mut out, b"app-2.internal:8080");
        assert_eq!(
            out,
            b"GET /a HTTP/1.1\r\nHost: app-2.internal:8080\r\nX-Host: keep\r\n\r\nbody"
        );
    }
}
