//! ringway: a thread-per-core API gateway and reverse proxy on io_uring.
//!
//! The crate is both the `ringway` binary and a library, so benchmarks can
//! reach the codec and tests can reach internals. Layout: `h1` (codec, no
//! I/O), `config` → `snapshot` (compile, then serve), `runtime` (workers,
//! listeners, signals), `proxy` (connection loop, pool, relay).
pub mod calendar;
pub mod cli;
pub mod config;
pub mod demo;
pub mod h1;
pub mod observe;
pub mod policy;
pub mod proxy;
pub mod request_id;
pub mod runtime;
pub mod snapshot;
pub mod sys;
pub mod upstream;
