//! Amazon API Gateway exports (OpenAPI 3.0/3.1 or Swagger 2.0, JSON or
//! YAML, with the `x-amazon-apigateway-*` extensions) served as they are,
//! and the config written back as such a document.
//!
//! Import produces the config model the TOML loader produces, so routing,
//! policies and reload need nothing of their own:
//!
//! - [`tree`] reads JSON and YAML into one tree that keeps every node's span;
//! - `import` maps the document (paths, operations, security, CORS, the
//!   resource policy, gateway responses, the stage) onto model values;
//!   `integration` the integrations and the upstreams they need; `schema`
//!   the request validators and `$ref`s;
//! - [`load`] merges every document (`--openapi FILE`, `[[openapi]]`) into
//!   the TOML's model and compiles it. Each document's text is appended to
//!   the compiler's source as a segment, so the compiler's own errors name
//!   the document, the line and the JSON pointer;
//! - [`export`] writes a compiled config's model as OpenAPI 3.0.
//!
//! What cannot be served as written is never dropped silently: each such
//! item is a [`Warning`] naming its JSON pointer, or an error with `strict`.

pub mod export;
mod import;
mod integration;
mod own;
mod policies;
mod schema;
mod security;
pub mod tree;

#[cfg(test)]
mod tests;

use crate::config::error::{ConfigError, Segment, locate};
use crate::config::{Extension, model};
use crate::snapshot::{Snapshot, Sources};
use std::fmt;
use std::path::{Path, PathBuf};

pub use integration::UNRESOLVED;

/// An item of an imported document that is not served as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// JSON pointer of the item.
    pub pointer: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: `{}`: {}",
            self.file.display(),
            self.line,
            self.column,
            self.pointer,
            self.message
        )
    }
}

/// Reads and compiles the TOML config (if any) with every OpenAPI document
/// it names and `sources` adds: the snapshot, and the items not served as
/// written.
pub fn load(sources: &Sources) -> Result<(Snapshot, Vec<Warning>), ConfigError> {
    load_resolved(sources, None, &Default::default())
}

/// Like [`load`], with the TOML text given (`None`: read the file) and
/// target names resolved as `resolved` says (a DNS change).
pub fn load_resolved(
    sources: &Sources,
    config_text: Option<&str>,
    resolved: &crate::resilience::Resolved,
) -> Result<(Snapshot, Vec<Warning>), ConfigError> {
    load_model(sources, config_text, resolved).map(|(snap, _, warnings)| (snap, warnings))
}

/// Like [`load_resolved`], keeping the merged file model (for [`export`]).
pub fn load_model(
    sources: &Sources,
    config_text: Option<&str>,
    resolved: &crate::resilience::Resolved,
) -> Result<(Snapshot, model::File, Vec<Warning>), ConfigError> {
    let (path, text) = match (&sources.config, config_text) {
        (Some(p), Some(t)) => (p.clone(), t.to_owned()),
        (Some(p), None) => (
            p.clone(),
            std::fs::read_to_string(p).map_err(|e| ConfigError::io(p, e))?,
        ),
        (None, _) => (
            sources.openapi.first().cloned().unwrap_or_default(),
            String::new(),
        ),
    };
    let mut warnings = Vec::new();
    let (mut snap, file) =
        crate::config::compile_model(&path, &text, resolved, |file, base, start| {
            extend(file, base, start, sources, &mut warnings)
        })?;
    snap.sources = sources.clone();
    Ok((snap, file, warnings))
}

/// Imports each document into `file`; see [`crate::config::compile_with`].
fn extend(
    file: &mut model::File,
    base: &Path,
    start: usize,
    sources: &Sources,
    warnings: &mut Vec<Warning>,
) -> Extension {
    let mut docs: Vec<(PathBuf, Option<(usize, model::OpenApi)>)> = file
        .openapi
        .iter()
        .enumerate()
        .map(|(i, t)| (base.join(t.file.get_ref()), Some((i, t.clone()))))
        .collect();
    docs.extend(sources.openapi.iter().map(|p| (p.clone(), None)));
    let taken = file
        .upstream
        .iter()
        .map(|u| u.name.get_ref().clone())
        .collect();
    let mut cx = Merge {
        ext: Extension::default(),
        upstreams: integration::Upstreams::new(taken, true),
        start,
        strict: sources.strict,
        warnings,
    };
    for (path, table) in &docs {
        match std::fs::read_to_string(path) {
            Ok(text) => cx.document(file, path, table.as_ref().map(|(_, t)| t), &text),
            Err(e) => {
                let message = format!("cannot read {}: {e}", path.display());
                match table {
                    Some((i, t)) => {
                        cx.ext
                            .problems
                            .push((t.file.span(), format!("openapi[{i}].file"), message))
                    }
                    None => {
                        let off = cx.start + cx.ext.text.len();
                        cx.ext.text.push('\n');
                        cx.ext.segments.push(Segment {
                            range: off..off + 1,
                            file: path.clone(),
                            keys: Vec::new(),
                        });
                        cx.ext.problems.push((off..off, String::new(), message));
                    }
                }
            }
        }
    }
    cx.finish(file)
}

/// Compiles one document's text (named `name` in messages) on its own, as
/// `ringway serve --openapi` would, without resolving host names (integration
/// hosts that are not IP addresses count as unresolved). The fuzz target's
/// entry point.
pub fn from_text(name: &Path, text: &str) -> Result<(Snapshot, Vec<Warning>), ConfigError> {
    let mut warnings = Vec::new();
    let snap = crate::config::compile_with(name, "", &Default::default(), |file, _, start| {
        let mut cx = Merge {
            ext: Extension::default(),
            upstreams: integration::Upstreams::new(Vec::new(), false),
            start,
            strict: false,
            warnings: &mut warnings,
        };
        cx.document(file, name, None, text);
        cx.finish(file)
    })?;
    Ok((snap, warnings))
}

/// Documents being merged into one file model.
struct Merge<'w> {
    ext: Extension,
    upstreams: integration::Upstreams,
    /// Where the appended text starts in the compiler's source.
    start: usize,
    strict: bool,
    warnings: &'w mut Vec<Warning>,
}

impl Merge<'_> {
    /// Appends one document's text as a segment and its routes, responses
    /// and stage to `file`.
    fn document(
        &mut self,
        file: &mut model::File,
        path: &Path,
        table: Option<&model::OpenApi>,
        text: &str,
    ) {
        let off = self.start + self.ext.text.len();
        self.ext.text.push_str(text);
        self.ext.text.push('\n');
        let mut segment = Segment {
            range: off..off + text.len() + 1,
            file: path.to_path_buf(),
            keys: Vec::new(),
        };
        let root = match tree::parse(text) {
            Ok(root) => root,
            Err(e) => {
                let at = off + e.at;
                let message = format!("not a JSON or YAML document: {}", e.message);
                self.ext.problems.push((at..at, String::new(), message));
                self.ext.segments.push(segment);
                return;
            }
        };
        let mut keys = Vec::new();
        root.pointers("", &mut keys);
        segment.keys = keys
            .into_iter()
            .map(|(r, p)| (r.start + off..r.end + off, p))
            .collect();
        let mut im = import::Importer {
            root: &root,
            off,
            table,
            upstreams: &mut self.upstreams,
            out: import::Imported::default(),
        };
        im.run();
        let out = im.out;
        let warn = |span: &std::ops::Range<usize>, message: String| {
            warning(&segment, text, off, span, message)
        };
        for e in out.errors {
            self.ext.problems.push((e.span, String::new(), e.message));
        }
        for item in out.items {
            if self.strict {
                let message = format!("unsupported (--strict): {}", item.message);
                self.ext.problems.push((item.span, String::new(), message));
            } else {
                self.warnings.push(warn(&item.span, item.message));
            }
        }
        for item in out.notices {
            self.warnings.push(warn(&item.span, item.message));
        }
        file.route.extend(out.routes);
        for (key, r) in out.gateway_responses {
            match file.gateway_responses.entry(key) {
                std::collections::btree_map::Entry::Occupied(e) => {
                    let message =
                        format!("[gateway_responses.\"{}\"] of the TOML is kept", e.key());
                    self.warnings.push(warn(&r.span(), message));
                }
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(r);
                }
            }
        }
        if let Some(stage) = out.stage {
            let explicit = stage.span().end <= self.start;
            match &file.server.stage {
                None => file.server.stage = Some(stage),
                Some(s) if s.get_ref() == stage.get_ref() => {}
                Some(s) if explicit => self.ext.problems.push((
                    stage.span(),
                    "openapi.stage".into(),
                    format!(
                        "stage {:?} differs from the stage {:?} already set: ringway serves one stage",
                        stage.get_ref(),
                        s.get_ref()
                    ),
                )),
                Some(s) => {
                    let message = format!(
                        "basePath {:?}: the stage is {:?} (set in the TOML or by an earlier document)",
                        stage.get_ref(),
                        s.get_ref()
                    );
                    self.warnings.push(warn(&stage.span(), message));
                }
            }
        }
        self.ext.segments.push(segment);
    }

    /// The made upstreams join the file; the extension for the compiler.
    fn finish(self, file: &mut model::File) -> Extension {
        file.upstream.extend(self.upstreams.list);
        self.warnings
            .sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        self.ext
    }
}

fn warning(
    segment: &Segment,
    text: &str,
    off: usize,
    span: &std::ops::Range<usize>,
    message: String,
) -> Warning {
    let (line, column, _) = locate(text, span.start.saturating_sub(off));
    Warning {
        file: segment.file.clone(),
        line,
        column,
        pointer: segment.key(span).unwrap_or_default().to_string(),
        message,
    }
}
