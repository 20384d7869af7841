//! `x-amazon-apigateway-integration`: an `http_proxy` / `http` integration →
//! the route's backend URI template (whose authority names an upstream) and
//! its parameter mapping; a `mock` integration → `[route.mock]`; the
//! upstreams made for integration hosts no `[[openapi]] upstreams` entry maps.

use super::import::{Importer, Operation, literal};
use super::tree::Node;
use crate::config::model;
use crate::config::units::Dur;
use std::collections::BTreeMap;
use std::net::ToSocketAddrs;
use std::ops::Range;
use toml::Spanned;

/// The address an unresolvable integration host gets until it resolves:
/// connecting to port 0 is refused at once, so its routes answer 502.
pub const UNRESOLVED: &str = "127.0.0.1:0";

/// How often an integration host that did not resolve is looked up again,
/// unless its `[[openapi]]` table says (`resolve_interval`).
const RESOLVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// `30s`, `250ms`.
fn humantime(d: std::time::Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Upstreams made for integration hosts, shared by every imported document.
pub struct Upstreams {
    pub list: Vec<model::Upstream>,
    /// Per upstream in `list`: what it was made for.
    made: Vec<Made>,
    /// Names taken (the TOML's `[[upstream]]`s and those made).
    taken: Vec<String>,
    /// The TOML's `[[upstream]]` names: an integration host spelled as one goes to it.
    declared: Vec<String>,
    /// Whether host names are looked up (else only IP addresses resolve).
    resolve: bool,
}

#[derive(PartialEq)]
struct Made {
    target: String,
    timeout_ms: Option<u64>,
    server_name: Option<String>,
}

impl Upstreams {
    pub fn new(taken: Vec<String>, resolve: bool) -> Self {
        Upstreams {
            list: Vec::new(),
            made: Vec::new(),
            declared: taken.clone(),
            taken,
            resolve,
        }
    }
}

/// Where a proxied route sends its requests.
pub struct HttpTarget {
    pub uri: Spanned<String>,
    pub mapping: Option<Spanned<model::Mapping>>,
    /// A fixed `httpMethod` other than the operation's (`upstream_method`).
    pub method: Option<Spanned<String>>,
}

/// An `http_proxy` (or `http`) integration.
pub fn http(
    im: &mut Importer<'_>,
    integ: &Node,
    at: &Operation<'_>,
    params: &[String],
) -> Option<HttpTarget> {
    let Some(uri_node) = integ.get("uri") else {
        im.error(integ, "an http integration needs a `uri`");
        return None;
    };
    let Some(raw) = uri_node.as_str() else {
        im.error(uri_node, "`uri` must be a string");
        return None;
    };
    if let Some(ct) = integ.get("connectionType")
        && !ct
            .as_str()
            .is_some_and(|c| c.eq_ignore_ascii_case("INTERNET"))
    {
        im.unsupported(
            ct,
            "connectionType VPC_LINK is not supported: the operation is not served",
        );
        return None;
    }
    // A fixed method other than the operation's own is sent upstream
    // instead of the client's (HEAD requests stay HEAD).
    let mut method = None;
    if let Some(n) = integ.get("httpMethod")
        && let Some(m) = n.as_str()
        && !m.eq_ignore_ascii_case("ANY")
        && !m.eq_ignore_ascii_case(&at.method)
    {
        let m = m.to_ascii_uppercase();
        if m == "HEAD" || m == "CONNECT" {
            im.unsupported(
                n,
                format!("httpMethod {m}: ringway cannot send every request as {m}; the client's method is forwarded"),
            );
        } else {
            method = Some(im.spanned(n, m));
        }
    }
    let uri = stage_variables(im, uri_node, raw)?;
    let (https, rest) = if let Some(r) = strip_prefix_ci(&uri, "http://") {
        (false, r)
    } else if let Some(r) = strip_prefix_ci(&uri, "https://") {
        (true, r)
    } else {
        im.error(
            uri_node,
            format!("uri {uri:?} must start with http:// or https://"),
        );
        return None;
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_query) = rest.split_at(split);
    if authority.is_empty() {
        im.error(uri_node, format!("uri {uri:?} has no host"));
        return None;
    }
    let (path_values, mapping) = parameters(im, integ, params);
    let path_query = placeholders(im, uri_node, path_query, &path_values, params)?;
    let name = upstream_for(im, integ, uri_node, https, authority)?;
    let path_query = if path_query.starts_with('/') {
        path_query
    } else {
        format!("/{path_query}")
    };
    Some(HttpTarget {
        uri: im.spanned(uri_node, format!("http://{name}{path_query}")),
        mapping,
        method,
    })
}

fn strip_prefix_ci<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `${stageVariables.NAME}` replaced by the `[[openapi]] stage_variables` value.
fn stage_variables(im: &mut Importer<'_>, n: &Node, text: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find("${stageVariables.") {
        out.push_str(&rest[..open]);
        let after = &rest[open + "${stageVariables.".len()..];
        let Some(close) = after.find('}') else {
            im.error(n, "unclosed `${stageVariables.`");
            return None;
        };
        let name = &after[..close];
        match im
            .table
            .and_then(|t| t.stage_variables.get(name))
            .map(|v| v.get_ref().clone())
        {
            Some(v) => out.push_str(&v),
            None => {
                im.error(
                    n,
                    format!("stage variable {name:?} has no value: give it in `[[openapi]] stage_variables`"),
                );
                return None;
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// What `integration.request.path.X` says `{X}` of the URI is.
enum PathValue {
    /// A route parameter.
    Param(String),
    Literal(String),
}

/// `requestParameters` in both dialects: path values for the URI's
/// placeholders, and the header / query mapping (`[route.mapping]`).
fn parameters(
    im: &mut Importer<'_>,
    integ: &Node,
    params: &[String],
) -> (BTreeMap<String, PathValue>, Option<Spanned<model::Mapping>>) {
    let mut path = BTreeMap::new();
    let mut rules = BTreeMap::new();
    let Some(rp) = integ.get("requestParameters") else {
        return (path, None);
    };
    for e in rp.entries() {
        let n = &e.node;
        let Some(text) = n.as_str() else {
            im.error(n, "a request parameter's value must be a string");
            continue;
        };
        // The HTTP API dialect is ringway's own: keys pass through.
        if ["overwrite:", "append:", "remove:"]
            .iter()
            .any(|p| e.key.starts_with(p))
        {
            if let Some(v) = http_api_value(im, n, text) {
                rules.insert(e.key.clone(), v);
            }
            continue;
        }
        let Some((place, name)) = e
            .key
            .strip_prefix("integration.request.")
            .and_then(|k| k.split_once('.'))
        else {
            im.unsupported(n, format!("request parameter `{}` is not supported", e.key));
            continue;
        };
        let Some(value) = rest_value(im, n, text) else {
            continue;
        };
        match place {
            "path" => {
                let v = match value.strip_prefix("$request.path.") {
                    Some(p) if params.iter().any(|q| q == p) => PathValue::Param(p.to_string()),
                    Some(p) => {
                        im.error(
                            n,
                            format!("method.request.path.{p} is not a parameter of this path"),
                        );
                        continue;
                    }
                    None if !value.starts_with('$') => PathValue::Literal(value),
                    None => {
                        im.unsupported(
                            n,
                            "a path parameter from a header, query or context value is not supported",
                        );
                        continue;
                    }
                };
                path.insert(name.to_string(), v);
            }
            "querystring" | "header" => {
                rules.insert(format!("overwrite:{place}.{name}"), value);
            }
            _ => im.unsupported(n, format!("request parameter `{}` is not supported", e.key)),
        }
    }
    let mapping = (!rules.is_empty()).then(|| {
        im.spanned(
            rp,
            model::Mapping {
                request: Some(im.spanned(rp, rules)),
                response: None,
            },
        )
    });
    (path, mapping)
}

/// A REST API mapping expression → a ringway mapping value.
fn rest_value(im: &mut Importer<'_>, n: &Node, text: &str) -> Option<String> {
    if let Some(l) = literal(n) {
        return Some(l);
    }
    for place in ["path", "querystring", "header"] {
        if let Some(name) = text.strip_prefix(&format!("method.request.{place}.")) {
            return Some(format!("$request.{place}.{name}"));
        }
    }
    match text {
        "context.requestId" => return Some("$context.requestId".into()),
        "context.identity.sourceIp" => return Some("$context.identity.sourceIp".into()),
        _ => {}
    }
    if let Some(v) = text.strip_prefix("stageVariables.") {
        return stage_variables(im, n, &format!("${{stageVariables.{v}}}"));
    }
    im.unsupported(
        n,
        format!("mapping expression {text:?} is not supported (method.request.path/querystring/header.NAME, 'literal', context.requestId, context.identity.sourceIp, stageVariables.NAME are)"),
    );
    None
}

/// An HTTP API mapping value: ringway's own syntax, stage variables replaced.
fn http_api_value(im: &mut Importer<'_>, n: &Node, text: &str) -> Option<String> {
    let text = text.replace("$stageVariables.", "${stageVariables.");
    // `$stageVariables.x` (no braces) became `${stageVariables.x`: close it at the name's end.
    let mut fixed = String::new();
    let mut rest = text.as_str();
    while let Some(open) = rest.find("${stageVariables.") {
        fixed.push_str(&rest[..open]);
        let after = &rest[open..];
        let name_end = after["${stageVariables.".len()..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(after.len(), |i| i + "${stageVariables.".len());
        fixed.push_str(&after[..name_end]);
        let tail = &after[name_end..];
        if let Some(t) = tail.strip_prefix('}') {
            fixed.push('}');
            rest = t;
        } else {
            fixed.push('}');
            rest = tail;
        }
    }
    fixed.push_str(rest);
    stage_variables(im, n, &fixed)
}

/// The URI's path and query with each `{X}` resolved: a route parameter
/// (through `integration.request.path.X`, or by its own name), or a literal.
fn placeholders(
    im: &mut Importer<'_>,
    n: &Node,
    text: &str,
    values: &BTreeMap<String, PathValue>,
    params: &[String],
) -> Option<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            im.error(n, "unclosed `{` in the uri");
            return None;
        };
        let name = rest[open + 1..open + close].trim_end_matches('+');
        match values.get(name) {
            Some(PathValue::Param(p)) => out.push_str(&format!("{{{p}}}")),
            Some(PathValue::Literal(l)) => out.push_str(l),
            None if params.iter().any(|p| p == name) => out.push_str(&format!("{{{name}}}")),
            None => {
                let defined = if params.is_empty() {
                    "none".to_string()
                } else {
                    params.join(", ")
                };
                im.error(
                    n,
                    format!("the uri uses {{{name}}}, which no integration.request.path.{name} maps and the path does not define (path parameters: {defined})"),
                );
                return None;
            }
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// The upstream an integration's authority goes to: the `[[openapi]]
/// upstreams` entry naming it, else one made for it.
fn upstream_for(
    im: &mut Importer<'_>,
    integ: &Node,
    uri: &Node,
    https: bool,
    authority: &str,
) -> Option<String> {
    let authority = authority.to_ascii_lowercase();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => match p.parse::<u16>() {
            Ok(p) => (h.to_string(), p),
            Err(_) => {
                im.error(uri, format!("port {p:?} is not a number"));
                return None;
            }
        },
        _ => (authority.clone(), if https { 443 } else { 80 }),
    };
    let timeout = integ.get("timeoutInMillis");
    let tls = integ.get("tlsConfig");
    let mapped = im
        .table
        .and_then(|t| {
            t.upstreams
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&authority) || k.eq_ignore_ascii_case(&host))
                .map(|(_, v)| v.get_ref().clone())
        })
        .or_else(|| {
            let declared = &im.upstreams.declared;
            declared
                .iter()
                .find(|d| d.eq_ignore_ascii_case(&authority))
                .cloned()
        });
    if let Some(name) = mapped {
        for n in [timeout, tls].into_iter().flatten() {
            im.unsupported(
                n,
                format!("the host is mapped to [[upstream]] {name:?}, whose own settings apply"),
            );
        }
        return Some(name);
    }
    let timeout_ms = match timeout {
        None => None,
        Some(t) => match t.as_f64() {
            Some(ms) if ms >= 1.0 => Some(ms as u64),
            _ => {
                im.error(t, "timeoutInMillis must be a positive number");
                return None;
            }
        },
    };
    let mut server_name = None;
    if let Some(t) = tls {
        if let Some(n) = t.get("serverNameToVerify") {
            server_name = n.as_str().map(str::to_string);
        }
        if let Some(n) = t.get("insecureSkipVerification")
            && n.as_bool() == Some(true)
        {
            im.unsupported(
                n,
                "insecureSkipVerification: ringway always verifies upstream certificates (give the CA in an [[upstream]] and map the host to it)",
            );
        }
    }
    let scheme = if https { "https" } else { "http" };
    let target = format!("{scheme}://{host}:{port}");
    let made = Made {
        target: target.clone(),
        timeout_ms,
        server_name: server_name.clone(),
    };
    let ups = &mut *im.upstreams;
    if let Some(i) = ups.made.iter().position(|m| *m == made) {
        return Some(ups.list[i].name.get_ref().clone());
    }
    let mut name = authority.clone();
    let mut k = 2;
    while ups.taken.contains(&name) {
        name = format!("{authority}~{k}");
        k += 1;
    }
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let resolves = if ups.resolve {
        format!("{host}:{port}")
            .to_socket_addrs()
            .is_ok_and(|mut a| a.next().is_some())
    } else {
        literal.parse::<std::net::IpAddr>().is_ok()
    };
    // Unresolved, the host stays the target (resolved again by the
    // upstreams thread) when names are looked up at all; else (the fuzz
    // entry) a placeholder that refuses.
    let written = if resolves || ups.resolve {
        target
    } else {
        format!("{scheme}://{UNRESOLVED}")
    };
    let every = im
        .table
        .and_then(|t| t.resolve_interval.as_ref())
        .map_or(RESOLVE_INTERVAL, |d| d.get_ref().0);
    let span = im.span(uri);
    if !resolves {
        im.notice(
            uri,
            format!(
                "host {host:?} does not resolve now: upstream {name:?} answers 502 until it does (resolved again every {})",
                humantime(every)
            ),
        );
    }
    let ups = &mut *im.upstreams;
    let mut upstream = made_upstream(&name, &written, span.clone(), timeout_ms, server_name)?;
    if !resolves && ups.resolve {
        upstream.unresolved_ok = true;
        upstream.resolve_interval = Some(Spanned::new(span, Dur(every)));
    }
    ups.taken.push(name.clone());
    ups.made.push(made);
    ups.list.push(upstream);
    Some(name)
}

/// An `[[upstream]]` as the TOML would say it, with the defaults.
fn made_upstream(
    name: &str,
    target: &str,
    span: Range<usize>,
    timeout_ms: Option<u64>,
    server_name: Option<String>,
) -> Option<model::Upstream> {
    // The defaults, as an empty `[[upstream]]` would get them.
    let mut u: model::Upstream = toml::from_str("name = \"\"\ntargets = []\n").ok()?;
    u.name = Spanned::new(span.clone(), name.to_string());
    u.targets = Spanned::new(
        span.clone(),
        vec![Spanned::new(
            span.clone(),
            model::TargetEntry {
                addr: target.to_string(),
                weight: None,
            },
        )],
    );
    if let Some(ms) = timeout_ms {
        u.response_timeout = Dur(std::time::Duration::from_millis(ms));
    }
    if server_name.is_some() {
        u.tls = Some(Spanned::new(
            span,
            model::UpstreamTls {
                ca: None,
                server_name,
                client_cert: None,
                client_key: None,
            },
        ));
    }
    Some(u)
}

/// A `mock` integration: the status its request template selects, and that
/// response's literal header fields and static body.
pub fn mock(im: &mut Importer<'_>, integ: &Node) -> Option<Spanned<model::Mock>> {
    let mut status = 200u16;
    if let Some(t) = integ.get("requestTemplates") {
        let body = t
            .get("application/json")
            .or(t.entries().first().map(|e| &e.node));
        if let Some(b) = body {
            let selected = b
                .as_str()
                .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                .and_then(|v| v.get("statusCode").and_then(|c| c.as_u64()));
            match selected {
                Some(s) if (100..=599).contains(&s) => status = s as u16,
                _ => {
                    im.unsupported(
                        b,
                        "the request template must be `{\"statusCode\": N}`: 200 is answered",
                    );
                }
            }
        }
    }
    let responses = integ.get("responses");
    let chosen = responses.and_then(|r| {
        r.entries()
            .iter()
            .find(|e| {
                e.node
                    .get("statusCode")
                    .and_then(Node::scalar_text)
                    .is_some_and(|c| c == status.to_string())
            })
            .or_else(|| r.entries().iter().find(|e| e.key == "default"))
    });
    let mut headers = BTreeMap::new();
    let mut body = None;
    let mut answer = status;
    if let Some(r) = chosen {
        if let Some(c) = r.node.get("statusCode") {
            match c.scalar_text().and_then(|c| c.parse::<u16>().ok()) {
                Some(c) => answer = c,
                None => im.error(c, "statusCode must be a status number"),
            }
        }
        for p in r
            .node
            .get("responseParameters")
            .map_or(&[][..], Node::entries)
        {
            match (
                p.key.strip_prefix("method.response.header."),
                literal(&p.node),
            ) {
                (Some(name), Some(v)) => {
                    headers.insert(name.to_string(), v);
                }
                _ => im.unsupported(
                    &p.node,
                    "only `method.response.header.NAME: \"'value'\"` (a literal) is supported",
                ),
            }
        }
        if let Some((media, text)) = im.template(r.node.get("responseTemplates"), false) {
            if !headers
                .keys()
                .any(|k| k.eq_ignore_ascii_case("content-type"))
            {
                headers.insert("Content-Type".into(), media);
            }
            body = Some(text);
        }
    }
    let status_span = chosen.map_or(integ, |r| r.node.get("statusCode").unwrap_or(&r.node));
    let status = im.spanned(status_span, answer);
    let headers = (!headers.is_empty()).then(|| im.spanned(integ, headers));
    Some(im.spanned(
        integ,
        model::Mock {
            status,
            headers,
            body,
        },
    ))
}
