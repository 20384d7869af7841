//! The fuzz driver, shared by the cargo-fuzz target and the corpus replay
//! test (`router/tests/fuzz_corpus.rs`), so CI runs the same code path.
//!
//! Input: lines of text (lossy UTF-8), each one of
//!
//! ```text
//! R GET,POST /path/{id} [host]    a route
//! S /stage                        the stage
//! U http://app/x/{id}?q={id}      a backend URI template (tried on every match)
//! Q GET host|- /path?query        a request
//! ```
//!
//! The whole input is also looked up as a raw request path. Invariants
//! checked: captured spans lie inside the path, `405` has a non-empty `Allow`,
//! and an expanded target never has a `.`/`..` segment, `\` or NUL.

use ringway_router::{Lookup, RouteSpec, Router, UriTemplate};

const MAX_LINES: usize = 64;

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut routes = Vec::new();
    let mut stage = None;
    let mut uris = Vec::new();
    let mut requests: Vec<(String, Option<String>, String)> = Vec::new();
    for line in text.lines().take(MAX_LINES) {
        let Some((tag, rest)) = line.split_once(' ') else {
            continue;
        };
        let fields: Vec<&str> = rest.split(' ').collect();
        match (tag, fields.as_slice()) {
            ("R", [methods, path, host @ ..]) => routes.push(RouteSpec {
                path: path.to_string(),
                methods: methods.split(',').map(String::from).collect(),
                host: host.first().map(|h| h.to_string()),
            }),
            ("S", _) => stage = Some(rest.to_string()),
            ("U", _) => uris.push(rest.to_string()),
            ("Q", [method, host, target]) => {
                let host = (*host != "-").then(|| host.to_string());
                requests.push((method.to_string(), host, target.to_string()));
            }
            _ => {}
        }
    }
    if routes.is_empty() {
        routes = ["/", "/pets", "/pets/{id}", "/{proxy+}"]
            .iter()
            .map(|p| RouteSpec::new(p, &["GET"]))
            .collect();
        uris.push("http://app/v1/{proxy}".into());
        uris.push("http://app/v1/pets/{id}?id={id}".into());
    }
    let router = match Router::compile(&routes, stage.as_deref()) {
        Ok(router) => router,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let _ = router.describe();
    let templates: Vec<String> = uris;
    let raw = (String::from("GET"), None, String::new());
    for (method, host, target) in requests.iter().chain([&raw]) {
        let target: &[u8] = if target.is_empty() && method == "GET" && host.is_none() {
            data
        } else {
            target.as_bytes()
        };
        lookup_and_expand(
            &router,
            method.as_bytes(),
            host.as_deref().map(str::as_bytes),
            target,
            &templates,
        );
    }
}

fn lookup_and_expand(
    router: &Router,
    method: &[u8],
    host: Option<&[u8]>,
    target: &[u8],
    templates: &[String],
) {
    let query = match target.iter().position(|&b| b == b'?') {
        Some(q) => &target[q + 1..],
        None => &[][..],
    };
    match router.find(method, host, target) {
        Lookup::Found(m) => {
            assert!(m.route < router.len());
            for p in m.params() {
                assert!(p.range().start <= p.range().end && p.range().end <= target.len());
            }
            let params: Vec<&str> = router.route_params(m.route).collect();
            for template in templates {
                let Ok(uri) = UriTemplate::parse(template, &params) else {
                    continue;
                };
                let mut out = Vec::new();
                if uri.expand(target, &m, router, query, &mut out).is_ok() {
                    check_target(&out);
                }
            }
        }
        Lookup::MethodNotAllowed { allow } => assert!(!allow.is_empty()),
        Lookup::NotFound => {}
    }
}

/// An expanded path never climbs: no `.`/`..` segment (decoded, split at `/`
/// and `\`), no `\`, no NUL.
fn check_target(out: &[u8]) {
    let path = out.split(|&b| b == b'?').next().unwrap_or(b"");
    let mut decoded = Vec::new();
    ringway_router::percent::decode_into(path, &mut decoded)
        .expect("expanded path is validly encoded");
    assert!(!decoded.contains(&0), "NUL in {out:?}");
    for piece in decoded.split(|&b| b == b'/' || b == b'\\') {
        assert!(
            piece != b"." && piece != b"..",
            "dot segment in {:?}",
            String::from_utf8_lossy(out)
        );
    }
}
