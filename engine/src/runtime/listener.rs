//! Listening sockets: one per worker and address, all sharing the port with
//! SO_REUSEPORT so the kernel spreads connections across workers.

use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{SocketAddr, TcpListener};

/// How long [`ensure_free`] keeps trying a port that is in use. A ringway
/// that has just exited still holds its listening sockets for a few
/// milliseconds (3–10 ms measured here): the kernel tears down a process's
/// io_uring, and the accept operations pending on it, after the process is
/// gone. A restart right after a stop must not fail on that.
const IN_USE_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// Fails if another process already listens on `addr`.
///
/// Our own listeners use SO_REUSEPORT, which would let a second ringway (or
/// anything else running as the same user with SO_REUSEPORT) silently share
/// the port. A plain bind without SO_REUSEPORT fails in that case, so we try
/// one first and close it again (for up to [`IN_USE_GRACE`] while the port
/// is in use).
pub fn ensure_free(addr: SocketAddr) -> io::Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    let until = std::time::Instant::now() + IN_USE_GRACE;
    loop {
        match probe_bind(addr) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && std::time::Instant::now() < until => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            done => return done,
        }
    }
}

fn probe_bind(addr: SocketAddr) -> io::Result<()> {
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    probe.set_reuse_address(true)?;
    if addr.is_ipv6() {
        probe.set_only_v6(true)?;
    }
    probe.bind(&addr.into()).map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            io::Error::new(
                e.kind(),
                format!("{addr} is already in use by another process"),
            )
        } else {
            io::Error::new(e.kind(), format!("cannot bind {addr}: {e}"))
        }
    })
}

/// Binds one worker's listener.
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    // Accepted sockets inherit TCP_NODELAY from the listener on Linux.
    sock.set_tcp_nodelay(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind {addr}: {e}")))?;
    sock.listen(backlog.min(i32::MAX as u32) as i32)?;
    Ok(sock.into())
}

/// Binds `workers` listeners for every address. A port-0 address gets a
/// port from the kernel on the first bind; the rest join that port.
/// Returns the listeners per worker and the concrete addresses.
pub fn bind_all(
    addrs: &[SocketAddr],
    workers: usize,
    backlog: u32,
) -> io::Result<(Vec<Vec<TcpListener>>, Vec<SocketAddr>)> {
    let mut per_worker: Vec<Vec<TcpListener>> = (0..workers).map(|_| Vec::new()).collect();
    let mut bound = Vec::new();
    for &addr in addrs {
        ensure_free(addr)?;
        let first = bind(addr, backlog)?;
        let actual = first.local_addr()?;
        per_worker[0].push(first);
        for list in per_worker.iter_mut().skip(1) {
            list.push(bind(actual, backlog)?);
        }
        bound.push(actual);
    }
    Ok((per_worker, bound))
}
