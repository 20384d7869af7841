//! Gateway-wide behaviour through the binary: request ids (made when absent,
//! kept when plain, forwarded upstream, on every response, in the access
//! log), custom gateway responses per status and class, path overwrites and
//! `${variable}` templates in mappings, `[[host]]` policy blocks and
//! `disable = [...]` for inherited policies.

use ringway_tests::client::send_raw;
use ringway_tests::{Gateway, Origin, Reply, Response};
use std::net::SocketAddr;

fn config(app: SocketAddr, server_extra: &str, rest: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\npin = false\n{server_extra}\n\n[[upstream]]\nname = \"app\"\ntargets = [\"{app}\"]\nconnect_timeout = \"1s\"\nresponse_timeout = \"2s\"\n\n{rest}"
    )
}

fn request(addr: SocketAddr, host: &str, target: &str, fields: &str) -> Response {
    send_raw(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n{fields}\r\n").as_bytes(),
    )
}

fn ok_origin() -> Origin {
    Origin::start(|_| {
        Reply::Length(
            200,
            vec!["X-Request-Id: from-origin".into()],
            b"ok".to_vec(),
        )
    })
}

fn is_generated(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Waits (bounded) until a line of the file starts with `prefix`.
fn file_has_line(path: &std::path::Path, prefix: &str) -> bool {
    ringway_tests::wait_until(|| {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.lines().any(|l| l.starts_with(prefix))
    })
}

/// A catch-all route to `app`, and `/gone` to an upstream where nothing listens.
const ANY_ROUTE: &str = "[[upstream]]\nname = \"dead\"\ntargets = [\"127.0.0.1:9\"]\nconnect_timeout = \"1s\"\n\n[[route]]\npath = \"/gone\"\nupstream = \"dead\"\n\n[[route]]\npath = \"/{proxy+}\"\nupstream = \"app\"\n";

#[test]
fn request_ids_are_made_kept_forwarded_and_returned() {
    let origin = ok_origin();
    let dir = ringway_tests::gateway::TempDir::new();
    let log = dir.0.join("access.log");
    let gw = Gateway::start(&config(
        origin.addr,
        &format!(
            "[server.access_log]\npath = \"{}\"\nformat = \"$request_id $status\"",
            log.display()
        ),
        ANY_ROUTE,
    ));

    // None sent: one is made, the upstream gets it and so does the client.
    let r = request(gw.addr, "api.test", "/a", "");
    assert_eq!(r.status, 200);
    let id = r.header("x-request-id").expect("an id").to_string();
    assert!(is_generated(&id), "{id}");
    assert_eq!(
        origin.seen()[0].headers_named("x-request-id"),
        [id.as_str()]
    );
    let ids: Vec<_> = r
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("x-request-id"))
        .collect();
    assert_eq!(ids.len(), 1, "the origin's own id gives way: {r:?}");

    // Every request gets a different one.
    let other = request(gw.addr, "api.test", "/a", "");
    assert_ne!(other.header("x-request-id"), Some(id.as_str()));

    // A plain id from the client is kept end to end.
    let r = request(gw.addr, "api.test", "/b", "X-Request-Id: trace-42.a:b\r\n");
    assert_eq!(r.header("x-request-id"), Some("trace-42.a:b"));
    assert_eq!(
        origin.seen()[2].headers_named("x-request-id"),
        ["trace-42.a:b"]
    );

    // A strange or oversized one is replaced, never forwarded.
    let long = "a".repeat(129);
    for bad in ["has space", "quote\"d", long.as_str()] {
        let r = request(
            gw.addr,
            "api.test",
            "/c",
            &format!("X-Request-Id: {bad}\r\n"),
        );
        let got = r.header("x-request-id").unwrap();
        assert!(is_generated(got), "{bad:?} -> {got}");
        let seen = origin.seen();
        assert_eq!(seen.last().unwrap().headers_named("x-request-id"), [got]);
    }

    // ringway's own responses carry it too: a 400 for a bad head, a 404, a 502.
    let r = send_raw(
        gw.addr,
        b"GET /x HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n",
    );
    assert_eq!(r.status, 400);
    assert!(is_generated(r.header("x-request-id").unwrap()));
    let r = request(gw.addr, "api.test", "/gone", "X-Request-Id: mine-1\r\n");
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(r.header("x-request-id"), Some("mine-1"));

    // And the access log has them.
    assert!(
        file_has_line(&log, "trace-42.a:b 200"),
        "{:?}",
        std::fs::read_to_string(&log)
    );
    assert!(
        file_has_line(&log, "mine-1 50"),
        "{:?}",
        std::fs::read_to_string(&log)
    );
}

#[test]
fn request_ids_can_be_renamed_or_switched_off() {
    let origin = ok_origin();
    let gw = Gateway::start(&config(
        origin.addr,
        "request_id = \"x-correlation-id\"",
        ANY_ROUTE,
    ));
    let r = request(
        gw.addr,
        "api.test",
        "/a",
        "X-Request-Id: passes-through\r\n",
    );
    assert!(is_generated(r.header("x-correlation-id").unwrap()));
    let seen = &origin.seen()[0];
    assert_eq!(seen.headers_named("x-request-id"), ["passes-through"]);
    assert_eq!(
        seen.headers_named("x-correlation-id"),
        [r.header("x-correlation-id").unwrap()]
    );
    // The origin's x-request-id is its own business now.
    assert_eq!(r.header("x-request-id"), Some("from-origin"));

    let origin = ok_origin();
    let gw = Gateway::start(&config(origin.addr, "request_id = false", ANY_ROUTE));
    let r = request(gw.addr, "api.test", "/a", "");
    assert_eq!(r.header("x-request-id"), Some("from-origin"));
    assert_eq!(origin.seen()[0].header("x-request-id"), None);
    let r = request(gw.addr, "api.test", "/a", "X-Request-Id: a b\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(origin.seen()[1].headers_named("x-request-id"), ["a b"]);

    let (code, _, err) =
        ringway_tests::gateway::check("[server]\nrequest_id = \"content-length\"\n");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(":2:") && err.contains("server.request_id"),
        "{err}"
    );
}

#[test]
fn gateway_responses_are_custom_per_status_and_class() {
    let origin = ok_origin();
    let rest = format!(
        r#"{ANY_ROUTE}
[route.throttle]
rate = 1
burst = 1

[gateway_responses.429]
body = '{{"error":"slow down","id":"$context.requestId","detail":$context.error.messageString}}'
headers = {{ x-why = "limits" }}

[gateway_responses.4xx]
content_type = "text/plain; charset=utf-8"
body = "refused ($context.status): $context.error.message"

[gateway_responses.502]
status = 503
"#
    );
    let gw = Gateway::start(&config(origin.addr, "", &rest));
    let r = request(gw.addr, "api.test", "/a", "");
    assert_eq!(r.status, 200);
    let r = request(gw.addr, "api.test", "/a", "X-Request-Id: id-7\r\n");
    assert_eq!(r.status, 429);
    assert_eq!(r.header("x-why"), Some("limits"));
    assert!(r.header("retry-after").is_some(), "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["error"], "slow down");
    assert_eq!(v["id"], "id-7");
    assert_eq!(v["detail"], "too many requests");
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );

    // Another 4xx takes the class entry.
    let r = send_raw(
        gw.addr,
        b"GET /x HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert!(
        String::from_utf8_lossy(&r.body).starts_with("refused (400): "),
        "{r:?}"
    );

    // A 502 is sent as a 503 with the default body.
    let r = request(gw.addr, "api.test", "/gone", "");
    assert_eq!(r.status, 503, "{r:?}");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(v["message"].is_string());

    let (code, _, err) = ringway_tests::gateway::check(
        "[gateway_responses.404]\nbody = \"$context.nope\"\n\n[gateway_responses.ok]\nbody = \"x\"\n",
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("gateway_responses.\"404\".body") && err.contains("$context.nope"),
        "{err}"
    );
    assert!(err.contains("gateway_responses.\"ok\""), "{err}");
}

#[test]
fn mappings_overwrite_the_path_and_fill_templates() {
    let origin = Origin::start(|_| Reply::Length(200, vec![], b"ok".to_vec()));
    let rest = r#"[[route]]
path = "/api/{proxy+}"
upstream = "app"

[route.mapping]
request = { "overwrite:path" = "/v2/${request.path.proxy}", "overwrite:header.x-trace" = "gw-${context.requestId}", "append:querystring.via" = "$context.requestId" }
response = { "overwrite:header.x-served-for" = "${request.header.x-user} (${context.requestId})" }

[[route]]
path = "/by-header"
upstream = "app"

[route.mapping]
request = { "overwrite:path" = "/tenants/${request.header.x-tenant}/home" }
"#;
    let gw = Gateway::start(&config(origin.addr, "", rest));
    let r = request(
        gw.addr,
        "api.test",
        "/api/users/7?x=1",
        "X-Request-Id: r-1\r\nX-User: ann\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-served-for"), Some("ann (r-1)"));
    let seen = origin.seen();
    assert_eq!(seen[0].target, "/v2/users/7?x=1&via=r-1");
    assert_eq!(seen[0].headers_named("x-trace"), ["gw-r-1"]);

    // Header text in a path is percent-encoded; one that would climb out is refused.
    let r = request(gw.addr, "api.test", "/by-header", "X-Tenant: a b/c\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(origin.seen()[1].target, "/tenants/a%20b%2Fc/home");
    let r = request(gw.addr, "api.test", "/by-header", "X-Tenant: ..\r\n");
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.header("x-request-id").is_some());
    let r = request(gw.addr, "api.test", "/api/%2e%2e/%2e%2e/b", "");
    assert_eq!(r.status, 400, "{r:?}");
    // A missing variable: the path cannot be made, so nothing is forwarded.
    let r = request(gw.addr, "api.test", "/by-header", "");
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(origin.seen().len(), 2);
}

#[test]
fn host_blocks_carry_policies_and_routes_can_disable_inherited_ones() {
    let origin = Origin::start(|_| Reply::Length(200, vec![], b"ok".to_vec()));
    let rest = r#"[[route]]
path = "/{proxy+}"
upstream = "app"

[[route]]
path = "/health"
upstream = "app"
disable = ["ip"]

[[route]]
path = "/{proxy+}"
host = "partner.test"
upstream = "app"

[[host]]
name = "admin.test"
[host.ip]
allow = ["10.0.0.0/8"]

[[host]]
name = "partner.test"
disable = ["ip"]
[host.cors]
allow_origins = ["https://partner.example"]
"#;
    let gw = Gateway::start(&config(
        origin.addr,
        "[server.ip]\nallow = [\"127.0.0.1/32\"]\n",
        rest,
    ));
    // The server default lets loopback in.
    assert_eq!(request(gw.addr, "api.test", "/x", "").status, 200);
    // admin.test has no routes of its own: its block applies to the host-less routes.
    assert_eq!(request(gw.addr, "admin.test", "/x", "").status, 403);
    assert_eq!(request(gw.addr, "admin.test:8080", "/x", "").status, 403);
    // ... except where the route disables the inherited IP rule.
    assert_eq!(request(gw.addr, "admin.test", "/health", "").status, 200);
    // partner.test's own route inherits the host's CORS and not the server's IP rule.
    let r = request(
        gw.addr,
        "partner.test",
        "/y",
        "Origin: https://partner.example\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://partner.example")
    );
    let r = request(
        gw.addr,
        "api.test",
        "/y",
        "Origin: https://partner.example\r\n",
    );
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(origin.seen().len(), 4);

    let (code, _, err) = ringway_tests::gateway::check(
        "[[upstream]]\nname = \"app\"\ntargets = [\"127.0.0.1:9\"]\n\n[[route]]\npath = \"/\"\nupstream = \"app\"\ndisable = [\"cors\", \"mock\"]\n\n[[host]]\nname = \"a.test\"\n[host.ip]\nallow = [\"10.0.0.0/33\"]\n",
    );
    assert_eq!(code, 2);
    assert!(
        err.contains(":8:") && err.contains("route[0].disable[1]"),
        "{err}"
    );
    assert!(err.contains("host[0].ip.allow[0]"), "{err}");
}

#[test]
fn a_quota_is_counted_once_across_two_workers() {
    let origin = Origin::start(|_| Reply::Length(200, vec![], b"ok".to_vec()));
    let rest = format!(
        r#"[[usage_plan]]
name = "small"
quota = {{ limit = 25, period = "day" }}

[[api_key]]
name = "a"
value = "k-a"
plan = "small"

{ANY_ROUTE}
[route.api_key]
source = "header:x-api-key"
"#
    );
    let text = config(
        origin.addr,
        "[server.admin]\nlisten = \"127.0.0.1:0\"",
        &rest,
    )
    .replace("workers = 1", "workers = 2");
    let gw = Gateway::start(&text);
    // New connections spread over both workers' listeners (SO_REUSEPORT).
    let mut statuses = Vec::new();
    for _ in 0..60 {
        statuses.push(request(gw.addr, "api.test", "/a", "X-API-Key: k-a\r\n").status);
    }
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    let over = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!((ok, over), (25, 35), "{statuses:?}");
    assert_eq!(origin.seen().len(), 25);
    // Both workers served requests (else this test would not show sharing).
    let metrics = ringway_tests::client::get(gw.admin_addr(), "/metrics");
    let text = String::from_utf8_lossy(&metrics.body);
    let per_worker: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("ringway_connections_accepted_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert_eq!(per_worker.len(), 2, "{text}");
    assert!(per_worker.iter().all(|&n| n > 0.0), "{per_worker:?}");
}
