//! The client side of one HTTP/2 connection as a state machine without I/O:
//! the caller feeds it the bytes it read ([`H2Conn::receive`]), asks it to
//! open streams ([`H2Conn::open`]), and writes out whatever it queued in
//! [`H2Conn::output`]. What it tells the caller comes back as [`Event`]s.
//!
//! Flow control (RFC 9113 §5.2, §6.9): our receive windows are opened to
//! the maximum at once and topped up when half is used, so the server is
//! never held back by us; request bodies are sent only as far as the
//! server's connection and stream windows allow, and resume when a
//! WINDOW_UPDATE (or a larger SETTINGS_INITIAL_WINDOW_SIZE) arrives.

use std::sync::Arc;

use super::frame::{self, Frame, FrameError, MAX_WINDOW, code, kind, setting};
use super::hpack;

/// Our receive windows are refilled when this much of them has been used.
const RECEIVE_REFILL_BYTES: u32 = 1 << 30;
/// A response header block (HEADERS + CONTINUATION) larger than this is an error.
pub const MAX_HEADER_BLOCK_BYTES: usize = 64 * 1024;
/// The HPACK dynamic table size we allow the server (our SETTINGS_HEADER_TABLE_SIZE, the default).
const HEADER_TABLE_BYTES: usize = 4096;
/// Stream windows start here until the server's SETTINGS say otherwise.
const DEFAULT_WINDOW: i64 = 65_535;

/// What the connection tells its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A response ended (END_STREAM) with this final status.
    Response { stream: u32, status: u16 },
    /// The server reset an open stream (RST_STREAM).
    Reset { stream: u32, code: u32 },
    /// The server is closing the connection; streams above `last_stream`
    /// were not processed and will get no answer.
    GoAway { last_stream: u32, code: u32 },
}

/// A connection error: the connection cannot go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnError {
    Frame(FrameError),
    /// HPACK decoding failed (COMPRESSION_ERROR).
    Compression,
    /// A frame that makes no sense here (PROTOCOL_ERROR).
    Protocol,
    /// A window overflowed (FLOW_CONTROL_ERROR).
    FlowControl,
}

impl ConnError {
    fn code(self) -> u32 {
        match self {
            ConnError::Frame(e) => e.code(),
            ConnError::Compression => code::COMPRESSION_ERROR,
            ConnError::Protocol => code::PROTOCOL_ERROR,
            ConnError::FlowControl => code::FLOW_CONTROL_ERROR,
        }
    }
}

/// One stream we opened and have no complete response for yet.
#[derive(Debug, Clone)]
struct Open {
    id: u32,
    /// The request body (`None`: the request ended with its HEADERS).
    body: Option<Arc<[u8]>>,
    /// Final status, 0 until the response headers arrived.
    status: u16,
    /// What the server lets us send on this stream.
    send_window: i64,
    /// Request body bytes sent so far.
    body_sent: usize,
    /// END_STREAM sent: the request is complete.
    sent_all: bool,
    /// DATA received on this stream since its window was last refilled.
    unacked: u32,
}

/// A header block arriving over HEADERS + CONTINUATION frames.
#[derive(Debug, Clone, Copy)]
struct Continuing {
    stream: u32,
    end_stream: bool,
}

pub struct H2Conn {
    decoder: hpack::Decoder,
    /// Bytes to write, in order.
    out: Vec<u8>,
    /// Open streams, in the order they were opened.
    streams: Vec<Open>,
    next_stream: u32,
    /// The server's SETTINGS.
    peer_max_frame: usize,
    peer_initial_window: i64,
    peer_max_streams: usize,
    /// What the server lets us send on the connection.
    send_window: i64,
    /// DATA received since the connection window was last refilled.
    unacked: u32,
    /// Last-stream-id of a GOAWAY received.
    goaway: Option<u32>,
    continuing: Option<Continuing>,
    /// The header block being assembled from HEADERS + CONTINUATION.
    block: Vec<u8>,
}

impl H2Conn {
    /// A new connection; [`output`](Self::output) already holds the
    /// preface, our SETTINGS and the connection window update.
    pub fn new() -> Self {
        let decoder = hpack::Decoder::with_limit(HEADER_TABLE_BYTES);
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(frame::PREFACE);
        frame::put_settings(
            &mut out,
            &[
                (setting::ENABLE_PUSH, 0),
                (setting::INITIAL_WINDOW_SIZE, MAX_WINDOW),
            ],
        );
        frame::put_window_update(&mut out, 0, MAX_WINDOW - DEFAULT_WINDOW as u32);
        H2Conn {
            decoder,
            out,
            streams: Vec::new(),
            next_stream: 1,
            peer_max_frame: frame::DEFAULT_MAX_FRAME_BYTES,
            peer_initial_window: DEFAULT_WINDOW,
            peer_max_streams: usize::MAX,
            send_window: DEFAULT_WINDOW,
            unacked: 0,
            goaway: None,
            continuing: None,
            block: Vec::new(),
        }
    }

    /// Bytes waiting to be written. The caller writes and clears them.
    pub fn output(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// How many more streams may be opened now (0 after a GOAWAY).
    pub fn room(&self) -> usize {
        if self.goaway.is_some() || self.next_stream > MAX_WINDOW {
            return 0;
        }
        self.peer_max_streams.saturating_sub(self.streams.len())
    }

    /// A GOAWAY arrived, or stream ids ran out: open nothing more here.
    pub fn closing(&self) -> bool {
        self.goaway.is_some() || self.next_stream > MAX_WINDOW
    }

    /// Opens a stream with the request header `block` (and `body`, as far
    /// as the windows allow). Returns its id. The caller checks [`room`](Self::room).
    pub fn open(&mut self, block: &[u8], body: Option<&Arc<[u8]>>) -> u32 {
        let id = self.next_stream;
        self.next_stream += 2;
        let body = body.filter(|b| !b.is_empty()).cloned();
        let end_stream = body.is_none();
        frame::put_headers(&mut self.out, id, block, end_stream, self.peer_max_frame);
        self.streams.push(Open {
            id,
            body,
            status: 0,
            send_window: self.peer_initial_window,
            body_sent: 0,
            sent_all: end_stream,
            unacked: 0,
        });
        if !end_stream {
            let last = self.streams.len() - 1;
            self.send_body(last);
        }
        id
    }

    /// Sends as much of stream `at`'s body as the windows allow.
    fn send_body(&mut self, at: usize) {
        let s = &mut self.streams[at];
        let Some(body) = &s.body else { return };
        while !s.sent_all {
            let left = body.len() - s.body_sent;
            let allowed = self.send_window.min(s.send_window).max(0) as usize;
            let n = left.min(allowed).min(self.peer_max_frame);
            if n == 0 && left > 0 {
                return;
            }
            let end = s.body_sent + n == body.len();
            frame::put_data(
                &mut self.out,
                s.id,
                &body[s.body_sent..s.body_sent + n],
                end,
            );
            s.body_sent += n;
            s.send_window -= n as i64;
            self.send_window -= n as i64;
            s.sent_all = end;
        }
    }

    fn send_bodies(&mut self) {
        for at in 0..self.streams.len() {
            self.send_body(at);
        }
    }

    /// Processes every complete frame at the start of `buf`; returns how
    /// many bytes that was. Events are appended to `events`. On an error
    /// a GOAWAY is queued in the output and the connection is done.
    pub fn receive(&mut self, buf: &[u8], events: &mut Vec<Event>) -> Result<usize, ConnError> {
        let mut at = 0;
        loop {
            let decoded = frame::decode(&buf[at..], frame::DEFAULT_MAX_FRAME_BYTES)
                .map_err(ConnError::Frame)
                .and_then(|f| match f {
                    Some((frame, used)) => self.on_frame(frame, events).map(|()| Some(used)),
                    None => Ok(None),
                });
            match decoded {
                Ok(Some(used)) => at += used,
                Ok(None) => return Ok(at),
                Err(e) => {
                    let last = self.next_stream.saturating_sub(2);
                    frame::put_goaway(&mut self.out, last, e.code());
                    return Err(e);
                }
            }
        }
    }

    fn find(&self, stream: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.id == stream)
    }

    /// DATA: both receive windows refilled as they drain; END_STREAM ends the response.
    fn on_data(
        &mut self,
        stream: u32,
        end_stream: bool,
        flow_len: u32,
        events: &mut Vec<Event>,
    ) -> Result<(), ConnError> {
        self.unacked += flow_len;
        if self.unacked >= RECEIVE_REFILL_BYTES {
            frame::put_window_update(&mut self.out, 0, std::mem::take(&mut self.unacked));
        }
        match self.find(stream) {
            // DATA before the response headers.
            Some(at) if self.streams[at].status == 0 => return Err(ConnError::Protocol),
            Some(at) => {
                let s = &mut self.streams[at];
                s.unacked += flow_len;
                if end_stream {
                    self.finish(at, events);
                } else if s.unacked >= RECEIVE_REFILL_BYTES {
                    let n = std::mem::take(&mut s.unacked);
                    frame::put_window_update(&mut self.out, stream, n);
                }
            }
            None if self.idle(stream) => return Err(ConnError::Protocol),
            // A stream that is already closed for us: ignore.
            None => {}
        }
        Ok(())
    }

    /// WINDOW_UPDATE: more room for request bodies, on the connection or a stream.
    fn on_window_update(&mut self, stream: u32, increment: u32) -> Result<(), ConnError> {
        if stream == 0 {
            if increment == 0 {
                return Err(ConnError::Protocol);
            }
            self.send_window += i64::from(increment);
            if self.send_window > i64::from(MAX_WINDOW) {
                return Err(ConnError::FlowControl);
            }
            self.send_bodies();
        } else if let Some(at) = self.find(stream) {
            // A zero increment is a stream error; we treat it as the
            // connection's, like an overflowing window.
            let s = &mut self.streams[at];
            s.send_window += i64::from(increment);
            if increment == 0 || s.send_window > i64::from(MAX_WINDOW) {
                return Err(ConnError::FlowControl);
            }
            self.send_body(at);
        }
        Ok(())
    }

    fn on_frame(&mut self, frame: Frame<'_>, events: &mut Vec<Event>) -> Result<(), ConnError> {
        // Nothing may come between HEADERS and its last CONTINUATION (§6.10).
        if let Some(c) = self.continuing {
            match frame {
                Frame::Continuation {
                    stream,
                    end_headers,
                    block,
                } if stream == c.stream => {
                    self.extend_block(block)?;
                    if end_headers {
                        self.continuing = None;
                        let block = std::mem::take(&mut self.block);
                        let done = self.on_headers(c.stream, c.end_stream, &block, events);
                        self.block = block;
                        self.block.clear();
                        done?;
                    }
                    return Ok(());
                }
                _ => return Err(ConnError::Protocol),
            }
        }
        match frame {
            Frame::Headers {
                stream,
                end_stream,
                end_headers: true,
                block,
            } => {
                self.on_headers(stream, end_stream, block, events)?;
            }
            Frame::Headers {
                stream,
                end_stream,
                end_headers: false,
                block,
            } => {
                self.block.clear();
                self.extend_block(block)?;
                self.continuing = Some(Continuing { stream, end_stream });
            }
            Frame::Continuation { .. } => return Err(ConnError::Protocol),
            Frame::Data {
                stream,
                end_stream,
                flow_len,
                ..
            } => self.on_data(stream, end_stream, flow_len, events)?,
            Frame::RstStream { stream, code } => {
                if let Some(at) = self.find(stream) {
                    self.streams.remove(at);
                    events.push(Event::Reset { stream, code });
                } else if self.idle(stream) {
                    return Err(ConnError::Protocol);
                }
            }
            Frame::Settings { ack: true, .. } => {}
            Frame::Settings { ack: false, params } => {
                self.on_settings(params)?;
                frame::put_settings_ack(&mut self.out);
            }
            Frame::Ping { ack: false, data } => frame::put_ping_ack(&mut self.out, data),
            Frame::Ping { ack: true, .. } => {}
            Frame::GoAway { last_stream, code } => {
                let last = self.goaway.map_or(last_stream, |l| l.min(last_stream));
                self.goaway = Some(last);
                self.streams.retain(|s| s.id <= last);
                events.push(Event::GoAway {
                    last_stream: last,
                    code,
                });
            }
            Frame::WindowUpdate { stream, increment } => {
                self.on_window_update(stream, increment)?
            }
            // Push is off in our SETTINGS, so a PUSH_PROMISE is a protocol error.
            Frame::Other {
                kind: kind::PUSH_PROMISE,
                ..
            } => return Err(ConnError::Protocol),
            Frame::Other { .. } => {}
        }
        Ok(())
    }

    /// A stream id we never opened (client streams are odd and below `next_stream`).
    fn idle(&self, stream: u32) -> bool {
        stream.is_multiple_of(2) || stream >= self.next_stream
    }

    fn extend_block(&mut self, fragment: &[u8]) -> Result<(), ConnError> {
        if self.block.len() + fragment.len() > MAX_HEADER_BLOCK_BYTES {
            return Err(ConnError::Protocol);
        }
        self.block.extend_from_slice(fragment);
        Ok(())
    }

    /// A complete header block for `stream`: response headers (possibly
    /// informational, 1xx) or trailers.
    fn on_headers(
        &mut self,
        stream: u32,
        end_stream: bool,
        block: &[u8],
        events: &mut Vec<Event>,
    ) -> Result<(), ConnError> {
        // Decode even for streams we no longer track: the dynamic table
        // must see every block.
        let mut status = None;
        self.decoder
            .decode(block, |name, value| {
                if name == b":status" {
                    status = parse_status(value);
                }
            })
            .map_err(|_| ConnError::Compression)?;
        let Some(at) = self.find(stream) else {
            return if self.idle(stream) {
                Err(ConnError::Protocol)
            } else {
                Ok(())
            };
        };
        let s = &mut self.streams[at];
        match status {
            // Informational: the final response is still to come.
            Some(code) if code < 200 && !end_stream => {}
            Some(code) if s.status == 0 => s.status = code,
            // Trailers carry no status; anything else is malformed.
            None if s.status != 0 => {}
            _ => return Err(ConnError::Protocol),
        }
        if end_stream {
            self.finish(at, events);
        }
        Ok(())
    }

    /// The response on stream `at` ended.
    fn finish(&mut self, at: usize, events: &mut Vec<Event>) {
        let s = self.streams.remove(at);
        if !s.sent_all {
            // The server answered before taking the whole body (§8.1): stop sending it.
            frame::put_rst_stream(&mut self.out, s.id, code::NO_ERROR);
        }
        events.push(Event::Response {
            stream: s.id,
            status: s.status,
        });
    }

    fn on_settings(&mut self, params: &[u8]) -> Result<(), ConnError> {
        for (id, value) in frame::settings(params) {
            match id {
                setting::INITIAL_WINDOW_SIZE => {
                    if value > MAX_WINDOW {
                        return Err(ConnError::FlowControl);
                    }
                    let delta = i64::from(value) - self.peer_initial_window;
                    self.peer_initial_window = i64::from(value);
                    for s in &mut self.streams {
                        s.send_window += delta;
                        if s.send_window > i64::from(MAX_WINDOW) {
                            return Err(ConnError::FlowControl);
                        }
                    }
                }
                setting::MAX_FRAME_SIZE => {
                    if !(frame::DEFAULT_MAX_FRAME_BYTES as u32..1 << 24).contains(&value) {
                        return Err(ConnError::Protocol);
                    }
                    self.peer_max_frame = value as usize;
                }
                setting::MAX_CONCURRENT_STREAMS => {
                    self.peer_max_streams = usize::try_from(value).unwrap_or(usize::MAX);
                }
                // For the server's decoder: our encoder uses no dynamic table.
                setting::HEADER_TABLE_SIZE => {}
                // Unknown settings are ignored (§6.5.2).
                _ => {}
            }
        }
        self.send_bodies();
        Ok(())
    }
}

/// `:status` as three ASCII digits.
fn parse_status(value: &[u8]) -> Option<u16> {
    match value {
        [a @ b'1'..=b'9', b @ b'0'..=b'9', c @ b'0'..=b'9'] => {
            Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server side of a few exchanges, as frames.
    fn server(frames: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        frames(&mut out);
        out
    }

    /// `:status: 200` from the static table.
    const STATUS_200: &[u8] = &[0x88];
    /// `:status: 404` (index 13).
    const STATUS_404: &[u8] = &[0x8d];

    fn feed(conn: &mut H2Conn, bytes: &[u8]) -> Result<Vec<Event>, ConnError> {
        let mut events = Vec::new();
        let used = conn.receive(bytes, &mut events)?;
        assert_eq!(used, bytes.len());
        Ok(events)
    }

    #[test]
    fn starts_with_preface_settings_and_a_window_update() {
        let mut conn = H2Conn::new();
        let out = std::mem::take(conn.output());
        assert!(out.starts_with(frame::PREFACE));
        let rest = &out[frame::PREFACE.len()..];
        let (f, used) = frame::decode(rest, 1 << 20).unwrap().unwrap();
        assert!(matches!(f, Frame::Settings { ack: false, .. }));
        let (f, _) = frame::decode(&rest[used..], 1 << 20).unwrap().unwrap();
        assert_eq!(
            f,
            Frame::WindowUpdate {
                stream: 0,
                increment: MAX_WINDOW - 65_535
            }
        );
    }

    #[test]
    fn responses_complete_out_of_order_and_control_frames_are_answered() {
        let mut conn = H2Conn::new();
        assert_eq!((conn.open(&[0x82], None), conn.open(&[0x82], None)), (1, 3));
        conn.output().clear();
        let bytes = server(|o| {
            frame::put_settings(o, &[(setting::MAX_CONCURRENT_STREAMS, 100)]);
            frame::put_headers(o, 3, STATUS_404, true, 16_384);
            frame::put_headers(o, 1, STATUS_200, false, 16_384);
            o.extend_from_slice(&[0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
            frame::put_data(o, 1, b"hello", true);
        });
        let events = feed(&mut conn, &bytes).unwrap();
        assert_eq!(
            events,
            [
                Event::Response {
                    stream: 3,
                    status: 404
                },
                Event::Response {
                    stream: 1,
                    status: 200
                },
            ]
        );
        assert_eq!(conn.room(), 100);
        // SETTINGS ACK then PING ACK.
        let mut want = Vec::new();
        frame::put_settings_ack(&mut want);
        frame::put_ping_ack(&mut want, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(*conn.output(), want);
    }

    #[test]
    fn continuation_informational_and_trailers() {
        let mut conn = H2Conn::new();
        conn.open(&[0x82], None);
        let bytes = server(|o| {
            // 100 Continue as a literal (:status indexed name 8, value "100").
            frame::put_headers(o, 1, &[0x08, 3, b'1', b'0', b'0'], false, 16_384);
            // The final headers (201) split over HEADERS + 2 CONTINUATIONs.
            frame::put_headers(o, 1, &[0x08, 3, b'2', b'0', b'1'], false, 2);
            frame::put_data(o, 1, b"x", false);
            // Trailers: a literal field without :status, ending the stream.
            frame::put_headers(o, 1, &[0x00, 1, b't', 1, b'v'], true, 16_384);
        });
        let events = feed(&mut conn, &bytes).unwrap();
        assert_eq!(
            events,
            [Event::Response {
                stream: 1,
                status: 201
            }]
        );
    }

    #[test]
    fn rst_stream_and_goaway_become_events() {
        let mut conn = H2Conn::new();
        for _ in 0..3 {
            conn.open(&[0x82], None);
        }
        let bytes = server(|o| {
            frame::put_rst_stream(o, 1, 7);
            frame::put_goaway(o, 3, code::NO_ERROR);
        });
        let events = feed(&mut conn, &bytes).unwrap();
        assert_eq!(
            events,
            [
                Event::Reset { stream: 1, code: 7 },
                Event::GoAway {
                    last_stream: 3,
                    code: 0
                },
            ]
        );
        assert!(conn.closing());
        assert_eq!(conn.room(), 0);
        // Stream 5 was dropped by the GOAWAY; stream 3 can still finish.
        let events = feed(
            &mut conn,
            &server(|o| frame::put_headers(o, 3, STATUS_200, true, 16_384)),
        )
        .unwrap();
        assert_eq!(
            events,
            [Event::Response {
                stream: 3,
                status: 200
            }]
        );
    }

    #[test]
    fn bodies_wait_for_the_servers_windows() {
        let body: Arc<[u8]> = vec![7u8; 70_000].into();
        let mut conn = H2Conn::new();
        conn.output().clear();
        let id = conn.open(&[0x83], Some(&body));
        // 65 535 bytes fit in the initial windows: HEADERS + 4 full DATA frames + 1 short.
        let sent = data_bytes(conn.output(), id);
        assert_eq!(sent, (65_535, false));
        conn.output().clear();
        // The connection window opens, the stream window does not: nothing more.
        feed(
            &mut conn,
            &server(|o| frame::put_window_update(o, 0, 100_000)),
        )
        .unwrap();
        assert_eq!(data_bytes(conn.output(), id), (0, false));
        // The stream window opens too: the rest goes, with END_STREAM.
        feed(
            &mut conn,
            &server(|o| frame::put_window_update(o, id, 100_000)),
        )
        .unwrap();
        assert_eq!(data_bytes(conn.output(), id), (70_000 - 65_535, true));
    }

    /// DATA payload bytes for `stream` in `out`, and whether END_STREAM was sent.
    fn data_bytes(out: &[u8], stream: u32) -> (usize, bool) {
        let (mut total, mut ended, mut at) = (0, false, 0);
        while let Some((f, used)) = frame::decode(&out[at..], 1 << 20).unwrap() {
            if let Frame::Data {
                stream: s,
                data,
                end_stream,
                ..
            } = f
            {
                assert_eq!(s, stream);
                total += data.len();
                ended |= end_stream;
            }
            at += used;
        }
        (total, ended)
    }

    #[test]
    fn protocol_errors_end_the_connection_with_goaway() {
        let table: &[&[u8]] = &[
            // DATA on a stream we never opened.
            &[0, 0, 1, 0, 1, 0, 0, 0, 9, b'x'],
            // CONTINUATION without HEADERS.
            &[0, 0, 1, 9, 4, 0, 0, 0, 1, 0x88],
            // HEADERS with a bad HPACK index (70).
            &[0, 0, 2, 1, 5, 0, 0, 0, 1, 0xbf, 0x27],
            // PUSH_PROMISE.
            &[0, 0, 4, 5, 4, 0, 0, 0, 1, 0, 0, 0, 2],
            // WINDOW_UPDATE overflowing the connection window.
            &[0, 0, 4, 8, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff],
        ];
        for bytes in table {
            let mut conn = H2Conn::new();
            conn.open(&[0x82], None);
            conn.output().clear();
            let mut events = Vec::new();
            assert!(conn.receive(bytes, &mut events).is_err(), "{bytes:?}");
            let (f, _) = frame::decode(conn.output(), 1 << 20).unwrap().unwrap();
            assert!(matches!(f, Frame::GoAway { .. }), "{bytes:?}");
        }
    }

    /// Random bytes after a valid start never panic the connection (frame
    /// decoder, HPACK decoder, windows), whatever they say.
    #[test]
    fn random_frames_never_panic() {
        let mut next = crate::h2::test_rng(0x2545_f491_4f6c_dd1d);
        let body: Arc<[u8]> = vec![1u8; 100].into();
        for round in 0..5_000 {
            let mut conn = H2Conn::new();
            for _ in 0..3 {
                conn.open(&[0x82], (round % 2 == 0).then_some(&body));
            }
            let mut bytes = Vec::new();
            for _ in 0..(next() % 6) {
                // Plausible headers: small length, a known type, a low stream id.
                let len = (next() % 20) as usize;
                let kind = (next() % 11) as u8;
                let flags = next() as u8;
                let stream = (next() % 8) as u32;
                frame::put_header(&mut bytes, len, kind, flags, stream);
                bytes.extend((0..len).map(|_| next() as u8));
            }
            let mut events = Vec::new();
            let _ = conn.receive(&bytes, &mut events);
        }
    }
}
