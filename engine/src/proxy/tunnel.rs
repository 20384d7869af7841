//! The tunnel an upgraded connection becomes (a 101 from the upstream on a
//! `websocket` route): both directions relayed until both sides have closed
//! or nothing moved either way for `tunnel_idle`. Between two plain sockets
//! the bytes move by splice(2); when either side is TLS, each connection is
//! split into a read half and a write half (`ringway_tls::TlsStream::into_split`)
//! and the bytes are copied through rustls, with the same idle rule.

use super::local::{Active, Pools, Worker};
use super::relay::{PIPE_CHUNK, write_all};
use super::stream::{Client, Upstream as UpConn};
use monoio::buf::IoBufMut;
use monoio::io::splice::{SpliceDestination, SpliceSource};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

/// What a connection turning into a tunnel hands over: the upstream
/// connection, what it sent after the 101 head, and the busy state (whose
/// read buffer holds what the client sent after its request).
pub struct Handover {
    pub upstream: UpConn,
    pub upstream_pending: Vec<u8>,
    pub active: Box<Active>,
}

/// Relays an upgraded connection both ways until either side is done.
pub async fn tunnel(w: &Worker, client: Client, t: Box<Handover>) {
    let Handover {
        upstream,
        upstream_pending,
        active,
    } = *t;
    let idle = w.snapshot().timeouts.tunnel_idle;
    let pending = (&active.rbuf[..], &upstream_pending[..]);
    match (client, upstream) {
        (Client::Plain(c), UpConn::Plain(u)) => {
            splice_both_ways(&w.pools, c, u, pending, idle).await;
        }
        (client, upstream) => {
            let (cr, cw) = halves::client(client);
            let (ur, uw) = halves::upstream(upstream);
            let run = copy_both_ways(&w.pools, (cr, cw), (ur, uw), pending, idle);
            // Boxed: TLS tunnels are rare; their state stays out of other futures.
            Box::pin(run).await;
        }
    }
    w.actives.put(active);
}

/// Like [`splice_both_ways`], for tunnels with TLS on either side: bytes are
/// copied through the halves of each connection.
async fn copy_both_ways(
    pools: &Pools,
    (mut cr, mut cw): (halves::Reader, halves::Writer),
    (mut ur, mut uw): (halves::Reader, halves::Writer),
    (client_pending, upstream_pending): (&[u8], &[u8]),
    idle: std::time::Duration,
) {
    let first = async {
        uw.write_all(client_pending).await?;
        cw.write_all(upstream_pending).await
    };
    if !matches!(monoio::time::timeout(idle, first).await, Ok(Ok(()))) {
        return;
    }
    let last = std::cell::Cell::new(std::time::Instant::now());
    let up = async {
        copy_one_way(pools, &mut cr, &mut uw, &last).await;
        // The client finished sending: pass that on, keep the other direction.
        let _ = uw.shutdown().await;
    };
    let down = async {
        copy_one_way(pools, &mut ur, &mut cw, &last).await;
        let _ = cw.shutdown().await;
    };
    monoio::select! {
        _ = async { monoio::join!(up, down) } => {}
        _ = watchdog(&last, idle) => {}
    }
}

/// Copies from `src` to `dst` until end of stream or an error.
async fn copy_one_way(
    pools: &Pools,
    src: &mut halves::Reader,
    dst: &mut halves::Writer,
    last: &std::cell::Cell<std::time::Instant>,
) {
    let mut buf = pools.take_buf();
    loop {
        buf.clear();
        match src.read_into(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        last.set(std::time::Instant::now());
        if dst.write_all(&buf).await.is_err() {
            break;
        }
    }
    pools.put_buf(buf);
}

/// Ends when nothing has moved either way for `idle`.
async fn watchdog(last: &std::cell::Cell<std::time::Instant>, idle: std::time::Duration) {
    loop {
        let quiet = last.get().elapsed();
        if quiet >= idle {
            return;
        }
        monoio::time::sleep(idle - quiet).await;
    }
}

/// The two halves of a client or upstream connection, plain or TLS (also
/// what an HTTP/2 connection reads and writes through, `crate::h2::conn`).
pub(crate) mod halves {
    use super::super::stream::{Client, Upstream};
    use monoio::buf::IoBufMut;
    use monoio::io::{
        AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable,
    };
    use monoio::net::TcpStream;
    use ringway_tls::rustls::{ClientConnection, ServerConnection};
    use ringway_tls::{TlsReadHalf, TlsWriteHalf};
    use std::io;

    pub enum Reader {
        Plain(OwnedReadHalf<TcpStream>),
        Server(TlsReadHalf<ServerConnection>),
        Client(TlsReadHalf<ClientConnection>),
    }

    pub enum Writer {
        Plain(OwnedWriteHalf<TcpStream>),
        Server(TlsWriteHalf<ServerConnection>),
        Client(TlsWriteHalf<ClientConnection>),
    }

    pub fn client(c: Client) -> (Reader, Writer) {
        match c {
            Client::Plain(s) => {
                let (r, w) = s.into_split();
                (Reader::Plain(r), Writer::Plain(w))
            }
            Client::Tls(s) => {
                let (r, w) = s.into_split();
                (Reader::Server(r), Writer::Server(w))
            }
            // Streams never upgrade: their request heads carry no Upgrade.
            Client::H2(_) => unreachable!("an HTTP/2 stream is never split"),
        }
    }

    pub fn upstream(u: Upstream) -> (Reader, Writer) {
        match u {
            Upstream::Plain(s) => {
                let (r, w) = s.into_split();
                (Reader::Plain(r), Writer::Plain(w))
            }
            Upstream::Tls(s) => {
                let (r, w) = s.into_split();
                (Reader::Client(r), Writer::Client(w))
            }
        }
    }

    impl Reader {
        /// Reads onto the end of `buf` (within its capacity); `Ok(0)` at the end.
        pub async fn read_into(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
            match self {
                Reader::Plain(r) => {
                    let owned = std::mem::take(buf);
                    let (len, cap) = (owned.len(), owned.capacity());
                    let (res, slice) = r.read(owned.slice_mut(len..cap)).await;
                    *buf = slice.into_inner();
                    res
                }
                Reader::Server(r) => r.read_into(buf).await,
                Reader::Client(r) => r.read_into(buf).await,
            }
        }
    }

    impl Writer {
        pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
            if data.is_empty() {
                return Ok(());
            }
            match self {
                Writer::Plain(w) => w.write_all(data.to_vec()).await.0.map(drop),
                Writer::Server(w) => w.write_all(data).await,
                Writer::Client(w) => w.write_all(data).await,
            }
        }

        /// Writes all of `buf`, handing it back (plain sockets write it
        /// without a copy).
        pub async fn write_owned(&mut self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
            match self {
                Writer::Plain(w) => {
                    let (r, b) = w.write_all(buf).await;
                    (r.map(drop), b)
                }
                Writer::Server(w) => (w.write_all(&buf).await, buf),
                Writer::Client(w) => (w.write_all(&buf).await, buf),
            }
        }

        /// Passes end of stream on (TLS: `close_notify`, then FIN).
        pub async fn shutdown(&mut self) -> io::Result<()> {
            match self {
                Writer::Plain(w) => w.shutdown().await,
                Writer::Server(w) => w.shutdown().await,
                Writer::Client(w) => w.shutdown().await,
            }
        }
    }
}

/// Runs an upgraded connection (after a 101) as a bidirectional tunnel until
/// both sides have closed or nothing moved either way for `idle`. Bytes
/// already read past either head are delivered first; the rest moves by
/// splice(2) when pipes are available, else by copy.
async fn splice_both_ways(
    pools: &Pools,
    client: TcpStream,
    upstream: TcpStream,
    (client_pending, upstream_pending): (&[u8], &[u8]),
    idle: std::time::Duration,
) {
    use monoio::io::Splitable;
    use std::os::fd::AsRawFd;
    let (cfd, ufd) = (client.as_raw_fd(), upstream.as_raw_fd());
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = upstream.into_split();
    let mut first = client_pending.to_vec();
    if !first.is_empty() && write_all(&mut uw, &mut first, idle).await.is_err() {
        return;
    }
    let mut first = upstream_pending.to_vec();
    if !first.is_empty() && write_all(&mut cw, &mut first, idle).await.is_err() {
        return;
    }
    let last = std::cell::Cell::new(std::time::Instant::now());
    let up = async {
        pump(pools, &mut cr, &mut uw, &last).await;
        // The client finished sending: pass its FIN on, keep the other direction.
        crate::sys::shutdown_write(ufd);
    };
    let down = async {
        pump(pools, &mut ur, &mut cw, &last).await;
        crate::sys::shutdown_write(cfd);
    };
    monoio::select! {
        _ = async { monoio::join!(up, down) } => {}
        _ = watchdog(&last, idle) => {}
    }
}

/// Moves bytes one way until end of stream or error, marking activity in `last`.
async fn pump<R, W>(
    pools: &Pools,
    src: &mut R,
    dst: &mut W,
    last: &std::cell::Cell<std::time::Instant>,
) where
    R: AsyncReadRent + SpliceSource,
    W: AsyncWriteRent + SpliceDestination,
{
    if let Ok((mut rd, mut wr)) = pools.take_pipe() {
        loop {
            let n = match src.splice_to_pipe(&mut wr, PIPE_CHUNK as u32).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            last.set(std::time::Instant::now());
            let mut left = n;
            while left > 0 {
                match dst.splice_from_pipe(&mut rd, left).await {
                    Ok(0) | Err(_) => return,
                    Ok(m) => left -= m,
                }
            }
            pools.count_spliced(u64::from(n));
        }
    }
    let mut buf = pools.take_buf();
    loop {
        buf.clear();
        let owned = std::mem::take(&mut buf);
        let cap = owned.capacity();
        let (res, slice) = src.read(owned.slice_mut(0..cap)).await;
        buf = slice.into_inner();
        match res {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        last.set(std::time::Instant::now());
        let (res, b) = dst.write_all(buf).await;
        buf = b;
        if res.is_err() {
            break;
        }
    }
    pools.put_buf(buf);
}
