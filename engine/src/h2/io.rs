//! One HTTP/2 stream as the exchange sees it: a connection that reads the
//! request body (framed for HTTP/1.1) and takes the HTTP/1.1 response
//! bytes the exchange writes, turning them into HEADERS and DATA frames
//! under flow control. So every phase of an exchange (router, policies,
//! upstream pools, relay) serves HTTP/2 requests unchanged.
//!
//! A write waits while the stream's or the connection's window is shut:
//! a slow HTTP/2 reader slows the upstream read down instead of making the
//! gateway buffer the response. Past `body_idle` without room, the stream
//! is reset (CANCEL).

use super::fields;
use super::frame::code;
use super::session::Session;
use crate::h1::chunked::{ChunkedDecoder, Decoded};
use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

/// The most header bytes a response head may have before it is whole.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
const MAX_RESPONSE_FIELDS: usize = 128;

/// Where the response the exchange writes has got to.
enum Resp {
    /// Reading a head (a final one, or after 1xx heads).
    Head,
    /// A body of this many bytes still to come.
    Length(u64),
    Chunked(ChunkedDecoder),
    /// No length: the body ends when the exchange does.
    UntilEnd,
    /// END_STREAM sent.
    Done,
}

pub struct StreamIo {
    sess: Rc<RefCell<Session>>,
    id: u32,
    tls: bool,
    local: SocketAddr,
    fd: RawFd,
    is_head: bool,
    body_idle: Duration,
    resp: Resp,
    /// Response bytes kept between writes: a head not yet whole, a chunk
    /// line or trailer section cut in two.
    carry: Vec<u8>,
    block: Vec<u8>,
}

/// What the connection tells each of its streams.
#[derive(Clone, Copy)]
pub struct ConnInfo {
    pub tls: bool,
    pub local: SocketAddr,
    pub fd: RawFd,
}

impl StreamIo {
    pub fn new(
        sess: Rc<RefCell<Session>>,
        id: u32,
        conn: ConnInfo,
        (is_head, body_idle): (bool, Duration),
    ) -> StreamIo {
        StreamIo {
            sess,
            id,
            tls: conn.tls,
            local: conn.local,
            fd: conn.fd,
            is_head,
            body_idle,
            resp: Resp::Head,
            carry: Vec::new(),
            // A response head's fields: one allocation instead of growing.
            block: Vec::with_capacity(256),
        }
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// After the exchange: a body without a length ends here. Whether the
    /// response went out whole.
    pub fn end(&mut self) -> bool {
        if matches!(self.resp, Resp::UntilEnd) {
            self.sess.borrow_mut().send_data(self.id, &[], true);
            self.resp = Resp::Done;
        }
        matches!(self.resp, Resp::Done)
    }

    async fn room(&self) -> io::Result<()> {
        let wait = poll_fn(|cx| match self.sess.borrow_mut().has_room(cx.waker()) {
            Ok(true) => Poll::Ready(Ok(())),
            Ok(false) => Poll::Pending,
            Err(e) => Poll::Ready(Err(e)),
        });
        self.within_body_idle(wait).await
    }

    async fn capacity(&self) -> io::Result<usize> {
        let wait = poll_fn(
            |cx| match self.sess.borrow_mut().send_capacity(self.id, cx.waker()) {
                Ok(0) => Poll::Pending,
                Ok(n) => Poll::Ready(Ok(n)),
                Err(e) => Poll::Ready(Err(e)),
            },
        );
        self.within_body_idle(wait).await
    }

    async fn within_body_idle<F: Future<Output = io::Result<T>>, T>(&self, f: F) -> io::Result<T> {
        match monoio::time::timeout(self.body_idle, f).await {
            Ok(r) => r,
            Err(_) => {
                self.sess.borrow_mut().reset_stream(self.id, code::CANCEL);
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client's window stayed shut",
                ))
            }
        }
    }

    /// Sends `data` as DATA frames as the windows allow; `end` on the last.
    async fn data(&self, mut data: &[u8], end: bool) -> io::Result<()> {
        if data.is_empty() {
            if end {
                self.room().await?;
                self.sess.borrow_mut().send_data(self.id, &[], true);
            }
            return Ok(());
        }
        while !data.is_empty() {
            let n = self.capacity().await?.min(data.len());
            let last = n == data.len();
            self.sess
                .borrow_mut()
                .send_data(self.id, &data[..n], end && last);
            data = &data[n..];
        }
        Ok(())
    }

    async fn headers(&mut self, end: bool) -> io::Result<()> {
        self.room().await?;
        self.sess
            .borrow_mut()
            .send_headers(self.id, &self.block, end);
        Ok(())
    }

    /// Takes response bytes: heads become HEADERS, bodies DATA.
    async fn take(&mut self, input: &[u8]) -> io::Result<()> {
        match &mut self.resp {
            Resp::Head => {
                self.carry.extend_from_slice(input);
                let Some((used, status, body)) = self.parse_head()? else {
                    if self.carry.len() > MAX_RESPONSE_HEAD {
                        return Err(io::Error::other("response head too large"));
                    }
                    return Ok(());
                };
                let rest = self.carry.split_off(used);
                self.carry.clear();
                let interim = (100..200).contains(&status);
                let end = !interim && matches!(body, Resp::Done);
                self.headers(end).await?;
                if !interim {
                    self.resp = body;
                }
                if rest.is_empty() {
                    return Ok(());
                }
                // Body bytes (or a final head after an interim one) that
                // came with the head.
                Box::pin(self.take(&rest)).await
            }
            Resp::Length(left) => {
                let n = (*left).min(input.len() as u64) as usize;
                *left -= n as u64;
                let end = *left == 0;
                if end {
                    self.resp = Resp::Done;
                }
                self.data(&input[..n], end).await
            }
            Resp::UntilEnd => self.data(input, false).await,
            Resp::Done => Ok(()),
            Resp::Chunked(_) => self.chunked(input).await,
        }
    }

    async fn chunked(&mut self, input: &[u8]) -> io::Result<()> {
        let owned;
        let mut buf: &[u8] = if self.carry.is_empty() {
            input
        } else {
            self.carry.extend_from_slice(input);
            owned = std::mem::take(&mut self.carry);
            &owned
        };
        while !buf.is_empty() {
            let Resp::Chunked(dec) = &mut self.resp else {
                return Ok(());
            };
            let (used, what) = dec
                .decode(buf)
                .map_err(|_| io::Error::other("bad chunked response"))?;
            match what {
                Decoded::Data { start, end } => {
                    let data = &buf[start..end];
                    self.data(data, false).await?;
                }
                Decoded::Done {
                    trailer_start,
                    trailer_end,
                } => {
                    let trailers = &buf[trailer_start..trailer_end];
                    self.resp = Resp::Done;
                    if trailers.is_empty() {
                        return self.data(&[], true).await;
                    }
                    self.block.clear();
                    for line in trailers.split(|&b| b == b'\n') {
                        let line = line.strip_suffix(b"\r").unwrap_or(line);
                        let Some(colon) = line.iter().position(|&b| b == b':') else {
                            continue;
                        };
                        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
                        if !fields::dropped_in_h2(name) {
                            fields::put_field(&mut self.block, name, value);
                        }
                    }
                    return self.headers(true).await;
                }
                Decoded::NeedMore => {
                    self.carry.extend_from_slice(&buf[used..]);
                    return Ok(());
                }
            }
            buf = &buf[used..];
        }
        Ok(())
    }

    /// Parses the HTTP/1.1 head at the front of `carry` into `block`:
    /// its length, status and what body follows.
    fn parse_head(&mut self) -> io::Result<Option<(usize, u16, Resp)>> {
        let mut slots = [httparse::EMPTY_HEADER; MAX_RESPONSE_FIELDS];
        let mut r = httparse::Response::new(&mut slots);
        let used = match r.parse(&self.carry) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(io::Error::other("bad response head")),
        };
        let status = r.code.unwrap_or(502);
        self.block.clear();
        fields::put_status(&mut self.block, status);
        let mut length = None;
        let mut chunked = false;
        for h in r.headers.iter() {
            if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = true;
            }
            if h.name.eq_ignore_ascii_case("content-length") {
                length = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse().ok());
            }
            if !fields::dropped_in_h2(h.name.as_bytes()) {
                fields::put_field(&mut self.block, h.name.as_bytes(), h.value);
            }
        }
        let body = if self.is_head || matches!(status, 100..=199 | 204 | 304) {
            Resp::Done
        } else if chunked {
            Resp::Chunked(ChunkedDecoder::default())
        } else {
            match length {
                Some(0) => Resp::Done,
                Some(n) => Resp::Length(n),
                None => Resp::UntilEnd,
            }
        };
        Ok(Some((used, status, body)))
    }
}

impl AsRawFd for StreamIo {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

impl AsyncReadRent for StreamIo {
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        let total = buf.bytes_total();
        let ptr = buf.write_ptr();
        let (sess, id) = (&self.sess, self.id);
        let r = poll_fn(|cx| {
            // SAFETY: `buf` owns `total` writable bytes at `ptr` and stays
            // borrowed by this future until it completes.
            let dst = unsafe { std::slice::from_raw_parts_mut(ptr, total) };
            match sess.borrow_mut().read_body(id, dst, cx.waker()) {
                Some(r) => Poll::Ready(r),
                None => Poll::Pending,
            }
        })
        .await;
        if let Ok(n) = r {
            // SAFETY: `n` bytes were just written at the front.
            unsafe { buf.set_init(n) };
        }
        (r, buf)
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        (Err(io::Error::other("readv on an HTTP/2 stream")), buf)
    }
}

impl AsyncWriteRent for StreamIo {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: `buf` holds `bytes_init` initialized bytes at `read_ptr`.
        let data = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        let n = data.len();
        match self.take(data).await {
            Ok(()) => (Ok(n), buf),
            Err(e) => (Err(e), buf),
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        (Err(io::Error::other("writev on an HTTP/2 stream")), buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        Ok(())
    }
}
