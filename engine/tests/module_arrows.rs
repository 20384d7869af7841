//! The engine's modules point one way (DESIGN.md: `runtime → proxy →
//! {policy, h1, upstream} → {router, tls}`, `observe` fed by plain data,
//! control types in `control`). This test reads `engine/src/**/*.rs`,
//! collects every `use crate::…`, `crate::x::…` and `super::…` path outside
//! test modules, resolves each to the file it names, and fails on any import
//! cycle that crosses the crate's top-level modules, or that joins files of
//! `proxy/`, printing the cycle file by file.
//!
//! Files are the nodes: `snapshot.rs` naming `config::model::Pin` while
//! `config/mod.rs` compiles into a `Snapshot` is not a cycle, because the
//! model file names nothing back. (A parent naming its own children is not
//! an edge either: `mod.rs` files declare them.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

/// Edges (by top-level module) that close a cycle today and are being
/// removed elsewhere.
const ALLOWED: &[(&str, &str)] = &[];

#[test]
fn top_level_modules_import_each_other_one_way() {
    let graph = file_graph(|from, to| !ALLOWED.contains(&(from[0].as_str(), to[0].as_str())));
    for component in graph.components() {
        let tops: BTreeSet<&String> = component.iter().map(|m| &m[0]).collect();
        if tops.len() > 1 {
            let cycle = graph.cycle_in(&component);
            panic!("import cycle between engine modules:\n{}", explain(&cycle));
        }
    }
}

#[test]
fn proxy_files_import_each_other_one_way() {
    let in_proxy = |m: &Module| m.len() > 1 && m[0] == "proxy";
    let graph = file_graph(|from, to| in_proxy(from) && in_proxy(to));
    for component in graph.components() {
        if component.len() > 1 {
            let cycle = graph.cycle_in(&component);
            panic!("import cycle between proxy/ files:\n{}", explain(&cycle));
        }
    }
}

/// The import graph between files, keeping the edges `keep` accepts.
fn file_graph(keep: impl Fn(&Module, &Module) -> bool) -> Graph {
    let files = sources();
    let mut graph = Graph::default();
    for (module, text) in &files {
        graph.edges.entry(module.clone()).or_default();
        for path in imported_paths(module, text) {
            // The longest prefix of the path that is a file.
            let Some(to) = (1..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| files.contains_key(p))
            else {
                continue;
            };
            let child = to.len() > module.len() && to.starts_with(module);
            if to != *module && !child && keep(module, &to) {
                graph.edges.entry(module.clone()).or_default().insert(to);
            }
        }
    }
    graph
}

fn explain(cycle: &[Module]) -> String {
    cycle
        .windows(2)
        .map(|w| format!("  {} → {}\n", w[0].join("::"), w[1].join("::")))
        .collect()
}

#[test]
fn the_parser_sees_grouped_nested_and_relative_imports() {
    let module = vec!["proxy".to_string(), "conn".to_string()];
    let text = "use super::{a::B, c};\nuse crate::h1::{request::{self, X}, write};\n\
                // use crate::commented::Out;\nlet s = \"crate::in_string::X\";\n\
                fn f() { crate::sys::pooled::run(); super::d::e(); }\n\
                #[cfg(test)]\nmod tests { use crate::config::X; }\n";
    let got: BTreeSet<String> = imported_paths(&module, text)
        .into_iter()
        .map(|p| p.join("::"))
        .collect();
    let want: BTreeSet<String> = [
        "proxy::a::B",
        "proxy::c",
        "h1::request",
        "h1::request::X",
        "h1::write",
        "sys::pooled::run",
        "proxy::d::e",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(got, want);
}

#[test]
fn the_graph_finds_cycles_and_only_cycles() {
    let m = |s: &str| -> Module { s.split("::").map(String::from).collect() };
    let graph = |edges: &[(&str, &str)]| {
        let mut g = Graph::default();
        for (a, b) in edges {
            g.edges.entry(m(a)).or_default().insert(m(b));
            g.edges.entry(m(b)).or_default();
        }
        g
    };
    let one_way = graph(&[("a", "b"), ("b", "c"), ("a", "c")]);
    assert!(one_way.components().is_empty());
    let looped = graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]);
    let components = looped.components();
    assert_eq!(components.len(), 1);
    let cycle = looped.cycle_in(&components[0]);
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4, "{cycle:?}");
}

/// Every source file of the engine by module path (`proxy/conn.rs` is
/// `["proxy", "conn"]`, `proxy/mod.rs` is `["proxy"]`), with its text.
fn sources() -> BTreeMap<Vec<String>, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("engine/src is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("a source file");
                files.insert(module_of(&root, &path), text);
            }
        }
    }
    files
}

fn module_of(root: &Path, file: &Path) -> Vec<String> {
    let rel: PathBuf = file
        .strip_prefix(root)
        .expect("under src")
        .with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The crate-absolute paths (`["h1", "request", "X"]`) a file of module
/// `module` names, outside its `#[cfg(test)]` part.
fn imported_paths(module: &[String], text: &str) -> Vec<Vec<String>> {
    let code = strip_comments_and_strings(text);
    let code = match code.find("#[cfg(test)]") {
        Some(i) => &code[..i],
        None => &code[..],
    };
    let mut raw: Vec<Vec<String>> = Vec::new();
    let mut rest = code;
    // `use` trees first (they may group paths in braces), then inline paths.
    let mut inline = String::new();
    while let Some(i) = find_word(rest, "use") {
        inline.push_str(&rest[..i]);
        let end = rest[i..].find(';').map_or(rest.len(), |e| i + e);
        expand_use_tree(rest[i + 3..end].trim(), &[], &mut raw);
        rest = &rest[end..];
    }
    inline.push_str(rest);
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = inline[from..].find(start).map(|i| i + from) {
            from = i + start.len();
            let before = inline[..i].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let mut path = Vec::new();
            for seg in inline[i..].split("::") {
                let ident: String = seg
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let whole = ident.len() == seg.len();
                if !ident.is_empty() {
                    path.push(ident);
                }
                if !whole || path.is_empty() {
                    break;
                }
            }
            raw.push(path);
        }
    }
    raw.into_iter().filter_map(|p| resolve(module, p)).collect()
}

/// `crate::a::b` → `[a, b]`; `super::a` from `proxy::conn` → `[proxy, a]`.
fn resolve(module: &[String], path: Vec<String>) -> Option<Vec<String>> {
    let mut base: Vec<String> = module.to_vec();
    let mut segs = path.into_iter().peekable();
    match segs.peek().map(String::as_str) {
        Some("crate") => {
            segs.next();
            base.clear();
        }
        Some("super") => {
            while segs.peek().map(String::as_str) == Some("super") {
                segs.next();
                base.pop();
            }
        }
        _ => return None,
    }
    base.extend(segs.filter(|s| s != "self"));
    (!base.is_empty()).then_some(base)
}

/// Expands one `use` tree (`crate::a::{b, c::{d, e}}`) into its paths.
fn expand_use_tree(tree: &str, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    let tree = tree.split(" as ").next().unwrap_or(tree).trim();
    if tree.is_empty() {
        return;
    }
    match tree.find('{') {
        None => {
            let mut path = prefix.to_vec();
            path.extend(
                tree.split("::")
                    .map(str::trim)
                    .filter(|s| !s.is_empty() && *s != "*")
                    .map(String::from),
            );
            out.push(path);
        }
        Some(open) => {
            let mut path = prefix.to_vec();
            path.extend(
                tree[..open]
                    .split("::")
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            );
            let close = tree.rfind('}').unwrap_or(tree.len());
            for item in split_top_level(&tree[open + 1..close]) {
                expand_use_tree(item, &path, out);
            }
        }
    }
}

/// Splits on commas that are not inside braces.
fn split_top_level(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut items) = (0, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&s[start..]);
    items
}

/// The byte offset of `word` standing alone (not part of an identifier).
fn find_word(s: &str, word: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = s[from..].find(word).map(|i| i + from) {
        let before = s[..i].chars().next_back();
        let after = s[i + word.len()..].chars().next();
        let ident = |c: char| c.is_alphanumeric() || c == '_';
        if !before.is_some_and(ident) && after.is_some_and(char::is_whitespace) {
            return Some(i);
        }
        from = i + word.len();
    }
    None
}

/// The text with comments, string literals and char literals blanked out,
/// so a path named in prose or in a message is not an import.
fn strip_comments_and_strings(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = text[i + 2..].find("*/").map_or(b.len(), |e| i + 2 + e + 2);
                i = end;
            }
            b'r' if matches!(b.get(i + 1), Some(b'"' | b'#')) && !ident_before(b, i) => {
                let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
                let close = format!("\"{}", "#".repeat(hashes));
                let body = i + 1 + hashes + 1;
                i = text[body..]
                    .find(&close)
                    .map_or(b.len(), |e| body + e + close.len());
                out.push_str("\"\"");
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            b'\'' if b.get(i + 1) == Some(&b'\\') => {
                i += 2;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                i += 1;
            }
            b'\'' if b.get(i + 2) == Some(&b'\'') => i += 3,
            _ => {
                let c = text[i..].chars().next().expect("a char at a boundary");
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    out
}

fn ident_before(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

/// A directed graph of files (by module path).
#[derive(Default)]
struct Graph {
    edges: BTreeMap<Module, BTreeSet<Module>>,
}

impl Graph {
    /// The strongly connected components with more than one file
    /// (Tarjan's algorithm).
    fn components(&self) -> Vec<Vec<Module>> {
        struct Walk<'g> {
            graph: &'g Graph,
            index: BTreeMap<&'g Module, (usize, usize)>,
            stack: Vec<&'g Module>,
            on_stack: BTreeSet<&'g Module>,
            found: Vec<Vec<Module>>,
        }
        impl<'g> Walk<'g> {
            fn visit(&mut self, v: &'g Module) -> usize {
                let n = self.index.len();
                self.index.insert(v, (n, n));
                self.stack.push(v);
                self.on_stack.insert(v);
                let mut low = n;
                for w in self.graph.edges.get(v).into_iter().flatten() {
                    match self.index.get(w) {
                        None => low = low.min(self.visit(w)),
                        Some(&(i, _)) if self.on_stack.contains(w) => low = low.min(i),
                        Some(_) => {}
                    }
                }
                self.index.insert(v, (n, low));
                if low == n {
                    let mut component = Vec::new();
                    while let Some(w) = self.stack.pop() {
                        self.on_stack.remove(w);
                        component.push(w.clone());
                        if w == v {
                            break;
                        }
                    }
                    if component.len() > 1 {
                        self.found.push(component);
                    }
                }
                low
            }
        }
        let mut walk = Walk {
            graph: self,
            index: BTreeMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            found: Vec::new(),
        };
        for v in self.edges.keys() {
            if !walk.index.contains_key(v) {
                walk.visit(v);
            }
        }
        walk.found
    }

    /// One cycle through the files of `component` (the first file repeated at the end).
    fn cycle_in(&self, component: &[Module]) -> Vec<Module> {
        let inside: BTreeSet<&Module> = component.iter().collect();
        let start = &component[0];
        // Breadth-first from `start` back to it, inside the component.
        let mut came_from: BTreeMap<&Module, &Module> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        while let Some(v) = queue.pop_front() {
            for w in self.edges.get(v).into_iter().flatten() {
                if !inside.contains(w) || came_from.contains_key(w) {
                    continue;
                }
                came_from.insert(w, v);
                if w == start {
                    let mut cycle = vec![start.clone()];
                    let mut at = came_from[start];
                    while at != start {
                        cycle.push(at.clone());
                        at = came_from[at];
                    }
                    cycle.push(start.clone());
                    cycle.reverse();
                    return cycle;
                }
                queue.push_back(w);
            }
        }
        component.to_vec()
    }
}
