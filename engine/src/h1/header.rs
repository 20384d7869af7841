//! Header fields as offsets into the connection's read buffer, and the
//! classification of the names the proxy cares about.

/// A byte range `start..end` into the buffer a head was parsed from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    /// The position of `part` inside `buf`. httparse hands out sub-slices of
    /// the buffer, except for a few values it substitutes (a reason phrase
    /// that is not UTF-8 comes back as a static ""): anything not inside
    /// `buf` becomes an empty span.
    pub fn of(buf: &[u8], part: &[u8]) -> Span {
        let base = buf.as_ptr() as usize;
        let at = part.as_ptr() as usize;
        match at.checked_sub(base) {
            Some(start) if start + part.len() <= buf.len() => Span {
                start: start as u32,
                end: (start + part.len()) as u32,
            },
            _ => Span::default(),
        }
    }
    #[inline]
    pub fn get<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        &buf[self.start as usize..self.end as usize]
    }
    #[inline]
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// The names the proxy treats specially. Everything else is `Other` and is forwarded as is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Other,
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    /// Keep-Alive, TE, Trailer, Proxy-Connection, and every name a Connection header lists.
    HopByHop,
    /// `Upgrade`: hop-by-hop, except on a request the route lets upgrade and on a 101 response.
    Upgrade,
    Expect,
    XForwardedFor,
    XForwardedProto,
    XForwardedHost,
    /// RFC 7239 `Forwarded`: kept from trusted proxies only.
    Forwarded,
    Via,
}

#[derive(Clone, Copy, Debug)]
pub struct Header {
    pub name: Span,
    pub value: Span,
    pub kind: Kind,
}

/// Records httparse's header fields as spans of `buf`, classified.
pub fn collect(buf: &[u8], parsed: &[httparse::Header<'_>], out: &mut Vec<Header>) {
    out.clear();
    out.extend(parsed.iter().map(|h| Header {
        name: Span::of(buf, h.name.as_bytes()),
        value: Span::of(buf, h.value),
        kind: classify(h.name.as_bytes()),
    }));
}

/// The wire error for an httparse failure.
pub fn parse_error(e: httparse::Error) -> super::H1Error {
    match e {
        httparse::Error::TooManyHeaders => super::H1Error::TooManyHeaders,
        _ => super::H1Error::Syntax,
    }
}

/// Classifies a header name, ASCII case-insensitively, without allocating.
pub fn classify(name: &[u8]) -> Kind {
    let eq = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
    match name.len() {
        2 if eq("te") => Kind::HopByHop,
        3 if eq("via") => Kind::Via,
        4 if eq("host") => Kind::Host,
        6 if eq("expect") => Kind::Expect,
        9 if eq("forwarded") => Kind::Forwarded,
        7 if eq("trailer") => Kind::HopByHop,
        7 if eq("upgrade") => Kind::Upgrade,
        10 if eq("connection") || eq("keep-alive") => {
            if eq("connection") {
                Kind::Connection
            } else {
                Kind::HopByHop
            }
        }
        14 if eq("content-length") => Kind::ContentLength,
        // Belongs to the h2c upgrade, which is never let through.
        14 if eq("http2-settings") => Kind::HopByHop,
        15 if eq("x-forwarded-for") => Kind::XForwardedFor,
        16 if eq("proxy-connection") => Kind::HopByHop,
        16 if eq("x-forwarded-host") => Kind::XForwardedHost,
        17 if eq("transfer-encoding") => Kind::TransferEncoding,
        17 if eq("x-forwarded-proto") => Kind::XForwardedProto,
        _ => Kind::Other,
    }
}

/// Calls `f` with each comma-separated, OWS-trimmed, non-empty element of a list-valued field.
pub fn for_each_token(value: &[u8], mut f: impl FnMut(&[u8])) {
    for part in value.split(|&b| b == b',') {
        let t = trim_ows(part);
        if !t.is_empty() {
            f(t);
        }
    }
}

pub fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Parses a Content-Length value: 1*DIGIT, no sign, no overflow. Lists (`5, 5`) are split by the caller.
pub fn parse_content_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// Folds all Content-Length fields (each possibly a list) into one value; differing values are an error.
pub fn merge_content_length(acc: &mut Option<u64>, value: &[u8]) -> Result<(), super::H1Error> {
    let mut bad = false;
    for_each_token(value, |t| match parse_content_length(t) {
        Some(n) if acc.is_none_or(|a| a == n) => *acc = Some(n),
        _ => bad = true,
    });
    // An empty field value, or one made of commas only, is invalid too.
    if bad || acc.is_none() {
        Err(super::H1Error::BadContentLength)
    } else {
        Ok(())
    }
}

/// Marks every header named by a Connection token as hop-by-hop. Returns (close, keep_alive, upgrade) flags.
pub fn apply_connection_tokens(
    buf: &[u8],
    headers: &mut [Header],
) -> Result<ConnectionFlags, super::H1Error> {
    let mut flags = ConnectionFlags::default();
    let mut tokens = [Span::default(); super::limits::MAX_CONNECTION_TOKENS];
    let mut n = 0usize;
    let mut overflow = false;
    for h in headers.iter().filter(|h| h.kind == Kind::Connection) {
        for_each_token(h.value.get(buf), |t| {
            if t.eq_ignore_ascii_case(b"close") {
                flags.close = true;
            } else if t.eq_ignore_ascii_case(b"keep-alive") {
                flags.keep_alive = true;
            } else {
                if t.eq_ignore_ascii_case(b"upgrade") {
                    flags.upgrade = true;
                }
                if n == tokens.len() {
                    overflow = true;
                } else {
                    tokens[n] = Span::of(buf, t);
                    n += 1;
                }
            }
        });
    }
    if overflow {
        return Err(super::H1Error::TooManyConnectionTokens);
    }
    if n > 0 {
        for h in headers.iter_mut() {
            let name = h.name.get(buf);
            if tokens[..n]
                .iter()
                .any(|t| t.get(buf).eq_ignore_ascii_case(name))
            {
                match h.kind {
                    // Framing and Host are never dropped on a client's say-so.
                    Kind::Host | Kind::ContentLength | Kind::TransferEncoding | Kind::Upgrade => {}
                    _ => h.kind = Kind::HopByHop,
                }
            }
        }
    }
    Ok(flags)
}

#[derive(Clone, Copy, Debug, Default)]
pub struct ConnectionFlags {
    pub close: bool,
    pub keep_alive: bool,
    pub upgrade: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_values() {
        let cases: &[(&[u8], Option<u64>)] = &[
            (b"0", Some(0)),
            (b"42", Some(42)),
            (b"18446744073709551615", None),
            (b"9999999999999999999", Some(9_999_999_999_999_999_999)),
            (b"+1", None),
            (b"-1", None),
            (b"1 ", None),
            (b"0x10", None),
            (b"", None),
        ];
        for (v, want) in cases {
            assert_eq!(
                parse_content_length(v),
                *want,
                "{:?}",
                String::from_utf8_lossy(v)
            );
        }
    }

    #[test]
    fn content_length_lists() {
        let mut acc = None;
        assert!(merge_content_length(&mut acc, b"5, 5").is_ok());
        assert!(merge_content_length(&mut acc, b"5").is_ok());
        assert_eq!(acc, Some(5));
        assert!(merge_content_length(&mut acc, b"6").is_err());
        let mut acc = None;
        assert!(merge_content_length(&mut acc, b",").is_err());
        let mut acc = None;
        assert!(merge_content_length(&mut acc, b"5, 6").is_err());
    }

    #[test]
    fn classify_names() {
        assert_eq!(classify(b"Content-Length"), Kind::ContentLength);
        assert_eq!(classify(b"TRANSFER-ENCODING"), Kind::TransferEncoding);
        assert_eq!(classify(b"keep-alive"), Kind::HopByHop);
        assert_eq!(classify(b"Proxy-Connection"), Kind::HopByHop);
        assert_eq!(classify(b"X-Forwarded-Host"), Kind::XForwardedHost);
        assert_eq!(classify(b"x-custom"), Kind::Other);
    }
}
