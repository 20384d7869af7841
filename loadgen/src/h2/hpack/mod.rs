//! HPACK (RFC 7541), the parts a load generator needs:
//!
//! - `encode.rs`: request header blocks from the static table only
//!   (indexed fields and literals without indexing), so a target's block is
//!   built once and sent verbatim on every stream;
//! - decoding (response header blocks, with the dynamic table the server
//!   may fill) is the `ringway-hpack` crate's, shared with the gateway.

mod encode;

pub use encode::{RequestHead, encode_request};
pub use ringway_hpack::Decoder;
use ringway_hpack::STATIC;
