//! `[route.mock]`: the route answers a fixed status, header fields and body
//! itself (API Gateway's MOCK integration); no upstream is involved.

use super::{Check, Compile, Policy, Problem, Verdict};
use crate::config::model;
use std::ops::ControlFlow;

#[derive(Debug, PartialEq, Eq)]
pub struct Mock {
    pub status: u16,
    /// The configured fields, rendered once: `name: value\r\n` lines.
    pub fields: Box<[u8]>,
    pub body: Box<[u8]>,
}

/// Fields ringway writes itself; a mock may not set them.
const RESERVED: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "trailer",
];

impl Policy for Mock {
    type Table = model::Mock;
    type Local = ();

    fn compile(t: &model::Mock, _: &Compile<'_>) -> Result<Mock, Problem> {
        compile(t)
    }

    fn check<'c>(&'c self, _: &mut Check<'_>, _: Option<&mut ()>) -> ControlFlow<Verdict<'c>> {
        ControlFlow::Break(Verdict::Mock(self))
    }
}

/// Control plane: `[route.mock]` → [`Mock`].
pub fn compile(t: &model::Mock) -> Result<Mock, Problem> {
    let status = *t.status.get_ref();
    if !(200..=599).contains(&status) {
        return Err(Problem::new(
            t.status.span(),
            "status",
            "a mock status must be between 200 and 599",
        ));
    }
    let mut fields = Vec::new();
    if let Some(h) = &t.headers {
        for (name, value) in h.get_ref() {
            let at = |m: String| Problem::new(h.span(), format!("headers.{name}"), m);
            if !super::throttle::is_token(name) {
                return Err(at(format!("{name:?} is not a header name")));
            }
            if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name)) {
                return Err(at(format!(
                    "ringway frames the mock response itself: remove `{name}`"
                )));
            }
            if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                return Err(at(
                    "a header value may not hold control characters (CR, LF, ...)".into(),
                ));
            }
            fields.extend_from_slice(name.as_bytes());
            fields.extend_from_slice(b": ");
            fields.extend_from_slice(value.trim().as_bytes());
            fields.extend_from_slice(b"\r\n");
        }
    }
    let body = t.body.clone().unwrap_or_default().into_bytes();
    if matches!(status, 204 | 304) && !body.is_empty() {
        return Err(Problem::new(
            t.status.span(),
            "body",
            format!("a {status} response has no body: remove `body`"),
        ));
    }
    Ok(Mock {
        status,
        fields: fields.into(),
        body: body.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mock(text: &str) -> Result<Mock, Problem> {
        compile(&toml::from_str::<model::Mock>(text).unwrap())
    }

    #[test]
    fn the_issue_mock_renders_its_fields() {
        let m = mock("status = 200\nheaders = { content-type = \"application/json\" }\nbody = '{\"ok\":true}'").unwrap();
        assert_eq!(m.status, 200);
        assert_eq!(&*m.fields, b"content-type: application/json\r\n");
        assert_eq!(&*m.body, br#"{"ok":true}"#);
    }

    #[test]
    fn bad_mocks_are_refused() {
        for (text, key) in [
            ("status = 99", "status"),
            ("status = 700", "status"),
            (
                "status = 200\nheaders = { content-length = \"3\" }",
                "headers.content-length",
            ),
            ("status = 200\nheaders = { \"a b\" = \"3\" }", "headers.a b"),
            (
                "status = 200\nheaders = { x = \"a\\r\\nSet-Cookie: x\" }",
                "headers.x",
            ),
            ("status = 204\nbody = \"x\"", "body"),
        ] {
            assert_eq!(mock(text).unwrap_err().key, key, "{text}");
        }
    }
}
