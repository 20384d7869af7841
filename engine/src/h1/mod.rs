//! The HTTP/1.1 codec: request and response heads parsed into offsets,
//! strict framing decisions, the chunked coding, and the head writers.
//! No sockets and no policy live here.
#![forbid(unsafe_code)]

pub mod chunked;
pub mod error;
pub mod framing;
pub mod header;
pub mod limits;
pub mod request;
pub mod response;
pub mod write;

pub use error::H1Error;
pub use framing::Framing;
pub use limits::Limits;
