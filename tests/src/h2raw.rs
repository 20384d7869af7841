//! A raw HTTP/2 client: frames laid out byte by byte as RFC 9113 §4 and §6
//! give them, and header blocks encoded by hand with the simplest HPACK
//! representations (RFC 7541 §6: literals with plain, non-Huffman strings,
//! and indexed fields), so a test can send exactly what an attacker would —
//! a stream opened and reset a thousand times, CONTINUATION frames without
//! end, one big table entry referenced thousands of times — and read back,
//! frame by frame, what the gateway answered.
//!
//! What the gateway sends is decoded with `loona-hpack` (the server may use
//! Huffman coding and its dynamic table), in order, one block per stream
//! event: interim heads (1xx), the final head, trailers.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

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

/// Error codes (RFC 9113 §7).
pub mod code {
    pub const NO_ERROR: u32 = 0x0;
    pub const PROTOCOL_ERROR: u32 = 0x1;
    pub const FLOW_CONTROL_ERROR: u32 = 0x3;
    pub const STREAM_CLOSED: u32 = 0x5;
    pub const FRAME_SIZE_ERROR: u32 = 0x6;
    pub const REFUSED_STREAM: u32 = 0x7;
    pub const CANCEL: u32 = 0x8;
    pub const COMPRESSION_ERROR: u32 = 0x9;
    pub const ENHANCE_YOUR_CALM: u32 = 0xb;
}

/// Setting identifiers (RFC 9113 §6.5.2).
pub mod setting {
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    pub const ENABLE_PUSH: u16 = 0x2;
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
}

/// One frame as read off the wire (padding and priority fields still in the payload).
#[derive(Clone, Debug)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }

    /// The error code of a RST_STREAM or GOAWAY.
    pub fn error_code(&self) -> Option<u32> {
        match self.kind {
            kind::RST_STREAM => be32(&self.payload, 0),
            kind::GOAWAY => be32(&self.payload, 4),
            _ => None,
        }
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

// ---- writing frames ---------------------------------------------------

/// A frame's bytes: the 9-octet header (24-bit length, type, flags,
/// reserved bit and 31-bit stream id), then the payload.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    assert!(len < 1 << 24, "a frame payload of {len} bytes");
    let mut out = Vec::with_capacity(9 + len);
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

pub fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    let mut p = Vec::with_capacity(pairs.len() * 6);
    for (id, value) in pairs {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&value.to_be_bytes());
    }
    frame(kind::SETTINGS, 0, 0, &p)
}

pub fn settings_ack() -> Vec<u8> {
    frame(kind::SETTINGS, flag::ACK, 0, &[])
}

/// A whole header block in one HEADERS frame (END_HEADERS set).
pub fn headers(stream: u32, block: &[u8], end_stream: bool) -> Vec<u8> {
    let f = flag::END_HEADERS | if end_stream { flag::END_STREAM } else { 0 };
    frame(kind::HEADERS, f, stream, block)
}

pub fn continuation(stream: u32, fragment: &[u8], end_headers: bool) -> Vec<u8> {
    let f = if end_headers { flag::END_HEADERS } else { 0 };
    frame(kind::CONTINUATION, f, stream, fragment)
}

pub fn data(stream: u32, bytes: &[u8], end_stream: bool) -> Vec<u8> {
    let f = if end_stream { flag::END_STREAM } else { 0 };
    frame(kind::DATA, f, stream, bytes)
}

pub fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    frame(kind::RST_STREAM, 0, stream, &code.to_be_bytes())
}

pub fn ping(opaque: u64) -> Vec<u8> {
    frame(kind::PING, 0, 0, &opaque.to_be_bytes())
}

/// PRIORITY for `stream`: depends on `on`, weight 16, not exclusive.
pub fn priority(stream: u32, on: u32) -> Vec<u8> {
    let mut p = on.to_be_bytes().to_vec();
    p.push(15);
    frame(kind::PRIORITY, 0, stream, &p)
}

pub fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(kind::WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

pub fn goaway(last_stream: u32, code: u32) -> Vec<u8> {
    let mut p = last_stream.to_be_bytes().to_vec();
    p.extend_from_slice(&code.to_be_bytes());
    frame(kind::GOAWAY, 0, 0, &p)
}

// ---- HPACK, encoding side -----------------------------------------------

/// An HPACK integer (RFC 7541 §5.1) with an `n`-bit prefix; the first
/// octet's high bits come from `first`.
pub fn hpack_int(out: &mut Vec<u8>, first: u8, n: u8, v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    let mut rest = v - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// A string literal, not Huffman coded (RFC 7541 §5.2).
fn hpack_string(out: &mut Vec<u8>, s: &[u8]) {
    hpack_int(out, 0x00, 7, s.len());
    out.extend_from_slice(s);
}

/// A literal field without indexing, with a literal name (RFC 7541 §6.2.2).
pub fn literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x00);
    hpack_string(out, name);
    hpack_string(out, value);
}

/// A literal field with incremental indexing, with a literal name (RFC
/// 7541 §6.2.1): the decoder adds it to its dynamic table, where it is
/// index 62 until the next one comes.
pub fn literal_indexed(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x40);
    hpack_string(out, name);
    hpack_string(out, value);
}

/// An indexed field (RFC 7541 §6.1): a reference to table entry `index`.
pub fn indexed(out: &mut Vec<u8>, index: usize) {
    hpack_int(out, 0x80, 7, index);
}

/// A header block of literals, in the order given.
pub fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in fields {
        literal(&mut out, k.as_bytes(), v.as_bytes());
    }
    out
}

/// The block of a request: `:method`, `:scheme` http, `:authority`
/// `h2.test`, `:path`, then `extra`.
pub fn request(method: &str, path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut fields = vec![
        (":method", method),
        (":scheme", "http"),
        (":authority", "h2.test"),
        (":path", path),
    ];
    fields.extend_from_slice(extra);
    block(&fields)
}

// ---- the connection -----------------------------------------------------

/// Header fields as decoded, names and values as text.
pub type Fields = Vec<(String, String)>;

/// What one stream has received so far.
#[derive(Clone, Debug, Default)]
pub struct Stream {
    /// Interim heads (1xx), in order.
    pub informational: Vec<Fields>,
    /// The final head.
    pub head: Option<Fields>,
    pub body: Vec<u8>,
    pub trailers: Option<Fields>,
    /// END_STREAM received.
    pub ended: bool,
    /// The error code of a RST_STREAM received for it.
    pub reset: Option<u32>,
}

impl Stream {
    /// The final head's `:status`.
    pub fn status(&self) -> Option<u16> {
        self.header(":status").and_then(|s| s.parse().ok())
    }

    /// A field of the final head.
    pub fn header(&self, name: &str) -> Option<&str> {
        field(self.head.as_ref()?, name)
    }

    /// The stream is over: ended or reset.
    pub fn done(&self) -> bool {
        self.ended || self.reset.is_some()
    }
}

/// The value of `name` in `fields`.
pub fn field<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// What a read found.
enum Got {
    Frame(Frame),
    Nothing,
    Closed,
}

/// How a flood ([`H2::flood`]) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloodEnd {
    /// Every frame was written.
    AllSent,
    /// The gateway sent GOAWAY before all were written.
    GoAway,
    /// The connection closed (EOF, reset, broken pipe) before all were written.
    Closed,
    /// A write made no progress for [`crate::WAIT`]: the gateway stopped
    /// reading but kept the connection open.
    Stalled,
}

/// An HTTP/2 client connection over cleartext TCP (prior knowledge).
pub struct H2 {
    pub sock: TcpStream,
    buf: Vec<u8>,
    decoder: loona_hpack::Decoder<'static>,
    /// A header block being gathered from HEADERS + CONTINUATION: stream,
    /// fragments so far, whether the HEADERS frame had END_STREAM.
    gathering: Option<(u32, Vec<u8>, bool)>,
    pub streams: BTreeMap<u32, Stream>,
    /// Every GOAWAY received: (last stream id, error code).
    pub goaways: Vec<(u32, u32)>,
    /// The connection is over (EOF or an error reading or writing).
    pub closed: bool,
    /// The server's SETTINGS, as received (first frame first).
    pub server_settings: Vec<(u16, u32)>,
    /// The payloads of the PING acknowledgements received, in order.
    pub ping_acks: Vec<Vec<u8>>,
    /// Every frame received, as (type, flags, stream, length): told in
    /// failure messages.
    pub trace: Vec<(u8, u8, u32, usize)>,
    /// Acknowledge SETTINGS and PING, and give back window for DATA
    /// received (on by default).
    pub auto: bool,
    next_stream: u32,
}

impl H2 {
    /// Connects, sends the preface and a SETTINGS frame with `settings`
    /// (ENABLE_PUSH=0 added), and waits for the server's SETTINGS (which it
    /// acknowledges).
    pub fn handshake(addr: SocketAddr, settings: &[(u16, u32)]) -> H2 {
        let mut h = H2::connect(addr, settings);
        assert!(
            h.until(|h| !h.server_settings.is_empty()),
            "no SETTINGS from the server: {}",
            h.describe()
        );
        h
    }

    /// Connects and sends the preface and SETTINGS, without waiting.
    pub fn connect(addr: SocketAddr, settings: &[(u16, u32)]) -> H2 {
        let mut h = H2::open(addr);
        let mut hello = PREFACE.to_vec();
        let mut all = vec![(setting::ENABLE_PUSH, 0)];
        all.extend_from_slice(settings);
        hello.extend_from_slice(&self::settings(&all));
        h.send(&hello).expect("write the preface");
        h
    }

    /// Connects and sends nothing: the caller writes the preface (or
    /// something else in its place).
    pub fn open(addr: SocketAddr) -> H2 {
        let sock = crate::client::connect(addr);
        H2 {
            sock,
            buf: Vec::new(),
            decoder: loona_hpack::Decoder::new(),
            gathering: None,
            streams: BTreeMap::new(),
            goaways: Vec::new(),
            closed: false,
            server_settings: Vec::new(),
            ping_acks: Vec::new(),
            trace: Vec::new(),
            auto: true,
            next_stream: 1,
        }
    }

    /// The server's value for setting `id`, if it sent one.
    pub fn server_setting(&self, id: u16) -> Option<u32> {
        self.server_settings
            .iter()
            .rev()
            .find(|(k, _)| *k == id)
            .map(|(_, v)| *v)
    }

    /// The next client stream id (1, 3, 5, ...).
    pub fn next_id(&mut self) -> u32 {
        let id = self.next_stream;
        self.next_stream += 2;
        id
    }

    /// Writes `bytes`; a failed write marks the connection closed (or
    /// returns the timeout, which does not).
    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let r = self.sock.write_all(bytes);
        if let Err(e) = &r
            && !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
        {
            self.closed = true;
        }
        r
    }

    /// Sends a request on a new stream: HEADERS (END_STREAM when there is
    /// no body), then the body in DATA frames of up to 16 KiB. The body must
    /// fit the initial windows (64 KiB unless the server said otherwise).
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> u32 {
        let id = self.next_id();
        let mut out = headers(id, &request(method, path, extra), body.is_none());
        if let Some(body) = body {
            let mut pieces = body.chunks(16 * 1024).peekable();
            if pieces.peek().is_none() {
                out.extend_from_slice(&data(id, &[], true));
            }
            while let Some(p) = pieces.next() {
                out.extend_from_slice(&data(id, p, pieces.peek().is_none()));
            }
        }
        self.send(&out).expect("write a request");
        id
    }

    /// A GET for `path` on a new stream.
    pub fn get(&mut self, path: &str) -> u32 {
        self.request("GET", path, &[], None)
    }

    /// Reads one frame: waits up to `wait`, or not at all with `None`.
    fn read_frame(&mut self, wait: Option<Duration>) -> Got {
        loop {
            if self.buf.len() >= 9 {
                let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
                if self.buf.len() >= 9 + len {
                    let f = Frame {
                        kind: self.buf[3],
                        flags: self.buf[4],
                        stream: be32(&self.buf, 5).unwrap() & 0x7fff_ffff,
                        payload: self.buf[9..9 + len].to_vec(),
                    };
                    self.buf.drain(..9 + len);
                    return Got::Frame(f);
                }
            }
            if self.closed {
                return Got::Closed;
            }
            match wait {
                None => self.sock.set_nonblocking(true).unwrap(),
                Some(d) => {
                    self.sock.set_nonblocking(false).unwrap();
                    self.sock.set_read_timeout(Some(d)).unwrap();
                }
            }
            let mut tmp = [0u8; 64 * 1024];
            let r = self.sock.read(&mut tmp);
            self.sock.set_nonblocking(false).unwrap();
            match r {
                Ok(0) => self.closed = true,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Got::Nothing;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => self.closed = true,
            }
        }
    }

    /// Takes in one frame: records it, keeps stream state, and (with
    /// `auto`) acknowledges SETTINGS and PING and gives back window.
    fn take(&mut self, f: Frame) {
        self.trace
            .push((f.kind, f.flags, f.stream, f.payload.len()));
        match f.kind {
            kind::SETTINGS if !f.has(flag::ACK) => {
                for p in f.payload.chunks_exact(6) {
                    let id = u16::from_be_bytes([p[0], p[1]]);
                    self.server_settings.push((id, be32(p, 2).unwrap()));
                }
                if self.auto {
                    let _ = self.send(&settings_ack());
                }
            }
            kind::PING if f.has(flag::ACK) => self.ping_acks.push(f.payload),
            kind::PING if self.auto => {
                let _ = self.send(&frame(kind::PING, flag::ACK, 0, &f.payload));
            }
            kind::GOAWAY => {
                let last = be32(&f.payload, 0).unwrap_or(0) & 0x7fff_ffff;
                self.goaways
                    .push((last, f.error_code().unwrap_or(u32::MAX)));
            }
            kind::RST_STREAM => {
                self.streams.entry(f.stream).or_default().reset = f.error_code();
            }
            kind::DATA => {
                let body = unpad(&f);
                let s = self.streams.entry(f.stream).or_default();
                s.body.extend_from_slice(body);
                s.ended |= f.has(flag::END_STREAM);
                let n = f.payload.len() as u32;
                if self.auto && n > 0 {
                    let mut out = window_update(0, n);
                    if !f.has(flag::END_STREAM) {
                        out.extend_from_slice(&window_update(f.stream, n));
                    }
                    let _ = self.send(&out);
                }
            }
            kind::HEADERS => {
                let mut fragment = unpad(&f);
                if f.has(flag::PRIORITY) {
                    fragment = &fragment[5.min(fragment.len())..];
                }
                let gathered = (f.stream, fragment.to_vec(), f.has(flag::END_STREAM));
                if f.has(flag::END_HEADERS) {
                    self.finish_block(gathered);
                } else {
                    self.gathering = Some(gathered);
                }
            }
            kind::CONTINUATION => {
                if let Some(mut g) = self.gathering.take() {
                    g.1.extend_from_slice(&f.payload);
                    if f.has(flag::END_HEADERS) {
                        self.finish_block(g);
                    } else {
                        self.gathering = Some(g);
                    }
                }
            }
            _ => {}
        }
    }

    /// Decodes a whole header block and files it with its stream.
    fn finish_block(&mut self, (stream, block, end_stream): (u32, Vec<u8>, bool)) {
        let fields: Fields = self
            .decoder
            .decode(&block)
            .unwrap_or_else(|e| panic!("undecodable header block from the server: {e:?}"))
            .into_iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(&k).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect();
        let s = self.streams.entry(stream).or_default();
        let interim = field(&fields, ":status").is_some_and(|v| v.starts_with('1'));
        if s.head.is_none() && interim {
            s.informational.push(fields);
        } else if s.head.is_none() {
            s.head = Some(fields);
        } else {
            s.trailers = Some(fields);
        }
        s.ended |= end_stream;
    }

    /// Reads and takes in one frame, waiting up to `wait` (or not at all);
    /// whether one came.
    pub fn pump(&mut self, wait: Option<Duration>) -> bool {
        match self.read_frame(wait) {
            Got::Frame(f) => {
                self.take(f);
                true
            }
            Got::Nothing | Got::Closed => false,
        }
    }

    /// Takes in everything already received, without waiting.
    pub fn drain(&mut self) {
        while self.pump(None) {}
    }

    /// Reads frames until `done` holds, for up to [`crate::WAIT`]; whether
    /// it did. Stops early when the connection has closed and no frame is left.
    pub fn until(&mut self, mut done: impl FnMut(&H2) -> bool) -> bool {
        let deadline = Instant::now() + crate::WAIT;
        loop {
            if done(self) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            match self.read_frame(Some(Duration::from_millis(50))) {
                Got::Frame(f) => self.take(f),
                Got::Nothing => {}
                Got::Closed => return done(self),
            }
        }
    }

    /// Waits until stream `id` is over (ended or reset); what it received.
    pub fn finish(&mut self, id: u32) -> Stream {
        let over = self.until(|h| h.streams.get(&id).is_some_and(Stream::done));
        assert!(
            over,
            "stream {id} did not end within {:?}: {}",
            crate::WAIT,
            self.describe()
        );
        self.streams[&id].clone()
    }

    /// Waits for a GOAWAY or the end of the connection; the first GOAWAY.
    pub fn goaway_or_close(&mut self) -> Option<(u32, u32)> {
        self.until(|h| !h.goaways.is_empty() || h.closed);
        self.goaways.first().copied()
    }

    /// Writes `count` frames made by `make` (given 0, 1, 2, ...), `batch`
    /// at a time in one write each, taking in what arrived between
    /// batches; stops early when the gateway says GOAWAY, closes, or stops
    /// taking bytes. Returns how it ended and how many bytes were written.
    pub fn flood(
        &mut self,
        count: usize,
        batch: usize,
        mut make: impl FnMut(usize) -> Vec<u8>,
    ) -> (FloodEnd, usize) {
        let mut written = 0;
        let mut i = 0;
        while i < count {
            let mut out = Vec::new();
            for _ in 0..batch.min(count - i) {
                out.extend_from_slice(&make(i));
                i += 1;
            }
            match self.sock.write_all(&out) {
                Ok(()) => written += out.len(),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return (FloodEnd::Stalled, written);
                }
                Err(_) => {
                    self.closed = true;
                    self.drain();
                    let end = if self.goaways.is_empty() {
                        FloodEnd::Closed
                    } else {
                        FloodEnd::GoAway
                    };
                    return (end, written);
                }
            }
            self.drain();
            if !self.goaways.is_empty() {
                return (FloodEnd::GoAway, written);
            }
            if self.closed {
                return (FloodEnd::Closed, written);
            }
        }
        (FloodEnd::AllSent, written)
    }

    /// What was received, for failure messages.
    pub fn describe(&self) -> String {
        let names = [
            "DATA",
            "HEADERS",
            "PRIORITY",
            "RST_STREAM",
            "SETTINGS",
            "PUSH_PROMISE",
            "PING",
            "GOAWAY",
            "WINDOW_UPDATE",
            "CONTINUATION",
        ];
        let mut frames: Vec<String> = self
            .trace
            .iter()
            .map(|(k, fl, s, len)| {
                let name = names.get(*k as usize).copied().unwrap_or("?");
                format!("{name}(stream {s}, flags {fl:#x}, {len} B)")
            })
            .collect();
        if frames.len() > 40 {
            let n = frames.len();
            frames.drain(20..n - 20);
            frames.insert(20, format!("... {} more ...", n - 40));
        }
        format!(
            "frames received: [{}]; streams: {:?}; goaways: {:?}; closed: {}",
            frames.join(", "),
            self.streams
                .iter()
                .map(|(id, s)| (*id, s.status(), s.reset, s.ended, s.body.len()))
                .collect::<Vec<_>>(),
            self.goaways,
            self.closed
        )
    }
}

/// A DATA or HEADERS payload without its padding.
fn unpad(f: &Frame) -> &[u8] {
    if !f.has(flag::PADDED) || f.payload.is_empty() {
        return &f.payload;
    }
    let pad = f.payload[0] as usize;
    let end = f.payload.len().saturating_sub(pad).max(1);
    &f.payload[1..end]
}
