//! Backend URI templates: `http://app/v2/accounts/{id}`,
//! `http://users/v2/{id}/orders?tenant={tenant}`, `http://backend:8080/api/{proxy}`.
//!
//! Parsed once against the parameter names of a route, expanded per request
//! into an origin-form target (path and query) without allocating.
//!
//! Expansion percent-decodes each captured segment and encodes it again, so
//! the backend sees one canonical spelling. It is strict where a lenient
//! choice could let a request climb out of the template's path:
//!
//! - an invalid percent-encoding is [`ExpandError::BadEncoding`];
//! - a captured `\` or NUL (raw or encoded), an encoded `/` (`%2F`) inside a
//!   greedy capture, or any `.` / `..` segment in the expanded path (however
//!   it was spelled: `..`, `%2e%2e`, `%2E.`, …) is [`ExpandError::Traversal`].
//!
//! Both mean "answer 400 and forward nothing". A single-segment parameter may
//! carry an encoded `/`; it is forwarded encoded (`%2F`) and stays one segment.

use std::fmt;

use crate::Router;
use crate::lookup::{Match, Param};
use crate::percent::{self, AsciiSet, QUERY_VALUE, SEGMENT, encode_byte};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(Box<[u8]>),
    Param(Box<str>),
}

/// A parsed backend URI template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriTemplate {
    scheme: Box<str>,
    authority: Box<str>,
    path: Vec<Part>,
    query: Option<Vec<Part>>,
}

/// A backend URI template that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    message: String,
}

impl TemplateError {
    fn new(template: &str, message: impl fmt::Display) -> Self {
        TemplateError {
            message: format!("uri `{template}`: {message}"),
        }
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TemplateError {}

/// Why a request cannot be forwarded through a template. `BadEncoding` and
/// `Traversal` are the client's fault (400); `Unbound` means the template was
/// expanded with a match of a route it was not parsed for (500).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpandError {
    /// A captured parameter has an invalid percent-encoding.
    BadEncoding,
    /// A capture would change the backend path's structure: `.`/`..`
    /// segments, `\`, NUL, or an encoded `/` in a greedy capture.
    Traversal,
    /// The match has no capture for a parameter the template uses.
    Unbound,
}

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExpandError::BadEncoding => "invalid percent-encoding in a path parameter",
            ExpandError::Traversal => "path parameter would escape the backend path",
            ExpandError::Unbound => "backend template uses a parameter the route does not capture",
        })
    }
}

impl std::error::Error for ExpandError {}

fn parse_parts(template: &str, text: &str, params: &[&str]) -> Result<Vec<Part>, TemplateError> {
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let brace = rest.find(['{', '}']).unwrap_or(rest.len());
        let (literal, tail) = rest.split_at(brace);
        if !literal.is_empty() {
            if let Some(c) = literal
                .chars()
                .find(|&c| c.is_ascii_control() || c == ' ' || c == '#' || !c.is_ascii())
            {
                return Err(TemplateError::new(
                    template,
                    format!("{c:?} must be percent-encoded"),
                ));
            }
            if percent::decode(literal.as_bytes()).any(|b| b.is_err()) {
                return Err(TemplateError::new(template, "invalid percent-encoding"));
            }
            parts.push(Part::Literal(literal.as_bytes().into()));
        }
        if tail.is_empty() {
            break;
        }
        if tail.starts_with('}') {
            return Err(TemplateError::new(template, "`}` without `{`"));
        }
        let Some(close) = tail.find('}') else {
            return Err(TemplateError::new(template, "unclosed `{`"));
        };
        let inner = &tail[1..close];
        let name = inner.strip_suffix('+').unwrap_or(inner);
        if !params
            .iter()
            .any(|p| p.strip_suffix('+').unwrap_or(p) == name)
        {
            let defined = if params.is_empty() {
                "none".to_owned()
            } else {
                params.join(", ")
            };
            let message = format!("unknown parameter `{{{name}}}` (the route defines: {defined})");
            return Err(TemplateError::new(template, message));
        }
        parts.push(Part::Param(name.into()));
        rest = &tail[close + 1..];
    }
    Ok(parts)
}

impl UriTemplate {
    /// Parses `s` (`http://` or `https://`, an authority, an optional path and
    /// query) for a route whose path template defines `params` (a greedy
    /// `{proxy+}` is referenced as `{proxy}`; `{proxy+}` is accepted too).
    pub fn parse(s: &str, params: &[&str]) -> Result<UriTemplate, TemplateError> {
        let Some((scheme, rest)) = s.split_once("://") else {
            return Err(TemplateError::new(s, "expected `http://` or `https://`"));
        };
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(TemplateError::new(
                s,
                format!("scheme `{scheme}` is not http or https"),
            ));
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, rest) = rest.split_at(split);
        if authority.is_empty() || authority.contains(['{', '}', '@', '#', ' ', '\\']) {
            return Err(TemplateError::new(
                s,
                "the authority must be a plain `host` or `host:port`",
            ));
        }
        if rest.contains('#') {
            return Err(TemplateError::new(s, "a fragment is not allowed"));
        }
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let path = if path.is_empty() { "/" } else { path };
        let template = UriTemplate {
            scheme: scheme.into(),
            authority: authority.into(),
            path: parse_parts(s, path, params)?,
            query: query.map(|q| parse_parts(s, q, params)).transpose()?,
        };
        let mut probe = Vec::new();
        for part in &template.path {
            probe.extend_from_slice(match part {
                Part::Literal(l) => l,
                Part::Param(_) => b"x",
            });
        }
        if has_dot_segment(&probe) {
            return Err(TemplateError::new(s, "the path has a `.` or `..` segment"));
        }
        Ok(template)
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// `host` or `host:port` as written: the engine maps it to an upstream.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// Appends the backend target (origin form: path, then `?query`) for the
    /// request `path` matched as `m` by `router` to `out`, then the client's
    /// query string `client_query` (without `?`; may be empty), after the
    /// template's own query with `&` (or after `?` if it has none).
    ///
    /// Allocates nothing beyond growing `out`. On error `out` is restored to
    /// its previous length.
    pub fn expand(
        &self,
        path: &[u8],
        m: &Match,
        router: &Router,
        client_query: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ExpandError> {
        let start = out.len();
        let result = self.write(path, m, router, client_query, out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn write(
        &self,
        path: &[u8],
        m: &Match,
        router: &Router,
        client_query: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ExpandError> {
        let path_start = out.len();
        for part in &self.path {
            match part {
                Part::Literal(l) => out.extend_from_slice(l),
                Part::Param(name) => {
                    let p = capture(m, router, name)?;
                    write_path_param(p.raw(path), p.is_greedy(), out)?;
                }
            }
        }
        if has_dot_segment(&out[path_start..]) {
            return Err(ExpandError::Traversal);
        }
        let mut has_query = false;
        if let Some(query) = &self.query {
            out.push(b'?');
            has_query = true;
            for part in query {
                match part {
                    Part::Literal(l) => out.extend_from_slice(l),
                    Part::Param(name) => {
                        let p = capture(m, router, name)?;
                        write_decoded(p.raw(path), &QUERY_VALUE, out)?;
                    }
                }
            }
        }
        if !client_query.is_empty() {
            out.push(if has_query { b'&' } else { b'?' });
            out.extend_from_slice(client_query);
        }
        Ok(())
    }
}

fn capture(m: &Match, router: &Router, name: &str) -> Result<Param, ExpandError> {
    m.get(router, name).ok_or(ExpandError::Unbound)
}

fn write_decoded(raw: &[u8], set: &AsciiSet, out: &mut Vec<u8>) -> Result<(), ExpandError> {
    for b in percent::decode(raw) {
        encode_byte(b.map_err(|_| ExpandError::BadEncoding)?, set, out);
    }
    Ok(())
}

/// Writes a path capture segment by segment, each decoded and re-encoded.
fn write_path_param(raw: &[u8], greedy: bool, out: &mut Vec<u8>) -> Result<(), ExpandError> {
    for (i, segment) in raw.split(|&b| b == b'/').enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        for b in percent::decode(segment) {
            match b.map_err(|_| ExpandError::BadEncoding)? {
                b'\\' | 0 => return Err(ExpandError::Traversal),
                b'/' if greedy => return Err(ExpandError::Traversal),
                b => encode_byte(b, &SEGMENT, out),
            }
        }
    }
    Ok(())
}

/// Whether the decoded `path`, split at `/` and `\`, has a `.` or `..` piece.
fn has_dot_segment(path: &[u8]) -> bool {
    let mut dots = 0usize;
    let mut other = false;
    for b in percent::decode(path) {
        match b {
            Ok(b'/' | b'\\') => {
                if !other && (dots == 1 || dots == 2) {
                    return true;
                }
                dots = 0;
                other = false;
            }
            Ok(b'.') => dots += 1,
            Ok(_) | Err(_) => other = true,
        }
    }
    !other && (dots == 1 || dots == 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments() {
        for yes in [
            "/..",
            "/.",
            "/a/../b",
            "/a/%2e%2E",
            "/a/.%2e/",
            "/a%2f..%2fb",
            "..",
            "/a\\..\\b",
        ] {
            assert!(has_dot_segment(yes.as_bytes()), "{yes}");
        }
        for no in ["/", "/a", "/...", "/a..", "/..a", "/.a/b.", ""] {
            assert!(!has_dot_segment(no.as_bytes()), "{no}");
        }
    }
}
