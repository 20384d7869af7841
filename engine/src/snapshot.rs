//! The immutable compiled configuration every worker serves from.

use crate::h1::Limits;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
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

/// The files a snapshot is compiled from, read again on reload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    /// The TOML config (`-c FILE`).
    pub config: Option<PathBuf>,
    /// API Gateway exports given on the command line (`--openapi FILE`).
    pub openapi: Vec<PathBuf>,
    /// `--strict`: unsupported OpenAPI content is an error, not a warning.
    pub strict: bool,
}

/// What a listener expects before HTTP/1.1, fixed when it starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenMode {
    /// Every connection starts with a PROXY protocol header.
    pub proxy_protocol: bool,
    /// `h2c = true`: cleartext HTTP/2 with prior knowledge, told apart
    /// from HTTP/1.1 by the client preface.
    pub h2c: bool,
}

#[derive(Debug)]
pub struct Snapshot {
    /// The file errors and logs name: the config, else the first OpenAPI document.
    pub source: PathBuf,
    /// Every file it was compiled from.
    pub sources: Sources,
    /// 0 for the config ringway started with, +1 per successful reload.
    pub generation: u64,
    /// Reloads (SIGHUP, admin) so far; DNS changes, which also raise the
    /// generation, do not count. Workers that see it grow send their
    /// HTTP/2 clients GOAWAY, as nginx's and HAProxy's old processes do.
    pub reloads: u64,
    pub listen: Vec<SocketAddr>,
    /// Per `listen` entry: its TLS certificates, if it terminates TLS.
    pub listen_tls: Vec<Option<Arc<ringway_tls::ServerTls>>>,
    /// Per `listen` entry: a PROXY protocol header first, HTTP/2 prior knowledge.
    pub listen_mode: Vec<ListenMode>,
    /// `[server.h2]`.
    pub h2: crate::h2::H2Settings,
    /// The admin endpoint's address, if enabled.
    pub admin: Option<SocketAddr>,
    /// Access log format and destination, if enabled.
    pub access_log: Option<(
        crate::observe::access_log::Format,
        crate::observe::access_log::Destination,
    )>,
    pub workers: usize,
    pub pin: Pin,
    pub max_connections: usize,
    pub shutdown_timeout: Duration,
    pub backlog: u32,
    pub splice_threshold: u64,
    /// `[server] merge_slashes`: `//` runs in paths collapse before routing.
    pub merge_slashes: bool,
    /// `[server] forwarded`: add an RFC 7239 `Forwarded` element upstream.
    pub forwarded: bool,
    /// `[cluster]`: limits shared through Redis (see `crate::cluster`).
    pub cluster: Option<crate::cluster::ClusterConfig>,
    pub driver: DriverChoice,
    pub limits: Limits,
    pub timeouts: Timeouts,
    pub upstreams: Vec<Upstream>,
    pub routes: Vec<Route>,
    /// The compiled route table: host → path → method.
    pub router: ringway_router::Router,
    /// Peers whose X-Forwarded-For names the client (`[server] trusted_proxies`).
    pub trusted_proxies: crate::policy::ip::CidrSet,
    /// `[[api_key]]` digests and `[[usage_plan]]`s.
    pub api_keys: crate::policy::api_key::Keys,
    /// The request id header name (`[server] request_id`), or `None` when switched off.
    pub request_id: Option<Box<[u8]>>,
    /// `[gateway_responses]`: custom bodies of ringway's own error responses.
    pub gateway_responses: crate::policy::responses::Responses,
    /// Total targets over all upstreams (pool slots per worker).
    pub target_count: usize,
    /// Per-target state the control thread publishes (active health).
    pub live: Arc<crate::resilience::Live>,
    /// The config text compiled, so a DNS change can compile it again with
    /// new addresses without reading the file (which may have changed).
    pub text: Arc<str>,
    /// DNS answers that override resolving a target name (from the checker thread).
    pub resolved: crate::resilience::Resolved,
    /// Fault injection for tests: a request for exactly this path panics its connection task.
    /// Set only through the `RINGWAY_FAULT_PANIC_PATH` environment variable,
    /// and only in a build with the `fault-injection` feature.
    #[cfg(feature = "fault-injection")]
    pub fault_panic_path: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub header_read: Duration,
    pub keepalive_idle: Duration,
    /// Idle this long, a plain HTTP/1.1 connection parks (zero: never).
    pub keepalive_park: Duration,
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
    /// TLS for `https://` targets.
    pub tls: Option<UpstreamTls>,
    /// PROXY protocol header sent on each new connection; such connections
    /// are pooled per client address.
    pub send_proxy: Option<ProxyVersion>,
    /// Balancing, health checks, outlier ejection, retries, circuit breaking.
    pub resilience: crate::resilience::Resilience,
}

/// Which PROXY protocol header an upstream gets (`send_proxy_protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyVersion {
    V1,
    V2,
}

pub struct UpstreamTls {
    pub config: Arc<ringway_tls::rustls::ClientConfig>,
    /// SNI and certificate name; default: the target's host.
    pub server_name: Option<String>,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub struct Target {
    /// Index into every worker's pool table.
    pub id: usize,
    pub addr: SocketAddr,
    /// `host:port` as written in the config, sent as Host when a route does not preserve it.
    pub authority: String,
    /// An `https://` target.
    pub tls: bool,
    /// Share of requests relative to the other targets (≥ 1).
    pub weight: u32,
    /// The target's address as text, its label in metrics and `/config`.
    pub label: String,
}

impl Target {
    /// The host part of the authority (brackets of an IPv6 literal removed):
    /// the TLS name and the default Host of health checks' names.
    pub fn host(&self) -> &str {
        let a = self.authority.as_str();
        let host = match a.rfind(':') {
            Some(i) if !a[i..].contains(']') => &a[..i],
            _ => a,
        };
        host.trim_start_matches('[').trim_end_matches(']')
    }
}

#[derive(Debug)]
pub struct Route {
    pub path: String,
    /// Unique among routes, for metrics: `[host]path[ METHODS]`.
    pub label: String,
    pub upstream: usize,
    /// Backend URI template (`uri = ...`); `None` forwards the path unchanged.
    pub template: Option<ringway_router::UriTemplate>,
    /// The template as written, for `ringway check`.
    pub uri_text: Option<String>,
    pub preserve_host: bool,
    /// `upstream_method`: the method every non-HEAD request is sent with.
    pub upstream_method: Option<Box<[u8]>>,
    pub websocket: bool,
    /// The route's policy chain (empty: nothing to check).
    pub policies: crate::policy::Chain,
}

impl Snapshot {
    /// Every target's (upstream name, address), by `Target::id`: the key
    /// under which a reload keeps its health state.
    pub fn target_keys(&self) -> Vec<(String, SocketAddr)> {
        let mut keys =
            vec![(String::new(), SocketAddr::from(([0, 0, 0, 0], 0))); self.target_count];
        for u in &self.upstreams {
            for t in &u.targets {
                keys[t.id] = (u.name.clone(), t.addr);
            }
        }
        keys
    }

    /// What the policies read of this snapshot on the data plane.
    #[inline]
    pub fn policy_env(&self) -> crate::policy::Env<'_> {
        crate::policy::Env {
            generation: self.generation,
            workers: self.workers,
            trusted_proxies: &self.trusted_proxies,
            api_keys: &self.api_keys,
            router: &self.router,
            request_id: self.request_id.as_deref(),
        }
    }

    /// A human-readable table of what this snapshot serves.
    pub fn describe(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "listen: {}",
            self.listen
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(
            s,
            "workers: {}  pin: {:?}  driver: {:?}",
            self.workers, self.pin, self.driver
        );
        if let Some(stage) = self.router.stage() {
            let _ = writeln!(s, "stage: {stage}");
        }
        let _ = writeln!(s, "upstreams:");
        for u in &self.upstreams {
            let t: Vec<_> = u
                .targets
                .iter()
                .map(|t| match t.weight {
                    1 => format!("{} ({})", t.authority, t.addr),
                    w => format!("{} ({}) weight {w}", t.authority, t.addr),
                })
                .collect();
            let _ = writeln!(s, "  {:<16} {}", u.name, t.join(", "));
            let r = &u.resilience;
            let mut extra = Vec::new();
            match &r.balance {
                crate::resilience::Balance::RoundRobin => {}
                crate::resilience::Balance::LeastRequest => extra.push("least_request".to_string()),
                crate::resilience::Balance::Random => extra.push("random".to_string()),
                crate::resilience::Balance::Hash(_) => extra.push("hash".to_string()),
            }
            if let Some(h) = &r.health {
                extra.push(format!("health GET {} every {:?}", h.path, h.interval));
            }
            if r.outlier.is_some() {
                extra.push("outlier ejection".to_string());
            }
            if r.retry != crate::resilience::RetryPolicy::default() {
                extra.push(format!("retry: {} attempts", r.retry.attempts));
            }
            if r.limits != crate::resilience::CircuitLimits::default() {
                extra.push("limits".to_string());
            }
            if !extra.is_empty() {
                let _ = writeln!(s, "  {:<16} [{}]", "", extra.join(", "));
            }
        }
        let _ = writeln!(s, "routes (precedence order):");
        for e in self.router.table() {
            let r = &self.routes[e.route];
            let to = match (&r.policies.mock, &r.uri_text) {
                (Some(m), _) => format!("mock {}", m.status),
                (None, Some(uri)) => uri.clone(),
                (None, None) => format!("{} (path unchanged)", self.upstreams[r.upstream].name),
            };
            let _ = writeln!(
                s,
                "  {:<20} {:<8} {:<32} -> {}",
                e.host.unwrap_or("*"),
                e.method,
                e.path,
                to
            );
            let names = r.policies.names();
            if !names.is_empty() {
                s.pop();
                let _ = writeln!(s, "  [{}]", names.join(", "));
            }
        }
        s
    }
}

/// What the policies read of this snapshot when a worker starts serving it.
impl crate::policy::Served for Snapshot {
    fn generation(&self) -> u64 {
        self.generation
    }
    fn chains(&self) -> impl Iterator<Item = (&str, &crate::policy::Chain)> {
        self.routes.iter().map(|r| (r.path.as_str(), &r.policies))
    }
    fn api_keys(&self) -> &crate::policy::api_key::Keys {
        &self.api_keys
    }
}
