//! Large bodies both ways, byte-exact by SHA-256: Content-Length over the
//! splice path and the copy path, chunked re-encoding, Expect: 100-continue,
//! and a client that vanishes mid-body.

use ringway_tests::client::{connect, read_response};
use ringway_tests::gateway::simple_config;
use ringway_tests::prom;
use ringway_tests::{Gateway, Origin, Reply, on_both_drivers, pattern, sha256};
use std::io::Write;
use std::time::Duration;

const EIGHT_MIB: usize = 8 * 1024 * 1024;

/// `splice_threshold` that forces the copy path for every body.
const COPY_ONLY: &str = "splice_threshold = \"1GiB\"";

/// `simple_config` for 8 MiB bodies: the echo origin hashes the whole body
/// (a debug build) before it answers, which on a loaded machine alone can
/// pass `simple_config`'s 2 s `response_timeout` and turn into a 504.
fn big_body_config(origin: &Origin, extra: &str) -> String {
    simple_config(origin.addr, 2, extra)
        .replace("response_timeout = \"2s\"", "response_timeout = \"30s\"")
}

fn post(gw: &Gateway, body: &[u8], chunked: bool) -> ringway_tests::Response {
    let mut s = connect(gw.addr);
    if chunked {
        s.write_all(b"POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap();
        for piece in body.chunks(100_000) {
            s.write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                .unwrap();
            s.write_all(piece).unwrap();
            s.write_all(b"\r\n").unwrap();
        }
        s.write_all(b"0\r\n\r\n").unwrap();
    } else {
        s.write_all(
            format!(
                "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap();
        s.write_all(body).unwrap();
    }
    read_response(&mut s, &mut Vec::new(), false).expect("response")
}

#[test]
fn eight_mib_request_bodies_arrive_byte_exact() {
    on_both_drivers(|env| {
        let body = pattern(EIGHT_MIB, 7);
        let want = sha256(&body);
        for extra in ["", COPY_ONLY] {
            let origin = Origin::echo();
            let gw = Gateway::start_with_env(&big_body_config(&origin, extra), env);
            for chunked in [false, true] {
                let r = post(&gw, &body, chunked);
                assert_eq!(r.status, 200, "chunked={chunked} {extra}");
                assert_eq!(
                    r.header("x-body-sha256"),
                    Some(want.as_str()),
                    "chunked={chunked} {extra}"
                );
            }
            let seen = origin.seen();
            assert!(!seen[0].chunked && seen[0].header("content-length") == Some("8388608"));
            assert!(seen[1].chunked, "a chunked request stays chunked upstream");
            assert_spliced(gw, extra.is_empty());
        }
    });
}

#[test]
fn eight_mib_response_bodies_arrive_byte_exact() {
    on_both_drivers(|env| {
        let body = pattern(EIGHT_MIB, 11);
        let want = sha256(&body);
        for extra in ["", COPY_ONLY] {
            let b = body.clone();
            let origin = Origin::start(move |s| match s.target.as_str() {
                "/length" => Reply::Length(200, vec![], b.clone()),
                _ => Reply::Chunked(200, b.clone(), 60_000),
            });
            let gw = Gateway::start_with_env(&big_body_config(&origin, extra), env);
            let mut s = connect(gw.addr);
            let mut buf = Vec::new();
            for path in ["/length", "/chunked", "/length"] {
                s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
                    .unwrap();
                let r = read_response(&mut s, &mut buf, false).unwrap();
                assert_eq!(r.status, 200);
                assert_eq!(r.body.len(), EIGHT_MIB, "{path} {extra}");
                assert_eq!(sha256(&r.body), want, "{path} {extra}");
            }
            // All three rode one pooled upstream connection.
            assert_eq!(origin.connections(), 1);
            assert_spliced(gw, extra.is_empty());
        }
    });
}

/// Stops the gateway and checks from its drain report whether any body moved by splice(2).
fn assert_spliced(mut gw: Gateway, expected: bool) {
    gw.signal(libc::SIGTERM);
    assert_eq!(gw.wait_exit(Duration::from_secs(10)), Some(0));
    let spliced: u64 = gw
        .log()
        .iter()
        .filter_map(|l| {
            l.split(" bytes spliced")
                .next()?
                .rsplit(", ")
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    if expected {
        // The bytes that arrived with the head are copied; the rest is spliced.
        assert!(
            spliced >= (EIGHT_MIB - 64 * 1024) as u64,
            "expected the splice path, log says {spliced} bytes spliced"
        );
    } else {
        assert_eq!(spliced, 0, "copy path expected");
    }
}

#[test]
fn expect_100_continue_is_answered_by_the_gateway() {
    let origin = Origin::echo();
    let gw = Gateway::start(&simple_config(origin.addr, 1, ""));
    let mut s = connect(gw.addr);
    s.write_all(
        b"PUT /e HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let mut buf = Vec::new();
    let interim = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!(interim.status, 100);
    s.write_all(b"hello world").unwrap();
    let r = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-body-len"), Some("11"));
    assert_eq!(
        origin.seen()[0].header("expect"),
        None,
        "Expect is consumed by the gateway"
    );
}

#[test]
fn request_trailers_are_forwarded() {
    let origin = Origin::echo();
    let gw = Gateway::start(&simple_config(origin.addr, 1, ""));
    let mut s = connect(gw.addr);
    s.write_all(b"POST /t HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;name=v\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n").unwrap();
    let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-body-len"), Some("5"));
}

#[test]
fn a_client_vanishing_mid_body_leaves_the_worker_serving() {
    on_both_drivers(|env| {
        let origin = Origin::echo();
        let admin = "[server.admin]\nlisten = \"127.0.0.1:0\"";
        let gw = Gateway::start_with_env(&simple_config(origin.addr, 1, admin), env);
        for (len, sent) in [(1_000_000usize, 300_000usize), (10_000, 5_000)] {
            let mut s = connect(gw.addr);
            s.write_all(
                format!("POST /gone HTTP/1.1\r\nHost: t\r\nContent-Length: {len}\r\n\r\n")
                    .as_bytes(),
            )
            .unwrap();
            s.write_all(&pattern(sent, 3)).unwrap();
            drop(s);
        }
        let mut s = connect(gw.addr);
        s.write_all(
            b"POST /gone HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc",
        )
        .unwrap();
        drop(s);
        // The gateway is done with the three (no client connection open),
        // and the origin has taken in all it was sent.
        let admin = gw.admin_addr();
        let open = || prom::value(&prom::scrape(admin), "ringway_connections_open", &[]);
        assert!(
            ringway_tests::wait_until(|| open() == 0.0),
            "{} open",
            open()
        );
        let r = ringway_tests::client::get(gw.addr, "/after");
        assert_eq!(r.status, 200);
        assert!(
            origin.quiet().iter().all(|s| s.target == "/after"),
            "a truncated body was delivered as a request"
        );
    });
}
