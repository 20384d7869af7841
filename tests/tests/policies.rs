//! API gateway policies through the binary: CORS (preflight answered by the
//! gateway, fields on every response of the route, ringway's errors
//! included), mock integrations without any upstream, IP allow/deny with and
//! without a trusted proxy, throttles (burst, refill, the rate across two
//! workers), API keys with usage plans (missing, unknown, valid, burst,
//! quota, quota kept across a reload), request validation (400, 411, 413,
//! 415), and policy config errors.

use ringway_tests::client::{connect, read_response, send_raw};
use ringway_tests::gateway::TempDir;
use ringway_tests::jwks_server::b64url;
use ringway_tests::{Gateway, Origin, Response};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// `[server]` on an ephemeral port with `workers`, an upstream `app` at
/// `app`, then `rest` (routes and policies).
fn config(app: SocketAddr, workers: usize, server_extra: &str, rest: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = {workers}\npin = false\n{server_extra}\n\n[[upstream]]\nname = \"app\"\ntargets = [\"{app}\"]\nconnect_timeout = \"1s\"\nresponse_timeout = \"2s\"\n\n{rest}"
    )
}

fn request(addr: SocketAddr, method: &str, target: &str, fields: &str) -> Response {
    send_raw(
        addr,
        format!("{method} {target} HTTP/1.1\r\nHost: api.test\r\n{fields}\r\n").as_bytes(),
    )
}

fn message(r: &Response) -> String {
    let v: serde_json::Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&r.body)));
    v["message"].as_str().expect("a message").to_string()
}

/// `ringway check` on `text`: exit code and stderr.
fn check(text: &str) -> (i32, String) {
    let (code, _, stderr) = ringway_tests::gateway::check(text);
    (code, stderr)
}

const CORS: &str = r#"
[route.cors]
allow_origins = ["https://app.example.com", "https://*.example.com"]
allow_methods = ["GET", "POST"]
allow_headers = ["content-type", "authorization", "x-api-key"]
expose_headers = ["x-request-id"]
allow_credentials = true
max_age = "10m"
"#;

#[test]
fn cors_preflight_is_answered_by_the_gateway_and_the_actual_request_gets_the_fields() {
    // The upstream sends its own CORS field: the route's policy replaces it.
    let origin = Origin::start(|_| {
        ringway_tests::Reply::Length(
            200,
            vec![
                "Access-Control-Allow-Origin: *".into(),
                "X-Request-Id: r-1".into(),
            ],
            b"hello".to_vec(),
        )
    });
    let rest = format!(
        "[[route]]\npath = \"/{{proxy+}}\"\nupstream = \"app\"\n{CORS}\n[[route]]\npath = \"/only-get\"\nmethods = [\"GET\"]\nupstream = \"app\"\n{CORS}\n[[route]]\npath = \"/down\"\nuri = \"http://down/x\"\n{CORS}\n[[upstream]]\nname = \"down\"\ntargets = [\"127.0.0.1:1\"]\nconnect_timeout = \"1s\"\n"
    );
    let gw = Gateway::start(&config(origin.addr, 2, "", &rest));

    // A browser's preflight: answered 204 here, never forwarded.
    let pre = request(
        gw.addr,
        "OPTIONS",
        "/users/7",
        "Origin: https://shop.example.com\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type,x-api-key\r\n",
    );
    assert_eq!(pre.status, 204, "{pre:?}");
    let want = [
        ("access-control-allow-origin", "https://shop.example.com"),
        ("access-control-allow-methods", "GET, POST"),
        (
            "access-control-allow-headers",
            "content-type, authorization, x-api-key",
        ),
        ("access-control-allow-credentials", "true"),
        ("access-control-max-age", "600"),
    ];
    for (k, v) in want {
        assert_eq!(pre.header(k), Some(v), "{k} in {pre:?}");
    }
    assert!(pre.header("vary").unwrap().contains("Origin"));
    assert!(pre.body.is_empty());
    // The same for a resource whose route has no OPTIONS method.
    let pre = request(
        gw.addr,
        "OPTIONS",
        "/only-get",
        "Origin: https://app.example.com\r\nAccess-Control-Request-Method: GET\r\n",
    );
    assert_eq!(pre.status, 204, "{pre:?}");
    assert_eq!(
        pre.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    // Refused preflights: 403, without CORS fields.
    for fields in [
        "Origin: https://evil.test\r\nAccess-Control-Request-Method: GET\r\n",
        "Origin: https://app.example.com\r\nAccess-Control-Request-Method: DELETE\r\n",
        "Origin: https://app.example.com\r\nAccess-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: x-secret\r\n",
    ] {
        let r = request(gw.addr, "OPTIONS", "/users/7", fields);
        assert_eq!(r.status, 403, "{fields}");
        assert!(message(&r).starts_with("CORS preflight refused"));
        assert_eq!(r.header("access-control-allow-origin"), None);
    }
    assert!(origin.seen().is_empty(), "a preflight reached the upstream");

    // The actual request: forwarded, and its response carries the fields.
    let r = request(
        gw.addr,
        "POST",
        "/users/7",
        "Origin: https://app.example.com\r\nContent-Length: 2\r\n\r\n{}",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        r.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("access-control-allow-origin"))
            .count(),
        1,
        "the upstream's own field is replaced: {r:?}"
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some("x-request-id")
    );
    // The upstream's own request id gives way to the one ringway sent it.
    assert_eq!(origin.seen().len(), 1);
    let sent = origin.seen()[0].header("x-request-id").unwrap().to_string();
    assert_eq!(r.header("x-request-id"), Some(sent.as_str()));
    assert_ne!(sent, "r-1");
    // An origin not allowed gets the response without CORS fields.
    let r = request(gw.addr, "GET", "/x", "Origin: https://evil.test\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
    // A plain OPTIONS (no preflight) is the upstream's business.
    assert_eq!(request(gw.addr, "OPTIONS", "/x", "").status, 200);
    assert_eq!(origin.seen().len(), 3);

    // ringway's own errors on the route carry the fields too (502 here).
    let r = request(
        gw.addr,
        "GET",
        "/down",
        "Origin: https://app.example.com\r\n",
    );
    assert_eq!(r.status, 502);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
}

#[test]
fn gateway_rejections_carry_cors_fields() {
    let origin = Origin::echo();
    let rest = "[[route]]\npath = \"/{proxy+}\"\nupstream = \"app\"\n[route.cors]\nallow_origins = [\"*\"]\n[route.api_key]\n[route.ip]\ndeny = [\"10.0.0.0/8\"]\n";
    let gw = Gateway::start(&config(
        origin.addr,
        1,
        "trusted_proxies = [\"127.0.0.1/32\"]",
        rest,
    ));
    let r = request(gw.addr, "GET", "/x", "Origin: https://a.test\r\n");
    assert_eq!((r.status, message(&r).as_str()), (403, "missing API key"));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let r = request(
        gw.addr,
        "GET",
        "/x",
        "Origin: https://a.test\r\nX-Forwarded-For: 10.9.9.9\r\n",
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(origin.seen().is_empty());
}

#[test]
fn a_mock_route_needs_no_upstream() {
    // The issue's mock snippet, in a file with no [[upstream]] at all.
    let text = r#"[server]
listen = ["127.0.0.1:0"]
workers = 1

[[route]]
path = "/health"
methods = ["GET", "HEAD"]

[route.mock]                    # a route with mock needs no upstream
status = 200
headers = { content-type = "application/json" }
body = '{"ok":true}'

[[route]]
path = "/teapot"

[route.mock]
status = 418
headers = { x-kind = "mock" }
"#;
    let (code, err) = check(text);
    assert_eq!(code, 0, "{err}");
    let gw = Gateway::start(text);
    let r = request(gw.addr, "GET", "/health", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body, br#"{"ok":true}"#);
    let mut s = connect(gw.addr);
    s.write_all(b"HEAD /health HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, &mut Vec::new(), true).unwrap();
    assert_eq!(r.header("content-length"), Some("11"));
    let r = request(gw.addr, "DELETE", "/teapot", "");
    assert_eq!((r.status, r.header("x-kind")), (418, Some("mock")));
    assert!(r.body.is_empty());
    // Keep-alive survives a mock answer; a request body is no reason to forward anything.
    let mut s = connect(gw.addr);
    let mut buf = Vec::new();
    for _ in 0..3 {
        s.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut s, &mut buf, false).unwrap().status, 200);
    }
    assert_eq!(request(gw.addr, "GET", "/nope", "").status, 404);
}

#[test]
fn ip_rules_with_and_without_a_trusted_proxy() {
    let origin = Origin::echo();
    let rest = "[[route]]\npath = \"/private/{p+}\"\nupstream = \"app\"\n[route.ip]\nallow = [\"10.0.0.0/8\", \"2001:db8::/32\"]\ndeny = [\"10.6.6.6/32\"]\n\n[[route]]\npath = \"/local/{p+}\"\nupstream = \"app\"\n[route.ip]\nallow = [\"127.0.0.1/32\", \"::1/128\"]\n\n[[route]]\npath = \"/no-local/{p+}\"\nupstream = \"app\"\n[route.ip]\ndeny = [\"127.0.0.0/8\"]\n";
    let xff = |ip: &str| format!("X-Forwarded-For: {ip}\r\n");

    // No trusted proxy: X-Forwarded-For is the client's word and counts for nothing.
    let gw = Gateway::start(&config(origin.addr, 2, "", rest));
    let r = request(gw.addr, "GET", "/private/a", &xff("10.1.2.3"));
    assert_eq!(r.status, 403);
    assert_eq!(message(&r), "client address not allowed");
    assert_eq!(request(gw.addr, "GET", "/local/a", "").status, 200);
    assert_eq!(request(gw.addr, "GET", "/no-local/a", "").status, 403);
    assert_eq!(
        request(gw.addr, "GET", "/no-local/a", &xff("192.0.2.1")).status,
        403
    );
    assert_eq!(origin.seen().len(), 1);
    drop(gw);

    // 127.0.0.1 is a trusted proxy: the last X-Forwarded-For hop is the client.
    let gw = Gateway::start(&config(
        origin.addr,
        2,
        "trusted_proxies = [\"127.0.0.1/32\"]",
        rest,
    ));
    let cases: &[(&str, &str, u16)] = &[
        ("/private/a", "10.1.2.3", 200),
        ("/private/a", "192.0.2.1", 403),
        ("/private/a", "10.6.6.6", 403),
        // The client forged a first hop; the proxy appended the real one.
        ("/private/a", "10.1.1.1, 192.0.2.1", 403),
        ("/private/a", "192.0.2.1, 10.1.1.1", 200),
        ("/private/a", "2001:db8::5", 200),
        ("/private/a", "2001:db9::5", 403),
        ("/private/a", "not-an-ip", 403),
        ("/local/a", "10.1.2.3", 403),
        ("/no-local/a", "192.0.2.1", 200),
    ];
    for (path, hops, status) in cases {
        let r = request(gw.addr, "GET", path, &xff(hops));
        assert_eq!(r.status, *status, "{path} via {hops}");
    }
    // Without the header the proxy itself is the client.
    assert_eq!(request(gw.addr, "GET", "/local/a", "").status, 200);
}

#[test]
fn ip_rules_over_ipv6() {
    let origin = Origin::echo();
    let rest = "[[route]]\npath = \"/v6\"\nupstream = \"app\"\n[route.ip]\nallow = [\"::1/128\"]\n\n[[route]]\npath = \"/v4\"\nupstream = \"app\"\n[route.ip]\nallow = [\"127.0.0.0/8\"]\n";
    let text = config(origin.addr, 1, "", rest).replace(
        "listen = [\"127.0.0.1:0\"]",
        "listen = [\"[::1]:0\", \"127.0.0.1:0\"]",
    );
    let gw = Gateway::start(&text);
    let v6 = gw.addrs.iter().find(|a| a.is_ipv6()).copied().unwrap();
    let v4 = gw.addrs.iter().find(|a| a.is_ipv4()).copied().unwrap();
    assert_eq!(request(v6, "GET", "/v6", "").status, 200);
    assert_eq!(request(v4, "GET", "/v6", "").status, 403);
    assert_eq!(request(v4, "GET", "/v4", "").status, 200);
    assert_eq!(request(v6, "GET", "/v4", "").status, 403);
}

#[test]
fn a_throttle_spends_its_burst_then_refills() {
    let origin = Origin::echo();
    let rest = "[[route]]\npath = \"/r\"\nupstream = \"app\"\n[route.throttle]\nrate = 2\nburst = 3\nkey = \"route\"\n\n[[route]]\npath = \"/ip\"\nupstream = \"app\"\n[route.throttle]\nrate = 1\nburst = 1\nkey = \"client_ip\"\n\n[[route]]\npath = \"/tenant\"\nupstream = \"app\"\n[route.throttle]\nrate = 1\nburst = 1\nkey = \"header:x-tenant\"\n";
    let gw = Gateway::start(&config(
        origin.addr,
        1,
        "trusted_proxies = [\"127.0.0.1/32\"]",
        rest,
    ));
    // One keep-alive connection: a 429 keeps it open.
    let mut s = connect(gw.addr);
    let mut buf = Vec::new();
    let mut get = |path: &str, fields: &str| {
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n{fields}\r\n").as_bytes())
            .unwrap();
        read_response(&mut s, &mut buf, false).unwrap()
    };
    for _ in 0..3 {
        assert_eq!(get("/r", "").status, 200);
    }
    let r = get("/r", "");
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(message(&r), "too many requests");
    // 2/s: one token every 500 ms. The sleep is the subject: the bucket
    // refills with time, there is no event to wait for.
    std::thread::sleep(Duration::from_millis(550));
    assert_eq!(get("/r", "").status, 200);
    assert_eq!(get("/r", "").status, 429);

    // Per client IP (behind the trusted proxy) and per header value.
    let ip = |a: &str| format!("X-Forwarded-For: {a}\r\n");
    assert_eq!(get("/ip", &ip("192.0.2.1")).status, 200);
    assert_eq!(get("/ip", &ip("192.0.2.1")).status, 429);
    assert_eq!(get("/ip", &ip("192.0.2.2")).status, 200);
    let t = |v: &str| format!("X-Tenant: {v}\r\n");
    assert_eq!(get("/tenant", &t("a")).status, 200);
    assert_eq!(get("/tenant", &t("a")).status, 429);
    assert_eq!(get("/tenant", &t("b")).status, 200);
    assert_eq!(get("/tenant", "").status, 200);
    assert_eq!(get("/tenant", "").status, 429);
    // Only admitted requests reached the upstream.
    assert_eq!(origin.seen().len(), 4 + 2 + 3);
}

#[test]
fn the_observed_rate_across_two_workers_is_within_ten_percent_of_the_limit() {
    const RATE: f64 = 200.0;
    const BURST: f64 = 20.0;
    const SECS: f64 = 3.0;
    const CLIENTS: usize = 16;
    let origin = Origin::echo();
    let rest = format!(
        "[[route]]\npath = \"/{{p+}}\"\nupstream = \"app\"\n[route.throttle]\nrate = {RATE}\nburst = {BURST}\n"
    );
    let gw = Gateway::start(&config(origin.addr, 2, "", &rest));
    let ok = Arc::new(AtomicUsize::new(0));
    let limited = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (ok, limited, stop, addr) = (ok.clone(), limited.clone(), stop.clone(), gw.addr);
            std::thread::spawn(move || {
                // Each client keeps one connection; SO_REUSEPORT spreads them over the workers.
                let mut s = connect(addr);
                let mut buf = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    s.write_all(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
                    let r = read_response(&mut s, &mut buf, false).unwrap();
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match r.status {
                        200 => ok.fetch_add(1, Ordering::Relaxed),
                        429 => limited.fetch_add(1, Ordering::Relaxed),
                        other => panic!("status {other}"),
                    };
                    // Pacing, not synchronisation: clients slightly slower than flat out.
                    std::thread::sleep(Duration::from_micros(500));
                }
            })
        })
        .collect();
    // The measuring window itself: the rate is requests over this time.
    std::thread::sleep(Duration::from_secs_f64(SECS));
    stop.store(true, Ordering::Relaxed);
    let took = start.elapsed().as_secs_f64();
    for t in threads {
        t.join().unwrap();
    }
    let ok = ok.load(Ordering::Relaxed) as f64;
    let limited = limited.load(Ordering::Relaxed);
    let rate = (ok - BURST) / took;
    assert!(limited > 0, "the clients never hit the limit");
    assert!(
        (rate - RATE).abs() <= RATE * 0.10,
        "observed {rate:.1} req/s past the burst ({ok} admitted, {limited} limited in {took:.2} s), limit {RATE}"
    );
}

/// The issue's key and plan snippets, with a second plan for the quota.
fn key_config(app: SocketAddr) -> String {
    let rest = format!(
        r#"[[usage_plan]]
name = "basic"
rate = 1                        # requests per second
burst = 2
quota = {{ limit = 10000, period = "day" }}

[[usage_plan]]
name = "tiny"
quota = {{ limit = 3, period = "month" }}

[[api_key]]
name = "client-a"
value = "k-123"                 # or value_sha256 = "…"; stored hashed either way
plan = "basic"

[[api_key]]
name = "client-b"
value_sha256 = "{}"
plan = "tiny"

[[route]]
path = "/{{proxy+}}"
upstream = "app"

[route.api_key]
source = "header:x-api-key"     # or "query:api_key"

[[route]]
path = "/q/{{proxy+}}"
upstream = "app"

[route.api_key]
source = "query:api_key"
"#,
        ringway_tests::sha256(b"k-tiny")
    );
    config(app, 1, "", &rest)
}

#[test]
fn api_keys_missing_unknown_valid_and_a_burst_running_out() {
    let origin = Origin::echo();
    let gw = Gateway::start(&key_config(origin.addr));
    let r = request(gw.addr, "GET", "/a", "");
    assert_eq!((r.status, message(&r).as_str()), (403, "missing API key"));
    let r = request(gw.addr, "GET", "/a", "X-API-Key: k-999\r\n");
    assert_eq!((r.status, message(&r).as_str()), (403, "invalid API key"));
    assert!(origin.seen().is_empty());

    // Burst 2 at 1/s: two pass, the third waits a second.
    let key = "X-API-Key: k-123\r\n";
    assert_eq!(request(gw.addr, "GET", "/a", key).status, 200);
    assert_eq!(request(gw.addr, "GET", "/a", key).status, 200);
    let r = request(gw.addr, "GET", "/a", key);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    // The subject: a token refills after 1 s; there is no event to wait for.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(request(gw.addr, "GET", "/a", key).status, 200);
    assert_eq!(request(gw.addr, "GET", "/a", key).status, 429);
    // The key travels to the upstream like any field.
    assert_eq!(origin.seen()[0].header("x-api-key"), Some("k-123"));

    // From the query string; a key stored as its SHA-256.
    assert_eq!(
        request(gw.addr, "GET", "/q/a?x=1&api_key=k-tiny", "").status,
        200
    );
    assert_eq!(
        request(gw.addr, "GET", "/q/a?api_key=k-nope", "").status,
        403
    );
    assert_eq!(request(gw.addr, "GET", "/q/a", key).status, 403);
}

#[test]
fn a_quota_runs_out_and_stays_out_across_a_reload() {
    let origin = Origin::echo();
    let gw = Gateway::start(&key_config(origin.addr));
    let key = "X-API-Key: k-tiny\r\n";
    for _ in 0..3 {
        assert_eq!(request(gw.addr, "GET", "/a", key).status, 200);
    }
    let r = request(gw.addr, "GET", "/a", key);
    assert_eq!(r.status, 429);
    assert!(message(&r).starts_with("limit exceeded"), "{r:?}");
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=31 * 86_400).contains(&wait), "Retry-After {wait}");
    // Another key is not affected.
    assert_eq!(
        request(gw.addr, "GET", "/a", "X-API-Key: k-123\r\n").status,
        200
    );

    // A reload (here: one more route) keeps the count.
    let text = key_config(origin.addr) + "\n[[route]]\npath = \"/new\"\nupstream = \"app\"\n";
    std::fs::write(&gw.config_path, text).unwrap();
    gw.signal(libc::SIGHUP);
    assert!(gw.wait_for_generation(1), "{:#?}", gw.log());
    assert_eq!(request(gw.addr, "GET", "/new", "").status, 200);
    assert_eq!(request(gw.addr, "GET", "/a", key).status, 429);
    assert_eq!(origin.seen().len(), 5);
}

#[test]
fn policy_config_errors_name_file_line_and_key() {
    let app: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        (
            "[[route]]\npath = \"/\"\nupstream = \"app\"\n[route.ip]\nallow = [\"10.0.0.1/8\"]\n",
            ":17:10: key `route[0].ip.allow[0]`",
            "did you mean \"10.0.0.0/8\"",
        ),
        (
            "[[route]]\npath = \"/\"\nupstream = \"app\"\n[route.cors]\nallow_origins = [\"*\"]\nallow_credentials = true\n",
            ":18:21: key `route[0].cors.allow_credentials`",
            "list the origins",
        ),
        (
            "[[route]]\npath = \"/\"\nupstream = \"app\"\n[route.throttle]\nrate = 10\nkey = \"cookie\"\n",
            ":18:7: key `route[0].throttle.key`",
            "unknown throttle key",
        ),
        (
            "[[route]]\npath = \"/\"\nupstream = \"app\"\n[route.api_key]\nsource = \"body:k\"\n",
            ":17:10: key `route[0].api_key.source`",
            "header:NAME",
        ),
        (
            "[[api_key]]\nname = \"a\"\nvalue = \"k\"\nplan = \"gold\"\n",
            ":16:8: key `api_key[0].plan`",
            "no [[usage_plan]] is named \"gold\"",
        ),
        (
            "[[route]]\npath = \"/\"\n[route.mock]\nstatus = 200\nheaders = { content-length = \"1\" }\n",
            "key `route[0].mock.headers.content-length`",
            "frames the mock response itself",
        ),
        (
            "[[route]]\npath = \"/\"\n[route.cors]\nallow_origins = [\"*\"]\n",
            "key `route[0].upstream`",
            "a `[route.mock]`",
        ),
        (
            "[[route]]\npath = \"/\"\nupstream = \"app\"\n[route.validate]\njson_schema = \"user.json\"\n",
            ":17:15: key `route[0].validate.json_schema`",
            "cannot read",
        ),
        (
            "[[route]]\npath = \"/\"\nupstream = \"app\"\n[route.jwt_typo]\n",
            "route",
            "jwt_typo",
        ),
    ];
    for (rest, at, says) in cases {
        let (code, err) = check(&config(app, 1, "", rest));
        assert_eq!(code, 2, "{rest}: {err}");
        assert!(err.contains(at), "{rest}: want {at} in\n{err}");
        assert!(err.contains(says), "{rest}: want {says} in\n{err}");
    }
    let (code, err) = check(&config(app, 1, "trusted_proxies = [\"10.0.0.0/40\"]", ""));
    assert_ne!(code, 0);
    assert!(err.contains("key `server.trusted_proxies[0]`"), "{err}");
}

#[test]
fn validation_refuses_before_forwarding() {
    let origin = Origin::echo();
    let rest = r#"[[route]]
path = "/{proxy+}"
upstream = "app"

[route.validate]
required_headers = ["x-tenant"]
required_query = ["page"]
max_body_bytes = 1048576
content_types = ["application/json"]
"#;
    let gw = Gateway::start(&config(origin.addr, 1, "", rest));
    let post = |target: &str, fields: &str, body: &str| {
        request(
            gw.addr,
            "POST",
            target,
            &format!("{fields}Content-Length: {}\r\n\r\n{body}", body.len()),
        )
    };
    let json = "X-Tenant: t\r\nContent-Type: application/json\r\n";
    let r = post("/u?page=1", json, "{}");
    assert_eq!(r.status, 200);
    let r = post("/u?page=1", "Content-Type: application/json\r\n", "{}");
    assert_eq!(
        (r.status, message(&r).as_str()),
        (400, "missing required header x-tenant")
    );
    let r = post("/u?size=1", json, "{}");
    assert_eq!(
        (r.status, message(&r).as_str()),
        (400, "missing required query parameter page")
    );
    let r = post(
        "/u?page=1",
        "X-Tenant: t\r\nContent-Type: text/xml\r\n",
        "<a/>",
    );
    assert_eq!(r.status, 415);
    // Too large: refused on the Content-Length alone, before any body byte is read.
    let r = request(
        gw.addr,
        "POST",
        "/u?page=1",
        &format!("{json}Content-Length: 1048577\r\n"),
    );
    assert_eq!(r.status, 413);
    assert_eq!(r.header("connection"), Some("close"));
    let r = request(
        gw.addr,
        "POST",
        "/u?page=1",
        &format!("{json}Transfer-Encoding: chunked\r\n\r\n2\r\n{{}}\r\n0\r\n"),
    );
    assert_eq!(r.status, 411);
    // A bodiless GET needs no content type.
    assert_eq!(
        request(gw.addr, "GET", "/u?page=2", "X-Tenant: t\r\n").status,
        200
    );
    assert_eq!(origin.seen().len(), 2);
}

/// Signing keys of each supported algorithm, and the JWKS of their public halves.
struct Signers {
    rsa: ring::signature::RsaKeyPair,
    ec: ring::signature::EcdsaKeyPair,
    ed: ring::signature::Ed25519KeyPair,
    secret: Vec<u8>,
    rng: ring::rand::SystemRandom,
}

impl Signers {
    fn new() -> Signers {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
        let rng = ring::rand::SystemRandom::new();
        let rsa = ring::signature::RsaKeyPair::from_der(include_bytes!("data/jwt-rsa.der"))
            .expect("test RSA key");
        let ec_der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let ec = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, ec_der.as_ref(), &rng)
            .unwrap();
        let ed_der = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let ed = Ed25519KeyPair::from_pkcs8(ed_der.as_ref()).unwrap();
        Signers {
            rsa,
            ec,
            ed,
            secret: b"a shared secret of some length".to_vec(),
            rng,
        }
    }

    fn jwks(&self) -> String {
        use ring::signature::KeyPair;
        let pk = self.rsa_public();
        let point = self.ec.public_key().as_ref();
        format!(
            r#"{{"keys":[
  {{"kty":"RSA","kid":"r1","alg":"RS256","n":"{}","e":"{}"}},
  {{"kty":"EC","kid":"e1","crv":"P-256","x":"{}","y":"{}"}},
  {{"kty":"OKP","kid":"d1","crv":"Ed25519","x":"{}"}},
  {{"kty":"oct","kid":"h1","k":"{}"}}
]}}"#,
            b64url(&pk.n),
            b64url(&pk.e),
            b64url(&point[1..33]),
            b64url(&point[33..65]),
            b64url(self.ed.public_key().as_ref()),
            b64url(&self.secret),
        )
    }

    fn rsa_public(&self) -> ring::rsa::PublicKeyComponents<Vec<u8>> {
        self.rsa.public().into()
    }

    /// A token with `alg` (and the matching kid) over `claims`.
    fn token(&self, alg: &str, claims: &str) -> String {
        let kid = match alg {
            "RS256" => "r1",
            "ES256" => "e1",
            "EdDSA" => "d1",
            _ => "h1",
        };
        let signed = format!(
            "{}.{}",
            b64url(format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"{kid}"}}"#).as_bytes()),
            b64url(claims.as_bytes())
        );
        let sig = match alg {
            "RS256" => {
                let mut sig = vec![0; self.rsa.public().modulus_len()];
                self.rsa
                    .sign(
                        &ring::signature::RSA_PKCS1_SHA256,
                        &self.rng,
                        signed.as_bytes(),
                        &mut sig,
                    )
                    .unwrap();
                sig
            }
            "ES256" => self
                .ec
                .sign(&self.rng, signed.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
            "EdDSA" => self.ed.sign(signed.as_bytes()).as_ref().to_vec(),
            _ => {
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.secret);
                ring::hmac::sign(&key, signed.as_bytes()).as_ref().to_vec()
            }
        };
        format!("{signed}.{}", b64url(&sig))
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn jwt_authorizer_accepts_good_tokens_and_refuses_the_rest() {
    let origin = Origin::echo();
    let signers = Signers::new();
    let dir = TempDir::new();
    let jwks = dir.0.join("jwks.json");
    std::fs::write(&jwks, signers.jwks()).unwrap();
    // The issue's snippet (with an absolute JWKS path: the config lives elsewhere).
    let rest = format!(
        r#"[[route]]
path = "/{{proxy+}}"
upstream = "app"

[route.jwt]
issuer = "https://issuer.example.com"
audience = ["api"]
jwks_file = "{}"         # or jwks_url
scopes = ["read:users"]
forward_claims = {{ sub = "x-user-id" }}
"#,
        jwks.display()
    );
    let gw = Gateway::start(&config(origin.addr, 2, "", &rest));
    let claims = |aud: &str, exp: u64, scope: &str| {
        format!(
            r#"{{"iss":"https://issuer.example.com","aud":{aud},"exp":{exp},"nbf":{},"sub":"user-7","scope":"{scope}"}}"#,
            now() - 10
        )
    };
    let good = claims(r#"["api"]"#, now() + 300, "read:users write:users");
    let bearer = |t: &str| format!("Authorization: Bearer {t}\r\nX-User-Id: forged\r\n");
    for alg in ["RS256", "ES256", "EdDSA", "HS256"] {
        let r = request(
            gw.addr,
            "GET",
            "/users/7",
            &bearer(&signers.token(alg, &good)),
        );
        assert_eq!(r.status, 200, "{alg}: {r:?}");
    }
    let seen = origin.seen();
    assert_eq!(seen.len(), 4);
    for s in &seen {
        assert_eq!(s.headers_named("x-user-id"), ["user-7"], "{s:?}");
    }

    // Refused, never forwarded.
    let expired = signers.token("ES256", &claims(r#""api""#, now() - 3600, "read:users"));
    let wrong_aud = signers.token("RS256", &claims(r#""web""#, now() + 300, "read:users"));
    let no_scope = signers.token("EdDSA", &claims(r#""api""#, now() + 300, "write:users"));
    let good_rs = signers.token("RS256", &good);
    let (head, rest_of) = good_rs.split_at(good_rs.rfind('.').unwrap());
    // The payload swapped for another (a different `sub`), the signature kept.
    let tampered = {
        let mut parts: Vec<&str> = head.split('.').collect();
        let other = b64url(
            claims(r#""api""#, now() + 300, "read:users")
                .replace("user-7", "admin")
                .as_bytes(),
        );
        parts[1] = &other;
        format!("{}{rest_of}", parts.join("."))
    };
    let alg_none = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(good.as_bytes())
    );
    // An HS256 token "signed" with the RSA key's public modulus (alg confusion).
    let confused = {
        let signed = format!(
            "{}.{}",
            b64url(br#"{"alg":"HS256","kid":"r1"}"#),
            b64url(good.as_bytes())
        );
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &signers.rsa_public().n);
        format!(
            "{signed}.{}",
            b64url(ring::hmac::sign(&key, signed.as_bytes()).as_ref())
        )
    };
    let cases: &[(&str, String, u16, &str, &str)] = &[
        ("missing", String::new(), 401, "missing token", "Bearer"),
        (
            "expired",
            bearer(&expired),
            401,
            "token expired",
            "Bearer error=\"invalid_token\"",
        ),
        (
            "wrong audience",
            bearer(&wrong_aud),
            401,
            "invalid token",
            "Bearer error=\"invalid_token\"",
        ),
        (
            "wrong signature",
            bearer(&tampered),
            401,
            "invalid token",
            "Bearer error=\"invalid_token\"",
        ),
        (
            "alg none",
            bearer(&alg_none),
            401,
            "invalid token",
            "Bearer error=\"invalid_token\"",
        ),
        (
            "alg confusion",
            bearer(&confused),
            401,
            "invalid token",
            "Bearer error=\"invalid_token\"",
        ),
        (
            "garbage",
            bearer("not.a.jwt"),
            401,
            "invalid token",
            "Bearer error=\"invalid_token\"",
        ),
        (
            "scope",
            bearer(&no_scope),
            403,
            "insufficient scope",
            "Bearer error=\"insufficient_scope\"",
        ),
    ];
    for (what, fields, status, msg, challenge) in cases {
        let r = request(gw.addr, "GET", "/users/7", fields);
        assert_eq!(r.status, *status, "{what}");
        assert_eq!(message(&r), *msg, "{what}");
        assert_eq!(r.header("www-authenticate"), Some(*challenge), "{what}");
    }
    assert_eq!(origin.seen().len(), 4, "a refused token was forwarded");
}

#[test]
fn jwt_config_errors_name_the_key() {
    let app: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let dir = TempDir::new();
    let bad = dir.0.join("bad.json");
    std::fs::write(&bad, "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-521\"}]}").unwrap();
    for (jwt, says) in [
        (
            format!("jwks_file = \"{}\"", bad.display()),
            "unsupported key type",
        ),
        (
            "jwks_file = \"/nonexistent/jwks.json\"".to_string(),
            "cannot read",
        ),
        (
            "jwks_url = \"ftp://issuer.example.com/jwks\"".to_string(),
            "use http:// or https://",
        ),
    ] {
        let rest = format!("[[route]]\npath = \"/\"\nupstream = \"app\"\n[route.jwt]\n{jwt}\n");
        let (code, err) = check(&config(app, 1, "", &rest));
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(":17:"), "{err}");
        assert!(err.contains("key `route[0].jwt.jwks_"), "{err}");
        assert!(err.contains(says), "{err}");
    }
}

#[test]
fn mapping_results_are_seen_at_the_upstream_and_the_client() {
    let origin = Origin::start(|_| {
        ringway_tests::Reply::Length(200, vec!["X-Gateway: origin".into()], b"ok".to_vec())
    });
    // The issue's mapping snippet, plus path parameters and the client address.
    let rest = r#"[[route]]
path = "/users/{id}"
upstream = "app"

[route.mapping]
request = { "overwrite:header.x-tenant" = "$request.header.x-org", "append:querystring.src" = "gw", "remove:header.cookie" = "" }
response = { "overwrite:header.x-gateway" = "ringway" }

[[route]]
path = "/orders/{id}"
upstream = "app"

[route.mapping]
request = { "overwrite:header.x-order" = "$request.path.id", "append:header.x-client" = "$context.identity.sourceIp", "overwrite:querystring.page" = "$request.header.x-page", "remove:querystring.debug" = "" }
"#;
    let gw = Gateway::start(&config(
        origin.addr,
        1,
        "trusted_proxies = [\"127.0.0.1/32\"]",
        rest,
    ));
    let r = request(
        gw.addr,
        "GET",
        "/users/7?a=1",
        "X-Org: acme\r\nX-Tenant: forged\r\nCookie: session=secret\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-gateway"), Some("ringway"));
    assert_eq!(
        r.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("x-gateway"))
            .count(),
        1
    );
    let r = request(
        gw.addr,
        "GET",
        "/orders/o-9?page=1&debug=1&x=y",
        "X-Page: 3\r\nX-Forwarded-For: 192.0.2.7\r\n",
    );
    assert_eq!(r.status, 200);
    let seen = origin.seen();
    assert_eq!(seen[0].target, "/users/7?a=1&src=gw");
    assert_eq!(seen[0].headers_named("x-tenant"), ["acme"]);
    assert_eq!(seen[0].header("cookie"), None);
    assert_eq!(seen[1].target, "/orders/o-9?x=y&page=3");
    assert_eq!(seen[1].headers_named("x-order"), ["o-9"]);
    assert_eq!(seen[1].headers_named("x-client"), ["192.0.2.7"]);
}

/// The issue's config block, verbatim but for the upstream it names.
const ISSUE_CONFIG: &str = r#"[server]
trusted_proxies = ["127.0.0.1/32"]

[[usage_plan]]
name = "basic"
rate = 100                      # requests per second
burst = 200
quota = { limit = 10000, period = "day" }

[[api_key]]
name = "client-a"
value = "k-123"                 # or value_sha256 = "…"; stored hashed either way
plan = "basic"

[[route]]
path = "/{proxy+}"
upstream = "app"

[route.cors]
allow_origins = ["https://app.example.com", "https://*.example.com"]
allow_methods = ["GET", "POST"]
allow_headers = ["content-type", "authorization", "x-api-key"]
expose_headers = ["x-request-id"]
allow_credentials = true
max_age = "10m"

[route.api_key]
source = "header:x-api-key"     # or "query:api_key"

[route.throttle]
rate = 50
burst = 100
key = "client_ip"               # or "route", "header:x-tenant"

[route.jwt]
issuer = "https://issuer.example.com"
audience = ["api"]
jwks_file = "jwks.json"         # or jwks_url
scopes = ["read:users"]
forward_claims = { sub = "x-user-id" }

[route.validate]
required_headers = ["x-tenant"]
required_query = ["page"]
max_body_bytes = 1048576
content_types = ["application/json"]
json_schema = "schemas/user.json"

[route.mapping]
request = { "overwrite:header.x-tenant" = "$request.header.x-org", "append:querystring.src" = "gw", "remove:header.cookie" = "" }
response = { "overwrite:header.x-gateway" = "ringway" }

[route.mock]                    # a route with mock needs no upstream
status = 200
headers = { content-type = "application/json" }
body = '{"ok":true}'

[route.ip]
allow = ["10.0.0.0/8", "127.0.0.1/32"]
deny = []

[[upstream]]
name = "app"
targets = ["127.0.0.1:9"]
"#;

#[test]
fn the_issue_config_is_accepted_once_its_schema_file_exists() {
    let dir = TempDir::new();
    std::fs::write(dir.0.join("jwks.json"), Signers::new().jwks()).unwrap();
    let run = |text: &str| {
        let (code, _, stderr) = ringway_tests::gateway::check_in(&dir.0, text);
        (code, stderr)
    };
    let (code, err) = run(ISSUE_CONFIG);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(":47:15: key `route[0].validate.json_schema`: cannot read"),
        "{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.contains(": key `")).count(),
        1,
        "{err}"
    );
    std::fs::create_dir_all(dir.0.join("schemas")).unwrap();
    std::fs::write(dir.0.join("schemas/user.json"), r#"{"type":"object"}"#).unwrap();
    let (code, err) = run(ISSUE_CONFIG);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn server_policies_are_defaults_a_route_can_override() {
    let origin = Origin::echo();
    let server = "trusted_proxies = [\"127.0.0.1/32\"]\n[server.cors]\nallow_origins = [\"https://app.example.com\"]\n\n[server.ip]\ndeny = [\"192.0.2.0/24\"]";
    let rest = "[[route]]\npath = \"/inherits\"\nupstream = \"app\"\n\n[[route]]\npath = \"/own\"\nupstream = \"app\"\n[route.cors]\nallow_origins = [\"https://other.example.org\"]\n";
    let gw = Gateway::start(&config(origin.addr, 1, server, rest));
    let from = |o: &str| format!("Origin: {o}\r\n");
    let r = request(
        gw.addr,
        "GET",
        "/inherits",
        &from("https://app.example.com"),
    );
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let r = request(gw.addr, "GET", "/own", &from("https://app.example.com"));
    assert_eq!(r.header("access-control-allow-origin"), None);
    let r = request(gw.addr, "GET", "/own", &from("https://other.example.org"));
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://other.example.org")
    );
    // The IP default applies to both routes (neither has its own).
    assert_eq!(request(gw.addr, "GET", "/own", "").status, 200);
    for path in ["/own", "/inherits"] {
        let r = request(gw.addr, "GET", path, "X-Forwarded-For: 192.0.2.5\r\n");
        assert_eq!(r.status, 403, "{path}");
    }

    // A broken default is reported once, under `server`.
    let app: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let (code, err) = check(&config(
        app,
        1,
        "[server.ip]\nallow = [\"300.0.0.0/8\"]",
        "[[route]]\npath = \"/a\"\nupstream = \"app\"\n[[route]]\npath = \"/b\"\nupstream = \"app\"\n",
    ));
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.matches("key `server.ip.allow[0]`").count(), 1, "{err}");
    assert!(!err.contains("route["), "{err}");
}

/// `server.api_keys_file`: the plan in the config, keys in a file beside it.
fn keys_file_config(app: SocketAddr, keys: &std::path::Path) -> String {
    config(
        app,
        2,
        &format!("api_keys_file = {:?}", keys.display().to_string()),
        r#"[[usage_plan]]
name = "basic"
rate = 100
burst = 200
quota = { limit = 10000, period = "day" }

[[api_key]]
name = "in-config"
value = "k-config"
plan = "basic"

[[route]]
path = "/{proxy+}"
upstream = "app"

[route.api_key]
source = "header:x-api-key"
"#,
    )
}

#[test]
fn keys_from_a_keys_file_are_read_again_on_reload() {
    let origin = Origin::echo();
    let dir = TempDir::new();
    let keys = dir.0.join("keys.toml");
    std::fs::write(
        &keys,
        "[[api_key]]\nname = \"client-f\"\nvalue = \"k-file\"\nplan = \"basic\"\n",
    )
    .unwrap();
    let gw = Gateway::start(&keys_file_config(origin.addr, &keys));
    let status = |key: &str| request(gw.addr, "GET", "/a", &format!("X-API-Key: {key}\r\n")).status;
    assert_eq!(status("k-file"), 200);
    assert_eq!(status("k-config"), 200);
    assert_eq!(status("k-new"), 403);

    // A key handed out and one withdrawn, by editing only the keys file.
    std::fs::write(
        &keys,
        format!(
            "[[api_key]]\nname = \"client-n\"\nvalue_sha256 = \"{}\"\nplan = \"basic\"\n",
            ringway_tests::sha256(b"k-new")
        ),
    )
    .unwrap();
    gw.signal(libc::SIGHUP);
    assert!(gw.wait_for_generation(1), "{:#?}", gw.log());
    assert_eq!(status("k-new"), 200);
    assert_eq!(status("k-file"), 403);
    assert_eq!(status("k-config"), 200);

    // A broken keys file is refused, naming its own line; the keys stay.
    std::fs::write(
        &keys,
        "[[api_key]]\nname = \"client-x\"\nvalue = \"k-x\"\nplan = \"gold\"\n",
    )
    .unwrap();
    gw.signal(libc::SIGHUP);
    assert!(gw.wait_for_log("reload failed"), "{:#?}", gw.log());
    assert!(
        gw.log_contains("keys.toml:4:8: key `api_key[0].plan`"),
        "{:#?}",
        gw.log()
    );
    assert_eq!(status("k-new"), 200);
    assert_eq!(status("k-x"), 403);
    assert_eq!(origin.seen().len(), 5);
}

#[test]
fn keys_file_errors_name_the_keys_file_line_and_key() {
    let app: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let dir = TempDir::new();
    let text = keys_file_config(app, std::path::Path::new("keys.toml"));
    let run = |keys: Option<&str>| {
        match keys {
            Some(k) => std::fs::write(dir.0.join("keys.toml"), k).unwrap(),
            None => {
                let _ = std::fs::remove_file(dir.0.join("keys.toml"));
            }
        }
        let (code, _, stderr) = ringway_tests::gateway::check_in(&dir.0, &text);
        (code, stderr)
    };
    let cases: &[(&str, &str, &str)] = &[
        (
            "[[api_key]]\nname = \"a\"\nvalue = \"k\"\nplan = \"gold\"\n",
            "keys.toml:4:8: key `api_key[0].plan`",
            "no [[usage_plan]] is named \"gold\"",
        ),
        (
            "# handed out 2026-12\n[[api_key]]\nname = \"b\"\nvalue = \"k-config\"\nplan = \"basic\"\n",
            "keys.toml:4:9: key `api_key[0].value`",
            "the same key as \"in-config\"",
        ),
        (
            "[[api_key]]\nname = \"in-config\"\nvalue = \"k-2\"\nplan = \"basic\"\n",
            "keys.toml:2:8: key `api_key[0].name`",
            "a second key named \"in-config\"",
        ),
        (
            "[[api_key]]\nname = \"c\"\nvalue = \"k-3\"\nplan = \"basic\"\n\n[[usage_plan]]\nname = \"p\"\n",
            "keys.toml:6:",
            "usage_plan",
        ),
        ("[[api_key]\n", "keys.toml:1:", ""),
    ];
    for (keys, at, says) in cases {
        let (code, err) = run(Some(keys));
        assert_eq!(code, 2, "{keys}: {err}");
        assert!(err.contains(at), "{keys}: want {at} in\n{err}");
        assert!(err.contains(says), "{keys}: want {says} in\n{err}");
        assert!(!err.contains("ringway.toml:"), "{keys}: {err}");
    }
    let (code, err) = run(None);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("ringway.toml:5:17: key `server.api_keys_file`: cannot read"),
        "{err}"
    );
    let (code, err) = run(Some(
        "[[api_key]]\nname = \"ok\"\nvalue = \"k-ok\"\nplan = \"basic\"\n",
    ));
    assert_eq!(code, 0, "{err}");
}
