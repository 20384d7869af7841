//! Security: `securitySchemes` / `securityDefinitions` and the operations'
//! `security` → `[route.api_key]` and `[route.jwt]`; schemes ringway cannot
//! check (Lambda, IAM, Cognito authorizers) are listed, and the operations
//! they guard are not served.

use super::import::Importer;
use super::tree::Node;
use crate::config::model;
use toml::Spanned;

/// An operation's API key source and JWT authorizer.
type Security = (
    Option<Spanned<model::RouteApiKey>>,
    Option<Spanned<model::Jwt>>,
);

impl Importer<'_> {
    /// Security schemes ringway cannot check are listed once, where they are defined.
    pub fn check_schemes(&mut self, schemes: &Node) {
        for s in schemes.entries() {
            let n = &s.node;
            if let Some(a) = n.get("x-amazon-apigateway-authorizer") {
                let kind = a.get("type").and_then(Node::as_str).unwrap_or("");
                if !kind.eq_ignore_ascii_case("jwt") {
                    self.unsupported(
                        a,
                        format!(
                            "authorizer {:?} of type {kind:?}: only `jwt` authorizers are supported; routes that need it are not served",
                            s.key
                        ),
                    );
                }
            } else if n.get("type").and_then(Node::as_str) != Some("apiKey") {
                self.unsupported(
                    n,
                    format!(
                        "security scheme {:?} is neither an apiKey nor a jwt authorizer; routes that need it are not served",
                        s.key
                    ),
                );
            } else if n.get("x-amazon-apigateway-authtype").is_some_and(|t| {
                t.as_str()
                    .is_some_and(|t| !t.eq_ignore_ascii_case("apiKey"))
            }) {
                self.unsupported(
                    n,
                    format!(
                        "security scheme {:?} (IAM / custom auth type) is not supported; routes that need it are not served",
                        s.key
                    ),
                );
            }
        }
    }

    /// The operation's security (its own, else the document's): an API key
    /// source and a JWT authorizer. `None`: a scheme ringway cannot check
    /// guards it, so it is not served.
    pub fn security(&mut self, op: &Node) -> Option<Security> {
        let root = self.root;
        let Some(req) = op.get("security").or(root.get("security")) else {
            return Some((None, None));
        };
        let schemes = root.get("securityDefinitions").or(root
            .get("components")
            .and_then(|c| c.get("securitySchemes")));
        let alternatives = req.items();
        if alternatives.len() > 1 {
            self.unsupported(
                req,
                "alternative security requirements: ringway requires the first one",
            );
        }
        let Some(first) = alternatives.first() else {
            return Some((None, None));
        };
        let (mut api_key, mut jwt) = (None, None);
        for e in first.entries() {
            let Some(scheme) = schemes.and_then(|s| s.get(&e.key)) else {
                self.error(
                    &e.node,
                    format!("security scheme {:?} is not defined", e.key),
                );
                return None;
            };
            if let Some(a) = scheme.get("x-amazon-apigateway-authorizer") {
                let kind = a.get("type").and_then(Node::as_str).unwrap_or("");
                if !kind.eq_ignore_ascii_case("jwt") {
                    // Listed once where the scheme is defined.
                    return None;
                }
                jwt = Some(self.jwt(&e.key, a, &e.node)?);
            } else if scheme.get("type").and_then(Node::as_str) == Some("apiKey")
                && scheme
                    .get("x-amazon-apigateway-authtype")
                    .and_then(Node::as_str)
                    .is_none_or(|t| t.eq_ignore_ascii_case("apiKey"))
            {
                let name = scheme
                    .get("name")
                    .and_then(Node::as_str)
                    .unwrap_or("x-api-key");
                let place = match scheme.get("in").and_then(Node::as_str) {
                    Some("query") => "query",
                    _ => "header",
                };
                api_key = Some(self.spanned(
                    scheme,
                    model::RouteApiKey {
                        source:
                            self.spanned(scheme, format!("{place}:{}", name.to_ascii_lowercase())),
                    },
                ));
            } else {
                return None;
            }
        }
        Some((api_key, jwt))
    }

    /// A `jwt` authorizer → `[route.jwt]`, with the operation's scopes.
    fn jwt(&mut self, name: &str, a: &Node, scopes: &Node) -> Option<Spanned<model::Jwt>> {
        let cfg = a.get("jwtConfiguration");
        let Some(issuer) = cfg.and_then(|c| c.get("issuer")) else {
            self.error(a, "a jwt authorizer needs jwtConfiguration.issuer");
            return None;
        };
        let Some(iss) = issuer.as_str() else {
            self.error(issuer, "issuer must be a string");
            return None;
        };
        let audience = cfg
            .and_then(|c| c.get("audience"))
            .map(|n| {
                n.items()
                    .iter()
                    .filter_map(Node::scalar_text)
                    .chain(n.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let source = match a.get("identitySource") {
            None => None,
            Some(n) => {
                let text = n
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| n.items().first().and_then(Node::scalar_text))
                    .unwrap_or_default();
                match text.strip_prefix("$request.header.") {
                    Some(h) if h.eq_ignore_ascii_case("authorization") => None,
                    Some(h) => Some(self.spanned(n, format!("header:{}", h.to_ascii_lowercase()))),
                    None => {
                        self.unsupported(
                            n,
                            format!("identity source {text:?}: only `$request.header.NAME` is supported; the Authorization header is read"),
                        );
                        None
                    }
                }
            }
        };
        let over = self
            .table
            .and_then(|t| t.authorizers.get(name))
            .map(|o| o.get_ref().clone());
        let (jwks_url, jwks_file, jwks_ca) = match over {
            Some(o) if o.jwks_url.is_some() || o.jwks_file.is_some() => {
                (o.jwks_url, o.jwks_file, o.jwks_ca)
            }
            other => (
                Some(self.spanned(
                    issuer,
                    format!("{}/.well-known/jwks.json", iss.trim_end_matches('/')),
                )),
                None,
                other.and_then(|o| o.jwks_ca),
            ),
        };
        Some(
            self.spanned(
                a,
                model::Jwt {
                    issuer: Some(iss.to_string()),
                    audience,
                    jwks_file,
                    jwks_url,
                    jwks_refresh: None,
                    jwks_ca,
                    scopes: scopes
                        .items()
                        .iter()
                        .filter_map(Node::scalar_text)
                        .collect(),
                    forward_claims: None,
                    source,
                    leeway: None,
                    cache: true,
                },
            ),
        )
    }
}
