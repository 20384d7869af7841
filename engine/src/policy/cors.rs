//! `[route.cors]`: answers preflight requests at the gateway and adds CORS
//! fields to every response of the route, ringway's own errors included.
//!
//! Control plane: [`compile`] checks origins and renders the constant field
//! lines once. Data plane: [`Cors::preflight`] and [`Cors::actual`] compare
//! the `Origin` against the lists and append field lines to a reused buffer.

use super::{Check, Compile, Policy, Problem, Verdict};
use crate::config::model;
use crate::h1::header::for_each_token;
use crate::h1::request::RequestHead;
use std::ops::ControlFlow;

#[derive(Debug, PartialEq, Eq)]
pub struct Cors {
    /// `*`: any origin.
    any_origin: bool,
    /// Exact origins, lower-case (`https://app.example.com`).
    exact: Vec<Box<[u8]>>,
    /// `https://*.example.com`, lower-case.
    wildcard: Vec<Wildcard>,
    /// Allowed methods, upper-case; `*` allows every method.
    methods: Vec<Box<[u8]>>,
    any_method: bool,
    /// Allowed request headers, lower-case; `*` allows any.
    headers: Vec<Box<[u8]>>,
    any_header: bool,
    credentials: bool,
    /// `Access-Control-Allow-Methods: ...\r\n` and the rest of the constant
    /// preflight lines (headers unless `*`, max age).
    preflight_lines: Box<[u8]>,
    /// `Access-Control-Expose-Headers: ...\r\n` and credentials, for actual responses.
    actual_lines: Box<[u8]>,
}

/// An origin pattern `https://*.example.com`: scheme part `https://`, host suffix `.example.com`.
#[derive(Debug, PartialEq, Eq)]
struct Wildcard {
    scheme: Box<[u8]>,
    suffix: Box<[u8]>,
}

/// What a preflight gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Preflight {
    /// Not a preflight (no Origin or no Access-Control-Request-Method).
    No,
    /// Allowed: the fields to answer 204 with are in the buffer.
    Allowed,
    /// Refused, with the reason for the 403 body.
    Refused(&'static str),
}

impl Policy for Cors {
    type Table = model::Cors;
    type Local = ();

    fn compile(t: &model::Cors, _: &Compile<'_>) -> Result<Cors, Problem> {
        compile(t)
    }

    fn check<'c>(&'c self, cx: &mut Check<'_>, _: Option<&mut ()>) -> ControlFlow<Verdict<'c>> {
        let (buf, head) = (cx.req.buf, cx.req.head);
        match self.preflight(buf, head, cx.fields) {
            Preflight::Allowed => ControlFlow::Break(Verdict::Preflight),
            Preflight::Refused(why) => ControlFlow::Break(Verdict::Reject(403, why)),
            Preflight::No => {
                self.actual(field(buf, head, b"origin"), cx.fields);
                ControlFlow::Continue(())
            }
        }
    }
}

/// Control plane: `[route.cors]` → [`Cors`].
pub fn compile(t: &model::Cors) -> Result<Cors, Problem> {
    let mut c = Cors {
        any_origin: false,
        exact: Vec::new(),
        wildcard: Vec::new(),
        methods: Vec::new(),
        any_method: false,
        headers: Vec::new(),
        any_header: false,
        credentials: t.allow_credentials.as_ref().is_some_and(|c| *c.get_ref()),
        preflight_lines: Box::default(),
        actual_lines: Box::default(),
    };
    add_origins(&mut c, t)?;
    if c.any_origin && c.credentials {
        return Err(Problem::new(
            t.allow_credentials.as_ref().map_or(0..0, |c| c.span()),
            "allow_credentials",
            "browsers refuse credentials with `Access-Control-Allow-Origin: *`: list the origins instead of \"*\"",
        ));
    }
    let methods: Vec<String> = match &t.allow_methods {
        None => vec!["GET".into(), "HEAD".into(), "POST".into()],
        Some(m) => m
            .iter()
            .map(|m| m.get_ref().trim().to_ascii_uppercase())
            .collect(),
    };
    for (i, m) in methods.iter().enumerate() {
        if m == "*" {
            c.any_method = true;
        } else if !super::throttle::is_token(m) {
            let span = t
                .allow_methods
                .as_ref()
                .map(|v| v[i].span())
                .unwrap_or_default();
            return Err(Problem::new(
                span,
                format!("allow_methods[{i}]"),
                format!("{m:?} is not a method name"),
            ));
        } else {
            c.methods.push(m.as_bytes().into());
        }
    }
    for (i, h) in t.allow_headers.iter().enumerate() {
        let name = h.get_ref().trim().to_ascii_lowercase();
        if name == "*" {
            c.any_header = true;
        } else if !super::throttle::is_token(&name) {
            return Err(Problem::new(
                h.span(),
                format!("allow_headers[{i}]"),
                format!("{name:?} is not a header name"),
            ));
        } else {
            c.headers.push(name.into_bytes().into());
        }
    }
    for (i, h) in t.expose_headers.iter().enumerate() {
        if !super::throttle::is_token(h.get_ref().trim()) && h.get_ref().trim() != "*" {
            return Err(Problem::new(
                h.span(),
                format!("expose_headers[{i}]"),
                format!("{:?} is not a header name", h.get_ref()),
            ));
        }
    }
    let mut pre = String::new();
    pre.push_str("Access-Control-Allow-Methods: ");
    pre.push_str(&methods.join(", "));
    pre.push_str("\r\n");
    if !c.any_header && !c.headers.is_empty() {
        let names: Vec<&str> = t.allow_headers.iter().map(|h| h.get_ref().trim()).collect();
        pre.push_str("Access-Control-Allow-Headers: ");
        pre.push_str(&names.join(", "));
        pre.push_str("\r\n");
    }
    if let Some(age) = &t.max_age {
        pre.push_str("Access-Control-Max-Age: ");
        pre.push_str(&age.0.as_secs().to_string());
        pre.push_str("\r\n");
    }
    let mut actual = String::new();
    if !t.expose_headers.is_empty() {
        let names: Vec<&str> = t
            .expose_headers
            .iter()
            .map(|h| h.get_ref().trim())
            .collect();
        actual.push_str("Access-Control-Expose-Headers: ");
        actual.push_str(&names.join(", "));
        actual.push_str("\r\n");
    }
    if c.credentials {
        actual.push_str("Access-Control-Allow-Credentials: true\r\n");
        pre.push_str("Access-Control-Allow-Credentials: true\r\n");
    }
    c.preflight_lines = pre.into_bytes().into();
    c.actual_lines = actual.into_bytes().into();
    Ok(c)
}

/// The `allow_origins` of `t` into `c`: `*`, exact origins and `*.suffix` wildcards.
fn add_origins(c: &mut Cors, t: &model::Cors) -> Result<(), Problem> {
    if t.allow_origins.is_empty() {
        return Err(Problem::new(
            0..0,
            "allow_origins",
            "list the origins allowed, e.g. [\"https://app.example.com\"] (or [\"*\"])",
        ));
    }
    for (i, o) in t.allow_origins.iter().enumerate() {
        let s = o.get_ref().trim().to_ascii_lowercase();
        let bad = |m: String| Problem::new(o.span(), format!("allow_origins[{i}]"), m);
        if s == "*" {
            c.any_origin = true;
            continue;
        }
        let Some((scheme, host)) = s.split_once("://") else {
            return Err(bad(format!(
                "{s:?} is not an origin: write scheme://host[:port], e.g. \"https://app.example.com\""
            )));
        };
        if scheme.is_empty()
            || host.is_empty()
            || host.contains('/')
            || s.contains(char::is_whitespace)
        {
            return Err(bad(format!(
                "{s:?} is not an origin: scheme://host[:port] with no path or trailing slash"
            )));
        }
        match host.strip_prefix('*') {
            Some(rest) if rest.starts_with('.') && !rest[1..].is_empty() && !rest.contains('*') => {
                c.wildcard.push(Wildcard {
                    scheme: format!("{scheme}://").into_bytes().into(),
                    suffix: rest.as_bytes().into(),
                });
            }
            _ if host.contains('*') => {
                return Err(bad(format!(
                    "{s:?}: a wildcard may only open the host, as in \"https://*.example.com\""
                )));
            }
            _ => c.exact.push(s.into_bytes().into()),
        }
    }
    Ok(())
}

impl Cors {
    fn origin_allowed(&self, origin: &[u8]) -> bool {
        self.any_origin
            || self.exact.iter().any(|o| o.eq_ignore_ascii_case(origin))
            || self.wildcard.iter().any(|Wildcard { scheme, suffix }| {
                origin.len() > scheme.len() + suffix.len()
                    && origin[..scheme.len()].eq_ignore_ascii_case(scheme)
                    && origin[origin.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
                    && !origin[scheme.len()..origin.len() - suffix.len()]
                        .iter()
                        .any(|&b| b == b'/' || b == b':' || b == b'@')
            })
    }

    /// `Access-Control-Allow-Origin` (and `Vary`) for an allowed origin.
    fn allow_origin(&self, origin: &[u8], out: &mut Vec<u8>) {
        if self.any_origin {
            out.extend_from_slice(b"Access-Control-Allow-Origin: *\r\n");
        } else {
            out.extend_from_slice(b"Access-Control-Allow-Origin: ");
            out.extend_from_slice(origin);
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Data plane, for a request that is not a preflight: appends the fields
    /// its response carries (nothing but `Vary: Origin` for an origin not allowed).
    pub fn actual(&self, origin: Option<&[u8]>, out: &mut Vec<u8>) {
        if !self.any_origin {
            out.extend_from_slice(b"Vary: Origin\r\n");
        }
        if let Some(o) = origin.filter(|o| self.origin_allowed(o)) {
            self.allow_origin(o, out);
            out.extend_from_slice(&self.actual_lines);
        }
    }

    /// Data plane: if the request is a preflight, decides it and, when
    /// allowed, appends the fields of the 204 answer.
    pub fn preflight(&self, buf: &[u8], head: &RequestHead, out: &mut Vec<u8>) -> Preflight {
        if head.method(buf) != b"OPTIONS" {
            return Preflight::No;
        }
        let (Some(origin), Some(method)) = (
            field(buf, head, b"origin"),
            field(buf, head, b"access-control-request-method"),
        ) else {
            return Preflight::No;
        };
        if !self.origin_allowed(origin) {
            return Preflight::Refused("CORS preflight refused: origin not allowed");
        }
        if !self.any_method && !self.methods.iter().any(|m| **m == *method) {
            return Preflight::Refused("CORS preflight refused: method not allowed");
        }
        let requested = field(buf, head, b"access-control-request-headers").unwrap_or_default();
        let mut ok = true;
        if !self.any_header {
            for_each_token(requested, |h| {
                ok &= self.headers.iter().any(|a| a.eq_ignore_ascii_case(h));
            });
        }
        if !ok {
            return Preflight::Refused("CORS preflight refused: header not allowed");
        }
        self.allow_origin(origin, out);
        out.extend_from_slice(&self.preflight_lines);
        if self.any_header && !requested.is_empty() {
            out.extend_from_slice(b"Access-Control-Allow-Headers: ");
            out.extend_from_slice(requested);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(if self.any_origin {
            b"Vary: Access-Control-Request-Headers\r\n"
        } else {
            b"Vary: Origin, Access-Control-Request-Headers\r\n"
        });
        Preflight::Allowed
    }
}

/// The value of the first field named `name` (lower-case), if any.
pub fn field<'b>(buf: &'b [u8], head: &RequestHead, name: &[u8]) -> Option<&'b [u8]> {
    head.headers
        .iter()
        .find(|h| h.name.get(buf).eq_ignore_ascii_case(name))
        .map(|h| h.value.get(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h1::{Limits, request};

    fn cors(toml_text: &str) -> Result<Cors, Problem> {
        let t: model::Cors = toml::from_str(toml_text).unwrap();
        compile(&t)
    }

    fn run(c: &Cors, raw: &str) -> (Preflight, String) {
        let mut head = request::RequestHead::default();
        assert_eq!(
            request::parse(raw.as_bytes(), &Limits::default(), &mut head),
            Ok(true)
        );
        let mut out = Vec::new();
        let p = c.preflight(raw.as_bytes(), &head, &mut out);
        if p == Preflight::No {
            c.actual(field(raw.as_bytes(), &head, b"origin"), &mut out);
        }
        (p, String::from_utf8(out).unwrap())
    }

    const ISSUE: &str = r#"
allow_origins = ["https://app.example.com", "https://*.example.com"]
allow_methods = ["GET", "POST"]
allow_headers = ["content-type", "authorization", "x-api-key"]
expose_headers = ["x-request-id"]
allow_credentials = true
max_age = "10m"
"#;

    #[test]
    fn origins_exact_wildcard_and_any() {
        let c = cors(ISSUE).unwrap();
        for (origin, ok) in [
            ("https://app.example.com", true),
            ("HTTPS://APP.EXAMPLE.COM", true),
            ("https://a.example.com", true),
            ("https://a.b.example.com", true),
            ("https://example.com", false),
            ("http://a.example.com", false),
            ("https://evil.com/.example.com", false),
            ("https://a.example.com.evil.com", false),
            ("https://x@a.example.com", false),
            ("https://a.example.com:8443", false),
        ] {
            assert_eq!(c.origin_allowed(origin.as_bytes()), ok, "{origin}");
        }
        let any = cors("allow_origins = [\"*\"]").unwrap();
        assert!(any.origin_allowed(b"http://anything:1"));
    }

    #[test]
    fn preflight_answers_and_refusals() {
        let c = cors(ISSUE).unwrap();
        let (p, f) = run(
            &c,
            "OPTIONS /x HTTP/1.1\r\nHost: h\r\nOrigin: https://a.example.com\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: Content-Type, X-API-Key\r\n\r\n",
        );
        assert_eq!(p, Preflight::Allowed);
        for want in [
            "Access-Control-Allow-Origin: https://a.example.com\r\n",
            "Access-Control-Allow-Methods: GET, POST\r\n",
            "Access-Control-Allow-Headers: content-type, authorization, x-api-key\r\n",
            "Access-Control-Max-Age: 600\r\n",
            "Access-Control-Allow-Credentials: true\r\n",
            "Vary: Origin",
        ] {
            assert!(f.contains(want), "{want} missing in {f}");
        }
        let refused = |raw: &str| run(&c, raw).0;
        assert_eq!(
            refused(
                "OPTIONS /x HTTP/1.1\r\nHost: h\r\nOrigin: https://evil.com\r\nAccess-Control-Request-Method: GET\r\n\r\n"
            ),
            Preflight::Refused("CORS preflight refused: origin not allowed")
        );
        assert_eq!(
            refused(
                "OPTIONS /x HTTP/1.1\r\nHost: h\r\nOrigin: https://a.example.com\r\nAccess-Control-Request-Method: DELETE\r\n\r\n"
            ),
            Preflight::Refused("CORS preflight refused: method not allowed")
        );
        assert_eq!(
            refused(
                "OPTIONS /x HTTP/1.1\r\nHost: h\r\nOrigin: https://a.example.com\r\nAccess-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: x-secret\r\n\r\n"
            ),
            Preflight::Refused("CORS preflight refused: header not allowed")
        );
        // A plain OPTIONS is no preflight: it goes to the upstream.
        assert_eq!(
            refused("OPTIONS /x HTTP/1.1\r\nHost: h\r\n\r\n"),
            Preflight::No
        );
    }

    #[test]
    fn actual_responses_get_origin_credentials_and_exposed_headers() {
        let c = cors(ISSUE).unwrap();
        let (_, f) = run(
            &c,
            "GET /x HTTP/1.1\r\nHost: h\r\nOrigin: https://app.example.com\r\n\r\n",
        );
        assert_eq!(
            f,
            "Vary: Origin\r\nAccess-Control-Allow-Origin: https://app.example.com\r\nAccess-Control-Expose-Headers: x-request-id\r\nAccess-Control-Allow-Credentials: true\r\n"
        );
        let (_, f) = run(
            &c,
            "GET /x HTTP/1.1\r\nHost: h\r\nOrigin: https://evil.com\r\n\r\n",
        );
        assert_eq!(f, "Vary: Origin\r\n");
        let any = cors("allow_origins = [\"*\"]\nallow_headers = [\"*\"]").unwrap();
        let (_, f) = run(
            &any,
            "GET /x HTTP/1.1\r\nHost: h\r\nOrigin: https://x.org\r\n\r\n",
        );
        assert_eq!(f, "Access-Control-Allow-Origin: *\r\n");
        let (p, f) = run(
            &any,
            "OPTIONS /x HTTP/1.1\r\nHost: h\r\nOrigin: https://x.org\r\nAccess-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: x-anything\r\n\r\n",
        );
        assert_eq!(p, Preflight::Allowed);
        assert!(
            f.contains("Access-Control-Allow-Headers: x-anything\r\n"),
            "{f}"
        );
    }

    #[test]
    fn bad_cors_configs_name_the_key() {
        for (text, key, says) in [
            (
                "allow_origins = [\"app.example.com\"]",
                "allow_origins[0]",
                "not an origin",
            ),
            (
                "allow_origins = [\"https://a.example.com/\"]",
                "allow_origins[0]",
                "no path",
            ),
            (
                "allow_origins = [\"https://a.*.com\"]",
                "allow_origins[0]",
                "wildcard",
            ),
            (
                "allow_origins = [\"*\"]\nallow_credentials = true",
                "allow_credentials",
                "list the origins",
            ),
            ("allow_origins = []", "allow_origins", "list the origins"),
            (
                "allow_origins = [\"*\"]\nallow_methods = [\"G T\"]",
                "allow_methods[0]",
                "not a method",
            ),
            (
                "allow_origins = [\"*\"]\nallow_headers = [\"a:b\"]",
                "allow_headers[0]",
                "not a header",
            ),
        ] {
            let e = cors(text).unwrap_err();
            assert_eq!(e.key, key, "{text}");
            assert!(e.message.contains(says), "{text}: {}", e.message);
        }
    }
}
