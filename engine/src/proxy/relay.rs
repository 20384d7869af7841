//! Moving bytes: buffered reads and writes with timeouts, Content-Length
//! bodies by copy or by splice(2), and chunked bodies decoded and re-encoded.

use super::error::{Failure, RelayError};
use super::local::{BUF_SIZE, Pools};
use crate::h1::chunked::{self, ChunkedDecoder, Decoded};
use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::splice::{SpliceDestination, SpliceSource};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use std::time::Duration;

/// Bytes moved per splice(2) call: the default pipe capacity.
pub const PIPE_CHUNK: u64 = 64 * 1024;

/// Reads more bytes onto the end of `buf`. `Ok(0)` is end of stream.
pub async fn read_more<S: AsyncReadRent>(
    s: &mut S,
    buf: &mut Vec<u8>,
    limit: Duration,
) -> Result<usize, Failure> {
    if buf.len() == buf.capacity() {
        buf.reserve(buf.capacity().max(BUF_SIZE / 4));
    }
    let owned = std::mem::take(buf);
    let (len, cap) = (owned.len(), owned.capacity());
    match monoio::time::timeout(limit, s.read(owned.slice_mut(len..cap))).await {
        Ok((res, slice)) => {
            *buf = slice.into_inner();
            match res {
                Ok(n) => Ok(n),
                Err(_) => Err(Failure::Io),
            }
        }
        // The buffer went down with the cancelled read; the caller closes this connection.
        Err(_) => Err(Failure::Timeout),
    }
}

/// Writes all of `buf` (which keeps its contents and capacity).
pub async fn write_all<S: AsyncWriteRent>(
    s: &mut S,
    buf: &mut Vec<u8>,
    limit: Duration,
) -> Result<(), Failure> {
    let owned = std::mem::take(buf);
    match monoio::time::timeout(limit, s.write_all(owned)).await {
        Ok((res, b)) => {
            *buf = b;
            res.map(|_| ()).map_err(|_| Failure::Io)
        }
        Err(_) => Err(Failure::Timeout),
    }
}

/// Writes `buf[range]` without copying it anywhere else.
pub async fn write_range<S: AsyncWriteRent>(
    s: &mut S,
    buf: &mut Vec<u8>,
    start: usize,
    end: usize,
    limit: Duration,
) -> Result<(), Failure> {
    let owned = std::mem::take(buf);
    match monoio::time::timeout(limit, s.write_all(owned.slice(start..end))).await {
        Ok((res, b)) => {
            *buf = b.into_inner();
            res.map(|_| ()).map_err(|_| Failure::Io)
        }
        Err(_) => Err(Failure::Timeout),
    }
}

/// Which way bytes flow, so failures are blamed on the right side.
#[derive(Clone, Copy)]
pub enum Direction {
    /// Client → upstream (a request body).
    Up,
    /// Upstream → client (a response body).
    Down,
}

impl Direction {
    pub fn src(self, f: Failure) -> RelayError {
        match self {
            Direction::Up => RelayError::client(f),
            Direction::Down => RelayError::upstream(f),
        }
    }
    pub fn dst(self, f: Failure) -> RelayError {
        match self {
            Direction::Up => RelayError::upstream(f),
            Direction::Down => RelayError::client(f),
        }
    }
}

/// Copies exactly `remaining` bytes from `src` to `dst` through `buf`, which
/// must be empty. Bytes read past the end (a pipelined next request) stay in `buf`.
pub async fn copy_exact(
    src: &mut impl AsyncReadRent,
    dst: &mut impl AsyncWriteRent,
    buf: &mut Vec<u8>,
    mut remaining: u64,
    idle: Duration,
    dir: Direction,
) -> Result<(), RelayError> {
    while remaining > 0 {
        debug_assert!(buf.is_empty());
        let n = read_more(src, buf, idle).await.map_err(|f| dir.src(f))?;
        if n == 0 {
            return Err(dir.src(Failure::Closed));
        }
        let take = (buf.len() as u64).min(remaining) as usize;
        write_range(dst, buf, 0, take, idle)
            .await
            .map_err(|f| dir.dst(f))?;
        remaining -= take as u64;
        buf.drain(..take);
    }
    Ok(())
}

/// Moves exactly `remaining` bytes from `src` to `dst` with splice(2) through a pooled pipe.
pub async fn splice_exact(
    pools: &Pools,
    src: &mut TcpStream,
    dst: &mut TcpStream,
    mut remaining: u64,
    idle: Duration,
    dir: Direction,
) -> Result<(), RelayError> {
    let (mut rd, mut wr) = pools.take_pipe().map_err(|_| dir.src(Failure::Io))?;
    let total = remaining;
    while remaining > 0 {
        let want = remaining.min(PIPE_CHUNK) as u32;
        let n = match monoio::time::timeout(idle, src.splice_to_pipe(&mut wr, want)).await {
            Ok(Ok(0)) => return Err(dir.src(Failure::Closed)),
            Ok(Ok(n)) => n,
            Ok(Err(_)) => return Err(dir.src(Failure::Io)),
            Err(_) => return Err(dir.src(Failure::Timeout)),
        };
        let mut left = n;
        while left > 0 {
            match monoio::time::timeout(idle, dst.splice_from_pipe(&mut rd, left)).await {
                Ok(Ok(0)) => return Err(dir.dst(Failure::Closed)),
                Ok(Ok(m)) => left -= m,
                Ok(Err(_)) => return Err(dir.dst(Failure::Io)),
                Err(_) => return Err(dir.dst(Failure::Timeout)),
            }
        }
        remaining -= u64::from(n);
    }
    // Only an empty pipe goes back to the pool; on any error above it is dropped.
    pools.put_pipe((rd, wr));
    pools.count_spliced(total);
    Ok(())
}

/// How one body moves: which way (for blame), how it is re-encoded, the
/// idle limit of each read and write, and the size from which a
/// Content-Length body goes by splice(2).
#[derive(Clone, Copy)]
pub struct Leg {
    pub dir: Direction,
    pub encode: Encode,
    pub idle: Duration,
    pub splice_threshold: u64,
}

/// Output shape of a relayed chunked or close-delimited body.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Encode {
    /// Re-encode as chunked.
    Chunked,
    /// Raw bytes (the receiver reads until close).
    Raw,
}

/// Relays a chunked body: decodes `src` (starting with whatever `sbuf`
/// already holds) and re-encodes into `out`, which may already hold a head
/// to send first. Chunk extensions are dropped; trailers pass through.
/// Bytes after the body's end stay in `sbuf`. Returns the bytes written.
pub async fn relay_chunked(
    src: &mut impl AsyncReadRent,
    dst: &mut impl AsyncWriteRent,
    (sbuf, out): (&mut Vec<u8>, &mut Vec<u8>),
    leg: Leg,
) -> Result<u64, RelayError> {
    let Leg {
        dir, encode, idle, ..
    } = leg;
    let mut dec = ChunkedDecoder::default();
    let mut sent = 0;
    loop {
        let mut pos = 0;
        loop {
            let (n, d) = dec
                .decode(&sbuf[pos..])
                .map_err(|e| dir.src(Failure::Protocol(e)))?;
            match d {
                Decoded::Data { start, end } => {
                    let data = &sbuf[pos + start..pos + end];
                    match encode {
                        Encode::Chunked => chunked::write_chunk(out, data),
                        Encode::Raw => out.extend_from_slice(data),
                    }
                    pos += n;
                }
                Decoded::Done {
                    trailer_start,
                    trailer_end,
                } => {
                    if encode == Encode::Chunked {
                        chunked::write_last_chunk(
                            out,
                            &sbuf[pos + trailer_start..pos + trailer_end],
                        );
                    }
                    sbuf.drain(..pos + n);
                    if !out.is_empty() {
                        sent += out.len() as u64;
                        write_all(dst, out, idle).await.map_err(|f| dir.dst(f))?;
                        out.clear();
                    }
                    return Ok(sent);
                }
                Decoded::NeedMore => {
                    pos += n;
                    break;
                }
            }
        }
        sbuf.drain(..pos);
        if !out.is_empty() {
            sent += out.len() as u64;
            write_all(dst, out, idle).await.map_err(|f| dir.dst(f))?;
            out.clear();
        }
        if read_more(src, sbuf, idle).await.map_err(|f| dir.src(f))? == 0 {
            return Err(dir.src(Failure::Closed));
        }
    }
}

/// Relays a close-delimited response body until the upstream closes,
/// re-encoding as chunked or passing raw bytes. `out` may hold the head.
/// Returns the bytes written.
pub async fn relay_until_close(
    src: &mut impl AsyncReadRent,
    dst: &mut impl AsyncWriteRent,
    (sbuf, out): (&mut Vec<u8>, &mut Vec<u8>),
    leg: Leg,
) -> Result<u64, RelayError> {
    let Leg {
        dir, encode, idle, ..
    } = leg;
    let mut sent = 0;
    loop {
        if !sbuf.is_empty() {
            match encode {
                Encode::Chunked => chunked::write_chunk(out, sbuf),
                Encode::Raw => out.extend_from_slice(sbuf),
            }
            sbuf.clear();
        }
        if !out.is_empty() {
            sent += out.len() as u64;
            write_all(dst, out, idle).await.map_err(|f| dir.dst(f))?;
            out.clear();
        }
        match read_more(src, sbuf, idle).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(f) => return Err(dir.src(f)),
        }
    }
    if encode == Encode::Chunked {
        chunked::write_last_chunk(out, b"");
        sent += out.len() as u64;
        write_all(dst, out, idle).await.map_err(|f| dir.dst(f))?;
        out.clear();
    }
    Ok(sent)
}
