//! `[route.mapping]`: parameter mapping in the API Gateway HTTP API style.
//! `request` keys are `overwrite:header.NAME`, `append:header.NAME`,
//! `remove:header.NAME` and the same for `querystring.NAME`; `response` keys
//! work on response header fields. Request values are literals or
//! `$request.header.NAME`, `$request.querystring.NAME`, `$request.path.NAME`,
//! `$context.identity.sourceIp`; response values are literals.
//!
//! Values never carry CR or LF: request values come from a parsed head
//! (which refuses them), query values are forwarded still percent-encoded,
//! and literals with control characters are config errors.

use super::Problem;
use crate::config::model;
use crate::h1::request::RequestHead;
use std::collections::BTreeMap;
use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Overwrite,
    Append,
    Remove,
}

#[derive(Debug, PartialEq, Eq)]
enum Value {
    Literal(Box<[u8]>),
    Header(Box<[u8]>),
    Query(Box<[u8]>),
    PathParam(String),
    SourceIp,
}

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
    /// Request header names the client's fields are dropped for (overwrite, remove).
    replaced: Vec<Box<[u8]>>,
    /// Response field lines added (overwrite, append), rendered once.
    response_fields: Box<[u8]>,
    /// Response header names the upstream's fields are dropped for.
    response_replaced: Vec<Box<[u8]>>,
    uses_client_ip: bool,
}

/// Control plane: `[route.mapping]` → [`Mapping`]; `params` are the route's path parameters.
pub fn compile(t: &model::Mapping, params: &[&str]) -> Result<Mapping, Problem> {
    let mut m = Mapping::default();
    let span = |map: &Option<toml::Spanned<BTreeMap<String, String>>>| {
        map.as_ref().map_or(0..0, |s| s.span())
    };
    if let Some(req) = &t.request {
        for (key, value) in req.get_ref() {
            let at =
                |msg: String| Problem::new(span(&t.request), format!("request.\"{key}\""), msg);
            let (op, target, name) = parse_key(key).map_err(at)?;
            let value = if op == Op::Remove {
                Value::Literal(Box::default())
            } else {
                parse_value(value, params).map_err(at)?
            };
            m.uses_client_ip |= value == Value::SourceIp;
            let rule = Rule {
                op,
                name: name.clone(),
                value,
            };
            match target {
                "header" => {
                    if op != Op::Append {
                        m.replaced.push(name);
                    }
                    m.headers.push(rule);
                }
                "querystring" => m.query.push(rule),
                _ => {
                    return Err(at(format!(
                        "{target:?}: map `header.NAME` or `querystring.NAME` (path overwrites are not supported yet)"
                    )));
                }
            }
        }
    }
    if let Some(resp) = &t.response {
        let mut fields = Vec::new();
        for (key, value) in resp.get_ref() {
            let at =
                |msg: String| Problem::new(span(&t.response), format!("response.\"{key}\""), msg);
            let (op, target, name) = parse_key(key).map_err(at)?;
            if target != "header" {
                return Err(at("a response mapping works on `header.NAME`".into()));
            }
            if value.starts_with('$') {
                return Err(at("response values are literals for now".into()));
            }
            check_literal(value).map_err(at)?;
            if op != Op::Append {
                m.response_replaced.push(name.clone());
            }
            if op != Op::Remove {
                fields.extend_from_slice(&name);
                fields.extend_from_slice(b": ");
                fields.extend_from_slice(value.as_bytes());
                fields.extend_from_slice(b"\r\n");
            }
        }
        m.response_fields = fields.into();
    }
    Ok(m)
}

fn parse_key(key: &str) -> Result<(Op, &str, Box<[u8]>), String> {
    let bad = || {
        format!(
            "{key:?}: write `overwrite:header.NAME`, `append:querystring.NAME`, `remove:header.NAME`, ..."
        )
    };
    let (op, rest) = key.split_once(':').ok_or_else(bad)?;
    let op = match op {
        "overwrite" => Op::Overwrite,
        "append" => Op::Append,
        "remove" => Op::Remove,
        _ => return Err(bad()),
    };
    let (target, name) = rest.split_once('.').ok_or_else(bad)?;
    let name = match target {
        "header" if super::throttle::is_token(name) => name.to_ascii_lowercase(),
        "querystring" if !name.is_empty() && !name.contains(['&', '=', '#', ' ']) => {
            name.to_string()
        }
        "header" | "querystring" => return Err(format!("{name:?} is not a valid name")),
        _ => target.to_string(),
    };
    if !matches!(target, "header" | "querystring") {
        return Ok((
            op,
            if target == "path" { "path" } else { "other" },
            name.into_bytes().into(),
        ));
    }
    let target = if target == "header" {
        "header"
    } else {
        "querystring"
    };
    Ok((op, target, name.into_bytes().into()))
}

fn check_literal(v: &str) -> Result<(), String> {
    if v.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err("a value may not hold control characters (CR, LF, ...)".into());
    }
    Ok(())
}

fn parse_value(v: &str, params: &[&str]) -> Result<Value, String> {
    if let Some(n) = v.strip_prefix("$request.header.") {
        return Ok(Value::Header(n.to_ascii_lowercase().into_bytes().into()));
    }
    if let Some(n) = v.strip_prefix("$request.querystring.") {
        return Ok(Value::Query(n.as_bytes().into()));
    }
    if let Some(n) = v.strip_prefix("$request.path.") {
        if !params.contains(&n) {
            return Err(format!(
                "the route's path has no parameter {{{n}}} (it has {params:?})"
            ));
        }
        return Ok(Value::PathParam(n.to_string()));
    }
    match v {
        "$context.identity.sourceIp" => Ok(Value::SourceIp),
        _ if v.starts_with('$') => Err(format!(
            "{v:?} is not supported: use a literal, $request.header.NAME, $request.querystring.NAME, $request.path.NAME or $context.identity.sourceIp"
        )),
        _ => {
            check_literal(v)?;
            Ok(Value::Literal(v.as_bytes().into()))
        }
    }
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
}

impl Mapping {
    pub fn uses_client_ip(&self) -> bool {
        self.uses_client_ip
    }

    /// Request header names whose client fields are dropped.
    pub fn replaced(&self) -> &[Box<[u8]>] {
        &self.replaced
    }

    pub fn response_fields(&self) -> &[u8] {
        &self.response_fields
    }

    pub fn response_replaced(&self) -> &[Box<[u8]>] {
        &self.response_replaced
    }

    pub fn rewrites_query(&self) -> bool {
        !self.query.is_empty()
    }

    /// Looks a value up; `None` when its source is absent (the rule is skipped).
    fn value<'c>(&'c self, v: &'c Value, cx: &Context<'c>, ip: &'c mut String) -> Option<&'c [u8]> {
        match v {
            Value::Literal(l) => Some(l),
            Value::Header(n) => super::cors::field(cx.buf, cx.head, n),
            Value::Query(n) => cx
                .head
                .query(cx.buf)
                .split(|&b| b == b'&')
                .find_map(|pair| {
                    let mut kv = pair.splitn(2, |&b| b == b'=');
                    (kv.next() == Some(&**n)).then(|| kv.next().unwrap_or_default())
                }),
            Value::PathParam(n) => {
                let r = cx.found?.param(cx.router, n)?;
                cx.path.get(r)
            }
            Value::SourceIp => {
                use std::fmt::Write;
                let _ = write!(ip, "{}", cx.client);
                Some(ip.as_bytes())
            }
        }
    }

    /// Data plane: appends the upstream header lines of overwrite and append rules.
    pub fn request_fields(&self, cx: &Context<'_>, out: &mut Vec<u8>) {
        for r in self.headers.iter().filter(|r| r.op != Op::Remove) {
            let mut ip = String::new();
            if let Some(v) = self.value(&r.value, cx, &mut ip) {
                out.extend_from_slice(&r.name);
                out.extend_from_slice(b": ");
                out.extend_from_slice(v);
                out.extend_from_slice(b"\r\n");
            }
        }
    }

    /// Data plane: writes `target` (path and query) with the query rules applied.
    pub fn rewrite_target(&self, target: &[u8], cx: &Context<'_>, out: &mut Vec<u8>) {
        let (path, query) = match target.iter().position(|&b| b == b'?') {
            Some(q) => (&target[..q], &target[q + 1..]),
            None => (target, &[][..]),
        };
        out.extend_from_slice(path);
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
            let mut ip = String::new();
            let Some(v) = self.value(&r.value, cx, &mut ip) else {
                continue;
            };
            out.push(sep);
            sep = b'&';
            encode(&r.name, out);
            out.push(b'=');
            match r.value {
                // Already in query form: forwarded as it came.
                Value::Query(_) => out.extend_from_slice(v),
                _ => encode(v, out),
            }
        }
    }
}

/// Percent-encodes all but unreserved characters (RFC 3986 §2.3).
fn encode(v: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in v {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        }
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
        };
        let mut out = Vec::new();
        m.request_fields(&cx, &mut out);
        assert_eq!(out, b"x-tenant: acme\r\n");
        assert_eq!(
            m.replaced(),
            [b"x-tenant".as_slice().into(), b"cookie".as_slice().into()] as [Box<[u8]>; 2]
        );
        out.clear();
        m.rewrite_target(b"/u?a=1&src=x", &cx, &mut out);
        assert_eq!(out, b"/u?a=1&src=x&src=gw");
        assert_eq!(m.response_fields(), b"x-gateway: ringway\r\n");
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
        };
        let mut out = Vec::new();
        m.rewrite_target(b"/p?who=me&secret=1&x", &cx, &mut out);
        // Rules apply in key order (TOML tables are read sorted).
        assert_eq!(out, b"/p?x&note=a%20b%26c&who=2001%3Adb8%3A%3A1");
    }

    #[test]
    fn bad_mappings_are_refused() {
        for text in [
            r#"request = { "replace:header.x" = "1" }"#,
            r#"request = { "overwrite:header.a b" = "1" }"#,
            r#"request = { "overwrite:path" = "/x" }"#,
            r#"request = { "overwrite:header.x" = "$context.requestId" }"#,
            r#"request = { "overwrite:header.x" = "$request.path.nope" }"#,
            r#"request = { "overwrite:header.x" = "a\r\nb: c" }"#,
            r#"response = { "overwrite:header.x" = "$request.header.y" }"#,
        ] {
            assert!(mapping(text).is_err(), "{text}");
        }
    }
}
