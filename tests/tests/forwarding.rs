//! Requests and responses forwarded through the real binary: methods, paths,
//! keep-alive, pipelining, HTTP/1.0, bodiless responses, forwarding headers.

use ringway_tests::client::{connect, get, read_response, send_raw};
use ringway_tests::gateway::simple_config;
use ringway_tests::{Gateway, Origin, Reply, on_both_drivers};
use std::io::Write;
use std::time::Duration;

#[test]
fn every_method_is_forwarded_with_path_and_query() {
    on_both_drivers(|env| {
        let origin = Origin::echo();
        let gw = Gateway::start_with_env(&simple_config(origin.addr, 2, ""), env);
        for method in [
            "GET",
            "POST",
            "PUT",
            "DELETE",
            "PATCH",
            "HEAD",
            "OPTIONS",
            "TRACE",
            "PURGE",
            "X-CUSTOM-METHOD",
        ] {
            let target = "/a/b%20c/d?x=1&y=%2F&z";
            let mut s = connect(gw.addr);
            s.write_all(format!("{method} {target} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
                .unwrap();
            let r = read_response(&mut s, &mut Vec::new(), method == "HEAD").expect("a response");
            assert_eq!(r.status, 200, "{method}");
            assert_eq!(r.header("x-method"), Some(method));
            assert_eq!(r.header("x-target"), Some(target));
        }
        assert_eq!(origin.seen().len(), 10);
    });
}

#[test]
fn a_thousand_keepalive_requests_use_one_upstream_connection_per_worker() {
    let origin = Origin::echo();
    let gw = Gateway::start(&simple_config(origin.addr, 2, ""));
    let mut s = connect(gw.addr);
    let mut buf = Vec::new();
    for i in 0..1000 {
        s.write_all(format!("GET /n/{i} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
            .unwrap();
        let r = read_response(&mut s, &mut buf, false).expect("response");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-target"), Some(format!("/n/{i}").as_str()));
    }
    // One client connection lives on one worker, which keeps reusing its pooled upstream connection.
    assert_eq!(origin.connections(), 1, "upstream connections opened");
    assert_eq!(origin.seen().len(), 1000);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    on_both_drivers(|env| {
        let origin = Origin::echo();
        let gw = Gateway::start_with_env(&simple_config(origin.addr, 1, ""), env);
        let mut s = connect(gw.addr);
        let mut raw = Vec::new();
        for i in 0..10 {
            raw.extend_from_slice(format!("GET /p/{i} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
        }
        raw.extend_from_slice(
            b"POST /p/body HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello",
        );
        raw.extend_from_slice(b"GET /p/last HTTP/1.1\r\nHost: test\r\n\r\n");
        s.write_all(&raw).unwrap();
        let mut buf = Vec::new();
        for i in 0..10 {
            let r = read_response(&mut s, &mut buf, false).unwrap();
            assert_eq!(r.header("x-target"), Some(format!("/p/{i}").as_str()));
        }
        let r = read_response(&mut s, &mut buf, false).unwrap();
        assert_eq!(r.header("x-body-len"), Some("5"));
        let r = read_response(&mut s, &mut buf, false).unwrap();
        assert_eq!(r.header("x-target"), Some("/p/last"));
    });
}

#[test]
fn http_1_0_with_and_without_keepalive() {
    let origin = Origin::echo();
    let gw = Gateway::start(&simple_config(origin.addr, 1, ""));
    // Without keep-alive: one response, then the gateway closes.
    let mut s = connect(gw.addr);
    s.write_all(b"GET /ten HTTP/1.0\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let r = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(ringway_tests::client::closed_within(
        &mut s,
        std::time::Duration::from_secs(5)
    ));
    // With keep-alive: the connection stays usable.
    let mut s = connect(gw.addr);
    let mut buf = Vec::new();
    for _ in 0..3 {
        s.write_all(b"GET /ten HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let r = read_response(&mut s, &mut buf, false).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
    // Upstream always gets HTTP/1.1 with a Host header.
    assert!(
        origin
            .seen()
            .iter()
            .all(|s| s.version == 1 && s.header("host").is_some())
    );
}

#[test]
fn chunked_and_close_delimited_responses_for_1_1_and_1_0_clients() {
    let origin = Origin::start(|s| match s.target.as_str() {
        "/chunked" => Reply::Chunked(200, b"hello chunked world".to_vec(), 4),
        _ => Reply::UntilClose(200, b"until close".to_vec()),
    });
    let gw = Gateway::start(&simple_config(origin.addr, 1, ""));
    let r = get(gw.addr, "/chunked");
    assert!(r.chunked);
    assert_eq!(r.body, b"hello chunked world");
    // A close-delimited upstream body is re-framed as chunked for a 1.1 client, keeping the connection.
    let mut s = connect(gw.addr);
    let mut buf = Vec::new();
    s.write_all(b"GET /close HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, &mut buf, false).unwrap();
    assert!(r.chunked);
    assert_eq!(r.body, b"until close");
    s.write_all(b"GET /chunked HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_response(&mut s, &mut buf, false).unwrap().body,
        b"hello chunked world"
    );
    // A 1.0 client gets raw bytes and a close.
    let r = send_raw(gw.addr, b"GET /chunked HTTP/1.0\r\n\r\n");
    assert!(!r.chunked);
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(r.body, b"hello chunked world");
}

#[test]
fn head_204_and_304_carry_no_body_and_keep_the_connection() {
    let origin = Origin::start(|s| match s.target.as_str() {
        "/204" => Reply::Raw(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()),
        "/304" => Reply::Raw(
            b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 100\r\n\r\n".to_vec(),
        ),
        _ => Reply::Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec()),
    });
    let gw = Gateway::start(&simple_config(origin.addr, 1, ""));
    let mut s = connect(gw.addr);
    let mut buf = Vec::new();
    s.write_all(b"HEAD /head HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, &mut buf, true).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some("1000"),
        "HEAD keeps the entity's length"
    );
    s.write_all(b"GET /204 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s, &mut buf, false).unwrap().status, 204);
    s.write_all(b"GET /304 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!(r.status, 304);
    // Nothing extra arrived: the next response parses cleanly on the same connection.
    s.write_all(b"HEAD /head HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s, &mut buf, true).unwrap().status, 200);
    assert!(
        buf.is_empty(),
        "stray bytes after bodiless responses: {buf:?}"
    );
}

#[test]
fn hop_by_hop_fields_are_removed_and_forwarding_fields_set() {
    let origin = Origin::start(|_| {
        Reply::Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: x-up-secret\r\nX-Up-Secret: 1\r\nKeep-Alive: timeout=5\r\nX-Kept: yes\r\n\r\nok".to_vec())
    });
    let gw = Gateway::start(&simple_config(origin.addr, 1, ""));
    let r = send_raw(
        gw.addr,
        b"GET /h HTTP/1.1\r\nHost: example.test\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: 300\r\nTE: trailers\r\nUpgrade: h2c\r\nProxy-Connection: keep-alive\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\nX-Other: kept\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-up-secret"), None);
    assert_eq!(r.header("keep-alive"), None);
    assert_eq!(r.header("x-kept"), Some("yes"));
    let seen = &origin.seen()[0];
    for gone in [
        "x-secret",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-connection",
        "connection",
    ] {
        assert_eq!(seen.header(gone), None, "{gone} reached the upstream");
    }
    assert_eq!(seen.header("x-other"), Some("kept"));
    assert_eq!(seen.header("host"), Some("example.test"));
    // The peer is no trusted proxy: what it claims is replaced.
    assert_eq!(seen.headers_named("x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-forwarded-host"), Some("example.test"));
    assert_eq!(
        seen.headers_named("forwarded"),
        vec!["for=127.0.0.1;proto=http;host=example.test"]
    );
    assert_eq!(seen.header("via"), Some("1.1 ringway"));
}

/// The rule for client-supplied forwarding fields, both ways, and
/// `forwarded = false`.
#[test]
fn forwarding_fields_are_kept_only_from_trusted_proxies() {
    let origin = Origin::echo();
    let claims = b"GET /f HTTP/1.1\r\nHost: api.test:8080\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: www.test\r\nForwarded: for=203.0.113.9;proto=https\r\nConnection: close\r\n\r\n";
    for (server, xff, xfp, xfh, forwarded) in [
        (
            "",
            "127.0.0.1",
            "http",
            "api.test:8080",
            Some("for=127.0.0.1;proto=http;host=\"api.test:8080\""),
        ),
        (
            "trusted_proxies = [\"127.0.0.0/8\"]",
            "203.0.113.9, 127.0.0.1",
            "https",
            "www.test",
            Some("for=203.0.113.9;proto=https, for=127.0.0.1;proto=http;host=\"api.test:8080\""),
        ),
        (
            "forwarded = false",
            "127.0.0.1",
            "http",
            "api.test:8080",
            None,
        ),
        (
            "forwarded = false\ntrusted_proxies = [\"127.0.0.1/32\"]",
            "203.0.113.9, 127.0.0.1",
            "https",
            "www.test",
            Some("for=203.0.113.9;proto=https"),
        ),
    ] {
        let gw = Gateway::start(&simple_config(origin.addr, 1, server));
        let before = origin.seen().len();
        assert_eq!(send_raw(gw.addr, claims).status, 200, "{server}");
        let seen = &origin.seen()[before];
        assert_eq!(seen.headers_named("x-forwarded-for"), vec![xff], "{server}");
        assert_eq!(
            seen.headers_named("x-forwarded-proto"),
            vec![xfp],
            "{server}"
        );
        assert_eq!(
            seen.headers_named("x-forwarded-host"),
            vec![xfh],
            "{server}"
        );
        assert_eq!(seen.header("forwarded"), forwarded, "{server}");
    }
}

#[test]
fn host_is_rewritten_when_the_route_does_not_preserve_it() {
    let origin = Origin::echo();
    let cfg = simple_config(origin.addr, 1, "").replace(
        "upstream = \"app\"\n",
        "upstream = \"app\"\npreserve_host = false\n",
    );
    let gw = Gateway::start(&cfg);
    assert_eq!(get(gw.addr, "/x").status, 200);
    assert_eq!(
        origin.seen()[0].header("host"),
        Some(origin.addr.to_string().as_str())
    );
}

#[test]
fn the_most_specific_route_wins_and_unrouted_paths_get_404() {
    let a = Origin::start(|_| Reply::Length(200, vec![], b"a".to_vec()));
    let b = Origin::start(|_| Reply::Length(200, vec![], b"b".to_vec()));
    let cfg = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n\n[[upstream]]\nname = \"a\"\ntargets = [\"{}\"]\n\n[[upstream]]\nname = \"b\"\ntargets = [\"{}\"]\n\n[[route]]\npath = \"/api/{{proxy+}}\"\nupstream = \"a\"\n\n[[route]]\npath = \"/api/v2\"\nupstream = \"b\"\n\n[[route]]\npath = \"/api/v2/{{rest+}}\"\nupstream = \"b\"\n",
        a.addr, b.addr
    );
    let gw = Gateway::start(&cfg);
    assert_eq!(get(gw.addr, "/api/x").body, b"a");
    assert_eq!(get(gw.addr, "/api/v2/x").body, b"b");
    assert_eq!(get(gw.addr, "/api/v2").body, b"b");
    assert_eq!(get(gw.addr, "/api/v20").body, b"a");
    let r = get(gw.addr, "/other");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("application/json"));
}

#[test]
fn round_robin_over_targets() {
    let a = Origin::start(|_| Reply::Length(200, vec![], b"a".to_vec()));
    let b = Origin::start(|_| Reply::Length(200, vec![], b"b".to_vec()));
    let cfg = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n\n[[upstream]]\nname = \"app\"\ntargets = [\"{}\", \"{}\"]\n\n[[route]]\npath = \"/\"\nupstream = \"app\"\n",
        a.addr, b.addr
    );
    let gw = Gateway::start(&cfg);
    let bodies: Vec<Vec<u8>> = (0..4).map(|_| get(gw.addr, "/").body).collect();
    assert_eq!(bodies.iter().filter(|b| b.as_slice() == b"a").count(), 2);
    assert_eq!(bodies.iter().filter(|b| b.as_slice() == b"b").count(), 2);
}

#[test]
fn an_upstream_that_sends_a_body_with_head_does_not_poison_the_next_request() {
    // A broken server: it answers HEAD with a body. Those bytes must never be
    // read as the start of the next response.
    let origin = Origin::start(|s| {
        if s.method == "HEAD" {
            // The stray body comes a moment later, after ringway is done with the response.
            Reply::RawThenLate(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n".to_vec(),
                Duration::from_millis(5),
                b"ok".to_vec(),
            )
        } else {
            Reply::Length(200, vec![], b"fine".to_vec())
        }
    });
    let gw = Gateway::start(&simple_config(origin.addr, 1, ""));
    let mut s = connect(gw.addr);
    let mut buf = Vec::new();
    for _ in 0..20 {
        s.write_all(b"HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut s, &mut buf, true).unwrap().status, 200);
        s.write_all(b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
        let r = read_response(&mut s, &mut buf, false).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"fine"[..]));
    }
}
