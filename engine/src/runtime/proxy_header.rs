//! Reading the PROXY protocol header a `proxy_protocol = true` listener's
//! connections start with (the parser is `crate::proxy_protocol`).
//!
//! The header must be taken off the socket exactly: what follows it is the
//! client's TLS handshake or HTTP request, read by other code. So bytes are
//! first peeked; a header found whole is then consumed to its last byte, and
//! bytes that are only the start of one (all of them belong to it) are
//! consumed and more awaited. Runs before the connection's long-lived state
//! exists, in a pooled block (see `worker::connection`).

use crate::proxy_protocol::{Invalid, V2_MAX_LEN, parse};
use crate::sys::recv_now;
use monoio::net::TcpStream;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Why a connection was closed before its PROXY header was whole.
#[derive(Debug)]
pub enum Refused {
    /// Not a valid header (bad signature or grammar, too long).
    Invalid(Invalid),
    /// The header did not arrive whole within `header_read`.
    TimedOut,
    /// The peer closed (or reset) with part of a header sent.
    Truncated,
    /// The peer closed without sending anything: nothing to count.
    Silent,
}

/// Reads the header within `limit`. `Ok(Some(client))`: the address it
/// carries; `Ok(None)`: a header without one (v1 `UNKNOWN`, v2 `LOCAL`),
/// the socket's peer stands.
pub async fn read(stream: &TcpStream, limit: Duration) -> Result<Option<SocketAddr>, Refused> {
    let fd = stream.as_raw_fd();
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; V2_MAX_LEN];
    let mut have = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // Not relaxed: the bytes are read outside monoio, which then cannot
        // know the socket's readiness.
        match monoio::time::timeout(left, stream.readable(false)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(Refused::Truncated),
            Err(_) => return Err(Refused::TimedOut),
        }
        let n = match recv_now(fd, &mut buf[have..], true) {
            Ok(0) if have == 0 => return Err(Refused::Silent),
            Ok(0) => return Err(Refused::Truncated),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            Err(_) => return Err(Refused::Truncated),
        };
        let seen = have + n;
        let (take, found) = match parse(&buf[..seen]) {
            Ok(Some(h)) => (h.len, Some(h.addresses.map(|(client, _)| client))),
            Ok(None) if seen == buf.len() => return Err(Refused::Invalid(Invalid::TooLong)),
            Ok(None) => (seen, None),
            Err(e) => return Err(Refused::Invalid(e)),
        };
        // The bytes are in the socket (just peeked): this takes them at once.
        match recv_now(fd, &mut buf[have..take], false) {
            Ok(got) if got == take - have => have = take,
            _ => return Err(Refused::Truncated),
        }
        if let Some(client) = found {
            return Ok(client);
        }
    }
}
