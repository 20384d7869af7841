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

/// Phase 2: runs the chain of the route `m` (routes without policies pay
/// one branch).
pub async fn apply_policies(ex: &mut Exchange<'_>, m: &Match) -> Step<()> {
    let snap = ex.snap;
    let route = &snap.routes[m.route];
    if route.policies.is_empty() {
        return Ok(());
    }
    // `req` in a block of its own: a borrowed local would stay in the
    // future's state across the awaits below.
    let verdict = {
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
    };
    let answer = match verdict {
        Verdict::Forward => return Ok(()),
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
