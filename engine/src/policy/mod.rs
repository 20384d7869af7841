//! Per-route policies, in the order they run on a request: CORS → IP rules →
//! API key (and its usage plan) → JWT → throttle → validation → mapping →
//! mock integration.
//!
//! Each policy is one file with a type implementing [`Policy`]: `compile`
//! (control plane, at config load: errors become config errors naming file,
//! line and key) and a synchronous, I/O-free `check` (data plane), reading
//! what it needs of the served configuration through an [`Env`].
//!
//! **The policy table** below is the one list of policies. From it come the
//! route's compiled [`Chain`] (an `Option<Box<_>>` per policy, so a route
//! without policies costs one branch on [`Chain::is_empty`]), the config
//! sections (`[server]`, `[[host]]` and `[[route]]` tables of each name),
//! inheritance (`[server]` → `[[host]]` → route, `disable = [...]`), the run
//! order, the names `ringway check` and `routes` print ([`NAMES`]), and each
//! worker's per-route state ([`WorkerState`]). Adding a policy is one file
//! (its type, its config table, its `impl Policy`) and its row in the
//! table, plus the file's `pub mod` line above it.

pub mod api_key;
mod chain;
mod check;
pub mod cors;
pub mod ip;
pub mod jwt;
pub mod mapping;
pub mod mock;
pub mod responses;
pub mod schema;
mod state;
pub mod throttle;
pub mod validate;

pub use chain::{Chain, Compile, INHERITABLE, NAMES, Policy, Tables, check_disable};
pub use check::{Check, Env, Request, Verdict, run};
pub use state::{Served, WorkerState, start_background};

/// The policy table: every policy's name (its config key) and type, in the
/// order they run. `inherited` policies may also be set in `[server]` and
/// `[[host]]` and be `disable`d; `route_only` ones run after them. Calls
/// `$callback! { { $args } inherited: [name: Type, ...] route_only: [...] }`
/// (the callbacks: `chain::policy_items!` here, `config::model`'s
/// `policy_fields!` for the config sections).
macro_rules! with_policy_table {
    ($callback:ident ! { $($args:tt)* }) => {
        $callback! {
            { $($args)* }
            inherited: [
                cors: $crate::policy::cors::Cors,
                ip: $crate::policy::ip::IpRules,
                api_key: $crate::policy::api_key::KeySource,
                jwt: $crate::policy::jwt::Jwt,
                throttle: $crate::policy::throttle::Throttle,
                validate: $crate::policy::validate::Validate,
                mapping: $crate::policy::mapping::Mapping,
            ]
            route_only: [
                mock: $crate::policy::mock::Mock,
            ]
        }
    };
}
pub(crate) use with_policy_table;

/// Appends a field per policy of the table to a config struct (`[server]`
/// and `[[host]]`: the inherited ones; a route: all), and gives it
/// `policy_tables()`, the tables it sets.
macro_rules! policy_fields {
    (
        { $(#[$m:meta])* pub struct $name:ident { $($body:tt)* } inherited }
        inherited: [$($i:ident: $it:ty,)*]
        route_only: [$($r:ident: $rt:ty,)*]
    ) => {
        $crate::policy::policy_fields! {
            @emit { $(#[$m])* pub struct $name { $($body)* } } [$($i: $it,)*] [$($r)*]
        }
    };
    (
        { $(#[$m:meta])* pub struct $name:ident { $($body:tt)* } all }
        inherited: [$($i:ident: $it:ty,)*]
        route_only: [$($r:ident: $rt:ty,)*]
    ) => {
        $crate::policy::policy_fields! {
            @emit { $(#[$m])* pub struct $name { $($body)* } } [$($i: $it,)* $($r: $rt,)*] []
        }
    };
    // The struct with the fields `[name: Type, ...]`; the `[names]` it lacks read as unset.
    (@emit { $(#[$m:meta])* pub struct $name:ident { $($body:tt)* } }
        [$($f:ident: $ft:ty,)*] [$($absent:ident)*]
    ) => {
        $(#[$m])*
        pub struct $name {
            $($body)*
            $(pub $f: Option<::toml::Spanned<<$ft as $crate::policy::Policy>::Table>>,)*
        }
        impl $name {
            /// The policy tables this section sets.
            pub fn policy_tables(&self) -> $crate::policy::Tables<'_> {
                $crate::policy::Tables {
                    $($f: self.$f.as_ref(),)*
                    $($absent: None,)*
                }
            }
        }
    };
}
pub(crate) use policy_fields;

use std::ops::Range;

/// A policy config problem: where it is, the key below the policy's table, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Byte range in the config text; `0..0` means "the policy's table".
    pub span: Range<usize>,
    pub key: String,
    pub message: String,
}

impl Problem {
    pub fn new(span: Range<usize>, key: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            span,
            key: key.into(),
            message: message.into(),
        }
    }
}
