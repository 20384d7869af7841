//! Control plane: a `[route.mapping]` table → [`Mapping`]: each key
//! (`overwrite:header.x`) and value (`$request.header.y`, or text with
//! `${...}`s) parsed and checked once.

use super::{Mapping, Op, Rule, Source, Value};
use crate::config::model;
use crate::policy::{Problem, throttle};
use std::collections::BTreeMap;

/// Control plane: `[route.mapping]` → [`Mapping`]; `params` are the route's path parameters.
pub fn compile(t: &model::Mapping, params: &[&str]) -> Result<Mapping, Problem> {
    let mut m = Mapping::default();
    let span = |map: &Option<toml::Spanned<BTreeMap<String, String>>>| {
        map.as_ref().map_or(0..0, |s| s.span())
    };
    if let Some(req) = &t.request {
        for (key, value) in req.get_ref() {
            let at =
                |msg: String| Problem::new(span(&t.request), format!("request.\"{key}\""), msg);
            let (op, target, name) = parse_key(key).map_err(at)?;
            let value = if op == Op::Remove {
                Value::new()
            } else {
                parse_value(value, params).map_err(at)?
            };
            m.uses_client_ip |= value.contains(&Source::ClientIp);
            match target {
                "header" => {
                    if op != Op::Append {
                        m.replaced.push(name.clone());
                    }
                    m.headers.push(Rule { op, name, value });
                }
                "querystring" => m.query.push(Rule { op, name, value }),
                "path" if op == Op::Overwrite => {
                    if !matches!(value.first(), Some(Source::Literal(l)) if l.starts_with(b"/")) {
                        return Err(at(
                            "a path overwrite must start with a literal `/` (such as \"/v2/${request.path.proxy}\")".into(),
                        ));
                    }
                    let bad = value.iter().any(|s| {
                        matches!(s, Source::Literal(l) if l.iter().any(|&b| b <= b' ' || b"?#%\\\"<>^`{|}".contains(&b)))
                    });
                    if bad {
                        return Err(at(
                            "a path literal may not hold spaces, `?`, `#`, `%` or other characters a path cannot carry as they are".into(),
                        ));
                    }
                    m.path = Some(value);
                }
                "path" => {
                    return Err(at(
                        "the path can only be overwritten: `overwrite:path`".into()
                    ));
                }
                _ => {
                    return Err(at(format!(
                        "{target:?}: map `header.NAME`, `querystring.NAME` or `path`"
                    )));
                }
            }
        }
    }
    if let Some(resp) = &t.response {
        for (key, value) in resp.get_ref() {
            let at =
                |msg: String| Problem::new(span(&t.response), format!("response.\"{key}\""), msg);
            let (op, target, name) = parse_key(key).map_err(at)?;
            if target != "header" {
                return Err(at("a response mapping works on `header.NAME`".into()));
            }
            let value = if op == Op::Remove {
                Value::new()
            } else {
                parse_value(value, params).map_err(at)?
            };
            m.uses_client_ip |= value.contains(&Source::ClientIp);
            if op != Op::Append {
                m.response_replaced.push(name.clone());
            }
            if op != Op::Remove {
                m.response.push(Rule { op, name, value });
            }
        }
    }
    Ok(m)
}

fn parse_key(key: &str) -> Result<(Op, &str, Box<[u8]>), String> {
    let bad = || {
        format!(
            "{key:?}: write `overwrite:header.NAME`, `append:querystring.NAME`, `remove:header.NAME`, `overwrite:path`, ..."
        )
    };
    let (op, rest) = key.split_once(':').ok_or_else(bad)?;
    let op = match op {
        "overwrite" => Op::Overwrite,
        "append" => Op::Append,
        "remove" => Op::Remove,
        _ => return Err(bad()),
    };
    if rest == "path" {
        return Ok((op, "path", Box::default()));
    }
    let (target, name) = rest.split_once('.').ok_or_else(bad)?;
    match target {
        "header" if throttle::is_token(name) => {
            Ok((op, "header", name.to_ascii_lowercase().into_bytes().into()))
        }
        "querystring" if !name.is_empty() && !name.contains(['&', '=', '#', ' ']) => {
            Ok((op, "querystring", name.as_bytes().into()))
        }
        "header" | "querystring" => Err(format!("{name:?} is not a valid name")),
        _ => Ok((op, "other", Box::default())),
    }
}

fn check_literal(v: &str) -> Result<(), String> {
    if v.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err("a value may not hold control characters (CR, LF, ...)".into());
    }
    Ok(())
}

const VARIABLES: &str = "$request.header.NAME, $request.querystring.NAME, $request.path.NAME, $context.requestId or $context.identity.sourceIp";

/// A value: `$request.header.x` alone, or a literal with `${request.header.x}`s in it.
fn parse_value(v: &str, params: &[&str]) -> Result<Value, String> {
    check_literal(v)?;
    if let Some(var) = v.strip_prefix('$')
        && !var.starts_with('{')
    {
        return Ok(vec![parse_var(var, params)?]);
    }
    let mut out = Vec::new();
    let mut rest = v;
    while let Some(at) = rest.find("${") {
        if at > 0 {
            out.push(Source::Literal(rest.as_bytes()[..at].into()));
        }
        let inner = &rest[at + 2..];
        let end = inner
            .find('}')
            .ok_or_else(|| format!("{v:?}: `${{` without its `}}`"))?;
        out.push(parse_var(&inner[..end], params)?);
        rest = &inner[end + 1..];
    }
    if !rest.is_empty() || out.is_empty() {
        out.push(Source::Literal(rest.as_bytes().into()));
    }
    Ok(out)
}

fn parse_var(var: &str, params: &[&str]) -> Result<Source, String> {
    if let Some(n) = var.strip_prefix("request.header.")
        && throttle::is_token(n)
    {
        return Ok(Source::Header(n.to_ascii_lowercase().into_bytes().into()));
    }
    if let Some(n) = var.strip_prefix("request.querystring.")
        && !n.is_empty()
    {
        return Ok(Source::Query(n.as_bytes().into()));
    }
    if let Some(n) = var.strip_prefix("request.path.") {
        if !params.contains(&n) {
            return Err(format!(
                "the route's path has no parameter {{{n}}} (it has {params:?})"
            ));
        }
        return Ok(Source::PathParam(n.to_string()));
    }
    match var {
        "context.identity.sourceIp" => Ok(Source::ClientIp),
        "context.requestId" => Ok(Source::RequestId),
        _ => Err(format!(
            "${var} is not supported: use a literal, {VARIABLES}"
        )),
    }
}
