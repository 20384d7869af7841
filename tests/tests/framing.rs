//! Wire errors: ambiguous framing and oversized heads are refused with the
//! right status and nothing reaches the upstream; upstream failures map to
//! 502/504; stale pooled connections are replaced.

use ringway_tests::client::{closed_within, connect, get, read_response, send_raw};
use ringway_tests::gateway::simple_config;
use ringway_tests::{Gateway, Origin, Reply};
use std::io::Write;
use std::time::{Duration, Instant};

/// (name, raw request, expected status). Each must be refused with nothing forwarded.
const REFUSED: &[(&str, &[u8], u16)] = &[
    ("cl+te", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te+cl", b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", 400),
    ("differing duplicate cl", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", 400),
    ("cl list differing", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4, 5\r\n\r\nabcde", 400),
    ("signed cl", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: +4\r\n\r\nabcd", 400),
    ("overflowing cl", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 184467440737095516160\r\n\r\n", 400),
    ("te gzip", b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    ("te chunked not last", b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400),
    ("te xchunked", b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400),
    ("te twice", b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te space before colon", b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
    ("te in http/1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n  folded\r\n\r\n", 400),
    ("nul in value", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n", 400),
    ("ctl in value", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x1bb\r\n\r\n", 400),
    ("bad chunk size", b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk size overflow", b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n", 400),
    ("missing host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("two hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("bad version", b"GET / HTTP/1.2\r\nHost: t\r\n\r\n", 400),
    ("bad method token", b"GE(T / HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    ("bad header name", b"GET / HTTP/1.1\r\nHost: t\r\nX@A: b\r\n\r\n", 400),
];

#[test]
fn ambiguous_framing_is_refused_and_nothing_is_forwarded() {
    let origin = Origin::echo();
    let gw = Gateway::start(&simple_config(origin.addr, 2, ""));
    for (name, raw, status) in REFUSED {
        let mut s = connect(gw.addr);
        s.write_all(raw).unwrap();
        let r = read_response(&mut s, &mut Vec::new(), false)
            .unwrap_or_else(|| panic!("{name}: no response"));
        assert_eq!(r.status, *status, "{name}");
        assert_eq!(r.header("connection"), Some("close"), "{name}");
        assert!(
            closed_within(&mut s, Duration::from_secs(5)),
            "{name}: connection left open"
        );
    }
    // Heads are refused before anything goes upstream. A broken chunk is found
    // while streaming: its upstream connection is closed before the request is
    // complete, so the upstream never sees a request either. (`quiet` waits
    // until the origin has taken in all it was sent.)
    assert!(
        origin.quiet().is_empty(),
        "the upstream received: {:?}",
        origin.seen()
    );
}

#[test]
fn limits_answer_431_and_414_at_the_limit_plus_one() {
    let origin = Origin::echo();
    let gw = Gateway::start(&simple_config(
        origin.addr,
        1,
        "[server.limits]\nmax_head_bytes = 2048\nmax_headers = 10\nmax_uri_bytes = 100",
    ));
    let headers = |n: usize| (0..n).map(|i| format!("X-{i}: v\r\n")).collect::<String>();
    // Host + 9 = 10 headers: fine; Host + 10: 431.
    assert_eq!(
        send_raw(
            gw.addr,
            format!("GET / HTTP/1.1\r\nHost: t\r\n{}\r\n", headers(9)).as_bytes()
        )
        .status,
        200
    );
    assert_eq!(
        send_raw(
            gw.addr,
            format!("GET / HTTP/1.1\r\nHost: t\r\n{}\r\n", headers(10)).as_bytes()
        )
        .status,
        431
    );
    let uri = |n: usize| format!("/{}", "a".repeat(n - 1));
    assert_eq!(
        send_raw(
            gw.addr,
            format!("GET {} HTTP/1.1\r\nHost: t\r\n\r\n", uri(100)).as_bytes()
        )
        .status,
        200
    );
    assert_eq!(
        send_raw(
            gw.addr,
            format!("GET {} HTTP/1.1\r\nHost: t\r\n\r\n", uri(101)).as_bytes()
        )
        .status,
        414
    );
    let big = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "b".repeat(2100)
    );
    assert_eq!(send_raw(gw.addr, big.as_bytes()).status, 431);
    assert_eq!(origin.seen().len(), 2);
}

#[test]
fn a_slow_head_gets_408() {
    let origin = Origin::echo();
    let gw = Gateway::start(&simple_config(
        origin.addr,
        1,
        "[server.timeouts]\nheader_read = \"500ms\"",
    ));
    let mut s = connect(gw.addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n").unwrap();
    let started = Instant::now();
    let r = read_response(&mut s, &mut Vec::new(), false).expect("a 408");
    assert_eq!(r.status, 408);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(origin.seen().is_empty());
}

#[test]
fn upstream_down_gives_502_quickly() {
    // A port with nothing listening: bind, note the port, close.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gw = Gateway::start(&simple_config(dead, 1, ""));
    let started = Instant::now();
    let r = get(gw.addr, "/");
    assert_eq!(r.status, 502);
    assert!(
        started.elapsed() < Duration::from_secs(1) + Duration::from_millis(500),
        "took {:?}",
        started.elapsed()
    );
    assert!(String::from_utf8_lossy(&r.body).contains("message"));
}

#[test]
fn an_upstream_that_never_completes_the_connect_gives_502_at_connect_timeout() {
    // A listener with backlog 0 that never accepts: once its accept queue is
    // full, the kernel drops further SYNs and connects hang.
    let l = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    l.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    l.listen(0).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        let _ = s.connect(&addr.into());
        fillers.push(s);
    }
    // The accept queue is full once a filler's handshake completed.
    assert!(ringway_tests::wait_until(|| {
        ringway_tests::origin::accept_queue(&l) > 0
    }));
    let cfg = simple_config(addr, 1, "")
        .replace("connect_timeout = \"1s\"", "connect_timeout = \"600ms\"");
    let gw = Gateway::start(&cfg);
    let started = Instant::now();
    let r = get(gw.addr, "/");
    let took = started.elapsed();
    assert_eq!(r.status, 502);
    assert!(
        took >= Duration::from_millis(550),
        "answered after {took:?}: the connect did not hang, the test proves nothing"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    drop(l);
}

#[test]
fn a_silent_upstream_gives_504() {
    let origin = Origin::start(|_| Reply::Silent);
    let cfg = simple_config(origin.addr, 1, "")
        .replace("response_timeout = \"2s\"", "response_timeout = \"700ms\"");
    let gw = Gateway::start(&cfg);
    let started = Instant::now();
    let r = get(gw.addr, "/");
    assert_eq!(r.status, 504);
    assert!(started.elapsed() >= Duration::from_millis(650));
}

#[test]
fn ambiguous_upstream_responses_become_502_and_are_not_pooled() {
    let origin = Origin::start(|s| match s.target.as_str() {
        "/both" => Reply::Raw(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .to_vec(),
        ),
        "/twocl" => Reply::Raw(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
        ),
        "/garbage" => Reply::Raw(b"HTTQ/9 nope\r\n\r\n".to_vec()),
        _ => Reply::Length(200, vec![], b"fine".to_vec()),
    });
    let gw = Gateway::start(&simple_config(origin.addr, 1, ""));
    for p in ["/both", "/twocl", "/garbage"] {
        assert_eq!(get(gw.addr, p).status, 502, "{p}");
    }
    assert_eq!(get(gw.addr, "/ok").body, b"fine");
    // Every bad response cost its connection: 3 bad + 1 fresh for /ok.
    assert_eq!(origin.connections(), 4);
}

#[test]
fn a_pooled_connection_closed_by_the_upstream_is_replaced() {
    // The origin answers keep-alive but closes right after each response.
    let origin = Origin::start(|_| Reply::LengthThenClose(200, b"once".to_vec()));
    let gw = Gateway::start(&simple_config(origin.addr, 1, ""));
    let mut s = connect(gw.addr);
    let mut buf = Vec::new();
    for i in 0..5 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let r = read_response(&mut s, &mut buf, false).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"once");
        // The origin has closed that connection before the next request.
        assert!(origin.wait_closed(i));
    }
    assert_eq!(origin.connections(), 5);
}

#[test]
fn a_post_never_goes_on_a_pooled_connection_the_upstream_closed() {
    // A POST is not retried, so this fails (502) unless the pool knows the
    // connection was closed before reusing it. The origin closes right after
    // each response (so the close often lands while the exchange still holds
    // the connection, before it goes back to the pool), and the next POST
    // follows at once: no pause for an idle check to kick in.
    let origin = Origin::start(|_| Reply::LengthThenClose(200, b"once".to_vec()));
    let gw = Gateway::start(&simple_config(origin.addr, 1, ""));
    let mut s = connect(gw.addr);
    let mut buf = Vec::new();
    for i in 0..5 {
        s.write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi")
            .unwrap();
        let r = read_response(&mut s, &mut buf, false).unwrap();
        assert_eq!(r.status, 200, "POST {i}");
        assert!(origin.wait_closed(i));
    }
    assert_eq!(origin.connections(), 5);
}

#[test]
fn an_idempotent_request_on_a_dead_pooled_connection_is_retried_once() {
    // No pause between requests: the stale connection may still look alive,
    // so the request fails on it and must be retried on a new connection.
    let origin = Origin::start(|_| Reply::LengthThenClose(200, b"once".to_vec()));
    let gw = Gateway::start(&simple_config(origin.addr, 1, ""));
    let mut s = connect(gw.addr);
    let mut buf = Vec::new();
    for _ in 0..50 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let r = read_response(&mut s, &mut buf, false).unwrap();
        assert_eq!(r.status, 200);
    }
}
