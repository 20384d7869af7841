//! The state of one HTTP/2 connection, without I/O: frames in
//! ([`Session::receive`]), frames out (`out`), the streams, both flow
//! control windows and the flood counters. The connection task
//! (`conn.rs`) feeds it what it reads and spawns a task per new stream;
//! stream tasks (`io.rs`) take their request body from it and put their
//! response frames into it; the writer task sends `out`.
//!
//! Everything here runs on one worker thread: shared through
//! `Rc<RefCell<_>>`, borrowed only between awaits.

use super::fields::{self, Refusal, Scratch};
use super::frame::{self, Head, code};
use crate::h1::chunked;
use ringway_hpack::Decoder;
use std::collections::{HashMap, VecDeque};
use std::task::Waker;
use std::time::{Duration, Instant};

/// `[server.h2]`, compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H2Settings {
    pub max_concurrent_streams: u32,
    pub initial_window: u32,
    pub max_frame_size: u32,
    pub max_header_list: usize,
    pub idle_timeout: Duration,
    pub max_resets_per_second: u32,
    pub max_control_frames_per_second: u32,
}

impl Default for H2Settings {
    fn default() -> Self {
        H2Settings {
            max_concurrent_streams: 128,
            initial_window: 256 * 1024,
            max_frame_size: 16 * 1024,
            max_header_list: crate::h1::limits::DEFAULT_MAX_HEAD_BYTES,
            idle_timeout: Duration::from_secs(60),
            max_resets_per_second: 100,
            max_control_frames_per_second: 1000,
        }
    }
}

/// Output past this waits for the writer: stream tasks stop adding DATA
/// and the reader stops reading (a client that floods PINGs without
/// reading their ACKs is throttled by its own socket).
pub const OUT_HIGH: usize = 256 * 1024;

/// How many closed streams a connection remembers (see [`Closed`]).
pub const CLOSED_MEMORY: usize = 64;

/// How a stream that is gone was closed, which says what a late frame on
/// it means (RFC 9113 §5.1, "closed").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closed {
    /// We reset it: what the client sent before it saw our RST_STREAM is
    /// ignored.
    Reset,
    /// The client ended it (END_STREAM) or reset it: DATA or HEADERS
    /// after that are its mistake (STREAM_CLOSED).
    ByClient,
}

/// A connection error: GOAWAY with this code, then close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnError {
    pub code: u32,
    pub why: &'static str,
}

fn conn_err<T>(code: u32, why: &'static str) -> Result<T, ConnError> {
    Err(ConnError { code, why })
}

/// One open stream, from its HEADERS until its task finishes.
pub struct Stream {
    /// The HTTP/1.1 request head, until the stream task takes it.
    pub head: Vec<u8>,
    pub request: fields::Request,
    /// Request body bytes not yet read by the task, framed for HTTP/1.1
    /// (chunked when the request has no Content-Length).
    recv: Vec<u8>,
    recv_pos: usize,
    chunked: bool,
    /// END_STREAM received (the request is whole).
    pub recv_end: bool,
    recv_window: i64,
    /// DATA payload bytes received and not yet given to the task.
    buffered: usize,
    received: u64,
    send_window: i64,
    /// Reset by the client (its code) or by us.
    pub reset: Option<u32>,
    /// The reset came from the client (before any of ours).
    peer_reset: bool,
    /// We sent END_STREAM or RST_STREAM: nothing more goes out.
    pub local_done: bool,
    pub reader: Option<Waker>,
    pub writer: Option<Waker>,
}

/// Counters the connection hands to the worker's metrics.
#[derive(Default, Clone, Copy)]
pub struct Counts {
    pub resets_received: u64,
    pub resets_sent: u64,
    pub goaways_sent: u64,
}

/// A block of header fields still arriving in CONTINUATION frames.
struct Continuing {
    stream: u32,
    end_stream: bool,
}

pub struct Session {
    pub cfg: H2Settings,
    /// The limit on a request head in HTTP/1.1 form, after decoding.
    max_head: usize,
    dec: Decoder,
    scratch: Scratch,
    /// Head buffers of finished streams, reused for the next ones.
    spare_heads: Vec<Vec<u8>>,
    /// Frames to send; the writer task takes them.
    pub out: Vec<u8>,
    pub streams: HashMap<u32, Stream>,
    /// Streams the connection task must start a task for.
    pub started: Vec<u32>,
    /// The highest stream id the client opened.
    pub last_stream: u32,
    got_settings: bool,
    settings_acked: bool,
    peer_initial_window: i64,
    pub peer_max_frame: usize,
    conn_send_window: i64,
    conn_recv_window: i64,
    conn_buffered: usize,
    continuing: Option<Continuing>,
    block: Vec<u8>,
    /// The last [`CLOSED_MEMORY`] streams that closed, and how.
    closed: VecDeque<(u32, Closed)>,
    window_start: Instant,
    resets: u32,
    control: u32,
    updates: u32,
    /// DATA frames sent this second: each one earns the client a WINDOW_UPDATE.
    sent_frames: u32,
    /// GOAWAY sent (draining or an error): no new streams.
    pub goaway: bool,
    /// The client sent GOAWAY: it opens no more streams.
    pub peer_goaway: bool,
    /// The connection is finished: every wait ends with an error.
    pub dead: bool,
    pub counts: Counts,
    pub writer: Option<Waker>,
    /// Tasks waiting for the connection's send window or for `out` to drain.
    waiting: Vec<Waker>,
    /// The socket, for a half-close that ends the connection task's read.
    pub fd: std::os::fd::RawFd,
}

impl Session {
    pub fn new(cfg: H2Settings, max_head: usize, fd: std::os::fd::RawFd) -> Session {
        let dec = Decoder::with_limit(4096);
        Session {
            cfg,
            max_head,
            dec,
            scratch: Scratch::default(),
            spare_heads: Vec::new(),
            out: Vec::new(),
            streams: HashMap::new(),
            started: Vec::new(),
            last_stream: 0,
            got_settings: false,
            settings_acked: false,
            peer_initial_window: frame::DEFAULT_WINDOW,
            peer_max_frame: frame::MIN_FRAME_SIZE as usize,
            conn_send_window: frame::DEFAULT_WINDOW,
            conn_recv_window: frame::DEFAULT_WINDOW,
            conn_buffered: 0,
            continuing: None,
            block: Vec::new(),
            closed: VecDeque::new(),
            window_start: Instant::now(),
            resets: 0,
            control: 0,
            updates: 0,
            sent_frames: 0,
            goaway: false,
            peer_goaway: false,
            dead: false,
            counts: Counts::default(),
            writer: None,
            waiting: Vec::new(),
            fd,
        }
    }

    /// Our SETTINGS and the connection window raised to its size.
    pub fn start(&mut self) {
        let c = self.cfg;
        frame::put_settings(
            &mut self.out,
            &[
                (
                    frame::setting::MAX_CONCURRENT_STREAMS,
                    c.max_concurrent_streams,
                ),
                (frame::setting::INITIAL_WINDOW_SIZE, c.initial_window),
                (frame::setting::MAX_FRAME_SIZE, c.max_frame_size),
                (
                    frame::setting::MAX_HEADER_LIST_SIZE,
                    c.max_header_list as u32,
                ),
                (frame::setting::ENABLE_PUSH, 0),
            ],
        );
        self.conn_recv_window = frame::DEFAULT_WINDOW;
        self.credit_connection();
        self.wake_writer();
    }

    pub fn wake_writer(&mut self) {
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }

    /// Wakes every task that waits on this connection (window, output room).
    pub fn wake_waiting(&mut self) {
        for w in self.waiting.drain(..) {
            w.wake();
        }
    }

    pub fn wait(&mut self, w: &Waker) {
        if !self.waiting.iter().any(|x| x.will_wake(w)) {
            self.waiting.push(w.clone());
        }
    }

    /// Ends the connection: every stream task's next wait fails.
    pub fn kill(&mut self) {
        self.dead = true;
        for s in self.streams.values_mut() {
            wake(&mut s.reader);
            wake(&mut s.writer);
        }
        self.wake_waiting();
        self.wake_writer();
    }

    /// Takes back a stream's head buffer once it has been read, for the
    /// next stream's head (as many as streams may be open, at most 128).
    pub fn recycle_head(&mut self, mut head: Vec<u8>) {
        let keep = (self.cfg.max_concurrent_streams as usize).min(128);
        if self.spare_heads.len() < keep && head.capacity() <= 16 * 1024 {
            head.clear();
            self.spare_heads.push(head);
        }
    }

    /// Sends GOAWAY (once) with the last stream id we took.
    pub fn send_goaway(&mut self, code: u32) {
        if self.goaway && code == code::NO_ERROR {
            return;
        }
        self.goaway = true;
        frame::put_goaway(&mut self.out, self.last_stream, code);
        self.counts.goaways_sent += 1;
        self.wake_writer();
    }

    /// Resets a stream (a stream error): RST_STREAM, and its task stops.
    pub fn reset_stream(&mut self, id: u32, code: u32) {
        self.send_rst(id, code);
        if let Some(s) = self.streams.get_mut(&id) {
            s.reset.get_or_insert(code);
            s.local_done = true;
            wake(&mut s.reader);
            wake(&mut s.writer);
            let b = std::mem::take(&mut s.buffered);
            self.release_connection(b);
        }
    }

    /// Queues RST_STREAM for `id` (which need not be open).
    fn send_rst(&mut self, id: u32, code: u32) {
        frame::put_rst(&mut self.out, id, code);
        self.counts.resets_sent += 1;
        self.wake_writer();
    }

    /// A stream we refused before it opened: reset, and remembered so that
    /// the rest of its request is ignored.
    fn refuse(&mut self, id: u32, code: u32) {
        self.send_rst(id, code);
        self.remember_closed(id, Closed::Reset);
    }

    fn remember_closed(&mut self, id: u32, how: Closed) {
        if self.closed.len() == CLOSED_MEMORY {
            self.closed.pop_front();
        }
        self.closed.push_back((id, how));
    }

    fn closed_how(&self, id: u32) -> Option<Closed> {
        self.closed.iter().rev().find(|c| c.0 == id).map(|c| c.1)
    }

    /// Processes every whole frame at the front of `buf`; how many bytes
    /// were used. The preface must already be gone.
    pub fn receive(&mut self, buf: &[u8]) -> Result<usize, ConnError> {
        let mut used = 0;
        let max = self.cfg.max_frame_size as usize;
        loop {
            match frame::next(&buf[used..], max) {
                frame::Next::Partial => return Ok(used),
                frame::Next::TooLong(_) => {
                    return conn_err(code::FRAME_SIZE_ERROR, "a frame longer than max_frame_size");
                }
                frame::Next::Frame(h, r) => {
                    let payload = &buf[used + r.start..used + r.end];
                    self.frame(h, payload)?;
                    used += r.end;
                }
            }
        }
    }

    fn frame(&mut self, h: Head, p: &[u8]) -> Result<(), ConnError> {
        if !self.got_settings {
            if h.kind != frame::SETTINGS || h.has(frame::ACK) {
                return conn_err(code::PROTOCOL_ERROR, "the first frame is not SETTINGS");
            }
            self.got_settings = true;
        }
        if let Some(c) = &self.continuing
            && (h.kind != frame::CONTINUATION || h.stream != c.stream)
        {
            return conn_err(code::PROTOCOL_ERROR, "a frame inside a header block");
        }
        match h.kind {
            frame::DATA => self.data(h, p),
            frame::HEADERS => self.headers(h, p),
            frame::CONTINUATION => self.continuation(h, p),
            frame::PRIORITY => {
                if h.stream == 0 {
                    return conn_err(code::PROTOCOL_ERROR, "PRIORITY on stream 0");
                }
                self.flood_control()?;
                let bad = if p.len() != 5 {
                    Some(code::FRAME_SIZE_ERROR)
                } else if frame::u31(p) == Some(h.stream) {
                    Some(code::PROTOCOL_ERROR)
                } else {
                    None
                };
                match bad {
                    // RST_STREAM must not name an idle stream (RFC 9113
                    // §6.4): the stream error becomes a connection error.
                    Some(c) if h.stream > self.last_stream => {
                        conn_err(c, "a bad PRIORITY on an idle stream")
                    }
                    Some(c) => {
                        self.reset_stream(h.stream, c);
                        Ok(())
                    }
                    None => Ok(()),
                }
            }
            frame::RST_STREAM => self.rst(h, p),
            frame::SETTINGS => self.settings(h, p),
            frame::PUSH_PROMISE => conn_err(code::PROTOCOL_ERROR, "PUSH_PROMISE from a client"),
            frame::PING => {
                if h.stream != 0 {
                    return conn_err(code::PROTOCOL_ERROR, "PING on a stream");
                }
                if p.len() != 8 {
                    return conn_err(code::FRAME_SIZE_ERROR, "PING is not 8 bytes");
                }
                if !h.has(frame::ACK) {
                    self.flood_control()?;
                    frame::put_ping_ack(&mut self.out, p);
                    self.wake_writer();
                }
                Ok(())
            }
            frame::GOAWAY => {
                if h.stream != 0 {
                    return conn_err(code::PROTOCOL_ERROR, "GOAWAY on a stream");
                }
                if p.len() < 8 {
                    return conn_err(code::FRAME_SIZE_ERROR, "GOAWAY shorter than 8 bytes");
                }
                self.peer_goaway = true;
                Ok(())
            }
            frame::WINDOW_UPDATE => self.window_update(h, p),
            // Unknown frame types are ignored (RFC 9113 §4.1).
            _ => Ok(()),
        }
    }

    /// One more frame that costs us work but carries nothing (PING,
    /// SETTINGS, PRIORITY, empty DATA or CONTINUATION): past the
    /// per-second limit, GOAWAY.
    fn flood_control(&mut self) -> Result<(), ConnError> {
        self.roll_window();
        self.control += 1;
        if self.control > self.cfg.max_control_frames_per_second {
            return conn_err(code::ENHANCE_YOUR_CALM, "too many control frames");
        }
        Ok(())
    }

    fn roll_window(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.resets = 0;
            self.control = 0;
            self.updates = 0;
            self.sent_frames = 0;
        }
    }

    fn data(&mut self, h: Head, p: &[u8]) -> Result<(), ConnError> {
        if h.stream == 0 {
            return conn_err(code::PROTOCOL_ERROR, "DATA on stream 0");
        }
        let len = p.len();
        if len as i64 > self.conn_recv_window {
            return conn_err(code::FLOW_CONTROL_ERROR, "DATA past the connection window");
        }
        self.conn_recv_window -= len as i64;
        let Some(body) = frame::unpad(h.flags, p) else {
            return conn_err(code::PROTOCOL_ERROR, "bad DATA padding");
        };
        if body.is_empty() && !h.has(frame::END_STREAM) {
            self.flood_control()?;
        }
        if h.stream > self.last_stream {
            return conn_err(code::PROTOCOL_ERROR, "DATA on an idle stream");
        }
        let slack = if self.settings_acked {
            0
        } else {
            (frame::DEFAULT_WINDOW - i64::from(self.cfg.initial_window)).max(0)
        };
        let pad = len - body.len();
        let Some(s) = self.streams.get_mut(&h.stream) else {
            // Closed: the bytes are counted and given back at once; DATA
            // the client sent after it ended or reset the stream is a
            // stream error (RFC 9113 §6.1), after our reset it is ignored.
            self.release_connection_now(len);
            if self.closed_how(h.stream) == Some(Closed::ByClient) {
                self.flood_control()?;
                self.send_rst(h.stream, code::STREAM_CLOSED);
            }
            return Ok(());
        };
        if s.reset.is_some() {
            let by_client = s.peer_reset;
            self.release_connection_now(len);
            if by_client {
                self.flood_control()?;
                self.send_rst(h.stream, code::STREAM_CLOSED);
            }
            return Ok(());
        }
        if s.recv_end {
            self.release_connection_now(len);
            self.reset_stream(h.stream, code::STREAM_CLOSED);
            return Ok(());
        }
        if len as i64 > s.recv_window + slack {
            self.release_connection_now(len);
            self.reset_stream(h.stream, code::FLOW_CONTROL_ERROR);
            return Ok(());
        }
        s.recv_window -= len as i64;
        s.received += body.len() as u64;
        if s.request.content_length.is_some_and(|cl| s.received > cl)
            || (h.has(frame::END_STREAM)
                && s.request.content_length.is_some_and(|cl| s.received != cl))
        {
            self.release_connection_now(len);
            self.reset_stream(h.stream, code::PROTOCOL_ERROR);
            return Ok(());
        }
        if s.recv_pos == s.recv.len() {
            s.recv.clear();
            s.recv_pos = 0;
        }
        if s.chunked {
            chunked::write_chunk(&mut s.recv, body);
        } else {
            s.recv.extend_from_slice(body);
        }
        s.buffered += body.len();
        if h.has(frame::END_STREAM) {
            s.recv_end = true;
            if s.chunked {
                chunked::write_last_chunk(&mut s.recv, b"");
            }
        }
        wake(&mut s.reader);
        self.conn_buffered += body.len();
        // Padding is flow-controlled but never read: given back now.
        if pad > 0 {
            self.release_connection_now(pad);
            if let Some(s) = self.streams.get_mut(&h.stream) {
                s.recv_window += pad as i64;
                if !s.recv_end {
                    frame::put_window_update(&mut self.out, h.stream, pad as u32);
                }
            }
        }
        Ok(())
    }

    fn headers(&mut self, h: Head, p: &[u8]) -> Result<(), ConnError> {
        if h.stream == 0 || h.stream.is_multiple_of(2) {
            return conn_err(
                code::PROTOCOL_ERROR,
                "HEADERS on stream 0 or an even stream",
            );
        }
        let Some((block, dep)) = frame::headers_block(h.flags, p) else {
            return conn_err(code::PROTOCOL_ERROR, "bad HEADERS padding or priority");
        };
        self.block.clear();
        self.block.extend_from_slice(block);
        let end_stream = h.has(frame::END_STREAM);
        if dep == Some(h.stream) {
            // A stream that depends on itself: a stream error, but the
            // block must still be decoded (below, through `fields`).
            self.continuing = None;
        }
        if h.has(frame::END_HEADERS) {
            self.header_block(h.stream, end_stream, dep == Some(h.stream))
        } else {
            self.check_block_size()?;
            self.continuing = Some(Continuing {
                stream: h.stream,
                end_stream,
            });
            Ok(())
        }
    }

    fn continuation(&mut self, h: Head, p: &[u8]) -> Result<(), ConnError> {
        let Some(c) = self.continuing.take() else {
            return conn_err(code::PROTOCOL_ERROR, "CONTINUATION without HEADERS");
        };
        // An empty CONTINUATION carries nothing, so the size bound never
        // trips: it counts as a control frame (as an empty DATA frame does).
        if p.is_empty() && !h.has(frame::END_HEADERS) {
            self.flood_control()?;
        }
        self.block.extend_from_slice(p);
        self.check_block_size()?;
        if h.has(frame::END_HEADERS) {
            self.header_block(c.stream, c.end_stream, false)
        } else {
            self.continuing = Some(c);
            Ok(())
        }
    }

    /// A header block still arriving is bounded by `max_header_list`
    /// (CONTINUATION flood, CVE-2024-27316): past it, the connection ends.
    fn check_block_size(&self) -> Result<(), ConnError> {
        if self.block.len() > self.cfg.max_header_list {
            return conn_err(
                code::ENHANCE_YOUR_CALM,
                "a header block past max_header_list",
            );
        }
        Ok(())
    }

    fn header_block(&mut self, id: u32, end_stream: bool, self_dep: bool) -> Result<(), ConnError> {
        let block = std::mem::take(&mut self.block);
        let r = self.header_block_inner(id, end_stream, self_dep, &block);
        self.block = block;
        r
    }

    fn header_block_inner(
        &mut self,
        id: u32,
        end_stream: bool,
        self_dep: bool,
        block: &[u8],
    ) -> Result<(), ConnError> {
        if self.streams.contains_key(&id) {
            return self.trailers(id, end_stream, block);
        }
        if id <= self.last_stream {
            return self.late_headers(id, block);
        }
        let max_list = self.cfg.max_header_list;
        self.last_stream = id;
        let mut head = self.spare_heads.pop().unwrap_or_default();
        let r = fields::decode_request(
            &mut self.dec,
            &mut self.scratch,
            block,
            (max_list, !end_stream),
            &mut head,
        );
        if r == Err(Refusal::Compression) {
            return conn_err(
                code::COMPRESSION_ERROR,
                "a header block that does not decode",
            );
        }
        if self.goaway || self.streams.len() >= self.cfg.max_concurrent_streams as usize {
            self.refuse(id, code::REFUSED_STREAM);
            return Ok(());
        }
        if self_dep {
            self.refuse(id, code::PROTOCOL_ERROR);
            return Ok(());
        }
        let request = match r {
            Ok(req) if head.len() <= self.max_head => req,
            Ok(_) | Err(Refusal::TooLarge) => {
                // Answered, then the connection ends: a header block that
                // decodes past the limit is how an HPACK bomb looks.
                self.refuse_431(id, end_stream);
                return conn_err(
                    code::ENHANCE_YOUR_CALM,
                    "a header list past max_header_list",
                );
            }
            Err(_) => {
                self.refuse(id, code::PROTOCOL_ERROR);
                return Ok(());
            }
        };
        let iw = i64::from(self.cfg.initial_window);
        self.streams.insert(
            id,
            Stream {
                head,
                request,
                recv: Vec::new(),
                recv_pos: 0,
                chunked: !end_stream && request.content_length.is_none(),
                recv_end: end_stream,
                recv_window: iw,
                buffered: 0,
                received: 0,
                send_window: self.peer_initial_window,
                reset: None,
                peer_reset: false,
                local_done: false,
                reader: None,
                writer: None,
            },
        );
        if end_stream && request.content_length.is_some_and(|cl| cl != 0) {
            self.reset_stream(id, code::PROTOCOL_ERROR);
            self.streams.remove(&id);
            self.remember_closed(id, Closed::Reset);
            return Ok(());
        }
        self.started.push(id);
        self.credit_connection();
        Ok(())
    }

    /// Decodes a trailer section into `lines`; also when it is then ignored,
    /// as the HPACK state must stay in step with the client's.
    fn decode_trailers(
        &mut self,
        block: &[u8],
        lines: &mut Vec<u8>,
    ) -> Result<Result<(), Refusal>, ConnError> {
        let r = fields::decode_trailers(&mut self.dec, block, self.cfg.max_header_list, lines);
        if r == Err(Refusal::Compression) {
            return conn_err(
                code::COMPRESSION_ERROR,
                "a trailer block that does not decode",
            );
        }
        Ok(r)
    }

    /// A header block on open stream `id`: its trailers.
    fn trailers(&mut self, id: u32, end_stream: bool, block: &[u8]) -> Result<(), ConnError> {
        let mut lines = Vec::new();
        let r = self.decode_trailers(block, &mut lines)?;
        let Some(s) = self.streams.get_mut(&id) else {
            return Ok(());
        };
        if s.reset.is_some() {
            if s.peer_reset {
                self.flood_control()?;
                self.send_rst(id, code::STREAM_CLOSED);
            }
            return Ok(());
        }
        if s.recv_end {
            self.reset_stream(id, code::STREAM_CLOSED);
            return Ok(());
        }
        if !end_stream || r.is_err() || s.request.content_length.is_some_and(|cl| s.received != cl)
        {
            self.reset_stream(id, code::PROTOCOL_ERROR);
            return Ok(());
        }
        s.recv_end = true;
        if s.chunked {
            chunked::write_last_chunk(&mut s.recv, &lines);
        }
        wake(&mut s.reader);
        Ok(())
    }

    /// A header block on a stream id at or below the last one used.
    fn late_headers(&mut self, id: u32, block: &[u8]) -> Result<(), ConnError> {
        match self.closed_how(id) {
            // Trailers of a request we reset: decoded, then ignored.
            Some(Closed::Reset) => self.decode_trailers(block, &mut Vec::new()).map(|_| ()),
            Some(Closed::ByClient) => conn_err(code::STREAM_CLOSED, "HEADERS on a closed stream"),
            // Never opened, or closed too long ago to tell: a stream id
            // must be above every one used before (RFC 9113 §5.1.1).
            None => conn_err(
                code::PROTOCOL_ERROR,
                "HEADERS on a stream id not above the last one",
            ),
        }
    }

    /// A request whose fields are too large: 431, and the stream is done.
    fn refuse_431(&mut self, id: u32, end_stream: bool) {
        let mut block = Vec::new();
        fields::put_status(&mut block, 431);
        fields::put_field(&mut block, b"content-length", b"0");
        frame::put_head(
            &mut self.out,
            block.len(),
            frame::HEADERS,
            frame::END_HEADERS | frame::END_STREAM,
            id,
        );
        self.out.extend_from_slice(&block);
        if !end_stream {
            frame::put_rst(&mut self.out, id, code::NO_ERROR);
        }
        self.wake_writer();
    }

    fn rst(&mut self, h: Head, p: &[u8]) -> Result<(), ConnError> {
        if h.stream == 0 {
            return conn_err(code::PROTOCOL_ERROR, "RST_STREAM on stream 0");
        }
        if p.len() != 4 {
            return conn_err(code::FRAME_SIZE_ERROR, "RST_STREAM is not 4 bytes");
        }
        if h.stream > self.last_stream {
            return conn_err(code::PROTOCOL_ERROR, "RST_STREAM on an idle stream");
        }
        self.counts.resets_received += 1;
        // Rapid reset (CVE-2023-44487): resets are counted per second.
        self.roll_window();
        self.resets += 1;
        if self.resets > self.cfg.max_resets_per_second {
            return conn_err(code::ENHANCE_YOUR_CALM, "too many stream resets");
        }
        if let Some(s) = self.streams.get_mut(&h.stream) {
            s.peer_reset |= s.reset.is_none();
            s.reset
                .get_or_insert(frame::u32_at(p).unwrap_or(code::CANCEL));
            s.local_done = true;
            wake(&mut s.reader);
            wake(&mut s.writer);
            let b = std::mem::take(&mut s.buffered);
            self.release_connection(b);
        }
        Ok(())
    }

    fn settings(&mut self, h: Head, p: &[u8]) -> Result<(), ConnError> {
        if h.stream != 0 {
            return conn_err(code::PROTOCOL_ERROR, "SETTINGS on a stream");
        }
        if h.has(frame::ACK) {
            if !p.is_empty() {
                return conn_err(code::FRAME_SIZE_ERROR, "a SETTINGS ACK with a payload");
            }
            self.settings_acked = true;
            return Ok(());
        }
        self.flood_control()?;
        let Some(entries) = frame::settings(p) else {
            return conn_err(
                code::FRAME_SIZE_ERROR,
                "SETTINGS length not a multiple of 6",
            );
        };
        for (id, v) in entries {
            match id {
                frame::setting::ENABLE_PUSH if v > 1 => {
                    return conn_err(code::PROTOCOL_ERROR, "ENABLE_PUSH other than 0 or 1");
                }
                frame::setting::INITIAL_WINDOW_SIZE => {
                    if i64::from(v) > frame::MAX_WINDOW {
                        return conn_err(code::FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE too large");
                    }
                    let delta = i64::from(v) - self.peer_initial_window;
                    self.peer_initial_window = i64::from(v);
                    for s in self.streams.values_mut() {
                        s.send_window += delta;
                        if s.send_window > frame::MAX_WINDOW {
                            return conn_err(
                                code::FLOW_CONTROL_ERROR,
                                "a stream window overflowed",
                            );
                        }
                        wake(&mut s.writer);
                    }
                }
                frame::setting::MAX_FRAME_SIZE => {
                    if !(frame::MIN_FRAME_SIZE..=frame::MAX_FRAME_SIZE).contains(&v) {
                        return conn_err(code::PROTOCOL_ERROR, "MAX_FRAME_SIZE out of range");
                    }
                    self.peer_max_frame = v as usize;
                }
                // HEADER_TABLE_SIZE: our encoder never uses the dynamic
                // table; the others are advisory for a server.
                _ => {}
            }
        }
        frame::put_settings_ack(&mut self.out);
        self.wake_writer();
        Ok(())
    }

    fn window_update(&mut self, h: Head, p: &[u8]) -> Result<(), ConnError> {
        if p.len() != 4 {
            return conn_err(code::FRAME_SIZE_ERROR, "WINDOW_UPDATE is not 4 bytes");
        }
        self.roll_window();
        // WINDOW_UPDATE frames are control frames too, except one per DATA
        // frame we sent this second (a client downloading fast needs them).
        self.updates += 1;
        if self.updates
            > self
                .cfg
                .max_control_frames_per_second
                .saturating_add(self.sent_frames)
        {
            return conn_err(code::ENHANCE_YOUR_CALM, "too many WINDOW_UPDATE frames");
        }
        let inc = i64::from(frame::u31(p).unwrap_or(0));
        if h.stream == 0 {
            if inc == 0 {
                return conn_err(code::PROTOCOL_ERROR, "a zero WINDOW_UPDATE");
            }
            self.conn_send_window += inc;
            if self.conn_send_window > frame::MAX_WINDOW {
                return conn_err(code::FLOW_CONTROL_ERROR, "the connection window overflowed");
            }
            self.wake_waiting();
            return Ok(());
        }
        if h.stream > self.last_stream {
            return conn_err(code::PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream");
        }
        let Some(s) = self.streams.get_mut(&h.stream) else {
            return Ok(());
        };
        if inc == 0 {
            self.reset_stream(h.stream, code::PROTOCOL_ERROR);
            return Ok(());
        }
        s.send_window += inc;
        if s.send_window > frame::MAX_WINDOW {
            self.reset_stream(h.stream, code::FLOW_CONTROL_ERROR);
            return Ok(());
        }
        wake(&mut s.writer);
        Ok(())
    }

    // ---- the receiving side, for stream tasks ----

    /// Copies request body bytes of stream `id` into `dst`; `Ok(0)`: the
    /// body ended; `None`: nothing yet (the waker is kept).
    pub fn read_body(
        &mut self,
        id: u32,
        dst: &mut [u8],
        w: &Waker,
    ) -> Option<std::io::Result<usize>> {
        if self.dead {
            return Some(Err(gone()));
        }
        let Some(s) = self.streams.get_mut(&id) else {
            return Some(Err(gone()));
        };
        if s.reset.is_some() {
            return Some(Err(gone()));
        }
        let avail = s.recv.len() - s.recv_pos;
        if avail == 0 {
            if s.recv_end {
                return Some(Ok(0));
            }
            s.reader = Some(w.clone());
            return None;
        }
        let n = avail.min(dst.len());
        dst[..n].copy_from_slice(&s.recv[s.recv_pos..s.recv_pos + n]);
        s.recv_pos += n;
        let credit = n.min(s.buffered);
        s.buffered -= credit;
        if s.recv_pos == s.recv.len() {
            s.recv.clear();
            s.recv_pos = 0;
        }
        // The stream's window refilled once half of it is used up.
        let iw = i64::from(self.cfg.initial_window);
        let want = iw - s.recv_window - s.buffered as i64;
        if !s.recv_end && want >= iw / 2 && want > 0 {
            s.recv_window += want;
            frame::put_window_update(&mut self.out, id, want as u32);
        }
        self.release_connection(credit);
        Some(Ok(n))
    }

    /// Payload bytes left the connection's buffers: the window may grow again.
    fn release_connection(&mut self, n: usize) {
        self.conn_buffered = self.conn_buffered.saturating_sub(n);
        self.credit_connection();
    }

    /// Bytes that were never buffered (a closed or reset stream's DATA).
    fn release_connection_now(&mut self, n: usize) {
        self.conn_buffered += n;
        self.release_connection(n);
    }

    /// The connection window aims at `initial_window` × the streams open
    /// (at least one): it grows with the streams in use, and what clients
    /// may have in flight stays bounded by it.
    fn credit_connection(&mut self) {
        let target = i64::from(self.cfg.initial_window)
            .max(frame::DEFAULT_WINDOW)
            .saturating_mul(self.streams.len().max(1) as i64)
            .min(frame::MAX_WINDOW);
        let want = target - self.conn_recv_window - self.conn_buffered as i64;
        if want >= target / 4 && want > 0 {
            self.conn_recv_window += want;
            frame::put_window_update(&mut self.out, 0, want as u32);
            self.wake_writer();
        }
    }

    // ---- the sending side, for stream tasks ----

    /// How many DATA bytes stream `id` may send now (windows, frame size,
    /// room in `out`); `Ok(0)`: wait (the waker is kept).
    pub fn send_capacity(&mut self, id: u32, w: &Waker) -> std::io::Result<usize> {
        if self.dead {
            return Err(gone());
        }
        let Some(s) = self.streams.get_mut(&id) else {
            return Err(gone());
        };
        if s.reset.is_some() || s.local_done {
            return Err(gone());
        }
        if self.out.len() >= OUT_HIGH || self.conn_send_window <= 0 {
            self.wait(w);
            return Ok(0);
        }
        if s.send_window <= 0 {
            s.writer = Some(w.clone());
            return Ok(0);
        }
        let n = s
            .send_window
            .min(self.conn_send_window)
            .min(self.peer_max_frame as i64);
        Ok(n as usize)
    }

    /// Whether `out` has room for a response head (else the waker is kept).
    pub fn has_room(&mut self, w: &Waker) -> std::io::Result<bool> {
        if self.dead {
            return Err(gone());
        }
        if self.out.len() >= OUT_HIGH {
            self.wait(w);
            return Ok(false);
        }
        Ok(true)
    }

    /// Puts one DATA frame; `data` must fit the capacity just granted.
    pub fn send_data(&mut self, id: u32, data: &[u8], end: bool) {
        let n = data.len() as i64;
        self.conn_send_window -= n;
        self.sent_frames = self.sent_frames.saturating_add(1);
        if let Some(s) = self.streams.get_mut(&id) {
            s.send_window -= n;
            if end {
                s.local_done = true;
            }
        }
        frame::put_head(
            &mut self.out,
            data.len(),
            frame::DATA,
            if end { frame::END_STREAM } else { 0 },
            id,
        );
        self.out.extend_from_slice(data);
        self.wake_writer();
    }

    /// Puts a header block as HEADERS (+ CONTINUATION) frames.
    pub fn send_headers(&mut self, id: u32, block: &[u8], end: bool) {
        let max = self.peer_max_frame;
        let mut chunks = block.chunks(max).peekable();
        let first = chunks.next().unwrap_or(&[]);
        let mut flags = if end { frame::END_STREAM } else { 0 };
        if chunks.peek().is_none() {
            flags |= frame::END_HEADERS;
        }
        frame::put_head(&mut self.out, first.len(), frame::HEADERS, flags, id);
        self.out.extend_from_slice(first);
        while let Some(c) = chunks.next() {
            let f = if chunks.peek().is_none() {
                frame::END_HEADERS
            } else {
                0
            };
            frame::put_head(&mut self.out, c.len(), frame::CONTINUATION, f, id);
            self.out.extend_from_slice(c);
        }
        if end && let Some(s) = self.streams.get_mut(&id) {
            s.local_done = true;
        }
        self.wake_writer();
    }

    /// The stream task is done: the stream is forgotten; a request body
    /// still arriving is declined (RST_STREAM NO_ERROR, RFC 9113 §8.1).
    pub fn finish(&mut self, id: u32, complete: bool) {
        let Some(s) = self.streams.get(&id) else {
            return;
        };
        if !s.local_done && !self.dead {
            self.reset_stream(
                id,
                if complete {
                    code::NO_ERROR
                } else {
                    code::INTERNAL_ERROR
                },
            );
        } else if !s.recv_end && s.reset.is_none() && !self.dead {
            self.send_rst(id, code::NO_ERROR);
        }
        if let Some(s) = self.streams.remove(&id) {
            let by_client = s.peer_reset || (s.recv_end && s.reset.is_none());
            self.remember_closed(
                id,
                if by_client {
                    Closed::ByClient
                } else {
                    Closed::Reset
                },
            );
            self.release_connection(s.buffered);
        }
        self.wake_waiting();
    }

    /// No stream open, and no new one will come (GOAWAY either way).
    pub fn finished(&self) -> bool {
        self.streams.is_empty() && (self.goaway || self.peer_goaway)
    }
}

fn wake(w: &mut Option<Waker>) {
    if let Some(w) = w.take() {
        w.wake();
    }
}

fn gone() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "the HTTP/2 stream was reset",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use frame::{DATA, END_HEADERS, END_STREAM, HEADERS};

    /// `:method GET`, `:scheme http`, `:path /`, all from the static table.
    const GET: &[u8] = &[0x82, 0x86, 0x84];

    fn frames(list: &[(u8, u8, u32, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(kind, flags, stream, p) in list {
            frame::put_head(&mut out, p.len(), kind, flags, stream);
            out.extend_from_slice(p);
        }
        out
    }

    /// The RST_STREAM frames queued in `out`: (stream, code).
    fn resets(out: &[u8]) -> Vec<(u32, u32)> {
        let mut found = Vec::new();
        let mut at = 0;
        while let frame::Next::Frame(h, r) = frame::next(&out[at..], usize::MAX) {
            if h.kind == frame::RST_STREAM {
                found.push((h.stream, frame::u32_at(&out[at + r.start..]).unwrap()));
            }
            at += r.end;
        }
        found
    }

    fn session() -> Session {
        let mut s = Session::new(H2Settings::default(), 16 * 1024, -1);
        s.receive(&frames(&[(frame::SETTINGS, 0, 0, &[])])).unwrap();
        s
    }

    #[test]
    fn late_frames_on_closed_streams_depend_on_who_closed_them() {
        let mut s = session();
        // Stream 1: a GET the client ended, answered in full.
        s.receive(&frames(&[(HEADERS, END_HEADERS | END_STREAM, 1, GET)]))
            .unwrap();
        s.send_headers(1, &[0x88], true);
        s.finish(1, true);
        // Stream 3: a request whose body we stopped with RST_STREAM.
        s.receive(&frames(&[(HEADERS, END_HEADERS, 3, GET)]))
            .unwrap();
        s.reset_stream(3, code::CANCEL);
        s.finish(3, false);
        s.out.clear();
        // What the client sent before it saw our reset is ignored, its
        // trailers decoded.
        let trailers: &[u8] = &[0x00, 1, b'x', 1, b'y'];
        s.receive(&frames(&[
            (DATA, 0, 3, b"late"),
            (HEADERS, END_HEADERS | END_STREAM, 3, trailers),
        ]))
        .unwrap();
        assert_eq!(resets(&s.out), []);
        // DATA after the client's own END_STREAM: STREAM_CLOSED.
        s.receive(&frames(&[(DATA, END_STREAM, 1, b"x")])).unwrap();
        assert_eq!(resets(&s.out), [(1, code::STREAM_CLOSED)]);
        // HEADERS there: a connection error; on a stream id never used
        // below the last one: PROTOCOL_ERROR.
        let again = frames(&[(HEADERS, END_HEADERS | END_STREAM, 1, GET)]);
        assert_eq!(s.receive(&again).unwrap_err().code, code::STREAM_CLOSED);
        let mut s = session();
        s.receive(&frames(&[(HEADERS, END_HEADERS | END_STREAM, 5, GET)]))
            .unwrap();
        let lower = frames(&[(HEADERS, END_HEADERS | END_STREAM, 3, GET)]);
        assert_eq!(s.receive(&lower).unwrap_err().code, code::PROTOCOL_ERROR);
    }

    #[test]
    fn empty_continuation_frames_count_as_control_frames() {
        let mut s = session();
        s.receive(&frames(&[(HEADERS, 0, 1, GET)])).unwrap();
        // What this second still allows (the client's SETTINGS counted).
        let left = (s.cfg.max_control_frames_per_second - s.control) as usize;
        let trickle: Vec<u8> = (0..left)
            .flat_map(|_| frames(&[(frame::CONTINUATION, 0, 1, &[])]))
            .collect();
        // Within the second's allowance: accepted (the block stays open).
        s.receive(&trickle).unwrap();
        let one_more = frames(&[(frame::CONTINUATION, 0, 1, &[])]);
        let e = s.receive(&one_more).unwrap_err();
        assert_eq!(e.code, code::ENHANCE_YOUR_CALM);
    }

    #[test]
    fn the_closed_streams_remembered_are_bounded() {
        let mut s = session();
        let count = CLOSED_MEMORY as u32 + 10;
        for i in 0..count {
            let id = 2 * i + 1;
            s.receive(&frames(&[(HEADERS, END_HEADERS | END_STREAM, id, GET)]))
                .unwrap();
            s.send_headers(id, &[0x88], true);
            s.finish(id, true);
        }
        assert_eq!(s.closed.len(), CLOSED_MEMORY);
        s.out.clear();
        // Stream 1 is forgotten: its late DATA is ignored; the last one's is not.
        let last = 2 * (count - 1) + 1;
        s.receive(&frames(&[
            (DATA, END_STREAM, 1, b"x"),
            (DATA, END_STREAM, last, b"x"),
        ]))
        .unwrap();
        assert_eq!(resets(&s.out), [(last, code::STREAM_CLOSED)]);
    }
}
