//! The per-worker upstream connection pool: pinned keep-alive connections,
//! LIFO reuse, bounded per target, expired by idle time. Never shared across
//! threads, so no locks.
//!
//! Connections to an upstream with `send_proxy_protocol` began with a
//! header naming one client: they carry that client's address as their key
//! and are reused only for requests from the same address.

use super::stream::Upstream as TcpStream;
use crate::sys::{Peek, peek_idle};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// A connection idle for less than this is reused without the staleness
/// peek (one `recvfrom` syscall, outside io_uring, per reuse — about a
/// tenth of a keep-alive request's CPU). Upstreams close idle keep-alive
/// connections after seconds (nginx 60 s, Node.js 5 s), or say
/// `Connection: close` on the last response (which is never pooled), so a
/// close within the first millisecond is a crash or a restart: the same
/// race the peek itself leaves open between the check and the write, and
/// the retry of idempotent requests covers it.
pub const PEEK_AFTER: Duration = Duration::from_millis(1);

struct Idle {
    stream: TcpStream,
    since: Instant,
    /// The client its PROXY header named; `None` for upstreams without one.
    client: Option<IpAddr>,
}

#[derive(Default)]
pub struct Pool {
    /// Indexed by `Target::id`.
    idle: Vec<Vec<Idle>>,
    pub hits: u64,
    pub misses: u64,
    pub discarded: u64,
}

impl Pool {
    pub fn new(targets: usize) -> Self {
        Pool {
            idle: (0..targets).map(|_| Vec::new()).collect(),
            ..Default::default()
        }
    }

    /// The most recently used live connection to `target` keyed `client`, if any.
    pub fn take(
        &mut self,
        target: usize,
        idle_timeout: Duration,
        client: Option<IpAddr>,
    ) -> Option<TcpStream> {
        let now = Instant::now();
        let list = self.idle.get_mut(target)?;
        while let Some(i) = list.iter().rposition(|c| c.client == client) {
            let c = list.remove(i);
            let idle = now.duration_since(c.since);
            // A TLS connection may hold session tickets the server sent after
            // the handshake: a peek cannot tell those from a stray response.
            let live = idle < PEEK_AFTER
                || c.stream.is_tls()
                || peek_idle(c.stream.as_raw_fd()) == Peek::Idle;
            if idle < idle_timeout && live {
                self.hits += 1;
                return Some(c.stream);
            }
            self.discarded += 1;
        }
        self.misses += 1;
        None
    }

    pub fn put(
        &mut self,
        target: usize,
        stream: TcpStream,
        max_idle: usize,
        client: Option<IpAddr>,
    ) {
        if let Some(list) = self.idle.get_mut(target)
            && list.len() < max_idle
        {
            list.push(Idle {
                stream,
                since: Instant::now(),
                client,
            });
        }
    }

    /// Closes connections idle longer than `idle_timeout(target)`.
    pub fn sweep(&mut self, idle_timeout: impl Fn(usize) -> Duration) {
        let now = Instant::now();
        for (t, list) in self.idle.iter_mut().enumerate() {
            let limit = idle_timeout(t);
            let before = list.len();
            // Oldest first: LIFO keeps the freshest at the back.
            list.retain(|c| now.duration_since(c.since) < limit);
            self.discarded += (before - list.len()) as u64;
        }
    }

    /// Closes every idle connection to `target` (taken out by health or outlier detection).
    pub fn close_target(&mut self, target: usize) {
        if let Some(list) = self.idle.get_mut(target) {
            self.discarded += list.len() as u64;
            list.clear();
        }
    }

    /// Idle connections to any of `targets`.
    pub fn idle_among(&self, targets: impl Iterator<Item = usize>) -> usize {
        targets.filter_map(|t| self.idle.get(t)).map(Vec::len).sum()
    }

    /// Closes the oldest idle connection to any of `targets`; whether there was one.
    pub fn evict_among(&mut self, targets: impl Iterator<Item = usize>) -> bool {
        let oldest = targets
            .filter_map(|t| Some((t, self.idle.get(t)?.first()?.since)))
            .min_by_key(|&(_, since)| since);
        match oldest {
            Some((t, _)) => {
                self.idle[t].remove(0);
                self.discarded += 1;
                true
            }
            None => false,
        }
    }

    pub fn idle_count(&self) -> usize {
        self.idle.iter().map(Vec::len).sum()
    }

    /// Re-indexes the pool for a new snapshot's targets: idle connections to
    /// an address that is still a target are kept, the rest are closed.
    pub fn remap(&mut self, old: &[std::net::SocketAddr], new: &[std::net::SocketAddr]) {
        let mut idle: Vec<Vec<Idle>> = (0..new.len()).map(|_| Vec::new()).collect();
        for (i, list) in std::mem::take(&mut self.idle).into_iter().enumerate() {
            match old.get(i).and_then(|a| new.iter().position(|b| b == a)) {
                Some(j) => idle[j].extend(list),
                None => self.discarded += list.len() as u64,
            }
        }
        self.idle = idle;
    }
}
