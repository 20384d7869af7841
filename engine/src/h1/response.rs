//! Upstream response heads: parse, then decide framing (RFC 9112 §6.3) and
//! whether the upstream connection may be pooled again.

use super::H1Error;
use super::header::{self, Header, Kind, Span};
use super::limits::{Limits, MAX_HEADERS_CEILING};

use super::framing::Framing;

#[derive(Debug)]
pub struct ResponseHead {
    pub status: u16,
    pub reason: Span,
    pub minor_version: u8,
    pub headers: Vec<Header>,
    pub head_len: usize,
    pub framing: Framing,
    /// The upstream is willing to keep the connection open.
    pub reusable: bool,
}

impl Default for ResponseHead {
    fn default() -> Self {
        ResponseHead {
            status: 0,
            reason: Span::default(),
            minor_version: 1,
            headers: Vec::with_capacity(32),
            head_len: 0,
            framing: Framing::None,
            reusable: true,
        }
    }
}

/// Parses an upstream response head. `request_was_head` makes every response bodiless.
pub fn parse(
    buf: &[u8],
    limits: &Limits,
    request_was_head: bool,
    head: &mut ResponseHead,
) -> Result<bool, H1Error> {
    let mut slots =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CEILING];
    let max_headers = limits.max_headers.min(MAX_HEADERS_CEILING);
    let mut resp = httparse::Response::new(&mut []);
    let head_len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut slots[..max_headers],
    ) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() >= limits.max_head_bytes {
                return Err(H1Error::HeadTooLarge);
            }
            return Ok(false);
        }
        Err(e) => return Err(header::parse_error(e)),
    };
    if head_len > limits.max_head_bytes {
        return Err(H1Error::HeadTooLarge);
    }
    head.status = resp.code.unwrap_or(0);
    if !(100..=599).contains(&head.status) {
        return Err(H1Error::Syntax);
    }
    head.reason = Span::of(buf, resp.reason.unwrap_or("").as_bytes());
    head.minor_version = resp.version.unwrap_or(1);
    head.head_len = head_len;
    header::collect(buf, resp.headers, &mut head.headers);
    let flags = header::apply_connection_tokens(buf, &mut head.headers)?;
    let mut content_length = None;
    let mut te_count = 0;
    let mut te_chunked = false;
    for h in &head.headers {
        match h.kind {
            Kind::ContentLength => {
                header::merge_content_length(&mut content_length, h.value.get(buf))?
            }
            Kind::TransferEncoding => {
                te_count += 1;
                te_chunked = h.value.get(buf).eq_ignore_ascii_case(b"chunked");
            }
            _ => {}
        }
    }
    let bodiless =
        request_was_head || head.status < 200 || head.status == 204 || head.status == 304;
    head.framing = match (te_count, content_length) {
        _ if bodiless => Framing::None,
        (0, None) => Framing::UntilClose,
        (0, Some(n)) => Framing::Length(n),
        (_, Some(_)) => return Err(H1Error::AmbiguousFraming),
        (1, None) if te_chunked && head.minor_version == 1 => Framing::Chunked,
        _ => return Err(H1Error::BadTransferEncoding),
    };
    head.reusable = head.framing != Framing::UntilClose
        && if head.minor_version == 1 {
            !flags.close
        } else {
            flags.keep_alive && !flags.close
        };
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing(raw: &[u8], was_head: bool) -> Result<(Framing, bool), H1Error> {
        let mut h = ResponseHead::default();
        parse(raw, &Limits::default(), was_head, &mut h).map(|done| {
            assert!(done);
            (h.framing, h.reusable)
        })
    }

    /// A response, whether the request was HEAD, and the framing and reusability it gets.
    type Case = (&'static [u8], bool, Result<(Framing, bool), H1Error>);

    #[test]
    fn framing_table() {
        use Framing::*;
        let cases: &[Case] = &[
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
                false,
                Ok((Length(3), true)),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
                true,
                Ok((None, true)),
            ),
            (b"HTTP/1.1 204 No Content\r\n\r\n", false, Ok((None, true))),
            (
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
                false,
                Ok((None, true)),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                Ok((Chunked, true)),
            ),
            (b"HTTP/1.1 200 OK\r\n\r\n", false, Ok((UntilClose, false))),
            (
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
                false,
                Ok((Length(1), false)),
            ),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n",
                false,
                Ok((Length(1), false)),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                Err(H1Error::AmbiguousFraming),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                false,
                Err(H1Error::BadContentLength),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                false,
                Err(H1Error::BadTransferEncoding),
            ),
            // Regression (fuzz): a reason phrase with obs-text used to panic when located.
            (
                b"HTTP/1.1 200 \xff\xfe OK\r\nContent-Length: 0\r\n\r\n",
                false,
                Ok((Length(0), true)),
            ),
        ];
        for (raw, was_head, want) in cases {
            assert_eq!(
                framing(raw, *was_head),
                *want,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }
}
