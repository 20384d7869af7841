//! Wire errors of the HTTP/1.1 codec and the one place they become status codes.

use std::fmt;

/// What was wrong with a message on the wire. Small and `Copy`, like httparse's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum H1Error {
    /// The head is not valid HTTP/1.1 syntax (bad token, bad version, obs-fold, space before colon, CTL in a value...).
    Syntax,
    /// The head is larger than `max_head_bytes`.
    HeadTooLarge,
    /// More header fields than `max_headers`.
    TooManyHeaders,
    /// The request-target is longer than `max_uri_bytes`.
    UriTooLong,
    /// Content-Length and Transfer-Encoding together, or Transfer-Encoding in HTTP/1.0.
    AmbiguousFraming,
    /// Content-Length not a plain decimal, or duplicates that differ.
    BadContentLength,
    /// A Transfer-Encoding other than a single final `chunked`.
    BadTransferEncoding,
    /// A chunk size, extension, CRLF or trailer that breaks RFC 9112 §7.1.
    BadChunk,
    /// HTTP/1.1 request with no Host, or with several.
    BadHost,
    /// A request-target form ringway does not forward (authority-form, `*` with a method other than OPTIONS).
    BadTarget,
    /// An `Expect` value other than `100-continue`.
    BadExpect,
    /// Too many `Connection` tokens.
    TooManyConnectionTokens,
}

impl H1Error {
    /// The status a client gets for this error in its request.
    pub fn status(self) -> u16 {
        match self {
            H1Error::HeadTooLarge | H1Error::TooManyHeaders => 431,
            H1Error::UriTooLong => 414,
            H1Error::BadExpect => 417,
            H1Error::Syntax
            | H1Error::AmbiguousFraming
            | H1Error::BadContentLength
            | H1Error::BadTransferEncoding
            | H1Error::BadChunk
            | H1Error::BadHost
            | H1Error::BadTarget
            | H1Error::TooManyConnectionTokens => 400,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            H1Error::Syntax => "malformed request",
            H1Error::HeadTooLarge => "request header too large",
            H1Error::TooManyHeaders => "too many header fields",
            H1Error::UriTooLong => "request-target too long",
            H1Error::AmbiguousFraming => "ambiguous message framing",
            H1Error::BadContentLength => "invalid Content-Length",
            H1Error::BadTransferEncoding => "unsupported Transfer-Encoding",
            H1Error::BadChunk => "invalid chunked encoding",
            H1Error::BadHost => "missing or duplicate Host",
            H1Error::BadTarget => "unsupported request-target",
            H1Error::BadExpect => "unsupported Expect",
            H1Error::TooManyConnectionTokens => "too many Connection tokens",
        }
    }
}

impl fmt::Display for H1Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for H1Error {}

/// Reason phrase for the statuses ringway itself produces.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}
