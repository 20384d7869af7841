//! Phase 1 of an exchange, `route`: host → path → method in the
//! snapshot's router. No resource: 404; a resource without the method: 405
//! with `Allow`, unless it is a CORS preflight the gateway can answer.

use super::context::{Exchange, Step};
use super::respond::reject;
use crate::h1::request::RequestHead;
use crate::policy;
use crate::snapshot::Snapshot;
use ringway_router::{Lookup, Match};

/// The path the router sees: `OPTIONS *` and an empty absolute-form path
/// go where `/` goes.
pub fn route_path(path: &[u8]) -> &[u8] {
    if path == b"*" || path.is_empty() {
        b"/"
    } else {
        path
    }
}

/// Phase 1: the route this request takes (also recorded in the outcome),
/// or the exchange ends with 404/405.
pub async fn route(ex: &mut Exchange<'_>) -> Step<Match> {
    let found = {
        let (buf, head) = (&ex.rbuf[..], ex.head);
        let path = route_path(head.path(buf));
        let host = head.host.map(|h| h.get(buf));
        match ex.snap.router.find(head.method(buf), host, path) {
            Lookup::Found(m) => Ok(m),
            Lookup::MethodNotAllowed { .. }
                if let Some(m) = preflight_route(ex.snap, buf, head, host, path) =>
            {
                Ok(m)
            }
            Lookup::MethodNotAllowed { allow } => {
                ex.fields.extend_from_slice(b"Allow: ");
                ex.fields.extend_from_slice(allow.as_bytes());
                ex.fields.extend_from_slice(b"\r\n");
                Err((405, "method not allowed on this resource"))
            }
            Lookup::NotFound => Err((404, "no route matches this path")),
        }
    };
    match found {
        Ok(m) => {
            ex.outcome.route = Some(m.route);
            Ok(m)
        }
        Err((status, message)) => Err(reject(ex, status, message).await),
    }
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
) -> Option<Match> {
    if head.method(buf) != b"OPTIONS" {
        return None;
    }
    let asked = policy::cors::field(buf, head, b"access-control-request-method")?;
    match snap.router.find(asked, host, path) {
        Lookup::Found(m) if snap.routes[m.route].policies.cors.is_some() => Some(m),
        _ => None,
    }
}
