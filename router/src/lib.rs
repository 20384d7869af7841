//! ringway's route table: Amazon API Gateway path templates compiled once
//! into an immutable radix tree over path segments, looked up per request
//! without allocating. Pure: no I/O, no runtime, no `unsafe`.
//!
//! # Semantics
//!
//! **Templates.** `/`, literal segments, `{name}` (exactly one non-empty
//! segment) and, last, a greedy `{name+}` (one or more segments; `/{proxy+}`
//! alone is the catch-all). A parameter fills its whole segment. At most
//! [`MAX_PARAMS`] parameters per route, [`MAX_SEGMENTS`] segments.
//!
//! **Methods.** Any HTTP token, compared as bytes (case-sensitive), plus
//! `ANY`, which answers every method without a route of its own on the same
//! resource (extension methods included).
//!
//! **Precedence.** The most specific *resource* wins, segment by segment:
//! literal over `{param}` over `{greedy+}`. When a more specific branch
//! dead-ends (no resource), the lookup backtracks to the param, then the
//! greedy branch. Only then is the method chosen: the method's own route,
//! else `ANY`, else [`Lookup::MethodNotAllowed`] with the resource's
//! precomputed `Allow` list; there is no fallback to a less specific
//! resource. No resource: [`Lookup::NotFound`].
//!
//! **Conflicts.** Two routes with the same host, the same path shape (param
//! names aside: `/a/{x}` and `/a/{y}` are one resource) and a common method
//! (or both `ANY`) do not compile; the [`RouteError`] names both routes.
//! Different methods on one shape may use different parameter names.
//!
//! **Hosts.** Routes may be bound to `api.example.com` or `*.example.com`
//! (one or more labels in front). Hosts compare case-insensitively, the port
//! (also `[::1]:8080`) and a trailing dot are ignored. Exact beats wildcard,
//! a longer wildcard suffix beats a shorter one. A request whose host
//! matches a host table is routed in that table only; the default table
//! (routes without `host`) serves the other hosts and requests without one.
//!
//! **Stage.** With a stage (`/prod`) every path must be `/prod` or start
//! with `/prod/`; the prefix is stripped before matching, anything else is
//! not found.
//!
//! **Paths.** The query (`?…`) is ignored if passed. One trailing slash is
//! ignored for matching (`/pets/` is `/pets`; `/` is the root), but a greedy
//! capture keeps it (`/files/{p+}` on `/files/a/` captures `a/`), so a
//! backend sees directories as sent. An empty segment (`//`) matches no
//! literal and no `{param}`. Literal segments compare with the
//! percent-decoded request segment (`/p%65ts` is `/pets`, so an encoded
//! spelling cannot dodge a more specific route); an invalid encoding matches
//! no literal. Captures are spans of the raw path; decoding happens when a
//! backend URI is expanded.
//!
//! **Backend URIs.** [`UriTemplate`] substitutes captures into
//! `http://app/v2/{id}?x={x}`, decoding and re-encoding each segment, and
//! appends the client's query. It *rejects* (→ 400) invalid encodings and
//! any capture that could climb out of the template's path: `.`/`..`
//! segments in any spelling (`%2e%2e`, `%2E.`), `\`, NUL, and `%2F` inside a
//! greedy capture. See [`template`].
//!
//! # Example
//!
//! ```
//! use ringway_router::{Lookup, RouteSpec, Router, UriTemplate};
//!
//! let routes = [
//!     RouteSpec::new("/pets", &["GET", "POST"]),
//!     RouteSpec::new("/pets/{petId}", &["GET", "DELETE"]),
//!     RouteSpec::new("/{proxy+}", &["ANY"]),
//! ];
//! let router = Router::compile(&routes, Some("/prod")).unwrap();
//!
//! let path = b"/prod/pets/42";
//! let Lookup::Found(m) = router.find(b"GET", Some(b"api.example.com"), path) else { panic!() };
//! assert_eq!(m.route, 1);
//! assert_eq!(&path[m.param(&router, "petId").unwrap()], b"42");
//!
//! // The most specific resource answers, even if it lacks the method.
//! assert_eq!(router.find(b"PUT", None, path), Lookup::MethodNotAllowed { allow: "GET, DELETE" });
//! assert_eq!(router.find(b"GET", None, b"/dev/pets"), Lookup::NotFound);
//!
//! // Backend URI templates, expanded without allocating.
//! let params: Vec<&str> = router.route_params(1).collect();
//! let uri = UriTemplate::parse("http://app/v2/pets/{petId}?src=gw", &params).unwrap();
//! assert_eq!(uri.authority(), "app");
//! let mut target = Vec::with_capacity(256);
//! uri.expand(path, &m, &router, b"debug=1", &mut target).unwrap();
//! assert_eq!(target, b"/v2/pets/42?src=gw&debug=1");
//!
//! // A greedy capture cannot climb above the backend prefix.
//! let Lookup::Found(m) = router.find(b"GET", None, b"/prod/a/%2e%2e/admin") else { panic!() };
//! let proxy = UriTemplate::parse("http://app/api/{proxy}", &["proxy"]).unwrap();
//! assert!(proxy.expand(b"/prod/a/%2e%2e/admin", &m, &router, b"", &mut target).is_err());
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod host;
mod lookup;
pub mod percent;
mod resource;
mod router;
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
