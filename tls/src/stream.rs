//! A TLS stream over a monoio `TcpStream`, driving rustls with owned buffers.
//!
//! monoio's I/O traits pass buffer ownership to the runtime for the duration
//! of an operation (io_uring completes into it later). rustls, on the other
//! hand, reads and writes ciphertext through `std::io::Read`/`Write`. This
//! module bridges the two with two per-connection ciphertext buffers:
//!
//! * `rbuf`: bytes read from the socket, handed to `rustls::read_tls` (which
//!   may take only part of them; the rest waits at `rbuf[rpos..]`);
//! * `wbuf`: what `rustls::write_tls` produced, sent with `write_all`.
//!
//! Plaintext is copied once between the caller's buffer and rustls; into the
//! caller's (possibly uninitialised) read buffer it is copied through the raw
//! pointer monoio's `IoBufMut` gives, never through a slice.
//!
//! If a future of this stream is dropped while a socket operation is in flight
//! (a timeout, a `select!`), the bytes of that operation are lost to the TLS
//! record layer, so the stream marks itself unusable and every later call
//! fails with [`std::io::ErrorKind::BrokenPipe`]. Close such a stream.

use std::io::{self, BufRead, Write};
use std::mem;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, ConnectionCommon, HandshakeKind, ProtocolVersion, ServerConfig,
    ServerConnection, SideData, SupportedCipherSuite,
};

use crate::error::{ErrorKind, TlsError};

/// Capacity of the ciphertext read buffer: one maximal TLS record on the wire
/// (16 KiB of plaintext, up to 2 KiB of expansion, 5 bytes of header).
pub const READ_BUFFER_SIZE: usize = 16 * 1024 + 2048 + 5;

/// The most plaintext one `write`/`writev` call accepts (the caller loops, e.g.
/// with `write_all`). This bounds the ciphertext write buffer to about as much
/// plus record overhead.
pub const MAX_WRITE_CHUNK: usize = 64 * 1024;

/// A TLS connection over a monoio `TcpStream`: server side is [`ServerStream`],
/// client side [`ClientStream`]. Implements monoio's [`AsyncReadRent`] and
/// [`AsyncWriteRent`]; `shutdown` sends a TLS `close_notify` and then shuts
/// down the write half of the socket.
pub struct TlsStream<C> {
    tcp: TcpStream,
    conn: C,
    /// Ciphertext from the socket; `rbuf[rpos..]` is not yet given to rustls.
    rbuf: Vec<u8>,
    rpos: usize,
    /// Ciphertext staged for the socket; empty between calls.
    wbuf: Vec<u8>,
    /// The socket reported end of stream.
    eof: bool,
    /// A socket operation was abandoned mid-flight: the record stream is lost.
    poisoned: bool,
}

/// The server side of a TLS connection, returned by [`accept`].
pub type ServerStream = TlsStream<ServerConnection>;
/// The client (upstream) side of a TLS connection, returned by [`connect`].
pub type ClientStream = TlsStream<ClientConnection>;

/// Performs the server handshake on an accepted TCP connection.
///
/// The handshake never blocks the thread; it has no timeout of its own: wrap
/// the call in `monoio::time::timeout`. On failure rustls' reason is in the
/// error (and a fatal alert has been sent to the peer when rustls produced
/// one); the socket is closed.
pub async fn accept(cfg: Arc<ServerConfig>, tcp: TcpStream) -> Result<ServerStream, TlsError> {
    let peer = tcp.peer_addr().ok();
    let conn = ServerConnection::new(cfg)
        .map_err(|e| TlsError::new(ErrorKind::Config, e.to_string()).with_source(e))?;
    let mut stream = TlsStream::new(tcp, conn);
    stream
        .handshake()
        .await
        .map_err(|e| TlsError::handshake(e, peer))?;
    Ok(stream)
}

/// Performs the client handshake towards `server_name` (a DNS name or an IP
/// address literal), which is sent as SNI and checked against the server's
/// certificate.
pub async fn connect(
    cfg: Arc<ClientConfig>,
    server_name: &str,
    tcp: TcpStream,
) -> Result<ClientStream, TlsError> {
    let name = ServerName::try_from(server_name.to_owned()).map_err(|e| {
        TlsError::new(
            ErrorKind::Config,
            format!("invalid server name {server_name:?}: {e}"),
        )
    })?;
    let peer = tcp.peer_addr().ok();
    let conn = ClientConnection::new(cfg, name)
        .map_err(|e| TlsError::new(ErrorKind::Config, e.to_string()).with_source(e))?;
    let mut stream = TlsStream::new(tcp, conn);
    stream
        .handshake()
        .await
        .map_err(|e| TlsError::handshake(e, peer))?;
    Ok(stream)
}

impl<C> TlsStream<C> {
    fn new(tcp: TcpStream, conn: C) -> TlsStream<C> {
        TlsStream {
            tcp,
            conn,
            rbuf: Vec::new(),
            rpos: 0,
            wbuf: Vec::new(),
            eof: false,
            poisoned: false,
        }
    }

    /// The underlying TCP stream (peer address, `set_nodelay`, raw fd...).
    /// Reading or writing it directly corrupts the TLS session.
    pub fn get_ref(&self) -> &TcpStream {
        &self.tcp
    }

    /// The rustls connection, for anything the accessors here do not cover.
    pub fn connection(&self) -> &C {
        &self.conn
    }

    /// Splits the stream into its socket and rustls connection. Ciphertext
    /// read from the socket but not yet processed (rare after a handshake;
    /// see [`TlsStream::buffered_ciphertext`]) is lost.
    pub fn into_parts(self) -> (TcpStream, C) {
        (self.tcp, self.conn)
    }

    /// Everything [`TlsStream::into_split`] needs: socket, connection, and
    /// the ciphertext read but not yet processed.
    pub(crate) fn into_raw_parts(self) -> (TcpStream, C, Vec<u8>, usize, bool) {
        (self.tcp, self.conn, self.rbuf, self.rpos, self.eof)
    }

    /// Bytes read from the socket that rustls has not consumed yet.
    pub fn buffered_ciphertext(&self) -> usize {
        self.rbuf.len() - self.rpos
    }

    /// Frees both ciphertext buffers if they hold nothing, e.g. before a
    /// long keep-alive wait; the next read or write allocates again.
    pub fn release_buffers(&mut self) {
        if self.rpos == self.rbuf.len() {
            self.rbuf = Vec::new();
            self.rpos = 0;
        }
        self.wbuf = Vec::new();
    }
}

impl ServerStream {
    /// The SNI name the client sent (lowercase), if any.
    pub fn server_name(&self) -> Option<&str> {
        self.conn.server_name()
    }
}

impl<C: std::fmt::Debug> std::fmt::Debug for TlsStream<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream")
            .field("tcp", &self.tcp)
            .field("conn", &self.conn)
            .field("buffered_ciphertext", &self.buffered_ciphertext())
            .field("eof", &self.eof)
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

impl<C> AsRawFd for TlsStream<C> {
    fn as_raw_fd(&self) -> RawFd {
        self.tcp.as_raw_fd()
    }
}

impl<C, D> TlsStream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<D>>,
    D: SideData + 'static,
{
    /// The negotiated ALPN protocol, e.g. `b"http/1.1"`.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// The negotiated protocol version (`TLSv1_2` or `TLSv1_3`).
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.conn.protocol_version()
    }

    /// The negotiated cipher suite.
    pub fn cipher_suite(&self) -> Option<SupportedCipherSuite> {
        self.conn.negotiated_cipher_suite()
    }

    /// Whether the handshake resumed an earlier session (ticket or session id).
    pub fn is_resumed(&self) -> bool {
        self.conn.handshake_kind() == Some(HandshakeKind::Resumed)
    }

    /// The peer's certificate chain, leaf first: the client's on a server
    /// stream with client authentication, the server's on a client stream.
    /// On a resumed session, the chain of the original handshake.
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.conn.peer_certificates()
    }

    /// Whether a `read` can return without waiting on the socket: decrypted
    /// plaintext is waiting in rustls, ciphertext read earlier is not yet
    /// processed, or the peer already closed. An idle keep-alive connection
    /// may wait on `get_ref().readable()` (and [`release_buffers`]) only when
    /// this is false.
    ///
    /// [`release_buffers`]: TlsStream::release_buffers
    pub fn has_buffered_input(&mut self) -> bool {
        if self.rpos < self.rbuf.len() || self.eof {
            return true;
        }
        // `Err(WouldBlock)` is the only "nothing yet" answer.
        !matches!(self.conn.reader().fill_buf(), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    fn check_usable(&self) -> io::Result<()> {
        if self.poisoned {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "TLS stream unusable: an earlier read or write was cancelled mid-operation",
            ));
        }
        Ok(())
    }

    /// Sends everything rustls has queued (handshake messages, records, alerts).
    async fn flush_tls(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            self.wbuf.clear();
            self.conn.write_tls(&mut self.wbuf)?;
            let buf = mem::take(&mut self.wbuf);
            self.poisoned = true;
            let (res, mut buf) = self.tcp.write_all(buf).await;
            self.poisoned = false;
            buf.clear();
            self.wbuf = buf;
            res?;
        }
        Ok(())
    }

    /// Gives rustls more ciphertext (buffered, or read from the socket) and
    /// processes it. At end of stream, tells rustls so.
    async fn read_tls(&mut self) -> io::Result<()> {
        if self.rpos == self.rbuf.len() && !self.eof {
            let mut buf = mem::take(&mut self.rbuf);
            buf.clear();
            buf.reserve_exact(READ_BUFFER_SIZE);
            self.poisoned = true;
            let (res, buf) = self.tcp.read(buf).await;
            self.poisoned = false;
            self.rbuf = buf;
            self.rpos = 0;
            if res? == 0 {
                self.eof = true;
            }
        }
        if self.rpos < self.rbuf.len() {
            match self.conn.read_tls(&mut &self.rbuf[self.rpos..])? {
                // rustls takes nothing after the peer's close_notify: drop the
                // rest, so the next call waits on the socket instead of spinning.
                0 => self.rpos = self.rbuf.len(),
                n => self.rpos += n,
            }
        } else if self.eof {
            // A zero-length read is how rustls learns about end of stream.
            self.conn.read_tls(&mut io::empty())?;
        }
        match self.conn.process_new_packets() {
            Ok(_) => Ok(()),
            Err(err) => {
                // rustls queued a fatal alert describing the problem: try to send it.
                let _ = self.flush_tls().await;
                Err(io::Error::new(io::ErrorKind::InvalidData, err))
            }
        }
    }

    async fn handshake(&mut self) -> io::Result<()> {
        loop {
            self.flush_tls().await?;
            if !self.conn.is_handshaking() {
                return Ok(());
            }
            if self.eof && self.rpos == self.rbuf.len() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed the connection during the TLS handshake",
                ));
            }
            self.read_tls().await?;
        }
    }

    /// Moves decrypted plaintext into `dsts` in order, reading from the
    /// socket until some is available. `Ok(0)` means the peer sent
    /// `close_notify`; end of stream without it is an `UnexpectedEof` error
    /// (a truncation the application must not trust).
    async fn read_into(&mut self, dsts: &[RawDst]) -> io::Result<usize> {
        self.check_usable()?;
        loop {
            if let Some(n) = self.take_plaintext(dsts)? {
                return Ok(n);
            }
            self.read_tls().await?;
            // Post-handshake messages (TLS 1.3 key update) may need an answer.
            self.flush_tls().await?;
        }
    }

    /// Copies what rustls has decrypted into `dsts`: `Some(n)` when it copied
    /// something or the peer closed cleanly (`n == 0`), `None` when rustls
    /// needs more ciphertext first. An error after some bytes were copied is
    /// left for the next call.
    fn take_plaintext(&mut self, dsts: &[RawDst]) -> io::Result<Option<usize>> {
        let mut reader = self.conn.reader();
        let mut total = 0;
        for dst in dsts {
            let mut filled = 0;
            while filled < dst.cap {
                let chunk = match reader.fill_buf() {
                    Ok([]) => return Ok(Some(total + filled)),
                    Ok(chunk) => chunk,
                    Err(_) if total + filled > 0 => return Ok(Some(total + filled)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                    Err(e) => return Err(e),
                };
                let len = chunk.len().min(dst.cap - filled);
                // SAFETY: `RawDst::new`'s contract: `ptr` is valid for writes of
                // `cap` bytes, and `filled + len <= cap`; rustls' buffer cannot
                // overlap memory the caller lent us.
                unsafe { std::ptr::copy_nonoverlapping(chunk.as_ptr(), dst.ptr.add(filled), len) };
                reader.consume(len);
                filled += len;
            }
            total += filled;
        }
        Ok(Some(total))
    }

    /// Encrypts up to [`MAX_WRITE_CHUNK`] bytes from `parts` and sends them.
    async fn write_plaintext<'a>(
        &mut self,
        parts: impl IntoIterator<Item = &'a [u8]>,
    ) -> io::Result<usize> {
        self.check_usable()?;
        // Anything left over from an earlier failed flush goes first.
        self.flush_tls().await?;
        let mut written = 0;
        for part in parts {
            let room = MAX_WRITE_CHUNK - written;
            let part = &part[..part.len().min(room)];
            let n = self.conn.writer().write(part)?;
            written += n;
            if n < part.len() || written == MAX_WRITE_CHUNK {
                break;
            }
        }
        self.flush_tls().await?;
        Ok(written)
    }
}

impl<C, D> AsyncReadRent for TlsStream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<D>>,
    D: SideData + 'static,
{
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        // SAFETY: `IoBufMut` guarantees `write_ptr()` is valid for writes of
        // `bytes_total()` bytes while we own `buf`, which outlives the call.
        let dst = unsafe { RawDst::new(buf.write_ptr(), buf.bytes_total()) };
        let res = self.read_into(&[dst]).await;
        if let Ok(n) = res {
            // SAFETY: `read_into` wrote the first `n` bytes.
            unsafe { buf.set_init(n) };
        }
        (res, buf)
    }

    async fn readv<T: IoVecBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        let (ptr, count) = (buf.write_iovec_ptr(), buf.write_iovec_len());
        // SAFETY: `IoVecBufMut` guarantees `count` valid iovecs at `ptr`, each
        // writable for `iov_len` bytes while we own `buf`.
        let dsts: Vec<RawDst> = unsafe { std::slice::from_raw_parts(ptr, count) }
            .iter()
            .map(|iov| unsafe { RawDst::new(iov.iov_base.cast::<u8>(), iov.iov_len) })
            .collect();
        let res = self.read_into(&dsts).await;
        if let Ok(n) = res {
            // SAFETY: `read_into` filled the iovecs in order with `n` bytes.
            unsafe { buf.set_init(n) };
        }
        (res, buf)
    }
}

/// Caller memory that plaintext is copied into; possibly uninitialised, so
/// it is written through the raw pointer and never viewed as a slice.
struct RawDst {
    ptr: *mut u8,
    cap: usize,
}

impl RawDst {
    /// # Safety
    /// `ptr` must be valid for writes of `cap` bytes for as long as the
    /// `RawDst` is used.
    unsafe fn new(ptr: *mut u8, cap: usize) -> RawDst {
        RawDst { ptr, cap }
    }
}

impl<C, D> AsyncWriteRent for TlsStream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<D>>,
    D: SideData + 'static,
{
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: `IoBuf` guarantees `bytes_init()` initialised bytes at
        // `read_ptr()` while we own `buf`; the slice does not outlive it.
        let src = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        let res = self.write_plaintext([src]).await;
        (res, buf)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: `IoVecBuf` guarantees `read_iovec_len()` valid iovecs at
        // `read_iovec_ptr()`, each readable for `iov_len` bytes, while we own `buf`.
        let iovecs =
            unsafe { std::slice::from_raw_parts(buf.read_iovec_ptr(), buf.read_iovec_len()) };
        let parts = iovecs.iter().map(|iov| {
            // SAFETY: as above, for each iovec.
            unsafe {
                std::slice::from_raw_parts(iov.iov_base.cast::<u8>().cast_const(), iov.iov_len)
            }
        });
        let res = self.write_plaintext(parts).await;
        (res, buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.check_usable()?;
        self.flush_tls().await?;
        self.tcp.flush().await
    }

    /// Sends `close_notify`, then shuts down the socket's write half. The
    /// read half stays open: the caller may still drain the peer's data.
    async fn shutdown(&mut self) -> io::Result<()> {
        self.check_usable()?;
        self.conn.send_close_notify();
        self.flush_tls().await?;
        self.tcp.shutdown().await
    }
}
