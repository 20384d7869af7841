//! Compiling route specs into a [`Router`] and looking requests up in it.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use crate::error::{RouteError, RouteErrorKind};
use crate::host::{HostPattern, HostTable};
use crate::lookup::{Lookup, Match};
use crate::resource::{self, Choice, Resource};
use crate::syntax::{self, Segment};
use crate::tree::{Builder, MAX_PARAMS, Spans, Tree};

/// One route as configured. Its id is its index in the slice given to
/// [`Router::compile`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteSpec {
    /// Path template: `/`, `/pets`, `/pets/{petId}`, `/{proxy+}`.
    pub path: String,
    /// Method names (`GET`, …, any HTTP token) or `ANY`; case-sensitive.
    pub methods: Vec<String>,
    /// `api.example.com`, `*.example.com`, or `None` for the default table.
    pub host: Option<String>,
}

impl RouteSpec {
    /// A route without host.
    pub fn new(path: &str, methods: &[&str]) -> Self {
        RouteSpec {
            path: path.into(),
            methods: methods.iter().map(|m| m.to_string()).collect(),
            host: None,
        }
    }

    /// The same route bound to `host`.
    #[must_use]
    pub fn with_host(mut self, host: &str) -> Self {
        self.host = Some(host.into());
        self
    }
}

#[derive(Debug)]
struct RouteInfo {
    path: Box<str>,
    /// Parameter name ids, in order; `param_count` of them are used.
    names: [u16; MAX_PARAMS],
    param_count: u8,
    greedy: bool,
}

/// The compiled, immutable route table. `Send + Sync`: build once, share
/// (e.g. in an `Arc`) across worker threads.
#[derive(Debug)]
pub struct Router {
    stage: Option<Box<[u8]>>,
    hosts: HostTable,
    trees: Vec<Tree>,
    /// Host pattern text of each tree (`None`: the default table).
    tree_hosts: Vec<Option<Box<str>>>,
    resources: Vec<Resource>,
    routes: Vec<RouteInfo>,
    names: Vec<Box<str>>,
}

/// One row of the compiled table, see [`Router::table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableEntry<'a> {
    /// The host pattern, or `None` for the default table.
    pub host: Option<&'a str>,
    /// The method, or `ANY`.
    pub method: &'a str,
    /// The path template as configured.
    pub path: &'a str,
    /// The route index.
    pub route: usize,
}

fn parse_stage(stage: Option<&str>) -> Result<Option<Box<[u8]>>, RouteError> {
    let Some(stage) = stage else { return Ok(None) };
    let stage = stage.trim_end_matches('/');
    if stage.is_empty() {
        return Ok(None);
    }
    let stage = if stage.starts_with('/') {
        stage.to_owned()
    } else {
        format!("/{stage}")
    };
    let template =
        syntax::parse_path(&stage).map_err(|e| RouteError::stage(format!("`{stage}`: {e}")))?;
    if template
        .segments
        .iter()
        .any(|s| !matches!(s, Segment::Literal(_)))
    {
        return Err(RouteError::stage(format!(
            "`{stage}`: a stage takes no parameters"
        )));
    }
    Ok(Some(stage.into_bytes().into_boxed_slice()))
}

impl Router {
    /// Compiles `routes` (optionally all under the `stage` prefix, e.g.
    /// `/prod`) into a router. Fails on the first bad or conflicting route.
    pub fn compile(routes: &[RouteSpec], stage: Option<&str>) -> Result<Router, RouteError> {
        let stage = parse_stage(stage)?;
        let mut tables: BTreeMap<Option<HostPattern>, Builder> = BTreeMap::new();
        let mut resources: Vec<Resource> = Vec::new();
        let mut infos = Vec::with_capacity(routes.len());
        let mut names: Vec<Box<str>> = Vec::new();
        let mut name_ids: HashMap<Box<str>, u16> = HashMap::new();
        if routes.len() >= u32::MAX as usize {
            return Err(RouteError::new(
                RouteErrorKind::TooLarge,
                0,
                "",
                "too many routes".into(),
            ));
        }
        for (i, spec) in routes.iter().enumerate() {
            let err = |kind, message| RouteError::new(kind, i, &spec.path, message);
            let template =
                syntax::parse_path(&spec.path).map_err(|m| err(RouteErrorKind::Path, m))?;
            let count = template.param_names().count();
            if count > MAX_PARAMS {
                let m = format!("{count} parameters; at most {MAX_PARAMS} are supported");
                return Err(err(RouteErrorKind::TooManyParams, m));
            }
            let host = match &spec.host {
                Some(h) => Some(HostPattern::parse(h).map_err(|m| err(RouteErrorKind::Host, m))?),
                None => None,
            };
            if spec.methods.is_empty() {
                return Err(err(
                    RouteErrorKind::Method,
                    "no methods (use `ANY` for all)".into(),
                ));
            }
            for (k, method) in spec.methods.iter().enumerate() {
                resource::check_method(method).map_err(|m| err(RouteErrorKind::Method, m))?;
                if spec.methods[..k].contains(method) {
                    return Err(err(
                        RouteErrorKind::Method,
                        format!("method {method} listed twice"),
                    ));
                }
            }
            let mut ids = Vec::with_capacity(count);
            for name in template.param_names() {
                let next = names.len();
                let id = match name_ids.get(name) {
                    Some(&id) => id,
                    None => {
                        let id = u16::try_from(next).map_err(|_| {
                            err(RouteErrorKind::TooLarge, "too many parameter names".into())
                        })?;
                        names.push(name.into());
                        name_ids.insert(name.into(), id);
                        id
                    }
                };
                ids.push(id);
            }
            let greedy = matches!(template.segments.last(), Some(Segment::Greedy(_)));
            let builder = tables.entry(host).or_default();
            let rid = builder.resource(&template.segments, &mut || {
                resources.push(Resource::default());
                (resources.len() - 1) as u32
            });
            for method in &spec.methods {
                resources[rid as usize].add(method, i as u32).map_err(|old| {
                    let old = old as usize;
                    RouteError::conflict(
                        (i, &spec.path),
                        (old, &routes[old].path),
                        format!("both answer {method} on the same resource (same host and path shape)"),
                    )
                })?;
            }
            let mut names_inline = [0u16; MAX_PARAMS];
            names_inline[..ids.len()].copy_from_slice(&ids);
            infos.push(RouteInfo {
                path: spec.path.as_str().into(),
                names: names_inline,
                param_count: ids.len() as u8,
                greedy,
            });
        }
        resources.iter_mut().for_each(Resource::seal);
        let mut trees = Vec::with_capacity(tables.len());
        let mut tree_hosts = Vec::with_capacity(tables.len());
        let mut patterns = Vec::with_capacity(tables.len());
        for (idx, (host, builder)) in tables.into_iter().enumerate() {
            trees.push(builder.freeze());
            tree_hosts.push(host.as_ref().map(|h| h.as_text().into_boxed_str()));
            patterns.push((host, idx as u32));
        }
        Ok(Router {
            stage,
            hosts: HostTable::new(patterns),
            trees,
            tree_hosts,
            resources,
            routes: infos,
            names,
        })
    }

    /// Looks up a request. `path` is the request target's path (a `?query`
    /// suffix is ignored if present), `host` the `Host` header value (port
    /// allowed). Allocates nothing.
    #[inline]
    pub fn find<'a>(&'a self, method: &[u8], host: Option<&[u8]>, path: &[u8]) -> Lookup<'a> {
        // The walk is out of line; the match is built here, in the caller's
        // frame, so it is not copied again on return.
        let mut m = Match::new();
        match self.resolve(method, host, path, &mut m.spans) {
            Ok((route, path_len)) => {
                let info = &self.routes[route as usize];
                m.route = route as usize;
                m.greedy = info.greedy;
                m.names = info.names;
                // A greedy capture keeps the trailing slash the lookup
                // ignored, so the backend sees `/dir/` as sent.
                if let Some(last) = m.spans.len.checked_sub(1)
                    && info.greedy
                    && m.spans.spans[last].1 as usize + 1 == path_len
                {
                    m.spans.spans[last].1 += 1;
                }
                Lookup::Found(m)
            }
            Err(Some(allow)) => Lookup::MethodNotAllowed { allow },
            Err(None) => Lookup::NotFound,
        }
    }

    /// The route for a request and the length of its path without query
    /// (`Err(Some(allow))`: 405, `Err(None)`: 404), its captures in `spans`.
    fn resolve(
        &self,
        method: &[u8],
        host: Option<&[u8]>,
        path: &[u8],
        spans: &mut Spans,
    ) -> Result<(u32, usize), Option<&str>> {
        let path = match crate::scan::find(path, b'?') {
            Some(q) => &path[..q],
            None => path,
        };
        if path.first() != Some(&b'/') || path.len() > u32::MAX as usize {
            return Err(None);
        }
        let table = self.hosts.select(host).ok_or(None)?;
        let mut pos = 0;
        if let Some(stage) = &self.stage {
            if !path.starts_with(stage) || path.get(stage.len()).is_some_and(|&b| b != b'/') {
                return Err(None);
            }
            pos = stage.len();
        }
        let mut end = path.len();
        if end > pos && path[end - 1] == b'/' {
            end -= 1;
        }
        let resource = self.trees[table as usize]
            .find(&path[..end], pos, spans)
            .ok_or(None)?;
        match self.resources[resource as usize].choose(method) {
            Choice::NotAllowed(allow) => Err(Some(allow)),
            Choice::Route(route) => Ok((route, path.len())),
        }
    }

    /// The text of a parameter name id (see [`Param::name_id`](crate::Param::name_id)).
    pub fn param_name(&self, id: u16) -> &str {
        self.names.get(id as usize).map_or("", |n| n)
    }

    /// The number of routes compiled.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether no route was compiled.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The path template of `route`.
    pub fn route_path(&self, route: usize) -> &str {
        &self.routes[route].path
    }

    /// The parameter names `route` defines, in order (greedy ones without
    /// `+`): what [`UriTemplate::parse`](crate::template::UriTemplate::parse)
    /// takes.
    pub fn route_params(&self, route: usize) -> impl Iterator<Item = &str> {
        let info = &self.routes[route];
        info.names[..info.param_count as usize]
            .iter()
            .map(|&id| self.param_name(id))
    }

    /// The stage prefix, if any (`/prod`).
    pub fn stage(&self) -> Option<&str> {
        self.stage
            .as_deref()
            .map(|s| std::str::from_utf8(s).unwrap_or(""))
    }

    /// The compiled table in precedence order: exact hosts, wildcard hosts
    /// (longest first), the default table; within a table resources from the
    /// most specific; within a resource its methods, `ANY` last.
    pub fn table(&self) -> impl Iterator<Item = TableEntry<'_>> {
        let mut rows = Vec::new();
        for t in self.hosts.order() {
            let host = self.tree_hosts[t as usize].as_deref();
            self.trees[t as usize].visit(&mut |r| {
                for (method, route) in self.resources[r as usize].routes() {
                    let path = &*self.routes[route as usize].path;
                    rows.push(TableEntry {
                        host,
                        method,
                        path,
                        route: route as usize,
                    });
                }
            });
        }
        rows.into_iter()
    }

    /// The compiled table as text, one route per line, for `ringway check`.
    pub fn describe(&self) -> String {
        let rows: Vec<_> = self.table().collect();
        let host_w = rows
            .iter()
            .map(|r| r.host.map_or(5, str::len))
            .max()
            .unwrap_or(1);
        let method_w = rows.iter().map(|r| r.method.len()).max().unwrap_or(1);
        let path_w = rows.iter().map(|r| r.path.len()).max().unwrap_or(1);
        let mut out = String::new();
        if let Some(stage) = self.stage() {
            let _ = writeln!(out, "stage {stage}");
        }
        for r in rows {
            let host = r.host.unwrap_or("(any)");
            let _ = writeln!(
                out,
                "{host:host_w$}  {:method_w$}  {:path_w$}  #{}",
                r.method, r.path, r.route
            );
        }
        out
    }
}
