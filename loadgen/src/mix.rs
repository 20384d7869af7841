//! Request mixes (`--mix FILE`): one request per line, replayed in
//! proportion to the lines' weights.
//!
//! ```text
//! # comment; blank lines are skipped
//! METHOD PATH [Name:value ...] [@BODY_FILE] [weight=N]
//! GET  /api/items?limit=10
//! GET  /api/items/42 "Authorization: Bearer abc" weight=3
//! POST /api/items Content-Type:application/json @item.json weight=2
//! ```
//!
//! Fields are separated by spaces or tabs; a field in double quotes may
//! hold spaces (`\"` and `\\` inside quotes are a quote and a backslash).
//! `PATH` starts with `/` and may carry a query. A header is `Name:value`;
//! `@FILE` is the request body, read once, relative to the mix file's
//! directory; `weight=N` (1 to 1 000 000, default 1) sets the line's share.

use std::fmt;
use std::path::Path;

/// Largest weight of one line.
pub const MAX_WEIGHT: u32 = 1_000_000;
/// Most lines in a mix.
pub const MAX_LINES: usize = 10_000;

/// One request of a mix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MixLine {
    /// Line number in the file (1-based).
    pub line: usize,
    /// The line as written, trimmed (for reports).
    pub text: String,
    pub method: String,
    /// Path and query.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub weight: u32,
}

/// A parsed mix file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    pub lines: Vec<MixLine>,
}

/// A malformed mix file: which file, which line, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MixError {
    pub file: String,
    /// 0 when the problem is the file as a whole.
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for MixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "--mix {}: {}", self.file, self.reason)
        } else {
            write!(f, "--mix {}:{}: {}", self.file, self.line, self.reason)
        }
    }
}

impl std::error::Error for MixError {}

impl Mix {
    /// Reads and parses a mix file (and the body files it names).
    pub fn load(path: &Path) -> Result<Mix, MixError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| MixError {
            file: file.clone(),
            line: 0,
            reason: format!("cannot read it ({e})"),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Mix::parse(&text, &file, base)
    }

    /// Parses mix text; `file` names it in errors, `base` is where `@FILE`
    /// paths are relative to.
    pub fn parse(text: &str, file: &str, base: &Path) -> Result<Mix, MixError> {
        let mut lines = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let err = |reason: String| MixError {
                file: file.to_string(),
                line: i + 1,
                reason,
            };
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if lines.len() == MAX_LINES {
                return Err(err(format!("more than {MAX_LINES} requests")));
            }
            let fields = split_fields(trimmed).map_err(err)?;
            lines.push(parse_line(&fields, base).map_err(err)?.with(i + 1, trimmed));
        }
        if lines.is_empty() {
            return Err(MixError {
                file: file.to_string(),
                line: 0,
                reason: "holds no request line".into(),
            });
        }
        Ok(Mix { lines })
    }
}

impl MixLine {
    fn with(mut self, line: usize, text: &str) -> Self {
        self.line = line;
        self.text = text.to_string();
        self
    }
}

/// Splits on blanks, honouring double quotes.
fn split_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        let Some(&first) = chars.peek() else { break };
        let mut field = String::new();
        if first == '"' {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("unterminated double quote".into()),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c @ ('"' | '\\')) => field.push(c),
                        _ => return Err("only \\\" and \\\\ may follow a backslash".into()),
                    },
                    Some(c) => field.push(c),
                }
            }
            if chars.peek().is_some_and(|c| *c != ' ' && *c != '\t') {
                return Err("a closing quote must end the field".into());
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ' ' && *c != '\t') {
                field.push(c);
            }
        }
        fields.push(field);
    }
    Ok(fields)
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn parse_line(fields: &[String], base: &Path) -> Result<MixLine, String> {
    let (method, path) = match fields {
        [method, path, ..] => (method, path),
        [_] => return Err("expected METHOD PATH, found only one field".into()),
        [] => return Err("empty line".into()),
    };
    if !is_token(method) {
        return Err(format!("'{method}' is not a method"));
    }
    if !path.starts_with('/') {
        return Err(format!("path '{path}' must start with '/'"));
    }
    if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!(
            "path '{path}' contains spaces or control characters"
        ));
    }
    let mut line = MixLine {
        line: 0,
        text: String::new(),
        method: method.clone(),
        path: path.clone(),
        headers: Vec::new(),
        body: None,
        weight: 1,
    };
    let mut weight_seen = false;
    for field in &fields[2..] {
        if let Some(file) = field.strip_prefix('@') {
            if line.body.is_some() {
                return Err("more than one @BODY_FILE".into());
            }
            if file.is_empty() {
                return Err("'@' needs a file name".into());
            }
            let path = base.join(file);
            let body = std::fs::read(&path)
                .map_err(|e| format!("cannot read body file {} ({e})", path.display()))?;
            line.body = Some(body);
        } else if let Some(w) = field.strip_prefix("weight=") {
            if weight_seen {
                return Err("more than one weight".into());
            }
            weight_seen = true;
            line.weight = w
                .parse::<u32>()
                .ok()
                .filter(|w| (1..=MAX_WEIGHT).contains(w))
                .ok_or_else(|| {
                    format!("weight '{w}' is not a whole number from 1 to {MAX_WEIGHT}")
                })?;
        } else if let Some((name, value)) = field.split_once(':') {
            let (name, value) = (name.trim(), value.trim());
            if !is_token(name) {
                return Err(format!("'{name}' is not a header name"));
            }
            if value.bytes().any(|b| b == b'\r' || b == b'\n') {
                return Err(format!("header '{name}' has a line break in its value"));
            }
            line.headers.push((name.to_string(), value.to_string()));
        } else {
            return Err(format!(
                "'{field}' is neither a header (Name:value), a body (@FILE) nor a weight (weight=N)"
            ));
        }
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Mix, MixError> {
        Mix::parse(text, "m.txt", Path::new("."))
    }

    #[test]
    fn parses_lines() {
        let mix = parse(
            "# a comment\n\nGET /a?x=1\n  POST /b \"Authorization: Bearer a b\" X-N:1 weight=3\n",
        )
        .unwrap();
        assert_eq!(mix.lines.len(), 2);
        let a = &mix.lines[0];
        assert_eq!(
            (a.line, a.method.as_str(), a.path.as_str(), a.weight),
            (3, "GET", "/a?x=1", 1)
        );
        let b = &mix.lines[1];
        assert_eq!(b.line, 4);
        assert_eq!(b.weight, 3);
        assert_eq!(
            b.headers,
            vec![
                ("Authorization".to_string(), "Bearer a b".to_string()),
                ("X-N".to_string(), "1".to_string())
            ]
        );
        assert_eq!(
            b.text,
            "POST /b \"Authorization: Bearer a b\" X-N:1 weight=3"
        );
    }

    /// The examples in the README and in `--help` parse as documented.
    #[test]
    fn documented_examples_parse() {
        let dir = std::env::temp_dir().join(format!("ringway-load-mix-doc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("item.json"), b"{}").unwrap();
        let readme = include_str!("../README.md");
        let section = &readme[readme.find("## Request mixes").unwrap()..];
        let block = section
            .split("```text\n")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .unwrap();
        let help_example = crate::cli::MIX_HELP.split("Example:\n").nth(1).unwrap();
        for text in [block, help_example] {
            let mix = Mix::parse(text, "doc", &dir).unwrap();
            let weights: Vec<u32> = mix.lines.iter().map(|l| l.weight).collect();
            assert_eq!(weights, vec![6, 3, 1], "{text}");
            assert_eq!(mix.lines[1].headers[0].1, "Bearer abc");
            assert_eq!(mix.lines[2].body.as_deref(), Some(&b"{}"[..]));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("GET\n", 1, "only one field"),
            ("GET /a\nGET a\n", 2, "must start with '/'"),
            ("G(T /a\n", 1, "not a method"),
            ("GET /a weight=0\n", 1, "weight"),
            ("GET /a weight=x\n", 1, "weight"),
            ("GET /a bogus\n", 1, "neither a header"),
            ("GET /a \"open\n", 1, "unterminated"),
            ("GET /a @/nonexistent/body\n", 1, "cannot read body file"),
            ("# only a comment\n", 0, "no request line"),
        ];
        for (text, line, what) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.to_string().contains(what), "{text:?}: {e}");
            if line > 0 {
                assert!(
                    e.to_string().starts_with(&format!("--mix m.txt:{line}: ")),
                    "{e}"
                );
            }
        }
    }
}
