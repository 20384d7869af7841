//! The malformed-request table: each request is driven through the real
//! binary; the table says the status ringway answers and what the upstream
//! received — nothing, or exactly one well-formed request, checked field by
//! field. Statuses and reasons are in README.md ("HTTP behaviour").

use ringway_tests::client::{closed_within, connect, read_response};
use ringway_tests::gateway::simple_config;
use ringway_tests::{Gateway, Origin, Seen};
use std::io::Write;
use std::time::Duration;

/// What the upstream must have received.
enum Upstream {
    Nothing,
    /// Exactly one request; the function checks it.
    One(fn(&Seen)),
}
use Upstream::*;

const H: &str = "Host: t\r\n";

fn cases() -> Vec<(&'static str, Vec<u8>, u16, Upstream)> {
    let req = |s: &str| s.replace("{H}", H).into_bytes();
    vec![
        // --- Content-Length ---
        ("cl+te", req("POST / HTTP/1.1\r\n{H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400, Nothing),
        ("te+cl", req("POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n0\r\n\r\n"), 400, Nothing),
        ("cl differing dup", req("POST / HTTP/1.1\r\n{H}Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde"), 400, Nothing),
        ("cl differing list", req("POST / HTTP/1.1\r\n{H}Content-Length: 4, 5\r\n\r\nabcde"), 400, Nothing),
        ("cl plus sign", req("POST / HTTP/1.1\r\n{H}Content-Length: +4\r\n\r\nabcd"), 400, Nothing),
        ("cl minus sign", req("POST / HTTP/1.1\r\n{H}Content-Length: -4\r\n\r\nabcd"), 400, Nothing),
        ("cl hex", req("POST / HTTP/1.1\r\n{H}Content-Length: 0x4\r\n\r\nabcd"), 400, Nothing),
        ("cl underscore", req("POST / HTTP/1.1\r\n{H}Content-Length: 1_0\r\n\r\n"), 400, Nothing),
        ("cl empty", req("POST / HTTP/1.1\r\n{H}Content-Length: \r\n\r\n"), 400, Nothing),
        ("cl inner space", req("POST / HTTP/1.1\r\n{H}Content-Length: 4 4\r\n\r\nabcd"), 400, Nothing),
        ("cl overflow", req("POST / HTTP/1.1\r\n{H}Content-Length: 99999999999999999999999\r\n\r\n"), 400, Nothing),
        ("cl only commas", req("POST / HTTP/1.1\r\n{H}Content-Length: ,\r\n\r\n"), 400, Nothing),
        // --- Transfer-Encoding ---
        ("te gzip", req("POST / HTTP/1.1\r\n{H}Transfer-Encoding: gzip\r\n\r\n"), 400, Nothing),
        ("te identity", req("POST / HTTP/1.1\r\n{H}Transfer-Encoding: identity\r\n\r\n"), 400, Nothing),
        ("te gzip, chunked", req("POST / HTTP/1.1\r\n{H}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"), 400, Nothing),
        ("te chunked, identity", req("POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"), 400, Nothing),
        ("te xchunked", req("POST / HTTP/1.1\r\n{H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"), 400, Nothing),
        ("te chunkedx", req("POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunkedx\r\n\r\n0\r\n\r\n"), 400, Nothing),
        ("te quoted", req("POST / HTTP/1.1\r\n{H}Transfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n"), 400, Nothing),
        ("te leading comma", req("POST / HTTP/1.1\r\n{H}Transfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n"), 400, Nothing),
        ("te with param", req("POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n"), 400, Nothing),
        ("te twice", req("POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400, Nothing),
        ("te space before colon", req("POST / HTTP/1.1\r\n{H}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n"), 400, Nothing),
        ("te tab before colon", req("POST / HTTP/1.1\r\n{H}Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n"), 400, Nothing),
        ("te folded", req("POST / HTTP/1.1\r\n{H}Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"), 400, Nothing),
        ("te leading tab line", req("POST / HTTP/1.1\r\n{H}\tTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400, Nothing),
        ("te in http/1.0", req("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400, Nothing),
        // --- header syntax ---
        ("obs-fold", req("GET / HTTP/1.1\r\n{H}X-A: a\r\n folded\r\n\r\n"), 400, Nothing),
        ("space before colon", req("GET / HTTP/1.1\r\n{H}X-A : a\r\n\r\n"), 400, Nothing),
        ("space in name", req("GET / HTTP/1.1\r\n{H}X A: a\r\n\r\n"), 400, Nothing),
        ("empty name", req("GET / HTTP/1.1\r\n{H}: a\r\n\r\n"), 400, Nothing),
        ("bad char in name", req("GET / HTTP/1.1\r\n{H}X@A: a\r\n\r\n"), 400, Nothing),
        ("nul in value", req("GET / HTTP/1.1\r\n{H}X-A: a\0b\r\n\r\n"), 400, Nothing),
        ("cr in value", req("GET / HTTP/1.1\r\n{H}X-A: a\rb\r\n\r\n"), 400, Nothing),
        ("esc in value", req("GET / HTTP/1.1\r\n{H}X-A: a\x1bb\r\n\r\n"), 400, Nothing),
        ("del in value", req("GET / HTTP/1.1\r\n{H}X-A: a\x7fb\r\n\r\n"), 400, Nothing),
        // --- request line ---
        ("double space", req("GET  / HTTP/1.1\r\n{H}\r\n"), 400, Nothing),
        ("lowercase version", req("GET / http/1.1\r\n{H}\r\n"), 400, Nothing),
        ("version 1.2", req("GET / HTTP/1.2\r\n{H}\r\n"), 400, Nothing),
        ("version 2.0", req("GET / HTTP/2.0\r\n{H}\r\n"), 400, Nothing),
        ("short version", req("GET / HTTP/1\r\n{H}\r\n"), 400, Nothing),
        ("bad method token", req("GE(T / HTTP/1.1\r\n{H}\r\n"), 400, Nothing),
        ("tab in target", req("GET /a\tb HTTP/1.1\r\n{H}\r\n"), 400, Nothing),
        ("relative target", req("GET a/b HTTP/1.1\r\n{H}\r\n"), 400, Nothing),
        ("asterisk with GET", req("GET * HTTP/1.1\r\n{H}\r\n"), 400, Nothing),
        ("connect authority-form", req("CONNECT a:443 HTTP/1.1\r\n{H}\r\n"), 400, Nothing),
        ("absolute-form with userinfo", req("GET http://u@h/ HTTP/1.1\r\n{H}\r\n"), 400, Nothing),
        // --- Host ---
        ("no host", req("GET / HTTP/1.1\r\n\r\n"), 400, Nothing),
        ("two hosts", req("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400, Nothing),
        ("host with space", req("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400, Nothing),
        ("host with slash", req("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400, Nothing),
        // --- Expect ---
        ("expect other", req("GET / HTTP/1.1\r\n{H}Expect: 200-ok\r\n\r\n"), 417, Nothing),
        // --- chunked body ---
        ("chunk size not hex", req("POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"), 400, Nothing),
        ("chunk size negative", req("POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n"), 400, Nothing),
        ("chunk size 0x", req("POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n"), 400, Nothing),
        ("chunk size overflow", req("POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n"), 400, Nothing),
        ("chunk size empty", req("POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n"), 400, Nothing),
        ("chunk size bare lf", req("POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"), 400, Nothing),
        ("chunk data no crlf", req("POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"), 400, Nothing),
        ("chunk data bare lf", req("POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n"), 400, Nothing),
        ("chunk ext ctl", req("POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n5;a\x01\r\nhello\r\n0\r\n\r\n"), 400, Nothing),
        ("chunk ext too long", format!("POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(5000)).into_bytes(), 400, Nothing),
        ("trailer obs-fold", req("POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n0\r\nX: a\r\n b\r\n\r\n"), 400, Nothing),
        ("trailer bare lf", req("POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n0\r\nX: a\n\r\n"), 400, Nothing),
        // --- accepted, normalized, forwarded once ---
        ("cl identical dup", req("POST / HTTP/1.1\r\n{H}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"), 200, One(|s| {
            assert_eq!(s.headers_named("content-length"), vec!["5"]);
            assert_eq!(s.body, b"hello");
        })),
        ("cl identical list", req("POST / HTTP/1.1\r\n{H}Content-Length: 5, 5\r\n\r\nhello"), 200, One(|s| {
            assert_eq!(s.headers_named("content-length"), vec!["5"]);
        })),
        ("cl leading zeros", req("POST / HTTP/1.1\r\n{H}Content-Length: 005\r\n\r\nhello"), 200, One(|s| {
            assert_eq!(s.headers_named("content-length"), vec!["5"]);
            assert_eq!(s.body, b"hello");
        })),
        ("te case-insensitive", req("POST / HTTP/1.1\r\n{H}transfer-encoding: ChUnKeD\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), 200, One(|s| {
            assert!(s.chunked);
            assert_eq!(s.headers_named("transfer-encoding"), vec!["chunked"]);
            assert_eq!(s.body, b"hello");
        })),
        ("chunk extensions dropped", req("POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n5;name=\"v\"\r\nhello\r\n0\r\n\r\n"), 200, One(|s| {
            assert_eq!(s.body, b"hello");
        })),
        ("absolute-form", req("GET http://example.test:81/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n"), 200, One(|s| {
            assert_eq!(s.target, "/p?q=1");
            assert_eq!(s.header("host"), Some("example.test:81"));
        })),
        ("absolute-form no path", req("GET http://example.test HTTP/1.1\r\nHost: other\r\n\r\n"), 200, One(|s| {
            assert_eq!(s.target, "/");
            assert_eq!(s.header("host"), Some("example.test"));
        })),
        ("options asterisk", req("OPTIONS * HTTP/1.1\r\n{H}\r\n"), 200, One(|s| assert_eq!(s.target, "*"))),
        ("http/1.0 without host", req("GET /old HTTP/1.0\r\n\r\n"), 200, One(|s| {
            assert_eq!(s.version, 1);
            assert!(s.header("host").is_some_and(|h| h.starts_with("127.0.0.1:")));
        })),
        ("empty host", req("GET / HTTP/1.1\r\nHost:\r\n\r\n"), 200, One(|s| assert_eq!(s.header("host"), Some("")))),
        ("value ows trimmed", req("GET / HTTP/1.1\r\n{H}X-A:   padded  \r\n\r\n"), 200, One(|s| assert_eq!(s.header("x-a"), Some("padded")))),
        ("obs-text value kept", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: caf\xc3\xa9\r\n\r\n".to_vec(), 200, One(|s| {
            assert_eq!(s.header("x-a"), Some("caf\u{e9}"));
        })),
        ("connection names a field", req("GET / HTTP/1.1\r\n{H}Connection: x-drop\r\nX-Drop: 1\r\n\r\n"), 200, One(|s| {
            assert_eq!(s.header("x-drop"), None);
            assert_eq!(s.header("connection"), None);
        })),
        ("connection cannot drop host", req("GET / HTTP/1.1\r\n{H}Connection: host, content-length\r\nContent-Length: 0\r\n\r\n"), 200, One(|s| {
            assert_eq!(s.header("host"), Some("t"));
        })),
        ("forged forwarding fields", req("GET / HTTP/1.1\r\n{H}X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\n\r\n"), 200, One(|s| {
            assert_eq!(s.headers_named("x-forwarded-proto"), vec!["http"]);
            assert_eq!(s.headers_named("x-forwarded-host"), vec!["t"]);
        })),
    ]
}

#[test]
fn the_malformed_request_table() {
    let table = cases();
    assert!(table.len() >= 60, "the table has {} cases", table.len());
    let origin = Origin::echo();
    let gw = Gateway::start(&simple_config(origin.addr, 2, ""));
    let mut failures = Vec::new();
    for (name, raw, status, upstream) in table {
        let before = origin.seen().len();
        let mut s = connect(gw.addr);
        s.write_all(&raw).unwrap();
        let r = read_response(&mut s, &mut Vec::new(), false);
        let got = r.as_ref().map(|r| r.status);
        if got != Some(status) {
            failures.push(format!("{name}: status {got:?}, want {status}"));
            continue;
        }
        if status >= 400 && !closed_within(&mut s, Duration::from_secs(5)) {
            failures.push(format!("{name}: connection left open after {status}"));
        }
        // The origin records a request once it is complete: wait until it
        // has taken in everything the gateway sent.
        let seen = origin.quiet();
        let new = &seen[before..];
        match upstream {
            Nothing if !new.is_empty() => {
                failures.push(format!("{name}: the upstream received {new:?}"))
            }
            One(_) if new.len() != 1 => failures.push(format!(
                "{name}: the upstream received {} requests",
                new.len()
            )),
            One(check) => {
                if std::panic::catch_unwind(|| check(&new[0])).is_err() {
                    failures.push(format!(
                        "{name}: the forwarded request is wrong: {:?}",
                        new[0]
                    ));
                }
            }
            Nothing => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
