//! One body relay for both directions: a request body going upstream
//! (phase `send_request_body`) and a response body coming back (phase
//! `relay_response_body`) are both a [`Framing`] matched here, once.

use super::error::RelayError;
use super::local::Pools;
use super::relay::{Leg, copy_exact, relay_chunked, relay_until_close, splice_exact, write_all};
use super::stream::{Client, Upstream};
use crate::h1::Framing;
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;

/// A connection a body is relayed from or to.
pub trait Socket: AsyncReadRent + AsyncWriteRent {
    /// The plain socket, where splice(2) may be used.
    fn plain_tcp(&mut self) -> Option<&mut TcpStream>;
}

impl Socket for Client {
    fn plain_tcp(&mut self) -> Option<&mut TcpStream> {
        self.plain()
    }
}

impl Socket for Upstream {
    fn plain_tcp(&mut self) -> Option<&mut TcpStream> {
        self.plain()
    }
}

/// Relays one message body from `src` to `dst` as `framing` says. `sbuf`
/// holds what was already read from `src` past the head; `out` may hold a
/// head to send first. Bytes read past the body's end stay in `sbuf`.
///
/// Content-Length: what came with the head goes out with it; the rest moves
/// by splice(2) when it is at least `leg.splice_threshold` bytes and both
/// ends are plain sockets, else by copy. Chunked: decoded strictly and
/// re-encoded as `leg.encode` says. Until close: everything until `src`
/// closes. Returns the bytes written to `dst`, the head in `out` included.
pub async fn relay_body<S: Socket, D: Socket>(
    pools: &Pools,
    (src, dst): (&mut S, &mut D),
    framing: Framing,
    (sbuf, out): (&mut Vec<u8>, &mut Vec<u8>),
    leg: Leg,
) -> Result<u64, RelayError> {
    match framing {
        Framing::None => flush(dst, out, leg).await,
        Framing::Length(n) => {
            let first = (sbuf.len() as u64).min(n) as usize;
            out.extend_from_slice(&sbuf[..first]);
            sbuf.drain(..first);
            let head = flush(dst, out, leg).await?;
            let rest = n - first as u64;
            if rest == 0 {
                return Ok(head);
            }
            if rest >= leg.splice_threshold
                && sbuf.is_empty()
                && let (Some(s), Some(d)) = (src.plain_tcp(), dst.plain_tcp())
            {
                splice_exact(pools, s, d, rest, leg.idle, leg.dir).await?;
            } else {
                copy_exact(src, dst, sbuf, rest, leg.idle, leg.dir).await?;
            }
            Ok(head + rest)
        }
        Framing::Chunked => relay_chunked(src, dst, (sbuf, out), leg).await,
        Framing::UntilClose => relay_until_close(src, dst, (sbuf, out), leg).await,
    }
}

/// Sends what `out` holds, if anything; returns how many bytes that was.
async fn flush(
    dst: &mut impl AsyncWriteRent,
    out: &mut Vec<u8>,
    leg: Leg,
) -> Result<u64, RelayError> {
    let n = out.len() as u64;
    if n > 0 {
        write_all(dst, out, leg.idle)
            .await
            .map_err(|f| leg.dir.dst(f))?;
        out.clear();
    }
    Ok(n)
}
