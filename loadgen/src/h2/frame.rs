//! HTTP/2 frames (RFC 9113 §4 and §6): a decoder that borrows from the
//! caller's read buffer and encoders that append to the caller's write
//! buffer. No sockets, no state beyond one frame, no allocation.
//!
//! The decoder checks what RFC 9113 makes a connection error for any
//! endpoint (frame size, stream 0 vs. non-zero, padding, fixed lengths);
//! what a frame means for the connection is `conn.rs`'s business.

/// The client connection preface (RFC 9113 §3.4); SETTINGS follows it.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Every frame starts with this many bytes: length (24), type, flags, stream (31).
pub const HEADER_BYTES: usize = 9;
/// SETTINGS_MAX_FRAME_SIZE until the peer says otherwise, and what we advertise.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16_384;
/// The largest flow-control window (2^31 - 1).
pub const MAX_WINDOW: u32 = (1 << 31) - 1;

/// Frame types (RFC 9113 §6).
pub mod kind {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const PRIORITY: u8 = 0x2;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PUSH_PROMISE: u8 = 0x5;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags.
pub mod flag {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// SETTINGS parameters (RFC 9113 §6.5.2).
pub mod setting {
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    pub const ENABLE_PUSH: u16 = 0x2;
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub const MAX_FRAME_SIZE: u16 = 0x5;
}

/// Error codes (RFC 9113 §7).
pub mod code {
    pub const NO_ERROR: u32 = 0x0;
    pub const PROTOCOL_ERROR: u32 = 0x1;
    pub const FLOW_CONTROL_ERROR: u32 = 0x3;
    pub const FRAME_SIZE_ERROR: u32 = 0x6;
    pub const COMPRESSION_ERROR: u32 = 0x9;
}

/// Why bytes are not a valid frame. Each is a connection error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Longer than our SETTINGS_MAX_FRAME_SIZE, or a fixed-size frame of the wrong size.
    Size,
    /// Padding longer than the payload.
    Padding,
    /// A frame on the wrong stream (a stream frame on 0, a connection frame elsewhere).
    Stream,
}

impl FrameError {
    /// The GOAWAY error code for this error.
    pub fn code(self) -> u32 {
        match self {
            FrameError::Size => code::FRAME_SIZE_ERROR,
            FrameError::Padding | FrameError::Stream => code::PROTOCOL_ERROR,
        }
    }
}

/// One decoded frame, borrowing its payload from the read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    Data {
        stream: u32,
        end_stream: bool,
        /// The data without padding.
        data: &'a [u8],
        /// The whole payload length, padding included: what flow control counts.
        flow_len: u32,
    },
    Headers {
        stream: u32,
        end_stream: bool,
        end_headers: bool,
        /// The header block fragment (padding and priority removed).
        block: &'a [u8],
    },
    Continuation {
        stream: u32,
        end_headers: bool,
        block: &'a [u8],
    },
    RstStream {
        stream: u32,
        code: u32,
    },
    Settings {
        ack: bool,
        /// Six bytes per parameter; read them with [`settings`].
        params: &'a [u8],
    },
    Ping {
        ack: bool,
        data: [u8; 8],
    },
    GoAway {
        last_stream: u32,
        code: u32,
    },
    WindowUpdate {
        stream: u32,
        /// 0 is a protocol error the connection decides about (RFC 9113 §6.9).
        increment: u32,
    },
    /// A frame a client can ignore: PRIORITY, PUSH_PROMISE (push is off,
    /// so the connection treats it as an error), or an unknown type.
    Other {
        kind: u8,
        stream: u32,
    },
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Decodes one frame from the start of `buf`. `Ok(None)`: not all of it is
/// there yet. `Ok(Some((frame, used)))`: `used` bytes make up the frame.
/// Frames longer than `max_frame` payload bytes are an error.
pub fn decode(buf: &[u8], max_frame: usize) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    if buf.len() < HEADER_BYTES {
        return Ok(None);
    }
    let len = (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
    if len > max_frame {
        return Err(FrameError::Size);
    }
    if buf.len() < HEADER_BYTES + len {
        return Ok(None);
    }
    let (kind, flags) = (buf[3], buf[4]);
    let stream = u32_at(buf, 5) & MAX_WINDOW;
    let payload = &buf[HEADER_BYTES..HEADER_BYTES + len];
    let on_stream = |frame| {
        if stream == 0 {
            Err(FrameError::Stream)
        } else {
            Ok(frame)
        }
    };
    let on_connection = |frame| {
        if stream != 0 {
            Err(FrameError::Stream)
        } else {
            Ok(frame)
        }
    };
    let fixed = |size: usize| {
        if len == size {
            Ok(())
        } else {
            Err(FrameError::Size)
        }
    };
    let frame = match kind {
        kind::DATA => {
            let data = unpad(payload, flags)?;
            on_stream(Frame::Data {
                stream,
                end_stream: flags & flag::END_STREAM != 0,
                data,
                flow_len: len as u32,
            })?
        }
        kind::HEADERS => {
            let mut block = unpad(payload, flags)?;
            if flags & flag::PRIORITY != 0 {
                // Stream dependency (4) and weight (1): ignored.
                block = block.get(5..).ok_or(FrameError::Size)?;
            }
            on_stream(Frame::Headers {
                stream,
                end_stream: flags & flag::END_STREAM != 0,
                end_headers: flags & flag::END_HEADERS != 0,
                block,
            })?
        }
        kind::CONTINUATION => on_stream(Frame::Continuation {
            stream,
            end_headers: flags & flag::END_HEADERS != 0,
            block: payload,
        })?,
        kind::RST_STREAM => {
            fixed(4)?;
            on_stream(Frame::RstStream {
                stream,
                code: u32_at(payload, 0),
            })?
        }
        kind::SETTINGS => {
            let ack = flags & flag::ACK != 0;
            if (ack && len != 0) || len % 6 != 0 {
                return Err(FrameError::Size);
            }
            on_connection(Frame::Settings {
                ack,
                params: payload,
            })?
        }
        kind::PING => {
            fixed(8)?;
            let mut data = [0; 8];
            data.copy_from_slice(payload);
            on_connection(Frame::Ping {
                ack: flags & flag::ACK != 0,
                data,
            })?
        }
        kind::GOAWAY => {
            if len < 8 {
                return Err(FrameError::Size);
            }
            on_connection(Frame::GoAway {
                last_stream: u32_at(payload, 0) & MAX_WINDOW,
                code: u32_at(payload, 4),
            })?
        }
        kind::WINDOW_UPDATE => {
            fixed(4)?;
            Frame::WindowUpdate {
                stream,
                increment: u32_at(payload, 0) & MAX_WINDOW,
            }
        }
        kind::PRIORITY => {
            fixed(5)?;
            on_stream(Frame::Other { kind, stream })?
        }
        _ => Frame::Other { kind, stream },
    };
    Ok(Some((frame, HEADER_BYTES + len)))
}

/// Strips padding (RFC 9113 §6.1) when the PADDED flag is set.
fn unpad(payload: &[u8], flags: u8) -> Result<&[u8], FrameError> {
    if flags & flag::PADDED == 0 {
        return Ok(payload);
    }
    let (&pad, rest) = payload.split_first().ok_or(FrameError::Size)?;
    let keep = rest
        .len()
        .checked_sub(usize::from(pad))
        .ok_or(FrameError::Padding)?;
    Ok(&rest[..keep])
}

/// The `(identifier, value)` pairs of a SETTINGS payload.
pub fn settings(params: &[u8]) -> impl Iterator<Item = (u16, u32)> + '_ {
    params
        .chunks_exact(6)
        .map(|p| (u16::from_be_bytes([p[0], p[1]]), u32_at(p, 2)))
}

/// Appends a frame header.
pub fn put_header(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    debug_assert!(len < 1 << 24);
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    out.extend_from_slice(&(stream & MAX_WINDOW).to_be_bytes());
}

pub fn put_settings(out: &mut Vec<u8>, params: &[(u16, u32)]) {
    put_header(out, params.len() * 6, kind::SETTINGS, 0, 0);
    for (id, value) in params {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&value.to_be_bytes());
    }
}

pub fn put_settings_ack(out: &mut Vec<u8>) {
    put_header(out, 0, kind::SETTINGS, flag::ACK, 0);
}

pub fn put_ping_ack(out: &mut Vec<u8>, data: [u8; 8]) {
    put_header(out, 8, kind::PING, flag::ACK, 0);
    out.extend_from_slice(&data);
}

pub fn put_window_update(out: &mut Vec<u8>, stream: u32, increment: u32) {
    put_header(out, 4, kind::WINDOW_UPDATE, 0, stream);
    out.extend_from_slice(&(increment & MAX_WINDOW).to_be_bytes());
}

pub fn put_rst_stream(out: &mut Vec<u8>, stream: u32, code: u32) {
    put_header(out, 4, kind::RST_STREAM, 0, stream);
    out.extend_from_slice(&code.to_be_bytes());
}

pub fn put_goaway(out: &mut Vec<u8>, last_stream: u32, code: u32) {
    put_header(out, 8, kind::GOAWAY, 0, 0);
    out.extend_from_slice(&(last_stream & MAX_WINDOW).to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
}

/// Appends a HEADERS frame carrying `block`, followed by as many
/// CONTINUATION frames as `max_frame` requires.
pub fn put_headers(
    out: &mut Vec<u8>,
    stream: u32,
    block: &[u8],
    end_stream: bool,
    max_frame: usize,
) {
    let max_frame = max_frame.max(1);
    let mut chunks = block.chunks(max_frame);
    let first = chunks.next().unwrap_or(&[]);
    let last = block.len() <= max_frame;
    let mut flags = if end_stream { flag::END_STREAM } else { 0 };
    if last {
        flags |= flag::END_HEADERS;
    }
    put_header(out, first.len(), kind::HEADERS, flags, stream);
    out.extend_from_slice(first);
    let mut rest = chunks.peekable();
    while let Some(chunk) = rest.next() {
        let flags = if rest.peek().is_none() {
            flag::END_HEADERS
        } else {
            0
        };
        put_header(out, chunk.len(), kind::CONTINUATION, flags, stream);
        out.extend_from_slice(chunk);
    }
}

pub fn put_data(out: &mut Vec<u8>, stream: u32, data: &[u8], end_stream: bool) {
    let flags = if end_stream { flag::END_STREAM } else { 0 };
    put_header(out, data.len(), kind::DATA, flags, stream);
    out.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = DEFAULT_MAX_FRAME_BYTES;

    /// Wire samples and what they decode to.
    #[test]
    fn decodes_wire_samples() {
        let ping = [1, 2, 3, 4, 5, 6, 7, 8];
        let table: &[(&[u8], Frame<'_>)] = &[
            (
                &[0, 0, 3, 0, 1, 0, 0, 0, 1, b'a', b'b', b'c'],
                Frame::Data {
                    stream: 1,
                    end_stream: true,
                    data: b"abc",
                    flow_len: 3,
                },
            ),
            (
                // PADDED: pad length 2, "x", two pad bytes.
                &[0, 0, 4, 0, 8, 0, 0, 0, 3, 2, b'x', 0, 0],
                Frame::Data {
                    stream: 3,
                    end_stream: false,
                    data: b"x",
                    flow_len: 4,
                },
            ),
            (
                &[0, 0, 1, 1, 5, 0, 0, 0, 1, 0x88],
                Frame::Headers {
                    stream: 1,
                    end_stream: true,
                    end_headers: true,
                    block: &[0x88],
                },
            ),
            (
                // PRIORITY flag: 5 bytes of dependency and weight before the block.
                &[0, 0, 6, 1, 0x24, 0, 0, 0, 5, 0, 0, 0, 0, 16, 0x88],
                Frame::Headers {
                    stream: 5,
                    end_stream: false,
                    end_headers: true,
                    block: &[0x88],
                },
            ),
            (
                &[0, 0, 1, 9, 4, 0, 0, 0, 7, 0x89],
                Frame::Continuation {
                    stream: 7,
                    end_headers: true,
                    block: &[0x89],
                },
            ),
            (
                &[0, 0, 4, 3, 0, 0, 0, 0, 1, 0, 0, 0, 8],
                Frame::RstStream { stream: 1, code: 8 },
            ),
            (
                &[0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100],
                Frame::Settings {
                    ack: false,
                    params: &[0, 3, 0, 0, 0, 100],
                },
            ),
            (
                &[0, 0, 0, 4, 1, 0, 0, 0, 0],
                Frame::Settings {
                    ack: true,
                    params: &[],
                },
            ),
            (
                &[0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8],
                Frame::Ping {
                    ack: false,
                    data: ping,
                },
            ),
            (
                // GOAWAY with debug data, reserved bit set on last-stream-id.
                &[
                    0, 0, 10, 7, 0, 0, 0, 0, 0, 0x80, 0, 0, 9, 0, 0, 0, 2, b'h', b'i',
                ],
                Frame::GoAway {
                    last_stream: 9,
                    code: 2,
                },
            ),
            (
                &[0, 0, 4, 8, 0, 0, 0, 0, 0, 0x80, 1, 0, 0],
                Frame::WindowUpdate {
                    stream: 0,
                    increment: 0x0001_0000,
                },
            ),
            (
                &[0, 0, 0, 0xfa, 0, 0, 0, 0, 1],
                Frame::Other {
                    kind: 0xfa,
                    stream: 1,
                },
            ),
        ];
        for (bytes, want) in table {
            let got = decode(bytes, MAX).unwrap().unwrap();
            assert_eq!(got, (*want, bytes.len()), "{bytes:?}");
            // One byte short of any frame is "not yet".
            assert_eq!(
                decode(&bytes[..bytes.len() - 1], MAX),
                Ok(None),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn rejects_malformed_frames() {
        let table: &[(&[u8], FrameError)] = &[
            // DATA on stream 0.
            (&[0, 0, 0, 0, 0, 0, 0, 0, 0], FrameError::Stream),
            // SETTINGS on stream 1.
            (&[0, 0, 0, 4, 0, 0, 0, 0, 1], FrameError::Stream),
            // SETTINGS of 5 bytes; SETTINGS ACK with a payload.
            (
                &[0, 0, 5, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                FrameError::Size,
            ),
            (
                &[0, 0, 6, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                FrameError::Size,
            ),
            // PING of 7 bytes.
            (
                &[0, 0, 7, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                FrameError::Size,
            ),
            // Padding longer than the payload.
            (&[0, 0, 2, 0, 8, 0, 0, 0, 1, 5, 0], FrameError::Padding),
            // PADDED with no pad length byte.
            (&[0, 0, 0, 0, 8, 0, 0, 0, 1], FrameError::Size),
            // RST_STREAM of 3 bytes.
            (&[0, 0, 3, 3, 0, 0, 0, 0, 1, 0, 0, 0], FrameError::Size),
            // GOAWAY of 4 bytes.
            (&[0, 0, 4, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0], FrameError::Size),
            // Longer than the maximum frame size (checked before the payload is there).
            (&[0, 0x40, 1, 0, 0, 0, 0, 0, 1], FrameError::Size),
        ];
        for (bytes, want) in table {
            assert_eq!(decode(bytes, MAX), Err(*want), "{bytes:?}");
        }
    }

    #[test]
    fn encoders_write_what_the_decoder_reads() {
        let mut out = Vec::new();
        put_settings(
            &mut out,
            &[
                (setting::ENABLE_PUSH, 0),
                (setting::INITIAL_WINDOW_SIZE, MAX_WINDOW),
            ],
        );
        assert_eq!(
            out,
            [
                0, 0, 12, 4, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 4, 0x7f, 0xff, 0xff, 0xff
            ]
        );
        let (frame, used) = decode(&out, MAX).unwrap().unwrap();
        assert_eq!(used, out.len());
        let Frame::Settings { ack: false, params } = frame else {
            panic!("{frame:?}")
        };
        assert_eq!(
            settings(params).collect::<Vec<_>>(),
            [
                (setting::ENABLE_PUSH, 0),
                (setting::INITIAL_WINDOW_SIZE, MAX_WINDOW)
            ]
        );

        type Sample = (fn(&mut Vec<u8>), &'static [u8]);
        let samples: &[Sample] = &[
            (put_settings_ack, &[0, 0, 0, 4, 1, 0, 0, 0, 0]),
            (
                |o| put_ping_ack(o, [9; 8]),
                &[0, 0, 8, 6, 1, 0, 0, 0, 0, 9, 9, 9, 9, 9, 9, 9, 9],
            ),
            (
                |o| put_window_update(o, 3, 1000),
                &[0, 0, 4, 8, 0, 0, 0, 0, 3, 0, 0, 3, 0xe8],
            ),
            (
                |o| put_rst_stream(o, 5, code::NO_ERROR),
                &[0, 0, 4, 3, 0, 0, 0, 0, 5, 0, 0, 0, 0],
            ),
            (
                |o| put_goaway(o, 7, code::PROTOCOL_ERROR),
                &[0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 1],
            ),
            (
                |o| put_data(o, 1, b"hi", true),
                &[0, 0, 2, 0, 1, 0, 0, 0, 1, b'h', b'i'],
            ),
            (
                |o| put_headers(o, 1, &[0x82], true, MAX),
                &[0, 0, 1, 1, 5, 0, 0, 0, 1, 0x82],
            ),
            (
                // A 5-byte block with 2-byte frames: HEADERS + 2 CONTINUATIONs.
                |o| put_headers(o, 3, &[1, 2, 3, 4, 5], false, 2),
                &[
                    0, 0, 2, 1, 0, 0, 0, 0, 3, 1, 2, //
                    0, 0, 2, 9, 0, 0, 0, 0, 3, 3, 4, //
                    0, 0, 1, 9, 4, 0, 0, 0, 3, 5,
                ],
            ),
        ];
        for (encode, want) in samples {
            let mut out = Vec::new();
            encode(&mut out);
            assert_eq!(out, *want);
            // The decoder reads every frame of it back, to the last byte.
            let mut at = 0;
            while at < out.len() {
                let (_, used) = decode(&out[at..], MAX).unwrap().unwrap();
                at += used;
            }
            assert_eq!(at, out.len());
        }
    }

    /// Random bytes (a seeded generator, many lengths) never panic the
    /// decoder, and whatever it accepts lies within the input.
    #[test]
    fn random_bytes_never_panic() {
        let mut next = crate::h2::test_rng(0x9e37_79b9_7f4a_7c15);
        let mut buf = Vec::new();
        for round in 0..20_000 {
            buf.clear();
            let len = (next() % 64) as usize;
            buf.extend((0..len).map(|_| next() as u8));
            if round % 2 == 0 && buf.len() >= 3 {
                // Small lengths, so the payload is often complete.
                buf[0] = 0;
                buf[1] = 0;
                buf[2] %= 24;
            }
            let mut at = 0;
            while let Ok(Some((_, used))) = decode(&buf[at..], 32) {
                assert!(used >= HEADER_BYTES && at + used <= buf.len());
                at += used;
            }
        }
    }
}
