//! What one exchange ended with: plain numbers for the metrics and the
//! access log, filled in by the phases as they go.

use std::time::Duration;

/// The route (if one matched), the status the client got (0: none, the
/// connection just closed), and what was moved.
#[derive(Clone, Copy, Default)]
pub struct Outcome {
    pub route: Option<usize>,
    pub status: u16,
    /// `Target::id` of the upstream target used, if any.
    pub target: Option<usize>,
    /// From sending the request upstream to its response head.
    pub upstream_time: Option<Duration>,
    /// Response head and body bytes, where the body length is known up front.
    pub bytes_sent: u64,
    /// Request body bytes, where known up front (Content-Length).
    pub body_in: u64,
    /// Request head bytes.
    pub head_in: u64,
    /// `observe::METHOD_CLASSES` index of the request method.
    pub method_class: u8,
    /// The request came on an HTTP/2 stream.
    pub h2: bool,
}
