//! Property test: the compiled tree agrees with a naive linear matcher that
//! applies the documented rules route by route.

use proptest::prelude::*;
use ringway_router::{Lookup, RouteSpec, Router};

const LITERALS: [&str; 9] = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
const METHODS: [&str; 3] = ["GET", "POST", "ANY"];
const ORDER: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Lit(&'static str),
    Param,
}

#[derive(Debug, Clone)]
struct Route {
    segs: Vec<Seg>,
    greedy: bool,
    methods: Vec<&'static str>,
    host: Option<&'static str>,
}

impl Route {
    fn template(&self) -> String {
        let mut t = String::new();
        for (i, s) in self.segs.iter().enumerate() {
            match s {
                Seg::Lit(l) => t.push_str(&format!("/{l}")),
                Seg::Param => t.push_str(&format!("/{{p{i}}}")),
            }
        }
        if self.greedy {
            t.push_str(&format!("/{{g{}+}}", self.segs.len()));
        }
        if t.is_empty() { "/".into() } else { t }
    }

    /// Rank per segment: literal 0, param 1, greedy 2 (the precedence key).
    fn shape(&self) -> Vec<(u8, &'static str)> {
        let mut v: Vec<_> = self
            .segs
            .iter()
            .map(|s| match s {
                Seg::Lit(l) => (0, *l),
                Seg::Param => (1, ""),
            })
            .collect();
        if self.greedy {
            v.push((2, ""));
        }
        v
    }

    /// Raw captures if the route's template matches `segments`.
    fn captures(&self, segments: &[&str], trailing_slash: bool) -> Option<Vec<String>> {
        let mut caps = Vec::new();
        for (i, s) in self.segs.iter().enumerate() {
            let seg = segments.get(i)?;
            match s {
                Seg::Lit(l) => {
                    if decode(seg)? != l.as_bytes() {
                        return None;
                    }
                }
                Seg::Param => {
                    if seg.is_empty() {
                        return None;
                    }
                    caps.push(seg.to_string());
                }
            }
        }
        let rest = &segments[self.segs.len().min(segments.len())..];
        if self.greedy {
            let joined = rest.join("/");
            if rest.is_empty() || joined.is_empty() {
                return None;
            }
            caps.push(if trailing_slash { joined + "/" } else { joined });
        } else if !rest.is_empty() {
            return None;
        }
        Some(caps)
    }
}

fn decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// The routes of the host table a request host selects: exact, then the
/// longest matching wildcard, then the routes without host.
fn naive_table<'r>(routes: &'r [Route], host: Option<&str>) -> Vec<(usize, &'r Route)> {
    let with = |pattern: Option<&str>| -> Vec<(usize, &'r Route)> {
        routes
            .iter()
            .enumerate()
            .filter(|(_, r)| r.host == pattern)
            .collect()
    };
    let Some(host) = host else { return with(None) };
    let host = host.split(':').next().unwrap().to_ascii_lowercase();
    if routes.iter().any(|r| r.host == Some(host.as_str())) {
        return with(Some(host.as_str()));
    }
    let wildcard = routes
        .iter()
        .filter_map(|r| r.host)
        .filter(|p| p.starts_with("*.") && host.len() > p.len() - 1 && host.ends_with(&p[1..]))
        .max_by_key(|p| p.len());
    with(wildcard)
}

/// The naive answer: `Ok((route, captures))`, `Err(Some(allow))` or `Err(None)`.
fn naive(
    routes: &[(usize, &Route)],
    method: &str,
    path: &str,
) -> Result<(usize, Vec<String>), Option<String>> {
    let path = path.split('?').next().unwrap();
    let trailing_slash = path.ends_with('/');
    let path = path.strip_suffix('/').unwrap_or(path);
    let segments: Vec<&str> = if path.is_empty() {
        vec![]
    } else {
        path[1..].split('/').collect()
    };
    let best = routes
        .iter()
        .map(|(_, r)| r)
        .filter(|r| r.captures(&segments, false).is_some())
        .map(|r| r.shape())
        .min()
        .ok_or(None)?;
    let on_resource: Vec<(usize, &Route)> = routes
        .iter()
        .filter(|(_, r)| r.shape() == best)
        .copied()
        .collect();
    let pick = on_resource
        .iter()
        .find(|(_, r)| r.methods.contains(&method))
        .or_else(|| on_resource.iter().find(|(_, r)| r.methods.contains(&"ANY")));
    match pick {
        Some(&(i, r)) => Ok((i, r.captures(&segments, trailing_slash).unwrap())),
        None => {
            let mut methods: Vec<&str> = on_resource
                .iter()
                .flat_map(|(_, r)| r.methods.iter().copied())
                .collect();
            let rank = |m: &str| ORDER.iter().position(|o| *o == m).unwrap_or(ORDER.len());
            methods.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
            Err(Some(methods.join(", ")))
        }
    }
}

fn naive_conflict(routes: &[Route]) -> bool {
    routes.iter().enumerate().any(|(j, r)| {
        routes[..j].iter().any(|q| {
            q.host == r.host
                && q.shape() == r.shape()
                && q.methods.iter().any(|m| r.methods.contains(m))
        })
    })
}

fn route_strategy() -> impl Strategy<Value = Route> {
    let seg = prop_oneof![3 => (0..LITERALS.len()).prop_map(|i| Seg::Lit(LITERALS[i])), 1 => Just(Seg::Param)];
    (
        prop::collection::vec(seg, 0..4),
        prop::bool::weighted(0.25),
        prop::sample::subsequence(METHODS.to_vec(), 1..=2),
        prop::sample::select(vec![
            None,
            None,
            None,
            Some("a.com"),
            Some("*.a.com"),
            Some("*.b.a.com"),
        ]),
    )
        .prop_map(|(segs, greedy, methods, host)| Route {
            segs,
            greedy,
            methods,
            host,
        })
}

fn path_strategy() -> impl Strategy<Value = String> {
    let seg = prop::sample::select(vec![
        "a", "b", "c", "d", "h", "i", "j", "", "%61", "%68", "%zz", "a%2Fb",
    ]);
    (
        prop::collection::vec(seg, 0..6),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(segs, slash, query)| {
            let mut p: String = segs.iter().map(|s| format!("/{s}")).collect();
            if slash || p.is_empty() {
                p.push('/');
            }
            if query {
                p.push_str("?x=/a");
            }
            p
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)))]

    #[test]
    fn tree_agrees_with_naive(
        routes in prop::collection::vec(route_strategy(), 1..24),
        requests in prop::collection::vec((
            prop::sample::select(vec!["GET", "POST", "PUT"]),
            prop::sample::select(vec![None, Some("a.com"), Some("A.Com:8080"), Some("x.a.com"), Some("x.b.a.com"), Some("b.a.com"), Some("c.org")]),
            path_strategy(),
        ), 1..16),
        stage in any::<bool>(),
    ) {
        let specs: Vec<RouteSpec> = routes
            .iter()
            .map(|r| RouteSpec { host: r.host.map(String::from), ..RouteSpec::new(&r.template(), &r.methods) })
            .collect();
        let compiled = Router::compile(&specs, stage.then_some("/s"));
        prop_assert_eq!(compiled.is_err(), naive_conflict(&routes), "{:?}", compiled.err());
        let Ok(router) = compiled else { return Ok(()) };
        for (method, host, path) in &requests {
            // Under a stage, requests carry its prefix; offsets shift with it.
            let path = if stage { format!("/s{path}") } else { path.clone() };
            let got = match router.find(method.as_bytes(), host.map(str::as_bytes), path.as_bytes()) {
                Lookup::Found(m) => Ok((m.route, m.params().map(|p| String::from_utf8(p.raw(path.as_bytes()).to_vec()).unwrap()).collect())),
                Lookup::MethodNotAllowed { allow } => Err(Some(allow.to_string())),
                Lookup::NotFound => Err(None),
            };
            let want = naive(&naive_table(&routes, *host), method, if stage { &path[2..] } else { &path });
            prop_assert_eq!(got, want, "{} {:?} {} in {:?}", method, host, path, specs);
        }
    }
}
