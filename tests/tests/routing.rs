//! API Gateway routing through the binary: path templates, methods and ANY,
//! 404/405, hosts, stages, backend URI templates and traversal attempts.

use ringway_tests::client::{connect, read_response, send_raw};
use ringway_tests::gateway::check;
use ringway_tests::{Gateway, Origin};
use std::io::Write;

/// The route snippets of the router issue, as written, behind one upstream `app`.
fn issue_config(app: std::net::SocketAddr, extra_server: &str) -> String {
    format!(
        r#"[server]
listen = ["127.0.0.1:0"]
workers = 2
{extra_server}

[[upstream]]
name = "app"
targets = ["{app}"]

[[route]]
path = "/{{proxy+}}"
methods = ["ANY"]
upstream = "app"

[[route]]
path = "/users/{{id}}"
methods = ["GET", "DELETE"]
uri = "http://app/v2/accounts/{{id}}"

[[route]]
path = "/static/{{file+}}"
host = "*.example.com"
uri = "http://app/assets/{{file}}"
"#
    )
}

fn request(gw: &Gateway, method: &str, target: &str, host: &str) -> ringway_tests::Response {
    send_raw(
        gw.addr,
        format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
    )
}

#[test]
fn templates_methods_hosts_and_the_catch_all() {
    let origin = Origin::echo();
    let gw = Gateway::start(&issue_config(origin.addr, ""));
    let cases: &[(&str, &str, &str, u16, Option<&str>)] = &[
        // (method, target, host, status, target the upstream sees)
        (
            "GET",
            "/anything/deep/path?q=1",
            "t",
            200,
            Some("/anything/deep/path?q=1"),
        ),
        ("PATCH", "/x", "t", 200, Some("/x")),
        ("GET", "/users/42", "t", 200, Some("/v2/accounts/42")),
        (
            "DELETE",
            "/users/42?soft=1",
            "t",
            200,
            Some("/v2/accounts/42?soft=1"),
        ),
        ("GET", "/users/a%20b", "t", 200, Some("/v2/accounts/a%20b")),
        (
            "GET",
            "/users/caf%C3%A9",
            "t",
            200,
            Some("/v2/accounts/caf%C3%A9"),
        ),
        (
            "GET",
            "/static/css/site.css",
            "cdn.example.com",
            200,
            Some("/assets/css/site.css"),
        ),
        (
            "GET",
            "/static/css/site.css",
            "CDN.Example.COM:8080",
            200,
            Some("/assets/css/site.css"),
        ),
        // No host table matches: the default table's catch-all forwards unchanged.
        (
            "GET",
            "/static/css/site.css",
            "other.test",
            200,
            Some("/static/css/site.css"),
        ),
        // The most specific resource lacks POST and has no ANY: 405, no fallback to /{proxy+}.
        ("POST", "/users/42", "t", 405, None),
        // Traversal through a greedy or single parameter is refused.
        (
            "GET",
            "/static/..%2f..%2fetc/passwd",
            "cdn.example.com",
            400,
            None,
        ),
        (
            "GET",
            // Dot segments are resolved before routing; one that climbs above / is 400.
            "/static/a/%2e%2e/%2e%2e/%2e%2e/secret",
            "cdn.example.com",
            400,
            None,
        ),
        ("GET", "/users/%2e%2e/%2e%2e", "t", 400, None),
        ("GET", "/users/%zz", "t", 400, None),
    ];
    for (method, target, host, status, upstream_target) in cases {
        let before = origin.seen().len();
        let r = request(&gw, method, target, host);
        assert_eq!(r.status, *status, "{method} {target} (Host {host})");
        let seen = origin.seen();
        match upstream_target {
            Some(t) => {
                assert_eq!(seen.len(), before + 1, "{method} {target}");
                assert_eq!(seen[before].target, *t, "{method} {target} (Host {host})");
            }
            None => assert_eq!(seen.len(), before, "{method} {target} reached the upstream"),
        }
        if *status == 405 {
            assert_eq!(r.header("allow"), Some("GET, DELETE"));
        }
    }
}

#[test]
fn no_resource_is_404_and_keeps_the_connection() {
    let origin = Origin::echo();
    let cfg = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n\n[[upstream]]\nname = \"app\"\ntargets = [\"{}\"]\n\n[[route]]\npath = \"/pets/{{id}}\"\nmethods = [\"GET\"]\nupstream = \"app\"\n",
        origin.addr
    );
    let gw = Gateway::start(&cfg);
    let mut s = connect(gw.addr);
    let mut buf = Vec::new();
    for (target, status) in [
        ("/pets", 404),
        ("/pets/1/toys", 404),
        ("/pets/1", 200),
        ("/", 404),
    ] {
        s.write_all(format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .unwrap();
        assert_eq!(
            read_response(&mut s, &mut buf, false).unwrap().status,
            status,
            "{target}"
        );
    }
    assert_eq!(origin.seen().len(), 1);
}

#[test]
fn a_stage_prefix_is_stripped() {
    let origin = Origin::echo();
    let gw = Gateway::start(&issue_config(origin.addr, "stage = \"/prod\""));
    assert_eq!(request(&gw, "GET", "/prod/users/7", "t").status, 200);
    assert_eq!(origin.seen()[0].target, "/v2/accounts/7");
    assert_eq!(request(&gw, "GET", "/prod/a/b?c=d", "t").status, 200);
    assert_eq!(
        origin.seen()[1].target,
        "/a/b?c=d",
        "an upstream route forwards the path after the stage"
    );
    assert_eq!(
        request(&gw, "GET", "/users/7", "t").status,
        404,
        "outside the stage"
    );
    assert_eq!(origin.seen().len(), 2);
}

#[test]
fn check_prints_the_table_in_precedence_order() {
    let (code, out, err) = check(&issue_config("127.0.0.1:9".parse().unwrap(), ""));
    assert_eq!(code, 0, "{err}");
    let users = out.find("/users/{id}").expect("users route listed");
    let catch_all = out.find("/{proxy+}").expect("catch-all listed");
    let static_route = out.find("/static/{file+}").expect("static route listed");
    assert!(
        static_route < users && users < catch_all,
        "host table first, then most specific:\n{out}"
    );
    assert!(out.contains("http://app/v2/accounts/{id}"), "{out}");
}

#[test]
fn route_errors_name_the_routes_and_keys() {
    let base = "[[upstream]]\nname = \"app\"\ntargets = [\"127.0.0.1:9\"]\n\n";
    let (code, _, err) = check(&format!(
        "{base}[[route]]\npath = \"/a/{{x}}\"\nupstream = \"app\"\n\n[[route]]\npath = \"/a/{{y}}\"\nupstream = \"app\"\n"
    ));
    assert_eq!(code, 2);
    assert!(
        err.contains("ringway.toml:10:8: key `route[1].path`"),
        "{err}"
    );
    assert!(
        err.contains("/a/{x}") && err.contains("/a/{y}"),
        "both routes named: {err}"
    );

    let (code, _, err) = check(&format!(
        "{base}[[route]]\npath = \"/u/{{id}}\"\nuri = \"http://app/v1/{{user}}\"\n"
    ));
    assert_eq!(code, 2);
    assert!(
        err.contains("key `route[0].uri`") && err.contains("user"),
        "{err}"
    );

    let (code, _, err) = check(&format!(
        "{base}[[route]]\npath = \"/u\"\nuri = \"http://nowhere/v1\"\n"
    ));
    assert_eq!(code, 2);
    assert!(
        err.contains("key `route[0].uri`") && err.contains("nowhere"),
        "{err}"
    );

    let (code, _, err) = check(&format!(
        "{base}[[route]]\npath = \"/u/{{a+}}/x\"\nupstream = \"app\"\n"
    ));
    assert_eq!(code, 2);
    assert!(err.contains("key `route[0].path`"), "{err}");
}
