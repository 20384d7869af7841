//! The data plane: a route's chain run on one request.

use super::state::WorkerState;
use super::{Chain, api_key, ip, mock};
use crate::h1::request::RequestHead;
use std::net::IpAddr;
use std::ops::ControlFlow;
use std::time::Instant;

/// What policies read of the configuration being served. Plain references,
/// built per request by the proxy without allocating.
#[derive(Clone, Copy, Debug)]
pub struct Env<'a> {
    /// The snapshot generation (a worker's counters are for one generation).
    pub generation: u64,
    /// Worker threads: gateway-wide rates are split among them.
    pub workers: usize,
    /// Peers whose X-Forwarded-For names the client.
    pub trusted_proxies: &'a ip::CidrSet,
    /// `[[api_key]]` digests and their usage plans.
    pub api_keys: &'a api_key::Keys,
    /// The route table (mappings read path parameters by name through it).
    pub router: &'a ringway_router::Router,
    /// The request id field's name, or `None` when ids are off.
    pub request_id: Option<&'a [u8]>,
}

/// What the chain decided for a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict<'c> {
    /// Go on to the upstream.
    Forward,
    /// An allowed CORS preflight: answer 204 with the fields gathered.
    Preflight,
    /// Answer with ringway's own JSON error (and the fields gathered: CORS, Retry-After).
    Reject(u16, &'c str),
    /// Answer from the route's mock integration.
    Mock(&'c mock::Mock),
    /// Not decidable yet: a fleet-wide quota is being topped up from Redis
    /// (cluster mode). Run the chain again shortly.
    Wait,
}

/// The request as the chain sees it.
pub struct Request<'a> {
    pub buf: &'a [u8],
    pub head: &'a RequestHead,
    /// The connection's peer (canonical: IPv4-mapped addresses as IPv4).
    pub peer: IpAddr,
    /// Index of the matched route in the snapshot's routes.
    pub route: usize,
    /// The path the route matched, and the match (for path parameters).
    pub path: &'a [u8],
    pub found: Option<&'a ringway_router::Match>,
}

/// One policy check's view: the request, the served configuration, and
/// where its answer goes.
pub struct Check<'a> {
    pub env: &'a Env<'a>,
    pub req: &'a Request<'a>,
    /// The client address (after `trusted_proxies`) if a policy of the
    /// chain reads it, else the peer.
    pub client: IpAddr,
    /// This worker's API key counters; empty for a request that began
    /// under an older snapshot (it is checked but not counted).
    pub keys: &'a mut [api_key::KeyState],
    /// Field lines every response to this request carries (CORS,
    /// `Retry-After`, `WWW-Authenticate`, mapped response fields).
    pub fields: &'a mut Vec<u8>,
    /// Field lines for the upstream request (forwarded claims, mappings).
    pub upstream: &'a mut Vec<u8>,
    now: Option<Instant>,
    unix: Option<u64>,
}

impl Check<'_> {
    /// The monotonic clock, read once per request and only if asked.
    pub fn now(&mut self) -> Instant {
        *self.now.get_or_insert_with(Instant::now)
    }

    /// Wall-clock seconds since the epoch, read once per request and only if asked.
    pub fn unix(&mut self) -> u64 {
        *self.unix.get_or_insert_with(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        })
    }

    /// Answers 429 with `Retry-After: secs`.
    pub fn too_many<'c>(&mut self, secs: u64, message: &'c str) -> ControlFlow<Verdict<'c>> {
        self.fields.extend_from_slice(b"Retry-After: ");
        self.fields
            .extend_from_slice(itoa::Buffer::new().format(secs).as_bytes());
        self.fields.extend_from_slice(b"\r\n");
        ControlFlow::Break(Verdict::Reject(429, message))
    }
}

/// Data plane: runs `chain` on a request. `fields` (cleared by the caller)
/// receives the header lines every response to this request carries: CORS
/// fields, `Retry-After` on a 429, `WWW-Authenticate` on a 401.
/// `upstream` (cleared by the caller) receives field lines for the upstream
/// request (forwarded JWT claims). Synchronous; no I/O; allocates only when
/// a throttle meets a key it has not seen on this worker, and to decode a JWT
/// this worker has not verified yet.
pub fn run<'c>(
    chain: &'c Chain,
    env: &Env<'_>,
    state: &mut WorkerState,
    req: &Request<'_>,
    fields: &mut Vec<u8>,
    upstream: &mut Vec<u8>,
) -> Verdict<'c> {
    let client = if chain.uses_client_ip() {
        ip::client_ip(req.peer, env.trusted_proxies, req.buf, req.head)
    } else {
        req.peer
    };
    let (keys, locals) = state.for_request(env.generation, req.route);
    let mut cx = Check {
        env,
        req,
        client,
        keys,
        fields,
        upstream,
        now: None,
        unix: None,
    };
    match chain.check(&mut cx, locals) {
        ControlFlow::Continue(()) => Verdict::Forward,
        ControlFlow::Break(v) => v,
    }
}
