#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod dots;
mod error;
mod host;
mod limits;
mod lookup;
pub mod percent;
mod resource;
mod router;
mod scan;
mod syntax;
pub mod template;
mod tree;

pub use error::{RouteError, RouteErrorKind};
pub use limits::{MAX_PARAMS, MAX_SEGMENTS};
pub use lookup::{Lookup, Match, Param};
pub use resource::ANY;
pub use router::{RouteSpec, Router, TableEntry};
pub use template::{ExpandError, TemplateError, UriTemplate};
