//! `[route.validate] json_schema` through the binary: valid bodies are
//! forwarded byte-exact with a Content-Length (chunked ones too), every kind
//! of failure is refused with its status and a message naming the field,
//! and the upstream never sees — nor is connected for — a refused request;
//! size caps (413, before reading when the length is known), 415, missing
//! bodies, `Expect: 100-continue`, stalled bodies (408), pipelining after a
//! buffered body, a mock route with a schema, routes without a schema left
//! alone, and config errors naming file, line and key.

use ringway_tests::client::{closed_within, connect, read_response};
use ringway_tests::gateway::{TempDir, check_in};
use ringway_tests::{Gateway, Origin, Response, on_both_drivers};
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

const USER_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["name", "age"],
  "properties": {
    "name": {"type": "string", "minLength": 1},
    "age": {"type": "integer", "minimum": 0},
    "email": {"type": "string"},
    "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]+$"}},
    "address": {
      "type": "object",
      "properties": {"zip": {"type": "string", "maxLength": 5}}
    }
  },
  "additionalProperties": false
}"#;

/// A gateway with `/users` (schema, `validate` extra lines), `/raw` (no
/// schema) and `/mocked` (schema + mock) routes; the schema file lives in `dir`.
fn gateway(dir: &Path, app: SocketAddr, server: &str, validate: &str) -> Gateway {
    gateway_with_env(dir, app, server, validate, &[])
}

fn gateway_with_env(
    dir: &Path,
    app: SocketAddr,
    server: &str,
    validate: &str,
    env: &[(&str, &str)],
) -> Gateway {
    let schema = dir.join("user.json");
    std::fs::write(&schema, USER_SCHEMA).unwrap();
    let config = format!(
        r#"[server]
listen = ["127.0.0.1:0"]
workers = 1
pin = false
{server}

[[upstream]]
name = "app"
targets = ["{app}"]
connect_timeout = "1s"
response_timeout = "5s"

[[route]]
path = "/users"
upstream = "app"
[route.validate]
json_schema = "{schema}"
{validate}

[[route]]
path = "/raw"
upstream = "app"

[[route]]
path = "/mocked"
[route.validate]
json_schema = "{schema}"
[route.mock]
status = 201
body = "made"
"#,
        schema = schema.display()
    );
    Gateway::start_with_env(&config, env)
}

/// Sends `raw` on a new connection; one response.
fn send(addr: SocketAddr, raw: &[u8]) -> Response {
    ringway_tests::send_raw(addr, raw)
}

fn post_json(addr: SocketAddr, target: &str, body: &str) -> Response {
    send(
        addr,
        format!(
            "POST {target} HTTP/1.1\r\nHost: api.test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

fn message(r: &Response) -> String {
    let v: serde_json::Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&r.body)));
    v["message"].as_str().expect("a message").to_string()
}

#[test]
fn a_valid_body_is_forwarded_byte_exact_with_its_length() {
    let dir = TempDir::new();
    let origin = Origin::echo();
    let gw = gateway(&dir.0, origin.addr, "", "");
    // Odd spacing and non-ASCII text: the upstream gets these very bytes.
    let body = "{ \"name\" : \"Zoë\",\n  \"age\":30, \"tags\":[\"a\",\"bc\"] }";
    let r = post_json(gw.addr, "/users", body);
    assert_eq!(r.status, 200, "{r:?}");
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, body.as_bytes());
    assert_eq!(
        seen[0].header("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert!(!seen[0].chunked);
    assert_eq!(
        seen[0].header("content-type"),
        Some("application/json"),
        "fields pass through"
    );
    // A media type with parameters, and a `+json` subtype, are JSON too.
    for ct in [
        "application/json; charset=utf-8",
        "application/vnd.user+json",
    ] {
        let body = "{\"name\":\"a\",\"age\":1} ";
        let raw = format!(
            "PUT /users HTTP/1.1\r\nHost: t\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        assert_eq!(send(gw.addr, raw.as_bytes()).status, 200, "{ct}");
    }
}

#[test]
fn every_failure_names_the_field_and_nothing_reaches_the_upstream() {
    let dir = TempDir::new();
    let origin = Origin::echo();
    let gw = gateway(&dir.0, origin.addr, "", "");
    let cases = [
        (
            r#"{"name":"a","age":"x"}"#,
            r#"invalid request body: /age: "x" is not of type "integer""#,
        ),
        (
            r#"{"name":"a"}"#,
            r#"invalid request body: "age" is a required property"#,
        ),
        (
            r#"{"name":"","age":1}"#,
            r#"invalid request body: /name: "" is shorter than 1 character"#,
        ),
        (
            r#"{"name":"a","age":1,"tags":["ok","No"]}"#,
            r#"invalid request body: /tags/1: "No" does not match "^[a-z]+$""#,
        ),
        (
            r#"{"name":"a","age":1,"address":{"zip":"1234567"}}"#,
            r#"invalid request body: /address/zip: "1234567" is longer than 5 characters"#,
        ),
        (
            r#"{"name":"a","age":1,"role":"admin"}"#,
            r#"invalid request body: Additional properties are not allowed ('role' was unexpected)"#,
        ),
        (
            r#"[1,2]"#,
            r#"invalid request body: [1,2] is not of type "object""#,
        ),
        (
            r#"{"name":"a","age":1"#,
            "invalid JSON in request body: EOF while parsing an object at line 1 column 19",
        ),
        (
            r#"{"name":"a","age":01}"#,
            "invalid JSON in request body: invalid number at line 1 column 20",
        ),
    ];
    for (body, want) in cases {
        let r = post_json(gw.addr, "/users", body);
        assert_eq!(r.status, 400, "{body}: {r:?}");
        assert_eq!(message(&r), want, "{body}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("connection"), Some("close"));
    }
    // Quotes, backslashes and control characters from the body come back escaped.
    let r = post_json(gw.addr, "/users", r#"{"name":"a","age":1,"x\"\\\n":1}"#);
    assert_eq!(r.status, 400);
    assert_eq!(
        message(&r),
        "invalid request body: Additional properties are not allowed ('x\"\\\n' was unexpected)"
    );
    assert!(origin.seen().is_empty(), "{:?}", origin.seen());
    assert_eq!(origin.connections(), 0, "no upstream connection was taken");
}

#[test]
fn a_chunked_body_is_checked_then_forwarded_with_a_content_length() {
    on_both_drivers(|env| {
        let dir = TempDir::new();
        let origin = Origin::echo();
        let gw = gateway_with_env(&dir.0, origin.addr, "", "max_body_bytes = 4096", env);
        let mut s = connect(gw.addr);
        // Chunks split mid-token, an extension, a trailer; the body arrives in pieces.
        s.write_all(b"POST /users HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n8;ext=1\r\n{\"name\":\r\n")
            .unwrap();
        // The subject: the rest of the body arrives later, in a second read.
        std::thread::sleep(Duration::from_millis(50));
        s.write_all(b"4\r\n\"Al\"\r\nA\r\n,\"age\": 41\r\n1\r\n}\r\n0\r\nX-Sum: 1\r\n\r\n")
            .unwrap();
        let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        let seen = origin.seen();
        assert_eq!(seen.len(), 1);
        let want = br#"{"name":"Al","age": 41}"#;
        assert_eq!(seen[0].body, want);
        assert!(!seen[0].chunked, "forwarded with a length");
        assert_eq!(
            seen[0].header("content-length"),
            Some(want.len().to_string().as_str())
        );
        for gone in ["transfer-encoding", "x-sum", "trailer"] {
            assert_eq!(seen[0].header(gone), None, "{gone}");
        }
        // Broken chunk framing is a 400, and nothing is forwarded.
        let r = send(
            gw.addr,
            b"POST /users HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        );
        assert_eq!(
            (r.status, message(&r).as_str()),
            (400, "invalid chunked encoding")
        );
        assert_eq!(origin.seen().len(), 1);
    });
}

#[test]
fn bodies_past_json_max_bytes_get_413() {
    let dir = TempDir::new();
    let origin = Origin::echo();
    let gw = gateway(&dir.0, origin.addr, "", "json_max_bytes = 64");
    // Content-Length says too much: refused on the head, no body byte sent.
    let mut s = connect(gw.addr);
    s.write_all(b"POST /users HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 65\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
    assert_eq!(
        (r.status, message(&r).as_str()),
        (413, "request body too large")
    );
    assert!(closed_within(&mut s, ringway_tests::WAIT));
    // Exactly at the cap is fine (the schema then decides).
    let at_cap = format!("{{\"name\":\"{}\",\"age\":1}}", "n".repeat(64 - 19));
    assert_eq!(at_cap.len(), 64);
    assert_eq!(post_json(gw.addr, "/users", &at_cap).status, 200);
    // Chunked: refused as soon as the decoded body passes the cap, while
    // the client is still sending.
    let mut s = connect(gw.addr);
    s.write_all(b"POST /users HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    for _ in 0..3 {
        s.write_all(b"20\r\n                                \r\n")
            .unwrap();
    }
    let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
    assert_eq!(
        (r.status, message(&r).as_str()),
        (413, "request body too large")
    );
    assert_eq!(
        origin.seen().len(),
        1,
        "only the body at the cap went through"
    );
}

#[test]
fn media_type_and_presence_of_the_body_are_checked_first() {
    let dir = TempDir::new();
    let origin = Origin::echo();
    let gw = gateway(&dir.0, origin.addr, "", "");
    let cases: [(&str, u16, &str); 5] = [
        (
            "POST /users HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}",
            415,
            "request body must be JSON (application/json)",
        ),
        (
            "POST /users HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}",
            415,
            "request body must be JSON (application/json)",
        ),
        (
            "POST /users HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\r\n",
            400,
            "request body required",
        ),
        (
            "PUT /users HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 0\r\n\r\n",
            400,
            "request body required",
        ),
        (
            "PATCH /users HTTP/1.1\r\nHost: t\r\n\r\n",
            400,
            "request body required",
        ),
    ];
    for (raw, status, says) in cases {
        let r = send(gw.addr, raw.as_bytes());
        assert_eq!((r.status, message(&r).as_str()), (status, says), "{raw}");
    }
    assert!(origin.seen().is_empty());
    // A request without a body whose method needs none goes through...
    let r = send(gw.addr, b"GET /users HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
    // ...but a body on any method is checked.
    let r = send(
        gw.addr,
        b"DELETE /users HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    );
    assert_eq!(r.status, 400);
    assert_eq!(origin.seen().len(), 1);
}

#[test]
fn expect_100_continue_is_answered_before_the_body_is_read() {
    let dir = TempDir::new();
    let origin = Origin::echo();
    let gw = gateway(&dir.0, origin.addr, "", "");
    let body = br#"{"name":"a","age":5}"#;
    let mut s = connect(gw.addr);
    s.write_all(
        format!("POST /users HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n", body.len())
            .as_bytes(),
    )
    .unwrap();
    let mut buf = Vec::new();
    let interim = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!(interim.status, 100);
    assert_eq!(origin.connections(), 0, "no upstream work before the body");
    s.write_all(body).unwrap();
    let r = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!(r.status, 200);
    let seen = origin.seen();
    assert_eq!(seen[0].body, body);
    assert_eq!(seen[0].header("expect"), None);
    // A request refused on its head gets its final answer instead of a 100.
    let mut s = connect(gw.addr);
    s.write_all(b"POST /users HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
    assert_eq!(r.status, 415);
}

#[test]
fn a_stalled_body_gets_408_and_no_upstream_connection() {
    on_both_drivers(|env| {
        let dir = TempDir::new();
        let origin = Origin::echo();
        let idle = "[server.timeouts]\nbody_idle = \"300ms\"";
        let gw = gateway_with_env(&dir.0, origin.addr, idle, "", env);
        for rest in [
            "Content-Length: 40\r\n\r\n{\"name\":",
            "Transfer-Encoding: chunked\r\n\r\n8\r\n{\"name\":\r\n",
        ] {
            let mut s = connect(gw.addr);
            s.write_all(
                format!(
                    "POST /users HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n{rest}"
                )
                .as_bytes(),
            )
            .unwrap();
            let r = read_response(&mut s, &mut Vec::new(), false).expect("a 408");
            assert_eq!(
                (r.status, message(&r).as_str()),
                (408, "request body timed out"),
                "{rest}"
            );
            assert!(closed_within(&mut s, ringway_tests::WAIT));
        }
        assert_eq!(origin.connections(), 0);
    });
}

#[test]
fn a_request_pipelined_behind_a_checked_body_is_served_next() {
    let dir = TempDir::new();
    let origin = Origin::echo();
    let gw = gateway(&dir.0, origin.addr, "", "");
    let mut s = connect(gw.addr);
    let body = r#"{"name":"p","age":2}"#;
    // Content-Length and chunked bodies, each followed at once by another request.
    s.write_all(
        format!(
            "POST /users HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}\
             POST /users HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n\
             GET /raw?after HTTP/1.1\r\nHost: t\r\n\r\n",
            body.len(),
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let mut buf = Vec::new();
    for _ in 0..3 {
        let r = read_response(&mut s, &mut buf, false).unwrap();
        assert_eq!(r.status, 200, "{r:?}");
    }
    let seen = origin.seen();
    let targets: Vec<&str> = seen.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(targets, ["/users", "/users", "/raw?after"]);
    assert_eq!(seen[0].body, body.as_bytes());
    assert_eq!(seen[1].body, body.as_bytes());
}

#[test]
fn a_mock_route_checks_the_body_before_answering() {
    let dir = TempDir::new();
    let origin = Origin::echo();
    let gw = gateway(&dir.0, origin.addr, "", "");
    let r = post_json(gw.addr, "/mocked", r#"{"name":"m","age":3}"#);
    assert_eq!((r.status, r.body.as_slice()), (201, b"made".as_slice()));
    let r = post_json(gw.addr, "/mocked", r#"{"name":"m"}"#);
    assert_eq!(
        (r.status, message(&r).as_str()),
        (400, r#"invalid request body: "age" is a required property"#)
    );
    assert_eq!(origin.connections(), 0);
}

#[test]
fn a_route_without_a_schema_is_left_alone() {
    let dir = TempDir::new();
    let origin = Origin::echo();
    let gw = gateway(&dir.0, origin.addr, "", "");
    let r = send(
        gw.addr,
        b"POST /raw HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nnot j\r\n4\r\nson!\r\n0\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let seen = origin.seen();
    assert_eq!(seen[0].body, b"not json!");
    assert!(seen[0].chunked, "relayed as it came, not buffered");
}

/// `ringway check` on a config in `dir` whose first route has `validate`; stderr.
fn check_validate(dir: &Path, validate: &str) -> (i32, String) {
    let text = format!(
        "[[upstream]]\nname = \"app\"\ntargets = [\"127.0.0.1:9\"]\n\n[[route]]\npath = \"/\"\nupstream = \"app\"\n\n[route.validate]\n{validate}\n"
    );
    let (code, _, stderr) = check_in(dir, &text);
    (code, stderr)
}

#[test]
fn bad_schemas_are_config_errors_naming_file_line_and_key() {
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.0.join("schemas")).unwrap();
    std::fs::write(dir.0.join("schemas/broken.json"), "{\"type\": \"object\",").unwrap();
    std::fs::write(dir.0.join("schemas/wrong.json"), "{\"type\": \"objekt\"}").unwrap();
    std::fs::write(dir.0.join("schemas/user.json"), USER_SCHEMA).unwrap();
    let config = dir.0.join("ringway.toml").display().to_string();
    for (validate, at, says) in [
        (
            "content_types = [\"application/json\"]\njson_schema = \"schemas/missing.json\"",
            ":11:15: key `route[0].validate.json_schema`",
            "cannot read",
        ),
        (
            "json_schema = \"schemas/broken.json\"",
            ":10:15: key `route[0].validate.json_schema`",
            "schemas/broken.json is not JSON: EOF while parsing",
        ),
        (
            "json_schema = \"schemas/wrong.json\"",
            ":10:15: key `route[0].validate.json_schema`",
            "schemas/wrong.json is not a valid JSON Schema",
        ),
        (
            "max_body_bytes = 1000\njson_schema = \"schemas/user.json\"\njson_max_bytes = \"1MiB\"",
            ":12:18: key `route[0].validate.json_max_bytes`",
            "more than max_body_bytes",
        ),
        (
            "json_max_bytes = 10",
            ":10:18: key `route[0].validate.json_max_bytes`",
            "json_schema",
        ),
    ] {
        let (code, err) = check_validate(&dir.0, validate);
        assert_eq!(code, 2, "{validate}: {err}");
        assert!(
            err.contains(&format!("{config}{at}")),
            "{validate}: want {at} in\n{err}"
        );
        assert!(err.contains(says), "{validate}: want {says} in\n{err}");
    }
    // The issue's table, as written, with the schema beside the config.
    let (code, err) = check_validate(
        &dir.0,
        "required_headers = [\"x-tenant\"]\nrequired_query = [\"page\"]\nmax_body_bytes = 1048576\ncontent_types = [\"application/json\"]\njson_schema = \"schemas/user.json\"",
    );
    assert_eq!(code, 0, "{err}");
}
