//! Phase 2 of an exchange, `apply_policies`: the route's policy chain
//! (`policy::run`, synchronous), before any upstream work. A refusal, a
//! CORS preflight or a mock integration ends the exchange here; `fields`
//! and `upstream_fields` collect what later responses and the upstream
//! request carry.

use super::body_reader::{read_checked_body, schema_for};
use super::context::{Exchange, Step};
use super::respond::{Fixed, answer_locally, reject};
use super::route::route_path;
use crate::policy::{self, Verdict};
use ringway_router::Match;

/// How long a request waits between runs of the chain while a fleet quota
/// is topped up, and how many times (cluster mode only; see `crate::cluster`).
const WAIT_STEP: std::time::Duration = std::time::Duration::from_millis(2);
const MAX_WAITS: u32 = 250;

/// One synchronous run of the route's chain.
fn run_chain<'s>(ex: &mut Exchange<'s>, m: &Match) -> Verdict<'s> {
    let snap = ex.snap;
    let route = &snap.routes[m.route];
    let buf = &ex.rbuf[..];
    let req = policy::Request {
        buf,
        head: ex.head,
        peer: ex.peer,
        route: m.route,
        path: route_path(ex.head.path(buf)),
        found: Some(m),
    };
    let mut state = ex.local.policy.borrow_mut();
    policy::run(
        &route.policies,
        &snap.policy_env(),
        &mut state,
        &req,
        ex.fields,
        ex.upstream_fields,
    )
}

/// Phase 2: runs the chain of the route `m` (routes without policies pay
/// one branch).
pub async fn apply_policies(ex: &mut Exchange<'_>, m: &Match) -> Step<()> {
    let snap = ex.snap;
    let route = &snap.routes[m.route];
    if route.policies.is_empty() {
        return Ok(());
    }
    let (fields_len, upstream_len) = (ex.fields.len(), ex.upstream_fields.len());
    let mut waits = 0u32;
    let verdict = loop {
        let verdict = run_chain(ex, m);
        if !matches!(verdict, Verdict::Wait) || waits >= MAX_WAITS {
            break verdict;
        }
        // A fleet quota is being topped up: what this run added goes, and
        // the chain runs again once the sync thread had a moment.
        waits += 1;
        ex.fields.truncate(fields_len);
        ex.upstream_fields.truncate(upstream_len);
        // Boxed: rare, and a timer would make every exchange future larger.
        Box::pin(monoio::time::sleep(WAIT_STEP)).await;
    };
    let answer = match verdict {
        Verdict::Forward => return Ok(()),
        Verdict::Wait => {
            return Err(reject(ex, 503, "the fleet's limit store did not answer in time").await);
        }
        Verdict::Reject(status, message) => return Err(reject(ex, status, message).await),
        Verdict::Preflight => Fixed {
            status: 204,
            fields: b"",
            body: b"",
        },
        Verdict::Mock(mock) => {
            // A mock route checks a JSON body as a proxied one would.
            if let Some(json) = schema_for(route, ex.head) {
                let body = Box::pin(read_checked_body(ex, json)).await?;
                body.discard(&ex.local.pools);
            }
            Fixed {
                status: mock.status,
                fields: &mock.fields,
                body: &mock.body,
            }
        }
    };
    Err(answer_locally(ex, answer).await)
}
