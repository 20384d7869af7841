//! The kinds of connection ringway talks over: plain TCP, TLS over TCP,
//! and (clients only) one HTTP/2 stream, which the exchange reads and
//! writes as if it were an HTTP/1.1 connection (`crate::h2::io`). One enum
//! per side so the connection code is written once; splice(2) is offered
//! only where both ends are plain sockets.
//!
//! The TLS arms box their I/O futures (one small allocation per TLS read or
//! write, next to the cost of the cryptography): inlined, they would make the
//! future of *every* connection, plain ones included, larger — and an idle
//! keep-alive connection costs exactly its future.

use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};

macro_rules! stream_enum {
    ($(#[$doc:meta])* $name:ident, $tls:ty $(, $extra:ident($xt:ty))?) => {
        $(#[$doc])*
        pub enum $name {
            Plain(TcpStream),
            Tls(Box<$tls>),
            $($extra(Box<$xt>),)?
        }

        impl $name {
            /// The plain socket, where splice(2) may be used.
            pub fn plain(&mut self) -> Option<&mut TcpStream> {
                match self {
                    $name::Plain(s) => Some(s),
                    _ => None,
                }
            }

            pub fn is_tls(&self) -> bool {
                match self {
                    $name::Plain(_) => false,
                    $name::Tls(_) => true,
                    $($name::$extra(s) => s.is_tls(),)?
                }
            }

            /// The address this end of the connection has.
            pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
                match self {
                    $name::Plain(s) => s.local_addr(),
                    $name::Tls(s) => s.get_ref().local_addr(),
                    $($name::$extra(s) => Ok(s.local_addr()),)?
                }
            }
        }

        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> RawFd {
                match self {
                    $name::Plain(s) => s.as_raw_fd(),
                    $name::Tls(s) => s.get_ref().as_raw_fd(),
                    $($name::$extra(s) => s.as_raw_fd(),)?
                }
            }
        }

        impl AsyncReadRent for $name {
            async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
                match self {
                    $name::Plain(s) => s.read(buf).await,
                    $name::Tls(s) => Box::pin(s.read(buf)).await,
                    $($name::$extra(s) => s.read(buf).await,)?
                }
            }
            async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
                match self {
                    $name::Plain(s) => s.readv(buf).await,
                    $name::Tls(s) => Box::pin(s.readv(buf)).await,
                    $($name::$extra(s) => s.readv(buf).await,)?
                }
            }
        }

        impl AsyncWriteRent for $name {
            async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
                match self {
                    $name::Plain(s) => s.write(buf).await,
                    $name::Tls(s) => Box::pin(s.write(buf)).await,
                    $($name::$extra(s) => Box::pin(s.write(buf)).await,)?
                }
            }
            async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
                match self {
                    $name::Plain(s) => s.writev(buf).await,
                    $name::Tls(s) => Box::pin(s.writev(buf)).await,
                    $($name::$extra(s) => s.writev(buf).await,)?
                }
            }
            async fn flush(&mut self) -> std::io::Result<()> {
                match self {
                    $name::Plain(s) => s.flush().await,
                    $name::Tls(s) => Box::pin(s.flush()).await,
                    $($name::$extra(s) => s.flush().await,)?
                }
            }
            async fn shutdown(&mut self) -> std::io::Result<()> {
                match self {
                    $name::Plain(s) => s.shutdown().await,
                    $name::Tls(s) => Box::pin(s.shutdown()).await,
                    $($name::$extra(s) => s.shutdown().await,)?
                }
            }
        }
    };
}

stream_enum!(
    /// A client (downstream) connection, or one HTTP/2 stream of one.
    Client,
    ringway_tls::ServerStream,
    H2(crate::h2::io::StreamIo)
);

stream_enum!(
    /// An upstream connection.
    Upstream,
    ringway_tls::ClientStream
);

impl Upstream {
    /// The TCP socket underneath (for readiness waits and socket options).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Upstream::Plain(s) => s,
            Upstream::Tls(s) => s.get_ref(),
        }
    }
}

impl Client {
    /// Waits until the client sends something, holding no TLS buffers meanwhile.
    ///
    /// Not `relaxed`: on io_uring it makes no difference (a poll operation
    /// either way), but on the epoll driver a relaxed wait returns at once
    /// after any read that did not end in `EAGAIN` — every keep-alive
    /// request — so the idle connection would sit in its next head read
    /// instead (holding a request buffer, closed by `header_read` rather
    /// than `keepalive_idle`, never parked).
    pub async fn wait_readable(&mut self) -> std::io::Result<()> {
        match self {
            // A stream's task never waits between requests.
            Client::H2(_) => Ok(()),
            Client::Plain(s) => s.readable(false).await,
            Client::Tls(s) => {
                if s.has_buffered_input() {
                    return Ok(());
                }
                s.release_buffers();
                s.get_ref().readable(false).await
            }
        }
    }
}
