#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod host;
mod lookup;
pub mod percent;
mod resource;
mod router;
mod scan;
mod syntax;
pub mod template;
mod tree;

pub use error::{RouteError, RouteErrorKind};
pub use lookup::{Lookup, Match, Param};
pub use resource::ANY;
pub use router::{RouteSpec, Router, TableEntry};
pub use syntax::MAX_SEGMENTS;
pub use template::{ExpandError, TemplateError, UriTemplate};
pub use tree::MAX_PARAMS;
