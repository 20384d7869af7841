//! Config errors that name the file, line, column and key, all reported at once.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in a config file.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// The file the problem is in, when not the config file itself (an included keys file).
    pub file: Option<PathBuf>,
    pub line: usize,
    pub column: usize,
    /// Dotted key path, e.g. `server.limits.max_headers` or `route[2].upstream`.
    pub key: String,
    pub message: String,
    /// The offending source line, quoted in the report.
    pub snippet: String,
}

/// Every problem found in one config file.
#[derive(Debug)]
pub struct ConfigError {
    pub file: PathBuf,
    pub diagnostics: Vec<Diagnostic>,
}

impl ConfigError {
    pub fn io(file: &Path, e: std::io::Error) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            diagnostics: vec![Diagnostic {
                file: None,
                line: 0,
                column: 0,
                key: String::new(),
                message: format!("cannot read the file: {e}"),
                snippet: String::new(),
            }],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", d.file.as_ref().unwrap_or(&self.file).display())?;
            if d.line > 0 {
                write!(f, ":{}:{}", d.line, d.column)?;
            }
            if d.key.is_empty() {
                write!(f, ": {}", d.message)?;
            } else {
                write!(f, ": key `{}`: {}", d.key, d.message)?;
            }
            if !d.snippet.is_empty() {
                write!(f, "\n    {} | {}", d.line, d.snippet)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Collects diagnostics against one source text.
pub struct Collector<'s> {
    pub source: &'s str,
    pub diagnostics: Vec<Diagnostic>,
    /// Documents appended to the source after the config text (OpenAPI
    /// imports): a problem in one of them names its file and line.
    pub segments: Vec<Segment>,
}

/// A document whose text follows the config text in a [`Collector`]'s
/// source, so model values read from it carry spans past the config text.
/// A problem whose span starts in it names its file, its own line and
/// column, and the key (a JSON pointer) that `keys` gives the innermost
/// span holding it.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Byte range of the document in the source.
    pub range: Range<usize>,
    pub file: PathBuf,
    /// Spans (in the source) and the key each names.
    pub keys: Vec<(Range<usize>, String)>,
}

impl Segment {
    /// The key of the innermost span holding `span` (an exact match first).
    pub fn key(&self, span: &Range<usize>) -> Option<&str> {
        if let Some((_, k)) = self.keys.iter().rev().find(|(s, _)| s == span) {
            return Some(k);
        }
        self.keys
            .iter()
            .filter(|(s, _)| s.start <= span.start && span.start < s.end.max(s.start + 1))
            .min_by_key(|(s, _)| (s.end - s.start, usize::MAX - s.start))
            .map(|(_, k)| k.as_str())
    }
}

impl<'s> Collector<'s> {
    pub fn new(source: &'s str) -> Self {
        Collector {
            source,
            diagnostics: Vec::new(),
            segments: Vec::new(),
        }
    }

    /// Records a problem at byte range `span` of the source.
    pub fn at(&mut self, span: Range<usize>, key: impl Into<String>, message: impl Into<String>) {
        if let Some(seg) = self.segments.iter().find(|s| {
            s.range.start <= span.start && span.start < s.range.end.max(s.range.start + 1)
        }) {
            let text = self.source.get(seg.range.clone()).unwrap_or_default();
            let (line, column, snippet) = locate(text, span.start - seg.range.start);
            let key = seg.key(&span).map_or_else(|| key.into(), str::to_string);
            self.diagnostics.push(Diagnostic {
                file: Some(seg.file.clone()),
                line,
                column,
                key,
                message: message.into(),
                snippet,
            });
            return;
        }
        let (line, column, snippet) = locate(self.source, span.start);
        self.diagnostics.push(Diagnostic {
            file: None,
            line,
            column,
            key: key.into(),
            message: message.into(),
            snippet,
        });
    }

    /// 1-based line and column of byte `pos` of the source.
    pub fn position(&self, pos: usize) -> (usize, usize) {
        let (line, column, _) = locate(self.source, pos);
        (line, column)
    }

    /// Records a problem with no place in the file (a default value, or the file as a whole).
    pub fn global(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic {
            file: None,
            line: 0,
            column: 0,
            key: key.into(),
            message: message.into(),
            snippet: String::new(),
        });
    }

    /// Turns a TOML/serde error into a diagnostic, recovering the key path.
    pub fn toml(&mut self, e: &toml::de::Error) {
        let mut bare = e.clone();
        bare.set_input(None);
        let rendered = bare.to_string();
        let key = rendered
            .lines()
            .find_map(|l| l.strip_prefix("in `").and_then(|k| k.strip_suffix('`')))
            .unwrap_or_default()
            .to_string();
        let message = e.message().trim().to_string();
        match e.span() {
            Some(span) => {
                let key = if key.is_empty() {
                    key_on_line(self.source, span.start)
                } else {
                    key
                };
                self.at(span, key, message)
            }
            None => self.global(key, message),
        }
    }

    /// Moves the diagnostics of `other` (collected against another file's text) here, naming that file.
    pub fn absorb(&mut self, file: &Path, other: Collector<'_>) {
        self.diagnostics
            .extend(other.diagnostics.into_iter().map(|d| Diagnostic {
                file: Some(file.to_path_buf()),
                ..d
            }));
    }

    /// The value, or every diagnostic in the order of the file (then of an included file).
    pub fn finish<T>(mut self, file: &Path, value: T) -> Result<T, ConfigError> {
        self.diagnostics
            .sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        if self.diagnostics.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError {
                file: file.to_path_buf(),
                diagnostics: self.diagnostics,
            })
        }
    }
}

/// 1-based line and column of byte `pos`, and that line's text.
pub fn locate(source: &str, pos: usize) -> (usize, usize, String) {
    if source.is_empty() {
        return (1, 1, String::new());
    }
    let pos = pos.min(source.len());
    let line_start = source[..pos].rfind('\n').map_or(0, |i| i + 1);
    let line_end = source[pos..].find('\n').map_or(source.len(), |i| pos + i);
    let line = source[..line_start].matches('\n').count() + 1;
    let column = source[line_start..pos].chars().count() + 1;
    (
        line,
        column,
        source[line_start..line_end].trim_end().to_string(),
    )
}

/// The `key` of a `key = value` line, for errors toml reports without a key path.
fn key_on_line(source: &str, pos: usize) -> String {
    let (_, _, line) = locate(source, pos);
    match line.split_once('=') {
        Some((k, _)) if !k.trim_start().starts_with('[') => k.trim().to_string(),
        _ => String::new(),
    }
}
