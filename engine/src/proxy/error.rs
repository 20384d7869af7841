//! Proxy errors: whose fault (client or upstream), and what the client gets.

use crate::h1::H1Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The client (downstream).
    Client,
    /// The upstream server.
    Upstream,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Nothing arrived within the allowed time.
    Timeout,
    /// The peer closed the connection early.
    Closed,
    /// An I/O error (reset, broken pipe...).
    Io,
    /// The peer broke HTTP/1.1 framing.
    Protocol(H1Error),
    /// No connection to the upstream could be made (refused, unreachable, or `connect_timeout`).
    Connect,
}

/// A failed relay step: who failed and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayError {
    pub side: Side,
    pub failure: Failure,
}

impl RelayError {
    pub fn client(failure: Failure) -> Self {
        RelayError {
            side: Side::Client,
            failure,
        }
    }
    pub fn upstream(failure: Failure) -> Self {
        RelayError {
            side: Side::Upstream,
            failure,
        }
    }

    /// The status the client gets if no response head was sent yet, or `None` when nobody is left to answer.
    pub fn status(self) -> Option<u16> {
        match (self.side, self.failure) {
            (Side::Client, Failure::Protocol(e)) => Some(e.status()),
            (Side::Client, Failure::Timeout) => Some(408),
            (Side::Client, _) => None,
            (Side::Upstream, Failure::Timeout) => Some(504),
            (Side::Upstream, _) => Some(502),
        }
    }

    pub fn message(self) -> &'static str {
        match (self.side, self.failure) {
            (Side::Client, Failure::Protocol(e)) => e.as_str(),
            (Side::Client, Failure::Timeout) => "request body timed out",
            (Side::Client, _) => "client went away",
            (Side::Upstream, Failure::Connect) => "cannot connect to upstream",
            (Side::Upstream, Failure::Timeout) => "upstream timed out",
            (Side::Upstream, Failure::Protocol(_)) => "upstream sent an invalid response",
            (Side::Upstream, Failure::Closed) => "upstream closed the connection",
            (Side::Upstream, Failure::Io) => "upstream connection failed",
        }
    }
}
