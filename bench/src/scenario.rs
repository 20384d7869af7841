//! The scenarios of the comparison: what load, against which upstream.

/// How a scenario loads the proxy.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Kind {
    /// ringway-load, closed loop unless `open_loop`.
    Load {
        connections: usize,
        keepalive: bool,
        /// POST a body of this many bytes with every request.
        post_bytes: Option<usize>,
        /// Use the upstream with large (16 KiB) responses.
        large_responses: bool,
        /// Open loop at this share of the slowest closed-loop get-64 run of
        /// any proxy (the rate is decided when the scenario starts); `None`:
        /// closed loop.
        open_loop: Option<f64>,
        /// HTTPS between the load generator and the proxy.
        tls: Tls,
    },
    /// Park this many idle keep-alive connections; measure proxy RSS.
    Idle { connections: usize },
}

impl Kind {
    /// Whether the direct path (load generator straight to the plain-HTTP
    /// origin) is measured in this scenario.
    pub fn measures_direct(&self) -> bool {
        match self {
            Kind::Load { tls, .. } => *tls == Tls::Off,
            Kind::Idle { .. } => false,
        }
    }

    pub fn tls(&self) -> bool {
        matches!(self, Kind::Load { tls, .. } if *tls != Tls::Off)
    }

    /// Whether the load is HTTP/2 (h2load over TLS with ALPN h2).
    pub fn h2(&self) -> bool {
        matches!(
            self,
            Kind::Load {
                tls: Tls::H2load { .. },
                ..
            }
        )
    }
}

/// Whether, and with which client, the load is HTTPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tls {
    /// Plain HTTP.
    Off,
    /// `ringway-load` over `https://` (certificate not verified, `-k`). Its
    /// rustls client keeps session tickets and resumes with them, so with
    /// `--no-keepalive` most handshakes are resumptions when the proxy issues
    /// tickets (every proxy here does by default).
    RingwayLoad,
    /// The bench's own TLS client (rustls, ring), resumption switched off:
    /// every request is a new connection with a full handshake.
    FullHandshakes,
    /// HTTP/2 over TLS from `h2load` (nghttp2), which offers ALPN `h2` only:
    /// `streams` concurrent streams on each keep-alive connection.
    H2load { streams: usize },
}

/// One scenario of the suite.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Scenario {
    /// Short stable name (`get-64`), used by `--scenarios`.
    pub key: &'static str,
    pub title: String,
    pub kind: Kind,
}

/// Size of the POST bodies.
pub const POST_BYTES: usize = 1024 * 1024;
/// Response body size of the second upstream.
pub const LARGE_RESPONSE_BYTES: usize = 16 * 1024;
/// Response body size of the default upstream.
pub const SMALL_RESPONSE_BYTES: usize = 13;
/// Connections in the closed-loop scenarios without their own count.
const DEFAULT_CONNECTIONS: usize = 64;
/// Concurrent connections of the full-handshake client (one blocking thread
/// each).
pub const FULL_HANDSHAKE_CONNECTIONS: usize = 64;
/// Connections for the 1 MiB POSTs (fewer: each moves a lot of bytes).
const POST_CONNECTIONS: usize = 16;
/// HTTP/2 small GETs: connections, and concurrent streams on each.
const H2_GET_CONNECTIONS: usize = 16;
const H2_GET_STREAMS: usize = 64;
/// HTTP/2 1 MiB POSTs: connections, and concurrent streams on each.
const H2_POST_CONNECTIONS: usize = 4;
const H2_POST_STREAMS: usize = 4;

/// Every scenario, in run order (the open-loop rate is derived from the
/// first one, so it must come first).
pub fn all(idle_connections: usize) -> Vec<Scenario> {
    let load = |connections, keepalive, post_bytes, large_responses, open_loop| Kind::Load {
        connections,
        keepalive,
        post_bytes,
        large_responses,
        open_loop,
        tls: Tls::Off,
    };
    let https = |connections, keepalive, tls| Kind::Load {
        connections,
        keepalive,
        post_bytes: None,
        large_responses: false,
        open_loop: None,
        tls,
    };
    vec![
        Scenario {
            key: "get-64",
            title: format!("small GET ({SMALL_RESPONSE_BYTES} B), keep-alive, 64 connections"),
            kind: load(64, true, None, false, None),
        },
        Scenario {
            key: "get-256",
            title: format!("small GET ({SMALL_RESPONSE_BYTES} B), keep-alive, 256 connections"),
            kind: load(256, true, None, false, None),
        },
        Scenario {
            key: "new-conn",
            title: format!(
                "new connection per request (Connection: close), {DEFAULT_CONNECTIONS} concurrent"
            ),
            kind: load(DEFAULT_CONNECTIONS, false, None, false, None),
        },
        Scenario {
            key: "post-1m",
            title: format!("1 MiB POST bodies, keep-alive, {POST_CONNECTIONS} connections"),
            kind: load(POST_CONNECTIONS, true, Some(POST_BYTES), false, None),
        },
        Scenario {
            key: "resp-16k",
            title: format!("16 KiB responses, keep-alive, {DEFAULT_CONNECTIONS} connections"),
            kind: load(DEFAULT_CONNECTIONS, true, None, true, None),
        },
        Scenario {
            key: "open-loop",
            title: format!(
                "open loop at 50% of the slowest proxy's get-64 rate, small GET, {DEFAULT_CONNECTIONS} connections"
            ),
            kind: load(DEFAULT_CONNECTIONS, true, None, false, Some(0.5)),
        },
        Scenario {
            key: "open-loop-80",
            title: format!(
                "open loop at 80% of the slowest proxy's get-64 rate, small GET, {DEFAULT_CONNECTIONS} connections"
            ),
            kind: load(DEFAULT_CONNECTIONS, true, None, false, Some(0.8)),
        },
        Scenario {
            key: "idle-conns",
            title: format!(
                "{idle_connections} idle keep-alive connections: proxy RSS per connection"
            ),
            kind: Kind::Idle {
                connections: idle_connections,
            },
        },
        Scenario {
            key: "https-keepalive",
            title: format!(
                "HTTPS small GET ({SMALL_RESPONSE_BYTES} B), keep-alive, {DEFAULT_CONNECTIONS} connections (TLS terminated by the proxy)"
            ),
            kind: https(DEFAULT_CONNECTIONS, true, Tls::RingwayLoad),
        },
        Scenario {
            key: "https-handshake",
            title: format!(
                "HTTPS, a new connection and TLS handshake per request (ringway-load --no-keepalive: resumes with session tickets), {DEFAULT_CONNECTIONS} concurrent"
            ),
            kind: https(DEFAULT_CONNECTIONS, false, Tls::RingwayLoad),
        },
        Scenario {
            key: "https-full-handshake",
            title: format!(
                "HTTPS, a new connection and a full TLS handshake per request (no resumption; the bench's own client), {FULL_HANDSHAKE_CONNECTIONS} concurrent"
            ),
            kind: https(FULL_HANDSHAKE_CONNECTIONS, false, Tls::FullHandshakes),
        },
        Scenario {
            key: "h2-get",
            title: format!(
                "HTTP/2 over TLS (ALPN h2), small GET of {} ({SMALL_RESPONSE_BYTES} B), {H2_GET_CONNECTIONS} connections × {H2_GET_STREAMS} concurrent streams (h2load)",
                crate::h2load::PATH
            ),
            kind: https(
                H2_GET_CONNECTIONS,
                true,
                Tls::H2load {
                    streams: H2_GET_STREAMS,
                },
            ),
        },
        Scenario {
            key: "h2-post-1m",
            title: format!(
                "HTTP/2 over TLS (ALPN h2), 1 MiB POST bodies, {H2_POST_CONNECTIONS} connections × {H2_POST_STREAMS} concurrent streams (h2load)"
            ),
            kind: Kind::Load {
                connections: H2_POST_CONNECTIONS,
                keepalive: true,
                post_bytes: Some(POST_BYTES),
                large_responses: false,
                open_loop: None,
                tls: Tls::H2load {
                    streams: H2_POST_STREAMS,
                },
            },
        },
    ]
}
