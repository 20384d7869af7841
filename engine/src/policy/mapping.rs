//! `[route.mapping]`: parameter mapping in the API Gateway HTTP API style.
//! `request` keys are `overwrite:header.NAME`, `append:header.NAME`,
//! `remove:header.NAME` and the same for `querystring.NAME`, and
//! `overwrite:path`; `response` keys work on response header fields. Values
//! are literals, one variable (`$request.header.NAME`,
//! `$request.querystring.NAME`, `$request.path.NAME`, `$context.requestId`,
//! `$context.identity.sourceIp`), or literal text with `${variable}`s in it
//! (`"/v2/${request.path.proxy}"`). A rule whose variable is absent on a
//! request is skipped for that request.
//!
//! Values never carry CR or LF: request values come from a parsed head
//! (which refuses them), request ids are plain, query values are forwarded
//! still percent-encoded, and literals with control characters are config
//! errors. Variables in a path are percent-encoded, and a mapped path with
//! dot segments is refused.

use super::{Check, Compile, Policy, Problem, Verdict};
use crate::config::model;
use crate::h1::request::RequestHead;
use ringway_router::percent;
use std::net::IpAddr;
use std::ops::ControlFlow;

mod parse;

pub use parse::compile;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Overwrite,
    Append,
    Remove,
}

/// Where a piece of a value comes from.
#[derive(Debug, PartialEq, Eq)]
enum Source {
    Literal(Box<[u8]>),
    Header(Box<[u8]>),
    Query(Box<[u8]>),
    PathParam(String),
    ClientIp,
    RequestId,
}

/// A mapped value: a literal, one `$variable`, or text with `${variable}`s in it.
type Value = Vec<Source>;

#[derive(Debug, PartialEq, Eq)]
struct Rule {
    op: Op,
    name: Box<[u8]>,
    value: Value,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Mapping {
    headers: Vec<Rule>,
    query: Vec<Rule>,
    /// `overwrite:path`: the path the upstream gets (the query is kept).
    path: Option<Value>,
    /// Request header names the client's fields are dropped for (overwrite, remove).
    replaced: Vec<Box<[u8]>>,
    /// Response header rules (overwrite, append).
    response: Vec<Rule>,
    /// Response header names the upstream's fields are dropped for.
    response_replaced: Vec<Box<[u8]>>,
    uses_client_ip: bool,
}

/// What a mapping reads from the request.
pub struct Context<'a> {
    pub buf: &'a [u8],
    pub head: &'a RequestHead,
    pub client: IpAddr,
    /// The matched path and its parameters.
    pub path: &'a [u8],
    pub found: Option<&'a ringway_router::Match>,
    pub router: &'a ringway_router::Router,
    /// This request's id (empty when ids are off).
    pub request_id: &'a [u8],
}

/// How a piece is written where it goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dest {
    /// A header field value, as it is (no source can hold CR or LF).
    Field,
    /// A query value: percent-encoded, except what came from the query already.
    Query,
    /// A path: variables percent-encoded, except path parameters (already in URL form).
    Path,
}

impl Policy for Mapping {
    type Table = model::Mapping;
    type Local = ();

    fn compile(t: &model::Mapping, cx: &Compile<'_>) -> Result<Mapping, Problem> {
        compile(t, cx.params)
    }

    fn check<'c>(&'c self, cx: &mut Check<'_>, _: Option<&mut ()>) -> ControlFlow<Verdict<'c>> {
        // The id is copied out of `fields`, which the response rules append to.
        let mut id = [0u8; crate::request_id::MAX_LEN];
        let rid = crate::request_id::range(cx.fields, cx.env.request_id);
        let src = cx.fields.get(rid).unwrap_or_default();
        let src = &src[..src.len().min(crate::request_id::MAX_LEN)];
        let id = &mut id[..src.len()];
        id.copy_from_slice(src);
        let mc = Context {
            buf: cx.req.buf,
            head: cx.req.head,
            client: cx.client,
            path: cx.req.path,
            found: cx.req.found,
            router: cx.env.router,
            request_id: id,
        };
        self.request_fields(&mc, cx.upstream);
        self.response_fields(&mc, cx.fields);
        ControlFlow::Continue(())
    }

    fn uses_client_ip(&self) -> bool {
        Mapping::uses_client_ip(self)
    }

    fn replaced(&self) -> &[Box<[u8]>] {
        Mapping::replaced(self)
    }
}

impl Mapping {
    pub fn uses_client_ip(&self) -> bool {
        self.uses_client_ip
    }

    /// Request header names whose client fields are dropped.
    pub fn replaced(&self) -> &[Box<[u8]>] {
        &self.replaced
    }

    pub fn response_replaced(&self) -> &[Box<[u8]>] {
        &self.response_replaced
    }

    /// Whether the upstream's request-target changes (query rules or a path overwrite).
    pub fn rewrites_target(&self) -> bool {
        !self.query.is_empty() || self.path.is_some()
    }

    /// Appends `value`; `false` (and nothing appended) when a source is absent: the rule is skipped.
    fn render(value: &Value, cx: &Context<'_>, into: Dest, out: &mut Vec<u8>) -> bool {
        let start = out.len();
        for s in value {
            let ok = match s {
                Source::Literal(l) if into == Dest::Query => put(Some(l), into, out),
                Source::Literal(l) => {
                    out.extend_from_slice(l);
                    true
                }
                Source::Header(n) => put(super::cors::field(cx.buf, cx.head, n), into, out),
                Source::Query(n) => {
                    let v = cx
                        .head
                        .query(cx.buf)
                        .split(|&b| b == b'&')
                        .find_map(|pair| {
                            let mut kv = pair.splitn(2, |&b| b == b'=');
                            (kv.next() == Some(&**n)).then(|| kv.next().unwrap_or_default())
                        });
                    // Already percent-encoded as the client sent it: kept so, but
                    // in a path anything else that could end it is escaped.
                    match (v, into) {
                        (Some(v), Dest::Path) => {
                            percent::encode_into(v, &percent::PCHAR_ENCODED, out);
                            true
                        }
                        _ => put(v, Dest::Field, out),
                    }
                }
                Source::PathParam(n) => {
                    let v = cx
                        .found
                        .and_then(|f| f.param(cx.router, n))
                        .and_then(|r| cx.path.get(r));
                    put(
                        v,
                        if into == Dest::Query {
                            into
                        } else {
                            Dest::Field
                        },
                        out,
                    )
                }
                Source::ClientIp => {
                    let mut b = IpText::default();
                    use std::fmt::Write;
                    let _ = write!(b, "{}", cx.client);
                    put(Some(&b.buf[..b.len]), into, out)
                }
                Source::RequestId => put(Some(cx.request_id).filter(|v| !v.is_empty()), into, out),
            };
            if !ok {
                out.truncate(start);
                return false;
            }
        }
        true
    }

    /// Data plane: appends the upstream header lines of overwrite and append rules.
    pub fn request_fields(&self, cx: &Context<'_>, out: &mut Vec<u8>) {
        fields(&self.headers, cx, out);
    }

    /// Data plane: appends the response header lines of overwrite and append rules.
    pub fn response_fields(&self, cx: &Context<'_>, out: &mut Vec<u8>) {
        fields(&self.response, cx, out);
    }

    /// Data plane: writes `target` (path and query) with the path overwrite
    /// and query rules applied. A mapped path with `.` or `..` segments is
    /// refused: it could reach past what the route exposes.
    pub fn rewrite_target(
        &self,
        target: &[u8],
        cx: &Context<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), &'static str> {
        let (path, query) = match target.iter().position(|&b| b == b'?') {
            Some(q) => (&target[..q], &target[q + 1..]),
            None => (target, &[][..]),
        };
        match &self.path {
            Some(p) => {
                let start = out.len();
                if !Self::render(p, cx, Dest::Path, out) {
                    return Err("a value the path mapping needs is missing");
                }
                if dot_segments(&out[start..]) {
                    return Err("the mapped path has `.` or `..` segments");
                }
            }
            None => out.extend_from_slice(path),
        }
        let mut sep = b'?';
        for pair in query.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            let key = pair.split(|&b| b == b'=').next().unwrap_or_default();
            let dropped = self
                .query
                .iter()
                .any(|r| r.op != Op::Append && *r.name == *key);
            if !dropped {
                out.push(sep);
                sep = b'&';
                out.extend_from_slice(pair);
            }
        }
        for r in self.query.iter().filter(|r| r.op != Op::Remove) {
            let mark = out.len();
            out.push(sep);
            percent::encode_into(&r.name, &percent::UNRESERVED, out);
            out.push(b'=');
            if Self::render(&r.value, cx, Dest::Query, out) {
                sep = b'&';
            } else {
                out.truncate(mark);
            }
        }
        Ok(())
    }
}

fn fields(rules: &[Rule], cx: &Context<'_>, out: &mut Vec<u8>) {
    for r in rules.iter().filter(|r| r.op != Op::Remove) {
        let mark = out.len();
        out.extend_from_slice(&r.name);
        out.extend_from_slice(b": ");
        if Mapping::render(&r.value, cx, Dest::Field, out) {
            out.extend_from_slice(b"\r\n");
        } else {
            out.truncate(mark);
        }
    }
}

fn put(v: Option<&[u8]>, into: Dest, out: &mut Vec<u8>) -> bool {
    let Some(v) = v else { return false };
    match into {
        Dest::Field => out.extend_from_slice(v),
        Dest::Query => percent::encode_into(v, &percent::UNRESERVED, out),
        Dest::Path => percent::encode_into(v, &percent::PCHAR, out),
    }
    true
}

/// Whether a path has a `.` or `..` segment (also percent-encoded).
fn dot_segments(path: &[u8]) -> bool {
    path.split(|&b| b == b'/').any(|seg| {
        let mut dots = 0;
        let mut i = 0;
        while i < seg.len() {
            if seg[i] == b'.' {
                i += 1;
            } else if seg[i..].len() >= 3
                && seg[i] == b'%'
                && seg[i + 1] == b'2'
                && seg[i + 2].eq_ignore_ascii_case(&b'e')
            {
                i += 3;
            } else {
                return false;
            }
            dots += 1;
        }
        dots == 1 || dots == 2
    })
}

/// An IP address's text, without allocating.
struct IpText {
    buf: [u8; 48],
    len: usize,
}

impl Default for IpText {
    fn default() -> Self {
        IpText {
            buf: [0; 48],
            len: 0,
        }
    }
}

impl std::fmt::Write for IpText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h1::{Limits, request};

    fn mapping(text: &str) -> Result<Mapping, Problem> {
        compile(&toml::from_str::<model::Mapping>(text).unwrap(), &["id"])
    }

    #[test]
    fn the_issue_mapping_applies() {
        let m = mapping(r#"request = { "overwrite:header.x-tenant" = "$request.header.x-org", "append:querystring.src" = "gw", "remove:header.cookie" = "" }
response = { "overwrite:header.x-gateway" = "ringway" }"#)
        .unwrap();
        let raw = b"GET /u?a=1&src=x HTTP/1.1\r\nHost: h\r\nX-Org: acme\r\nX-Tenant: forged\r\nCookie: s=1\r\n\r\n";
        let mut head = request::RequestHead::default();
        assert_eq!(request::parse(raw, &Limits::default(), &mut head), Ok(true));
        let router = ringway_router::Router::compile(&[], None).unwrap();
        let cx = Context {
            buf: raw,
            head: &head,
            client: "10.0.0.1".parse().unwrap(),
            path: b"/u",
            found: None,
            router: &router,
            request_id: b"rid-1",
        };
        let mut out = Vec::new();
        m.request_fields(&cx, &mut out);
        assert_eq!(out, b"x-tenant: acme\r\n");
        assert_eq!(
            m.replaced(),
            [b"x-tenant".as_slice().into(), b"cookie".as_slice().into()] as [Box<[u8]>; 2]
        );
        out.clear();
        m.rewrite_target(b"/u?a=1&src=x", &cx, &mut out).unwrap();
        assert_eq!(out, b"/u?a=1&src=x&src=gw");
        out.clear();
        m.response_fields(&cx, &mut out);
        assert_eq!(out, b"x-gateway: ringway\r\n");
    }

    #[test]
    fn query_overwrites_and_encoding() {
        let m = mapping(r#"request = { "overwrite:querystring.who" = "$context.identity.sourceIp", "remove:querystring.secret" = "", "append:querystring.note" = "a b&c" }"#).unwrap();
        let raw = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        let mut head = request::RequestHead::default();
        assert_eq!(request::parse(raw, &Limits::default(), &mut head), Ok(true));
        let router = ringway_router::Router::compile(&[], None).unwrap();
        let cx = Context {
            buf: raw,
            head: &head,
            client: "2001:db8::1".parse().unwrap(),
            path: b"/",
            found: None,
            router: &router,
            request_id: b"rid-1",
        };
        let mut out = Vec::new();
        m.rewrite_target(b"/p?who=me&secret=1&x", &cx, &mut out)
            .unwrap();
        // Rules apply in key order (TOML tables are read sorted).
        assert_eq!(out, b"/p?x&note=a%20b%26c&who=2001%3Adb8%3A%3A1");
    }

    #[test]
    fn bad_mappings_are_refused() {
        for text in [
            r#"request = { "replace:header.x" = "1" }"#,
            r#"request = { "overwrite:header.a b" = "1" }"#,
            r#"request = { "overwrite:path" = "x" }"#,
            r#"request = { "overwrite:path" = "$request.path.id" }"#,
            r#"request = { "append:path" = "/x" }"#,
            r#"request = { "overwrite:header.x" = "$context.nope" }"#,
            r#"request = { "overwrite:header.x" = "a${request.header.y" }"#,
            r#"request = { "overwrite:header.x" = "$request.path.nope" }"#,
            r#"request = { "overwrite:header.x" = "a\r\nb: c" }"#,
            r#"response = { "overwrite:header.x" = "$request.header" }"#,
            r#"response = { "overwrite:querystring.x" = "1" }"#,
        ] {
            assert!(mapping(text).is_err(), "{text}");
        }
    }

    #[test]
    fn paths_ids_and_templates() {
        let m = mapping(
            r#"request = { "overwrite:path" = "/v2/${request.path.id}/${request.header.x-seg}", "overwrite:header.x-rid" = "$context.requestId", "append:querystring.tag" = "t-${context.requestId}" }
response = { "overwrite:header.x-echo" = "rid=${context.requestId} ip=${context.identity.sourceIp}" }"#,
        )
        .unwrap();
        let raw = b"GET /u/7?keep=1 HTTP/1.1\r\nHost: h\r\nX-Seg: a b/c\r\n\r\n";
        let mut head = request::RequestHead::default();
        assert_eq!(request::parse(raw, &Limits::default(), &mut head), Ok(true));
        let spec = ringway_router::RouteSpec {
            path: "/u/{id}".into(),
            methods: vec!["ANY".into()],
            host: None,
        };
        let router = ringway_router::Router::compile(&[spec], None).unwrap();
        let ringway_router::Lookup::Found(found) = router.find(b"GET", None, b"/u/7") else {
            panic!("no match")
        };
        let cx = Context {
            buf: raw,
            head: &head,
            client: "10.1.2.3".parse().unwrap(),
            path: b"/u/7",
            found: Some(&found),
            router: &router,
            request_id: b"abc",
        };
        let mut out = Vec::new();
        m.rewrite_target(b"/u/7?keep=1", &cx, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "/v2/7/a%20b%2Fc?keep=1&tag=t-abc"
        );
        out.clear();
        m.request_fields(&cx, &mut out);
        assert_eq!(out, b"x-rid: abc\r\n");
        out.clear();
        m.response_fields(&cx, &mut out);
        assert_eq!(out, b"x-echo: rid=abc ip=10.1.2.3\r\n");

        // A missing variable skips its rule; a path that needs one refuses the request.
        let raw = b"GET /u/7 HTTP/1.1\r\nHost: h\r\n\r\n";
        let mut bare = request::RequestHead::default();
        assert_eq!(request::parse(raw, &Limits::default(), &mut bare), Ok(true));
        let cx = Context {
            buf: raw,
            head: &bare,
            request_id: b"",
            ..cx
        };
        out.clear();
        m.request_fields(&cx, &mut out);
        assert_eq!(out, b"");
        assert!(m.rewrite_target(b"/u/7", &cx, &mut out).is_err());
    }

    #[test]
    fn dot_segments_are_found() {
        for p in [
            &b"/a/../b"[..],
            b"/a/./b",
            b"/a/%2e%2E/b",
            b"/..",
            b"/a/.%2e",
        ] {
            assert!(dot_segments(p), "{}", String::from_utf8_lossy(p));
        }
        for p in [&b"/a/b"[..], b"/a/...", b"/a/.b", b"/a/b.", b"/"] {
            assert!(!dot_segments(p), "{}", String::from_utf8_lossy(p));
        }
    }
}
