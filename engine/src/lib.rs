//! ringway: a thread-per-core API gateway and reverse proxy on io_uring.
//!
//! The crate is both the `ringway` binary and a library, so benchmarks can
//! reach the codec and tests can reach internals. Modules, and which way
//! they point (`engine/tests/module_arrows.rs` fails on a cycle):
//!
//! - `cli` (the commands) and `demo` (`ringway demo`) start everything.
//! - `config` reads and checks the TOML (and OpenAPI imports) and compiles it
//!   into a `snapshot` (the immutable compiled config): compile, then serve.
//! - `openapi`: Amazon API Gateway exports (OpenAPI/Swagger with the
//!   `x-amazon-apigateway-*` extensions) read into the config model, and
//!   the config written back as one; it points at `config`, never back.
//! - `runtime`: worker threads (one per core), listeners, signals, reload
//!   and drain; it uses `control` and runs `proxy` on each worker.
//! - `control`: what the control threads and the workers share (the
//!   current snapshot and its generation, the drain flag, listener changes);
//!   see `CONTROL.md`.
//! - `proxy`: the connection loop and one exchange's phases, the upstream
//!   pool, the body relay (see `proxy/LIFECYCLE.md`); it uses `policy`, `h1`
//!   and `request_id`.
//! - `policy`: one file per policy, compiled on the control side, checked
//!   synchronously on the data plane.
//! - `h1`: the HTTP/1.1 codec (heads, framing, chunked coding, writers); no
//!   I/O, no policy.
//! - `observe`: per-worker metrics, the scrape handshake, the Prometheus
//!   text, the admin endpoint and the access log; fed plain numbers.
//! - `request_id`: request ids, made per worker.
//! - `limit`: token buckets shared by all workers (exact limits).
//! - `cluster`: limits shared by a fleet through Redis, synced by a control
//!   thread; the workers read atomics.
//! - `proxy_protocol`: the PROXY protocol header (v1/v2), parsed and written.
//! - `calendar`: civil dates for quotas, logs and usage reports.
//! - `upstream`: a small origin server on the codec (`ringway upstream`,
//!   the demo's and the benchmarks' upstream).
//! - `sys`: the few raw system calls, and every `unsafe` block.
pub mod calendar;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod control;
pub mod deadline;
pub mod demo;
pub mod h1;
pub mod h2;
pub mod ip_text;
pub mod limit;
pub mod observe;
pub mod openapi;
pub mod policy;
pub mod proxy;
pub mod proxy_protocol;
pub mod request_id;
pub mod resilience;
pub mod runtime;
pub mod snapshot;
pub mod sys;
pub mod upstream;
