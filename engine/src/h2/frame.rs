//! HTTP/2 frames (RFC 9113 §4 and §6): the 9-byte frame header, the frame
//! types and flags ringway uses, the error codes, and writers for the
//! frames the server sends. Reading is incremental: [`next`] finds the next
//! whole frame at the front of a buffer without copying its payload.

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

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

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY_FLAG: u8 = 0x20;

/// Error codes (RFC 9113 §7).
pub mod code {
    pub const NO_ERROR: u32 = 0x0;
    pub const PROTOCOL_ERROR: u32 = 0x1;
    pub const INTERNAL_ERROR: u32 = 0x2;
    pub const FLOW_CONTROL_ERROR: u32 = 0x3;
    pub const STREAM_CLOSED: u32 = 0x5;
    pub const FRAME_SIZE_ERROR: u32 = 0x6;
    pub const REFUSED_STREAM: u32 = 0x7;
    pub const CANCEL: u32 = 0x8;
    pub const COMPRESSION_ERROR: u32 = 0x9;
    pub const ENHANCE_YOUR_CALM: u32 = 0xb;
}

/// SETTINGS identifiers (RFC 9113 §6.5.2).
pub mod setting {
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    pub const ENABLE_PUSH: u16 = 0x2;
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
}

/// The largest window RFC 9113 §6.9.1 allows.
pub const MAX_WINDOW: i64 = (1 << 31) - 1;
/// The window every stream and the connection start with.
pub const DEFAULT_WINDOW: i64 = 65_535;
/// The smallest and largest SETTINGS_MAX_FRAME_SIZE (RFC 9113 §6.5.2).
pub const MIN_FRAME_SIZE: u32 = 16_384;
pub const MAX_FRAME_SIZE: u32 = (1 << 24) - 1;

/// A frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub len: usize,
    pub kind: u8,
    pub flags: u8,
    /// The stream identifier, reserved bit cleared.
    pub stream: u32,
}

impl Head {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// What the front of a buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Not a whole frame yet.
    Partial,
    /// A whole frame: its header and the payload's range in the buffer.
    Frame(Head, std::ops::Range<usize>),
    /// A frame longer than the SETTINGS_MAX_FRAME_SIZE we announced: a
    /// connection error (FRAME_SIZE_ERROR), RFC 9113 §4.2.
    TooLong(Head),
}

/// Reads the 9-byte frame header at the front of `buf`.
pub fn head(buf: &[u8]) -> Option<Head> {
    let b: &[u8; 9] = buf.get(..9)?.try_into().ok()?;
    Some(Head {
        len: (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]),
        kind: b[3],
        flags: b[4],
        stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
    })
}

/// The next frame at the front of `buf`, given the largest payload allowed.
pub fn next(buf: &[u8], max_len: usize) -> Next {
    let Some(h) = head(buf) else {
        return Next::Partial;
    };
    if h.len > max_len {
        return Next::TooLong(h);
    }
    if buf.len() < 9 + h.len {
        return Next::Partial;
    }
    Next::Frame(h, 9..9 + h.len)
}

/// A frame's payload without its padding (`PADDED`): `None` when the pad
/// length is not less than the payload (a PROTOCOL_ERROR, RFC 9113 §6.1).
pub fn unpad(flags: u8, payload: &[u8]) -> Option<&[u8]> {
    if flags & PADDED == 0 {
        return Some(payload);
    }
    let (&pad, rest) = payload.split_first()?;
    let pad = usize::from(pad);
    (pad <= rest.len()).then(|| &rest[..rest.len() - pad])
}

/// A HEADERS payload's header block fragment, and the stream it depends on
/// when it carries priority fields. `None`: bad padding or too short.
pub fn headers_block(flags: u8, payload: &[u8]) -> Option<(&[u8], Option<u32>)> {
    let body = unpad(flags, payload)?;
    if flags & PRIORITY_FLAG == 0 {
        return Some((body, None));
    }
    let prio: &[u8; 5] = body.get(..5)?.try_into().ok()?;
    let dep = u32::from_be_bytes([prio[0], prio[1], prio[2], prio[3]]) & 0x7fff_ffff;
    Some((&body[5..], Some(dep)))
}

/// Appends a frame header.
pub fn put_head(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    debug_assert!(len <= MAX_FRAME_SIZE as usize);
    let l = (len as u32).to_be_bytes();
    out.extend_from_slice(&[l[1], l[2], l[3], kind, flags]);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
}

pub fn put_settings(out: &mut Vec<u8>, values: &[(u16, u32)]) {
    put_head(out, values.len() * 6, SETTINGS, 0, 0);
    for (id, v) in values {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&v.to_be_bytes());
    }
}

pub fn put_settings_ack(out: &mut Vec<u8>) {
    put_head(out, 0, SETTINGS, ACK, 0);
}

pub fn put_ping_ack(out: &mut Vec<u8>, opaque: &[u8]) {
    put_head(out, 8, PING, ACK, 0);
    out.extend_from_slice(opaque);
}

pub fn put_rst(out: &mut Vec<u8>, stream: u32, code: u32) {
    put_head(out, 4, RST_STREAM, 0, stream);
    out.extend_from_slice(&code.to_be_bytes());
}

pub fn put_goaway(out: &mut Vec<u8>, last: u32, code: u32) {
    put_head(out, 8, GOAWAY, 0, 0);
    out.extend_from_slice(&(last & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
}

pub fn put_window_update(out: &mut Vec<u8>, stream: u32, increment: u32) {
    debug_assert!(increment > 0 && i64::from(increment) <= MAX_WINDOW);
    put_head(out, 4, WINDOW_UPDATE, 0, stream);
    out.extend_from_slice(&increment.to_be_bytes());
}

/// The SETTINGS entries of a payload; `None` when its length is not a
/// multiple of 6 (FRAME_SIZE_ERROR, RFC 9113 §6.5).
pub fn settings(payload: &[u8]) -> Option<impl Iterator<Item = (u16, u32)> + '_> {
    payload.len().is_multiple_of(6).then(|| {
        payload.chunks_exact(6).map(|e| {
            (
                u16::from_be_bytes([e[0], e[1]]),
                u32::from_be_bytes([e[2], e[3], e[4], e[5]]),
            )
        })
    })
}

/// A 4-byte big-endian value with the reserved bit cleared.
pub fn u31(payload: &[u8]) -> Option<u32> {
    let b: &[u8; 4] = payload.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(*b) & 0x7fff_ffff)
}

pub fn u32_at(payload: &[u8]) -> Option<u32> {
    let b: &[u8; 4] = payload.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(*b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_found_whole_or_not_at_all() {
        let mut buf = Vec::new();
        put_rst(&mut buf, 3, code::CANCEL);
        assert_eq!(next(&buf[..8], 16_384), Next::Partial);
        assert_eq!(next(&buf[..12], 16_384), Next::Partial);
        let Next::Frame(h, r) = next(&buf, 16_384) else {
            panic!("no frame")
        };
        assert_eq!((h.kind, h.stream, h.len), (RST_STREAM, 3, 4));
        assert_eq!(u32_at(&buf[r]), Some(code::CANCEL));
        assert!(matches!(next(&buf, 3), Next::TooLong(_)));
    }

    #[test]
    fn padding_is_checked() {
        assert_eq!(unpad(PADDED, &[2, b'a', b'b', 0, 0]), Some(&b"ab"[..]));
        assert_eq!(unpad(PADDED, &[5, b'a']), None);
        assert_eq!(unpad(PADDED, &[]), None);
        assert_eq!(unpad(0, b"ab"), Some(&b"ab"[..]));
        let (block, dep) = headers_block(PRIORITY_FLAG, &[0x80, 0, 0, 1, 16, 0x82]).unwrap();
        assert_eq!((block, dep), (&[0x82u8][..], Some(1)));
        assert_eq!(headers_block(PRIORITY_FLAG, &[0, 0]), None);
    }

    #[test]
    fn the_reserved_bit_is_ignored() {
        let h = head(&[0, 0, 0, DATA, 0, 0x80, 0, 0, 1]).unwrap();
        assert_eq!(h.stream, 1);
        assert_eq!(settings(&[0; 7]).map(|s| s.count()), None);
    }
}
