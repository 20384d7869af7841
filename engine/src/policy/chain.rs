//! What every policy is ([`Policy`]) and what the policy table makes of
//! the policies: a route's [`Chain`], the inherited [`Tables`], the names.

use super::check::{Check, Verdict};
use super::{Problem, with_policy_table};
use std::ops::ControlFlow;
use std::path::Path;
use toml::Spanned;

/// One policy: its config table, how it compiles, how it checks a request.
pub trait Policy: Sized + std::fmt::Debug {
    /// Its config table (`[route.NAME]`, `[server.NAME]`, `NAME` in `[[host]]`).
    type Table: std::fmt::Debug;
    /// Its state per worker and route (token buckets, verified tokens); `()` for none.
    type Local: std::fmt::Debug;

    /// Control plane: the table → the policy, or what is wrong (keys below the table).
    fn compile(table: &Self::Table, cx: &Compile<'_>) -> Result<Self, Problem>;

    /// Data plane: checks a request. `Break` ends the chain with that
    /// verdict; `local` is this worker's state for the route, `None` for a
    /// request that began under an older snapshot (counted nowhere).
    fn check<'c>(
        &'c self,
        cx: &mut Check<'_>,
        local: Option<&mut Self::Local>,
    ) -> ControlFlow<Verdict<'c>>;

    /// A worker's state for the route, given what it had under the previous
    /// snapshot if the route at this index kept its path.
    fn local(&self, _old: Option<Self::Local>) -> Option<Self::Local> {
        None
    }

    /// Whether the check reads the client address (after `trusted_proxies`).
    fn uses_client_ip(&self) -> bool {
        false
    }

    /// Request header names it sets upstream: the client's are dropped.
    fn replaced(&self) -> &[Box<[u8]>] {
        &[]
    }

    /// Control plane: starts its background work (fetching keys) before serving.
    fn start(&self) {}
}

/// What compiling a policy table may read besides the table.
pub struct Compile<'a> {
    /// The config file's folder (files named in tables are relative to it).
    pub base: &'a Path,
    /// The route's path parameters (none for an inherited table).
    pub params: &'a [&'a str],
    /// The route's identity (host, methods, path; empty for an inherited
    /// table): shared limit state is kept across reloads under it.
    pub route: &'a str,
}

/// Expands the policy table into the chain, the inherited tables, the names.
macro_rules! policy_items {
    (
        {}
        inherited: [$($i:ident: $it:ty,)*]
        route_only: [$($r:ident: $rt:ty,)*]
    ) => {
        policy_items! { @all [$($i: $it,)* $($r: $rt,)*] inheritable [$($i)*] }
    };
    (@all [$($n:ident: $t:ty,)*] inheritable [$($i:ident)*]) => {
        /// The policy names, in the order they run.
        pub const NAMES: &[&str] = &[$(stringify!($n),)*];

        /// The names `disable = [...]` may give: policies `[server]` and `[[host]]` may set.
        pub const INHERITABLE: &[&str] = &[$(stringify!($i),)*];

        /// One route's compiled policies.
        #[derive(Debug, Default)]
        pub struct Chain {
            $(pub $n: Option<Box<$t>>,)*
            /// Request header names policies set (JWT claims, mappings): the client's are dropped.
            pub replaced: Vec<Box<[u8]>>,
            /// Whether a policy reads the client address.
            client_ip: bool,
        }

        /// Policy tables that apply to a route, each where it was written
        /// (the route's own, or inherited from `[[host]]` or `[server]`).
        #[derive(Debug, Default, Clone, Copy)]
        pub struct Tables<'a> {
            $(pub $n: Option<&'a Spanned<<$t as Policy>::Table>>,)*
        }

        /// A worker's state for one route, per policy that keeps any.
        #[derive(Debug, Default)]
        pub(super) struct Locals {
            $(pub $n: Option<<$t as Policy>::Local>,)*
        }

        impl Chain {
            #[inline]
            pub fn is_empty(&self) -> bool {
                true $(&& self.$n.is_none())*
            }

            /// The policies present, in the order they run (for `ringway check`).
            pub fn names(&self) -> Vec<&'static str> {
                let mut names = Vec::new();
                $(if self.$n.is_some() { names.push(stringify!($n)); })*
                names
            }

            /// Control plane: compiles the tables that apply to a route.
            /// Problems carry keys relative to the route (`cors.allow_origins[1]`).
            pub fn compile(tables: Tables<'_>, cx: &Compile<'_>) -> (Chain, Vec<Problem>) {
                let mut problems = Vec::new();
                let mut chain = Chain {
                    $($n: one::<$t>(tables.$n, stringify!($n), cx, &mut problems),)*
                    replaced: Vec::new(),
                    client_ip: false,
                };
                $(if let Some(p) = &chain.$n {
                    chain.replaced.extend(p.replaced().iter().cloned());
                    chain.client_ip |= p.uses_client_ip();
                })*
                (chain, problems)
            }

            /// Whether a policy reads the client address.
            #[inline]
            pub fn uses_client_ip(&self) -> bool {
                self.client_ip
            }

            /// Data plane: runs each policy in turn.
            #[inline]
            pub(super) fn check<'c>(
                &'c self,
                cx: &mut Check<'_>,
                mut locals: Option<&mut Locals>,
            ) -> ControlFlow<Verdict<'c>> {
                $(if let Some(p) = &self.$n {
                    p.check(cx, locals.as_deref_mut().and_then(|l| l.$n.as_mut()))?;
                })*
                ControlFlow::Continue(())
            }

            /// A worker's state for this chain (`None`: no policy keeps any),
            /// carrying `old` over where the policies allow it.
            pub(super) fn locals(&self, old: Option<Locals>) -> Option<Locals> {
                let mut old = old.unwrap_or_default();
                let l = Locals {
                    $($n: self.$n.as_ref().and_then(|p| p.local(old.$n.take())),)*
                };
                let any = false $(|| l.$n.is_some())*;
                any.then_some(l)
            }

            /// Control plane: starts the policies' background work.
            pub(super) fn start(&self) {
                $(if let Some(p) = &self.$n { p.start(); })*
            }
        }

        impl<'a> Tables<'a> {
            /// These tables where present, else `outer`'s.
            pub fn over(self, outer: Tables<'a>) -> Tables<'a> {
                Tables {
                    $($n: self.$n.or(outer.$n),)*
                }
            }

            /// Without the policies `names` (`disable = ["jwt"]`); names already checked.
            pub fn without(mut self, names: &[Spanned<String>]) -> Tables<'a> {
                for n in names {
                    let n = n.get_ref().as_str();
                    $(if n == stringify!($i) { self.$i = None; })*
                }
                self
            }

            /// Control plane: checks inherited tables once (problems keyed
            /// `cors.allow_origins[0]`, ... below their owner), keeping those that compile.
            pub fn checked(self, base: &Path) -> (Tables<'a>, Vec<Problem>) {
                let mut problems = Vec::new();
                let cx = Compile {
                    base,
                    params: &[],
                    route: "",
                };
                let tables = Tables {
                    $($n: self.$n.filter(|&t| {
                        one::<$t>(Some(t), stringify!($n), &cx, &mut problems).is_some()
                    }),)*
                };
                (tables, problems)
            }
        }
    };
}

with_policy_table!(policy_items! {});

/// Compiles one policy table, turning its problem into one keyed below `name`.
fn one<P: Policy>(
    t: Option<&Spanned<P::Table>>,
    name: &str,
    cx: &Compile<'_>,
    problems: &mut Vec<Problem>,
) -> Option<Box<P>> {
    let t = t?;
    match P::compile(t.get_ref(), cx) {
        Ok(c) => Some(Box::new(c)),
        Err(p) => {
            problems.push(Problem {
                span: if p.span == (0..0) { t.span() } else { p.span },
                key: format!("{name}.{}", p.key),
                message: p.message,
            });
            None
        }
    }
}

/// Control plane: `disable = [...]` names policies a route or host does not inherit.
pub fn check_disable(names: &[Spanned<String>]) -> Vec<Problem> {
    names
        .iter()
        .enumerate()
        .filter(|(_, n)| !INHERITABLE.contains(&n.get_ref().as_str()))
        .map(|(i, n)| {
            Problem::new(
                n.span(),
                format!("disable[{i}]"),
                format!(
                    "{:?} is not an inherited policy (one of {INHERITABLE:?})",
                    n.get_ref()
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{INHERITABLE, NAMES};

    const CONFIG: &str = r#"
[server.cors]
allow_origins = ["*"]
[server.ip]
deny = ["192.0.2.0/24"]
[server.throttle]
rate = 10
[[upstream]]
name = "u"
targets = ["127.0.0.1:1"]
[[route]]
path = "/all"
methods = ["GET"]
[route.api_key]
[route.validate]
[route.mapping]
request = { "overwrite:header.x-from" = "$context.identity.sourceIp" }
[route.mock]
[[route]]
path = "/none"
upstream = "u"
disable = ["cors", "ip", "throttle"]
"#;

    /// Names come from the table, in the order the policies run; `[server]`
    /// tables reach routes unless `disable`d.
    #[test]
    fn the_table_orders_names_and_inheritance() {
        let snap = crate::config::from_str(std::path::Path::new("t.toml"), CONFIG).unwrap();
        let all = &snap.routes[0].policies;
        let want: Vec<_> = NAMES.iter().copied().filter(|&n| n != "jwt").collect();
        assert_eq!(all.names(), want);
        assert!(all.uses_client_ip());
        assert_eq!(all.replaced, [b"x-from".to_vec().into_boxed_slice()]);
        assert!(snap.routes[1].policies.is_empty());
        assert_eq!(NAMES.last(), Some(&"mock"));
        assert!(INHERITABLE.iter().all(|n| NAMES.contains(n)));
        let bad = CONFIG.replace("\"throttle\"]", "\"mock\"]");
        let e = crate::config::from_str(std::path::Path::new("t.toml"), &bad).unwrap_err();
        assert!(
            e.to_string()
                .contains("\"mock\" is not an inherited policy"),
            "{e}"
        );
    }
}
