//! Router lookups: ringway-router against `matchit` on the same route tables.
//!
//! Three tables: a small 10-route API, a ~1,000-route REST API with params,
//! and a worst case that forces the lookup to backtrack through every
//! literal/param combination. matchit has no methods, so its value is a small
//! (method, route) list scanned per lookup, as a gateway would.
//!
//! Run: `cargo bench -p ringway-bench --bench router -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringway_router::{Lookup, RouteSpec, Router};

struct Table {
    name: &'static str,
    routes: Vec<RouteSpec>,
    requests: Vec<(&'static str, String)>,
}

fn small() -> Table {
    let routes = vec![
        RouteSpec::new("/", &["GET"]),
        RouteSpec::new("/health", &["GET"]),
        RouteSpec::new("/users", &["GET", "POST"]),
        RouteSpec::new("/users/{id}", &["GET", "PUT", "DELETE"]),
        RouteSpec::new("/users/{id}/orders", &["GET", "POST"]),
        RouteSpec::new("/users/{id}/orders/{order}", &["GET"]),
        RouteSpec::new("/products", &["GET"]),
        RouteSpec::new("/products/{id}", &["GET"]),
        RouteSpec::new("/static/{path+}", &["GET"]),
        RouteSpec::new("/{proxy+}", &["ANY"]),
    ];
    let requests = [
        ("GET", "/health"),
        ("GET", "/users/42"),
        ("DELETE", "/users/42"),
        ("GET", "/users/42/orders/1001"),
        ("POST", "/users/42/orders"),
        ("GET", "/products/abc"),
        ("GET", "/static/css/site/main.css"),
        ("POST", "/legacy/api/thing"),
    ];
    Table {
        name: "10_routes",
        routes,
        requests: requests.iter().map(|(m, p)| (*m, p.to_string())).collect(),
    }
}

fn rest() -> Table {
    let mut routes = Vec::new();
    for r in 0..50 {
        routes.push(RouteSpec::new(&format!("/v1/res{r}"), &["GET", "POST"]));
        routes.push(RouteSpec::new(
            &format!("/v1/res{r}/{{id}}"),
            &["GET", "PUT", "DELETE"],
        ));
        for s in 0..9 {
            routes.push(RouteSpec::new(
                &format!("/v1/res{r}/{{id}}/sub{s}"),
                &["GET", "POST"],
            ));
            routes.push(RouteSpec::new(
                &format!("/v1/res{r}/{{id}}/sub{s}/{{subId}}"),
                &["GET", "PUT"],
            ));
        }
    }
    routes.push(RouteSpec::new("/v1/{proxy+}", &["ANY"]));
    let requests = [
        ("GET", "/v1/res0"),
        ("GET", "/v1/res17/8f14e45f"),
        ("PUT", "/v1/res33/8f14e45f/sub4/77"),
        ("POST", "/v1/res49/123/sub8"),
        ("GET", "/v1/res25/123/sub0/abc"),
        ("DELETE", "/v1/res9/x"),
        ("GET", "/v1/unknown/path"),
        ("GET", "/v1/res40/1/sub5/2"),
    ];
    Table {
        name: "1000_routes",
        routes,
        requests: requests.iter().map(|(m, p)| (*m, p.to_string())).collect(),
    }
}

/// Every literal/param combination over 8 levels ends in `end`; only the
/// all-params route ends in `last`, so `/s0/…/s7/last` backtracks everywhere.
fn worst() -> Table {
    const DEPTH: usize = 8;
    let mut routes = Vec::new();
    for mask in 0u32..(1 << DEPTH) {
        let mut path = String::new();
        for i in 0..DEPTH {
            if mask & (1 << i) != 0 {
                path.push_str(&format!("/{{p{i}}}"));
            } else {
                path.push_str(&format!("/s{i}"));
            }
        }
        path.push_str(if mask == (1 << DEPTH) - 1 {
            "/last"
        } else {
            "/end"
        });
        routes.push(RouteSpec::new(&path, &["GET"]));
    }
    let requests = vec![("GET", "/s0/s1/s2/s3/s4/s5/s6/s7/last".to_string())];
    Table {
        name: "worst_backtracking",
        routes,
        requests,
    }
}

fn matchit_router(routes: &[RouteSpec]) -> matchit::Router<Vec<(String, usize)>> {
    let mut by_path: Vec<(String, Vec<(String, usize)>)> = Vec::new();
    for (i, r) in routes.iter().enumerate() {
        let path = r.path.replace("+}", "}");
        let path = match path.rfind('{') {
            Some(at) if r.path.ends_with("+}") => format!("{}{{*{}", &path[..at], &path[at + 1..]),
            _ => path,
        };
        let methods = r.methods.iter().map(|m| (m.clone(), i));
        match by_path.iter_mut().find(|(p, _)| *p == path) {
            Some((_, list)) => list.extend(methods),
            None => by_path.push((path, methods.collect())),
        }
    }
    let mut router = matchit::Router::new();
    for (path, list) in by_path {
        router
            .insert(path.as_str(), list)
            .unwrap_or_else(|e| panic!("matchit {path}: {e}"));
    }
    router
}

fn bench(c: &mut Criterion) {
    for table in [small(), rest(), worst()] {
        let ours = Router::compile(&table.routes, None).unwrap();
        let theirs = matchit_router(&table.routes);
        // Both must route every request to the same route.
        for (method, path) in &table.requests {
            let a = match ours.find(method.as_bytes(), None, path.as_bytes()) {
                Lookup::Found(m) => Some(m.route),
                _ => None,
            };
            let b = theirs.at(path).ok().and_then(|m| {
                let list = m.value;
                list.iter()
                    .find(|(x, _)| x == method)
                    .or_else(|| list.iter().find(|(x, _)| x == "ANY"))
                    .map(|e| e.1)
            });
            assert_eq!(a, b, "{} {method} {path}", table.name);
        }
        let mut group = c.benchmark_group(format!("router/{}", table.name));
        group.throughput(Throughput::Elements(table.requests.len() as u64));
        group.bench_function("ringway", |b| {
            b.iter(|| {
                for (method, path) in &table.requests {
                    let host: Option<&[u8]> = Some(b"api.example.com");
                    black_box(ours.find(
                        black_box(method.as_bytes()),
                        host,
                        black_box(path.as_bytes()),
                    ));
                }
            })
        });
        group.bench_function("matchit", |b| {
            b.iter(|| {
                for (method, path) in &table.requests {
                    let found = theirs.at(black_box(path)).ok().map(|m| {
                        let route = m.value.iter().find(|(x, _)| x == method).map(|e| e.1);
                        (route, m.params.len())
                    });
                    black_box(found);
                }
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
