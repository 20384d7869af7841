//! One API Gateway export → routes, upstreams, gateway responses and the
//! stage of the config model, the way a `ringway.toml` would say them.
//!
//! Every model value gets the span of the node it came from (shifted to
//! where the document sits in the compiler's source), so the compiler's own
//! checks name the document's line and JSON pointer. What the importer
//! cannot serve is an [`Item`]: the caller turns items into warnings, or
//! errors under `--strict`.

use super::integration::{self, Upstreams};
use super::schema;
use super::tree::Node;
use crate::config::model;
use crate::config::units::Dur;
use std::collections::BTreeMap;
use std::ops::Range;
use toml::Spanned;

/// Document-level keys that carry nothing to serve.
const IGNORED_TOP: &[&str] = &[
    "openapi",
    "swagger",
    "info",
    "servers",
    "host",
    "basePath",
    "schemes",
    "consumes",
    "produces",
    "paths",
    "definitions",
    "components",
    "parameters",
    "responses",
    "securityDefinitions",
    "security",
    "tags",
    "externalDocs",
    "x-amazon-apigateway-importexport-version",
    "x-amazon-apigateway-cors",
    "x-amazon-apigateway-policy",
    "x-amazon-apigateway-gateway-responses",
    "x-amazon-apigateway-request-validators",
    "x-amazon-apigateway-request-validator",
    "x-amazon-apigateway-api-key-source",
    "x-ringway-gateway-responses",
];

/// Operation keys that carry nothing to serve (or that are read below).
const IGNORED_OP: &[&str] = &[
    "summary",
    "description",
    "operationId",
    "tags",
    "externalDocs",
    "deprecated",
    "produces",
    "consumes",
    "responses",
    "servers",
    "callbacks",
    "schemes",
    "parameters",
    "requestBody",
    "security",
    "x-amazon-apigateway-integration",
    "x-amazon-apigateway-request-validator",
];

/// Integration keys that are read, or that change nothing ringway serves
/// (caching and pass-through settings, the Lambda payload version).
const KNOWN_INTEGRATION: &[&str] = &[
    "type",
    "httpMethod",
    "uri",
    "requestParameters",
    "timeoutInMillis",
    "tlsConfig",
    "connectionType",
    "requestTemplates",
    "responses",
    "passthroughBehavior",
    "cacheNamespace",
    "cacheKeyParameters",
    "payloadFormatVersion",
    "description",
];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Something in the document that is not served as written: the node, and why.
pub struct Item {
    pub span: Range<usize>,
    pub message: String,
}

/// What one document adds to the model.
#[derive(Default)]
pub struct Imported {
    pub routes: Vec<model::Route>,
    pub gateway_responses: Vec<(String, Spanned<model::GatewayResponse>)>,
    /// The stage the document asks for, and where it says so.
    pub stage: Option<Spanned<String>>,
    /// Errors: the node and the message.
    pub errors: Vec<Item>,
    /// Not served as written: warnings, errors under `--strict`.
    pub items: Vec<Item>,
    /// Warnings whatever `--strict` says (a host that does not resolve yet).
    pub notices: Vec<Item>,
}

/// Reads one document. `off` is where its text starts in the compiler's
/// source; `table` is its `[[openapi]]` entry, if it came from the TOML.
pub struct Importer<'a> {
    pub root: &'a Node,
    pub off: usize,
    pub table: Option<&'a model::OpenApi>,
    pub upstreams: &'a mut Upstreams,
    pub out: Imported,
}

impl<'a> Importer<'a> {
    /// A node's span in the compiler's source.
    pub fn span(&self, n: &Node) -> Range<usize> {
        n.span.start + self.off..n.span.end + self.off
    }

    pub fn key_span(&self, r: &Range<usize>) -> Range<usize> {
        r.start + self.off..r.end + self.off
    }

    pub fn spanned<T>(&self, n: &Node, v: T) -> Spanned<T> {
        Spanned::new(self.span(n), v)
    }

    pub fn error(&mut self, n: &Node, message: impl Into<String>) {
        let span = self.span(n);
        self.out.errors.push(Item {
            span,
            message: message.into(),
        });
    }

    pub fn unsupported(&mut self, n: &Node, message: impl Into<String>) {
        let span = self.span(n);
        self.out.items.push(Item {
            span,
            message: message.into(),
        });
    }

    pub fn notice(&mut self, n: &Node, message: impl Into<String>) {
        let span = self.span(n);
        self.out.notices.push(Item {
            span,
            message: message.into(),
        });
    }

    /// Reads the whole document.
    pub fn run(&mut self) {
        let root = self.root;
        let version = root
            .get("openapi")
            .or(root.get("swagger"))
            .and_then(Node::scalar_text);
        match version.as_deref() {
            Some(v) if v.starts_with("3.") || v == "2.0" => {}
            _ => {
                self.error(
                    root,
                    "not an OpenAPI 3 (`openapi: 3.x`) or Swagger 2.0 (`swagger: \"2.0\"`) document",
                );
                return;
            }
        }
        for e in root.entries() {
            if !IGNORED_TOP.contains(&e.key.as_str()) && e.key.starts_with("x-amazon-apigateway-") {
                self.unsupported(&e.node, format!("`{}` is not supported", e.key));
            }
        }
        if let Some(n) = root.get("securityDefinitions").or(root
            .get("components")
            .and_then(|c| c.get("securitySchemes")))
        {
            self.check_schemes(n);
        }
        if let Some(n) = root.get("x-amazon-apigateway-api-key-source")
            && n.as_str()
                .is_some_and(|s| !s.eq_ignore_ascii_case("HEADER"))
        {
            self.unsupported(
                n,
                "API keys from a Lambda authorizer (AUTHORIZER) are not supported: keys are read from the x-api-key header",
            );
        }
        self.stage();
        self.gateway_responses();
        let cors = root
            .get("x-amazon-apigateway-cors")
            .and_then(|n| self.cors(n));
        let ip = root
            .get("x-amazon-apigateway-policy")
            .and_then(|n| self.ip_policy(n));
        let shared = Shared { cors, ip };
        super::schema::check_refs(self, root);
        let Some(paths) = root.get("paths") else {
            return;
        };
        let mut seen: Vec<(String, String, &Node)> = Vec::new();
        for p in paths.entries() {
            if !p.key.starts_with('/') {
                self.error(&p.node, format!("path {:?} must start with `/`", p.key));
                continue;
            }
            let common = p.node.get("parameters");
            for op in p.node.entries() {
                let method = match op.key.as_str() {
                    "x-amazon-apigateway-any-method" => "ANY".to_string(),
                    m if METHODS.contains(&m) => m.to_ascii_uppercase(),
                    "parameters" | "summary" | "description" | "servers" => continue,
                    other => {
                        self.unsupported(&op.node, format!("`{other}` on a path is not supported"));
                        continue;
                    }
                };
                let shape = shape(&p.key);
                if let Some((_, _, first)) =
                    seen.iter().find(|(s, m, _)| *s == shape && *m == method)
                {
                    let first = self.span(first);
                    let first = &self.root_text_pointer(first);
                    self.out.errors.push(Item {
                        span: self.key_span(&op.key_span),
                        message: format!("{method} {} maps to the same route as {first}", p.key),
                    });
                    continue;
                }
                seen.push((shape, method.clone(), &op.node));
                let at = Operation {
                    path: &p.key,
                    path_span: self.key_span(&p.key_span),
                    method,
                    method_span: self.key_span(&op.key_span),
                    node: &op.node,
                    common,
                };
                if let Some(route) = self.operation(&at, &shared) {
                    self.out.routes.push(route);
                }
            }
        }
    }

    /// The JSON pointer of a node of this document.
    pub fn pointer_of(&self, n: &Node) -> String {
        self.root_text_pointer(self.span(n))
    }

    /// The JSON pointer of the node (or key) at `span`, found again from the tree.
    fn root_text_pointer(&self, span: Range<usize>) -> String {
        let mut keys = Vec::new();
        self.root.pointers("", &mut keys);
        keys.iter()
            .find(|(s, _)| s.start + self.off == span.start && s.end + self.off == span.end)
            .map_or_else(String::new, |(_, p)| p.clone())
    }

    /// `[server] stage` from `[[openapi]] stage`, else Swagger's `basePath`
    /// or OpenAPI 3's `servers[].variables.basePath.default`.
    fn stage(&mut self) {
        if let Some(s) = self.table.and_then(|t| t.stage.clone()) {
            self.out.stage = Some(s);
            return;
        }
        let root = self.root;
        let node = root.get("basePath").or_else(|| {
            root.get("servers")?
                .items()
                .iter()
                .find_map(|s| s.get("variables")?.get("basePath")?.get("default"))
        });
        let Some(node) = node else { return };
        let Some(text) = node.as_str() else {
            self.error(node, "basePath must be a string");
            return;
        };
        let text = text.trim_end_matches('/');
        if text.is_empty() {
            return;
        }
        let stage = if text.starts_with('/') {
            text.to_string()
        } else {
            format!("/{text}")
        };
        self.out.stage = Some(self.spanned(node, stage));
    }

    /// Security schemes ringway cannot check are listed once, where they are defined.
    fn check_schemes(&mut self, schemes: &Node) {
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

    /// One operation → a route, or `None` when it cannot be served.
    fn operation(&mut self, at: &Operation<'a>, shared: &Shared) -> Option<model::Route> {
        let op = at.node;
        for e in op.entries() {
            let known = IGNORED_OP.contains(&e.key.as_str())
                || super::export::ROUTE_KEYS.contains(&e.key.as_str());
            if !known && e.key.starts_with("x-") {
                self.unsupported(
                    &e.node,
                    format!("`{}` on an operation is not supported", e.key),
                );
            }
        }
        let Some(integ) = op.get("x-amazon-apigateway-integration") else {
            self.unsupported(
                op,
                "no x-amazon-apigateway-integration: the operation is not served",
            );
            return None;
        };
        let params: Vec<String> = route_params(at.path);
        let (api_key, jwt) = self.security(op)?;
        let mut route = model::Route {
            path: Spanned::new(at.path_span.clone(), at.path.to_string()),
            methods: Spanned::new(at.method_span.clone(), vec![at.method.clone()]),
            host: None,
            upstream: None,
            uri: None,
            // API Gateway sends the integration's host, not the client's.
            preserve_host: false,
            websocket: true,
            disable: Vec::new(),
            cors: shared.cors.clone(),
            ip: shared.ip.clone(),
            api_key,
            jwt,
            throttle: None,
            validate: None,
            mapping: None,
            mock: None,
        };
        for e in integ.entries() {
            if !KNOWN_INTEGRATION.contains(&e.key.as_str()) {
                self.unsupported(
                    &e.node,
                    format!("integration setting `{}` is not supported", e.key),
                );
            }
        }
        let kind = integ
            .get("type")
            .and_then(Node::as_str)
            .unwrap_or("")
            .to_ascii_lowercase();
        match kind.as_str() {
            "http_proxy" | "http" => {
                if kind == "http" {
                    self.non_proxy_extras(integ);
                }
                let target = integration::http(self, integ, at, &params)?;
                route.uri = Some(target.uri);
                route.mapping = target.mapping;
            }
            "mock" => route.mock = Some(integration::mock(self, integ)?),
            "aws" | "aws_proxy" => {
                self.unsupported(
                    integ,
                    format!("an `{kind}` (Lambda / AWS service) integration is not supported: the operation is not served"),
                );
                return None;
            }
            _ => {
                let t = integ.get("type").unwrap_or(integ);
                self.error(
                    t,
                    "integration `type` must be http_proxy, http, mock, aws or aws_proxy",
                );
                return None;
            }
        }
        route.validate = schema::validate(self, op, at.common);
        self.ringway_keys(op, &mut route);
        Some(route)
    }

    /// A non-proxy `http` integration is served as a proxy: its templates
    /// and response mappings are not applied.
    fn non_proxy_extras(&mut self, integ: &Node) {
        for key in ["requestTemplates", "responses"] {
            if let Some(n) = integ.get(key)
                && !n.entries().is_empty()
            {
                self.unsupported(
                    n,
                    format!("`{key}` of an `http` integration: bodies and responses pass through unchanged (served as http_proxy)"),
                );
            }
        }
    }

    /// The operation's security (its own, else the document's): an API key
    /// source and a JWT authorizer. `None`: a scheme ringway cannot check
    /// guards it, so it is not served.
    fn security(&mut self, op: &Node) -> Option<Security> {
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
    fn ip_policy(&mut self, n: &Node) -> Option<Spanned<model::IpPolicy>> {
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
    fn gateway_responses(&mut self) {
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

/// An operation's API key source and JWT authorizer.
type Security = (
    Option<Spanned<model::RouteApiKey>>,
    Option<Spanned<model::Jwt>>,
);

/// What every route of a document shares.
struct Shared {
    cors: Option<Spanned<model::Cors>>,
    ip: Option<Spanned<model::IpPolicy>>,
}

/// One operation and where its pieces are.
pub struct Operation<'n> {
    pub path: &'n str,
    pub path_span: Range<usize>,
    pub method: String,
    pub method_span: Range<usize>,
    pub node: &'n Node,
    /// The path item's own `parameters`.
    pub common: Option<&'n Node>,
}

/// A path with its parameter names erased: `/pets/{}`, `/{+}`. Two
/// operations of one method with the same shape are the same route.
fn shape(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let inner = &rest[open + 1..open + close];
        out.push_str(if inner.ends_with('+') { "{+}" } else { "{}" });
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
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

/// A route path's parameter names (`proxy` for `{proxy+}`).
pub fn route_params(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push(
            rest[open + 1..open + close]
                .trim_end_matches('+')
                .to_string(),
        );
        rest = &rest[open + close + 1..];
    }
    out
}

/// `'value'` → `value`.
pub fn literal(n: &Node) -> Option<String> {
    let s = n.as_str()?;
    s.strip_prefix('\'')?.strip_suffix('\'').map(str::to_string)
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
    fn shapes_erase_parameter_names() {
        assert_eq!(shape("/pets/{id}"), shape("/pets/{petId}"));
        assert_ne!(shape("/pets/{id}"), shape("/pets/{id+}"));
        assert_eq!(route_params("/a/{x}/b/{proxy+}"), ["x", "proxy"]);
    }

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
