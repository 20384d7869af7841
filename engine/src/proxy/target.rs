//! Phase 3 of an exchange, `choose_target`: the request-target the upstream
//! gets (the route's URI template expanded, or the path after the stage, or
//! the target unchanged; then the route's query mapping), the upstream
//! target (round robin per worker), and whether the request upgrades.

use super::context::{Exchange, Step};
use super::local::{Pools, Worker};
use super::respond::reject;
use super::route::route_path;
use crate::h1::header::Span;
use crate::policy;
use crate::resilience::{Balance, Breaker, HashKey};
use crate::snapshot::{Route, Snapshot, Target, Upstream};
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
    /// The target of the current attempt (a retry may change it).
    pub target: &'s Target,
    pub request_target: RequestTarget,
    /// The request's place in its upstream's per-worker counts.
    pub ticket: Ticket<'s>,
    /// The request's hash for `balance = "hash"`.
    pub hash: Option<u64>,
}

impl<'s> Chosen<'s> {
    /// Moves the request to another target of its upstream for a retry:
    /// one it has not tried, if one is available.
    pub fn retarget(&mut self, snap: &'s Snapshot, tried: u64) {
        let ui = self.ticket.upstream;
        let ti = match self.ticket.balance() {
            Some(mut b) => b.pick(snap, ui, tried, self.hash),
            // A reload replaced this worker's counts: the next untried target.
            None => untried(self.up.targets.len(), tried, self.ticket.target),
        };
        self.target = &self.up.targets[ti];
        self.ticket.target = ti;
    }
}

/// One request's share of its upstream's per-worker counts: in flight
/// (`max_requests`, the retry budget's base, least request's in-flight per
/// target), retrying, holding a connection. Given back on drop, however the
/// exchange ends (a panic included), unless a reload replaced the counts.
pub struct Ticket<'w> {
    pub local: &'w Worker,
    generation: u64,
    pub upstream: usize,
    /// Index of the current attempt's target in the upstream.
    pub target: usize,
    /// An attempt to `target` is counted in flight.
    attempting: bool,
    /// Counted among the retries in flight.
    pub retrying: bool,
    /// Counted among the requests holding a connection.
    pub connected: bool,
}

/// The first target after `from` (in order, wrapping) that is not in `tried`, else the next one.
fn untried(n: usize, tried: u64, from: usize) -> usize {
    (1..=n)
        .map(|k| (from + k) % n)
        .find(|&i| i >= 64 || tried & (1 << i) == 0)
        .unwrap_or((from + 1) % n)
}

impl Ticket<'_> {
    fn counts_here(&self) -> bool {
        self.local.current_generation() == self.generation
    }

    /// This worker's balancer, if it still counts for this request's
    /// snapshot (`None` after a reload: the request finishes uncounted).
    pub fn balance(&self) -> Option<std::cell::RefMut<'_, super::balance::Balancer>> {
        self.counts_here().then(|| self.local.balance.borrow_mut())
    }

    /// An attempt to the current target begins (the last one, if any, ended).
    pub fn begin_attempt(&mut self) {
        if !self.counts_here() {
            return;
        }
        let mut b = self.local.balance.borrow_mut();
        b.start_attempt(self.upstream, self.target);
        self.attempting = true;
    }

    /// The current attempt is over (failed; a retry may follow).
    pub fn end_attempt(&mut self) {
        if self.attempting && self.counts_here() {
            self.local
                .balance
                .borrow_mut()
                .end_attempt(self.upstream, self.target);
        }
        self.attempting = false;
        self.set_connected(false);
    }

    /// Counts this request among the retries in flight.
    pub fn set_retrying(&mut self) {
        if !self.retrying && self.counts_here() {
            self.local.balance.borrow_mut().upstreams[self.upstream].retrying += 1;
            self.retrying = true;
        }
    }

    /// Counts (or stops counting) this request as holding a connection.
    pub fn set_connected(&mut self, on: bool) {
        if on == self.connected || !self.counts_here() {
            self.connected = on && self.counts_here();
            return;
        }
        let mut b = self.local.balance.borrow_mut();
        let st = &mut b.upstreams[self.upstream];
        if on {
            st.connected += 1;
        } else {
            st.connected = st.connected.saturating_sub(1);
        }
        drop(b);
        self.connected = on;
        if !on {
            self.local.wake_conn_waiters();
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.end_attempt();
        if !self.counts_here() {
            return;
        }
        let mut b = self.local.balance.borrow_mut();
        let st = &mut b.upstreams[self.upstream];
        st.active = st.active.saturating_sub(1);
        if self.retrying {
            st.retrying = st.retrying.saturating_sub(1);
        }
    }
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
    let ui = route.upstream;
    let up = &snap.upstreams[ui];
    let local: &'a Worker = ex.local;
    // After a reload this request's snapshot is not the one the balancer
    // counts for: it is picked and served uncounted.
    let current = snap.generation == local.current_generation();
    if current && !admit(&mut local.balance.borrow_mut(), ui, up) {
        return Err(reject(ex, 503, Breaker::MaxRequests.message()).await);
    }
    let hash = match &up.resilience.balance {
        Balance::Hash(key) => request_hash(ex, key),
        _ => None,
    };
    let ti = if current {
        local.balance.borrow_mut().pick(snap, ui, 0, hash)
    } else {
        untried(up.targets.len(), 0, up.targets.len() - 1)
    };
    let ticket = Ticket {
        local,
        generation: snap.generation,
        upstream: ui,
        target: ti,
        attempting: false,
        retrying: false,
        connected: false,
    };
    let target = &up.targets[ti];
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
        up,
        target,
        request_target,
        ticket,
        hash,
    })
}

/// Counts the request in flight for upstream `ui`, unless that would pass
/// `max_requests` (counted as a breaker trip).
fn admit(b: &mut super::balance::Balancer, ui: usize, up: &Upstream) -> bool {
    if b.upstreams[ui].active >= up.resilience.limits.max_requests {
        b.count_breaker(ui, Breaker::MaxRequests);
        b.count_outcome(ui, 3);
        return false;
    }
    b.upstreams[ui].active += 1;
    true
}

/// The hash of the request value `key` names; `None` when the request has
/// no such value (the pick is then random).
fn request_hash(ex: &Exchange<'_>, key: &HashKey) -> Option<u64> {
    let (buf, head) = (&ex.rbuf[..], ex.head);
    let hash = |v: &[u8]| Some(crate::resilience::hash64(v, 0));
    match key {
        HashKey::Path => hash(head.path(buf)),
        HashKey::SourceIp => {
            let ip = policy::ip::client_ip(ex.peer, &ex.snap.trusted_proxies, buf, head);
            match ip {
                std::net::IpAddr::V4(a) => hash(&a.octets()),
                std::net::IpAddr::V6(a) => hash(&a.octets()),
            }
        }
        HashKey::Header(name) => head
            .headers
            .iter()
            .find(|h| h.name.get(buf).eq_ignore_ascii_case(name))
            .and_then(|h| hash(h.value.get(buf))),
        HashKey::Query(name) => head
            .query(buf)
            .split(|&b| b == b'&')
            .find_map(|pair| {
                let (k, v) = match pair.iter().position(|&b| b == b'=') {
                    Some(i) => (&pair[..i], &pair[i + 1..]),
                    None => (pair, &[][..]),
                };
                (k == &name[..]).then_some(v)
            })
            .and_then(hash),
    }
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
