//! The tunnel an upgraded connection becomes (a 101 from the upstream on a
//! `websocket` route): both directions relayed until both sides have closed
//! or nothing moved either way for `tunnel_idle`. Plain sockets only.

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
    pub active: Active,
}

/// Relays an upgraded connection both ways until either side is done.
pub async fn tunnel(w: &Worker, client: Client, t: Box<Handover>) {
    let Handover {
        upstream,
        upstream_pending,
        active,
    } = *t;
    let idle = w.snapshot().timeouts.tunnel_idle;
    // Upgrades are only let through between plain sockets (`choose_target`).
    if let (Client::Plain(c), UpConn::Plain(u)) = (client, upstream) {
        splice_both_ways(&w.pools, c, u, (&active.rbuf, &upstream_pending), idle).await;
    }
    w.put_active(active);
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
    let watchdog = async {
        loop {
            let quiet = last.get().elapsed();
            if quiet >= idle {
                return;
            }
            monoio::time::sleep(idle - quiet).await;
        }
    };
    monoio::select! {
        _ = async { monoio::join!(up, down) } => {}
        _ = watchdog => {}
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
