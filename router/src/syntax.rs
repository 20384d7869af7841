//! Path template syntax: `/pets/{petId}`, `/files/{path+}`, `/`.
//!
//! A template is `/` or one or more `/segment`s. A segment is a literal, a
//! `{name}` (exactly one non-empty request segment) or, only as the last
//! segment, a greedy `{name+}` (one or more segments). A parameter fills its
//! whole segment: `a{b}` and `{a}{b}` are errors, as in API Gateway.

use crate::percent;

pub(crate) use crate::limits::MAX_SEGMENTS;

/// One segment of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// Percent-decoded literal bytes (compared with decoded request bytes).
    Literal(Box<[u8]>),
    Param(Box<str>),
    Greedy(Box<str>),
}

/// A parsed path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathTemplate {
    pub segments: Vec<Segment>,
}

impl PathTemplate {
    /// The parameter names, in order (a greedy one without its `+`).
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(n) | Segment::Greedy(n) => Some(&**n),
            Segment::Literal(_) => None,
        })
    }
}

/// Parses a path template; the error says what is wrong with it.
pub(crate) fn parse_path(template: &str) -> Result<PathTemplate, String> {
    let Some(body) = template.strip_prefix('/') else {
        return Err("a path template must start with `/`".into());
    };
    let mut segments = Vec::new();
    if body.is_empty() {
        return Ok(PathTemplate { segments });
    }
    if body.ends_with('/') {
        return Err(format!(
            "trailing `/`: write `/{}` (requests with a trailing `/` match it anyway)",
            body.trim_end_matches('/')
        ));
    }
    let parts: Vec<&str> = body.split('/').collect();
    if parts.len() > MAX_SEGMENTS {
        return Err(format!("more than {MAX_SEGMENTS} segments"));
    }
    for (i, part) in parts.iter().enumerate() {
        let segment = parse_segment(part)?;
        if let Segment::Greedy(name) = &segment
            && i + 1 != parts.len()
        {
            return Err(format!("greedy `{{{name}+}}` must be the last segment"));
        }
        if let Segment::Param(name) | Segment::Greedy(name) = &segment
            && segments
                .iter()
                .any(|s| matches!(s, Segment::Param(n) | Segment::Greedy(n) if n == name))
        {
            return Err(format!("parameter `{name}` appears twice"));
        }
        segments.push(segment);
    }
    Ok(PathTemplate { segments })
}

fn parse_segment(part: &str) -> Result<Segment, String> {
    if part.is_empty() {
        return Err("empty segment (`//`)".into());
    }
    let Some(inner) = part.strip_prefix('{') else {
        return parse_literal(part);
    };
    let Some(inner) = inner.strip_suffix('}') else {
        return Err(if part.contains('}') {
            format!("`{part}`: a parameter must fill its whole segment")
        } else {
            format!("`{part}`: unclosed `{{`")
        });
    };
    let (name, greedy) = match inner.strip_suffix('+') {
        Some(name) => (name, true),
        None => (inner, false),
    };
    if name.contains(['{', '}']) {
        return Err(format!("`{part}`: one parameter per segment"));
    }
    check_param_name(name).map_err(|e| format!("`{part}`: {e}"))?;
    Ok(if greedy {
        Segment::Greedy(name.into())
    } else {
        Segment::Param(name.into())
    })
}

/// A parameter name: letters, digits, `_`, `-` and `.`, not empty.
pub(crate) fn check_param_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty parameter name".into());
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "parameter name `{name}` has `{c}` (allowed: letters, digits, `_`, `-`, `.`)"
        ));
    }
    Ok(())
}

fn parse_literal(part: &str) -> Result<Segment, String> {
    if part.contains(['{', '}']) {
        return Err(format!("`{part}`: a parameter must fill its whole segment"));
    }
    if let Some(c) = part
        .chars()
        .find(|&c| c.is_ascii_control() || c == ' ' || c == '?' || c == '#')
    {
        return Err(format!("`{part}`: {c:?} is not allowed in a path"));
    }
    let mut decoded = Vec::with_capacity(part.len());
    percent::decode_into(part.as_bytes(), &mut decoded)
        .map_err(|_| format!("`{part}`: invalid percent-encoding"))?;
    if decoded.contains(&b'/') {
        return Err(format!(
            "`{part}`: an encoded `/` is not allowed in a literal segment"
        ));
    }
    Ok(Segment::Literal(decoded.into_boxed_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Segment {
        Segment::Literal(s.as_bytes().into())
    }

    #[test]
    fn parses_valid_templates() {
        let table: &[(&str, Vec<Segment>)] = &[
            ("/", vec![]),
            ("/pets", vec![lit("pets")]),
            (
                "/pets/{petId}",
                vec![lit("pets"), Segment::Param("petId".into())],
            ),
            ("/{proxy+}", vec![Segment::Greedy("proxy".into())]),
            (
                "/a%20b/{x}/{y+}",
                vec![
                    lit("a b"),
                    Segment::Param("x".into()),
                    Segment::Greedy("y".into()),
                ],
            ),
        ];
        for (text, want) in table {
            assert_eq!(parse_path(text).unwrap().segments, *want, "{text}");
        }
    }

    #[test]
    fn rejects_bad_templates() {
        let table: &[(&str, &str)] = &[
            ("", "must start with `/`"),
            ("pets", "must start with `/`"),
            ("/{}", "empty parameter name"),
            ("/{+}", "empty parameter name"),
            ("/{a+}/b", "must be the last segment"),
            ("/{a", "unclosed"),
            ("/{a}{b}", "one parameter per segment"),
            ("/x{a}", "whole segment"),
            ("/{a}x", "whole segment"),
            ("/{a}/{a}", "appears twice"),
            ("/{a}/{a+}", "appears twice"),
            ("/a//b", "empty segment"),
            ("/a/", "trailing `/`"),
            ("/a%zz", "percent-encoding"),
            ("/a%2Fb", "encoded `/`"),
            ("/a b", "not allowed"),
            ("/{a b}", "parameter name"),
        ];
        for (text, want) in table {
            let err = parse_path(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
        let deep = "/a".repeat(MAX_SEGMENTS + 1);
        assert!(parse_path(&deep).is_err());
    }
}
