//! Writers for the heads ringway sends: the request head it forwards upstream,
//! the response head it relays downstream, and its own error responses. All
//! append to a reused output buffer.

use super::error::reason;
use super::framing::Framing;
use super::header::{Header, Kind};
use super::request::RequestHead;
use super::response::ResponseHead;

/// What the proxy adds to a forwarded request.
pub struct Forward<'a> {
    /// Replaces the client's method (a route's `upstream_method`).
    pub method: Option<&'a [u8]>,
    /// The client's address, appended to X-Forwarded-For.
    pub client_ip: &'a [u8],
    /// `http` or `https`: X-Forwarded-Proto.
    pub proto: &'a [u8],
    /// Replaces the client's Host (the target's authority when the route does not preserve Host).
    pub host: Option<&'a [u8]>,
    /// Replaces the request-target (path and query) when a route rewrites it.
    pub target: Option<&'a [u8]>,
    /// The peer is a trusted proxy: the client's own `Forwarded` and
    /// `X-Forwarded-*` fields are kept (and the list fields appended to);
    /// otherwise they are replaced by what ringway knows.
    pub trusted_peer: bool,
    /// Add an RFC 7239 `Forwarded` element (`[server] forwarded`).
    pub forwarded: bool,
    /// Forward the client's WebSocket upgrade (`Connection: upgrade`, `Upgrade: websocket`).
    pub upgrade: bool,
    /// Field lines a policy adds (JWT claims), each ending in CRLF.
    pub fields: &'a [u8],
    /// Lower-case names of client fields dropped because a policy sets them.
    pub replaced: &'a [Box<[u8]>],
    /// The request id field's name: the client's own is dropped (`fields` carries the id).
    pub request_id: Option<&'a [u8]>,
    /// The body was read whole (to check it) and goes on with this
    /// Content-Length, whatever the client's framing was.
    pub length: Option<u64>,
}

/// Appends the field line `name: value` CRLF. A field that already sits in
/// `buf` in exactly that shape (one space after the colon, CRLF right after
/// the value: what most peers send) is copied as one slice; the bytes
/// written are the same either way.
#[inline]
fn field_line(out: &mut Vec<u8>, buf: &[u8], h: &Header) {
    let (name, value) = (h.name, h.value);
    let (n_end, v_start, v_end) = (name.end as usize, value.start as usize, value.end as usize);
    if n_end + 2 == v_start
        && buf.get(n_end..v_start) == Some(b": ")
        && buf.get(v_end..v_end + 2) == Some(b"\r\n")
    {
        out.extend_from_slice(&buf[name.start as usize..v_end + 2]);
    } else {
        out.extend_from_slice(name.get(buf));
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.get(buf));
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends the upstream request head. Hop-by-hop fields are dropped, framing
/// is written fresh from `head.framing`, and the forwarding fields are set.
pub fn request_head(out: &mut Vec<u8>, buf: &[u8], head: &RequestHead, fwd: &Forward<'_>) {
    out.extend_from_slice(fwd.method.unwrap_or(head.method(buf)));
    out.push(b' ');
    let target = fwd.target.unwrap_or_else(|| head.target.get(buf));
    if target.first() != Some(&b'/') && target != b"*" {
        out.push(b'/');
    }
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    let client_host = head.host.map(|h| h.get(buf));
    out.extend_from_slice(fwd.host.or(client_host).unwrap_or_default());
    out.extend_from_slice(b"\r\n");
    let mut xff_seen = false;
    let mut via_seen = false;
    let (mut forwarded_seen, mut xfp_seen, mut xfh_seen) = (false, false, false);
    for h in &head.headers {
        match h.kind {
            Kind::Other
                if !fwd
                    .request_id
                    .is_some_and(|n| n.eq_ignore_ascii_case(h.name.get(buf)))
                    && (fwd.replaced.is_empty()
                        || !fwd
                            .replaced
                            .iter()
                            .any(|n| n.eq_ignore_ascii_case(h.name.get(buf)))) =>
            {
                field_line(out, buf, h);
            }
            Kind::XForwardedFor => xff_seen = true,
            Kind::Via => via_seen = true,
            Kind::Forwarded => forwarded_seen = true,
            Kind::XForwardedProto => xfp_seen = true,
            Kind::XForwardedHost => xfh_seen = true,
            _ => {}
        }
    }
    if fwd.upgrade && head.upgrade.is_some() {
        // Only the WebSocket protocol is asked for, whatever else the
        // client listed: the upstream cannot switch to anything else.
        out.extend_from_slice(b"Connection: upgrade\r\nUpgrade: websocket\r\n");
    }
    out.extend_from_slice(fwd.fields);
    match (fwd.length, head.framing) {
        (None, Framing::None | Framing::UntilClose) => {}
        (Some(n), _) | (None, Framing::Length(n)) => {
            out.extend_from_slice(b"Content-Length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        (None, Framing::Chunked) => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
    }
    forwarding_fields(
        out,
        buf,
        head,
        fwd,
        client_host,
        (xff_seen, xfp_seen, xfh_seen, forwarded_seen),
    );
    out.extend_from_slice(b"Via: ");
    if via_seen {
        join_values(out, buf, head, Kind::Via);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(if head.minor_version == 0 {
        b"1.0 ringway\r\n\r\n"
    } else {
        b"1.1 ringway\r\n\r\n"
    });
}

/// `X-Forwarded-For/-Proto/-Host` and `Forwarded`. From a trusted proxy,
/// what the client sent is kept (and the lists appended to); from anyone
/// else it is replaced. `seen`: which of XFF, XFP, XFH, Forwarded it sent.
fn forwarding_fields(
    out: &mut Vec<u8>,
    buf: &[u8],
    head: &RequestHead,
    fwd: &Forward<'_>,
    client_host: Option<&[u8]>,
    (xff, xfp, xfh, forwarded): (bool, bool, bool, bool),
) {
    let keep = |seen: bool| seen && fwd.trusted_peer;
    out.extend_from_slice(b"X-Forwarded-For: ");
    if keep(xff) {
        join_values(out, buf, head, Kind::XForwardedFor);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(fwd.client_ip);
    out.extend_from_slice(b"\r\nX-Forwarded-Proto: ");
    if keep(xfp) {
        join_values(out, buf, head, Kind::XForwardedProto);
    } else {
        out.extend_from_slice(fwd.proto);
    }
    out.extend_from_slice(b"\r\n");
    if keep(xfh) {
        out.extend_from_slice(b"X-Forwarded-Host: ");
        join_values(out, buf, head, Kind::XForwardedHost);
        out.extend_from_slice(b"\r\n");
    } else if let Some(h) = client_host {
        out.extend_from_slice(b"X-Forwarded-Host: ");
        out.extend_from_slice(h);
        out.extend_from_slice(b"\r\n");
    }
    if !fwd.forwarded && !keep(forwarded) {
        return;
    }
    out.extend_from_slice(b"Forwarded: ");
    if keep(forwarded) {
        join_values(out, buf, head, Kind::Forwarded);
        if !fwd.forwarded {
            out.extend_from_slice(b"\r\n");
            return;
        }
        out.extend_from_slice(b", ");
    }
    forwarded_element(out, fwd.client_ip, fwd.proto, client_host);
    out.extend_from_slice(b"\r\n");
}

/// One RFC 7239 element: `for=…;proto=…;host=…`. An IPv6 address is
/// bracketed and quoted (`for="[2001:db8::1]"`); a host that is not a token
/// (a port's `:`) is quoted, `"` and `\` escaped.
pub fn forwarded_element(out: &mut Vec<u8>, client_ip: &[u8], proto: &[u8], host: Option<&[u8]>) {
    out.extend_from_slice(b"for=");
    if client_ip.contains(&b':') {
        out.extend_from_slice(b"\"[");
        out.extend_from_slice(client_ip);
        out.extend_from_slice(b"]\"");
    } else {
        out.extend_from_slice(client_ip);
    }
    out.extend_from_slice(b";proto=");
    out.extend_from_slice(proto);
    if let Some(h) = host.filter(|h| !h.is_empty()) {
        out.extend_from_slice(b";host=");
        if h.iter().all(|&b| is_tchar(b)) {
            out.extend_from_slice(h);
        } else {
            out.push(b'"');
            for &b in h {
                if b == b'"' || b == b'\\' {
                    out.push(b'\\');
                }
                out.push(b);
            }
            out.push(b'"');
        }
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn join_values(out: &mut Vec<u8>, buf: &[u8], head: &RequestHead, kind: Kind) {
    let mut first = true;
    for h in head.headers.iter().filter(|h| h.kind == kind) {
        if !first {
            out.extend_from_slice(b", ");
        }
        first = false;
        out.extend_from_slice(h.value.get(buf));
    }
}

/// Appends the response head relayed to the client. `added`: field lines
/// policies add (CORS, mapped headers); with `replace_cors`, any
/// `Access-Control-*` field the upstream sent is dropped, and so is any
/// field named in `replaced` (lower-case).
pub fn response_head(
    out: &mut Vec<u8>,
    buf: &[u8],
    head: &ResponseHead,
    framing: Framing,
    connection: Persist,
    added: Added<'_>,
) {
    let cors = added.replace_cors;
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(head.status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.reason.get(buf));
    out.extend_from_slice(b"\r\n");
    for h in &head.headers {
        let pass = match h.kind {
            Kind::ContentLength => framing == Framing::None,
            Kind::TransferEncoding | Kind::Connection | Kind::HopByHop => false,
            Kind::Upgrade => head.status == 101,
            _ => {
                let name = h.name.get(buf);
                let replaced = (cors && is_cors_field(name))
                    || added
                        .request_id
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
                    || added.replaced.iter().any(|n| n.eq_ignore_ascii_case(name));
                !replaced
            }
        };
        if pass {
            field_line(out, buf, h);
        }
    }
    match framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"Content-Length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        Framing::None | Framing::UntilClose => {}
    }
    out.extend_from_slice(added.fields);
    if head.status == 101 {
        out.extend_from_slice(b"Connection: upgrade\r\n");
    } else {
        persist_field(out, connection);
    }
    out.extend_from_slice(b"\r\n");
}

/// What policies add to a relayed response head.
#[derive(Clone, Copy, Default)]
pub struct Added<'a> {
    pub fields: &'a [u8],
    pub replace_cors: bool,
    pub replaced: &'a [Box<[u8]>],
    /// The request id field's name: the upstream's own is dropped (`fields` carries the id).
    pub request_id: Option<&'a [u8]>,
}

fn is_cors_field(name: &[u8]) -> bool {
    name.len() > 15 && name[..15].eq_ignore_ascii_case(b"access-control-")
}

/// Appends a response ringway makes up itself with a fixed body: a mock
/// integration's, or a CORS preflight's. `fields` and `extra` are field
/// lines. 204 and 304 carry no body and no Content-Length; HEAD gets the
/// length without the body.
pub fn fixed_response(
    out: &mut Vec<u8>,
    status: u16,
    fields: &[u8],
    extra: &[u8],
    body: &[u8],
    persist: Persist,
    head_request: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\nServer: ringway\r\n");
    out.extend_from_slice(fields);
    out.extend_from_slice(extra);
    let bodiless = matches!(status, 204 | 304);
    if !bodiless {
        out.extend_from_slice(b"Content-Length: ");
        out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    persist_field(out, persist);
    out.extend_from_slice(b"\r\n");
    if !bodiless && !head_request {
        out.extend_from_slice(body);
    }
}

/// What the response says about the client connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persist {
    /// HTTP/1.1 default: nothing to say.
    Default,
    /// An HTTP/1.0 client asked for keep-alive and gets it.
    KeepAlive,
    Close,
}

fn persist_field(out: &mut Vec<u8>, p: Persist) {
    out.extend_from_slice(persist_line(p));
}

/// The field line (if any) that says `p`.
pub fn persist_line(p: Persist) -> &'static [u8] {
    match p {
        Persist::Default => b"",
        Persist::KeepAlive => b"Connection: keep-alive\r\n",
        Persist::Close => b"Connection: close\r\n",
    }
}

/// Appends one of ringway's own responses: a JSON body `{"message":"..."}`.
/// `message_json` is the message as the inside of a JSON string (escaped
/// by the caller: the codec knows HTTP, not JSON).
pub fn error_response(
    out: &mut Vec<u8>,
    status: u16,
    message_json: &[u8],
    persist: Persist,
    extra_headers: &[u8],
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(
        b"\r\nServer: ringway\r\nContent-Type: application/json\r\nContent-Length: ",
    );
    let text = message_json;
    let body_len = text.len() + 14;
    out.extend_from_slice(itoa::Buffer::new().format(body_len).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(extra_headers);
    persist_field(out, persist);
    out.extend_from_slice(b"\r\n{\"message\":\"");
    out.extend_from_slice(text);
    out.extend_from_slice(b"\"}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h1::{Limits, request};

    #[test]
    fn a_field_line_copied_whole_is_the_line_written_in_parts() {
        // The first two sit in the request in the canonical shape; the rest
        // do not (no space, two spaces, trailing space, empty value) and
        // take the four-part path. Both must give `name: value` CRLF.
        let raw: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\nX-One: 1\r\nX-Two:2\r\nX-Three:   3\r\nX-Four: 4  \r\nX-Five: \r\nX-Six:\r\n\r\n";
        let mut head = request::RequestHead::default();
        assert!(request::parse(raw, &Limits::default(), &mut head).unwrap());
        let mut got = Vec::new();
        for h in &head.headers {
            field_line(&mut got, raw, h);
        }
        assert_eq!(
            String::from_utf8(got).unwrap(),
            "Host: a\r\nX-One: 1\r\nX-Two: 2\r\nX-Three: 3\r\nX-Four: 4\r\nX-Five: \r\nX-Six: \r\n"
        );
    }

    fn forward_with(raw: &[u8], client_ip: &[u8], trusted_peer: bool) -> String {
        let mut head = request::RequestHead::default();
        assert_eq!(request::parse(raw, &Limits::default(), &mut head), Ok(true));
        let mut out = Vec::new();
        let fwd = Forward {
            method: None,
            trusted_peer,
            forwarded: true,
            client_ip,
            proto: b"https",
            host: None,
            target: None,
            upgrade: false,
            fields: b"",
            replaced: &[],
            request_id: None,
            length: None,
        };
        request_head(&mut out, raw, &head, &fwd);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn forwarding_fields_from_anyone_are_replaced_and_from_trusted_proxies_kept() {
        let raw = b"GET / HTTP/1.1\r\nHost: api.test:8443\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: front.test\r\nForwarded: for=10.0.0.1;proto=http\r\n\r\n";
        let s = forward_with(raw, b"192.0.2.7", false);
        assert!(s.contains("X-Forwarded-For: 192.0.2.7\r\n"), "{s}");
        assert!(s.contains("X-Forwarded-Proto: https\r\n"), "{s}");
        assert!(s.contains("X-Forwarded-Host: api.test:8443\r\n"), "{s}");
        assert!(
            s.contains("Forwarded: for=192.0.2.7;proto=https;host=\"api.test:8443\"\r\n"),
            "{s}"
        );
        assert_eq!(s.matches("orwarded").count(), 4, "{s}");
        let s = forward_with(raw, b"2001:db8::7", true);
        assert!(
            s.contains("X-Forwarded-For: 10.0.0.1, 2001:db8::7\r\n"),
            "{s}"
        );
        assert!(s.contains("X-Forwarded-Proto: http\r\n"), "{s}");
        assert!(s.contains("X-Forwarded-Host: front.test\r\n"), "{s}");
        assert!(
            s.contains("Forwarded: for=10.0.0.1;proto=http, for=\"[2001:db8::7]\";proto=https;host=\"api.test:8443\"\r\n"),
            "{s}"
        );
    }

    #[test]
    fn forwarded_hosts_are_quoted_when_they_are_not_tokens() {
        let mut out = Vec::new();
        forwarded_element(&mut out, b"192.0.2.1", b"http", Some(b"plain.test"));
        assert_eq!(out, b"for=192.0.2.1;proto=http;host=plain.test");
        out.clear();
        forwarded_element(&mut out, b"192.0.2.1", b"http", Some(b"a\"b"));
        assert_eq!(out, b"for=192.0.2.1;proto=http;host=\"a\\\"b\"");
        out.clear();
        forwarded_element(&mut out, b"::1", b"https", None);
        assert_eq!(out, b"for=\"[::1]\";proto=https");
    }

    #[test]
    fn forwarded_request_drops_hop_by_hop_and_appends_xff() {
        let raw = b"POST /p?q=1 HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive, x-hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: foo\r\nProxy-Connection: keep-alive\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\nContent-Length: 3\r\nX-Keep: yes\r\n\r\n";
        let mut head = request::RequestHead::default();
        assert_eq!(request::parse(raw, &Limits::default(), &mut head), Ok(true));
        let mut out = Vec::new();
        request_head(
            &mut out,
            raw,
            &head,
            &Forward {
                method: None,
                trusted_peer: true,
                forwarded: true,
                client_ip: b"127.0.0.1",
                proto: b"http",
                host: None,
                target: None,
                upgrade: false,
                fields: b"",
                replaced: &[],
                request_id: None,
                length: None,
            },
        );
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.starts_with("POST /p?q=1 HTTP/1.1\r\nHost: example.com\r\n"),
            "{s}"
        );
        for gone in [
            "X-Hop",
            "Keep-Alive",
            "TE:",
            "Upgrade",
            "Proxy-Connection",
            "Connection",
        ] {
            assert!(!s.contains(gone), "{gone} leaked into {s}");
        }
        assert!(s.contains("X-Keep: yes\r\n"));
        assert!(s.contains("Content-Length: 3\r\n"));
        assert!(s.contains("X-Forwarded-For: 10.0.0.1, 127.0.0.1\r\n"));
        // From a trusted proxy its X-Forwarded-Proto stays.
        assert!(s.contains("X-Forwarded-Proto: https\r\n"));
        assert!(s.contains("X-Forwarded-Host: example.com\r\n"));
        assert!(s.ends_with("Via: 1.1 ringway\r\n\r\n"));
    }

    #[test]
    fn a_buffered_chunked_body_is_forwarded_with_a_length_only() {
        let raw = b"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\nExpect: 100-continue\r\n\r\n";
        let mut head = request::RequestHead::default();
        assert_eq!(request::parse(raw, &Limits::default(), &mut head), Ok(true));
        let mut out = Vec::new();
        let fwd = Forward {
            method: None,
            trusted_peer: false,
            forwarded: true,
            client_ip: b"127.0.0.1",
            proto: b"http",
            host: None,
            target: None,
            upgrade: false,
            fields: b"",
            replaced: &[],
            request_id: None,
            length: Some(12),
        };
        request_head(&mut out, raw, &head, &fwd);
        let s = String::from_utf8(out).unwrap().to_ascii_lowercase();
        assert!(s.contains("content-length: 12\r\n"), "{s}");
        for gone in ["transfer-encoding", "chunked", "trailer", "expect"] {
            assert!(!s.contains(gone), "{gone} leaked into {s}");
        }
    }

    #[test]
    fn fixed_responses_frame_their_body() {
        let mut out = Vec::new();
        fixed_response(
            &mut out,
            200,
            b"content-type: text/plain\r\n",
            b"X: 1\r\n",
            b"hi",
            Persist::Close,
            false,
        );
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nServer: ringway\r\ncontent-type: text/plain\r\nX: 1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
        );
        out.clear();
        fixed_response(&mut out, 200, b"", b"", b"hi", Persist::Default, true);
        assert!(out.ends_with(b"Content-Length: 2\r\n\r\n"));
        out.clear();
        fixed_response(&mut out, 204, b"", b"", b"", Persist::Default, false);
        assert_eq!(out, b"HTTP/1.1 204 No Content\r\nServer: ringway\r\n\r\n");
    }

    #[test]
    fn error_body_length_matches() {
        let mut out = Vec::new();
        error_response(&mut out, 404, b"no route", Persist::Default, b"");
        let s = String::from_utf8(out).unwrap();
        let (head, body) = s.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert_eq!(body, r#"{"message":"no route"}"#);
    }
}
