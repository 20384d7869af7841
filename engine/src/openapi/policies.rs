//! Document-wide policies: `x-amazon-apigateway-cors` → `[route.cors]`,
//! `x-amazon-apigateway-policy` on `aws:SourceIp` → `[route.ip]`, and
//! `x-amazon-apigateway-gateway-responses` → `[gateway_responses]`.

use super::import::{Importer, literal};
use super::tree::Node;
use crate::config::model;
use crate::config::units::Dur;
use std::collections::BTreeMap;
use toml::Spanned;

impl Importer<'_> {
    /// `x-amazon-apigateway-cors` → `[route.cors]`.
    pub fn cors(&mut self, n: &Node) -> Option<Spanned<model::Cors>> {
        let list = |key: &str| -> Vec<Spanned<String>> {
            n.get(key)
                .map(|l| {
                    l.items()
                        .iter()
                        .filter_map(|i| Some(self.spanned(i, i.scalar_text()?)))
                        .collect()
                })
                .unwrap_or_default()
        };
        let cors = model::Cors {
            allow_origins: list("allowOrigins"),
            allow_methods: n.get("allowMethods").map(|_| list("allowMethods")),
            allow_headers: list("allowHeaders"),
            expose_headers: list("exposeHeaders"),
            allow_credentials: n
                .get("allowCredentials")
                .and_then(|b| Some(self.spanned(b, b.as_bool()?))),
            max_age: n
                .get("maxAge")
                .and_then(Node::as_f64)
                .filter(|s| *s >= 0.0)
                .map(|s| Dur(std::time::Duration::from_secs(s as u64))),
        };
        for e in n.entries() {
            if !matches!(
                e.key.as_str(),
                "allowOrigins"
                    | "allowMethods"
                    | "allowHeaders"
                    | "exposeHeaders"
                    | "allowCredentials"
                    | "maxAge"
            ) {
                self.unsupported(
                    &e.node,
                    format!("CORS setting `{}` is not supported", e.key),
                );
            }
        }
        Some(self.spanned(n, cors))
    }

    /// `x-amazon-apigateway-policy` statements on `aws:SourceIp` → `[route.ip]`.
    pub fn ip_policy(&mut self, n: &Node) -> Option<Spanned<model::IpPolicy>> {
        let mut ip = model::IpPolicy {
            allow: Vec::new(),
            deny: Vec::new(),
        };
        let statements = n.get("Statement").map_or(&[][..], |s| {
            if s.is_map() {
                std::slice::from_ref(s)
            } else {
                s.items()
            }
        });
        for st in statements {
            let effect = st.get("Effect").and_then(Node::as_str).unwrap_or("");
            if let Some(r) = st.get("Resource") {
                let list = if r.as_str().is_some() {
                    std::slice::from_ref(r)
                } else {
                    r.items()
                };
                if list.iter().any(|r| !r.as_str().is_some_and(whole_api)) {
                    self.unsupported(
                        r,
                        "a statement on part of the API: ringway applies it to every route",
                    );
                }
            }
            let Some(cond) = st.get("Condition") else {
                // An unconditional Allow of everything is API Gateway's default.
                if effect != "Allow" {
                    self.unsupported(
                        st,
                        "a policy statement without an aws:SourceIp condition is not supported",
                    );
                }
                continue;
            };
            for c in cond.entries() {
                let negated = match c.key.as_str() {
                    "IpAddress" => false,
                    "NotIpAddress" => true,
                    other => {
                        self.unsupported(&c.node, format!("policy condition `{other}` is not supported (only IpAddress / NotIpAddress on aws:SourceIp)"));
                        continue;
                    }
                };
                for k in c.node.entries() {
                    if k.key != "aws:SourceIp" {
                        self.unsupported(
                            &k.node,
                            format!("condition key `{}` is not supported", k.key),
                        );
                        continue;
                    }
                    let cidrs: Vec<Spanned<String>> = if k.node.as_str().is_some() {
                        vec![self.spanned(&k.node, k.node.scalar_text().unwrap_or_default())]
                    } else {
                        k.node
                            .items()
                            .iter()
                            .filter_map(|i| Some(self.spanned(i, i.scalar_text()?)))
                            .collect()
                    };
                    // Deny listed / allow only listed; NotIpAddress flips it.
                    match (effect, negated) {
                        ("Deny", false) | ("Allow", true) => ip.deny.extend(cidrs),
                        ("Allow", false) | ("Deny", true) => ip.allow.extend(cidrs),
                        _ => self.unsupported(st, "`Effect` must be Allow or Deny"),
                    }
                }
            }
        }
        (!ip.allow.is_empty() || !ip.deny.is_empty()).then(|| self.spanned(n, ip))
    }

    /// `x-amazon-apigateway-gateway-responses` → `[gateway_responses]`.
    pub fn gateway_responses(&mut self) {
        let root = self.root;
        let aws = root
            .get("x-amazon-apigateway-gateway-responses")
            .map_or(&[][..], Node::entries);
        let own = root
            .get("x-ringway-gateway-responses")
            .map_or(&[][..], Node::entries);
        let entries = aws
            .iter()
            .map(|e| (e, false))
            .chain(own.iter().map(|e| (e, true)));
        for (e, ringway) in entries {
            let key = if ringway {
                Some(e.key.clone())
            } else {
                response_key(&e.key).map(str::to_string)
            };
            let Some(key) = key else {
                self.unsupported(
                    &e.node,
                    format!("gateway response type {} has no ringway equivalent", e.key),
                );
                continue;
            };
            if let Some((_, first)) = self.out.gateway_responses.iter().find(|(k, _)| *k == key) {
                let first = first.span();
                let first = self.root_text_pointer(first);
                self.unsupported(
                    &e.node,
                    format!(
                        "{} answers the same status ({key}) as {first}, which is kept",
                        e.key
                    ),
                );
                continue;
            }
            if let Some(others) = shared_status(&e.key) {
                self.notice(
                    &e.node,
                    format!("ringway keys gateway responses by status: {} answers every {key} ({others} too)", e.key),
                );
            }
            let r = &e.node;
            let status = r.get("statusCode").and_then(|s| {
                let n = s.scalar_text()?.parse::<u16>().ok();
                if n.is_none() {
                    self.error(s, "statusCode must be a status number");
                }
                n
            });
            let mut headers = BTreeMap::new();
            for p in r.get("responseParameters").map_or(&[][..], Node::entries) {
                let name = p.key.strip_prefix("gatewayresponse.header.");
                match (name, literal(&p.node)) {
                    (Some(name), Some(v)) => {
                        headers.insert(name.to_string(), v);
                    }
                    _ => self.unsupported(
                        &p.node,
                        "only `gatewayresponse.header.NAME: \"'value'\"` (a literal) is supported",
                    ),
                }
            }
            let (content_type, body) = match self.template(r.get("responseTemplates"), true) {
                Some((t, b)) => (Some(t), Some(b)),
                None => (None, None),
            };
            let gr = model::GatewayResponse {
                status,
                content_type,
                headers: (!headers.is_empty()).then_some(headers),
                body,
            };
            let spanned = self.spanned(r, gr);
            self.out.gateway_responses.push((key, spanned));
        }
    }

    /// The first `responseTemplates` entry (JSON preferred): its media type
    /// and body. A body with VTL in it is listed (a gateway response's
    /// `$context.error.*`, `$context.requestId` are kept when `context` is set).
    pub fn template(&mut self, n: Option<&Node>, context: bool) -> Option<(String, String)> {
        let n = n?;
        let e = n
            .entries()
            .iter()
            .find(|e| e.key == "application/json")
            .or(n.entries().first())?;
        let body = e.node.as_str().unwrap_or("").to_string();
        let known = [
            "$context.error.messageString",
            "$context.error.message",
            "$context.requestId",
        ];
        let mut rest = body.clone();
        if context {
            for k in known {
                rest = rest.replace(k, "");
            }
        }
        if rest.contains('$')
            || rest.contains("#set")
            || rest.contains("#if")
            || rest.contains("#foreach")
        {
            self.unsupported(
                &e.node,
                "a VTL template: ringway sends this text as written, without evaluating it",
            );
        }
        Some((e.key.clone(), body))
    }
}

/// Whether a policy `Resource` names the whole API: `execute-api:/*`,
/// `arn:aws:execute-api:REGION:ACCOUNT:API/*`, `.../*/*/*`.
fn whole_api(resource: &str) -> bool {
    if resource == "*" {
        return true;
    }
    let tail = resource.rsplit(':').next().unwrap_or(resource);
    let mut parts = tail.split('/');
    parts.next();
    let rest: Vec<&str> = parts.collect();
    !rest.is_empty() && rest.iter().all(|p| *p == "*")
}

/// A gateway response type → the `[gateway_responses]` key of the status
/// ringway answers that condition with.
pub fn response_key(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "DEFAULT_4XX" => "4xx",
        "DEFAULT_5XX" => "5xx",
        "THROTTLED" | "QUOTA_EXCEEDED" => "429",
        "UNAUTHORIZED" => "401",
        "ACCESS_DENIED" | "INVALID_API_KEY" | "EXPIRED_TOKEN" | "INVALID_SIGNATURE"
        | "WAF_FILTERED" => "403",
        "MISSING_AUTHENTICATION_TOKEN" | "RESOURCE_NOT_FOUND" => "404",
        "BAD_REQUEST_PARAMETERS" | "BAD_REQUEST_BODY" => "400",
        "REQUEST_TOO_LARGE" => "413",
        "UNSUPPORTED_MEDIA_TYPE" => "415",
        "INTEGRATION_FAILURE" => "502",
        "INTEGRATION_TIMEOUT" => "504",
        "API_CONFIGURATION_ERROR" | "AUTHORIZER_FAILURE" | "AUTHORIZER_CONFIGURATION_ERROR" => {
            "500"
        }
        _ => return None,
    })
}

/// What else a response type's status answers, for types that share one.
fn shared_status(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "THROTTLED" | "QUOTA_EXCEEDED" => "throttling and quotas",
        "ACCESS_DENIED" | "INVALID_API_KEY" | "EXPIRED_TOKEN" | "INVALID_SIGNATURE"
        | "WAF_FILTERED" => "missing or invalid API keys, IP rules, JWT scopes",
        "MISSING_AUTHENTICATION_TOKEN" | "RESOURCE_NOT_FOUND" => "unknown routes",
        "BAD_REQUEST_PARAMETERS" | "BAD_REQUEST_BODY" => "missing parameters and invalid bodies",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_resources_on_the_whole_api() {
        for r in [
            "execute-api:/*",
            "arn:aws:execute-api:us-east-1:123456789012:abc123/*",
            "execute-api:/*/*/*",
            "*",
        ] {
            assert!(whole_api(r), "{r}");
        }
        for r in [
            "execute-api:/prod/GET/pets",
            "arn:aws:execute-api:*:*:abc/*/POST/*",
        ] {
            assert!(!whole_api(r), "{r}");
        }
    }

    #[test]
    fn every_listed_response_type_has_a_status() {
        for t in [
            "DEFAULT_4XX",
            "THROTTLED",
            "INTEGRATION_TIMEOUT",
            "BAD_REQUEST_BODY",
        ] {
            assert!(response_key(t).is_some(), "{t}");
        }
        assert_eq!(response_key("NOPE"), None);
    }
}
