//! The context every phase of an exchange takes ([`Exchange`]), what the
//! request tells the phases once its head bytes are gone ([`ReqInfo`]), and
//! how an exchange ends ([`Next`]). See LIFECYCLE.md for the phases.

use super::local::Worker;
use super::outcome::Outcome;
use super::stream::{Client, Upstream as UpConn};
use crate::h1::Framing;
use crate::h1::request::RequestHead;
use crate::h1::response::ResponseHead;
use crate::snapshot::Snapshot;
use std::net::IpAddr;

/// How an exchange ended: what the connection does next.
pub enum Next {
    KeepAlive,
    Close,
    /// The upstream switched protocols (101): tunnel the two connections.
    /// Carries the upstream connection and bytes it sent after the 101 head.
    Tunnel(UpConn, Vec<u8>),
}

/// What a phase gives the next one, or `Err` with how the exchange ended
/// early (the client was answered, or is gone).
pub type Step<T> = Result<T, Next>;

/// What the exchange still needs of the request once its head bytes are gone.
#[derive(Clone, Copy)]
pub struct ReqInfo {
    pub keep_alive: bool,
    pub minor: u8,
    pub is_head: bool,
    pub idempotent: bool,
    /// The request body's framing; `None` once the body was read whole.
    pub framing: Framing,
    pub expect_continue: bool,
    /// The request asks to upgrade and its route allows it.
    pub upgrading: bool,
    /// An interim (1xx) response went to the client: the request is not retried.
    pub interim_sent: bool,
}

impl ReqInfo {
    pub fn of(head: &RequestHead, buf: &[u8]) -> ReqInfo {
        ReqInfo {
            keep_alive: head.keep_alive,
            minor: head.minor_version,
            is_head: head.is_head(buf),
            idempotent: head.is_idempotent(buf),
            framing: head.framing,
            expect_continue: head.expect_continue,
            upgrading: false,
            interim_sent: false,
        }
    }
}

/// One exchange's context: references to what the connection and the
/// worker hold, passed to every phase instead of ten arguments. It lives in
/// the busy state (a pooled block), never in an idle connection's task.
pub struct Exchange<'a> {
    /// This worker's pools, counters and policy state.
    pub local: &'a Worker,
    pub snap: &'a Snapshot,
    pub client: &'a mut Client,
    /// The read buffer: the request head at its front until the upstream
    /// head is written, then whatever the client sent after it.
    pub rbuf: &'a mut Vec<u8>,
    pub head: &'a RequestHead,
    pub resp: &'a mut ResponseHead,
    /// Field lines every response to this request carries (request id, CORS, Retry-After…).
    pub fields: &'a mut Vec<u8>,
    /// Field lines the upstream request carries (request id, JWT claims…).
    pub upstream_fields: &'a mut Vec<u8>,
    /// The client's address (the socket peer, or the address a PROXY
    /// protocol header named).
    pub peer: IpAddr,
    /// Its port, for a PROXY header sent upstream.
    pub peer_port: u16,
    /// `peer` as text, for X-Forwarded-For.
    pub ip: &'a str,
    pub outcome: &'a mut Outcome,
    pub info: ReqInfo,
}
