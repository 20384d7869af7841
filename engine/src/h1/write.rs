//! Writers for the heads ringway sends: the request head it forwards upstream,
//! the response head it relays downstream, and its own error responses. All
//! append to a reused output buffer.

use super::error::reason;
use super::framing::Framing;
use super::header::Kind;
use super::request::RequestHead;
use super::response::ResponseHead;

/// What the proxy adds to a forwarded request.
pub struct Forward<'a> {
    /// The client's address, appended to X-Forwarded-For.
    pub client_ip: &'a [u8],
    /// `http` or `https`: X-Forwarded-Proto.
    pub proto: &'a [u8],
    /// Replaces the client's Host (the target's authority when the route does not preserve Host).
    pub host: Option<&'a [u8]>,
    /// Replaces the request-target (path and query) when a route rewrites it.
    pub target: Option<&'a [u8]>,
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

/// Appends the upstream request head. Hop-by-hop fields are dropped, framing
/// is written fresh from `head.framing`, and the forwarding fields are set.
pub fn request_head(out: &mut Vec<u8>, buf: &[u8], head: &RequestHead, fwd: &Forward<'_>) {
    out.extend_from_slice(head.method(buf));
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
                out.extend_from_slice(h.name.get(buf));
                out.extend_from_slice(b": ");
                out.extend_from_slice(h.value.get(buf));
                out.extend_from_slice(b"\r\n");
            }
            Kind::XForwardedFor => xff_seen = true,
            Kind::Via => via_seen = true,
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
    out.extend_from_slice(b"X-Forwarded-For: ");
    if xff_seen {
        join_values(out, buf, head, Kind::XForwardedFor);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(fwd.client_ip);
    out.extend_from_slice(b"\r\nX-Forwarded-Proto: ");
    out.extend_from_slice(fwd.proto);
    out.extend_from_slice(b"\r\n");
    if let Some(h) = client_host {
        out.extend_from_slice(b"X-Forwarded-Host: ");
        out.extend_from_slice(h);
        out.extend_from_slice(b"\r\n");
    }
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

/// How the relayed response body is framed towards the client (old name of
/// [`Framing`]; `Framing::None` lets the upstream's Content-Length pass as
/// metadata, `Framing::UntilClose` sends raw bytes until ringway closes).

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
            out.extend_from_slice(h.name.get(buf));
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value.get(buf));
            out.extend_from_slice(b"\r\n");
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
            "https",
        ] {
            assert!(!s.contains(gone), "{gone} leaked into {s}");
        }
        assert!(s.contains("X-Keep: yes\r\n"));
        assert!(s.contains("Content-Length: 3\r\n"));
        assert!(s.contains("X-Forwarded-For: 10.0.0.1, 127.0.0.1\r\n"));
        assert!(s.contains("X-Forwarded-Proto: http\r\n"));
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
