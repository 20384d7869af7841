//! Reading config text into the file model with every structural error
//! reported in one run.
//!
//! serde stops at the first unknown key, wrong type or missing key. So the
//! text is parsed once into a spanned TOML tree; the model is deserialized
//! from a working copy of it; on an error, the node the error's span points
//! at (a key, a value, a table missing a key) is recorded and removed from
//! the working copy, and the model is deserialized again, up to
//! [`MAX_ERRORS`] times. A value of the wrong type is replaced by an empty
//! one of the right type where it can be (`targets = "a:1"` by `[]`), so a
//! required key keeps its table; the compiler's complaints about such a
//! placeholder are dropped, the type error said it all. Spans come from the
//! untouched text, so every error keeps its line and column; key paths are
//! named from the original tree, so indices (`route[2]`) are those of the file.

use super::error::Collector;
use serde::de::DeserializeOwned;
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

/// Structural errors reported before giving up on a file.
const MAX_ERRORS: usize = 64;

/// One step of a path through the TOML tree.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Step {
    Key(String),
    Index(usize),
}

/// Renders a path as the key diagnostics name: `route[1].throttle.rate`.
fn key_path(steps: &[Step]) -> String {
    let mut s = String::new();
    for step in steps {
        match step {
            Step::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                let bare = !k.is_empty()
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if bare {
                    s.push_str(k);
                } else {
                    s.push_str(&format!("{k:?}"));
                }
            }
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// What reading changed to get a model: array elements dropped (an
/// `[[upstream]]` that could not be read at all) and values replaced by
/// placeholders. Maps the model's array indices back to the file's own, and
/// tells which later diagnostics are about a placeholder.
#[derive(Default)]
pub(super) struct Renumber {
    /// Array key path (`route`) → file index of each element left, in order.
    kept: HashMap<String, Vec<usize>>,
    /// Byte ranges of the values replaced by placeholders.
    replaced: Vec<Range<usize>>,
}

impl Renumber {
    /// `route[1].uri` of the model read → `route[2].uri` when the file's `route[1]` was dropped.
    pub(super) fn key(&self, key: &str) -> String {
        for (array, kept) in &self.kept {
            let Some(rest) = key
                .strip_prefix(array.as_str())
                .and_then(|r| r.strip_prefix('['))
            else {
                continue;
            };
            let Some((n, tail)) = rest.split_once(']') else {
                continue;
            };
            if let Some(&orig) = n.parse::<usize>().ok().and_then(|n| kept.get(n)) {
                return format!("{array}[{orig}]{tail}");
            }
        }
        key.to_string()
    }

    /// Renumbers the keys of the diagnostics from `from` on, and drops
    /// those about a placeholder.
    pub(super) fn apply(&self, c: &mut Collector<'_>, from: usize) {
        let placeholders: Vec<_> = self
            .replaced
            .iter()
            .map(|r| (c.position(r.start), c.position(r.end)))
            .collect();
        let mut i = from;
        while i < c.diagnostics.len() {
            // Diagnostics absorbed from another file keep that file's numbering.
            let d = &mut c.diagnostics[i];
            if d.file.is_some() {
                i += 1;
                continue;
            }
            let at = (d.line, d.column);
            if placeholders
                .iter()
                .any(|(start, end)| *start <= at && at < *end)
            {
                c.diagnostics.remove(i);
                continue;
            }
            d.key = self.key(&d.key);
            i += 1;
        }
    }
}

/// Deserializes `T` from `c`'s source, recording every syntax and structural
/// error in `c`. `None` when the text is not TOML, or past [`MAX_ERRORS`];
/// otherwise the model read from what could be read (with errors recorded
/// for the rest), and how its array indices map to the file's.
pub(super) fn read<T: DeserializeOwned>(c: &mut Collector<'_>) -> Option<(T, Renumber)> {
    let source = c.source;
    let (original, syntax) = DeTable::parse_recoverable(source);
    if !syntax.is_empty() {
        for e in &syntax {
            c.toml(e);
        }
        return None;
    }
    let mut work = original.clone();
    let mut renumber = Renumber::default();
    // (table path, key) pairs removed: that table's "missing field" follows from it.
    let mut removed: HashSet<(String, String)> = HashSet::new();
    for _ in 0..MAX_ERRORS {
        let e = match T::deserialize(toml::de::Deserializer::from(work.clone())) {
            Ok(value) => return Some((value, renumber)),
            Err(e) => e,
        };
        let found = e.span().and_then(|span| {
            let steps = locate(work.get_ref(), &span)?;
            let named = locate(original.get_ref(), &span)?;
            Some((span, steps, named))
        });
        let Some((span, steps, named)) = found.filter(|(_, steps, _)| !steps.is_empty()) else {
            // Nothing to take away (an error about the whole file): report it and stop.
            c.toml(&e);
            return None;
        };
        let key = key_path(&named);
        match missing_field(e.message()) {
            Some(field) if removed.contains(&(key.clone(), field.to_string())) => {}
            // A placeholder that does not do after all: already reported.
            _ if renumber.replaced.contains(&span) => {}
            _ => c.at(span.clone(), key, explain(e.message())),
        }
        if let Some(empty) = placeholder(e.message())
            && replace(work.get_mut(), &steps, &span, empty)
        {
            renumber.replaced.push(span);
            continue;
        }
        let (last, parent) = named.split_last().expect("a non-empty path");
        match last {
            Step::Key(k) => {
                removed.insert((key_path(parent), k.clone()));
            }
            Step::Index(i) => {
                let len = array_len(work.get_ref(), &steps[..steps.len() - 1]);
                let kept = renumber
                    .kept
                    .entry(key_path(parent))
                    .or_insert_with(|| (0..len).collect());
                if let Some(pos) = kept.iter().position(|k| k == i) {
                    kept.remove(pos);
                }
            }
        }
        remove(work.get_mut(), &steps);
    }
    c.global(
        "",
        format!("more than {MAX_ERRORS} errors: fix these first"),
    );
    None
}

/// An empty value of the type an "invalid type" error expected, if it has one.
fn placeholder(message: &str) -> Option<DeValue<'static>> {
    let expected = message
        .strip_prefix("invalid type: ")?
        .rsplit_once(", expected ")?
        .1;
    Some(match expected {
        "a string" => DeValue::String("".into()),
        "a sequence" => DeValue::Array(DeArray::new()),
        "a boolean" => DeValue::Boolean(false),
        e if e == "a map" || e.starts_with("struct ") => DeValue::Table(DeTable::new()),
        _ => return None,
    })
}

/// Replaces the value at `steps` by `with` if that value is the one at
/// `span` (not its key); whether it did.
fn replace<'i>(
    t: &mut DeTable<'i>,
    steps: &[Step],
    span: &Range<usize>,
    with: DeValue<'i>,
) -> bool {
    let Some((Step::Key(k), rest)) = steps.split_first() else {
        return false;
    };
    let Some(mut v) = t.get_mut(k.as_str()) else {
        return false;
    };
    for step in rest {
        let next = match (v.get_mut(), step) {
            (DeValue::Table(t), Step::Key(k)) => t.get_mut(k.as_str()),
            (DeValue::Array(a), Step::Index(i)) => a.get_mut(*i),
            _ => None,
        };
        let Some(next) = next else { return false };
        v = next;
    }
    if v.span() != *span {
        return false;
    }
    *v = Spanned::new(span.clone(), with);
    true
}

/// `missing field `x`` → `x`.
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")?
        .split_once('`')
        .map(|(f, _)| f)
}

/// serde's message, with a suggestion for a misspelt key.
fn explain(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.trim().to_string();
    };
    let mut quoted = rest.split('`').step_by(2);
    let Some(unknown) = quoted.next() else {
        return message.to_string();
    };
    let best = quoted
        .map(|known| (edit_distance(unknown, known), known))
        .filter(|&(d, known)| d <= 2 && d < known.len().max(unknown.len()) / 2 + 1)
        .min();
    match best {
        Some((_, known)) => format!("unknown field `{unknown}`: did you mean `{known}`?"),
        None => message.trim().to_string(),
    }
}

/// Levenshtein distance over characters.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// The path of the deepest key or value whose span is `span` (else the
/// deepest value whose span holds it).
fn locate(root: &DeTable<'_>, span: &Range<usize>) -> Option<Vec<Step>> {
    let mut path = Vec::new();
    if search_table(root, &mut path, &|s| s == *span) {
        return Some(path);
    }
    path.clear();
    search_table(root, &mut path, &|s| {
        s.start <= span.start && span.end <= s.end && s != (0..0)
    })
    .then_some(path)
}

fn search_table(t: &DeTable<'_>, path: &mut Vec<Step>, hit: &dyn Fn(Range<usize>) -> bool) -> bool {
    for (k, v) in t.iter() {
        path.push(Step::Key(k.get_ref().to_string()));
        if search_value(v, path, hit) || hit(k.span()) {
            return true;
        }
        path.pop();
    }
    false
}

/// Children first, so the deepest hit wins.
fn search_value(
    v: &Spanned<DeValue<'_>>,
    path: &mut Vec<Step>,
    hit: &dyn Fn(Range<usize>) -> bool,
) -> bool {
    let inside = match v.get_ref() {
        DeValue::Table(t) => search_table(t, path, hit),
        DeValue::Array(a) => a.iter().enumerate().any(|(i, x)| {
            path.push(Step::Index(i));
            let found = search_value(x, path, hit);
            if !found {
                path.pop();
            }
            found
        }),
        _ => false,
    };
    inside || hit(v.span())
}

fn value_at<'t, 'i>(t: &'t DeTable<'i>, steps: &[Step]) -> Option<&'t DeValue<'i>> {
    let (Step::Key(k), rest) = steps.split_first()? else {
        return None;
    };
    let mut v = t.get(k.as_str())?.get_ref();
    for step in rest {
        v = match (v, step) {
            (DeValue::Table(t), Step::Key(k)) => t.get(k.as_str())?.get_ref(),
            (DeValue::Array(a), Step::Index(i)) => a.get(*i)?.get_ref(),
            _ => return None,
        };
    }
    Some(v)
}

fn array_len(t: &DeTable<'_>, steps: &[Step]) -> usize {
    match value_at(t, steps) {
        Some(DeValue::Array(a)) => a.len(),
        _ => 0,
    }
}

/// Removes the key or array element at `steps`.
fn remove(t: &mut DeTable<'_>, steps: &[Step]) {
    let Some((Step::Key(k), rest)) = steps.split_first() else {
        return;
    };
    if rest.is_empty() {
        t.remove(k.as_str());
        return;
    }
    let Some(v) = t.get_mut(k.as_str()) else {
        return;
    };
    match (v.get_mut(), &rest[0]) {
        (DeValue::Table(inner), _) => remove(inner, rest),
        (DeValue::Array(a), Step::Index(i)) if rest.len() == 1 => {
            let mut left = DeArray::new();
            for (j, x) in a.iter().enumerate() {
                if j != *i {
                    left.push(x.clone());
                }
            }
            *a = left;
        }
        (DeValue::Array(a), Step::Index(i)) => {
            if let Some(DeValue::Table(inner)) = a.get_mut(*i).map(|x| x.get_mut()) {
                remove(inner, &rest[1..]);
            }
        }
        _ => {}
    }
}
