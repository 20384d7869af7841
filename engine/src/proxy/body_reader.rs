//! Phase 4 of an exchange, `read_checked_body` (LIFECYCLE.md): on a route with a JSON Schema,
//! the request body is read whole — up to `json_max_bytes`, before any
//! upstream connection is taken — and checked. A body that passes is
//! forwarded from the buffer with a Content-Length, whatever framing the
//! client used.
//!
//! The read buffer is left as it is (the head, and whatever arrived with
//! it): the body is copied into a pooled buffer, followed by any bytes read
//! past its end (a pipelined next request), and [`Body::forward`] puts
//! those back once the head is done with.

use super::context::{Exchange, Next, Step};
use super::error::{Failure, RelayError};
use super::local::Pools;
use super::relay::{read_more, write_all};
use super::respond::refuse_body;
use super::stream::Client;
use crate::h1::Framing;
use crate::h1::chunked::{ChunkedDecoder, Decoded};
use crate::h1::request::RequestHead;
use crate::policy::schema::JsonBody;
use crate::snapshot::Route;
use std::borrow::Cow;
use std::time::Duration;

/// The JSON Schema a request's body must be checked against, if its route
/// has one and the request has a body (one branch for other routes).
#[inline]
pub fn schema_for<'s>(route: &'s Route, head: &RequestHead) -> Option<&'s JsonBody> {
    route
        .policies
        .validate
        .as_deref()
        .and_then(|v| v.json())
        .filter(|_| head.has_body())
}

/// Phase 4: reads the whole body of a request on a route with a JSON
/// Schema and checks it. `Err` ends the exchange with a closed connection:
/// the body was refused (and answered), or the client is gone. Rare, so
/// callers box it (other connections' futures do not grow).
pub async fn read_checked_body(ex: &mut Exchange<'_>, json: &JsonBody) -> Step<Body> {
    let idle = ex.snap.timeouts.body_idle;
    let read = read_and_check(
        &ex.local.pools,
        ex.client,
        (&ex.rbuf[..], ex.head),
        json,
        idle,
    )
    .await;
    match read {
        Ok(b) => Ok(b),
        Err(Refusal::Gone) => Err(Next::Close),
        Err(Refusal::Client(e)) => {
            ex.local.count_failure(e);
            match e.status() {
                Some(status) => Err(refuse_body(ex, status, e.message()).await),
                None => Err(Next::Close),
            }
        }
        Err(Refusal::Invalid(status, message)) => Err(refuse_body(ex, status, &message).await),
    }
}

/// Why a body was not accepted.
pub enum Refusal {
    /// The client is gone before the body was asked for: nobody to answer.
    Gone,
    /// The client timed out, closed, or broke the chunked framing.
    Client(RelayError),
    /// The body is too large or does not pass the schema: the status and message.
    Invalid(u16, Cow<'static, str>),
}

/// A body read whole and found valid.
pub struct Body {
    /// The body, then any bytes read past its end (the start of a pipelined request).
    buf: Vec<u8>,
    len: usize,
    /// How many bytes after the head in the read buffer were the body's.
    consumed: usize,
}

impl Body {
    /// The body's size: its Content-Length upstream.
    pub fn length(&self) -> u64 {
        self.len as u64
    }

    /// Appends the body, if there is one, to `out` (the upstream request
    /// head) and leaves `rbuf`, which the head has been drained from,
    /// holding what follows the body. Takes the `Option` by value so the
    /// caller's variable is gone for good (it would otherwise stay in the
    /// connection future's state across every later await).
    pub fn forward(body: Option<Body>, pools: &Pools, out: &mut Vec<u8>, rbuf: &mut Vec<u8>) {
        let Some(b) = body else { return };
        rbuf.drain(..b.consumed);
        out.extend_from_slice(&b.buf[..b.len]);
        rbuf.extend_from_slice(&b.buf[b.len..]);
        pools.put_buf(b.buf);
    }

    /// Hands the buffer back to the pool (the body is not forwarded).
    pub fn discard(self, pools: &Pools) {
        pools.put_buf(self.buf);
    }
}

/// Reads the body of the request whose head starts `rbuf` and checks it
/// against `json`. The head must say there is a body (`head.has_body()`)
/// and have passed [`JsonBody::check_head`].
async fn read_and_check(
    pools: &Pools,
    client: &mut Client,
    (rbuf, head): (&[u8], &RequestHead),
    json: &JsonBody,
    idle: Duration,
) -> Result<Body, Refusal> {
    let too_large = || Refusal::Invalid(413, Cow::Borrowed("request body too large"));
    // The chain refused this already; checked again so the cap holds here alone.
    if matches!(head.framing, Framing::Length(n) if n > json.max_bytes) {
        return Err(too_large());
    }
    let early = &rbuf[head.head_len..];
    // The client waits for a go-ahead before sending the body: ringway gives
    // it here, as it would before relaying (the upstream never sees Expect).
    if head.expect_continue && early.is_empty() {
        let mut out = pools.take_buf();
        out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        let sent = write_all(client, &mut out, idle).await;
        pools.put_buf(out);
        sent.map_err(|_| Refusal::Gone)?;
    }
    let mut buf = pools.take_buf();
    let read = match head.framing {
        Framing::Length(n) => read_length(client, early, &mut buf, n as usize, idle).await,
        Framing::Chunked => {
            let mut raw = pools.take_buf();
            let r = read_chunked(client, early, &mut raw, &mut buf, json.max_bytes, idle).await;
            pools.put_buf(raw);
            r
        }
        // Not called for a request without a body.
        Framing::None | Framing::UntilClose => Ok((0, 0)),
    };
    let (len, consumed) = match read {
        Ok(r) => r,
        Err(e) => {
            pools.put_buf(buf);
            return Err(match e {
                Stop::TooLarge => too_large(),
                Stop::Client(e) => Refusal::Client(e),
            });
        }
    };
    match json.check_body(&buf[..len]) {
        Ok(()) => Ok(Body { buf, len, consumed }),
        Err(message) => {
            pools.put_buf(buf);
            Err(Refusal::Invalid(400, Cow::Owned(message)))
        }
    }
}

/// Why reading a body stopped early.
enum Stop {
    /// A chunked body passed the limit.
    TooLarge,
    /// The client timed out, closed, or broke the chunked framing.
    Client(RelayError),
}

impl From<Failure> for Stop {
    fn from(f: Failure) -> Self {
        Stop::Client(RelayError::client(f))
    }
}

/// Reads more from the client; end of stream counts as a failure.
async fn more(client: &mut Client, buf: &mut Vec<u8>, idle: Duration) -> Result<(), Stop> {
    match read_more(client, buf, idle).await? {
        0 => Err(Failure::Closed.into()),
        _ => Ok(()),
    }
}

/// A Content-Length body of `n` bytes (at most the limit: checked on the
/// head) into `body`, starting with the bytes that came with the head.
/// Returns the body's length and how many of `early` it took.
async fn read_length(
    client: &mut Client,
    early: &[u8],
    body: &mut Vec<u8>,
    n: usize,
    idle: Duration,
) -> Result<(usize, usize), Stop> {
    let consumed = early.len().min(n);
    body.extend_from_slice(&early[..consumed]);
    while body.len() < n {
        more(client, body, idle).await?;
    }
    Ok((n, consumed))
}

/// A chunked body, decoded into `body`; 413 the moment it passes `limit`.
/// Chunk extensions and trailer fields are dropped (the body goes on with a
/// Content-Length). `raw` holds bytes read from the client until decoded.
/// Returns the body's length and how many of `early` it took.
async fn read_chunked(
    client: &mut Client,
    early: &[u8],
    raw: &mut Vec<u8>,
    body: &mut Vec<u8>,
    limit: u64,
    idle: Duration,
) -> Result<(usize, usize), Stop> {
    let mut dec = ChunkedDecoder::default();
    // First what came with the head, then reads; `from_early` says which.
    let mut from_early = true;
    loop {
        let input: &[u8] = if from_early { early } else { raw };
        let mut pos = 0;
        loop {
            let (n, d) = dec.decode(&input[pos..]).map_err(Failure::Protocol)?;
            match d {
                Decoded::Data { start, end } => {
                    if (body.len() + end - start) as u64 > limit {
                        return Err(Stop::TooLarge);
                    }
                    body.extend_from_slice(&input[pos + start..pos + end]);
                    pos += n;
                }
                Decoded::Done { .. } => {
                    let len = body.len();
                    if from_early {
                        return Ok((len, pos + n));
                    }
                    body.extend_from_slice(&raw[pos + n..]);
                    return Ok((len, early.len()));
                }
                Decoded::NeedMore => {
                    pos += n;
                    break;
                }
            }
        }
        // Bytes not consumed yet (part of a trailer section) wait for more.
        if from_early {
            raw.extend_from_slice(&early[pos..]);
            from_early = false;
        } else {
            raw.drain(..pos);
        }
        more(client, raw, idle).await?;
    }
}
