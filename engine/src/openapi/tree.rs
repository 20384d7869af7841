//! One value tree for JSON and YAML documents, every node with its byte span
//! in the text, so an import problem names the line and JSON pointer of the
//! node it is about.
//!
//! JSON is YAML 1.2, so one parser reads both: saphyr-parser's events, each
//! with its span, built into [`Node`]s here. Scalars are typed as YAML's core
//! schema types them (a quoted scalar is always a string). Anchors and
//! aliases work; the tree is bounded in depth ([`MAX_DEPTH`]) and in nodes
//! counting every alias expansion ([`MAX_NODES`]), so a small hostile text
//! cannot grow a huge tree or overflow a stack in the walks that follow.

use saphyr_parser::{Event, Parser, ScalarStyle};
use std::collections::HashMap;
use std::ops::Range;

/// Nesting deeper than this is refused (the importer's walks recurse).
pub const MAX_DEPTH: usize = 128;
/// Nodes in one document, alias expansions included.
pub const MAX_NODES: usize = 1_000_000;

/// A node of a document and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Byte range in the document's text.
    pub span: Range<usize>,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// A number, as written (and its value).
    Number(String, f64),
    String(String),
    Seq(Vec<Node>),
    /// Entries in document order; keys are unique.
    Map(Vec<Entry>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    /// Byte range of the key in the text.
    pub key_span: Range<usize>,
    pub node: Node,
}

/// Why a text is not a document: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset in the text.
    pub at: usize,
    pub message: String,
}

impl Node {
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|e| e.key == key).map(|e| &e.node),
            _ => None,
        }
    }

    /// The entry under `key`, with its key's span.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|e| e.key == key),
            _ => None,
        }
    }

    pub fn entries(&self) -> &[Entry] {
        match &self.value {
            Value::Map(entries) => entries,
            _ => &[],
        }
    }

    pub fn items(&self) -> &[Node] {
        match &self.value {
            Value::Seq(items) => items,
            _ => &[],
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match &self.value {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match &self.value {
            Value::Number(_, n) => Some(*n),
            _ => None,
        }
    }

    /// A scalar's text: a string as is, a number or boolean as written.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::String(s) => Some(s.clone()),
            Value::Number(t, _) => Some(t.clone()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    pub fn is_map(&self) -> bool {
        matches!(self.value, Value::Map(_))
    }

    /// What kind of node this is, for messages.
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(..) => "a number",
            Value::String(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a map",
        }
    }

    /// The node as JSON (numbers as written where JSON can carry them).
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(text, n) => serde_json::from_str::<serde_json::Number>(text)
                .ok()
                .or_else(|| serde_json::Number::from_f64(*n))
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Seq(items) => items.iter().map(Node::to_json).collect(),
            Value::Map(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.node.to_json()))
                    .collect(),
            ),
        }
    }

    /// The node at a JSON pointer (`/components/schemas/Pet`; `""` is this node).
    pub fn at_pointer(&self, pointer: &str) -> Option<&Node> {
        if pointer.is_empty() {
            return Some(self);
        }
        let mut n = self;
        for token in pointer.strip_prefix('/')?.split('/') {
            let token = token.replace("~1", "/").replace("~0", "~");
            n = match &n.value {
                Value::Map(_) => n.get(&token)?,
                Value::Seq(items) => items.get(token.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(n)
    }

    /// Every node's and key's span with the JSON pointer it belongs to
    /// (a key's span names the pointer of its value), `prefix` first.
    pub fn pointers(&self, prefix: &str, out: &mut Vec<(Range<usize>, String)>) {
        out.push((self.span.clone(), prefix.to_string()));
        match &self.value {
            Value::Seq(items) => {
                for (i, n) in items.iter().enumerate() {
                    n.pointers(&format!("{prefix}/{i}"), out);
                }
            }
            Value::Map(entries) => {
                for e in entries {
                    let p = format!("{prefix}/{}", escape(&e.key));
                    out.push((e.key_span.clone(), p.clone()));
                    e.node.pointers(&p, out);
                }
            }
            _ => {}
        }
    }
}

/// A key as a JSON pointer token (RFC 6901): `~` → `~0`, `/` → `~1`.
pub fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Parses a JSON or YAML text into one document. Never panics: a panic in
/// the YAML parser (a bug there) is turned into an error at the start.
pub fn parse(text: &str) -> Result<Node, ParseError> {
    std::panic::catch_unwind(|| build(text)).unwrap_or_else(|_| {
        Err(ParseError {
            at: 0,
            message: "the YAML parser failed on this text".into(),
        })
    })
}

/// A container being filled.
enum Open {
    Seq(Vec<Node>),
    Map(Vec<Entry>, Option<(String, Range<usize>)>),
}

struct Frame {
    open: Open,
    start: usize,
    anchor: usize,
}

fn build(original: &str) -> Result<Node, ParseError> {
    let (text, shifts) = surrogate_pairs(original);
    let bytes = ByteOffsets::new(&text, shifts);
    let mut parser = Parser::new_from_str(&text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut root: Option<Node> = None;
    let mut nodes = 0usize;
    let mut documents = 0usize;
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|e| ParseError {
            at: bytes.at(e.marker().index()),
            message: e.info().to_string(),
        })?;
        let (start, end) = (bytes.at(span.start.index()), bytes.at(span.end.index()));
        let done = match event {
            Event::StreamStart | Event::Nothing | Event::DocumentEnd => None,
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(ParseError {
                        at: start,
                        message: "a second document in one file: give one document".into(),
                    });
                }
                None
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(ParseError {
                        at: start,
                        message: format!("nested deeper than {MAX_DEPTH} levels"),
                    });
                }
                let open = if matches!(event, Event::SequenceStart(..)) {
                    Open::Seq(Vec::new())
                } else {
                    Open::Map(Vec::new(), None)
                };
                stack.push(Frame {
                    open,
                    start,
                    anchor,
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = stack.pop() else {
                    return Err(ParseError {
                        at: start,
                        message: "unbalanced end of a collection".into(),
                    });
                };
                let value = match frame.open {
                    Open::Seq(items) => Value::Seq(items),
                    Open::Map(entries, None) => Value::Map(entries),
                    Open::Map(_, Some(_)) => {
                        return Err(ParseError {
                            at: start,
                            message: "a key without a value".into(),
                        });
                    }
                };
                let node = Node {
                    span: frame.start..end.max(frame.start),
                    value,
                };
                if frame.anchor != 0 {
                    anchors.insert(frame.anchor, node.clone());
                }
                Some(node)
            }
            Event::Scalar(v, style, anchor, _) => {
                let node = Node {
                    span: start..end,
                    value: scalar(&v, style),
                };
                if anchor != 0 {
                    anchors.insert(anchor, node.clone());
                }
                Some(node)
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some(n) => {
                    nodes += count(n);
                    let mut n = n.clone();
                    n.span = start..end;
                    Some(n)
                }
                None => {
                    return Err(ParseError {
                        at: start,
                        message: "an alias to an unknown anchor".into(),
                    });
                }
            },
        };
        let Some(node) = done else { continue };
        nodes += 1;
        if nodes > MAX_NODES {
            return Err(ParseError {
                at: start,
                message: format!("more than {MAX_NODES} nodes (aliases included)"),
            });
        }
        match stack.last_mut() {
            None => {
                if root.is_some() {
                    return Err(ParseError {
                        at: start,
                        message: "more than one value at the top".into(),
                    });
                }
                root = Some(node);
            }
            Some(Frame {
                open: Open::Seq(items),
                ..
            }) => items.push(node),
            Some(Frame {
                open: Open::Map(entries, pending),
                ..
            }) => match pending.take() {
                None => {
                    let key = match node.value {
                        Value::String(s) => s,
                        Value::Number(t, _) => t,
                        Value::Bool(b) => b.to_string(),
                        Value::Null => String::new(),
                        _ => {
                            return Err(ParseError {
                                at: node.span.start,
                                message: "a key must be a string".into(),
                            });
                        }
                    };
                    if entries.iter().any(|e| e.key == key) {
                        return Err(ParseError {
                            at: node.span.start,
                            message: format!("key {key:?} appears twice in this map"),
                        });
                    }
                    *pending = Some((key, node.span));
                }
                Some((key, key_span)) => entries.push(Entry {
                    key,
                    key_span,
                    node,
                }),
            },
        }
    }
    root.ok_or(ParseError {
        at: 0,
        message: "the file is empty".into(),
    })
}

/// Nodes in a subtree.
fn count(n: &Node) -> usize {
    1 + match &n.value {
        Value::Seq(items) => items.iter().map(count).sum(),
        Value::Map(entries) => entries.iter().map(|e| count(&e.node)).sum(),
        _ => 0,
    }
}

/// A scalar typed by YAML 1.2's core schema (quoted: always a string).
fn scalar(v: &str, style: ScalarStyle) -> Value {
    if style != ScalarStyle::Plain {
        return Value::String(v.to_string());
    }
    match v {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let numeric = v
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_digit() || b == b'-' || b == b'+' || b == b'.')
        && v.bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
    if numeric && let Ok(n) = v.parse::<f64>() {
        return Value::Number(v.to_string(), n);
    }
    Value::String(v.to_string())
}

/// JSON may write a character outside the BMP as a UTF-16 surrogate pair
/// of escapes (`\ud83d\ude00`), which YAML does not allow: each such pair
/// becomes YAML's `\U0001F600` (two bytes shorter). Returns the text to
/// parse and, per rewrite, where the rewrite ends in it and how many bytes
/// the text has lost up to there. Only JSON texts (starting with `{` or
/// `[`) are rewritten: in YAML's plain and single-quoted scalars a
/// backslash is just a character.
fn surrogate_pairs(text: &str) -> (std::borrow::Cow<'_, str>, Vec<(usize, usize)>) {
    let json = text.trim_start().starts_with(['{', '[']);
    if !json || !text.contains("\\u") {
        return (text.into(), Vec::new());
    }
    let b = text.as_bytes();
    let hex = |at: usize| -> Option<u32> {
        let digits = b.get(at..at + 4)?;
        u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    };
    let mut out = String::with_capacity(text.len());
    let mut shifts = Vec::new();
    let (mut i, mut copied) = (0, 0);
    while i + 1 < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        // `\\` is an escaped backslash: what follows it starts afresh.
        if b[i + 1] != b'u' {
            i += 2;
            continue;
        }
        let pair = (hex(i + 2), b.get(i + 6..i + 8), hex(i + 8));
        if let (Some(hi @ 0xD800..=0xDBFF), Some(b"\\u"), Some(lo @ 0xDC00..=0xDFFF)) = pair {
            let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
            out.push_str(&text[copied..i]);
            out.push_str(&format!("\\U{c:08X}"));
            copied = i + 12;
            shifts.push((out.len(), copied - out.len()));
            i += 12;
        } else {
            i += 2;
        }
    }
    if shifts.is_empty() {
        return (text.into(), shifts);
    }
    out.push_str(&text[copied..]);
    (out.into(), shifts)
}

/// saphyr's markers count characters in the text parsed; the tree keeps
/// byte offsets in the original text.
struct ByteOffsets {
    /// Byte offset of each character, when the text is not all ASCII.
    table: Option<Vec<usize>>,
    len: usize,
    /// From [`surrogate_pairs`].
    shifts: Vec<(usize, usize)>,
}

impl ByteOffsets {
    fn new(text: &str, shifts: Vec<(usize, usize)>) -> Self {
        let table = (!text.is_ascii()).then(|| text.char_indices().map(|(i, _)| i).collect());
        ByteOffsets {
            table,
            len: text.len(),
            shifts,
        }
    }

    fn at(&self, char_index: usize) -> usize {
        let parsed = match &self.table {
            None => char_index.min(self.len),
            Some(t) => t.get(char_index).copied().unwrap_or(self.len),
        };
        let lost = self
            .shifts
            .iter()
            .take_while(|(end, _)| *end <= parsed)
            .last()
            .map_or(0, |(_, lost)| *lost);
        parsed + lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_yaml_give_the_same_values() {
        let json = r#"{"a": [1, "x", true, null], "b": {"c": "d"}}"#;
        let yaml = "a:\n  - 1\n  - x\n  - true\n  - ~\nb:\n  c: d\n";
        let (j, y) = (parse(json).unwrap(), parse(yaml).unwrap());
        assert_eq!(j.to_json(), y.to_json());
        assert_eq!(j.to_json()["a"][0], serde_json::json!(1));
    }

    #[test]
    fn spans_point_at_the_node() {
        let yaml = "paths:\n  /pets:\n    get: {}\n";
        let doc = parse(yaml).unwrap();
        let e = doc.get("paths").unwrap().entry("/pets").unwrap();
        assert_eq!(&yaml[e.key_span.clone()], "/pets");
        let mut p = Vec::new();
        doc.pointers("", &mut p);
        assert!(
            p.iter()
                .any(|(s, ptr)| ptr == "/paths/~1pets/get" && yaml[s.clone()].starts_with("{}"))
        );
    }

    #[test]
    fn bad_text_is_an_error_with_a_place() {
        for bad in [
            "{\"a\": ",
            "a: [1, 2",
            "a: 1\na: 2\n",
            "",
            "--- 1\n--- 2\n",
            "*x",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.at <= bad.len(), "{bad:?}: {e:?}");
        }
        let deep = "[".repeat(MAX_DEPTH + 1);
        assert!(parse(&deep).unwrap_err().message.contains("nested"));
    }

    #[test]
    fn alias_bombs_stop_at_the_node_budget() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(parse(&text).unwrap_err().message.contains("nodes"));
    }

    #[test]
    fn json_surrogate_pairs_are_read_and_later_spans_stay_in_place() {
        let json = "{\"a\": \"x\\ud83d\\ude00y\", \"b\": \"\\\\ud83d\", \"c\": 1}";
        let doc = parse(json).unwrap();
        assert_eq!(doc.get("a").unwrap().as_str(), Some("x\u{1F600}y"));
        // An escaped backslash before `ud83d` is no escape.
        assert_eq!(doc.get("b").unwrap().as_str(), Some("\\ud83d"));
        let c = doc.entry("c").unwrap();
        assert_eq!(&json[c.key_span.clone()], "\"c\"");
        assert_eq!(&json[c.node.span.clone()], "1");
        // A lone surrogate is still an error.
        assert!(parse("{\"a\": \"\\ud83d\"}").is_err());
    }

    #[test]
    fn quoted_numbers_stay_strings() {
        let doc = parse("a: '200'\nb: 200\nc: 1.5e3\nd: 1.2.3\n").unwrap();
        assert_eq!(doc.get("a").unwrap().as_str(), Some("200"));
        assert_eq!(doc.get("b").unwrap().as_f64(), Some(200.0));
        assert_eq!(doc.get("c").unwrap().as_f64(), Some(1500.0));
        assert_eq!(doc.get("d").unwrap().as_str(), Some("1.2.3"));
    }
}
