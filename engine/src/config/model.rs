//! The file model: exactly what a `ringway.toml` may say, with serde.
//! Unknown keys are errors everywhere (`deny_unknown_fields`).

use super::units::{Dur, Size};
use crate::policy::{policy_fields, with_policy_table};
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use std::fmt;
use toml::Spanned;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub server: Server,
    #[serde(default)]
    pub upstream: Vec<Upstream>,
    #[serde(default)]
    pub route: Vec<Route>,
    /// `[[usage_plan]]`: rate, burst and quota shared by the API keys of the plan.
    #[serde(default)]
    pub usage_plan: Vec<UsagePlan>,
    /// `[[api_key]]`: a key (stored hashed) and its plan.
    #[serde(default)]
    pub api_key: Vec<ApiKey>,
    /// `[[host]]`: policies for the requests of one host.
    #[serde(default)]
    pub host: Vec<Host>,
    /// `[gateway_responses."429"]`, `[gateway_responses.4xx]`: ringway's own error responses.
    #[serde(default)]
    pub gateway_responses: std::collections::BTreeMap<String, Spanned<GatewayResponse>>,
    /// `[cluster]`: usage-plan limits shared by a fleet through Redis.
    #[serde(default)]
    pub cluster: Option<crate::cluster::config::Section>,
    /// `[[openapi]]`: Amazon API Gateway exports served as routes (`crate::openapi`).
    #[serde(default)]
    pub openapi: Vec<OpenApi>,
}

/// `[[openapi]]`: an API Gateway export (OpenAPI 3.0/3.1 or Swagger 2.0,
/// JSON or YAML) whose operations become routes.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct OpenApi {
    /// The document, relative to this file.
    pub file: Spanned<String>,
    /// The stage prefix (as `[server] stage`), instead of the document's basePath.
    pub stage: Option<Spanned<String>>,
    /// Values of `${stageVariables.NAME}` in integration URIs.
    #[serde(default)]
    pub stage_variables: std::collections::BTreeMap<String, Spanned<String>>,
    /// Integration host (`host` or `host:port`) → the `[[upstream]]` that serves it.
    #[serde(default)]
    pub upstreams: std::collections::BTreeMap<String, Spanned<String>>,
    /// Per JWT authorizer (its `securitySchemes` name): where its keys come
    /// from, instead of the issuer's `/.well-known/jwks.json`.
    #[serde(default)]
    pub authorizers: std::collections::BTreeMap<String, Spanned<OpenApiAuthorizer>>,
    /// How often the integration hosts this document's upstreams were made
    /// for are resolved again (default 30s).
    pub resolve_interval: Option<Spanned<super::units::Dur>>,
}

/// `[openapi.authorizers.NAME]`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct OpenApiAuthorizer {
    pub jwks_url: Option<Spanned<String>>,
    pub jwks_file: Option<Spanned<String>>,
    pub jwks_ca: Option<Spanned<String>>,
}

with_policy_table! { policy_fields! {
    /// `[[host]]`: policy defaults for one host (exact or `*.suffix`). Routes
    /// declared with this `host` inherit them; when no route names the host,
    /// requests for it go to the host-less routes with these policies.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Host {
        pub name: Spanned<String>,
        /// `[server]` policies this host does not inherit.
        #[serde(default)]
        pub disable: Vec<Spanned<String>>,
        // Then its policy tables (`crate::policy`'s table), each optional.
    }
    inherited
} }

/// One `[gateway_responses.<status or class>]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayResponse {
    /// Answer with this status instead.
    pub status: Option<u16>,
    /// Default `application/json`.
    pub content_type: Option<String>,
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    /// A template: `$context.error.message`, `$context.error.messageString`, `$context.requestId`, `$context.status`.
    pub body: Option<String>,
}

with_policy_table! { policy_fields! {
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Server {
        #[serde(default = "default_listen")]
        pub listen: Vec<Spanned<Listen>>,
        /// 0 = one worker per available core.
        #[serde(default = "spanned_default")]
        pub workers: Spanned<usize>,
        #[serde(default = "spanned_default")]
        pub pin: Spanned<Pin>,
        /// Per worker; connections past it are accepted and closed at once.
        #[serde(default = "default_max_connections")]
        pub max_connections: usize,
        #[serde(default = "default_shutdown_timeout")]
        pub shutdown_timeout: Dur,
        /// listen(2) backlog of each worker's listener.
        #[serde(default = "default_backlog")]
        pub backlog: Spanned<u32>,
        /// Content-Length bodies at or over this size move with splice(2).
        #[serde(default = "default_splice_threshold")]
        pub splice_threshold: Size,
        /// Collapse `//` runs in request paths before routing (nginx's `merge_slashes`).
        #[serde(default)]
        pub merge_slashes: bool,
        /// Add an RFC 7239 `Forwarded` element to forwarded requests.
        #[serde(default = "yes")]
        pub forwarded: bool,
        /// A stage prefix (`/prod`) removed from every request path before matching, as API Gateway stages are.
        #[serde(default)]
        pub stage: Option<Spanned<String>>,
        /// `auto` (io_uring, else epoll), `io_uring`, or `epoll`.
        #[serde(default = "spanned_default")]
        pub driver: Spanned<Option<String>>,
        /// `[server.admin] listen = "127.0.0.1:9901"`: metrics, health and config on a separate listener.
        #[serde(default)]
        pub admin: Option<Admin>,
        /// `[server.access_log] path = "...", format = "json"`: one line per request.
        #[serde(default)]
        pub access_log: Option<AccessLog>,
        /// A TOML file of more `[[api_key]]` entries (relative to this file's folder),
        /// kept apart so keys can be handed out without editing the config; read again on reload.
        #[serde(default)]
        pub api_keys_file: Option<Spanned<String>>,
        /// Peers (CIDRs) whose X-Forwarded-For is believed when finding the client address.
        #[serde(default)]
        pub trusted_proxies: Vec<Spanned<String>>,
        /// The request id header (`"x-request-id"` by default), or `false` for none.
        #[serde(default)]
        pub request_id: Option<Spanned<RequestId>>,
        #[serde(default)]
        pub limits: Limits,
        #[serde(default)]
        pub timeouts: Timeouts,
        /// `[server.h2]`: HTTP/2 settings and flood limits.
        #[serde(default)]
        pub h2: H2,
        // Then the policy defaults (`crate::policy`'s table): a route without
        // its own table of that name inherits these.
    }
    inherited
} }

impl Default for Server {
    fn default() -> Self {
        toml::from_str("").expect("empty server section deserializes")
    }
}

fn spanned_default<T: Default>() -> Spanned<T> {
    Spanned::new(0..0, T::default())
}

fn default_listen() -> Vec<Spanned<Listen>> {
    vec![Spanned::new(
        0..0,
        Listen::Addr("127.0.0.1:8080".to_string()),
    )]
}

/// A `listen` entry: `"127.0.0.1:8080"`, or `{ addr = "...", tls = { ... } }`.
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "an address string such as \"127.0.0.1:8080\", or a table { addr = \"...\", tls = { cert = \"...\", key = \"...\" } }"
)]
pub enum Listen {
    Addr(String),
    Table(ListenTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenTable {
    pub addr: String,
    pub tls: Option<ServerTls>,
    /// `proxy_protocol = true`: every connection starts with a PROXY v1/v2
    /// header naming the client. Kept as a raw value (this table sits in an
    /// untagged enum, which would swallow a type error): the compiler checks
    /// it is a bool and names the key.
    pub proxy_protocol: Option<toml::Value>,
    /// `h2c = true`: cleartext HTTP/2 with prior knowledge (and HTTP/1.1),
    /// told apart by the client preface. Raw, like `proxy_protocol`.
    pub h2c: Option<toml::Value>,
    /// TLS listeners: the protocols offered by ALPN, in order of
    /// preference (`["h2", "http/1.1"]` by default). Raw, like `proxy_protocol`.
    pub alpn: Option<toml::Value>,
}

/// `tls = { cert, key }` or `tls = { certs = [ { cert, key }, ... ], client_ca = "ca.pem" }`.
#[derive(Debug, Deserialize, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    pub cert: Option<String>,
    pub key: Option<String>,
    #[serde(default)]
    pub certs: Vec<CertPair>,
    /// Verify client certificates against this CA bundle (mTLS).
    pub client_ca: Option<String>,
}

#[derive(Debug, Deserialize, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CertPair {
    pub cert: String,
    pub key: String,
}

/// `tls = { ca = "ca.pem", server_name = "backend.local", client_cert = "...", client_key = "..." }` on an upstream.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    pub ca: Option<String>,
    pub server_name: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
}
fn default_max_connections() -> usize {
    100_000
}
fn default_shutdown_timeout() -> Dur {
    Dur(std::time::Duration::from_secs(30))
}
fn default_backlog() -> Spanned<u32> {
    Spanned::new(0..0, 4096)
}
fn default_splice_threshold() -> Size {
    Size(64 * 1024)
}

/// `request_id = "x-request-id"` (a header name) or `request_id = false`.
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "a header name such as \"x-request-id\", or false"
)]
pub enum RequestId {
    On(bool),
    Name(String),
}

/// `pin = true | false | [cpu ids]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Pin {
    #[default]
    Off,
    Auto,
    Cpus(Vec<usize>),
}

impl<'de> Deserialize<'de> for Pin {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Pin;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false, or a list of CPU ids such as [0, 1]")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Pin, E> {
                Ok(if v { Pin::Auto } else { Pin::Off })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Pin, A::Error> {
                let mut cpus = Vec::new();
                while let Some(c) = seq.next_element::<usize>()? {
                    cpus.push(c);
                }
                if cpus.is_empty() {
                    return Err(de::Error::custom(
                        "an empty CPU list pins nothing; write `pin = false`",
                    ));
                }
                Ok(Pin::Cpus(cpus))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLog {
    /// A file (appended to; reopened on SIGUSR1), or "stdout".
    pub path: Spanned<String>,
    /// `combined` (default), `json`, or a template with `$variables`.
    #[serde(default)]
    pub format: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    pub listen: Spanned<String>,
}

/// `[server.h2]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct H2 {
    #[serde(default = "h2_streams")]
    pub max_concurrent_streams: Spanned<u32>,
    #[serde(default = "h2_window")]
    pub initial_window: Spanned<Size>,
    #[serde(default = "h2_frame")]
    pub max_frame_size: Spanned<Size>,
    /// Defaults to `[server.limits] max_head_bytes`.
    #[serde(default)]
    pub max_header_list: Option<Spanned<Size>>,
    #[serde(default = "secs::<60>")]
    pub idle_timeout: Dur,
    #[serde(default = "h2_resets")]
    pub max_resets_per_second: Spanned<u32>,
    #[serde(default = "h2_control")]
    pub max_control_frames_per_second: Spanned<u32>,
}

impl Default for H2 {
    fn default() -> Self {
        toml::from_str("").expect("an empty [server.h2] deserializes")
    }
}

fn h2_streams() -> Spanned<u32> {
    Spanned::new(0..0, 128)
}
fn h2_window() -> Spanned<Size> {
    Spanned::new(0..0, Size(256 * 1024))
}
fn h2_frame() -> Spanned<Size> {
    Spanned::new(0..0, Size(16 * 1024))
}
fn h2_resets() -> Spanned<u32> {
    Spanned::new(0..0, 100)
}
fn h2_control() -> Spanned<u32> {
    Spanned::new(0..0, 1000)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default = "default_max_head_bytes")]
    pub max_head_bytes: Spanned<Size>,
    #[serde(default = "default_max_headers")]
    pub max_headers: Spanned<usize>,
    #[serde(default = "default_max_uri_bytes")]
    pub max_uri_bytes: Spanned<Size>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: default_max_head_bytes(),
            max_headers: default_max_headers(),
            max_uri_bytes: default_max_uri_bytes(),
        }
    }
}

fn default_max_head_bytes() -> Spanned<Size> {
    Spanned::new(0..0, Size(crate::h1::limits::DEFAULT_MAX_HEAD_BYTES as u64))
}
fn default_max_headers() -> Spanned<usize> {
    Spanned::new(0..0, crate::h1::limits::DEFAULT_MAX_HEADERS)
}
fn default_max_uri_bytes() -> Spanned<Size> {
    Spanned::new(0..0, Size(crate::h1::limits::DEFAULT_MAX_URI_BYTES as u64))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// A request head must arrive whole within this (slowloris guard): 408.
    #[serde(default = "secs::<10>")]
    pub header_read: Dur,
    /// An idle keep-alive connection is closed after this.
    #[serde(default = "secs::<60>")]
    pub keepalive_idle: Dur,
    /// A plain HTTP/1.1 keep-alive connection idle this long gives up its
    /// task and waits in the worker's epoll set ("0s": never).
    #[serde(default = "secs::<5>")]
    pub keepalive_park: Dur,
    /// Longest pause between two reads of a body, either direction.
    #[serde(default = "secs::<30>")]
    pub body_idle: Dur,
    /// An upgraded (WebSocket) tunnel with no traffic either way for this long is closed.
    #[serde(default = "secs::<300>")]
    pub tunnel_idle: Dur,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            header_read: secs::<10>(),
            keepalive_idle: secs::<60>(),
            keepalive_park: secs::<5>(),
            body_idle: secs::<30>(),
            tunnel_idle: secs::<300>(),
        }
    }
}

fn secs<const N: u64>() -> Dur {
    Dur(std::time::Duration::from_secs(N))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub name: Spanned<String>,
    /// `"host:port"` strings or `{ addr, weight }` tables.
    pub targets: Spanned<Vec<Spanned<TargetEntry>>>,
    /// `"round_robin"` (default), `"least_request"`, `"hash"`, `"random"`.
    pub balance: Option<Spanned<String>>,
    /// What `balance = "hash"` hashes: `$request.header.X`, `$request.querystring.X`,
    /// `$request.path`, `$context.identity.sourceIp`.
    pub hash_key: Option<Spanned<String>>,
    /// DNS names among the targets are resolved again this often.
    pub resolve_interval: Option<Spanned<Dur>>,
    /// `[upstream.health]`: active checks.
    pub health: Option<Spanned<Health>>,
    /// `[upstream.outlier]`: passive ejection judged from real traffic.
    pub outlier: Option<Spanned<Outlier>>,
    /// `[upstream.retry]`.
    pub retry: Option<Spanned<Retry>>,
    /// `[upstream.limits]`: circuit breaking.
    pub limits: Option<Spanned<UpstreamLimits>>,
    /// Connecting longer than this: 502.
    #[serde(default = "secs::<2>")]
    pub connect_timeout: Dur,
    /// No response head within this after the request was sent: 504.
    #[serde(default = "secs::<30>")]
    pub response_timeout: Dur,
    /// Per worker and target.
    #[serde(default = "default_max_idle")]
    pub max_idle_per_target: usize,
    #[serde(default = "secs::<60>")]
    pub idle_timeout: Dur,
    /// TLS to `https://` targets.
    pub tls: Option<Spanned<UpstreamTls>>,
    /// `"v1"` or `"v2"`: each new connection starts with a PROXY header naming the client.
    pub send_proxy_protocol: Option<Spanned<String>>,
    /// Made by the OpenAPI importer for an integration host: a name that
    /// does not resolve is no error (its routes answer 502 until it does,
    /// re-resolved every `resolve_interval`). Never read from TOML.
    #[serde(skip)]
    pub unresolved_ok: bool,
}

fn default_max_idle() -> usize {
    128
}

/// One `targets` entry: `"host:port"` or `{ addr = "host:port", weight = 3 }`.
#[derive(Debug, Clone)]
pub struct TargetEntry {
    pub addr: String,
    /// `None` when not given (weight 1); checked to be at least 1 by the compiler.
    pub weight: Option<i64>,
}

impl<'de> Deserialize<'de> for TargetEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TargetEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"host:port\" or a table { addr = \"host:port\", weight = 1 }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TargetEntry, E> {
                Ok(TargetEntry {
                    addr: v.to_string(),
                    weight: None,
                })
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<TargetEntry, A::Error> {
                let (mut addr, mut weight) = (None, None);
                while let Some(k) = map.next_key::<String>()? {
                    match k.as_str() {
                        "addr" => addr = Some(map.next_value::<String>()?),
                        "weight" => weight = Some(map.next_value::<i64>()?),
                        other => return Err(de::Error::unknown_field(other, &["addr", "weight"])),
                    }
                }
                let addr = addr.ok_or_else(|| de::Error::missing_field("addr"))?;
                Ok(TargetEntry { addr, weight })
            }
        }
        d.deserialize_any(V)
    }
}

/// `[upstream.health]`: active HTTP checks from a control thread.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    #[serde(default = "default_health_path")]
    pub path: Spanned<String>,
    #[serde(default = "spanned_secs::<5>")]
    pub interval: Spanned<Dur>,
    #[serde(default = "spanned_secs::<1>")]
    pub timeout: Spanned<Dur>,
    /// Consecutive passes that bring a target back.
    #[serde(default = "spanned_n::<2>")]
    pub healthy: Spanned<i64>,
    /// Consecutive failures that take it out.
    #[serde(default = "spanned_n::<3>")]
    pub unhealthy: Spanned<i64>,
    /// Statuses that pass (default: any 2xx).
    pub expect: Option<Spanned<Vec<Spanned<i64>>>>,
    /// Host field of the check (default: the target's host:port).
    pub host: Option<Spanned<String>>,
}

/// `[upstream.outlier]`: passive ejection, per worker.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outlier {
    #[serde(default = "spanned_n::<5>")]
    pub consecutive_5xx: Spanned<i64>,
    #[serde(default = "spanned_n::<3>")]
    pub consecutive_failures: Spanned<i64>,
    #[serde(default = "spanned_secs::<30>")]
    pub ejection: Spanned<Dur>,
    #[serde(default = "spanned_secs::<300>")]
    pub max_ejection: Spanned<Dur>,
    #[serde(default = "spanned_n::<50>")]
    pub max_ejected_percent: Spanned<i64>,
}

/// `[upstream.retry]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    #[serde(default = "spanned_n::<2>")]
    pub attempts: Spanned<i64>,
    pub on: Option<Spanned<Vec<Spanned<String>>>>,
    pub per_try_timeout: Option<Spanned<Dur>>,
    #[serde(default = "spanned_n::<20>")]
    pub budget_percent: Spanned<i64>,
    pub backoff: Option<Spanned<Dur>>,
    #[serde(default)]
    pub non_idempotent: bool,
}

/// `[upstream.limits]`: circuit breaking per worker.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamLimits {
    pub max_connections: Option<Spanned<i64>>,
    pub max_pending: Option<Spanned<i64>>,
    pub max_requests: Option<Spanned<i64>>,
}

fn default_health_path() -> Spanned<String> {
    Spanned::new(0..0, "/".to_string())
}
fn spanned_secs<const N: u64>() -> Spanned<Dur> {
    Spanned::new(0..0, secs::<N>())
}
fn spanned_n<const N: i64>() -> Spanned<i64> {
    Spanned::new(0..0, N)
}

with_policy_table! { policy_fields! {
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Route {
        /// API Gateway path template: `/users/{id}`, `/{proxy+}`.
        pub path: Spanned<String>,
        /// Methods, or `ANY` (the default) for every method without a route of its own.
        #[serde(default = "any_method")]
        pub methods: Spanned<Vec<String>>,
        /// Only for this Host: exact (`api.example.com`) or wildcard (`*.example.com`).
        #[serde(default)]
        pub host: Option<Spanned<String>>,
        /// Forward the path unchanged to this upstream...
        pub upstream: Option<Spanned<String>>,
        /// ...or rewrite it through a backend URI template whose authority names an upstream.
        #[serde(default)]
        pub uri: Option<Spanned<String>>,
        /// Send the client's Host upstream (default), or the target's `host:port`.
        #[serde(default = "yes")]
        pub preserve_host: bool,
        /// Send every request upstream with this method instead of the
        /// client's (API Gateway's fixed integration `httpMethod`); HEAD
        /// requests stay HEAD.
        #[serde(default)]
        pub upstream_method: Option<Spanned<String>>,
        /// Let `Connection: upgrade` requests (WebSocket) through, tunnelling the connection after a 101.
        #[serde(default = "yes")]
        pub websocket: bool,
        /// Inherited policies (`[server]`, `[[host]]`) this route does without: `["jwt"]`.
        #[serde(default)]
        pub disable: Vec<Spanned<String>>,
        // Then its policies (`crate::policy`'s table), each optional; `mock`
        // answers from the gateway itself, and such a route needs no upstream.
    }
    all
} }

/// `[route.cors]`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    /// Exact origins, `https://*.example.com`, or `*`.
    #[serde(default)]
    pub allow_origins: Vec<Spanned<String>>,
    /// Default: GET, HEAD, POST.
    pub allow_methods: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub allow_headers: Vec<Spanned<String>>,
    #[serde(default)]
    pub expose_headers: Vec<Spanned<String>>,
    pub allow_credentials: Option<Spanned<bool>>,
    pub max_age: Option<Dur>,
}

/// `[route.ip]`: CIDR lists; deny wins, an empty allow list allows all.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct IpPolicy {
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    #[serde(default)]
    pub deny: Vec<Spanned<String>>,
}

/// `[route.api_key]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteApiKey {
    /// `header:NAME` or `query:NAME`.
    #[serde(default = "default_key_source")]
    pub source: Spanned<String>,
}

fn default_key_source() -> Spanned<String> {
    Spanned::new(0..0, "header:x-api-key".to_string())
}

/// `[route.throttle]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Throttle {
    /// Requests per second, gateway-wide (split among workers).
    pub rate: Spanned<f64>,
    /// Default: the rate.
    pub burst: Option<Spanned<f64>>,
    /// `route` (default), `client_ip` or `header:NAME`.
    pub key: Option<Spanned<String>>,
}

/// `[route.mapping]`: `"overwrite:header.x" = "$request.header.y"`, ...
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    pub request: Option<Spanned<std::collections::BTreeMap<String, String>>>,
    pub response: Option<Spanned<std::collections::BTreeMap<String, String>>>,
}

/// `[route.jwt]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jwt {
    /// Required `iss`.
    pub issuer: Option<String>,
    /// `aud` must name one of these.
    #[serde(default)]
    pub audience: Vec<String>,
    /// A JWKS document, relative to the config file (or `jwks_url`).
    pub jwks_file: Option<Spanned<String>>,
    /// An `http://` or `https://` URL serving the JWKS, fetched in the background.
    pub jwks_url: Option<Spanned<String>>,
    /// How often `jwks_url` is fetched again (default 5m).
    pub jwks_refresh: Option<Spanned<Dur>>,
    /// CA bundle (PEM, relative to the config file) trusted for an `https://` `jwks_url`
    /// (default: the same roots as upstream TLS).
    pub jwks_ca: Option<Spanned<String>>,
    /// Every one of these must be in the token's `scope` / `scp`.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Claim → upstream header name.
    pub forward_claims: Option<Spanned<std::collections::BTreeMap<String, String>>>,
    /// `header:NAME` (Bearer; default `header:authorization`) or `cookie:NAME`.
    pub source: Option<Spanned<String>>,
    /// Clock skew allowed on `exp` and `nbf` (default 60s).
    pub leeway: Option<Dur>,
    /// Keep verified tokens per worker (default true); `false` checks every
    /// token's signature on every request.
    #[serde(default = "yes")]
    pub cache: bool,
}

/// `[route.validate]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Validate {
    #[serde(default)]
    pub required_headers: Vec<Spanned<String>>,
    #[serde(default)]
    pub required_query: Vec<Spanned<String>>,
    /// Content-Length past it: 413 (a chunked body: 411, unless the route has a `json_schema`).
    pub max_body_bytes: Option<Size>,
    /// Media types a body may have (`type/*` for a whole type): else 415.
    #[serde(default)]
    pub content_types: Vec<Spanned<String>>,
    /// A JSON Schema document (relative to the config file) every request body must satisfy.
    pub json_schema: Option<Spanned<String>>,
    /// The largest body read to check it against `json_schema` (default 1 MiB, at most `max_body_bytes`): else 413.
    pub json_max_bytes: Option<Spanned<Size>>,
    /// A schema given inline rather than as a file (an OpenAPI import's
    /// body schema), and where it came from, for messages.
    #[serde(skip)]
    pub json_schema_doc: Option<(serde_json::Value, String)>,
}

/// `[route.mock]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mock {
    #[serde(default = "default_mock_status")]
    pub status: Spanned<u16>,
    pub headers: Option<Spanned<std::collections::BTreeMap<String, String>>>,
    pub body: Option<String>,
}

fn default_mock_status() -> Spanned<u16> {
    Spanned::new(0..0, 200)
}

/// `[[usage_plan]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsagePlan {
    pub name: Spanned<String>,
    pub rate: Option<Spanned<f64>>,
    pub burst: Option<Spanned<f64>>,
    pub quota: Option<Spanned<QuotaSpec>>,
}

/// `quota = { limit = 10000, period = "day" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaSpec {
    pub limit: u64,
    pub period: String,
}

/// The `server.api_keys_file`: `[[api_key]]` entries and nothing else.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct KeysFile {
    #[serde(default)]
    pub api_key: Vec<ApiKey>,
}

/// `[[api_key]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    pub name: Spanned<String>,
    pub value: Option<Spanned<String>>,
    /// Hex SHA-256 of the key, to keep the key itself out of the file.
    pub value_sha256: Option<Spanned<String>>,
    pub plan: Spanned<String>,
}

fn any_method() -> Spanned<Vec<String>> {
    Spanned::new(0..0, vec!["ANY".to_string()])
}

fn yes() -> bool {
    true
}
