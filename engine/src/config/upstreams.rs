//! `[[upstream]]`: targets resolved now, TLS client configs loaded now.

use super::error::Collector;
use super::model;
use crate::resilience::Resolved;
use crate::snapshot::{ProxyVersion, Target, Upstream, UpstreamTls};
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;

/// The upstream table, each name's index in it, and the number of targets.
pub(super) struct Upstreams {
    pub list: Vec<Upstream>,
    pub by_name: HashMap<String, usize>,
    pub target_count: usize,
}

/// Targets one upstream may have (every address of its names counted).
pub const MAX_TARGETS: usize = 64;

pub(super) fn compile_upstreams(
    file: &model::File,
    base: &Path,
    resolved: &Resolved,
    c: &mut Collector<'_>,
) -> Upstreams {
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
            let entry = t.get_ref();
            let text = entry.addr.as_str();
            let (hostport, tls) = if let Some(rest) = text.strip_prefix("http://") {
                (rest.trim_end_matches('/'), false)
            } else if let Some(rest) = text.strip_prefix("https://") {
                (rest.trim_end_matches('/'), true)
            } else {
                (text, false)
            };
            let weight = match entry.weight {
                None => 1,
                Some(w @ 1..=10_000) => w as u32,
                Some(w) => {
                    c.at(
                        t.span(),
                        key("targets"),
                        format!("weight {w} of {hostport:?}: a weight is 1 to 10000"),
                    );
                    1
                }
            };
            match resolve_target(hostport, resolved) {
                Ok(addrs) => {
                    for addr in addrs {
                        if targets.iter().any(|t: &Target| t.addr == addr) {
                            continue;
                        }
                        targets.push(Target {
                            id: target_count,
                            addr,
                            authority: hostport.to_string(),
                            tls,
                            weight,
                            label: addr.to_string(),
                        });
                        target_count += 1;
                    }
                }
                // An OpenAPI integration host not resolving yet: a target
                // that refuses at once (502) until the checker thread's
                // next answer recompiles the upstream.
                Err(_) if u.unresolved_ok => {
                    targets.push(Target {
                        id: target_count,
                        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                        authority: hostport.to_string(),
                        tls,
                        weight,
                        label: format!("{hostport} (unresolved)"),
                    });
                    target_count += 1;
                }
                Err(m) => c.at(t.span(), key("targets"), m),
            }
        }
        if targets.len() > MAX_TARGETS {
            c.at(
                u.targets.span(),
                key("targets"),
                format!(
                    "{} targets: at most {MAX_TARGETS} per upstream",
                    targets.len()
                ),
            );
        }
        let resilience = super::resilience::compile(u, &targets, &key, c);
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
            resilience,
        });
    }
    Upstreams {
        list: upstreams,
        by_name,
        target_count,
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

/// Every address of a target: an IP literal is itself; a DNS name gives each
/// address it resolves to (the checker thread's latest answer, if it has
/// one). A name that does not resolve now is an error.
fn resolve_target(hostport: &str, resolved: &Resolved) -> Result<Vec<SocketAddr>, String> {
    if let Ok(a) = hostport.parse::<SocketAddr>() {
        return Ok(vec![a]);
    }
    if !hostport.contains(':') {
        return Err(format!("{hostport:?} needs a port (host:port)"));
    }
    if let Some(addrs) = resolved.get(hostport) {
        return Ok(addrs);
    }
    lookup(hostport)
}

/// Resolves `host:port` to every address it has, sorted, without repeats.
pub fn lookup(hostport: &str) -> Result<Vec<SocketAddr>, String> {
    match hostport.to_socket_addrs() {
        Ok(it) => {
            let mut v: Vec<SocketAddr> = it.collect();
            v.sort();
            v.dedup();
            if v.is_empty() {
                Err(format!("{hostport:?} resolves to no address"))
            } else {
                Ok(v)
            }
        }
        Err(e) => Err(format!("cannot resolve {hostport:?}: {e}")),
    }
}
