//! Field sections: an HTTP/2 request's header block (HPACK, decoded by
//! the `ringway-hpack` crate) becomes the HTTP/1.1 request head the rest of the proxy
//! parses and forwards, checked as RFC 9113 §8 requires; an HTTP/1.1
//! response head becomes an HTTP/2 header block.
//!
//! Our encoder never inserts into the client's dynamic table (every field
//! is a literal without indexing, or a static-table entry), so it is valid
//! whatever SETTINGS_HEADER_TABLE_SIZE the client announced.

use ringway_hpack::{Decoder, put_integer, put_string};

/// Why a request header block was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The block does not decode: a connection error (COMPRESSION_ERROR).
    Compression,
    /// A malformed request (RFC 9113 §8.1.1): the stream is reset with PROTOCOL_ERROR.
    Malformed(&'static str),
    /// The decoded fields exceed `max_header_list`: answered 431.
    TooLarge,
}

/// Per-connection scratch space for decoding, reused by every stream.
#[derive(Default)]
pub struct Scratch {
    method: Vec<u8>,
    path: Vec<u8>,
    authority: Vec<u8>,
    scheme: Vec<u8>,
    protocol: bool,
    fields: Vec<u8>,
    cookies: Vec<u8>,
    /// A regular field came: no pseudo-header may follow.
    regular_seen: bool,
    content_length: Option<u64>,
    /// Where the host field's value sits in `fields`.
    host: Option<(usize, usize)>,
}

/// What a decoded request says beyond its head text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The declared Content-Length, checked against the DATA received.
    pub content_length: Option<u64>,
    pub is_head: bool,
}

/// Field names HTTP/2 forbids (RFC 9113 §8.2.2).
fn connection_specific(name: &[u8]) -> bool {
    matches!(
        name,
        b"connection" | b"keep-alive" | b"proxy-connection" | b"transfer-encoding" | b"upgrade"
    )
}

fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.iter().all(|&b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
        })
}

/// RFC 9113 §8.2.1: no NUL, CR or LF; no leading or trailing whitespace.
fn valid_value(v: &[u8]) -> bool {
    !v.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n')
        && !matches!(v.first(), Some(b' ' | b'\t'))
        && !matches!(v.last(), Some(b' ' | b'\t'))
}

/// Decodes a request's header block into an HTTP/1.1 head at the end of
/// `out` (request line, Host from `:authority`, the fields, cookies joined,
/// `Transfer-Encoding: chunked` when a body follows without a length).
/// The block is always decoded to its end, so the HPACK state stays in step
/// with the client's even when the request is refused.
pub fn decode_request(
    dec: &mut Decoder,
    s: &mut Scratch,
    block: &[u8],
    (max_list, body_follows): (usize, bool),
    out: &mut Vec<u8>,
) -> Result<Request, Refusal> {
    s.reset();
    let mut size = 0usize;
    let mut malformed: Option<&'static str> = None;
    let r = dec.decode(block, |name, value| {
        // Counted before anything is kept: a field referenced from the
        // dynamic table many times (an HPACK bomb) costs its size each time.
        size = size.saturating_add(name.len() + value.len() + 32);
        if size > max_list || malformed.is_some() {
            return;
        }
        if let Err(m) = s.take(name, value) {
            malformed = Some(m);
        }
    });
    if r.is_err() {
        return Err(Refusal::Compression);
    }
    if size > max_list {
        return Err(Refusal::TooLarge);
    }
    if let Some(m) = malformed {
        return Err(Refusal::Malformed(m));
    }
    s.check_pseudo().map_err(Refusal::Malformed)?;
    s.write_head(body_follows, out);
    Ok(Request {
        content_length: s.content_length,
        is_head: s.method == b"HEAD",
    })
}

impl Scratch {
    fn reset(&mut self) {
        for v in [
            &mut self.method,
            &mut self.path,
            &mut self.authority,
            &mut self.scheme,
            &mut self.fields,
            &mut self.cookies,
        ] {
            v.clear();
        }
        self.protocol = false;
        self.regular_seen = false;
        self.content_length = None;
        self.host = None;
    }

    /// Takes one decoded field: a pseudo-header into its slot, a regular
    /// field into `fields` (cookies apart, host remembered); `Err` says
    /// how the request is malformed.
    fn take(&mut self, name: &[u8], value: &[u8]) -> Result<(), &'static str> {
        if let Some(pseudo) = name.strip_prefix(b":") {
            if self.regular_seen {
                return Err("a pseudo-header after a regular field");
            }
            let slot = match pseudo {
                b"method" => &mut self.method,
                b"path" => &mut self.path,
                b"authority" => &mut self.authority,
                b"scheme" => &mut self.scheme,
                b"protocol" => {
                    self.protocol = true;
                    return Ok(());
                }
                _ => return Err("an unknown pseudo-header"),
            };
            if !slot.is_empty() || value.is_empty() {
                return Err("a repeated or empty pseudo-header");
            }
            if !valid_value(value) || value.contains(&b' ') && pseudo != b"authority" {
                return Err("a pseudo-header with a forbidden character");
            }
            slot.extend_from_slice(value);
            return Ok(());
        }
        self.regular_seen = true;
        if !valid_name(name) {
            return Err("a field name that is not a lowercase token");
        }
        if !valid_value(value) {
            return Err("a field value with a forbidden character");
        }
        if connection_specific(name) {
            return Err("a connection-specific field");
        }
        match name {
            b"te" if value != b"trailers" => return Err("te other than \"trailers\""),
            b"cookie" => {
                if !self.cookies.is_empty() {
                    self.cookies.extend_from_slice(b"; ");
                }
                self.cookies.extend_from_slice(value);
                return Ok(());
            }
            b"host" => {
                // Kept only when there is no :authority (RFC 9113 §8.3.1).
                if self.host.is_some() {
                    return Err("a repeated host field");
                }
                let at = self.fields.len();
                self.fields.extend_from_slice(value);
                self.host = Some((at, self.fields.len()));
                return Ok(());
            }
            b"content-length" => {
                let n = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok());
                match (n, self.content_length) {
                    (Some(n), None) => self.content_length = Some(n),
                    (Some(n), Some(m)) if n == m => return Ok(()),
                    _ => return Err("a bad or conflicting content-length"),
                }
            }
            _ => {}
        }
        self.fields.extend_from_slice(name);
        self.fields.extend_from_slice(b": ");
        self.fields.extend_from_slice(value);
        self.fields.extend_from_slice(b"\r\n");
        Ok(())
    }

    /// The pseudo-headers make an origin-form request we forward.
    fn check_pseudo(&self) -> Result<(), &'static str> {
        if self.protocol {
            return Err("extended CONNECT is not supported");
        }
        if self.method.is_empty() {
            return Err("no :method");
        }
        if self.method == b"CONNECT" {
            return Err("CONNECT is not supported");
        }
        if self.scheme.is_empty() || self.path.is_empty() {
            return Err("no :scheme or :path");
        }
        if self.path[0] != b'/' && !(self.path == b"*" && self.method == b"OPTIONS") {
            return Err("a :path that is not origin-form");
        }
        Ok(())
    }

    /// Writes the HTTP/1.1 head: request line, Host from `:authority`
    /// (else the host field), the fields, cookies joined, and
    /// `Transfer-Encoding: chunked` when a body follows without a length.
    fn write_head(&self, body_follows: bool, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.method);
        out.push(b' ');
        out.extend_from_slice(&self.path);
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let fields_from = match (self.authority.is_empty(), self.host) {
            (false, Some((a, b))) => {
                // :authority wins; the host field's value is dropped.
                out.extend_from_slice(b"host: ");
                out.extend_from_slice(&self.authority);
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(&self.fields[..a]);
                b
            }
            (false, None) => {
                out.extend_from_slice(b"host: ");
                out.extend_from_slice(&self.authority);
                out.extend_from_slice(b"\r\n");
                0
            }
            (true, Some((a, b))) => {
                out.extend_from_slice(&self.fields[..a]);
                out.extend_from_slice(b"host: ");
                out.extend_from_slice(&self.fields[a..b]);
                out.extend_from_slice(b"\r\n");
                b
            }
            (true, None) => 0,
        };
        out.extend_from_slice(&self.fields[fields_from..]);
        if !self.cookies.is_empty() {
            out.extend_from_slice(b"cookie: ");
            out.extend_from_slice(&self.cookies);
            out.extend_from_slice(b"\r\n");
        }
        if body_follows && self.content_length.is_none() {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Decodes a trailer section into `name: value\r\n` lines at the end of
/// `out` (pseudo-headers and connection-specific fields refused).
pub fn decode_trailers(
    dec: &mut Decoder,
    block: &[u8],
    max_list: usize,
    out: &mut Vec<u8>,
) -> Result<(), Refusal> {
    let mut size = 0usize;
    let mut malformed = None;
    let r = dec.decode(block, |name, value| {
        size = size.saturating_add(name.len() + value.len() + 32);
        if size > max_list || malformed.is_some() {
            return;
        }
        if name.starts_with(b":")
            || !valid_name(name)
            || !valid_value(value)
            || connection_specific(name)
        {
            malformed = Some("a trailer field that is not allowed");
            return;
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    });
    match (r, malformed) {
        (Err(_), _) => Err(Refusal::Compression),
        _ if size > max_list => Err(Refusal::TooLarge),
        (_, Some(m)) => Err(Refusal::Malformed(m)),
        _ => Ok(()),
    }
}

/// Static-table indices (RFC 7541 Appendix A) of response field names worth naming by index.
fn static_name(name: &[u8]) -> Option<usize> {
    Some(match name {
        b"accept-ranges" => 18,
        b"access-control-allow-origin" => 20,
        b"age" => 21,
        b"allow" => 22,
        b"cache-control" => 24,
        b"content-disposition" => 25,
        b"content-encoding" => 26,
        b"content-language" => 27,
        b"content-length" => 28,
        b"content-location" => 29,
        b"content-range" => 30,
        b"content-type" => 31,
        b"date" => 33,
        b"etag" => 34,
        b"expires" => 36,
        b"last-modified" => 44,
        b"link" => 45,
        b"location" => 46,
        b"retry-after" => 53,
        b"server" => 54,
        b"set-cookie" => 55,
        b"vary" => 59,
        b"via" => 60,
        b"www-authenticate" => 61,
        _ => return None,
    })
}

/// Appends `:status` to a header block.
pub fn put_status(out: &mut Vec<u8>, status: u16) {
    let indexed = match status {
        200 => 8,
        204 => 9,
        206 => 10,
        304 => 11,
        400 => 12,
        404 => 13,
        500 => 14,
        _ => 0,
    };
    if indexed != 0 {
        out.push(0x80 | indexed);
        return;
    }
    let mut digits = itoa::Buffer::new();
    // Literal without indexing, name :status (index 8).
    out.push(0x08);
    put_string(out, digits.format(status).as_bytes());
}

/// Whether an HTTP/1.1 response field is left out of an HTTP/2 response.
pub fn dropped_in_h2(name: &[u8]) -> bool {
    const DROP: [&[u8]; 6] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
        b"trailer",
    ];
    DROP.iter().any(|d| d.eq_ignore_ascii_case(name))
}

/// Appends one field, its name lowercased, as a literal without indexing.
pub fn put_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    let mut lower = [0u8; 64];
    let name_lc: &[u8] = if name.len() <= lower.len() {
        for (d, s) in lower.iter_mut().zip(name) {
            *d = s.to_ascii_lowercase();
        }
        &lower[..name.len()]
    } else {
        name
    };
    match static_name(name_lc) {
        Some(i) => put_integer(out, 0x00, 4, i),
        None => {
            out.push(0x00);
            if name_lc.len() == name.len() && name_lc.as_ptr() == name.as_ptr() {
                // Longer than the scratch: lowercase on the way out.
                put_integer(out, 0, 7, name.len());
                out.extend(name.iter().map(u8::to_ascii_lowercase));
            } else {
                put_string(out, name_lc);
            }
        }
    }
    put_string(out, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(fields: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, v) in fields {
            out.push(0x00);
            put_string(&mut out, n);
            put_string(&mut out, v);
        }
        out
    }

    fn decode(fields: &[(&[u8], &[u8])], body: bool) -> Result<(String, Request), Refusal> {
        let mut d = Decoder::with_limit(4096);
        let mut s = Scratch::default();
        let mut out = Vec::new();
        let r = decode_request(&mut d, &mut s, &encode(fields), (16384, body), &mut out)?;
        Ok((String::from_utf8(out).unwrap(), r))
    }

    #[test]
    fn a_request_becomes_an_http11_head() {
        let (head, r) = decode(
            &[
                (b":method", b"POST"),
                (b":scheme", b"https"),
                (b":authority", b"api.example"),
                (b":path", b"/a?b=1"),
                (b"cookie", b"a=1"),
                (b"accept", b"*/*"),
                (b"cookie", b"b=2"),
                (b"te", b"trailers"),
            ],
            true,
        )
        .unwrap();
        assert_eq!(
            head,
            "POST /a?b=1 HTTP/1.1\r\nhost: api.example\r\naccept: */*\r\nte: trailers\r\ncookie: a=1; b=2\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        assert_eq!(r.content_length, None);
        let (head, r) = decode(
            &[
                (b":method", b"PUT"),
                (b":scheme", b"http"),
                (b":path", b"/"),
                (b"host", b"h.example"),
                (b"content-length", b"5"),
            ],
            true,
        )
        .unwrap();
        assert_eq!(
            head,
            "PUT / HTTP/1.1\r\nhost: h.example\r\ncontent-length: 5\r\n\r\n"
        );
        assert_eq!(r.content_length, Some(5));
    }

    #[test]
    fn malformed_requests_are_refused() {
        let base: [(&[u8], &[u8]); 3] = [
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":path", b"/"),
        ];
        for bad in [
            &[(&b"connection"[..], &b"close"[..])][..],
            &[(b"te", b"gzip")],
            &[(b"Upper", b"x")],
            &[(b"x", b"a\r\nb")],
            &[(b"x", b" lead")],
            &[(b"content-length", b"1"), (b"content-length", b"2")],
            &[(b":status", b"200")],
        ] {
            let mut f = base.to_vec();
            f.extend_from_slice(bad);
            assert!(
                matches!(decode(&f, false), Err(Refusal::Malformed(_))),
                "{bad:?}"
            );
        }
        assert!(decode(&[(b":method", b"GET"), (b":path", b"/")], false).is_err());
        assert!(decode(&[(b"x", b"1"), (b":method", b"GET")], false).is_err());
        assert!(matches!(
            decode(&[(b":method", b"CONNECT"), (b":authority", b"a:1")], false),
            Err(Refusal::Malformed(_))
        ));
    }

    #[test]
    fn a_referenced_entry_counts_every_time() {
        // One 1000-byte entry inserted into the dynamic table, then
        // referenced 100 times: 100 KiB decoded from ~1 KiB.
        let mut block = vec![0x40];
        put_string(&mut block, b"x-big");
        put_string(&mut block, &[b'a'; 1000]);
        let mut d = Decoder::with_limit(4096);
        let mut s = Scratch::default();
        let mut out = Vec::new();
        let mut first = block.clone();
        for (n, v) in [
            (&b":method"[..], &b"GET"[..]),
            (b":scheme", b"http"),
            (b":path", b"/"),
        ] {
            let mut f = vec![0x00];
            put_string(&mut f, n);
            put_string(&mut f, v);
            first.splice(0..0, f);
        }
        first.extend(std::iter::repeat_n(0x80 | 62, 100));
        let r = decode_request(&mut d, &mut s, &first, (16384, false), &mut out);
        assert_eq!(r, Err(Refusal::TooLarge));
        assert!(out.is_empty());
    }

    #[test]
    fn a_size_update_is_allowed_only_before_the_first_field() {
        let fields = encode(&[
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":path", b"/"),
            (b"x-long", &[b'v'; 300]),
        ]);
        let run = |block: &[u8]| {
            decode_request(
                &mut Decoder::with_limit(4096),
                &mut Scratch::default(),
                block,
                (16384, false),
                &mut Vec::new(),
            )
            .map(|_| ())
        };
        assert_eq!(run(&fields), Ok(()));
        let mut start = vec![0x20];
        start.extend_from_slice(&fields);
        assert_eq!(run(&start), Ok(()));
        let mut late = fields.clone();
        late.push(0x20);
        late.extend_from_slice(&fields);
        assert_eq!(run(&late), Err(Refusal::Compression));
        // After an indexed field and after a literal with a static name.
        assert_eq!(run(&[0x82, 0x3f, 0xe1, 0x1f]), Err(Refusal::Compression));
        assert_eq!(run(&[0x44, 0x01, b'/', 0x20]), Err(Refusal::Compression));
    }

    #[test]
    fn the_encoder_output_decodes() {
        let mut block = Vec::new();
        put_status(&mut block, 200);
        put_status(&mut block, 418);
        put_field(&mut block, b"Content-Type", b"text/plain");
        put_field(&mut block, b"X-Custom-Thing", b"v");
        let long = vec![b'N'; 100];
        put_field(&mut block, &long, b"w");
        let mut got = Vec::new();
        Decoder::with_limit(4096)
            .decode(&block, |n, v| got.push((n.to_vec(), v.to_vec())))
            .unwrap();
        assert_eq!(got[0], (b":status".to_vec(), b"200".to_vec()));
        assert_eq!(got[1], (b":status".to_vec(), b"418".to_vec()));
        assert_eq!(got[2], (b"content-type".to_vec(), b"text/plain".to_vec()));
        assert_eq!(got[3], (b"x-custom-thing".to_vec(), b"v".to_vec()));
        assert_eq!(got[4], (vec![b'n'; 100], b"w".to_vec()));
        let mut big = Vec::new();
        put_integer(&mut big, 0, 7, 1000);
        assert_eq!(big, vec![127, 233, 6]);
    }
}
