//! A strict decoder for the chunked transfer coding (RFC 9112 §7.1) and the
//! matching encoder. The decoder is a push state machine: feed it whatever
//! bytes have arrived, it says how many it consumed and what they were.

use super::H1Error;
use super::limits::{MAX_CHUNK_LINE_BYTES, MAX_TRAILER_BYTES};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size.
    Size,
    /// After the digits: optional BWS, then `;ext` or CR.
    SizeEnd,
    /// Inside chunk extensions, up to CR.
    Extension,
    /// Expecting the LF of the size line.
    SizeLf,
    /// Inside chunk data.
    Data,
    /// Expecting CR after chunk data.
    DataCr,
    /// Expecting LF after chunk data.
    DataLf,
    /// After the last chunk: the trailer section up to and including the empty line.
    Trailer,
    Done,
}

/// What a slice of input turned out to hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// `input[start..end]` is chunk data.
    Data { start: usize, end: usize },
    /// The body ended; `input[trailer_start..trailer_end]` holds trailer field lines (each ending in CRLF, without the final empty line).
    Done {
        trailer_start: usize,
        trailer_end: usize,
    },
    /// Everything given was consumed (or must be kept, see `consumed`); feed more.
    NeedMore,
}

#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    digits: u8,
    line_len: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: State::Size,
            size: 0,
            digits: 0,
            line_len: 0,
        }
    }
}

impl ChunkedDecoder {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input`. Returns how many bytes of `input` are consumed
    /// and what was found. On `Data`, the consumed count ends at `end`. The
    /// trailer section is only consumed once it is complete, so the caller
    /// keeps unconsumed bytes and calls again with more appended.
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, Decoded), H1Error> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Size => match hex(b) {
                    Some(d) => {
                        if self.digits == 15 {
                            return Err(H1Error::BadChunk);
                        }
                        self.size = (self.size << 4) | u64::from(d);
                        self.digits += 1;
                        i += 1;
                    }
                    None if self.digits == 0 => return Err(H1Error::BadChunk),
                    None => self.state = State::SizeEnd,
                },
                State::SizeEnd => {
                    match b {
                        b' ' | b'\t' => {}
                        b';' => self.state = State::Extension,
                        b'\r' => self.state = State::SizeLf,
                        _ => return Err(H1Error::BadChunk),
                    }
                    i += 1;
                    self.bump_line()?;
                }
                State::Extension => {
                    match b {
                        b'\r' => self.state = State::SizeLf,
                        b'\t' | b' '..=b'~' | 0x80..=0xff => {}
                        _ => return Err(H1Error::BadChunk),
                    }
                    i += 1;
                    self.bump_line()?;
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(H1Error::BadChunk);
                    }
                    i += 1;
                    self.line_len = 0;
                    self.digits = 0;
                    if self.size == 0 {
                        self.state = State::Trailer;
                        return self.trailer(input, i);
                    }
                    self.state = State::Data;
                }
                State::Data => {
                    let avail = (input.len() - i) as u64;
                    let take = avail.min(self.size) as usize;
                    self.size -= take as u64;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    return Ok((
                        i + take,
                        Decoded::Data {
                            start: i,
                            end: i + take,
                        },
                    ));
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(H1Error::BadChunk);
                    }
                    self.state = State::DataLf;
                    i += 1;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(H1Error::BadChunk);
                    }
                    self.state = State::Size;
                    i += 1;
                }
                State::Trailer => return self.trailer(input, i),
                State::Done => {
                    return Ok((
                        i,
                        Decoded::Done {
                            trailer_start: i,
                            trailer_end: i,
                        },
                    ));
                }
            }
        }
        Ok((i, Decoded::NeedMore))
    }

    fn bump_line(&mut self) -> Result<(), H1Error> {
        self.line_len += 1;
        if self.line_len > MAX_CHUNK_LINE_BYTES {
            return Err(H1Error::BadChunk);
        }
        Ok(())
    }

    /// The trailer section starts at `input[from..]`. Consumes nothing until it is complete.
    fn trailer(&mut self, input: &[u8], from: usize) -> Result<(usize, Decoded), H1Error> {
        let rest = &input[from..];
        if rest.len() >= 2 && &rest[..2] == b"\r\n" {
            self.state = State::Done;
            return Ok((
                from + 2,
                Decoded::Done {
                    trailer_start: from,
                    trailer_end: from,
                },
            ));
        }
        // Every line of the trailer section ends in CRLF: a bare LF inside it
        // is refused (httparse alone would take a leading LF as the end).
        let bare_lf = |s: &[u8]| {
            s.first() == Some(&b'\n') || s.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r')
        };
        if let Some(pos) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
            let fields = &rest[..pos + 4];
            if bare_lf(fields) {
                return Err(H1Error::BadChunk);
            }
            // Trailer fields obey the same grammar as header fields.
            let mut slots = [httparse::EMPTY_HEADER; 32];
            match httparse::parse_headers(fields, &mut slots) {
                Ok(httparse::Status::Complete((n, _))) if n == fields.len() => {}
                _ => return Err(H1Error::BadChunk),
            }
            self.state = State::Done;
            return Ok((
                from + pos + 4,
                Decoded::Done {
                    trailer_start: from,
                    trailer_end: from + pos + 2,
                },
            ));
        }
        if bare_lf(rest) {
            return Err(H1Error::BadChunk);
        }
        if rest.len() > MAX_TRAILER_BYTES {
            return Err(H1Error::BadChunk);
        }
        Ok((from, Decoded::NeedMore))
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Appends the chunk-size line for a chunk of `len` bytes.
pub fn write_chunk_header(out: &mut Vec<u8>, len: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut n = len;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

/// Appends one whole chunk.
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    write_chunk_header(out, data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Appends the last chunk with the given trailer field lines (each CRLF-terminated).
pub fn write_last_chunk(out: &mut Vec<u8>, trailers: &[u8]) {
    out.extend_from_slice(b"0\r\n");
    out.extend_from_slice(trailers);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes; returns (body, trailers).
    fn decode_all(input: &[u8], step: usize) -> Result<(Vec<u8>, Vec<u8>), H1Error> {
        let mut dec = ChunkedDecoder::default();
        let mut pending: Vec<u8> = Vec::new();
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            let (n, d) = dec.decode(&pending)?;
            match d {
                Decoded::Data { start, end } => {
                    body.extend_from_slice(&pending[start..end]);
                    pending.drain(..n);
                }
                Decoded::Done {
                    trailer_start,
                    trailer_end,
                } => {
                    return Ok((body, pending[trailer_start..trailer_end].to_vec()));
                }
                Decoded::NeedMore => {
                    pending.drain(..n);
                    if fed >= input.len() {
                        return Err(H1Error::Syntax); // truncated
                    }
                    let end = (fed + step).min(input.len());
                    pending.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn valid_bodies_any_split() {
        let cases: &[(&[u8], &[u8], &[u8])] = &[
            (b"5\r\nhello\r\n0\r\n\r\n", b"hello", b""),
            (
                b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
                b"hello world",
                b"",
            ),
            (
                b"A\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n",
                b"0123456789",
                b"X-T: 1\r\n",
            ),
            (b"0\r\n\r\n", b"", b""),
            (b"000005\r\nhello\r\n0\r\n\r\n", b"hello", b""),
        ];
        for (input, body, trailers) in cases {
            for step in [1, 2, 3, 7, 1000] {
                let (b, t) = decode_all(input, step)
                    .unwrap_or_else(|e| panic!("{e} at step {step}: {input:?}"));
                assert_eq!(&b[..], *body);
                assert_eq!(&t[..], *trailers);
            }
        }
    }

    #[test]
    fn invalid_bodies() {
        let cases: &[&[u8]] = &[
            b"x\r\nhello\r\n0\r\n\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"ffffffffffffffff\r\n",
            b"5;\x01\r\nhello\r\n0\r\n\r\n",
            b"0\r\nbad trailer\r\n\r\n",
            b"0\r\nX: 1\n\r\n",
            b"0\r\n\nX-T: 1\r\n\r\n",
            b"\r\n",
        ];
        for input in cases {
            assert!(
                decode_all(input, 1000).is_err(),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn encoder_roundtrip() {
        let mut out = Vec::new();
        write_chunk(&mut out, b"hello");
        write_chunk(&mut out, &[b'x'; 300]);
        write_last_chunk(&mut out, b"X-T: 1\r\n");
        let (body, trailers) = decode_all(&out, 5).unwrap();
        assert_eq!(body.len(), 305);
        assert_eq!(trailers, b"X-T: 1\r\n");
        assert!(out.starts_with(b"5\r\nhello\r\n12c\r\n"));
    }
}
