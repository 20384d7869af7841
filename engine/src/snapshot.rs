//! The immutable compiled configuration every worker serves from.

use crate::h1::Limits;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::config::model::Pin;

/// Which monoio driver the workers run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverChoice {
    /// io_uring where it can be set up, else epoll (with a warning).
    Auto,
    IoUring,
    Epoll,
}

#[derive(Debug)]
pub struct Snapshot {
    pub source: PathBuf,
    pub listen: Vec<SocketAddr>,
    pub workers: usize,
    pub pin: Pin,
    pub max_connections: usize,
    pub shutdown_timeout: Duration,
    pub backlog: u32,
    pub splice_threshold: u64,
    pub driver: DriverChoice,
    pub limits: Limits,
    pub timeouts: Timeouts,
    pub upstreams: Vec<Upstream>,
    pub routes: Vec<Route>,
    /// Route indices, longest prefix first.
    pub prefix_order: Vec<usize>,
    /// Total targets over all upstreams (pool slots per worker).
    pub target_count: usize,
    /// Fault injection for tests: a request for exactly this path panics its connection task.
    /// Set only through the `RINGWAY_FAULT_PANIC_PATH` environment variable.
    pub fault_panic_path: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub header_read: Duration,
    pub keepalive_idle: Duration,
    pub body_idle: Duration,
    pub tunnel_idle: Duration,
}

#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    pub targets: Vec<Target>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub max_idle_per_target: usize,
    pub idle_timeout: Duration,
}

#[derive(Debug)]
pub struct Target {
    /// Index into every worker's pool table.
    pub id: usize,
    pub addr: SocketAddr,
    /// `host:port` as written in the config, sent as Host when a route does not preserve it.
    pub authority: String,
}

#[derive(Debug)]
pub struct Route {
    pub path: String,
    pub upstream: usize,
    pub preserve_host: bool,
    pub websocket: bool,
}

impl Snapshot {
    /// The route for `path`: the longest configured prefix that matches.
    pub fn route(&self, path: &[u8]) -> Option<&Route> {
        self.prefix_order
            .iter()
            .map(|&i| &self.routes[i])
            .find(|r| prefix_matches(r.path.as_bytes(), path))
    }

    /// A human-readable table of what this snapshot serves.
    pub fn describe(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "listen: {}", self.listen.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", "));
        let _ = writeln!(s, "workers: {}  pin: {:?}  driver: {:?}", self.workers, self.pin, self.driver);
        let _ = writeln!(s, "upstreams:");
        for u in &self.upstreams {
            let t: Vec<_> = u.targets.iter().map(|t| format!("{} ({})", t.authority, t.addr)).collect();
            let _ = writeln!(s, "  {:<16} {}", u.name, t.join(", "));
        }
        let _ = writeln!(s, "routes (longest prefix first):");
        for &i in &self.prefix_order {
            let r = &self.routes[i];
            let _ = writeln!(s, "  {:<32} -> {}", r.path, self.upstreams[r.upstream].name);
        }
        s
    }
}

/// `/api` matches `/api`, `/api/x` and `/api?q`, not `/apix`; `/` matches everything.
fn prefix_matches(prefix: &[u8], path: &[u8]) -> bool {
    if prefix.ends_with(b"/") {
        return path.starts_with(prefix) || path == &prefix[..prefix.len() - 1];
    }
    path.starts_with(prefix) && matches!(path.get(prefix.len()), None | Some(b'/'))
}

#[cfg(test)]
mod tests {
    use super::prefix_matches;

    #[test]
    fn prefixes() {
        assert!(prefix_matches(b"/", b"/anything"));
        assert!(prefix_matches(b"/api", b"/api"));
        assert!(prefix_matches(b"/api", b"/api/x"));
        assert!(!prefix_matches(b"/api", b"/apix"));
        assert!(prefix_matches(b"/api/", b"/api"));
        assert!(prefix_matches(b"/api/", b"/api/v1"));
    }
}
