//! ringway: a thread-per-core API gateway and reverse proxy on io_uring.
pub mod h1;
