//! Table-driven lookup tests: precedence, backtracking, methods, 404/405,
//! greedy params, root, trailing slashes, hosts, stage.

use ringway_router::{Lookup, RouteSpec, Router};

/// Renders a lookup as `#route name=raw ...`, `405 <allow>` or `404`.
fn outcome(router: &Router, method: &str, host: Option<&str>, path: &str) -> String {
    match router.find(method.as_bytes(), host.map(str::as_bytes), path.as_bytes()) {
        Lookup::Found(m) => {
            let mut s = format!("#{}", m.route);
            for p in m.params() {
                let raw = String::from_utf8_lossy(p.raw(path.as_bytes()));
                s.push_str(&format!(" {}={raw}", p.name(router)));
            }
            s
        }
        Lookup::MethodNotAllowed { allow } => format!("405 {allow}"),
        Lookup::NotFound => "404".into(),
    }
}

fn check(router: &Router, cases: &[(&str, &str, &str)]) {
    for &(method, path, want) in cases {
        assert_eq!(outcome(router, method, None, path), want, "{method} {path}");
    }
}

fn routes(list: &[(&str, &[&str])]) -> Vec<RouteSpec> {
    list.iter()
        .map(|(path, methods)| RouteSpec::new(path, methods))
        .collect()
}

#[test]
fn router_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Router>();
}

/// API Gateway's documented example table (resources `/pets`, `/pets/{petId}`,
/// `/pets/{proxy+}`, `/{proxy+}`). Unlike HTTP APIs, a resource lacking the
/// method answers 405 rather than falling back to `/{proxy+}`.
#[test]
fn api_gateway_examples() {
    let router = Router::compile(
        &routes(&[
            ("/pets", &["GET", "POST"]),
            ("/pets/{petId}", &["GET"]),
            ("/pets/{proxy+}", &["ANY"]),
            ("/{proxy+}", &["ANY"]),
            ("/pets/dog/1", &["GET"]),
            ("/pets/dog/{id}", &["GET"]),
        ]),
        None,
    )
    .unwrap();
    check(
        &router,
        &[
            ("GET", "/pets", "#0"),
            ("POST", "/pets", "#0"),
            ("DELETE", "/pets", "405 GET, POST"),
            ("GET", "/pets/7", "#1 petId=7"),
            ("POST", "/pets/7", "405 GET"),
            ("GET", "/pets/7/toys", "#2 proxy=7/toys"),
            ("GET", "/pets/dog/1", "#4"),
            ("GET", "/pets/dog/2", "#5 id=2"),
            ("POST", "/pets/dog/2", "405 GET"),
            ("GET", "/pets/cat/1", "#2 proxy=cat/1"),
            ("GET", "/toys", "#3 proxy=toys"),
            ("PURGE", "/a/b/c", "#3 proxy=a/b/c"),
            ("GET", "/", "404"),
        ],
    );
}

#[test]
fn literal_over_param_over_greedy() {
    let router = Router::compile(
        &routes(&[
            ("/a/{p+}", &["GET"]),
            ("/a/{x}", &["GET"]),
            ("/a/b", &["GET"]),
            ("/a/{x}/c", &["GET"]),
            ("/a/b/c", &["GET"]),
        ]),
        None,
    )
    .unwrap();
    check(
        &router,
        &[
            ("GET", "/a/b", "#2"),
            ("GET", "/a/z", "#1 x=z"),
            ("GET", "/a/b/c", "#4"),
            ("GET", "/a/z/c", "#3 x=z"),
            ("GET", "/a/z/d", "#0 p=z/d"),
            ("GET", "/a/b/c/d", "#0 p=b/c/d"),
            ("GET", "/a", "404"),
        ],
    );
}

#[test]
fn backtracking() {
    let router = Router::compile(
        &routes(&[
            ("/a/b/c", &["GET"]),
            ("/a/{x}/d", &["GET"]),
            ("/{y}/b/e", &["GET"]),
            ("/q/{p+}", &["POST"]),
            ("/x/y/z", &["GET"]),
            ("/m/{p+}", &["GET"]),
            ("/{y}/n", &["GET"]),
            ("/{proxy+}", &["ANY"]),
        ]),
        None,
    )
    .unwrap();
    check(
        &router,
        &[
            // literal `b` dead-ends at `d`: back to `{x}`.
            ("GET", "/a/b/d", "#1 x=b"),
            // literal `a` dead-ends entirely: back to `{y}` at the root.
            ("GET", "/a/b/e", "#2 y=a"),
            // `/q/{p+}` is the resource; GET is not on it and there is no
            // fallback to `/{proxy+}`.
            ("GET", "/q/b/f", "405 POST"),
            ("POST", "/q/b/f", "#3 p=b/f"),
            // The first segment decides first: literal `m` (with its greedy)
            // beats `{y}` at the root.
            ("GET", "/m/n", "#5 p=n"),
            ("GET", "/k/n", "#6 y=k"),
            // literal chain dead-ends: root greedy.
            ("GET", "/x/y/w", "#7 proxy=x/y/w"),
            ("GET", "/x/y", "#7 proxy=x/y"),
        ],
    );
}

#[test]
fn methods_and_any() {
    let router = Router::compile(
        &routes(&[
            ("/r", &["GET", "DELETE"]),
            ("/r", &["ANY"]),
            (
                "/s",
                &[
                    "PATCH", "PUT", "GET", "OPTIONS", "HEAD", "POST", "DELETE", "M-SEARCH",
                ],
            ),
            ("/t", &["get"]),
        ]),
        None,
    )
    .unwrap();
    check(
        &router,
        &[
            ("GET", "/r", "#0"),
            ("DELETE", "/r", "#0"),
            ("POST", "/r", "#1"),
            ("PURGE", "/r", "#1"),
            ("get", "/r", "#1"),
            (
                "CONNECT",
                "/s",
                "405 GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, M-SEARCH",
            ),
            ("M-SEARCH", "/s", "#2"),
            ("GET", "/t", "405 get"),
            ("get", "/t", "#3"),
        ],
    );
}

#[test]
fn different_param_names_per_method() {
    let router = Router::compile(
        &routes(&[
            ("/u/{id}", &["GET"]),
            ("/u/{name}", &["PUT"]),
            ("/u/{x}", &["ANY"]),
        ]),
        None,
    )
    .unwrap();
    check(
        &router,
        &[
            ("GET", "/u/1", "#0 id=1"),
            ("PUT", "/u/1", "#1 name=1"),
            ("POST", "/u/1", "#2 x=1"),
        ],
    );
}

#[test]
fn greedy_root_trailing_slashes_and_empty_segments() {
    let router = Router::compile(
        &routes(&[
            ("/", &["GET"]),
            ("/files/{path+}", &["GET"]),
            ("/pets", &["GET"]),
            ("/a/{x}/b", &["GET"]),
        ]),
        None,
    )
    .unwrap();
    check(
        &router,
        &[
            ("GET", "/", "#0"),
            ("GET", "//", "404"),
            ("GET", "", "404"),
            ("GET", "*", "404"),
            ("GET", "pets", "404"),
            ("GET", "/pets", "#2"),
            ("GET", "/pets/", "#2"),
            ("GET", "/pets//", "404"),
            ("GET", "/files", "404"),
            ("GET", "/files/", "404"),
            ("GET", "/files/a", "#1 path=a"),
            ("GET", "/files/a/", "#1 path=a/"),
            ("GET", "/files/a/b/c.txt", "#1 path=a/b/c.txt"),
            ("GET", "/files//a", "#1 path=/a"),
            ("GET", "/a//b", "404"),
            ("GET", "/a/x/b", "#3 x=x"),
            ("GET", "/a/x/b/", "#3 x=x"),
        ],
    );
}

#[test]
fn percent_encoded_literals_and_query() {
    let router = Router::compile(
        &routes(&[
            ("/pets", &["GET"]),
            ("/a%20b/{x}", &["GET"]),
            ("/{proxy+}", &["ANY"]),
        ]),
        None,
    )
    .unwrap();
    check(
        &router,
        &[
            ("GET", "/p%65ts", "#0"),
            ("GET", "/P%65ts", "#2 proxy=P%65ts"),
            ("GET", "/pets?x=1", "#0"),
            ("GET", "/pets/?x=/a", "#0"),
            ("GET", "/pe%zzts", "#2 proxy=pe%zzts"),
            ("GET", "/pets%2F1", "#2 proxy=pets%2F1"),
            ("GET", "/a%20b/%7e", "#1 x=%7e"),
            ("GET", "/?q", "404"),
        ],
    );
}

#[test]
fn hosts() {
    let router = Router::compile(
        &[
            RouteSpec::new("/{proxy+}", &["ANY"]),
            RouteSpec::new("/", &["GET"]),
            RouteSpec::new("/x", &["GET"]).with_host("API.example.com"),
            RouteSpec::new("/x", &["GET"]).with_host("*.example.com"),
            RouteSpec::new("/x", &["GET"]).with_host("*.eu.example.com"),
            RouteSpec::new("/x", &["GET"]).with_host("[::1]"),
            RouteSpec::new("/y", &["GET"]).with_host("api.example.com"),
        ],
        None,
    )
    .unwrap();
    let cases: &[(Option<&str>, &str, &str)] = &[
        (Some("api.example.com"), "/x", "#2"),
        (Some("Api.Example.COM:8443"), "/x", "#2"),
        (Some("api.example.com."), "/y", "#6"),
        (Some("www.example.com"), "/x", "#3"),
        (Some("a.b.example.com"), "/x", "#3"),
        (Some("fr.eu.example.com"), "/x", "#4"),
        (Some("a.fr.eu.example.com:80"), "/x", "#4"),
        (Some("eu.example.com"), "/x", "#3"),
        (Some("example.com"), "/x", "#0 proxy=x"),
        (Some("[::1]:8080"), "/x", "#5"),
        (Some("[::1]"), "/x", "#5"),
        (Some("[::2]:8080"), "/x", "#0 proxy=x"),
        (Some("other.org"), "/", "#1"),
        (None, "/x", "#0 proxy=x"),
        // A matching host table is exclusive: the default table is not consulted.
        (Some("api.example.com"), "/", "404"),
        (Some("www.example.com"), "/z", "404"),
    ];
    for &(host, path, want) in cases {
        assert_eq!(outcome(&router, "GET", host, path), want, "{host:?} {path}");
    }
}

#[test]
fn no_default_table() {
    let router =
        Router::compile(&[RouteSpec::new("/x", &["GET"]).with_host("a.com")], None).unwrap();
    assert_eq!(outcome(&router, "GET", Some("b.com"), "/x"), "404");
    assert_eq!(outcome(&router, "GET", None, "/x"), "404");
    assert_eq!(outcome(&router, "GET", Some("a.com"), "/x"), "#0");
}

#[test]
fn stage() {
    for stage in ["/prod", "prod", "/prod/"] {
        let router = Router::compile(
            &routes(&[("/", &["GET"]), ("/pets/{id}", &["GET"])]),
            Some(stage),
        )
        .unwrap();
        assert_eq!(router.stage(), Some("/prod"));
        check(
            &router,
            &[
                ("GET", "/prod", "#0"),
                ("GET", "/prod/", "#0"),
                ("GET", "/prod?x", "#0"),
                ("GET", "/prod/pets/1", "#1 id=1"),
                ("GET", "/pets/1", "404"),
                ("GET", "/production/pets/1", "404"),
                ("GET", "/dev/pets/1", "404"),
                ("GET", "/", "404"),
            ],
        );
        let path = b"/prod/pets/1";
        let Lookup::Found(m) = router.find(b"GET", None, path) else {
            panic!()
        };
        assert_eq!(
            m.param(&router, "id"),
            Some(11..12),
            "offsets are into the full path"
        );
        assert_eq!(m.param(&router, "nope"), None);
    }
    for empty in [None, Some(""), Some("/")] {
        let router = Router::compile(&routes(&[("/a", &["GET"])]), empty).unwrap();
        assert_eq!(router.stage(), None);
        check(&router, &[("GET", "/a", "#0")]);
    }
}

#[test]
fn table_in_precedence_order() {
    let router = Router::compile(
        &[
            RouteSpec::new("/{proxy+}", &["ANY"]),
            RouteSpec::new("/pets/{id}", &["DELETE", "GET"]),
            RouteSpec::new("/pets", &["GET"]),
            RouteSpec::new("/x", &["GET"]).with_host("*.example.com"),
            RouteSpec::new("/x", &["GET"]).with_host("api.example.com"),
        ],
        Some("/v1"),
    )
    .unwrap();
    let rows: Vec<String> = router
        .table()
        .map(|r| {
            format!(
                "{} {} {} #{}",
                r.host.unwrap_or("-"),
                r.method,
                r.path,
                r.route
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            "api.example.com GET /x #4",
            "*.example.com GET /x #3",
            "- GET /pets #2",
            "- GET /pets/{id} #1",
            "- DELETE /pets/{id} #1",
            "- ANY /{proxy+} #0",
        ]
    );
    let text = router.describe();
    assert!(text.starts_with("stage /v1\n"), "{text}");
    assert_eq!(text.lines().count(), 7, "{text}");
}

/// Nodes with many literal edges use a hash index: plain and encoded
/// spellings must find the same edges.
#[test]
fn many_literal_edges() {
    let mut specs: Vec<RouteSpec> = (0..50)
        .map(|i| RouteSpec::new(&format!("/k{i}"), &["GET"]))
        .collect();
    specs.extend((0..50).map(|i| RouteSpec::new(&format!("/k{i}/{{x}}"), &["GET"])));
    specs.push(RouteSpec::new("/{proxy+}", &["ANY"]));
    let router = Router::compile(&specs, None).unwrap();
    for i in 0..50 {
        assert_eq!(
            outcome(&router, "GET", None, &format!("/k{i}")),
            format!("#{i}")
        );
        assert_eq!(
            outcome(&router, "GET", None, &format!("/%6b{i}/")),
            format!("#{i}")
        );
        assert_eq!(
            outcome(&router, "GET", None, &format!("/k{i}/v")),
            format!("#{} x=v", 50 + i)
        );
    }
    check(
        &router,
        &[
            ("GET", "/k50", "#100 proxy=k50"),
            ("GET", "/k%zz", "#100 proxy=k%zz"),
            ("GET", "/k1%", "#100 proxy=k1%"),
            ("GET", "/", "404"),
        ],
    );
}

/// Regression: slots past the captures may hold spans left by backtracking;
/// they must not make equal matches compare unequal.
#[test]
fn match_equality_ignores_backtracking_leftovers() {
    let backtracks = Router::compile(
        &routes(&[("/a/{x}/{y}/z", &["GET"]), ("/{w}/b/c", &["GET"])]),
        None,
    )
    .unwrap();
    let direct = Router::compile(
        &routes(&[("/q/{x}/{y}/z", &["GET"]), ("/{w}/b/c", &["GET"])]),
        None,
    )
    .unwrap();
    let a = backtracks.find(b"GET", None, b"/a/b/c");
    let b = direct.find(b"GET", None, b"/a/b/c");
    assert!(matches!(a, Lookup::Found(m) if m.len() == 1 && m.route == 1));
    assert_eq!(a, b);
}
