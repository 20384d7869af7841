//! What a lookup answers: a matched route with its captured parameters, a
//! `405` with the resource's `Allow` list, or a `404`.

use std::ops::Range;

use crate::Router;
use crate::tree::MAX_PARAMS;

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
/// [`MAX_PARAMS`](crate::MAX_PARAMS) captured parameters, held inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    /// Index of the route in the slice given to [`Router::compile`].
    pub route: usize,
    len: u8,
    params: [Param; MAX_PARAMS],
}

impl Match {
    pub(crate) fn new(route: usize) -> Self {
        Match {
            route,
            len: 0,
            params: [Param::default(); MAX_PARAMS],
        }
    }

    pub(crate) fn push(&mut self, param: Param) {
        if let Some(slot) = self.params.get_mut(self.len as usize) {
            *slot = param;
            self.len += 1;
        }
    }

    /// The captured parameters, in template order.
    pub fn params(&self) -> &[Param] {
        &self.params[..self.len as usize]
    }

    /// The capture for the parameter called `name`, if the route has one.
    pub fn get(&self, router: &Router, name: &str) -> Option<Param> {
        self.params()
            .iter()
            .find(|p| p.name(router) == name)
            .copied()
    }

    /// The byte range of parameter `name` in the path given to `find`.
    pub fn param(&self, router: &Router, name: &str) -> Option<Range<usize>> {
        self.get(router, name).map(|p| p.range())
    }
}
