//! Configuration: the TOML file model, its compiler into a [`Snapshot`], and
//! errors that name file, line, column and key.
//!
//! Pipeline: text → [`model::File`] (serde, unknown keys rejected) →
//! [`compile`] (cross-checks, address resolution, limits) → `Snapshot`.

pub mod error;
pub mod model;
pub mod units;

use crate::h1::Limits;
use crate::h1::limits::{MAX_HEAD_BYTES_CEILING, MAX_HEADERS_CEILING};
use crate::snapshot::{
    DriverChoice, ProxyVersion, Route, Snapshot, Target, Timeouts, Upstream, UpstreamTls,
};
use error::Collector;
pub use error::ConfigError;
use model::Pin;
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;

/// Reads, parses and compiles a config file.
pub fn load(path: &Path) -> Result<Snapshot, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::io(path, e))?;
    from_str(path, &text)
}

/// Parses and compiles config text; `path` is only used to name the file in errors.
pub fn from_str(path: &Path, text: &str) -> Result<Snapshot, ConfigError> {
    let mut c = Collector::new(text);
    let file: model::File = match toml::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            c.toml(&e);
            return c
                .finish(path, model::File::default())
                .map(|_| unreachable!());
        }
    };
    let snapshot = compile(path, file, &mut c);
    c.finish(path, snapshot)
}

/// `[[usage_plan]]`, `[[api_key]]` and the keys of `server.api_keys_file`,
/// whose problems are reported against that file's own lines.
fn compile_api_keys(
    file: &model::File,
    base: &Path,
    c: &mut Collector<'_>,
) -> crate::policy::api_key::Keys {
    let keys_file = file.server.api_keys_file.as_ref().and_then(|name| {
        let path = base.join(name.get_ref());
        match std::fs::read_to_string(&path) {
            Ok(text) => Some((path, text)),
            Err(e) => {
                c.at(
                    name.span(),
                    "server.api_keys_file",
                    format!("cannot read {}: {e}", path.display()),
                );
                None
            }
        }
    });
    let mut kc = keys_file.as_ref().map(|(_, text)| Collector::new(text));
    let extra: Option<model::KeysFile> = match (&keys_file, &mut kc) {
        (Some((_, text)), Some(kc)) => match toml::from_str(text) {
            Ok(f) => Some(f),
            Err(e) => {
                kc.toml(&e);
                None
            }
        },
        _ => None,
    };
    let mut sources: Vec<&[model::ApiKey]> = vec![&file.api_key];
    if let Some(extra) = &extra {
        sources.push(&extra.api_key);
    }
    let (keys, problems) = crate::policy::api_key::compile_keys(&file.usage_plan, &sources);
    for (src, p) in problems {
        match (src, &mut kc) {
            (1, Some(kc)) => kc.at(p.span, p.key, p.message),
            _ => c.at(p.span, p.key, p.message),
        }
    }
    if let (Some((path, _)), Some(kc)) = (&keys_file, kc) {
        c.absorb(path, kc);
    }
    keys
}

fn compile(path: &Path, file: model::File, c: &mut Collector<'_>) -> Snapshot {
    let s = &file.server;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut listen = Vec::new();
    let mut listen_tls = Vec::new();
    let mut listen_proxy = Vec::new();
    for (i, l) in s.listen.iter().enumerate() {
        let (addr, tls, proxy) = match l.get_ref() {
            model::Listen::Addr(a) => (a.as_str(), None, None),
            model::Listen::Table(t) => (t.addr.as_str(), t.tls.as_ref(), t.proxy_protocol.as_ref()),
        };
        match resolve_one(addr) {
            Ok(a) if a.port() != 0 && listen.contains(&a) => c.at(
                l.span(),
                format!("server.listen[{i}]"),
                format!("{a} is listed twice"),
            ),
            Ok(a) => {
                listen.push(a);
                listen_proxy.push(match proxy {
                    None => false,
                    Some(toml::Value::Boolean(b)) => *b,
                    Some(other) => {
                        let (key, found) = (
                            format!("server.listen[{i}].proxy_protocol"),
                            other.type_str(),
                        );
                        c.at(
                            l.span(),
                            key,
                            format!("expected true or false, found {other} ({found})"),
                        );
                        false
                    }
                });
                listen_tls.push(tls.and_then(|t| compile_server_tls(t, base, l.span(), i, c)));
            }
            Err(m) => c.at(l.span(), format!("server.listen[{i}]"), m),
        }
    }
    if s.listen.is_empty() {
        c.global("server.listen", "at least one listen address is needed");
    }
    let admin = s
        .admin
        .as_ref()
        .and_then(|a| match resolve_one(a.listen.get_ref()) {
            Ok(addr) if addr.port() != 0 && listen.contains(&addr) => {
                c.at(
                    a.listen.span(),
                    "server.admin.listen",
                    "the admin listener must not be a public listen address",
                );
                None
            }
            Ok(addr) => Some(addr),
            Err(m) => {
                c.at(a.listen.span(), "server.admin.listen", m);
                None
            }
        });
    let access_log = s.access_log.as_ref().and_then(|a| {
        use crate::observe::access_log::{Destination, Format};
        let format = match &a.format {
            None => Format::Combined,
            Some(f) => match Format::parse(f.get_ref()) {
                Ok(f) => f,
                Err(m) => {
                    c.at(f.span(), "server.access_log.format", m);
                    return None;
                }
            },
        };
        let dest = match a.path.get_ref().as_str() {
            "stdout" | "-" => Destination::Stdout,
            p => Destination::File(base.join(p)),
        };
        Some((format, dest))
    });
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = match *s.workers.get_ref() {
        0 => cores,
        n if n > 1024 => {
            c.at(
                s.workers.span(),
                "server.workers",
                "more than 1024 workers is surely a mistake",
            );
            n
        }
        n => n,
    };
    if let Pin::Cpus(cpus) = s.pin.get_ref() {
        let known: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .iter()
            .map(|c| c.id)
            .collect();
        for cpu in cpus {
            if !known.contains(cpu) {
                c.at(
                    s.pin.span(),
                    "server.pin",
                    format!("CPU {cpu} is not available to this process (available: {known:?})"),
                );
            }
        }
    }
    let driver = match s.driver.get_ref().as_deref() {
        None | Some("auto") => DriverChoice::Auto,
        Some("io_uring") => DriverChoice::IoUring,
        Some("epoll") => DriverChoice::Epoll,
        Some(other) => {
            c.at(
                s.driver.span(),
                "server.driver",
                format!("unknown driver {other:?}: use \"auto\", \"io_uring\" or \"epoll\""),
            );
            DriverChoice::Auto
        }
    };
    if *s.backlog.get_ref() == 0 {
        c.at(
            s.backlog.span(),
            "server.backlog",
            "the backlog must be at least 1",
        );
    }
    let limits = compile_limits(&s.limits, c);

    let mut upstreams = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut target_count = 0;
    for (i, u) in file.upstream.iter().enumerate() {
        let key = |k: &str| format!("upstream[{i}].{k}");
        let name = u.name.get_ref().clone();
        if name.is_empty() {
            c.at(
                u.name.span(),
                key("name"),
                "an upstream needs a non-empty name",
            );
        }
        if by_name.insert(name.clone(), upstreams.len()).is_some() {
            c.at(
                u.name.span(),
                key("name"),
                format!("upstream {name:?} is defined twice"),
            );
        }
        let mut targets = Vec::new();
        for t in u.targets.get_ref() {
            let text = t.get_ref().as_str();
            let (hostport, tls) = if let Some(rest) = text.strip_prefix("http://") {
                (rest.trim_end_matches('/'), false)
            } else if let Some(rest) = text.strip_prefix("https://") {
                (rest.trim_end_matches('/'), true)
            } else {
                (text, false)
            };
            match resolve_one(hostport) {
                Ok(addr) => {
                    targets.push(Target {
                        id: target_count,
                        addr,
                        authority: hostport.to_string(),
                        tls,
                    });
                    target_count += 1;
                }
                Err(m) => c.at(t.span(), key("targets"), m),
            }
        }
        let tls = if targets.iter().any(|t| t.tls) || u.tls.is_some() {
            compile_upstream_tls(u.tls.as_ref(), base, &key("tls"), u.targets.span(), c)
        } else {
            None
        };
        if u.targets.get_ref().is_empty() {
            c.at(
                u.targets.span(),
                key("targets"),
                "an upstream needs at least one target",
            );
        }
        upstreams.push(Upstream {
            name,
            targets,
            connect_timeout: u.connect_timeout.0,
            response_timeout: u.response_timeout.0,
            max_idle_per_target: u.max_idle_per_target,
            idle_timeout: u.idle_timeout.0,
            tls,
            send_proxy: u
                .send_proxy_protocol
                .as_ref()
                .and_then(|v| match v.get_ref().as_str() {
                    "v1" => Some(ProxyVersion::V1),
                    "v2" => Some(ProxyVersion::V2),
                    other => {
                        let m = format!(
                            "unknown PROXY protocol version {other:?}: expected \"v1\" or \"v2\""
                        );
                        c.at(v.span(), key("send_proxy_protocol"), m);
                        None
                    }
                }),
        });
    }

    let (routes, router) = compile_routes(&file, &by_name, base, c);
    let trusted_proxies =
        crate::policy::ip::CidrSet::parse(&s.trusted_proxies, "server.trusted_proxies")
            .unwrap_or_else(|p| {
                c.at(p.span, p.key, p.message);
                Default::default()
            });
    let api_keys = compile_api_keys(&file, base, c);
    let request_id = compile_request_id(s.request_id.as_ref(), c);
    let (gateway_responses, problems) = crate::policy::responses::compile(&file.gateway_responses);
    for p in problems {
        c.at(p.span, p.key, p.message);
    }
    Snapshot {
        source: path.to_path_buf(),
        generation: 0,
        listen,
        listen_tls,
        listen_proxy,
        admin,
        access_log,
        workers,
        pin: s.pin.get_ref().clone(),
        max_connections: s.max_connections.max(1),
        shutdown_timeout: s.shutdown_timeout.0,
        backlog: *s.backlog.get_ref(),
        splice_threshold: s.splice_threshold.0,
        driver,
        limits,
        timeouts: Timeouts {
            header_read: s.timeouts.header_read.0,
            keepalive_idle: s.timeouts.keepalive_idle.0,
            body_idle: s.timeouts.body_idle.0,
            tunnel_idle: s.timeouts.tunnel_idle.0,
        },
        upstreams,
        routes,
        router,
        trusted_proxies,
        api_keys,
        request_id,
        gateway_responses,
        target_count,
        #[cfg(feature = "fault-injection")]
        fault_panic_path: std::env::var_os("RINGWAY_FAULT_PANIC_PATH")
            .map(|p| p.into_encoded_bytes()),
    }
}

/// `[server] request_id`: the header carrying request ids (default `x-request-id`).
fn compile_request_id(
    t: Option<&toml::Spanned<model::RequestId>>,
    c: &mut Collector<'_>,
) -> Option<Box<[u8]>> {
    let Some(t) = t else {
        return Some(Box::from(&b"x-request-id"[..]));
    };
    let name = match t.get_ref() {
        model::RequestId::On(false) => return None,
        model::RequestId::On(true) => "x-request-id",
        model::RequestId::Name(n) => n.as_str(),
    };
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    let reserved = crate::h1::header::classify(name.as_bytes()) != crate::h1::header::Kind::Other;
    if !token || reserved {
        c.at(
            t.span(),
            "server.request_id",
            format!(
                "{name:?} cannot carry request ids: give a plain header name such as \"x-request-id\" (or false)"
            ),
        );
        return None;
    }
    Some(Box::from(name.as_bytes()))
}

/// Loads a TLS listener's certificates now, so a bad file is a config error naming it.
fn compile_server_tls(
    t: &model::ServerTls,
    base: &Path,
    span: std::ops::Range<usize>,
    i: usize,
    c: &mut Collector<'_>,
) -> Option<Arc<ringway_tls::ServerTls>> {
    let key = format!("server.listen[{i}].tls");
    let mut specs = Vec::new();
    match (&t.cert, &t.key) {
        (Some(cert), Some(k)) => {
            specs.push(ringway_tls::CertSpec::new(base.join(cert), base.join(k)))
        }
        (None, None) => {}
        _ => c.at(span.clone(), key.clone(), "give both `cert` and `key`"),
    }
    specs.extend(
        t.certs
            .iter()
            .map(|p| ringway_tls::CertSpec::new(base.join(&p.cert), base.join(&p.key))),
    );
    if specs.is_empty() {
        c.at(
            span,
            key,
            "a TLS listener needs `cert` and `key`, or `certs = [{ cert, key }, ...]`",
        );
        return None;
    }
    let ca = t.client_ca.as_ref().map(|p| base.join(p));
    match ringway_tls::ServerTls::load(&specs, ca.as_deref()) {
        Ok(tls) => Some(Arc::new(tls)),
        Err(e) => {
            c.at(span, key, e.to_string());
            None
        }
    }
}

/// The TLS client config of an upstream with `https://` targets.
fn compile_upstream_tls(
    t: Option<&toml::Spanned<model::UpstreamTls>>,
    base: &Path,
    key: &str,
    targets_span: std::ops::Range<usize>,
    c: &mut Collector<'_>,
) -> Option<UpstreamTls> {
    let span = t.map_or(targets_span, |t| t.span());
    let t = t.map(|t| t.get_ref());
    let ca = t.and_then(|t| t.ca.as_ref()).map(|p| base.join(p));
    let client = match (
        t.and_then(|t| t.client_cert.as_ref()),
        t.and_then(|t| t.client_key.as_ref()),
    ) {
        (Some(cert), Some(k)) => Some(ringway_tls::CertSpec::new(base.join(cert), base.join(k))),
        (None, None) => None,
        _ => {
            c.at(span, key, "give both `client_cert` and `client_key`");
            return None;
        }
    };
    match ringway_tls::client_config(ca.as_deref(), client.as_ref()) {
        Ok(config) => Some(UpstreamTls {
            config,
            server_name: t.and_then(|t| t.server_name.clone()),
        }),
        Err(e) => {
            c.at(span, key, e.to_string());
            None
        }
    }
}

/// Routes: the router's radix tree, each route's upstream, and backend URI templates.
fn compile_routes(
    file: &model::File,
    by_name: &HashMap<String, usize>,
    base: &Path,
    c: &mut Collector<'_>,
) -> (Vec<Route>, ringway_router::Router) {
    use ringway_router::{RouteSpec, Router, UriTemplate};
    let stage = file.server.stage.as_ref();
    // Inherited policies: `[server]`, then each `[[host]]` block over it.
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
    let host_block = |name: Option<&String>| {
        let name = name?;
        file.host
            .iter()
            .position(|h| h.name.get_ref().eq_ignore_ascii_case(name))
    };
    // What the router serves: each route as written, then, for every
    // `[[host]]` no route names, the host-less routes again under that host
    // (so its policies apply to its requests). (route, host block) pairs.
    let mut entries: Vec<(usize, Option<usize>)> = (0..file.route.len())
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
    let router = match Router::compile(&specs, stage.map(|s| s.get_ref().as_str())) {
        Ok(r) => Some(r),
        Err(e) => {
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
    };
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
        let mut upstream = None;
        let mut template = None;
        let params: Vec<&str> = router
            .as_ref()
            .map(|rt| rt.route_params(k).collect())
            .unwrap_or_default();
        let cx = crate::policy::Compile {
            base,
            params: &params,
        };
        let (policies, problems) =
            crate::policy::Chain::compile(r.policy_tables().over(inherited), &cx);
        for p in problems {
            c.at(p.span, key(&p.key), p.message);
        }
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
                Some(&u) => upstream = Some(u),
                None => {
                    let mut known: Vec<_> = by_name.keys().cloned().collect();
                    known.sort();
                    c.at(
                        name.span(),
                        key("upstream"),
                        format!(
                            "no [[upstream]] is named {:?} (defined: {known:?})",
                            name.get_ref()
                        ),
                    );
                }
            },
            (None, Some(uri)) => {
                let params: Vec<&str> = router
                    .as_ref()
                    .map(|rt| rt.route_params(k).collect())
                    .unwrap_or_default();
                match UriTemplate::parse(uri.get_ref(), &params) {
                    Err(e) if router.is_some() => c.at(uri.span(), key("uri"), e.to_string()),
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
                            Some(&u) => upstream = Some(u),
                            None => {
                                let mut known: Vec<_> = by_name.keys().cloned().collect();
                                known.sort();
                                c.at(
                                    uri.span(),
                                    key("uri"),
                                    format!("the authority {:?} names no [[upstream]] (defined: {known:?})", t.authority()),
                                );
                            }
                        }
                        template = Some(t);
                    }
                }
            }
        }
        let label = {
            let mut l = specs[k].host.clone().unwrap_or_default();
            l.push_str(r.path.get_ref());
            let methods = r.methods.get_ref();
            if !(methods.len() == 1 && methods[0].eq_ignore_ascii_case("ANY")) {
                l.push(' ');
                l.push_str(&methods.join(","));
            }
            l
        };
        routes.push(Route {
            path: r.path.get_ref().clone(),
            label,
            upstream: upstream.unwrap_or(0),
            template,
            uri_text: r.uri.as_ref().map(|u| u.get_ref().clone()),
            preserve_host: r.preserve_host,
            websocket: r.websocket,
            policies,
        });
    }
    let router =
        router.unwrap_or_else(|| Router::compile(&[], None).expect("an empty table compiles"));
    (routes, router)
}

fn compile_limits(l: &model::Limits, c: &mut Collector<'_>) -> Limits {
    let head = l.max_head_bytes.get_ref().0;
    if !(1024..=MAX_HEAD_BYTES_CEILING as u64).contains(&head) {
        c.at(
            l.max_head_bytes.span(),
            "server.limits.max_head_bytes",
            format!("must be between 1024 and {MAX_HEAD_BYTES_CEILING} bytes"),
        );
    }
    let headers = *l.max_headers.get_ref();
    if !(1..=MAX_HEADERS_CEILING).contains(&headers) {
        c.at(
            l.max_headers.span(),
            "server.limits.max_headers",
            format!("must be between 1 and {MAX_HEADERS_CEILING}"),
        );
    }
    let uri = l.max_uri_bytes.get_ref().0;
    if uri < 16 || uri > head {
        c.at(
            l.max_uri_bytes.span(),
            "server.limits.max_uri_bytes",
            "must be at least 16 and at most max_head_bytes",
        );
    }
    Limits {
        max_head_bytes: head as usize,
        max_headers: headers,
        max_uri_bytes: uri as usize,
    }
}

/// `127.0.0.1:80`, `[::1]:80`, or `name:80` resolved now (first address).
fn resolve_one(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if !s.contains(':') {
        return Err(format!("{s:?} needs a port (host:port)"));
    }
    match s.to_socket_addrs() {
        Ok(mut it) => it
            .next()
            .ok_or_else(|| format!("{s:?} resolves to no address")),
        Err(e) => Err(format!("cannot resolve {s:?}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> String {
        match from_str(Path::new("t.toml"), text) {
            Ok(_) => panic!("expected errors for:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn minimal_issue_config_compiles() {
        let text = "[server]\nlisten = [\"127.0.0.1:8080\"]\nworkers = 2\npin = false\n\n[[upstream]]\nname = \"app\"\ntargets = [\"127.0.0.1:9000\"]\n\n[[route]]\npath = \"/\"\nupstream = \"app\"\n";
        let s = from_str(Path::new("t.toml"), text).unwrap();
        assert_eq!(s.workers, 2);
        assert_eq!(s.routes.len(), 1);
        assert_eq!(
            s.upstreams[0].targets[0].addr,
            "127.0.0.1:9000".parse().unwrap()
        );
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = errors("[server]\nlisten = [\"127.0.0.1:1\"]\nworkerz = 2\n");
        assert!(e.starts_with("t.toml:3:1: key `"), "{e}");
        assert!(e.contains("workerz"), "{e}");
    }

    #[test]
    fn bad_value_names_key() {
        let e = errors("[server.timeouts]\nheader_read = \"ten\"\n");
        assert!(e.contains("t.toml:2:"), "{e}");
        assert!(e.contains("header_read"), "{e}");
    }

    #[test]
    fn semantic_errors_all_reported() {
        let e = errors(
            "[[upstream]]\nname = \"app\"\ntargets = [\"nope\"]\n\n[[route]]\npath = \"x\"\nupstream = \"other\"\n",
        );
        assert!(e.contains("t.toml:3:12: key `upstream[0].targets`"), "{e}");
        assert!(e.contains("t.toml:6:8: key `route[0].path`"), "{e}");
        assert!(e.contains("t.toml:7:12: key `route[0].upstream`"), "{e}");
    }
}
