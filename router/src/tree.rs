//! The path tree: a radix tree over path segments.
//!
//! Each node has literal edges (sorted, hashed when there are many; each edge
//! one or more literal segments: chains without branches are merged), an optional `{param}` child, an
//! optional greedy `{name+}` resource and an optional resource ending here.
//! Lookup tries literal, then param, then greedy, backtracking when a branch
//! dead-ends. A node sits at one fixed depth, so one lookup visits each node at
//! most once: the cost is bounded by the tree size, never exponential.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::percent::{self, cmp_decoded};
use crate::syntax::Segment;

pub(crate) use crate::limits::MAX_PARAMS;

const NONE: u32 = u32::MAX;

/// The mutable tree that compilation fills, then freezes.
#[derive(Debug, Default)]
pub(crate) struct Builder {
    literals: BTreeMap<Box<[u8]>, Builder>,
    param: Option<Box<Builder>>,
    greedy: Option<u32>,
    resource: Option<u32>,
}

impl Builder {
    /// The resource for this path shape, created by `create` if new.
    pub fn resource(&mut self, segments: &[Segment], create: &mut impl FnMut() -> u32) -> u32 {
        let mut node = self;
        for segment in segments {
            node = match segment {
                Segment::Literal(lit) => node.literals.entry(lit.clone()).or_default(),
                Segment::Param(_) => node.param.get_or_insert_with(Default::default),
                Segment::Greedy(_) => return *node.greedy.get_or_insert_with(&mut *create),
            };
        }
        *node.resource.get_or_insert_with(create)
    }

    pub fn freeze(self) -> Tree {
        let mut tree = Tree { nodes: Vec::new() };
        tree.add(self);
        tree
    }
}

#[derive(Debug)]
struct Edge {
    /// The first decoded literal segment.
    key: Key,
    /// Further merged literal segments (a chain without branches).
    rest: Box<[Box<[u8]>]>,
    child: u32,
}

#[derive(Debug)]
struct Node {
    /// Sorted by key.
    edges: Box<[Edge]>,
    /// Open-addressed hash index over `edges` (entry = edge index + 1, 0 =
    /// empty), only for nodes with more than [`LINEAR_EDGES`] edges.
    index: Box<[u32]>,
    param: u32,
    greedy: u32,
    resource: u32,
}

/// Bytes of a key kept inline in its edge (no pointer to chase).
const INLINE_KEY: usize = 16;

/// An edge's first segment: inline when short, else on the heap.
#[derive(Debug)]
struct Key {
    inline: [u8; INLINE_KEY],
    len: usize,
    heap: Box<[u8]>,
}

impl Key {
    fn new(bytes: Box<[u8]>) -> Key {
        let mut inline = [0; INLINE_KEY];
        let len = bytes.len();
        if len <= INLINE_KEY {
            inline[..len].copy_from_slice(&bytes);
            return Key {
                inline,
                len,
                heap: Box::new([]),
            };
        }
        Key {
            inline,
            len,
            heap: bytes,
        }
    }

    fn bytes(&self) -> &[u8] {
        if self.len <= INLINE_KEY {
            &self.inline[..self.len]
        } else {
            &self.heap
        }
    }

    /// Whether the request segment is this key (decoded).
    #[inline]
    fn matches(&self, seg: Seg<'_>) -> bool {
        if seg.encoded {
            return seg.eq_literal(self.bytes());
        }
        seg.bytes.len() == self.len && seg.eq_literal(self.bytes())
    }
}

/// Up to this many literal edges are scanned linearly.
const LINEAR_EDGES: usize = 6;

/// Hash of a byte stream (the decoded segment): its last eight bytes and its
/// length, mixed by one multiplication. Cheap per byte; keys that share both
/// only cost a longer probe.
#[inline]
fn hash(bytes: impl Iterator<Item = u8>) -> u64 {
    let (tail, len) = bytes.fold((0u64, 0u64), |(tail, len), b| {
        (tail << 8 | u64::from(b), len + 1)
    });
    let h = (tail ^ len.rotate_right(8)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ h >> 29
}

fn build_index(edges: &[Edge]) -> Box<[u32]> {
    if edges.len() <= LINEAR_EDGES {
        return Box::new([]);
    }
    let size = (edges.len() * 2).next_power_of_two();
    let mut index = vec![0u32; size];
    for (i, edge) in edges.iter().enumerate() {
        let mut slot = hash(edge.key.bytes().iter().copied()) as usize & (size - 1);
        while index[slot] != 0 {
            slot = (slot + 1) & (size - 1);
        }
        index[slot] = i as u32 + 1;
    }
    index.into_boxed_slice()
}

impl Node {
    /// The literal edge whose key equals the (decoded) segment.
    fn edge(&self, seg: Seg<'_>) -> Option<&Edge> {
        if self.index.is_empty() {
            return self.edges.iter().find(|e| e.key.matches(seg));
        }
        let h = if seg.encoded {
            let mut valid = true;
            let h =
                hash(percent::decode(seg.bytes).map_while(|b| b.map_err(|_| valid = false).ok()));
            if !valid {
                return None;
            }
            h
        } else {
            hash(seg.bytes.iter().copied())
        };
        let mask = self.index.len() - 1;
        let mut slot = h as usize & mask;
        loop {
            let entry = self.index[slot];
            if entry == 0 {
                return None;
            }
            let edge = &self.edges[entry as usize - 1];
            if edge.key.matches(seg) {
                return Some(edge);
            }
            slot = (slot + 1) & mask;
        }
    }
}

/// The frozen tree: nodes in one arena, root first.
#[derive(Debug)]
pub(crate) struct Tree {
    nodes: Vec<Node>,
}

/// Capture spans (start, end) collected along the way, inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spans {
    pub spans: [(u32, u32); MAX_PARAMS],
    pub len: usize,
}

impl Spans {
    pub const fn new() -> Self {
        Spans {
            spans: [(0, 0); MAX_PARAMS],
            len: 0,
        }
    }
}

/// One request segment: its bytes and whether it holds a `%`.
#[derive(Clone, Copy)]
struct Seg<'p> {
    bytes: &'p [u8],
    encoded: bool,
}

impl Seg<'_> {
    /// Whether this segment's decoded form is `literal`. An invalid encoding
    /// equals nothing.
    #[inline]
    fn eq_literal(self, literal: &[u8]) -> bool {
        if self.encoded {
            cmp_decoded(self.bytes, literal) == Some(Ordering::Equal)
        } else {
            percent::bytes_eq(literal, self.bytes)
        }
    }
}

/// The segment starting at `start` (just after a `/`) and where it ends.
#[inline]
fn segment_at(path: &[u8], start: usize) -> (Seg<'_>, usize) {
    let (end, encoded) = crate::scan::segment_end(path, start);
    (
        Seg {
            bytes: &path[start..end],
            encoded,
        },
        end,
    )
}

impl Tree {
    fn add(&mut self, b: Builder) -> u32 {
        let idx = self.nodes.len() as u32;
        self.nodes.push(Node {
            edges: Box::new([]),
            index: Box::new([]),
            param: NONE,
            greedy: NONE,
            resource: NONE,
        });
        let mut edges = Vec::with_capacity(b.literals.len());
        for (key, mut child) in b.literals {
            let mut rest = Vec::new();
            while child.literals.len() == 1
                && child.param.is_none()
                && child.greedy.is_none()
                && child.resource.is_none()
            {
                let (next_key, next) = child.literals.pop_first().expect("one literal");
                rest.push(next_key);
                child = next;
            }
            let child = self.add(child);
            edges.push(Edge {
                key: Key::new(key),
                rest: rest.into_boxed_slice(),
                child,
            });
        }
        let param = b.param.map_or(NONE, |p| self.add(*p));
        let node = &mut self.nodes[idx as usize];
        node.index = build_index(&edges);
        node.edges = edges.into_boxed_slice();
        node.param = param;
        node.greedy = b.greedy.unwrap_or(NONE);
        node.resource = b.resource.unwrap_or(NONE);
        idx
    }

    /// Finds the most specific resource for `path[pos..]`, which is empty (the
    /// root) or `/seg(/seg)*`. Spans are offsets into `path`.
    pub fn find(&self, path: &[u8], pos: usize, spans: &mut Spans) -> Option<u32> {
        self.walk(0, path, pos, spans)
    }

    fn walk(&self, idx: u32, path: &[u8], pos: usize, spans: &mut Spans) -> Option<u32> {
        let node = &self.nodes[idx as usize];
        if pos >= path.len() {
            return (node.resource != NONE).then_some(node.resource);
        }
        let start = pos + 1;
        let (seg, end) = segment_at(path, start);
        if let Some(edge) = node.edge(seg)
            && let Some(next) = match_literals(&edge.rest, path, end)
            && let Some(found) = self.walk(edge.child, path, next, spans)
        {
            return Some(found);
        }
        if node.param != NONE && !seg.bytes.is_empty() && spans.len < MAX_PARAMS {
            spans.spans[spans.len] = (start as u32, end as u32);
            spans.len += 1;
            if let Some(found) = self.walk(node.param, path, end, spans) {
                return Some(found);
            }
            spans.len -= 1;
        }
        if node.greedy != NONE && start < path.len() && spans.len < MAX_PARAMS {
            spans.spans[spans.len] = (start as u32, path.len() as u32);
            spans.len += 1;
            return Some(node.greedy);
        }
        None
    }

    /// Calls `f` with every resource, in precedence order.
    pub fn visit(&self, f: &mut impl FnMut(u32)) {
        self.visit_node(0, f);
    }

    fn visit_node(&self, idx: u32, f: &mut impl FnMut(u32)) {
        let node = &self.nodes[idx as usize];
        if node.resource != NONE {
            f(node.resource);
        }
        for edge in &node.edges {
            self.visit_node(edge.child, f);
        }
        if node.param != NONE {
            self.visit_node(node.param, f);
        }
        if node.greedy != NONE {
            f(node.greedy);
        }
    }
}

/// Matches the merged literal segments of an edge after its first; returns
/// the position after them.
fn match_literals(literals: &[Box<[u8]>], path: &[u8], mut pos: usize) -> Option<usize> {
    for literal in literals {
        if pos >= path.len() {
            return None;
        }
        let (seg, end) = segment_at(path, pos + 1);
        if !seg.eq_literal(literal) {
            return None;
        }
        pos = end;
    }
    Some(pos)
}
