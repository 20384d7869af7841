//! Every wire limit of the HTTP/1.1 codec, as a named constant with its unit.
//! Each one has a config override in `[server.limits]`; these are the defaults
//! and the hard ceilings a config may not exceed.

/// Largest request or response head (request line + headers), in bytes. Past it: 431 (502 upstream).
pub const DEFAULT_MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most header fields in one head. Past it: 431 (502 upstream).
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// Longest request-target, in bytes. Past it: 414.
pub const DEFAULT_MAX_URI_BYTES: usize = 8 * 1024;

/// Ceiling for `max_headers`: the parser's on-stack header array has this many slots.
pub const MAX_HEADERS_CEILING: usize = 256;
/// Ceiling for `max_head_bytes`, in bytes.
pub const MAX_HEAD_BYTES_CEILING: usize = 1024 * 1024;
/// Largest chunk-size line (size digits and extensions), in bytes, before a chunked body is refused.
pub const MAX_CHUNK_LINE_BYTES: usize = 4096;
/// Largest trailer section of a chunked body, in bytes.
pub const MAX_TRAILER_BYTES: usize = 16 * 1024;
/// Most `Connection` header tokens remembered per message (more is a 400).
pub const MAX_CONNECTION_TOKENS: usize = 16;

/// Limits a head is parsed under (copied out of the config snapshot).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_head_bytes: usize,
    pub max_headers: usize,
    pub max_uri_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            max_uri_bytes: DEFAULT_MAX_URI_BYTES,
        }
    }
}
