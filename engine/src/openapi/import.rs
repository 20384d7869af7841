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
    pub fn root_text_pointer(&self, span: Range<usize>) -> String {
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
            upstream_method: None,
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
                route.upstream_method = target.method;
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
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_erase_parameter_names() {
        assert_eq!(shape("/pets/{id}"), shape("/pets/{petId}"));
        assert_ne!(shape("/pets/{id}"), shape("/pets/{id+}"));
        assert_eq!(route_params("/a/{x}/b/{proxy+}"), ["x", "proxy"]);
    }
}
