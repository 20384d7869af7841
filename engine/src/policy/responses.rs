//! `[gateway_responses]`: the bodies, content type, extra fields and status
//! of ringway's own error responses, per status (`"429"`) or per class
//! (`"4xx"`, `"5xx"`), as API Gateway's gateway responses are. A body is a
//! template with `$context.error.message` (JSON-escaped text),
//! `$context.error.messageString` (the same as a quoted JSON string),
//! `$context.requestId` and `$context.status`. Without an entry a status
//! gets the default `{"message":"..."}` body.

use super::Problem;
use crate::config::model;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(Box<[u8]>),
    Message,
    MessageString,
    RequestId,
    Status,
}

#[derive(Debug)]
pub struct Response {
    /// The status sent instead, if the entry changes it.
    status: Option<u16>,
    content_type: Box<[u8]>,
    /// Extra field lines, each ending in CRLF.
    fields: Box<[u8]>,
    body: Vec<Piece>,
}

/// All entries, looked up by status, then class.
#[derive(Debug, Default)]
pub struct Responses {
    by_status: Vec<(u16, Response)>,
    class_4xx: Option<Response>,
    class_5xx: Option<Response>,
}

impl Responses {
    pub fn is_empty(&self) -> bool {
        self.by_status.is_empty() && self.class_4xx.is_none() && self.class_5xx.is_none()
    }

    /// The entry for `status`, if one is configured.
    #[inline]
    pub fn find(&self, status: u16) -> Option<&Response> {
        if self.is_empty() {
            return None;
        }
        self.by_status
            .iter()
            .find(|(s, _)| *s == status)
            .map(|(_, r)| r)
            .or(match status {
                400..=499 => self.class_4xx.as_ref(),
                500..=599 => self.class_5xx.as_ref(),
                _ => None,
            })
    }
}

/// Control plane: `[gateway_responses.<status or class>]` tables.
pub fn compile(
    t: &BTreeMap<String, toml::Spanned<model::GatewayResponse>>,
) -> (Responses, Vec<Problem>) {
    let mut out = Responses::default();
    let mut problems = Vec::new();
    for (key, entry) in t {
        let at = |k: &str, msg: String| {
            Problem::new(entry.span(), format!("gateway_responses.\"{key}\"{k}"), msg)
        };
        let e = entry.get_ref();
        match one(e) {
            Ok(r) => match key.as_str() {
                "4xx" => out.class_4xx = Some(r),
                "5xx" => out.class_5xx = Some(r),
                k => match k.parse::<u16>() {
                    Ok(s) if (400..=599).contains(&s) => out.by_status.push((s, r)),
                    _ => problems.push(at(
                        "",
                        "name a status from 400 to 599 (\"429\") or a class (\"4xx\", \"5xx\")"
                            .into(),
                    )),
                },
            },
            Err((k, m)) => problems.push(at(&format!(".{k}"), m)),
        }
    }
    (out, problems)
}

fn one(e: &model::GatewayResponse) -> Result<Response, (&'static str, String)> {
    if let Some(s) = e.status
        && !(200..=599).contains(&s)
    {
        return Err((
            "status",
            format!("{s} is not a status ringway can answer with"),
        ));
    }
    let content_type = e.content_type.as_deref().unwrap_or("application/json");
    if !plain(content_type) {
        return Err(("content_type", "control characters are not allowed".into()));
    }
    let mut fields = Vec::new();
    for (name, value) in e.headers.iter().flatten() {
        if !super::throttle::is_token(name) {
            return Err(("headers", format!("{name:?} is not a valid header name")));
        }
        let reserved = crate::h1::header::classify(name.as_bytes())
            != crate::h1::header::Kind::Other
            || name.eq_ignore_ascii_case("content-type")
            || name.eq_ignore_ascii_case("server");
        if reserved {
            return Err(("headers", format!("{name:?} is set by ringway itself")));
        }
        if !plain(value) {
            return Err((
                "headers",
                format!("the value of {name:?} holds control characters"),
            ));
        }
        fields.extend_from_slice(name.as_bytes());
        fields.extend_from_slice(b": ");
        fields.extend_from_slice(value.as_bytes());
        fields.extend_from_slice(b"\r\n");
    }
    let body = template(
        e.body
            .as_deref()
            .unwrap_or("{\"message\":$context.error.messageString}"),
    )
    .map_err(|m| ("body", m))?;
    Ok(Response {
        status: e.status,
        content_type: content_type.as_bytes().into(),
        fields: fields.into(),
        body,
    })
}

fn plain(v: &str) -> bool {
    !v.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
}

const VARIABLES: [(&str, Piece); 4] = [
    ("$context.error.messageString", Piece::MessageString),
    ("$context.error.message", Piece::Message),
    ("$context.requestId", Piece::RequestId),
    ("$context.status", Piece::Status),
];

fn template(text: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut lit = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        if rest.starts_with("$context.") {
            let Some((name, piece)) = VARIABLES.iter().find(|(n, _)| {
                rest.starts_with(n)
                    && !rest[n.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            }) else {
                let word: String = rest
                    .chars()
                    .take_while(|c| {
                        c.is_ascii_alphanumeric() || *c == '.' || *c == '$' || *c == '_'
                    })
                    .collect();
                return Err(format!(
                    "{word} is not a variable here: use $context.error.message, $context.error.messageString, $context.requestId or $context.status"
                ));
            };
            if !lit.is_empty() {
                out.push(Piece::Text(std::mem::take(&mut lit).into()));
            }
            out.push(piece.clone());
            rest = &rest[name.len()..];
        } else {
            let c = rest.chars().next().expect("not empty");
            let mut b = [0; 4];
            lit.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            rest = &rest[c.len_utf8()..];
        }
    }
    if !lit.is_empty() {
        out.push(Piece::Text(lit.into()));
    }
    Ok(out)
}

impl Response {
    /// Appends the whole response: status line, ringway's fields, this
    /// entry's fields, `extra` (CORS, Retry-After, request id ...), the
    /// connection field `persist` and the body. Returns the status sent.
    pub fn write(
        &self,
        out: &mut Vec<u8>,
        status: u16,
        message: &str,
        request_id: &[u8],
        extra: &[u8],
        persist: &[u8],
    ) -> u16 {
        let sent = self.status.unwrap_or(status);
        // The body goes first, at the end of `out`, then moves behind the head.
        let start = out.len();
        for p in &self.body {
            match p {
                Piece::Text(t) => out.extend_from_slice(t),
                Piece::Message => json_escape(out, message.as_bytes()),
                Piece::MessageString => {
                    out.push(b'"');
                    json_escape(out, message.as_bytes());
                    out.push(b'"');
                }
                Piece::RequestId => out.extend_from_slice(request_id),
                Piece::Status => {
                    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes())
                }
            }
        }
        let body_len = out.len() - start;
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(itoa::Buffer::new().format(sent).as_bytes());
        out.push(b' ');
        out.extend_from_slice(crate::h1::error::reason(sent).as_bytes());
        out.extend_from_slice(b"\r\nServer: ringway\r\nContent-Type: ");
        out.extend_from_slice(&self.content_type);
        out.extend_from_slice(b"\r\nContent-Length: ");
        out.extend_from_slice(itoa::Buffer::new().format(body_len).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.fields);
        out.extend_from_slice(extra);
        out.extend_from_slice(persist);
        out.extend_from_slice(b"\r\n");
        out[start..].rotate_left(body_len);
        sent
    }
}

/// Escapes text for the inside of a JSON string.
pub fn json_escape(out: &mut Vec<u8>, s: &[u8]) {
    for &b in s {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f | 0x7f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
            }
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn responses(text: &str) -> (Responses, Vec<Problem>) {
        #[derive(serde::Deserialize)]
        struct F {
            gateway_responses: BTreeMap<String, toml::Spanned<model::GatewayResponse>>,
        }
        let f: F = toml::from_str(text).unwrap();
        compile(&f.gateway_responses)
    }

    #[test]
    fn entries_by_status_then_class() {
        let (r, p) = responses(
            r#"
[gateway_responses.429]
body = '{"error":"slow down","id":"$context.requestId","why":$context.error.messageString}'
headers = { x-why = "limits" }
[gateway_responses.4xx]
content_type = "text/plain"
body = "no: $context.error.message ($context.status)"
[gateway_responses.502]
status = 503
"#,
        );
        assert!(p.is_empty(), "{p:?}");
        let mut out = Vec::new();
        let sent = r.find(429).unwrap().write(
            &mut out,
            429,
            "too \"many\"",
            b"abc",
            b"Retry-After: 1\r\n",
            b"",
        );
        assert_eq!(sent, 429);
        let text = String::from_utf8(out).unwrap();
        let body = r#"{"error":"slow down","id":"abc","why":"too \"many\""}"#;
        assert_eq!(
            text,
            format!(
                "HTTP/1.1 429 Too Many Requests\r\nServer: ringway\r\nContent-Type: application/json\r\nContent-Length: {}\r\nx-why: limits\r\nRetry-After: 1\r\n\r\n{body}",
                body.len()
            )
        );
        let mut out = Vec::new();
        r.find(404).unwrap().write(
            &mut out,
            404,
            "no route",
            b"",
            b"",
            b"Connection: close\r\n",
        );
        assert!(
            out.ends_with(b"Connection: close\r\n\r\nno: no route (404)"),
            "{}",
            String::from_utf8_lossy(&out)
        );
        let mut out = Vec::new();
        assert_eq!(
            r.find(502)
                .unwrap()
                .write(&mut out, 502, "bad gateway", b"", b"", b""),
            503
        );
        assert!(out.ends_with(b"{\"message\":\"bad gateway\"}"));
        assert!(r.find(500).is_none());
    }

    #[test]
    fn bad_entries_are_refused() {
        for (text, key) in [
            (
                "[gateway_responses.200]\nbody = \"x\"",
                "gateway_responses.\"200\"",
            ),
            (
                "[gateway_responses.nope]\nbody = \"x\"",
                "gateway_responses.\"nope\"",
            ),
            (
                "[gateway_responses.404]\nbody = \"$context.nope\"",
                "gateway_responses.\"404\".body",
            ),
            (
                "[gateway_responses.404]\nheaders = { content-length = \"1\" }",
                "gateway_responses.\"404\".headers",
            ),
            (
                "[gateway_responses.404]\nheaders = { x = \"a\\nb\" }",
                "gateway_responses.\"404\".headers",
            ),
            (
                "[gateway_responses.404]\nstatus = 99",
                "gateway_responses.\"404\".status",
            ),
        ] {
            let (_, p) = responses(text);
            assert_eq!(p.len(), 1, "{text}");
            assert_eq!(p[0].key, key, "{text}");
        }
    }
}
