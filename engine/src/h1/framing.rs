//! How a message body is delimited (RFC 9112 §6.3). One type for every
//! body ringway reads or writes — a client's request body, an upstream's
//! response body, and the body it sends on — like hyper's decoder kinds.

/// The framing of one message body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body: a request without one; a response to HEAD, 1xx, 204 or 304.
    None,
    /// Exactly this many bytes (Content-Length).
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
    /// Everything until the sender closes (responses only).
    UntilClose,
}

impl Framing {
    /// Whether any body bytes follow the head.
    pub fn has_body(self) -> bool {
        !matches!(self, Framing::None | Framing::Length(0))
    }

    /// The body's length, when the head says it.
    pub fn known_length(self) -> Option<u64> {
        match self {
            Framing::Length(n) => Some(n),
            _ => None,
        }
    }
}
