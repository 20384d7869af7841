//! The one error type of route compilation.

use std::fmt;

/// What kind of mistake a [`RouteError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteErrorKind {
    /// The path template does not parse.
    Path,
    /// A method name is not an HTTP token, is repeated, or none is given.
    Method,
    /// The host pattern is malformed.
    Host,
    /// The stage prefix is malformed.
    Stage,
    /// Two routes claim the same resource and method.
    Conflict,
    /// The template has more parameters than a match holds inline.
    TooManyParams,
    /// Too many routes or parameter names for the compact tables.
    TooLarge,
}

/// A route table that does not compile. [`RouteError::route`] is the index of
/// the offending route in the slice given to
/// [`Router::compile`](crate::Router::compile) (for a conflict,
/// [`RouteError::other_route`] is the earlier route it collides with), so the
/// caller can point at the file and line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteError {
    kind: RouteErrorKind,
    route: Option<(usize, String)>,
    other: Option<(usize, String)>,
    message: String,
}

impl RouteError {
    pub(crate) fn new(kind: RouteErrorKind, route: usize, template: &str, message: String) -> Self {
        RouteError {
            kind,
            route: Some((route, template.to_owned())),
            other: None,
            message,
        }
    }

    pub(crate) fn conflict(route: (usize, &str), other: (usize, &str), message: String) -> Self {
        RouteError {
            kind: RouteErrorKind::Conflict,
            route: Some((route.0, route.1.to_owned())),
            other: Some((other.0, other.1.to_owned())),
            message,
        }
    }

    pub(crate) fn stage(message: String) -> Self {
        RouteError {
            kind: RouteErrorKind::Stage,
            route: None,
            other: None,
            message,
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> RouteErrorKind {
        self.kind
    }

    /// The index of the route at fault (`None` for a bad stage).
    pub fn route(&self) -> Option<usize> {
        self.route.as_ref().map(|r| r.0)
    }

    /// For a conflict, the index of the earlier route it collides with.
    pub fn other_route(&self) -> Option<usize> {
        self.other.as_ref().map(|r| r.0)
    }

    /// The explanation, without the route names.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.route, &self.other) {
            (Some((i, t)), Some((j, u))) => {
                write!(
                    f,
                    "route #{i} `{t}` conflicts with route #{j} `{u}`: {}",
                    self.message
                )
            }
            (Some((i, t)), None) => write!(f, "route #{i} `{t}`: {}", self.message),
            (None, _) => write!(f, "stage: {}", self.message),
        }
    }
}

impl std::error::Error for RouteError {}
