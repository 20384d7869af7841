//! Request heads: parse with httparse into offsets, then decide the framing
//! (RFC 9112 §6.3) and whether the connection persists (§9.3).

use super::H1Error;
use super::header::{self, Header, Kind, Span};
use super::limits::{Limits, MAX_HEADERS_CEILING};

use super::framing::Framing;

/// A parsed request head. All positions are offsets into the buffer it was
/// parsed from; the struct is reused across the requests of a connection so
/// its header vector stops allocating after the first request.
#[derive(Debug)]
pub struct RequestHead {
    pub method: Span,
    /// The origin-form path and query (`/a/b?c`), or `*`.
    pub target: Span,
    /// The authority of an absolute-form target (RFC 9112 §3.2.2), which replaces Host.
    pub authority: Option<Span>,
    pub minor_version: u8,
    pub headers: Vec<Header>,
    /// Bytes of the head including the blank line.
    pub head_len: usize,
    pub framing: Framing,
    /// The client wants the connection kept open after this exchange.
    pub keep_alive: bool,
    pub expect_continue: bool,
    /// Value of the (single) Host header, or the absolute-form authority.
    pub host: Option<Span>,
    /// The protocol an HTTP/1.1 request asks to switch to (`Connection: upgrade` plus one `Upgrade`).
    pub upgrade: Option<Span>,
}

impl Default for RequestHead {
    fn default() -> Self {
        RequestHead {
            method: Span::default(),
            target: Span::default(),
            authority: None,
            minor_version: 1,
            headers: Vec::with_capacity(32),
            head_len: 0,
            framing: Framing::None,
            keep_alive: true,
            expect_continue: false,
            host: None,
            upgrade: None,
        }
    }
}

impl RequestHead {
    pub fn method<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        self.method.get(buf)
    }
    /// Path without the query.
    pub fn path<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        let t = self.target.get(buf);
        match t.iter().position(|&b| b == b'?') {
            Some(q) => &t[..q],
            None => t,
        }
    }
    /// Query without the `?` (empty when absent).
    /// Resolves the dot segments of the path (RFC 3986 §5.2.4, `%2e` counted
    /// as `.`; with `merge_slashes`, `//` runs collapse) in place: the
    /// target span shrinks and the query moves up behind the new path, so
    /// everything that reads the head afterwards (router, policies, access
    /// log, the forwarded request line) sees the normalized path. Every
    /// other byte stays as the client sent it. A path that would climb
    /// above `/` is an error (400). Paths without a `.`/`%2e` segment (or
    /// `//`) are left untouched after one scan.
    pub fn normalize_path(
        &mut self,
        buf: &mut [u8],
        merge_slashes: bool,
    ) -> Result<(), ringway_router::dots::AboveRoot> {
        use ringway_router::dots;
        let (start, end) = (self.target.start as usize, self.target.end as usize);
        let target = &buf[start..end];
        let path_len = target
            .iter()
            .position(|&b| b == b'?')
            .unwrap_or(target.len());
        if !dots::needs_work(&target[..path_len], merge_slashes) {
            return Ok(());
        }
        let new_len = dots::normalize(&mut buf[start..start + path_len], merge_slashes)?;
        buf.copy_within(start + path_len..end, start + new_len);
        self.target.end = (end - (path_len - new_len)) as u32;
        Ok(())
    }

    pub fn query<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        let t = self.target.get(buf);
        match t.iter().position(|&b| b == b'?') {
            Some(q) => &t[q + 1..],
            None => &[],
        }
    }
    pub fn has_body(&self) -> bool {
        self.framing.has_body()
    }
    /// Safe to replay on another connection (RFC 9110 §9.2.2).
    pub fn is_idempotent(&self, buf: &[u8]) -> bool {
        matches!(
            self.method(buf),
            b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PUT" | b"DELETE"
        )
    }
    pub fn is_head(&self, buf: &[u8]) -> bool {
        self.method(buf) == b"HEAD"
    }
}

/// Parses one request head from the front of `buf`.
///
/// `Ok(false)`: the head is not complete yet (read more). `Ok(true)`: `head`
/// is filled in. Errors say which status to answer; nothing of a request that
/// errors is ever forwarded.
pub fn parse(buf: &[u8], limits: &Limits, head: &mut RequestHead) -> Result<bool, H1Error> {
    // Uninitialized slots: httparse writes only the ones it fills, so a parse
    // does not first zero 8 KiB of header array.
    let mut slots =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CEILING];
    let max_headers = limits.max_headers.min(MAX_HEADERS_CEILING);
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, &mut slots[..max_headers]) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            // Tell a long request line (414) from a long head (431) before giving up.
            let line_end = buf.iter().position(|&b| b == b'\n');
            if line_end.is_none() && buf.len() > limits.max_uri_bytes + 64 {
                return Err(H1Error::UriTooLong);
            }
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
    let method = req.method.unwrap_or_default();
    let path = req.path.unwrap_or_default();
    if path.len() > limits.max_uri_bytes {
        return Err(H1Error::UriTooLong);
    }
    head.method = Span::of(buf, method.as_bytes());
    head.minor_version = req.version.unwrap_or(1);
    head.head_len = head_len;
    header::collect(buf, req.headers, &mut head.headers);
    set_target(buf, head, method.as_bytes(), path.as_bytes())?;
    analyze(buf, head)?;
    Ok(true)
}

fn set_target(
    buf: &[u8],
    head: &mut RequestHead,
    method: &[u8],
    path: &[u8],
) -> Result<(), H1Error> {
    head.authority = None;
    if path.first() == Some(&b'/') {
        head.target = Span::of(buf, path);
        return Ok(());
    }
    if path == b"*" {
        if method != b"OPTIONS" {
            return Err(H1Error::BadTarget);
        }
        head.target = Span::of(buf, path);
        return Ok(());
    }
    // absolute-form: scheme "://" authority [path-abempty] [ "?" query ]
    let rest = if path.len() > 7 && path[..7].eq_ignore_ascii_case(b"http://") {
        &path[7..]
    } else if path.len() > 8 && path[..8].eq_ignore_ascii_case(b"https://") {
        &path[8..]
    } else {
        return Err(H1Error::BadTarget);
    };
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.is_empty() || authority.contains(&b'@') {
        return Err(H1Error::BadTarget);
    }
    head.authority = Some(Span::of(buf, authority));
    let tail = &rest[end..];
    if tail.first() == Some(&b'/') {
        head.target = Span::of(buf, tail);
    } else {
        // "http://h" or "http://h?q": the path is "/" — forwarded as written
        // by the writer, which prefixes '/' when the target does not start with it.
        head.target = Span::of(buf, tail);
    }
    Ok(())
}

/// Whether an `Upgrade` value lists `websocket` (case-insensitively) among
/// its protocols (`websocket`, `WebSocket/13`, `h2c, websocket`).
fn asks_for_websocket(value: &[u8]) -> bool {
    value.split(|&b| b == b',').any(|p| {
        let name = p
            .trim_ascii()
            .split(|&b| b == b'/')
            .next()
            .unwrap_or_default();
        name.eq_ignore_ascii_case(b"websocket")
    })
}

/// Framing, persistence, Host and Expect, per RFC 9112 §6.3 and §9.3.
fn analyze(buf: &[u8], head: &mut RequestHead) -> Result<(), H1Error> {
    let flags = header::apply_connection_tokens(buf, &mut head.headers)?;
    let mut content_length: Option<u64> = None;
    let mut te_count = 0usize;
    let mut te_chunked = false;
    let mut host: Option<Span> = None;
    let mut host_count = 0usize;
    let mut expect_continue = false;
    let mut upgrade: Option<Span> = None;
    let mut upgrade_count = 0usize;
    for h in &head.headers {
        match h.kind {
            Kind::ContentLength => {
                header::merge_content_length(&mut content_length, h.value.get(buf))?;
            }
            Kind::TransferEncoding => {
                te_count += 1;
                te_chunked = h.value.get(buf).eq_ignore_ascii_case(b"chunked");
            }
            Kind::Host => {
                host_count += 1;
                host = Some(h.value);
            }
            Kind::Upgrade => {
                upgrade_count += 1;
                upgrade = Some(h.value);
            }
            Kind::Expect => {
                if h.value.get(buf).eq_ignore_ascii_case(b"100-continue") {
                    expect_continue = true;
                } else {
                    return Err(H1Error::BadExpect);
                }
            }
            _ => {}
        }
    }
    head.framing = match (te_count, content_length) {
        (0, None) => Framing::None,
        (0, Some(n)) => Framing::Length(n),
        (_, Some(_)) => return Err(H1Error::AmbiguousFraming),
        (_, None) if head.minor_version == 0 => return Err(H1Error::AmbiguousFraming),
        (1, None) if te_chunked => Framing::Chunked,
        _ => return Err(H1Error::BadTransferEncoding),
    };
    if head.minor_version == 1 && host_count != 1 {
        return Err(H1Error::BadHost);
    }
    if host_count > 1 {
        return Err(H1Error::BadHost);
    }
    if let Some(h) = host {
        // An empty Host is valid (RFC 9112 §3.2: a target without authority).
        let v = h.get(buf);
        if v.iter()
            .any(|&b| b == b' ' || b == b'\t' || b == b'/' || b == b'@')
        {
            return Err(H1Error::BadHost);
        }
    }
    head.host = head.authority.or(host);
    // Only WebSocket is let through: any other protocol (h2c above all)
    // would take the connection past routing and every policy. The field is
    // hop-by-hop, so a request asking for anything else goes on as a plain
    // request without it.
    head.upgrade = upgrade.filter(|u| {
        flags.upgrade
            && upgrade_count == 1
            && head.minor_version == 1
            && asks_for_websocket(u.get(buf))
    });
    head.expect_continue = expect_continue && head.minor_version == 1;
    head.keep_alive = if head.minor_version == 1 {
        !flags.close
    } else {
        flags.keep_alive && !flags.close
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(raw: &[u8]) -> RequestHead {
        let mut head = RequestHead::default();
        assert_eq!(
            parse(raw, &Limits::default(), &mut head),
            Ok(true),
            "{}",
            String::from_utf8_lossy(raw)
        );
        head
    }

    fn parse_err(raw: &[u8]) -> H1Error {
        let mut head = RequestHead::default();
        match parse(raw, &Limits::default(), &mut head) {
            Err(e) => e,
            other => panic!(
                "expected an error for {:?}, got {other:?}",
                String::from_utf8_lossy(raw)
            ),
        }
    }

    #[test]
    fn simple_get() {
        let raw = b"GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\n\r\n";
        let h = parse_ok(raw);
        assert_eq!(h.method(raw), b"GET");
        assert_eq!(h.path(raw), b"/a/b");
        assert_eq!(h.query(raw), b"x=1");
        assert_eq!(h.framing, Framing::None);
        assert!(h.keep_alive);
        assert_eq!(h.head_len, raw.len());
    }

    #[test]
    fn partial_head() {
        let mut head = RequestHead::default();
        assert_eq!(
            parse(
                b"GET / HTTP/1.1\r\nHost: h\r\n",
                &Limits::default(),
                &mut head
            ),
            Ok(false)
        );
    }

    #[test]
    fn persistence() {
        assert!(!parse_ok(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(parse_ok(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
        assert!(!parse_ok(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").keep_alive);
    }

    #[test]
    fn framing_table() {
        let ok: &[(&[u8], Framing)] = &[
            (
                b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n",
                Framing::Length(5),
            ),
            (
                b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                Framing::Length(5),
            ),
            (
                b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
                Framing::Chunked,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: CHUNKED\r\n\r\n",
                Framing::Chunked,
            ),
        ];
        for (raw, want) in ok {
            assert_eq!(parse_ok(raw).framing, *want);
        }
        let bad: &[(&[u8], H1Error)] = &[
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", H1Error::AmbiguousFraming),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", H1Error::BadContentLength),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\n", H1Error::BadContentLength),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -5\r\n\r\n", H1Error::BadContentLength),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n", H1Error::BadContentLength),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", H1Error::BadTransferEncoding),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n", H1Error::BadTransferEncoding),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", H1Error::BadTransferEncoding),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", H1Error::BadTransferEncoding),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", H1Error::AmbiguousFraming),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n", H1Error::Syntax),
            (b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n", H1Error::Syntax),
            (b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n", H1Error::Syntax),
            (b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x07b\r\n\r\n", H1Error::Syntax),
            (b"GET / HTTP/1.1\r\n\r\n", H1Error::BadHost),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", H1Error::BadHost),
            (b"GET / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n", H1Error::BadExpect),
            (b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", H1Error::Syntax),
            (b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n", H1Error::Syntax),
            (b"CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n", H1Error::BadTarget),
        ];
        for (raw, want) in bad {
            assert_eq!(parse_err(raw), *want, "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn upgrade_needs_the_connection_token() {
        let raw = b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n";
        assert_eq!(
            parse_ok(raw).upgrade.map(|u| u.get(raw).to_vec()),
            Some(b"websocket".to_vec())
        );
        assert!(
            parse_ok(b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n")
                .upgrade
                .is_none()
        );
        assert!(
            parse_ok(b"GET /ws HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
                .upgrade
                .is_none()
        );
    }

    #[test]
    fn only_websocket_upgrades_are_kept() {
        for (value, kept) in [
            ("websocket", true),
            ("WebSocket", true),
            ("h2c, websocket/13", true),
            ("h2c", false),
            ("HTTP/2.0", false),
            ("websocketx", false),
            ("TLS/1.2", false),
        ] {
            let raw = format!(
                "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: {value}\r\n\r\n"
            );
            assert_eq!(parse_ok(raw.as_bytes()).upgrade.is_some(), kept, "{value}");
        }
    }

    #[test]
    fn absolute_form_replaces_host() {
        let raw = b"GET http://example.com:8080/p?q HTTP/1.1\r\nHost: other\r\n\r\n";
        let h = parse_ok(raw);
        assert_eq!(h.host.unwrap().get(raw), b"example.com:8080");
        assert_eq!(h.target.get(raw), b"/p?q");
    }

    #[test]
    fn limits() {
        let limits = Limits {
            max_head_bytes: 64,
            max_headers: 2,
            max_uri_bytes: 16,
        };
        let mut head = RequestHead::default();
        let long_uri = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(16));
        assert_eq!(
            parse(long_uri.as_bytes(), &limits, &mut head),
            Err(H1Error::UriTooLong)
        );
        let at_uri = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(15));
        assert_eq!(parse(at_uri.as_bytes(), &limits, &mut head), Ok(true));
        let many = b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
        assert_eq!(
            parse(many, &limits, &mut head),
            Err(H1Error::TooManyHeaders)
        );
        let big = format!("GET / HTTP/1.1\r\nHost: h\r\nA: {}\r\n\r\n", "x".repeat(64));
        assert_eq!(
            parse(big.as_bytes(), &limits, &mut head),
            Err(H1Error::HeadTooLarge)
        );
        let partial_big = format!("GET / HTTP/1.1\r\nHost: h\r\nA: {}", "x".repeat(64));
        assert_eq!(
            parse(partial_big.as_bytes(), &limits, &mut head),
            Err(H1Error::HeadTooLarge)
        );
    }

    #[test]
    fn connection_tokens_mark_hop_by_hop() {
        let raw = b"GET / HTTP/1.1\r\nHost: h\r\nConnection: x-secret, close\r\nX-Secret: 1\r\nX-Keep: 2\r\n\r\n";
        let h = parse_ok(raw);
        let kinds: Vec<_> = h
            .headers
            .iter()
            .map(|x| (x.name.get(raw).to_vec(), x.kind))
            .collect();
        assert!(kinds.contains(&(b"X-Secret".to_vec(), Kind::HopByHop)));
        assert!(kinds.contains(&(b"X-Keep".to_vec(), Kind::Other)));
        assert!(!h.keep_alive);
    }
}
