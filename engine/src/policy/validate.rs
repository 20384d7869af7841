//! `[route.validate]`: required header fields and query parameters, a body
//! size cap (413) and allowed content types (415), checked on the head alone
//! before anything is forwarded; and optionally a JSON Schema the body must
//! satisfy (`schema.rs`), checked on the whole body before anything is
//! forwarded.
//!
//! A body's size is known up front only with Content-Length: on a route with
//! `max_body_bytes`, a chunked body is refused with 411 (Length Required)
//! rather than cut off mid-stream — unless the route has a `json_schema`,
//! whose bodies are read whole anyway, and refused (413) the moment they
//! pass the limit.

use super::schema::{self, JsonBody};
use super::{Check, Compile, Policy, Problem, Verdict};
use crate::config::model;
use crate::h1::Framing;
use crate::h1::request::RequestHead;
use std::ops::ControlFlow;
use std::path::Path;

#[derive(Debug)]
pub struct Validate {
    /// Lower-case names, each with its 400 message.
    headers: Vec<(Box<[u8]>, Box<str>)>,
    /// Parameter names, each with its 400 message.
    query: Vec<(Box<[u8]>, Box<str>)>,
    max_body: Option<u64>,
    /// Lower-case media types; `type/*` allows a whole type.
    content_types: Vec<Box<[u8]>>,
    json: Option<JsonBody>,
}

impl Policy for Validate {
    type Table = model::Validate;
    type Local = ();

    fn compile(t: &model::Validate, cx: &Compile<'_>) -> Result<Validate, Problem> {
        compile(t, cx.base)
    }

    fn check<'c>(&'c self, cx: &mut Check<'_>, _: Option<&mut ()>) -> ControlFlow<Verdict<'c>> {
        match self.check_request(cx.req.buf, cx.req.head) {
            Ok(()) => ControlFlow::Continue(()),
            Err((status, message)) => ControlFlow::Break(Verdict::Reject(status, message)),
        }
    }
}

/// Control plane: `[route.validate]` → [`Validate`]; `base` is the config file's folder.
pub fn compile(t: &model::Validate, base: &Path) -> Result<Validate, Problem> {
    let mut headers = Vec::new();
    for (i, h) in t.required_headers.iter().enumerate() {
        let name = h.get_ref().trim().to_ascii_lowercase();
        if !super::throttle::is_token(&name) {
            return Err(Problem::new(
                h.span(),
                format!("required_headers[{i}]"),
                format!("{name:?} is not a header name"),
            ));
        }
        let message = format!("missing required header {name}");
        headers.push((name.into_bytes().into(), message.into()));
    }
    let mut query = Vec::new();
    for (i, q) in t.required_query.iter().enumerate() {
        let name = q.get_ref();
        if name.is_empty() || name.contains(['&', '=', '#', ' ', '"', '\\']) {
            return Err(Problem::new(
                q.span(),
                format!("required_query[{i}]"),
                format!("{name:?} is not a query parameter name"),
            ));
        }
        let message = format!("missing required query parameter {name}");
        query.push((name.as_bytes().into(), message.into()));
    }
    let mut content_types = Vec::new();
    for (i, c) in t.content_types.iter().enumerate() {
        let ct = c.get_ref().trim().to_ascii_lowercase();
        let ok = ct.split_once('/').is_some_and(|(a, b)| {
            super::throttle::is_token(a) && (b == "*" || super::throttle::is_token(b))
        });
        if !ok {
            return Err(Problem::new(
                c.span(),
                format!("content_types[{i}]"),
                format!("{ct:?} is not a media type such as \"application/json\""),
            ));
        }
        content_types.push(ct.into_bytes().into());
    }
    Ok(Validate {
        headers,
        query,
        max_body: t.max_body_bytes.map(|s| s.0),
        content_types,
        json: schema::compile(t, base)?,
    })
}

impl Validate {
    /// The route's JSON Schema, if it has one: its body is read whole and checked.
    #[inline]
    pub fn json(&self) -> Option<&JsonBody> {
        self.json.as_ref()
    }

    /// Data plane: `Err((status, message))` for a request that fails.
    pub fn check_request<'s>(
        &'s self,
        buf: &[u8],
        head: &RequestHead,
    ) -> Result<(), (u16, &'s str)> {
        for (name, message) in &self.headers {
            if super::cors::field(buf, head, name).is_none() {
                return Err((400, message));
            }
        }
        if !self.query.is_empty() {
            let q = head.query(buf);
            for (name, message) in &self.query {
                let present = q.split(|&b| b == b'&').any(|pair| {
                    let key = pair.split(|&b| b == b'=').next().unwrap_or_default();
                    key == &**name
                });
                if !present {
                    return Err((400, message));
                }
            }
        }
        if let Some(max) = self.max_body {
            match head.framing {
                Framing::Length(n) if n > max => {
                    return Err((413, "request body too large"));
                }
                Framing::Chunked if self.json.is_none() => {
                    return Err((411, "a body without Content-Length is not accepted here"));
                }
                _ => {}
            }
        }
        if !self.content_types.is_empty() && head.has_body() {
            let ct = super::cors::field(buf, head, b"content-type").unwrap_or_default();
            let media = ct.split(|&b| b == b';').next().unwrap_or_default();
            let media = crate::h1::header::trim_ows(media);
            let allowed = self
                .content_types
                .iter()
                .any(|a| match a.strip_suffix(b"/*") {
                    Some(ty) => {
                        media.len() > ty.len()
                            && media[..ty.len()].eq_ignore_ascii_case(ty)
                            && media[ty.len()] == b'/'
                    }
                    None => media.eq_ignore_ascii_case(a),
                });
            if !allowed {
                return Err((415, "unsupported content type"));
            }
        }
        if let Some(j) = &self.json {
            j.check_head(buf, head)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h1::{Limits, request};

    fn validate(text: &str) -> Validate {
        compile(
            &toml::from_str::<model::Validate>(text).unwrap(),
            Path::new("."),
        )
        .unwrap()
    }

    #[test]
    fn requests_are_checked_in_order() {
        let v = validate(
            "required_headers = [\"X-Tenant\"]\nrequired_query = [\"page\"]\nmax_body_bytes = 10\ncontent_types = [\"application/json\", \"text/*\"]",
        );
        type Case<'a> = (&'a str, Result<(), (u16, &'a str)>);
        let cases: &[Case] = &[
            (
                "GET /?page=1 HTTP/1.1\r\nHost: h\r\nx-tenant: a\r\n\r\n",
                Ok(()),
            ),
            (
                "GET /?page HTTP/1.1\r\nHost: h\r\nx-tenant: a\r\n\r\n",
                Ok(()),
            ),
            (
                "GET /?page=1 HTTP/1.1\r\nHost: h\r\n\r\n",
                Err((400, "missing required header x-tenant")),
            ),
            (
                "GET /?pages=1 HTTP/1.1\r\nHost: h\r\nx-tenant: a\r\n\r\n",
                Err((400, "missing required query parameter page")),
            ),
            (
                "POST /?page=1 HTTP/1.1\r\nHost: h\r\nx-tenant: a\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: 10\r\n\r\n",
                Ok(()),
            ),
            (
                "POST /?page=1 HTTP/1.1\r\nHost: h\r\nx-tenant: a\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\n",
                Ok(()),
            ),
            (
                "POST /?page=1 HTTP/1.1\r\nHost: h\r\nx-tenant: a\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n",
                Err((413, "request body too large")),
            ),
            (
                "POST /?page=1 HTTP/1.1\r\nHost: h\r\nx-tenant: a\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
                Err((411, "a body without Content-Length is not accepted here")),
            ),
            (
                "POST /?page=1 HTTP/1.1\r\nHost: h\r\nx-tenant: a\r\nContent-Type: application/xml\r\nContent-Length: 1\r\n\r\n",
                Err((415, "unsupported content type")),
            ),
            (
                "POST /?page=1 HTTP/1.1\r\nHost: h\r\nx-tenant: a\r\nContent-Length: 1\r\n\r\n",
                Err((415, "unsupported content type")),
            ),
            (
                "POST /?page=1 HTTP/1.1\r\nHost: h\r\nx-tenant: a\r\nContent-Type: textual/x\r\nContent-Length: 1\r\n\r\n",
                Err((415, "unsupported content type")),
            ),
        ];
        for (raw, want) in cases {
            let mut head = request::RequestHead::default();
            assert_eq!(
                request::parse(raw.as_bytes(), &Limits::default(), &mut head),
                Ok(true)
            );
            assert_eq!(v.check_request(raw.as_bytes(), &head), *want, "{raw}");
        }
    }

    #[test]
    fn bad_validate_configs_name_the_key() {
        for (text, key) in [
            ("required_headers = [\"a b\"]", "required_headers[0]"),
            ("required_query = [\"a=b\"]", "required_query[0]"),
            ("content_types = [\"json\"]", "content_types[0]"),
            ("json_schema = \"/nonexistent/s.json\"", "json_schema"),
            ("json_max_bytes = 10", "json_max_bytes"),
        ] {
            let t = toml::from_str::<model::Validate>(text).unwrap();
            let e = compile(&t, Path::new(".")).unwrap_err();
            assert_eq!(e.key, key, "{text}");
        }
    }
}
