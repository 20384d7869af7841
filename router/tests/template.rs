//! Backend URI template parsing and expansion: encoding, query pass-through,
//! traversal attempts.

use ringway_router::{ExpandError, Lookup, RouteSpec, Router, UriTemplate};

fn router() -> Router {
    Router::compile(
        &[
            RouteSpec::new("/accounts/{id}", &["GET"]),
            RouteSpec::new("/users/{id}/orders/{tenant}", &["GET"]),
            RouteSpec::new("/{proxy+}", &["ANY"]),
        ],
        None,
    )
    .unwrap()
}

/// Expands `template` for a GET of `path?query`.
fn expand(template: &str, target: &str) -> Result<String, ExpandError> {
    let router = router();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let Lookup::Found(m) = router.find(b"GET", None, path.as_bytes()) else {
        panic!("{target}")
    };
    let params: Vec<&str> = router.route_params(m.route).collect();
    let uri = UriTemplate::parse(template, &params).unwrap();
    let mut out = b"prefix:".to_vec();
    let result = uri.expand(path.as_bytes(), &m, &router, query.as_bytes(), &mut out);
    assert!(out.starts_with(b"prefix:"), "expand appends");
    match result {
        Ok(()) => Ok(String::from_utf8(out[7..].to_vec()).unwrap()),
        Err(e) => {
            assert_eq!(out, b"prefix:", "error leaves out unchanged");
            Err(e)
        }
    }
}

#[test]
fn expands() {
    let table: &[(&str, &str, &str)] = &[
        (
            "http://app/v2/accounts/{id}",
            "/accounts/42",
            "/v2/accounts/42",
        ),
        (
            "http://app/v2/accounts/{id}",
            "/accounts/42?a=1&b",
            "/v2/accounts/42?a=1&b",
        ),
        (
            "http://app/v2/accounts/{id}?x=1",
            "/accounts/42?a=1",
            "/v2/accounts/42?x=1&a=1",
        ),
        (
            "http://app/v2/accounts/{id}?x=1",
            "/accounts/42",
            "/v2/accounts/42?x=1",
        ),
        ("http://app", "/accounts/42", "/"),
        ("http://app?id={id}", "/accounts/42", "/?id=42"),
        ("http://app/acct-{id}.json", "/accounts/42", "/acct-42.json"),
        // re-encoding: canonical spelling, reserved bytes encoded.
        ("http://app/a/{id}", "/accounts/%7E%41b%20c", "/a/~Ab%20c"),
        ("http://app/a/{id}", "/accounts/a;b", "/a/a%3Bb"),
        ("http://app/a/{id}", "/accounts/caf%C3%A9", "/a/caf%C3%A9"),
        // a single-segment param keeps an encoded slash encoded.
        ("http://app/a/{id}", "/accounts/a%2fb", "/a/a%2Fb"),
        ("http://app/a/{id}", "/accounts/...", "/a/..."),
        // query-position params: separators encoded.
        (
            "http://app/q?id={id}",
            "/accounts/a%26b%3Dc+d%2F",
            "/q?id=a%26b%3Dc%2Bd/",
        ),
        (
            "http://users/v2/{id}/orders?tenant={tenant}",
            "/users/7/orders/acme?page=2",
            "/v2/7/orders?tenant=acme&page=2",
        ),
        // greedy: segments re-encoded, separators kept.
        (
            "http://backend:8080/api/{proxy}",
            "/a/b%20c/d.txt",
            "/api/a/b%20c/d.txt",
        ),
        ("http://backend:8080/api/{proxy+}", "/a/b/", "/api/a/b/"),
        ("http://backend:8080/api/{proxy+}", "/a/b/?x", "/api/a/b/?x"),
        (
            "https://backend/api/{proxy}",
            "/x/..a/a..",
            "/api/x/..a/a..",
        ),
    ];
    for &(template, target, want) in table {
        assert_eq!(
            expand(template, target).as_deref(),
            Ok(want),
            "{template} {target}"
        );
    }
}

#[test]
fn rejects_traversal_and_bad_encoding() {
    use ExpandError::*;
    let table: &[(&str, &str, ExpandError)] = &[
        ("http://app/api/{proxy}", "/a/../b", Traversal),
        ("http://app/api/{proxy}", "/a/./b", Traversal),
        ("http://app/api/{proxy}", "/..", Traversal),
        ("http://app/api/{proxy}", "/a/%2e%2e/b", Traversal),
        ("http://app/api/{proxy}", "/a/%2E./b", Traversal),
        ("http://app/api/{proxy}", "/a/.%2E", Traversal),
        ("http://app/api/{proxy}", "/a/%2e", Traversal),
        ("http://app/api/{proxy}", "/a%2f..%2fb", Traversal),
        ("http://app/api/{proxy}", "/a%2Fb", Traversal),
        ("http://app/api/{proxy}", "/a%5c..%5cb", Traversal),
        ("http://app/api/{proxy}", "/a\\b", Traversal),
        ("http://app/api/{proxy}", "/a%00b", Traversal),
        ("http://app/api/{proxy}", "/a%zz", BadEncoding),
        ("http://app/api/{proxy}", "/a%2", BadEncoding),
        ("http://app/a/{id}", "/accounts/..", Traversal),
        ("http://app/a/{id}", "/accounts/%2E%2E", Traversal),
        ("http://app/a/{id}", "/accounts/..%2F..%2Fadmin", Traversal),
        ("http://app/a/{id}", "/accounts/%5C", Traversal),
        ("http://app/a/{id}", "/accounts/%G0", BadEncoding),
        ("http://app/q?id={id}", "/accounts/%", BadEncoding),
    ];
    for &(template, target, want) in table {
        assert_eq!(expand(template, target), Err(want), "{template} {target}");
    }
}

#[test]
fn parse_errors() {
    let params = ["id", "proxy+"];
    let table: &[(&str, &str)] = &[
        ("app/x", "http://"),
        ("ftp://app/x", "scheme"),
        ("http:///x", "authority"),
        ("http://u@app/x", "authority"),
        ("http://app/{nope}", "unknown parameter `{nope}`"),
        ("http://app/{id", "unclosed"),
        ("http://app/id}", "without"),
        ("http://app/a b", "percent-encoded"),
        ("http://app/a%zz", "percent-encoding"),
        ("http://app/a#f", "fragment"),
        ("http://app/a/../b", "`..`"),
        ("http://app/a/%2E/{id}", "`.`"),
    ];
    for &(template, fragment) in table {
        let err = UriTemplate::parse(template, &params)
            .unwrap_err()
            .to_string();
        assert!(err.contains(fragment), "{template}: {err}");
    }
    let ok = UriTemplate::parse("HTTPS://users:8443/v2/{proxy}/{proxy+}?i={id}", &params).unwrap();
    assert_eq!((ok.scheme(), ok.authority()), ("https", "users:8443"));
}

#[test]
fn unbound_param() {
    let router = router();
    let Lookup::Found(m) = router.find(b"GET", None, b"/accounts/1") else {
        panic!()
    };
    let uri = UriTemplate::parse("http://app/{proxy}", &["proxy"]).unwrap();
    let mut out = Vec::new();
    assert_eq!(
        uri.expand(b"/accounts/1", &m, &router, b"", &mut out),
        Err(ExpandError::Unbound)
    );
}
