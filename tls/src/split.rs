//! A TLS stream split into a read half and a write half, for tunnels that
//! move bytes both ways at once (WebSocket over TLS).
//!
//! Each half owns its side of the socket and its own ciphertext buffer; the
//! rustls connection between them is shared through an `Rc<RefCell<_>>`
//! that is only ever borrowed between awaits, never across one, so the
//! halves can be driven by two concurrent futures on one thread.
//!
//! Records the read side must answer (a TLS 1.3 `KeyUpdate` request) are
//! queued by rustls and sent by the write half before its next record, or
//! when it shuts down.

use std::cell::RefCell;
use std::io::{self, BufRead, Write};
use std::mem;
use std::ops::{Deref, DerefMut};
use std::rc::Rc;

use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable,
};
use monoio::net::TcpStream;
use rustls::{ConnectionCommon, SideData};

use crate::stream::{READ_BUFFER_SIZE, TlsStream};

/// The reading half of a split [`TlsStream`].
pub struct TlsReadHalf<C> {
    tcp: OwnedReadHalf<TcpStream>,
    conn: Rc<RefCell<C>>,
    rbuf: Vec<u8>,
    rpos: usize,
    eof: bool,
}

/// The writing half of a split [`TlsStream`].
pub struct TlsWriteHalf<C> {
    tcp: OwnedWriteHalf<TcpStream>,
    conn: Rc<RefCell<C>>,
    wbuf: Vec<u8>,
}

impl<C> TlsStream<C> {
    /// Splits the stream for concurrent reading and writing. Ciphertext
    /// already read but not yet processed stays with the read half.
    pub fn into_split(self) -> (TlsReadHalf<C>, TlsWriteHalf<C>) {
        let (tcp, conn, rbuf, rpos, eof) = self.into_raw_parts();
        let (r, w) = tcp.into_split();
        let conn = Rc::new(RefCell::new(conn));
        (
            TlsReadHalf {
                tcp: r,
                conn: Rc::clone(&conn),
                rbuf,
                rpos,
                eof,
            },
            TlsWriteHalf {
                tcp: w,
                conn,
                wbuf: Vec::new(),
            },
        )
    }
}

impl<C, D> TlsReadHalf<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<D>>,
    D: SideData + 'static,
{
    /// Reads decrypted bytes onto the end of `buf` (up to its spare
    /// capacity, at least 1 KiB made room for). `Ok(0)`: the peer sent
    /// `close_notify`; end of stream without it is an `UnexpectedEof` error.
    pub async fn read_into(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(16 * 1024);
        }
        loop {
            if let Some(n) = self.take_plaintext(buf)? {
                return Ok(n);
            }
            if self.rpos == self.rbuf.len() && !self.eof {
                let mut owned = mem::take(&mut self.rbuf);
                owned.clear();
                owned.reserve_exact(READ_BUFFER_SIZE);
                let (res, owned) = self.tcp.read(owned).await;
                self.rbuf = owned;
                self.rpos = 0;
                if res? == 0 {
                    self.eof = true;
                }
            }
            let mut conn = self.conn.borrow_mut();
            if self.rpos < self.rbuf.len() {
                match conn.read_tls(&mut &self.rbuf[self.rpos..])? {
                    0 => self.rpos = self.rbuf.len(),
                    n => self.rpos += n,
                }
            } else if self.eof {
                conn.read_tls(&mut io::empty())?;
            }
            conn.process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        }
    }

    fn take_plaintext(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
        let mut conn = self.conn.borrow_mut();
        let mut reader = conn.reader();
        match reader.fill_buf() {
            Ok(chunk) => {
                let n = chunk.len().min(buf.capacity() - buf.len());
                buf.extend_from_slice(&chunk[..n]);
                reader.consume(n);
                Ok(Some(n))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl<C, D> TlsWriteHalf<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<D>>,
    D: SideData + 'static,
{
    /// Encrypts and sends all of `data`.
    pub async fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = self.conn.borrow_mut().writer().write(data)?;
            data = &data[n..];
            self.flush().await?;
        }
        self.flush().await
    }

    /// Sends `close_notify`, then shuts down the socket's write half.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.conn.borrow_mut().send_close_notify();
        self.flush().await?;
        self.tcp.shutdown().await
    }

    /// Sends every record rustls has queued, including answers the read
    /// half's records asked for.
    async fn flush(&mut self) -> io::Result<()> {
        loop {
            self.wbuf.clear();
            {
                let mut conn = self.conn.borrow_mut();
                if !conn.wants_write() {
                    return Ok(());
                }
                conn.write_tls(&mut self.wbuf)?;
            }
            let owned = mem::take(&mut self.wbuf);
            let (res, owned) = self.tcp.write_all(owned).await;
            self.wbuf = owned;
            res?;
        }
    }
}
