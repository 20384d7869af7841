//! `ringway export-openapi`: the routes of a config as an OpenAPI 3.0
//! document with the Amazon API Gateway extensions, and under `x-ringway-*`
//! what API Gateway has no word for, so that importing the document again
//! (with the same TOML's upstreams, keys and plans) compiles to the same
//! route table and policies.
//!
//! Each route is an operation: `http_proxy` integrations whose URI authority
//! is the upstream's name (`x-ringway-upstream` when the path goes upstream
//! unchanged), `mock` integrations, API keys and JWT authorizers as security
//! schemes, validators, parameter mappings in the HTTP API dialect. CORS and
//! IP rules shared by every route are the document's
//! `x-amazon-apigateway-cors` and `x-amazon-apigateway-policy`; otherwise
//! each route carries its own `x-ringway-cors` / `x-ringway-ip`.

use crate::config::model;
use serde_json::{Map, Value, json};
use std::path::Path;

/// Route-level keys the importer reads back.
pub const ROUTE_KEYS: &[&str] = &[
    "x-ringway-upstream",
    "x-ringway-host",
    "x-ringway-preserve-host",
    "x-ringway-websocket",
    "x-ringway-disable",
    "x-ringway-throttle",
    "x-ringway-cors",
    "x-ringway-ip",
    "x-ringway-mapping-response",
    "x-ringway-validate",
    "x-ringway-jwt",
    "x-ringway-mock",
];

/// The document for `file` (a config's model, imports merged in); `base`
/// is the config's folder (schema files are read from it).
pub fn document(file: &model::File, base: &Path) -> Value {
    let mut doc = Map::new();
    doc.insert("openapi".into(), json!("3.0.1"));
    doc.insert("info".into(), json!({"title": "ringway", "version": "1"}));
    if let Some(stage) = &file.server.stage {
        doc.insert(
            "servers".into(),
            json!([{"url": "/{basePath}", "variables": {"basePath": {"default": stage.get_ref().trim_start_matches('/')}}}]),
        );
    }
    let all_cors = shared(
        file.route
            .iter()
            .map(|r| r.cors.as_ref().map(|c| cors(c.get_ref()))),
    );
    // A policy without statements restricts nothing: empty rules stay on their routes.
    let all_ip = shared(
        file.route
            .iter()
            .map(|r| r.ip.as_ref().map(|i| ip(i.get_ref()))),
    )
    .filter(|v| {
        v.as_ref()
            .is_none_or(|i| i != &json!({"allow": [], "deny": []}))
    });
    if let Some(Some(c)) = &all_cors {
        doc.insert("x-amazon-apigateway-cors".into(), c.clone());
    }
    if let Some(Some(i)) = &all_ip {
        doc.insert("x-amazon-apigateway-policy".into(), ip_policy(i));
    }
    let mut schemes = Map::new();
    let mut validators = false;
    let mut paths = Map::new();
    for r in &file.route {
        let mut op = Map::new();
        let params = super::import::route_params(r.path.get_ref());
        if !params.is_empty() {
            op.insert(
                "parameters".into(),
                params
                    .iter()
                    .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
                    .collect(),
            );
        }
        op.insert("x-amazon-apigateway-integration".into(), integration(r));
        if let Some(m) = &r.mock {
            // API Gateway's mock says the content type through its template; ringway's exactly.
            let m = m.get_ref();
            op.insert(
                "x-ringway-mock".into(),
                json!({"status": m.status.get_ref(), "headers": m.headers.as_ref().map(|h| h.get_ref()), "body": m.body}),
            );
        }
        if let Some(u) = &r.upstream {
            op.insert("x-ringway-upstream".into(), json!(u.get_ref()));
        }
        if let Some(h) = &r.host {
            op.insert("x-ringway-host".into(), json!(h.get_ref()));
        }
        op.insert("x-ringway-preserve-host".into(), json!(r.preserve_host));
        if !r.websocket {
            op.insert("x-ringway-websocket".into(), json!(false));
        }
        if !r.disable.is_empty() {
            op.insert(
                "x-ringway-disable".into(),
                r.disable.iter().map(|d| json!(d.get_ref())).collect(),
            );
        }
        let mut security = Map::new();
        if let Some(k) = &r.api_key {
            let source = k.get_ref().source.get_ref();
            let (place, name) = source.split_once(':').unwrap_or(("header", "x-api-key"));
            let id = scheme_id(
                &mut schemes,
                "api_key",
                json!({"type": "apiKey", "name": name, "in": place}),
            );
            security.insert(id, json!([]));
        }
        if let Some(j) = &r.jwt {
            let (scheme, extra) = jwt(j.get_ref());
            let id = scheme_id(&mut schemes, "jwt", scheme);
            security.insert(id, j.get_ref().scopes.iter().map(|s| json!(s)).collect());
            if !extra.is_empty() {
                op.insert("x-ringway-jwt".into(), Value::Object(extra));
            }
        }
        if !security.is_empty() {
            op.insert("security".into(), json!([security]));
        }
        if let Some(t) = &r.throttle {
            let t = t.get_ref();
            let mut v = json!({"rate": t.rate.get_ref()});
            if let Some(b) = &t.burst {
                v["burst"] = json!(b.get_ref());
            }
            if let Some(k) = &t.key {
                v["key"] = json!(k.get_ref());
            }
            op.insert("x-ringway-throttle".into(), v);
        }
        if let Some(v) = &r.validate {
            validators |= validate(v.get_ref(), base, &mut op);
        }
        if let Some(m) = &r.mapping
            && let Some(resp) = &m.get_ref().response
        {
            op.insert("x-ringway-mapping-response".into(), json!(resp.get_ref()));
        }
        if all_cors.is_none()
            && let Some(c) = &r.cors
        {
            op.insert("x-ringway-cors".into(), cors(c.get_ref()));
        }
        if all_ip.is_none()
            && let Some(i) = &r.ip
        {
            op.insert("x-ringway-ip".into(), ip(i.get_ref()));
        }
        let item = paths
            .entry(r.path.get_ref().clone())
            .or_insert_with(|| Value::Object(Map::new()));
        for m in r.methods.get_ref() {
            let key = if m.eq_ignore_ascii_case("ANY") {
                "x-amazon-apigateway-any-method".to_string()
            } else {
                m.to_ascii_lowercase()
            };
            item[key] = Value::Object(op.clone());
        }
    }
    doc.insert("paths".into(), Value::Object(paths));
    if !schemes.is_empty() {
        doc.insert("components".into(), json!({"securitySchemes": schemes}));
    }
    if validators {
        doc.insert(
            "x-amazon-apigateway-request-validators".into(),
            json!({"ringway": {"validateRequestBody": true, "validateRequestParameters": true}}),
        );
    }
    let (aws, own) = gateway_responses(file);
    if !aws.is_empty() {
        doc.insert(
            "x-amazon-apigateway-gateway-responses".into(),
            Value::Object(aws),
        );
    }
    if !own.is_empty() {
        doc.insert("x-ringway-gateway-responses".into(), Value::Object(own));
    }
    Value::Object(doc)
}

/// `Some(v)` when every route has the same `v` (`Some(None)`: none has one), else `None`.
fn shared(mut each: impl Iterator<Item = Option<Value>>) -> Option<Option<Value>> {
    let first = each.next()?;
    each.all(|v| v == first).then_some(first)
}

/// A security scheme's name: the same definition is one scheme.
fn scheme_id(schemes: &mut Map<String, Value>, prefix: &str, def: Value) -> String {
    if let Some((k, _)) = schemes.iter().find(|(_, v)| **v == def) {
        return k.clone();
    }
    let id = if schemes.contains_key(prefix) {
        format!("{prefix}_{}", schemes.len())
    } else {
        prefix.to_string()
    };
    schemes.insert(id.clone(), def);
    id
}

fn integration(r: &model::Route) -> Value {
    if let Some(m) = &r.mock {
        let m = m.get_ref();
        let status = m.status.get_ref().to_string();
        let mut resp = json!({"statusCode": status});
        let mut content_type = "application/json".to_string();
        if let Some(h) = &m.headers {
            let mut params = Map::new();
            for (k, v) in h.get_ref() {
                if k.eq_ignore_ascii_case("content-type") {
                    content_type = v.clone();
                }
                params.insert(
                    format!("method.response.header.{k}"),
                    json!(format!("'{v}'")),
                );
            }
            resp["responseParameters"] = Value::Object(params);
        }
        if let Some(b) = &m.body {
            resp["responseTemplates"] = json!({ content_type: b });
        }
        return json!({
            "type": "mock",
            "requestTemplates": {"application/json": format!("{{\"statusCode\": {status}}}")},
            "responses": {"default": resp},
        });
    }
    let uri = match (&r.uri, &r.upstream) {
        (Some(u), _) => u.get_ref().clone(),
        (None, Some(name)) => {
            let path = r.path.get_ref().replace("+}", "}");
            format!("http://{}{path}", name.get_ref())
        }
        (None, None) => String::new(),
    };
    let method = r
        .upstream_method
        .as_ref()
        .map_or("ANY", |m| m.get_ref().as_str());
    let mut v = json!({
        "type": "http_proxy",
        "httpMethod": method,
        "uri": uri,
        "connectionType": "INTERNET",
    });
    if let Some(m) = &r.mapping
        && let Some(req) = &m.get_ref().request
    {
        v["requestParameters"] = json!(req.get_ref());
    }
    v
}

fn cors(c: &model::Cors) -> Value {
    let list =
        |l: &[toml::Spanned<String>]| -> Value { l.iter().map(|s| json!(s.get_ref())).collect() };
    let mut v = json!({
        "allowOrigins": list(&c.allow_origins),
        "allowHeaders": list(&c.allow_headers),
        "exposeHeaders": list(&c.expose_headers),
    });
    if let Some(m) = &c.allow_methods {
        v["allowMethods"] = list(m);
    }
    if let Some(b) = &c.allow_credentials {
        v["allowCredentials"] = json!(b.get_ref());
    }
    if let Some(d) = c.max_age {
        v["maxAge"] = json!(d.0.as_secs());
    }
    v
}

fn ip(i: &model::IpPolicy) -> Value {
    let list =
        |l: &[toml::Spanned<String>]| -> Value { l.iter().map(|s| json!(s.get_ref())).collect() };
    json!({"allow": list(&i.allow), "deny": list(&i.deny)})
}

/// `{allow, deny}` as a resource policy on `aws:SourceIp`.
fn ip_policy(i: &Value) -> Value {
    let mut statements = vec![json!({
        "Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/*"
    })];
    let nonempty = |k: &str| i[k].as_array().is_some_and(|a| !a.is_empty());
    if nonempty("deny") {
        statements.push(json!({
            "Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/*",
            "Condition": {"IpAddress": {"aws:SourceIp": i["deny"]}}
        }));
    }
    if nonempty("allow") {
        statements.push(json!({
            "Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/*",
            "Condition": {"NotIpAddress": {"aws:SourceIp": i["allow"]}}
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// The authorizer scheme, and what of `[route.jwt]` API Gateway cannot say.
fn jwt(j: &model::Jwt) -> (Value, Map<String, Value>) {
    let issuer = j.issuer.clone().unwrap_or_default();
    let source = match j.source.as_ref().map(|s| s.get_ref().as_str()) {
        Some(s) => match s.strip_prefix("header:") {
            Some(h) => format!("$request.header.{h}"),
            None => s.to_string(),
        },
        None => "$request.header.Authorization".into(),
    };
    let scheme = json!({
        "type": "oauth2",
        "flows": {},
        "x-amazon-apigateway-authorizer": {
            "type": "jwt",
            "identitySource": source,
            "jwtConfiguration": {"issuer": issuer, "audience": j.audience},
        }
    });
    let mut extra = Map::new();
    let derived = format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/'));
    if let Some(u) = &j.jwks_url
        && *u.get_ref() != derived
    {
        extra.insert("jwks_url".into(), json!(u.get_ref()));
    }
    if let Some(f) = &j.jwks_file {
        extra.insert("jwks_file".into(), json!(f.get_ref()));
    }
    if let Some(f) = &j.jwks_ca {
        extra.insert("jwks_ca".into(), json!(f.get_ref()));
    }
    if let Some(r) = &j.jwks_refresh {
        extra.insert("jwks_refresh".into(), json!(duration(r.get_ref().0)));
    }
    if let Some(c) = &j.forward_claims {
        extra.insert("forward_claims".into(), json!(c.get_ref()));
    }
    if let Some(l) = j.leeway {
        extra.insert("leeway".into(), json!(duration(l.0)));
    }
    if !j.cache {
        extra.insert("cache".into(), json!(false));
    }
    if j.issuer.is_none() {
        extra.insert("no_issuer".into(), json!(true));
    }
    (scheme, extra)
}

fn duration(d: std::time::Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// `[route.validate]` → parameters and a request body under the validator;
/// what API Gateway has no word for goes to `x-ringway-validate`. Whether
/// the validator is used.
fn validate(v: &model::Validate, base: &Path, op: &mut Map<String, Value>) -> bool {
    let mut used = false;
    let params = op
        .entry("parameters")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = params {
        for (place, names) in [
            ("header", &v.required_headers),
            ("query", &v.required_query),
        ] {
            for n in names {
                list.push(json!({"name": n.get_ref(), "in": place, "required": true, "schema": {"type": "string"}}));
                used = true;
            }
        }
        if list.is_empty() {
            op.remove("parameters");
        }
    }
    let schema = match (&v.json_schema, &v.json_schema_doc) {
        (Some(f), _) => std::fs::read_to_string(base.join(f.get_ref()))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok()),
        (None, Some((doc, _))) => Some(doc.clone()),
        (None, None) => None,
    };
    if let Some(s) = schema {
        op.insert(
            "requestBody".into(),
            json!({"content": {"application/json": {"schema": s}}}),
        );
        used = true;
    }
    if used {
        op.insert(
            "x-amazon-apigateway-request-validator".into(),
            json!("ringway"),
        );
    }
    let mut extra = Map::new();
    if let Some(m) = v.max_body_bytes {
        extra.insert("max_body_bytes".into(), json!(m.0));
    }
    if let Some(m) = &v.json_max_bytes {
        extra.insert("json_max_bytes".into(), json!(m.get_ref().0));
    }
    if !v.content_types.is_empty() {
        extra.insert(
            "content_types".into(),
            v.content_types.iter().map(|c| json!(c.get_ref())).collect(),
        );
    }
    if !extra.is_empty() {
        op.insert("x-ringway-validate".into(), Value::Object(extra));
    }
    used
}

/// `[gateway_responses]` → API Gateway's types where one names the status, else ringway's own.
fn gateway_responses(file: &model::File) -> (Map<String, Value>, Map<String, Value>) {
    let (mut aws, mut own) = (Map::new(), Map::new());
    for (key, r) in &file.gateway_responses {
        let r = r.get_ref();
        let mut v = Map::new();
        if let Some(s) = r.status {
            v.insert("statusCode".into(), json!(s.to_string()));
        }
        if let Some(h) = &r.headers {
            v.insert(
                "responseParameters".into(),
                h.iter()
                    .map(|(k, v)| {
                        (
                            format!("gatewayresponse.header.{k}"),
                            json!(format!("'{v}'")),
                        )
                    })
                    .collect(),
            );
        }
        if let Some(b) = &r.body {
            let ct = r.content_type.clone().unwrap_or("application/json".into());
            v.insert("responseTemplates".into(), json!({ ct: b }));
        }
        match response_type(key) {
            Some(t) => aws.insert(t.into(), Value::Object(v)),
            None => own.insert(key.clone(), Value::Object(v)),
        };
    }
    (aws, own)
}

/// The API Gateway response type whose status ringway keys by `key`.
fn response_type(key: &str) -> Option<&'static str> {
    Some(match key {
        "4xx" => "DEFAULT_4XX",
        "5xx" => "DEFAULT_5XX",
        "429" => "THROTTLED",
        "401" => "UNAUTHORIZED",
        "403" => "ACCESS_DENIED",
        "404" => "RESOURCE_NOT_FOUND",
        "400" => "BAD_REQUEST_BODY",
        "413" => "REQUEST_TOO_LARGE",
        "415" => "UNSUPPORTED_MEDIA_TYPE",
        "500" => "API_CONFIGURATION_ERROR",
        "502" => "INTEGRATION_FAILURE",
        "504" => "INTEGRATION_TIMEOUT",
        _ => return None,
    })
}

/// A JSON value as block YAML; every string double-quoted (JSON's escapes
/// are YAML's), so nothing is read back as another type.
pub fn yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => block_map(m, 0, &mut out),
        Value::Array(a) if !a.is_empty() => block_seq(a, 0, &mut out),
        other => {
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
    out
}

fn inline(v: &Value) -> String {
    match v {
        Value::Object(m) if m.is_empty() => "{}".into(),
        Value::Array(a) if a.is_empty() => "[]".into(),
        other => other.to_string(),
    }
}

fn nested(v: &Value) -> bool {
    matches!(v, Value::Object(m) if !m.is_empty()) || matches!(v, Value::Array(a) if !a.is_empty())
}

fn block_map(m: &Map<String, Value>, indent: usize, out: &mut String) {
    for (k, v) in m {
        out.push_str(&" ".repeat(indent));
        out.push_str(&Value::String(k.clone()).to_string());
        out.push(':');
        write_value(v, indent, out);
    }
}

fn block_seq(a: &[Value], indent: usize, out: &mut String) {
    for v in a {
        out.push_str(&" ".repeat(indent));
        out.push('-');
        write_value(v, indent, out);
    }
}

fn write_value(v: &Value, indent: usize, out: &mut String) {
    if nested(v) {
        out.push('\n');
        match v {
            Value::Object(m) => block_map(m, indent + 2, out),
            Value::Array(a) => block_seq(a, indent + 2, out),
            _ => {}
        }
    } else {
        out.push(' ');
        out.push_str(&inline(v));
        out.push('\n');
    }
}
