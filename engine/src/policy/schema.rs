//! `[route.validate] json_schema`: the request body must be JSON that
//! satisfies a JSON Schema document.
//!
//! The schema is read and compiled once, at config load (a missing file, a
//! file that is not JSON and a document that is not a valid schema are config
//! errors). On the data plane the work is split in three:
//! - [`JsonBody::check_head`], synchronous, inside the policy chain: a
//!   POST/PUT/PATCH without a body (400), a body that is not declared JSON
//!   (415), a Content-Length past `json_max_bytes` (413);
//! - the proxy reads the body whole, up to `json_max_bytes`, before it takes
//!   an upstream connection (`proxy/json_body.rs`);
//! - [`JsonBody::check_body`]: parse (400 naming the position) and validate
//!   (400 naming the field by its JSON pointer and what failed).
//!
//! Patterns (`pattern`, `patternProperties`) run on the linear-time `regex`
//! engine: request bodies are attacker input, so no backtracking. Remote
//! `$ref`s are refused at load (nothing is fetched).

use super::Problem;
use crate::config::model;
use crate::h1::Framing;
use crate::h1::request::RequestHead;
use std::path::{Path, PathBuf};

/// `json_max_bytes` when the route sets neither it nor a smaller `max_body_bytes`.
pub const DEFAULT_JSON_MAX_BYTES: u64 = 1 << 20;

/// Longest schema failure description put in a 400 (it may quote the body).
const MAX_DETAIL_BYTES: usize = 256;

/// A compiled `json_schema` and its size cap.
pub struct JsonBody {
    validator: jsonschema::Validator,
    /// Bodies larger than this are refused with 413.
    pub max_bytes: u64,
    /// The schema file, for `ringway check` and debugging.
    file: PathBuf,
}

impl std::fmt::Debug for JsonBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonBody")
            .field("file", &self.file)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

/// Control plane: the `json_schema` of `t` (if any) → [`JsonBody`]; `base`
/// is the config file's folder.
pub fn compile(t: &model::Validate, base: &Path) -> Result<Option<JsonBody>, Problem> {
    let inline = t.json_schema_doc.as_ref();
    if t.json_schema.is_none() && inline.is_none() {
        if let Some(m) = &t.json_max_bytes {
            return Err(Problem::new(
                m.span(),
                "json_max_bytes",
                "`json_max_bytes` limits the body read for `json_schema`, which this table does not set",
            ));
        }
        return Ok(None);
    }
    let cap = t.max_body_bytes.map_or(u64::MAX, |s| s.0);
    let max_bytes = match &t.json_max_bytes {
        Some(m) if m.get_ref().0 == 0 => {
            return Err(Problem::new(
                m.span(),
                "json_max_bytes",
                "must be at least 1 byte",
            ));
        }
        Some(m) if m.get_ref().0 > cap => {
            return Err(Problem::new(
                m.span(),
                "json_max_bytes",
                format!(
                    "{} is more than max_body_bytes ({cap}): a body that large is refused anyway",
                    m.get_ref().0
                ),
            ));
        }
        Some(m) => m.get_ref().0,
        None => DEFAULT_JSON_MAX_BYTES.min(cap),
    };
    let span = t.json_schema.as_ref().map_or(0..0, |f| f.span());
    let at = |m: String| Problem::new(span.clone(), "json_schema", m);
    let (path, doc) = match (&t.json_schema, inline) {
        (Some(file), _) => {
            let path = base.join(file.get_ref());
            let text = std::fs::read_to_string(&path)
                .map_err(|e| at(format!("cannot read {}: {e}", path.display())))?;
            let doc: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| at(format!("{} is not JSON: {e}", path.display())))?;
            (path, doc)
        }
        (None, Some((doc, origin))) => (origin.into(), doc.clone()),
        (None, None) => return Ok(None),
    };
    let validator = jsonschema::options()
        .offline()
        .with_pattern_options(jsonschema::PatternOptions::regex())
        .build(&doc)
        .map_err(|e| {
            // For a schema, the "instance" that failed is the schema itself.
            let pointer = e.instance_path().as_str();
            let place = if pointer.is_empty() {
                String::new()
            } else {
                format!(" at {pointer}")
            };
            at(format!(
                "{} is not a valid JSON Schema{place}: {e}",
                path.display()
            ))
        })?;
    Ok(Some(JsonBody {
        validator,
        max_bytes,
        file: path,
    }))
}

impl JsonBody {
    /// Data plane, on the head: `Ok(true)` when there is a body to read and
    /// check, `Ok(false)` when there is none and none is required.
    pub fn check_head(&self, buf: &[u8], head: &RequestHead) -> Result<bool, (u16, &'static str)> {
        if !head.has_body() {
            return match head.method(buf) {
                b"POST" | b"PUT" | b"PATCH" => Err((400, "request body required")),
                _ => Ok(false),
            };
        }
        let ct = super::cors::field(buf, head, b"content-type").unwrap_or_default();
        if !is_json(ct) {
            return Err((415, "request body must be JSON (application/json)"));
        }
        match head.framing {
            Framing::Length(n) if n > self.max_bytes => Err((413, "request body too large")),
            _ => Ok(true),
        }
    }

    /// Data plane, on the whole body: `Err` holds the 400 message (ringway's
    /// error writers escape it for JSON).
    pub fn check_body(&self, body: &[u8]) -> Result<(), String> {
        let value: serde_json::Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return Err(format!("invalid JSON in request body: {e}")),
        };
        match self.validator.validate(&value) {
            Ok(()) => Ok(()),
            Err(e) => {
                let mut detail = e.to_string();
                if detail.len() > MAX_DETAIL_BYTES {
                    let mut end = MAX_DETAIL_BYTES;
                    while !detail.is_char_boundary(end) {
                        end -= 1;
                    }
                    detail.truncate(end);
                    detail.push('…');
                }
                let pointer = e.instance_path().as_str();
                let message = if pointer.is_empty() {
                    format!("invalid request body: {detail}")
                } else {
                    format!("invalid request body: {pointer}: {detail}")
                };
                Err(message)
            }
        }
    }
}

/// `application/json` or `application/<anything>+json`, parameters allowed.
fn is_json(content_type: &[u8]) -> bool {
    let media = content_type
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default();
    let media = crate::h1::header::trim_ows(media);
    const APP: &[u8] = b"application/";
    if media.len() <= APP.len() || !media[..APP.len()].eq_ignore_ascii_case(APP) {
        return false;
    }
    let sub = &media[APP.len()..];
    sub.eq_ignore_ascii_case(b"json")
        || (sub.len() > 5 && sub[sub.len() - 5..].eq_ignore_ascii_case(b"+json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h1::{Limits, request};

    const SCHEMA: &str = r#"{
        "type": "object",
        "required": ["name", "age"],
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "age": {"type": "integer", "minimum": 0},
            "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]+$"}}
        },
        "additionalProperties": false
    }"#;

    fn compiled(schema: &str, extra: &str) -> Result<Option<JsonBody>, Problem> {
        let dir = std::env::temp_dir().join(format!(
            "ringway-json-body-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("s.json"), schema).unwrap();
        let t: model::Validate =
            toml::from_str(&format!("json_schema = \"s.json\"\n{extra}")).unwrap();
        let r = compile(&t, &dir);
        let _ = std::fs::remove_dir_all(&dir);
        r
    }

    #[test]
    fn bodies_are_parsed_and_checked_with_the_failing_field_named() {
        let j = compiled(SCHEMA, "").unwrap().unwrap();
        assert_eq!(j.max_bytes, DEFAULT_JSON_MAX_BYTES);
        let cases: &[(&str, Result<(), &str>)] = &[
            (r#"{"name":"a","age":3}"#, Ok(())),
            (r#"{"name":"a","age":3,"tags":["x","y"]}"#, Ok(())),
            (
                r#"{"name":"a","age":"x"}"#,
                Err(r#"invalid request body: /age: "x" is not of type "integer""#),
            ),
            (
                r#"{"name":"a"}"#,
                Err(r#"invalid request body: "age" is a required property"#),
            ),
            (
                r#"{"name":"a","age":1,"tags":["ok","NO"]}"#,
                Err(r#"invalid request body: /tags/1: "NO" does not match "^[a-z]+$""#),
            ),
            (
                r#"{"name":"a","age":-1}"#,
                Err("invalid request body: /age: -1 is less than the minimum of 0"),
            ),
            (
                r#"{"name":"a","age":1,"x\n":1}"#,
                // A raw newline in the text: the JSON writer escapes it.
                Err(
                    "invalid request body: Additional properties are not allowed ('x\n' was unexpected)",
                ),
            ),
            (
                r#"{"name":"a","age":"#,
                Err("invalid JSON in request body: EOF while parsing a value at line 1 column 18"),
            ),
            (
                "",
                Err("invalid JSON in request body: EOF while parsing a value at line 1 column 0"),
            ),
        ];
        for (body, want) in cases {
            let got = j.check_body(body.as_bytes());
            assert_eq!(
                got.as_ref().map_err(String::as_str),
                want.as_ref().map_err(|m| *m),
                "{body}"
            );
            if let Err(m) = got {
                // What the error writer makes of it is valid JSON, and says the same.
                let mut doc = b"{\"message\":\"".to_vec();
                crate::policy::responses::json_escape(&mut doc, m.as_bytes());
                doc.extend_from_slice(b"\"}");
                let v: serde_json::Value = serde_json::from_slice(&doc).unwrap();
                assert_eq!(v["message"], m.as_str());
            }
        }
    }

    #[test]
    fn long_failure_details_are_cut() {
        let j = compiled(r#"{"type":"integer"}"#, "").unwrap().unwrap();
        let long = format!("\"{}\"", "é".repeat(1000));
        let m = j.check_body(long.as_bytes()).unwrap_err();
        assert!(m.len() < MAX_DETAIL_BYTES + 64, "{m}");
        assert!(m.ends_with('…'), "{m}");
    }

    #[test]
    fn heads_are_checked_before_any_body_byte() {
        let j = compiled(SCHEMA, "json_max_bytes = 100").unwrap().unwrap();
        type Case<'a> = (&'a str, Result<bool, (u16, &'a str)>);
        let cases: &[Case] = &[
            ("GET / HTTP/1.1\r\nHost: h\r\n\r\n", Ok(false)),
            ("DELETE / HTTP/1.1\r\nHost: h\r\n\r\n", Ok(false)),
            (
                "POST / HTTP/1.1\r\nHost: h\r\n\r\n",
                Err((400, "request body required")),
            ),
            (
                "PATCH / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nContent-Type: application/json\r\n\r\n",
                Err((400, "request body required")),
            ),
            (
                "POST / HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n",
                Ok(true),
            ),
            (
                "POST / HTTP/1.1\r\nHost: h\r\nContent-Type: Application/JSON; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n",
                Ok(true),
            ),
            (
                "PUT / HTTP/1.1\r\nHost: h\r\nContent-Type: application/merge-patch+json\r\nContent-Length: 2\r\n\r\n",
                Ok(true),
            ),
            (
                "GET / HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n",
                Ok(true),
            ),
            (
                "POST / HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: 101\r\n\r\n",
                Err((413, "request body too large")),
            ),
            (
                "POST / HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n",
                Err((415, "request body must be JSON (application/json)")),
            ),
            (
                "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n",
                Err((415, "request body must be JSON (application/json)")),
            ),
            (
                "POST / HTTP/1.1\r\nHost: h\r\nContent-Type: application/+json\r\nContent-Length: 2\r\n\r\n",
                Err((415, "request body must be JSON (application/json)")),
            ),
            (
                "POST / HTTP/1.1\r\nHost: h\r\nContent-Type: text/json\r\nContent-Length: 2\r\n\r\n",
                Err((415, "request body must be JSON (application/json)")),
            ),
        ];
        for (raw, want) in cases {
            let mut head = request::RequestHead::default();
            assert_eq!(
                request::parse(raw.as_bytes(), &Limits::default(), &mut head),
                Ok(true)
            );
            assert_eq!(j.check_head(raw.as_bytes(), &head), *want, "{raw}");
        }
    }

    #[test]
    fn the_size_cap_follows_max_body_bytes() {
        let max = |extra: &str| compiled("{}", extra).map(|j| j.unwrap().max_bytes);
        assert_eq!(max("max_body_bytes = 1000"), Ok(1000));
        assert_eq!(max("max_body_bytes = \"2MiB\""), Ok(DEFAULT_JSON_MAX_BYTES));
        assert_eq!(max("json_max_bytes = \"4KiB\""), Ok(4096));
        assert_eq!(
            max("json_max_bytes = 10\nmax_body_bytes = 10"),
            Ok(10),
            "equal is fine"
        );
        for extra in [
            "json_max_bytes = 11\nmax_body_bytes = 10",
            "json_max_bytes = 0",
        ] {
            assert_eq!(max(extra).unwrap_err().key, "json_max_bytes", "{extra}");
        }
        let t: model::Validate = toml::from_str("json_max_bytes = 10").unwrap();
        assert_eq!(
            compile(&t, Path::new(".")).unwrap_err().key,
            "json_max_bytes"
        );
    }

    #[test]
    fn bad_schemas_are_config_errors() {
        for (schema, says) in [
            ("{\"type\": ", "is not JSON"),
            ("{\"type\": \"integr\"}", "is not a valid JSON Schema"),
            ("{\"minimum\": \"five\"}", "is not a valid JSON Schema"),
            (
                "{\"$ref\": \"https://example.com/s.json\"}",
                "is not a valid JSON Schema",
            ),
            (
                "{\"pattern\": \"(?=lookahead)\"}",
                "is not a valid JSON Schema",
            ),
        ] {
            let p = compiled(schema, "").unwrap_err();
            assert_eq!(p.key, "json_schema");
            assert!(p.message.contains(says), "{schema}: {}", p.message);
        }
        let t: model::Validate = toml::from_str("json_schema = \"nope.json\"").unwrap();
        let p = compile(&t, Path::new("/nonexistent")).unwrap_err();
        assert!(
            p.message.starts_with("cannot read /nonexistent/nope.json"),
            "{}",
            p.message
        );
    }
}
