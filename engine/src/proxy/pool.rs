//! The per-worker upstream connection pool: pinned keep-alive connections,
//! LIFO reuse, bounded per target, expired by idle time. Never shared across
//! threads, so no locks.
//!
//! Connections to an upstream with `send_proxy_protocol` began with a
//! header naming one client: they carry that client's address as their key
//! and are reused only for requests from the same address.
//!
//! Staleness: every upstream socket is registered, once, the first time
//! it goes into the pool, in the pool's epoll set, watched for the peer's
//! FIN or RST only ([`Watch::add_for_close`]; a close that came before
//! is reported at once). Connections never pooled (the upstream said
//! `Connection: close`) are never registered. The worker's watcher task
//! (`runtime::worker`) hands each close to [`Pool::closed_by_peer`], which
//! drops the connection if it is idle here, or remembers it so that
//! [`Pool::put`] drops it when its exchange ends. Taking a pooled
//! connection therefore costs no system call; the sockets carrying traffic
//! never wake the watcher (the set ignores bytes). Without the set (it
//! could not be created), a connection idle for [`PEEK_AFTER`] or more is
//! checked with a `recv(MSG_PEEK)` before reuse instead.

use super::stream::Upstream as TcpStream;
use crate::sys::{Peek, Watch, peek_idle};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// Without the close watch: a connection idle for less than this is reused
/// without the staleness peek (one `recvfrom` syscall, outside io_uring, per
/// reuse — about a tenth of a keep-alive request's CPU). Upstreams close
/// idle keep-alive connections after seconds (nginx 60 s, Node.js 5 s), or
/// say `Connection: close` on the last response (which is never pooled), so
/// a close within the first millisecond is a crash or a restart: the same
/// race the peek itself leaves open between the check and the write, and
/// the retry of idempotent requests covers it.
pub const PEEK_AFTER: Duration = Duration::from_millis(1);

/// Most sockets remembered as closed by the peer while in use (see
/// [`Pool::closed_by_peer`]); the oldest is forgotten beyond this.
const CLOSED_IN_USE_MAX: usize = 256;

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
    /// Every open upstream socket, watched for the peer closing it (`None`:
    /// the set could not be created or a socket could not be added; the
    /// pool then peeks before reuse).
    closes: Option<Watch>,
    /// Descriptors of sockets the peer closed while an exchange held them
    /// (not in `idle`): [`Pool::put`] drops them instead of pooling them.
    /// A descriptor leaves the list when a new upstream socket opens under
    /// the same number ([`Pool::opened`]).
    closed_in_use: Vec<RawFd>,
    /// Indexed by descriptor: the upstream socket now open under that
    /// number is in the epoll set (reset by [`Pool::opened`]).
    watched: Vec<bool>,
    /// Reused for reading the set in [`Pool::read_closes`].
    scratch: Vec<u64>,
    pub hits: u64,
    pub misses: u64,
    pub discarded: u64,
    /// Idle connections dropped because the upstream closed or reset them.
    pub closed_idle: u64,
}

impl Pool {
    pub fn new(targets: usize) -> Self {
        let closes = match Watch::new() {
            Ok(watch) => Some(watch),
            Err(e) => {
                tracing::warn!(
                    "cannot watch upstream connections for closes ({e}): pooled ones are peeked before reuse"
                );
                None
            }
        };
        Pool {
            idle: (0..targets).map(|_| Vec::new()).collect(),
            closes,
            ..Default::default()
        }
    }

    /// A new upstream socket was opened under `fd`: whatever the pool knew
    /// about an earlier socket with that number no longer applies. No
    /// system call (the socket is registered when first pooled).
    pub fn opened(&mut self, fd: RawFd) {
        if !self.closed_in_use.is_empty() {
            self.closed_in_use.retain(|&f| f != fd);
        }
        if let Some(w) = usize::try_from(fd)
            .ok()
            .and_then(|i| self.watched.get_mut(i))
        {
            *w = false;
        }
    }

    /// Registers the socket `fd`, about to be pooled, for close detection
    /// unless it already is (on failure the pool falls back to peeking).
    /// False if the upstream has already closed it. On registration the
    /// set is read at once (one `epoll_wait`, once per connection): a close
    /// that came during the connection's first exchange is then known now,
    /// not when the watcher task next runs.
    fn watch(&mut self, fd: RawFd) -> bool {
        let (Some(closes), Ok(i)) = (&self.closes, usize::try_from(fd)) else {
            return true;
        };
        if self.watched.get(i).copied().unwrap_or(false) {
            return true;
        }
        if let Err(e) = closes.add_for_close(fd, fd as u64) {
            tracing::warn!(
                "cannot watch an upstream connection for closes ({e}): pooled ones are peeked before reuse from now on"
            );
            self.stop_watching();
            return true;
        }
        if self.watched.len() <= i {
            self.watched.resize(i + 1, false);
        }
        self.watched[i] = true;
        self.read_closes();
        // Not pooled yet, so a close of it was remembered as "in use".
        match self.closed_in_use.iter().position(|&f| f == fd) {
            Some(at) => {
                self.closed_in_use.swap_remove(at);
                false
            }
            None => true,
        }
    }

    /// What the watcher task waits on (`None`: no close watch).
    pub fn close_waiter(&self) -> Option<std::io::Result<monoio::net::TcpStream>> {
        self.closes.as_ref().map(Watch::waiter)
    }

    /// Reads the close watch without waiting and hands every socket the
    /// upstream closed since the last read to [`Pool::closed_by_peer`].
    pub fn read_closes(&mut self) {
        let Some(closes) = &self.closes else { return };
        let mut closed = std::mem::take(&mut self.scratch);
        closes.ready(&mut closed);
        for &fd in &closed {
            self.closed_by_peer(fd as RawFd);
        }
        closed.clear();
        self.scratch = closed;
    }

    /// The watcher could not go on: fall back to peeking.
    pub fn stop_watching(&mut self) {
        self.closes = None;
        self.closed_in_use.clear();
        self.watched.clear();
    }

    /// The upstream closed or reset the socket `fd`: drop it if it is idle
    /// here, else remember it for [`Pool::put`].
    fn closed_by_peer(&mut self, fd: RawFd) {
        for list in &mut self.idle {
            if let Some(i) = list.iter().position(|c| c.stream.as_raw_fd() == fd) {
                list.remove(i);
                self.discarded += 1;
                self.closed_idle += 1;
                return;
            }
        }
        if !self.closed_in_use.contains(&fd) {
            if self.closed_in_use.len() == CLOSED_IN_USE_MAX {
                self.closed_in_use.remove(0);
            }
            self.closed_in_use.push(fd);
        }
    }

    /// The most recently used live connection to `target` keyed `client`, if any.
    pub fn take(
        &mut self,
        target: usize,
        idle_timeout: Duration,
        client: Option<IpAddr>,
    ) -> Option<TcpStream> {
        let now = crate::clock::now();
        let list = self.idle.get_mut(target)?;
        while let Some(i) = list.iter().rposition(|c| c.client == client) {
            let c = list.remove(i);
            let idle = now.duration_since(c.since);
            // Watched: a close would have removed it already. Otherwise
            // peek; but a TLS connection may hold session tickets the server
            // sent after the handshake, which a peek cannot tell from a
            // stray response.
            let live = self.closes.is_some()
                || idle < PEEK_AFTER
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
        if !self.closed_in_use.is_empty() {
            let fd = stream.as_raw_fd();
            if let Some(i) = self.closed_in_use.iter().position(|&f| f == fd) {
                self.closed_in_use.swap_remove(i);
                self.discarded += 1;
                return;
            }
        }
        if self
            .idle
            .get(target)
            .is_none_or(|list| list.len() >= max_idle)
        {
            return;
        }
        if !self.watch(stream.as_raw_fd()) {
            self.discarded += 1;
            self.closed_idle += 1;
            return;
        }
        self.idle[target].push(Idle {
            stream,
            since: crate::clock::now(),
            client,
        });
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
