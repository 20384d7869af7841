//! Request validators (`x-amazon-apigateway-request-validators` and the
//! `x-amazon-apigateway-request-validator` that picks one) → `[route.validate]`:
//! the operation's required header and query parameters, and its body's JSON
//! Schema with local `$ref`s resolved. Also the check that every `$ref` of
//! the document points somewhere.

use super::import::Importer;
use super::tree::{Node, Value};
use crate::config::model;
use toml::Spanned;

/// `$ref`s followed inside one schema before it counts as runaway.
const MAX_REF_DEPTH: usize = 32;

/// The `[route.validate]` of an operation, if a validator applies to it.
pub fn validate<'a>(
    im: &mut Importer<'a>,
    op: &'a Node,
    common: Option<&'a Node>,
) -> Option<Spanned<model::Validate>> {
    let root = im.root;
    let chosen = op
        .get("x-amazon-apigateway-request-validator")
        .or(root.get("x-amazon-apigateway-request-validator"))?;
    let Some(name) = chosen.as_str() else {
        im.error(chosen, "the request validator must be named by a string");
        return None;
    };
    let Some(v) = root
        .get("x-amazon-apigateway-request-validators")
        .and_then(|all| all.get(name))
    else {
        im.error(
            chosen,
            format!("no request validator {name:?} in x-amazon-apigateway-request-validators"),
        );
        return None;
    };
    let flag = |k: &str| v.get(k).and_then(Node::as_bool).unwrap_or(false);
    let mut t = model::Validate::default();
    let params: Vec<&Node> = common
        .into_iter()
        .chain(op.get("parameters"))
        .flat_map(Node::items)
        .map(|p| follow(root, p))
        .collect();
    if flag("validateRequestParameters") {
        for p in &params {
            if p.get("required").and_then(Node::as_bool) != Some(true) {
                continue;
            }
            let Some(name) = p.get("name").and_then(Node::as_str) else {
                continue;
            };
            let name = im.spanned(p, name.to_string());
            match p.get("in").and_then(Node::as_str) {
                Some("header") => t.required_headers.push(name),
                Some("query") => t.required_query.push(name),
                _ => {}
            }
        }
    }
    if flag("validateRequestBody")
        && let Some(schema) = body_schema(im, op, &params)
    {
        let mut stack = Vec::new();
        if let Some(doc) = resolve(im, schema, &mut stack) {
            let origin = format!("openapi#{}", im.pointer_of(schema));
            t.json_schema_doc = Some((doc, origin));
        }
    }
    let empty =
        t.required_headers.is_empty() && t.required_query.is_empty() && t.json_schema_doc.is_none();
    (!empty).then(|| im.spanned(chosen, t))
}

/// A `$ref`'d node's target (one level), else the node.
fn follow<'n>(root: &'n Node, n: &'n Node) -> &'n Node {
    n.get("$ref")
        .and_then(Node::as_str)
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|p| root.at_pointer(p))
        .unwrap_or(n)
}

/// The body's schema: OpenAPI 3's `requestBody` JSON content, or Swagger's `in: body` parameter.
fn body_schema<'a>(im: &mut Importer<'a>, op: &'a Node, params: &[&'a Node]) -> Option<&'a Node> {
    if let Some(p) = params
        .iter()
        .find(|p| p.get("in").and_then(Node::as_str) == Some("body"))
    {
        return p.get("schema");
    }
    let rb = op.get("requestBody")?;
    let rb = follow(im.root, rb);
    let content = rb.get("content")?;
    let json = content
        .entries()
        .iter()
        .find(|e| e.key == "application/json")
        .or_else(|| content.entries().iter().find(|e| e.key.contains("json")));
    match json {
        Some(e) => e.node.get("schema"),
        None => {
            im.unsupported(
                content,
                "a request body validated only for JSON media types: this body is not checked",
            );
            None
        }
    }
}

/// A schema as JSON with every local `$ref` replaced by what it points at;
/// `None` (listed) for a recursive or runaway schema.
fn resolve(im: &mut Importer<'_>, n: &Node, stack: &mut Vec<String>) -> Option<serde_json::Value> {
    match &n.value {
        Value::Map(entries) => {
            if let Some(r) = n.get("$ref").and_then(Node::as_str) {
                let target = r.strip_prefix('#').and_then(|p| im.root.at_pointer(p));
                let Some(target) = target else {
                    // Reported by `check_refs`.
                    return Some(serde_json::Value::Object(Default::default()));
                };
                if stack.iter().any(|s| s == r) || stack.len() >= MAX_REF_DEPTH {
                    im.unsupported(
                        n,
                        format!("a recursive schema ({r}): the body is not validated"),
                    );
                    return None;
                }
                stack.push(r.to_string());
                let out = resolve(im, target, stack);
                stack.pop();
                return out;
            }
            let mut obj = serde_json::Map::new();
            for e in entries {
                obj.insert(e.key.clone(), resolve(im, &e.node, stack)?);
            }
            Some(serde_json::Value::Object(obj))
        }
        Value::Seq(items) => items
            .iter()
            .map(|i| resolve(im, i, stack))
            .collect::<Option<Vec<_>>>()
            .map(serde_json::Value::Array),
        _ => Some(n.to_json()),
    }
}

/// Every `$ref` in the document must point at a node of it.
pub fn check_refs(im: &mut Importer<'_>, n: &Node) {
    match &n.value {
        Value::Map(entries) => {
            for e in entries {
                if e.key == "$ref"
                    && let Some(r) = e.node.as_str()
                {
                    match r.strip_prefix('#') {
                        Some(p) if im.root.at_pointer(p).is_some() => {}
                        Some(_) => im.error(&e.node, format!("$ref {r:?} points nowhere in this document")),
                        None => im.error(
                            &e.node,
                            format!("$ref {r:?} names another document: only local references (#/...) are read"),
                        ),
                    }
                } else {
                    check_refs(im, &e.node);
                }
            }
        }
        Value::Seq(items) => items.iter().for_each(|i| check_refs(im, i)),
        _ => {}
    }
}
