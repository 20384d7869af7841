//! The HTTP/1.1 client codec: request bytes built once, responses parsed
//! incrementally from a caller-owned buffer. No sockets and no allocation
//! per response: the reader is a small state machine the caller feeds.
//!
//! Message length follows RFC 9112 §6.3, in this order:
//! 1. a response to HEAD, and any 1xx, 204 or 304 response, has no body;
//! 2. `Transfer-Encoding` whose last coding is `chunked` → chunked body;
//!    any other transfer coding → body delimited by connection close;
//! 3. a valid `Content-Length` → that many bytes (conflicting values are an error);
//! 4. otherwise the body runs until the server closes the connection.

use crate::target::Target;

/// Largest response head we accept before calling it a parse error.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;
/// Most response headers we accept.
pub const MAX_HEADERS: usize = 64;

/// Builds one request's bytes for `target`.
pub fn build_request(
    method: &str,
    target: &Target,
    headers: &[(String, String)],
    body: Option<&[u8]>,
    keepalive: bool,
) -> Vec<u8> {
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    let mut out = Vec::with_capacity(128 + body.map_or(0, <[u8]>::len));
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut header = |k: &str, v: &str| {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    };
    if !has("host") {
        header("Host", &target.authority);
    }
    if !has("user-agent") {
        header("User-Agent", "ringway-load");
    }
    for (k, v) in headers {
        header(k, v);
    }
    if let Some(body) = body
        && !has("content-length")
        && !has("transfer-encoding")
    {
        header("Content-Length", &body.len().to_string());
    }
    if !keepalive && !has("connection") {
        header("Connection", "close");
    }
    out.extend_from_slice(b"\r\n");
    if let Some(body) = body {
        out.extend_from_slice(body);
    }
    out
}

/// What went wrong while parsing a response. Small and `Copy`, like httparse's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// httparse rejected the head.
    Head,
    /// The head is larger than [`MAX_HEAD_BYTES`].
    HeadTooLarge,
    /// `Content-Length` is malformed or appears with different values.
    ContentLength,
    /// The chunked body is malformed.
    Chunked,
}

/// A complete response, as far as the load generator cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The server will close the connection after this response.
    pub close: bool,
}

/// The result of feeding bytes to a [`ResponseReader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Feed more bytes (after discarding the consumed ones).
    NeedMore,
    /// One response ended; the reader is ready for the next.
    Done(Response),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Body { body: Body, response: Response },
}

/// Incremental response parser. Feed it the unconsumed bytes of the read
/// buffer; it says how many it consumed and whether a response ended.
#[derive(Debug, Clone)]
pub struct ResponseReader {
    state: State,
    head_request: bool,
}

impl ResponseReader {
    /// `head_request`: responses answer HEAD requests (so carry no body).
    pub fn new(head_request: bool) -> Self {
        ResponseReader {
            state: State::Head,
            head_request,
        }
    }

    /// Whether the next response answers a HEAD request. Set between
    /// responses (requests of a mix differ in method).
    #[inline]
    pub fn expect_head(&mut self, head_request: bool) {
        self.head_request = head_request;
    }

    /// Back to the start state (for a fresh connection).
    pub fn reset(&mut self) {
        self.state = State::Head;
    }

    /// True between responses (nothing of the next one seen yet).
    pub fn at_boundary(&self) -> bool {
        self.state == State::Head
    }

    /// Consumes a prefix of `buf`. Returns the number of bytes consumed
    /// and whether a response completed. A partial head consumes nothing.
    pub fn advance(&mut self, buf: &[u8]) -> Result<(usize, Step), ParseError> {
        let mut used = 0;
        loop {
            let rest = &buf[used..];
            match &mut self.state {
                State::Head => {
                    let Some((n, state)) = self.parse_head(rest)? else {
                        return Ok((used, Step::NeedMore));
                    };
                    used += n;
                    match state {
                        // 1xx (but not 101) responses are interim: keep reading heads.
                        None => continue,
                        Some(State::Body {
                            body: Body::Length(0),
                            response,
                        }) => {
                            self.state = State::Head;
                            return Ok((used, Step::Done(response)));
                        }
                        Some(state) => self.state = state,
                    }
                }
                State::Body { body, response } => {
                    let response = *response;
                    match body {
                        Body::Length(remaining) => {
                            let take = (*remaining).min(rest.len() as u64);
                            *remaining -= take;
                            used += take as usize;
                            if *remaining > 0 {
                                return Ok((used, Step::NeedMore));
                            }
                        }
                        Body::Chunked(decoder) => {
                            let (n, done) = decoder.feed(rest)?;
                            used += n;
                            if !done {
                                return Ok((used, Step::NeedMore));
                            }
                        }
                        Body::UntilClose => return Ok((buf.len(), Step::NeedMore)),
                    }
                    self.state = State::Head;
                    return Ok((used, Step::Done(response)));
                }
            }
        }
    }

    /// The connection reached end of file. A close-delimited body ends here;
    /// anything else half-read is an incomplete response (`Err(())`).
    /// `Ok(None)`: the close fell between responses.
    #[allow(clippy::result_unit_err)]
    pub fn at_eof(&mut self) -> Result<Option<Response>, ()> {
        let state = std::mem::replace(&mut self.state, State::Head);
        match state {
            State::Head => Ok(None),
            State::Body {
                body: Body::UntilClose,
                response,
            } => Ok(Some(response)),
            State::Body { .. } => Err(()),
        }
    }

    /// Parses a head. `Ok(None)`: incomplete. `Ok(Some((n, None)))`: an
    /// interim 1xx head of `n` bytes. Otherwise the body state to enter.
    #[allow(clippy::type_complexity)]
    fn parse_head(&self, buf: &[u8]) -> Result<Option<(usize, Option<State>)>, ParseError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut headers);
        let n = match res.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => {
                return Err(ParseError::HeadTooLarge);
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(ParseError::Head),
        };
        let status = res.code.unwrap_or(0);
        if (100..200).contains(&status) && status != 101 {
            return Ok(Some((n, None)));
        }
        let http10 = res.version == Some(0);
        let mut close = http10;
        let mut length: Option<u64> = None;
        let mut transfer_encoding = false;
        let mut chunked = false;
        for h in res.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                let v = parse_decimal(h.value).ok_or(ParseError::ContentLength)?;
                if length.is_some_and(|l| l != v) {
                    return Err(ParseError::ContentLength);
                }
                length = Some(v);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                transfer_encoding = true;
                // Only the last coding decides; later headers override earlier ones.
                chunked = h
                    .value
                    .rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            } else if h.name.eq_ignore_ascii_case("connection") {
                for token in h.value.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if http10 && token.eq_ignore_ascii_case(b"keep-alive") {
                        close = false;
                    }
                }
            }
        }
        let bodyless = self.head_request || status == 204 || status == 304 || status == 101;
        let body = if bodyless {
            Body::Length(0)
        } else if transfer_encoding {
            if chunked {
                Body::Chunked(ChunkedDecoder::default())
            } else {
                Body::UntilClose
            }
        } else if let Some(len) = length {
            Body::Length(len)
        } else {
            Body::UntilClose
        };
        if body == Body::UntilClose {
            close = true;
        }
        Ok(Some((
            n,
            Some(State::Body {
                body,
                response: Response { status, close },
            }),
        )))
    }
}

fn parse_decimal(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum ChunkState {
    /// Reading the hex size.
    #[default]
    Size,
    /// Skipping a chunk extension up to CR.
    Extension,
    /// Expecting the LF after the size line.
    SizeLf,
    /// Inside chunk data, this many bytes left.
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field line.
    TrailerLine,
    TrailerLf,
    /// Expecting the LF of the final empty line.
    EndLf,
}

/// Decoder for `Transfer-Encoding: chunked`, discarding the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
    size: u64,
    digits: u8,
}

impl ChunkedDecoder {
    /// Consumes bytes; returns how many and whether the body ended. Bytes
    /// after the end belong to the next response and are not consumed.
    pub fn feed(&mut self, buf: &[u8]) -> Result<(usize, bool), ParseError> {
        use ChunkState::*;
        let mut i = 0;
        while i < buf.len() {
            let b = buf[i];
            self.state = match self.state {
                Size => match (b as char).to_digit(16) {
                    Some(d) if self.digits < 15 => {
                        self.size = self.size * 16 + u64::from(d);
                        self.digits += 1;
                        Size
                    }
                    Some(_) => return Err(ParseError::Chunked),
                    None if self.digits == 0 => return Err(ParseError::Chunked),
                    None => match b {
                        b'\r' => SizeLf,
                        b';' | b' ' | b'\t' => Extension,
                        _ => return Err(ParseError::Chunked),
                    },
                },
                Extension if b == b'\r' => SizeLf,
                Extension => Extension,
                SizeLf if b != b'\n' => return Err(ParseError::Chunked),
                SizeLf => {
                    let size = std::mem::take(&mut self.size);
                    self.digits = 0;
                    if size == 0 { TrailerStart } else { Data(size) }
                }
                Data(left) => {
                    let take = left.min((buf.len() - i) as u64);
                    i += take as usize;
                    self.state = if take == left {
                        DataCr
                    } else {
                        Data(left - take)
                    };
                    continue;
                }
                DataCr if b == b'\r' => DataLf,
                DataLf if b == b'\n' => Size,
                DataCr | DataLf => return Err(ParseError::Chunked),
                TrailerStart if b == b'\r' => EndLf,
                TrailerStart | TrailerLine if b == b'\n' => return Err(ParseError::Chunked),
                TrailerStart | TrailerLine if b == b'\r' => TrailerLf,
                TrailerStart | TrailerLine => TrailerLine,
                TrailerLf if b == b'\n' => TrailerStart,
                EndLf if b == b'\n' => {
                    *self = ChunkedDecoder::default();
                    return Ok((i + 1, true));
                }
                TrailerLf | EndLf => return Err(ParseError::Chunked),
            };
            i += 1;
        }
        Ok((i, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` to a reader in pieces of `step` bytes, the way reads
    /// would deliver it, and collects the completed responses.
    fn read_all(wire: &[u8], step: usize, eof: bool) -> Result<Vec<Response>, ParseError> {
        let mut reader = ResponseReader::new(false);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for piece in wire.chunks(step) {
            buf.extend_from_slice(piece);
            loop {
                let (n, step) = reader.advance(&buf)?;
                buf.drain(..n);
                match step {
                    Step::Done(r) => out.push(r),
                    Step::NeedMore => break,
                }
            }
        }
        if eof && let Ok(Some(r)) = reader.at_eof() {
            out.push(r);
        }
        Ok(out)
    }

    const OK: Response = Response {
        status: 200,
        close: false,
    };

    #[test]
    fn wire_samples() {
        let cases: &[(&str, &[u8], bool, &[Response])] = &[
            ("content-length", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, &[OK]),
            ("empty", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, &[OK]),
            (
                "pipelined",
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 503 No\r\nContent-Length: 0\r\n\r\n",
                false,
                &[OK, Response { status: 503, close: false }],
            ),
            (
                "chunked with extension and trailer",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nT: v\r\n\r\n",
                false,
                &[OK],
            ),
            (
                "close-delimited",
                b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\nsome body bytes",
                true,
                &[Response { status: 200, close: true }],
            ),
            (
                "http/1.0 closes",
                b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx",
                false,
                &[Response { status: 200, close: true }],
            ),
            (
                "connection close",
                b"HTTP/1.1 500 E\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n",
                false,
                &[Response { status: 500, close: true }],
            ),
            (
                "interim 100 then final, 204 without body",
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No\r\n\r\n",
                false,
                &[Response { status: 204, close: false }],
            ),
        ];
        for &(name, wire, eof, want) in cases {
            for step in [1, 3, 7, wire.len()] {
                assert_eq!(
                    read_all(wire, step, eof).unwrap(),
                    want,
                    "{name} (step {step})"
                );
            }
        }
    }

    #[test]
    fn rejects_malformed() {
        let cases: &[(&[u8], ParseError)] = &[
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                ParseError::ContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                ParseError::ContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                ParseError::Chunked,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
                ParseError::Chunked,
            ),
            (b"HTTTP/1.1 200 OK\r\n\r\n", ParseError::Head),
        ];
        for &(wire, want) in cases {
            assert_eq!(
                read_all(wire, wire.len(), false),
                Err(want),
                "{}",
                String::from_utf8_lossy(wire)
            );
        }
        let huge = [
            b"HTTP/1.1 200 OK\r\nX: ".as_slice(),
            &[b'a'; MAX_HEAD_BYTES],
        ]
        .concat();
        assert_eq!(
            read_all(&huge, huge.len(), false),
            Err(ParseError::HeadTooLarge)
        );
    }

    #[test]
    fn eof_mid_body_is_an_error() {
        let mut r = ResponseReader::new(false);
        let (_, step) = r
            .advance(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc")
            .unwrap();
        assert_eq!(step, Step::NeedMore);
        assert_eq!(r.at_eof(), Err(()));
    }

    #[test]
    fn head_responses_have_no_body() {
        let mut r = ResponseReader::new(true);
        let (n, step) = r
            .advance(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n")
            .unwrap();
        assert_eq!((n, step), (38, Step::Done(OK)));
    }

    #[test]
    fn builds_requests() {
        let t = Target::parse("http://127.0.0.1:8080/x?y").unwrap();
        let headers = vec![("X-A".to_string(), "1".to_string())];
        let req = build_request("POST", &t, &headers, Some(b"abc"), false);
        assert_eq!(
            String::from_utf8(req).unwrap(),
            "POST /x?y HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: ringway-load\r\nX-A: 1\r\n\
             Content-Length: 3\r\nConnection: close\r\n\r\nabc"
        );
    }
}
