//! The router's limits, in one place.

/// Most parameters (`{name}` and `{name+}`) one route template may have: a
/// [`Match`](crate::Match) holds its captures inline, so a lookup never
/// allocates. A template with more does not compile.
pub const MAX_PARAMS: usize = 8;

/// Most segments in one path template. It bounds the tree's depth and so the
/// recursion of a lookup. A template with more does not compile.
pub const MAX_SEGMENTS: usize = 128;
