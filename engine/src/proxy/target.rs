//! Phase 3 of an exchange, `choose_target`: the request-target the upstream
//! gets (the route's URI template expanded, or the path after the stage, or
//! the target unchanged; then the route's query mapping), the upstream
//! target (round robin per worker), and whether the request upgrades.

use super::context::{Exchange, Step};
use super::local::Pools;
use super::respond::reject;
use super::route::route_path;
use crate::h1::header::Span;
use crate::policy;
use crate::snapshot::{Route, Target, Upstream};
use ringway_router::{ExpandError, Match};

/// The request-target forwarded upstream.
pub enum RequestTarget {
    /// The client's, unchanged.
    AsSent,
    /// A part of the client's (the path after the stage), in the read buffer.
    Within(Span),
    /// Rewritten into a pooled buffer.
    Rewritten(Vec<u8>),
}

impl RequestTarget {
    /// The target to write, if it is not the client's own.
    pub fn get<'b>(&'b self, buf: &'b [u8]) -> Option<&'b [u8]> {
        match self {
            RequestTarget::AsSent => None,
            RequestTarget::Within(span) => Some(span.get(buf)),
            RequestTarget::Rewritten(b) => Some(b),
        }
    }

    /// Gives a rewritten target's buffer back (the target is the client's again).
    pub fn release(&mut self, pools: &Pools) {
        if let RequestTarget::Rewritten(b) = std::mem::replace(self, RequestTarget::AsSent) {
            pools.put_buf(b);
        }
    }
}

/// Where the request goes: what phase 3 hands the later phases.
pub struct Chosen<'s> {
    pub route: &'s Route,
    pub up: &'s Upstream,
    pub target: &'s Target,
    pub request_target: RequestTarget,
}

/// Phase 3: the upstream target and request-target of route `m`; 400 (500
/// for a template naming no parameter) when they cannot be made.
pub async fn choose_target<'a>(ex: &mut Exchange<'a>, m: &Match) -> Step<Chosen<'a>> {
    let snap = ex.snap;
    let route = &snap.routes[m.route];
    let request_target = match backend_target(ex, route, m) {
        Ok(t) => t,
        Err((status, message)) => return Err(reject(ex, status, message).await),
    };
    let target = ex.local.pick_target(snap, route.upstream);
    ex.outcome.target = Some(target.id);
    if let Some(n) = ex.head.framing.known_length() {
        ex.outcome.body_in = n;
    }
    // Only WebSocket upgrades reach here (`h1::request`); they tunnel over
    // plain sockets or TLS on either side.
    ex.info.upgrading = route.websocket && ex.head.upgrade.is_some() && !ex.head.has_body();
    let request_target = match map_target(ex, route, m, request_target) {
        Ok(t) => t,
        Err(message) => return Err(reject(ex, 400, message).await),
    };
    Ok(Chosen {
        route,
        up: &snap.upstreams[route.upstream],
        target,
        request_target,
    })
}

/// The target after the route's URI template or the stage. Done before any
/// await, so that nothing of it lives on in the future's state.
fn backend_target(
    ex: &Exchange<'_>,
    route: &Route,
    m: &Match,
) -> Result<RequestTarget, (u16, &'static str)> {
    let (buf, head, pools) = (&ex.rbuf[..], ex.head, &ex.local.pools);
    let path = head.path(buf);
    if let Some(t) = &route.template {
        let mut b = pools.take_buf();
        return match t.expand(
            route_path(path),
            m,
            &ex.snap.router,
            head.query(buf),
            &mut b,
        ) {
            Ok(()) => Ok(RequestTarget::Rewritten(b)),
            Err(e) => {
                pools.put_buf(b);
                let status = if e == ExpandError::Unbound { 500 } else { 400 };
                let message = if e == ExpandError::Traversal {
                    "path parameter would leave the backend path"
                } else {
                    "invalid path parameter"
                };
                Err((status, message))
            }
        };
    }
    // The stage is a gateway concept: the upstream sees the path after it.
    let Some(stage) = ex.snap.router.stage() else {
        return Ok(RequestTarget::AsSent);
    };
    let rest = head.target.get(buf).get(stage.len()..).unwrap_or_default();
    if rest.first() == Some(&b'/') {
        Ok(RequestTarget::Within(Span::of(buf, rest)))
    } else if path != b"*" {
        let mut b = pools.take_buf();
        b.push(b'/');
        b.extend_from_slice(rest);
        Ok(RequestTarget::Rewritten(b))
    } else {
        Ok(RequestTarget::AsSent)
    }
}

/// Query string mapping (`[route.mapping]`), applied to the target as the
/// upstream would get it.
fn map_target(
    ex: &Exchange<'_>,
    route: &Route,
    m: &Match,
    mut now: RequestTarget,
) -> Result<RequestTarget, &'static str> {
    let Some(map) = route
        .policies
        .mapping
        .as_deref()
        .filter(|m| m.rewrites_target())
    else {
        return Ok(now);
    };
    let (buf, head, pools, snap) = (&ex.rbuf[..], ex.head, &ex.local.pools, ex.snap);
    let rid = crate::request_id::range(ex.fields, snap.request_id.as_deref());
    let client = if map.uses_client_ip() {
        policy::ip::client_ip(ex.peer, &snap.trusted_proxies, buf, head)
    } else {
        ex.peer
    };
    let cx = policy::mapping::Context {
        buf,
        head,
        client,
        path: route_path(head.path(buf)),
        found: Some(m),
        router: &snap.router,
        request_id: &ex.fields[rid],
    };
    let mut b = pools.take_buf();
    let current = now.get(buf).unwrap_or(head.target.get(buf));
    let mapped = map.rewrite_target(current, &cx, &mut b);
    now.release(pools);
    match mapped {
        Ok(()) => Ok(RequestTarget::Rewritten(b)),
        Err(message) => {
            pools.put_buf(b);
            Err(message)
        }
    }
}
