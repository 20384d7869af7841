//! `ringway-load`: ringway's HTTP/1.1 and HTTP/2 load generator, usable as a library.
//! The README below is the crate documentation; its example is a doctest.
#![doc = include_str!("../README.md")]

pub mod cli;
pub mod codec;
pub mod compare;
mod connection;
mod h2;
pub mod mix;
mod plan;
pub mod plot;
mod progress;
mod recorder;
mod report;
mod run;
mod schedule;
pub mod svg;
pub mod target;
mod transport;
mod worker;

use std::path::PathBuf;
use std::time::Duration;

pub use mix::Mix;
pub use report::{ErrorCounts, ErrorKind, LineReport, Report, SecondSummary};
pub use run::run;

/// When a run stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this long (warmup not included).
    Duration(Duration),
    /// After exactly this many completed requests, across all threads.
    Requests(u64),
}

/// Everything a run needs. Build it with [`LoadConfig::new`] and struct update.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// `http://` or `https://` URLs; connections are spread over them round-robin.
    pub urls: Vec<String>,
    /// Total connections (at least 1).
    pub connections: usize,
    pub stop: Stop,
    /// Worker threads; 0 = one per available core. Never more than `connections`.
    pub threads: usize,
    /// `None`: no pinning. `Some(cpus)`: pin worker `i` to `cpus[i % len]`
    /// (an empty list means every available core, in order).
    pub pin: Option<Vec<usize>>,
    /// Open loop at this total rate (requests per second); needs `Stop::Duration`.
    pub rate: Option<f64>,
    pub method: String,
    /// Extra request headers (`Host`, `User-Agent`, `Content-Length` given
    /// here replace the generated ones).
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// `false`: `Connection: close`, one connection per request.
    pub keepalive: bool,
    /// Requests in flight per connection (at least 1).
    pub pipeline: usize,
    /// Speak HTTP/2: over TLS with ALPN `h2` for `https://` URLs, over
    /// cleartext TCP with prior knowledge (h2c) for `http://` URLs.
    pub http2: bool,
    /// HTTP/2: concurrent streams (requests in flight) per connection, at least 1.
    pub streams: usize,
    /// Per-request (and per-connect) timeout.
    pub timeout: Duration,
    /// Run this long first without recording.
    pub warmup: Duration,
    /// Skip TLS certificate verification.
    pub insecure: bool,
    /// Extra trusted CA certificates (PEM).
    pub cacert: Option<PathBuf>,
    /// Draw a live status line (only if stdout is a terminal).
    pub progress: bool,
    /// `--mix`: requests replayed in proportion (replaces `method`, the
    /// URLs' paths and `body`; `headers` are added to every line).
    pub mix: Option<Mix>,
}

impl LoadConfig {
    /// The defaults (64 connections, 10 s, closed loop, GET) against one URL.
    pub fn new(url: impl Into<String>) -> Self {
        LoadConfig {
            urls: vec![url.into()],
            ..LoadConfig::default()
        }
    }
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            urls: Vec::new(),
            connections: 64,
            stop: Stop::Duration(Duration::from_secs(10)),
            threads: 0,
            pin: None,
            rate: None,
            method: "GET".to_string(),
            headers: Vec::new(),
            body: None,
            keepalive: true,
            pipeline: 1,
            http2: false,
            streams: 1,
            timeout: Duration::from_secs(5),
            warmup: Duration::ZERO,
            insecure: false,
            cacert: None,
            progress: false,
            mix: None,
        }
    }
}
