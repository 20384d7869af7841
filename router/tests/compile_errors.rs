//! Route tables that must not compile, and what the error says.

use ringway_router::{MAX_PARAMS, RouteErrorKind, RouteSpec, Router};

fn spec(path: &str, methods: &[&str], host: Option<&str>) -> RouteSpec {
    RouteSpec {
        path: path.into(),
        methods: methods.iter().map(|m| m.to_string()).collect(),
        host: host.map(Into::into),
    }
}

#[test]
fn conflicts_name_both_routes() {
    // (routes, later route, earlier route, message fragment)
    let table: &[(&[RouteSpec], usize, usize, &str)] = &[
        (
            &[
                spec("/a", &["GET"], None),
                spec("/b", &["GET"], None),
                spec("/a", &["POST", "GET"], None),
            ],
            2,
            0,
            "GET",
        ),
        (
            &[
                spec("/a/{x}", &["GET", "PUT"], None),
                spec("/a/{y}", &["PUT"], None),
            ],
            1,
            0,
            "PUT",
        ),
        (
            &[
                spec("/a/{x+}", &["ANY"], None),
                spec("/a/{y+}", &["ANY"], None),
            ],
            1,
            0,
            "ANY",
        ),
        (
            &[
                spec("/", &["GET"], Some("a.com")),
                spec("/", &["GET"], Some("A.COM.")),
            ],
            1,
            0,
            "GET",
        ),
        (
            &[spec("/a%62", &["GET"], None), spec("/ab", &["GET"], None)],
            1,
            0,
            "GET",
        ),
    ];
    for (routes, later, earlier, method) in table {
        let err = Router::compile(routes, None).unwrap_err();
        assert_eq!(err.kind(), RouteErrorKind::Conflict);
        assert_eq!(
            (err.route(), err.other_route()),
            (Some(*later), Some(*earlier))
        );
        let text = err.to_string();
        let want_later = format!("route #{later} `{}`", routes[*later].path);
        let want_earlier = format!("route #{earlier} `{}`", routes[*earlier].path);
        assert!(
            text.contains(&want_later) && text.contains(&want_earlier) && text.contains(method),
            "{text}"
        );
    }
}

#[test]
fn not_conflicts() {
    let ok: &[&[RouteSpec]] = &[
        &[
            spec("/a/{x}", &["GET"], None),
            spec("/a/{y}", &["POST"], None),
        ],
        &[
            spec("/a/{x}", &["GET"], None),
            spec("/a/{y}", &["ANY"], None),
        ],
        &[
            spec("/a", &["GET"], None),
            spec("/a", &["GET"], Some("a.com")),
        ],
        &[
            spec("/a", &["GET"], Some("*.a.com")),
            spec("/a", &["GET"], Some("b.a.com")),
        ],
        &[
            spec("/a/{x}", &["GET"], None),
            spec("/a/{x+}", &["GET"], None),
            spec("/a/b", &["GET"], None),
        ],
        &[spec("/a", &["GET"], None), spec("/a", &["get"], None)],
    ];
    for routes in ok {
        Router::compile(routes, None).unwrap();
    }
}

#[test]
fn bad_routes() {
    let many = format!(
        "/{}",
        (0..=MAX_PARAMS)
            .map(|i| format!("{{p{i}}}"))
            .collect::<Vec<_>>()
            .join("/")
    );
    let table: &[(RouteSpec, RouteErrorKind, &str)] = &[
        (
            spec("/{}", &["GET"], None),
            RouteErrorKind::Path,
            "empty parameter name",
        ),
        (
            spec("/{a+}/b", &["GET"], None),
            RouteErrorKind::Path,
            "last segment",
        ),
        (
            spec("/{a", &["GET"], None),
            RouteErrorKind::Path,
            "unclosed",
        ),
        (
            spec("/{a}{b}", &["GET"], None),
            RouteErrorKind::Path,
            "one parameter per segment",
        ),
        (
            spec("/x{a}", &["GET"], None),
            RouteErrorKind::Path,
            "whole segment",
        ),
        (
            spec("/{a}/{a}", &["GET"], None),
            RouteErrorKind::Path,
            "twice",
        ),
        (
            spec("a", &["GET"], None),
            RouteErrorKind::Path,
            "start with `/`",
        ),
        (
            spec("/a/", &["GET"], None),
            RouteErrorKind::Path,
            "trailing",
        ),
        (
            spec(&many, &["GET"], None),
            RouteErrorKind::TooManyParams,
            "at most 8",
        ),
        (spec("/a", &[], None), RouteErrorKind::Method, "no methods"),
        (
            spec("/a", &["GET", "GET"], None),
            RouteErrorKind::Method,
            "twice",
        ),
        (spec("/a", &["G T"], None), RouteErrorKind::Method, "token"),
        (
            spec("/a", &["GET"], Some("a.com:80")),
            RouteErrorKind::Host,
            "port",
        ),
        (
            spec("/a", &["GET"], Some("*")),
            RouteErrorKind::Host,
            "host",
        ),
        (spec("/a", &["GET"], Some("")), RouteErrorKind::Host, "host"),
    ];
    for (bad, kind, fragment) in table {
        let routes = [spec("/ok", &["GET"], None), bad.clone()];
        let err = Router::compile(&routes, None).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.kind(), *kind, "{text}");
        assert_eq!(err.route(), Some(1), "{text}");
        assert!(
            text.starts_with(&format!("route #1 `{}`: ", bad.path)),
            "{text}"
        );
        assert!(text.contains(fragment), "{text}");
    }
    // Exactly at the limit compiles.
    let at_limit = format!(
        "/{}",
        (0..MAX_PARAMS)
            .map(|i| format!("{{p{i}}}"))
            .collect::<Vec<_>>()
            .join("/")
    );
    Router::compile(&[spec(&at_limit, &["GET"], None)], None).unwrap();
}

#[test]
fn bad_stage() {
    for stage in ["/{x}", "/a//b", "/a b"] {
        let err = Router::compile(&[spec("/", &["GET"], None)], Some(stage)).unwrap_err();
        assert_eq!(
            (err.kind(), err.route()),
            (RouteErrorKind::Stage, None),
            "{err}"
        );
        assert!(err.to_string().starts_with("stage: "), "{err}");
    }
}
