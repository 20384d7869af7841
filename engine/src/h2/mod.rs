//! HTTP/2 from clients (RFC 9113): frames, field sections (HPACK through
//! the `ringway-hpack` crate), one connection's state without I/O (`session`), and a
//! stream as the exchange reads and writes it (`io`). The connection task
//! that drives them lives with the rest of the data plane,
//! `crate::proxy::h2conn`.

pub mod fields;
pub mod frame;
pub mod io;
pub mod session;

pub use session::H2Settings;
