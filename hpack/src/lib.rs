//! HPACK (RFC 7541) decoding, shared by the gateway's HTTP/2 server side
//! (request header blocks) and ringway-load (response header blocks).
//!
//! [`Decoder`] walks a header block, keeps the dynamic table in step with
//! the peer's encoder and hands each field to a callback, borrowed from the
//! block, the tables or a reused scratch buffer. Huffman strings are decoded
//! by `httlib-huffman`'s table-driven decoder (a path costs ~0.1 µs; the
//! general-purpose crate used before rebuilt a code table per string, ~18 µs).
//! Encoding stays with each user (both only ever write static-table indices
//! and literals without indexing); the integer and string primitives they
//! write with are here.

mod decode;
mod encode;

pub use decode::{Decoder, HpackError};
pub use encode::{put_integer, put_string};

/// The static table (RFC 7541 Appendix A); index `i` is `STATIC[i - 1]`.
pub const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];
