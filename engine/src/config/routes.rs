//! `[[route]]` and `[[host]]`: the router's radix tree, each route's policies
//! (inherited from `[server]` and its `[[host]]`), its upstream, and its
//! backend URI template.

use super::error::Collector;
use super::model;
use crate::policy::Tables as Defaults;
use crate::snapshot::Route;
use ringway_router::{RouteSpec, Router, UriTemplate};
use std::collections::HashMap;
use std::path::Path;

/// What the router serves: `(route index, host block index)` pairs — each
/// route as written, then, for every `[[host]]` no route names, the host-less
/// routes again under that host (so its policies apply to its requests).
type Entries = Vec<(usize, Option<usize>)>;

/// Routes: the router's radix tree, each route's upstream, and backend URI templates.
pub(super) fn compile_routes(
    file: &model::File,
    by_name: &HashMap<String, usize>,
    base: &Path,
    c: &mut Collector<'_>,
) -> (Vec<Route>, Router) {
    let (server_defaults, host_defaults) = compile_defaults(file, base, c);
    let entries = router_entries(file);
    let specs: Vec<RouteSpec> = entries
        .iter()
        .map(|&(i, j)| {
            let r = &file.route[i];
            RouteSpec {
                path: r.path.get_ref().clone(),
                methods: r.methods.get_ref().clone(),
                host: match (j, &r.host) {
                    (_, Some(h)) => Some(h.get_ref().clone()),
                    (Some(j), None) => Some(file.host[j].name.get_ref().clone()),
                    (None, None) => None,
                },
            }
        })
        .collect();
    let router = compile_router(file, &entries, &specs, c);
    let mut routes = Vec::new();
    for (k, &(i, j)) in entries.iter().enumerate() {
        let r = &file.route[i];
        // A host's copy of a route reports nothing: the route itself already did.
        let copy = k >= file.route.len();
        let mut sink = Collector::new(c.source);
        let c: &mut Collector<'_> = if copy { &mut sink } else { &mut *c };
        let key = |k: &str| format!("route[{i}].{k}");
        if !copy {
            for p in crate::policy::check_disable(&r.disable) {
                c.at(p.span, key(&p.key), p.message);
            }
        }
        let inherited = j
            .map_or(server_defaults, |j| host_defaults[j])
            .without(&r.disable);
        let params: Vec<&str> = router
            .as_ref()
            .map(|rt| rt.route_params(k).collect())
            .unwrap_or_default();
        // Shared limit state (throttle buckets) is kept across reloads under this name.
        let identity = format!(
            "{}|{:?}|{}",
            r.host.as_ref().map_or("", |h| h.get_ref().as_str()),
            r.methods.get_ref(),
            r.path.get_ref()
        );
        let cx = crate::policy::Compile {
            base,
            params: &params,
            route: &identity,
        };
        let (policies, problems) =
            crate::policy::Chain::compile(r.policy_tables().over(inherited), &cx);
        for p in problems {
            c.at(p.span, key(&p.key), p.message);
        }
        let target = compile_target(r, &params, router.is_some(), by_name, &key, c);
        let upstream_method = r.upstream_method.as_ref().and_then(|m| {
            let text = m.get_ref();
            let token = !text.is_empty()
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            match text.as_str() {
                _ if !token => c.at(
                    m.span(),
                    key("upstream_method"),
                    format!("{text:?} is not an HTTP method"),
                ),
                "HEAD" | "CONNECT" => c.at(
                    m.span(),
                    key("upstream_method"),
                    format!(
                        "{text} cannot replace the client's method (its response framing differs)"
                    ),
                ),
                _ => return Some(text.as_bytes().into()),
            }
            None
        });
        routes.push(Route {
            path: r.path.get_ref().clone(),
            label: route_label(r, &specs[k]),
            upstream: target.upstream.unwrap_or(0),
            template: target.template,
            uri_text: r.uri.as_ref().map(|u| u.get_ref().clone()),
            preserve_host: r.preserve_host,
            upstream_method,
            websocket: r.websocket,
            policies,
        });
    }
    let router =
        router.unwrap_or_else(|| Router::compile(&[], None).expect("an empty table compiles"));
    (routes, router)
}

/// Inherited policies: `[server]`, then each `[[host]]` block over it.
fn compile_defaults<'f>(
    file: &'f model::File,
    base: &Path,
    c: &mut Collector<'_>,
) -> (Defaults<'f>, Vec<Defaults<'f>>) {
    let (server_defaults, problems) = file.server.policy_tables().checked(base);
    for p in problems {
        c.at(p.span, format!("server.{}", p.key), p.message);
    }
    let mut host_defaults = Vec::new();
    for (j, h) in file.host.iter().enumerate() {
        let (own, mut problems) = h.policy_tables().checked(base);
        problems.extend(crate::policy::check_disable(&h.disable));
        for p in problems {
            c.at(p.span, format!("host[{j}].{}", p.key), p.message);
        }
        if file.host[..j]
            .iter()
            .any(|o| o.name.get_ref().eq_ignore_ascii_case(h.name.get_ref()))
        {
            c.at(
                h.name.span(),
                format!("host[{j}].name"),
                format!("host {:?} has two [[host]] blocks", h.name.get_ref()),
            );
        }
        host_defaults.push(own.over(server_defaults.without(&h.disable)));
    }
    (server_defaults, host_defaults)
}

fn router_entries(file: &model::File) -> Entries {
    let host_block = |name: Option<&String>| {
        let name = name?;
        file.host
            .iter()
            .position(|h| h.name.get_ref().eq_ignore_ascii_case(name))
    };
    let mut entries: Entries = (0..file.route.len())
        .map(|i| {
            (
                i,
                host_block(file.route[i].host.as_ref().map(|h| h.get_ref())),
            )
        })
        .collect();
    for (j, h) in file.host.iter().enumerate() {
        let claimed = file.route.iter().any(|r| {
            r.host
                .as_ref()
                .is_some_and(|rh| rh.get_ref().eq_ignore_ascii_case(h.name.get_ref()))
        });
        if !claimed {
            entries.extend(
                (0..file.route.len())
                    .filter(|&i| file.route[i].host.is_none())
                    .map(|i| (i, Some(j))),
            );
        }
    }
    entries
}

/// The radix tree; a conflict is reported against the route (or host block) that caused it.
fn compile_router(
    file: &model::File,
    entries: &Entries,
    specs: &[RouteSpec],
    c: &mut Collector<'_>,
) -> Option<Router> {
    let stage = file.server.stage.as_ref();
    let e = match Router::compile(specs, stage.map(|s| s.get_ref().as_str())) {
        Ok(r) => return Some(r),
        Err(e) => e,
    };
    match (e.route(), stage) {
        (Some(k), _) if k >= file.route.len() => {
            let (i, j) = entries[k];
            let j = j.expect("a copy has a host block");
            c.at(
                file.host[j].name.span(),
                format!("host[{j}].name"),
                format!("route[{i}] under this host: {e}"),
            );
        }
        (Some(i), _) => {
            let r = &file.route[i];
            let (span, key) = match e.kind() {
                ringway_router::RouteErrorKind::Method => (r.methods.span(), "methods"),
                ringway_router::RouteErrorKind::Host => {
                    (r.host.as_ref().map_or(r.path.span(), |h| h.span()), "host")
                }
                _ => (r.path.span(), "path"),
            };
            c.at(span, format!("route[{i}].{key}"), e.to_string());
        }
        (None, Some(s)) => c.at(s.span(), "server.stage", e.to_string()),
        (None, None) => c.global("route", e.to_string()),
    }
    None
}

/// Where a route sends its requests.
struct RouteTarget {
    upstream: Option<usize>,
    template: Option<UriTemplate>,
}

/// A route's `upstream` or `uri` (whose authority names an upstream); a
/// `[route.mock]` needs neither.
fn compile_target(
    r: &model::Route,
    params: &[&str],
    routed: bool,
    by_name: &HashMap<String, usize>,
    key: &dyn Fn(&str) -> String,
    c: &mut Collector<'_>,
) -> RouteTarget {
    let mut target = RouteTarget {
        upstream: None,
        template: None,
    };
    let known = || {
        let mut known: Vec<_> = by_name.keys().cloned().collect();
        known.sort();
        known
    };
    match (&r.upstream, &r.uri) {
        // A mock route answers by itself: it needs no upstream.
        (None, None) if r.mock.is_some() => {}
        (Some(_), Some(uri)) => c.at(
            uri.span(),
            key("uri"),
            "give either `upstream` or `uri`, not both",
        ),
        (None, None) => c.at(
            r.path.span(),
            key("upstream"),
            "a route needs an `upstream`, a `uri` or a `[route.mock]`",
        ),
        (Some(name), None) => match by_name.get(name.get_ref()) {
            Some(&u) => target.upstream = Some(u),
            None => c.at(
                name.span(),
                key("upstream"),
                format!(
                    "no [[upstream]] is named {:?} (defined: {:?})",
                    name.get_ref(),
                    known()
                ),
            ),
        },
        (None, Some(uri)) => match UriTemplate::parse(uri.get_ref(), params) {
            Err(e) if routed => c.at(uri.span(), key("uri"), e.to_string()),
            Err(_) => {}
            Ok(t) => {
                if t.scheme() != "http" {
                    c.at(
                        uri.span(),
                        key("uri"),
                        format!("scheme {:?} is not supported (use http://)", t.scheme()),
                    );
                }
                match by_name.get(t.authority()) {
                    Some(&u) => target.upstream = Some(u),
                    None => c.at(
                        uri.span(),
                        key("uri"),
                        format!(
                            "the authority {:?} names no [[upstream]] (defined: {:?})",
                            t.authority(),
                            known()
                        ),
                    ),
                }
                target.template = Some(t);
            }
        },
    }
    target
}

/// `host/path METHODS`, as `ringway check` and the metrics name a route.
fn route_label(r: &model::Route, spec: &RouteSpec) -> String {
    let mut l = spec.host.clone().unwrap_or_default();
    l.push_str(r.path.get_ref());
    let methods = r.methods.get_ref();
    if !(methods.len() == 1 && methods[0].eq_ignore_ascii_case("ANY")) {
        l.push(' ');
        l.push_str(&methods.join(","));
    }
    l
}
