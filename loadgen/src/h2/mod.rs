//! HTTP/2 for `--h2` (TLS, ALPN `h2`) and `--h2c` (cleartext, prior
//! knowledge), RFC 9113. Layered like the HTTP/1.1 side:
//!
//! - `frame.rs`: frame decoder and encoders — bytes only;
//! - `hpack/`: HPACK — the request header block (static table only) and a
//!   response decoder with its dynamic table (the `ringway-hpack` crate);
//! - `conn.rs`: the connection state machine without I/O — SETTINGS, PING,
//!   streams, flow control, GOAWAY — turning frames into [`conn::Event`]s;
//! - `session.rs`: the async loop that drives it on a connection, with the
//!   connection loop's request bookkeeping (`connection.rs`).

mod conn;
mod frame;
mod hpack;
mod session;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;

pub(crate) use session::session;

use crate::target::Target;

/// What every stream of one request (a target's, or a mix line's) sends.
#[derive(Debug, Clone)]
pub(crate) struct H2Request {
    /// The HPACK header block, built once (no dynamic table, so it never changes).
    pub block: Vec<u8>,
    /// The request body, shared by every connection (`None`: no body).
    pub body: Option<Arc<[u8]>>,
}

impl H2Request {
    pub fn new(
        method: &str,
        target: &Target,
        headers: &[(String, String)],
        body: Option<&[u8]>,
    ) -> Self {
        let block = hpack::encode_request(&hpack::RequestHead {
            method,
            scheme: if target.tls { "https" } else { "http" },
            authority: &target.authority,
            path: &target.path,
            headers,
            body_len: body.map(<[u8]>::len),
        });
        H2Request {
            block,
            body: body.map(Arc::from),
        }
    }
}

/// The ALPN protocol id of HTTP/2 over TLS.
pub(crate) const ALPN: &[u8] = b"h2";

/// Pre-flight for `--h2c`: sends the preface and SETTINGS on `tcp` and
/// checks that the answer starts with a SETTINGS frame, so a server that
/// does not speak HTTP/2 with prior knowledge is named before the run.
pub(crate) fn preflight_h2c(mut tcp: TcpStream, wait: Duration) -> anyhow::Result<()> {
    tcp.set_read_timeout(Some(wait))?;
    tcp.set_write_timeout(Some(wait))?;
    let mut hello = frame::PREFACE.to_vec();
    frame::put_settings(&mut hello, &[]);
    tcp.write_all(&hello)?;
    let mut head = [0u8; frame::HEADER_BYTES];
    let mut got = 0;
    while got < head.len() {
        match tcp.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if got == 0 => return Err(e.into()),
            Err(_) => break,
        }
    }
    let settings =
        got == head.len() && head[3] == frame::kind::SETTINGS && head[4] & frame::flag::ACK == 0;
    if !settings {
        bail!("the server does not speak HTTP/2 with prior knowledge (h2c)");
    }
    Ok(())
}

/// A seeded xorshift64* generator for the random-input tests: the same
/// bytes on every run, no dependency.
#[cfg(test)]
pub(crate) fn test_rng(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        seed.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}
