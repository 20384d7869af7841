//! The data plane: the connection loop, one exchange's phases, the
//! upstream pool and the body relay. LIFECYCLE.md beside this file names
//! each phase's function, in order.
//!
//! Files, by concern: `conn` (the connection loop) → `exchange` (the phase
//! order) → one file per phase group: `route`, `policies`, `target`,
//! `body_reader`, `upstream_io`, `response`; `respond` (ringway's own
//! answers), `framing` (one body relay for both directions), `relay`
//! (moving bytes), `tunnel` (after a 101). Underneath: `context` (the
//! `Exchange` every phase takes), `local` (what one worker thread owns),
//! `outcome`, `pool`, `stream`, `error`.
pub mod balance;
pub mod body_reader;
pub mod catch;
pub mod conn;
pub mod context;
pub mod error;
pub mod exchange;
pub mod framing;
pub mod h2conn;
pub mod local;
pub mod outcome;
pub mod policies;
pub mod pool;
pub mod relay;
pub mod respond;
pub mod response;
pub mod retry;
pub mod route;
pub mod stream;
pub mod target;
pub mod tunnel;
pub mod upstream_io;
