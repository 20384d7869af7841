//! `[[upstream]]`: targets resolved now, TLS client configs loaded now.

use super::error::Collector;
use super::model;
use super::server::resolve_one;
use crate::snapshot::{ProxyVersion, Target, Upstream, UpstreamTls};
use std::collections::HashMap;
use std::path::Path;

/// The upstream table, each name's index in it, and the number of targets.
pub(super) struct Upstreams {
    pub list: Vec<Upstream>,
    pub by_name: HashMap<String, usize>,
    pub target_count: usize,
}

pub(super) fn compile_upstreams(
    file: &model::File,
    base: &Path,
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
