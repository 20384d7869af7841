//! What a lookup answers: a matched route with its captured parameters, a
//! `405` with the resource's `Allow` list, or a `404`.

use std::ops::Range;

use crate::Router;
use crate::tree::{MAX_PARAMS, Spans};

/// The answer of [`Router::find`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// A route answers this request.
    Found(Match),
    /// The most specific resource has no route for this method (and no
    /// `ANY`): answer `405` with this `Allow` header value, e.g. `GET, DELETE`.
    MethodNotAllowed {
        /// The resource's methods, comma-separated, in canonical order.
        allow: &'a str,
    },
    /// No resource matches the path (or the host, or the stage).
    NotFound,
}

/// One captured parameter: a span of the path given to [`Router::find`],
/// still percent-encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Param {
    pub(crate) name: u16,
    pub(crate) greedy: bool,
    pub(crate) start: u32,
    pub(crate) end: u32,
}

impl Param {
    /// The parameter name's id; [`Router::param_name`] turns it into text.
    pub fn name_id(&self) -> u16 {
        self.name
    }

    /// The parameter name, as written in the route template (without `+`).
    pub fn name<'r>(&self, router: &'r Router) -> &'r str {
        router.param_name(self.name)
    }

    /// Whether this is a greedy `{name+}` capture (one or more segments).
    pub fn is_greedy(&self) -> bool {
        self.greedy
    }

    /// The byte range in the path given to [`Router::find`].
    pub fn range(&self) -> Range<usize> {
        self.start as usize..self.end as usize
    }

    /// The raw (still percent-encoded) captured bytes of `path`.
    pub fn raw<'p>(&self, path: &'p [u8]) -> &'p [u8] {
        &path[self.range()]
    }
}

/// A matched route: its index in the compiled slice and up to
/// [`MAX_PARAMS`](crate::MAX_PARAMS) captured parameters, held inline (the
/// spans as the lookup left them, the name ids beside them).
#[derive(Debug, Clone, Copy)]
pub struct Match {
    /// Index of the route in the slice given to [`Router::compile`].
    pub route: usize,
    pub(crate) spans: Spans,
    pub(crate) names: [u16; MAX_PARAMS],
    /// Whether the last capture is greedy.
    pub(crate) greedy: bool,
}

impl Match {
    pub(crate) const fn new() -> Self {
        Match {
            route: 0,
            spans: Spans::new(),
            names: [0; MAX_PARAMS],
            greedy: false,
        }
    }

    /// The number of captured parameters.
    pub fn len(&self) -> usize {
        self.spans.len
    }

    /// Whether the route captured no parameter.
    pub fn is_empty(&self) -> bool {
        self.spans.len == 0
    }

    /// The captured parameters, in template order.
    pub fn params(&self) -> impl ExactSizeIterator<Item = Param> + '_ {
        let len = self.spans.len;
        self.spans.spans[..len]
            .iter()
            .zip(&self.names)
            .enumerate()
            .map(move |(k, (&(start, end), &name))| Param {
                name,
                greedy: self.greedy && k + 1 == len,
                start,
                end,
            })
    }

    /// The capture for the parameter called `name`, if the route has one.
    pub fn get(&self, router: &Router, name: &str) -> Option<Param> {
        self.params().find(|p| p.name(router) == name)
    }

    /// The byte range of parameter `name` in the path given to `find`.
    pub fn param(&self, router: &Router, name: &str) -> Option<Range<usize>> {
        self.get(router, name).map(|p| p.range())
    }
}

/// Equal when they name the same route with the same captures (slots past
/// the captures may hold leftovers of backtracking and are not compared).
impl PartialEq for Match {
    fn eq(&self, other: &Match) -> bool {
        self.route == other.route && self.params().eq(other.params())
    }
}

impl Eq for Match {}
