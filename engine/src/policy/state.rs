//! Each worker's policy state: per route what its policies keep (token
//! buckets, verified tokens), and per API key its plan's bucket and quota lease.

use super::chain::Locals;
use super::{Chain, api_key};

/// A compiled configuration as the policies see it when a worker starts
/// serving it (implemented by the snapshot).
pub trait Served {
    /// 0 for the first configuration, +1 per reload.
    fn generation(&self) -> u64;
    /// Each route's path and chain, by route index.
    fn chains(&self) -> impl Iterator<Item = (&str, &Chain)>;
    fn api_keys(&self) -> &api_key::Keys;
}

impl<T: Served> Served for std::sync::Arc<T> {
    fn generation(&self) -> u64 {
        (**self).generation()
    }
    fn chains(&self) -> impl Iterator<Item = (&str, &Chain)> {
        (**self).chains()
    }
    fn api_keys(&self) -> &api_key::Keys {
        (**self).api_keys()
    }
}

/// One worker's policy counters.
#[derive(Debug, Default)]
pub struct WorkerState {
    /// The snapshot generation these vectors are indexed for.
    generation: u64,
    /// Per route: its path and its policies' state (routes with some only).
    routes: Vec<Option<(String, Locals)>>,
    /// Per key of the served `api_keys`.
    keys: Vec<api_key::KeyState>,
}

impl WorkerState {
    pub fn new(served: &impl Served) -> WorkerState {
        let mut s = WorkerState::default();
        s.install(served);
        s
    }

    /// Re-indexes the counters for a reloaded snapshot. A route whose index
    /// keeps its path hands its state to its new policies, which keep what
    /// is still theirs (a throttle its buckets if it is unchanged; verified
    /// tokens start over). A key keeps its quota count if its digest is
    /// unchanged (its bucket, shared by digest and limit, is kept while the
    /// limit is).
    pub fn install(&mut self, served: &impl Served) {
        let mut old_routes = std::mem::take(&mut self.routes);
        self.routes = served
            .chains()
            .enumerate()
            .map(|(i, (path, chain))| {
                let old = match old_routes.get_mut(i).and_then(Option::take) {
                    Some((p, locals)) if p == path => Some(locals),
                    _ => None,
                };
                Some((path.to_string(), chain.locals(old)?))
            })
            .collect();
        let old_keys: std::collections::HashMap<api_key::KeyHash, api_key::KeyState> =
            self.keys.drain(..).map(|k| (k.hash, k)).collect();
        self.keys = served
            .api_keys()
            .keys
            .iter()
            .map(|k| {
                old_keys
                    .get(&k.hash)
                    .map_or_else(|| api_key::KeyState::new(k.hash), |o| o.carried())
            })
            .collect();
        self.generation = served.generation();
    }

    /// What a request on `route` may count on: the key states (always:
    /// a request that began under another generation finds its key's state
    /// by digest, so it is counted like any other) and the route's state
    /// (none if the request began under another generation than this
    /// state's: route indices may have moved).
    #[inline]
    pub(super) fn for_request(
        &mut self,
        generation: u64,
        route: usize,
    ) -> (&mut [api_key::KeyState], Option<&mut Locals>) {
        if generation != self.generation {
            return (&mut self.keys, None);
        }
        let locals = self
            .routes
            .get_mut(route)
            .and_then(|r| r.as_mut())
            .map(|(_, l)| l);
        (&mut self.keys, locals)
    }

    /// Forgets every verified JWT (benchmarks use it to measure the uncached path).
    pub fn forget_tokens(&mut self) {
        for (_, l) in self.routes.iter_mut().flatten() {
            if let Some(j) = &mut l.jwt {
                j.forget_tokens();
            }
        }
    }
}

/// Control plane: starts the background work a configuration's policies
/// need (fetching JWKS URLs) before workers serve it. Idempotent; never
/// called by `ringway check`.
pub fn start_background(served: &impl Served) {
    for (_, chain) in served.chains() {
        chain.start();
    }
}

#[cfg(test)]
mod tests {
    use super::WorkerState;
    use crate::h1::request::{self, RequestHead};
    use crate::policy::{Request, Verdict, run};

    const CONFIG: &str = r#"
[[upstream]]
name = "app"
targets = ["127.0.0.1:1"]

[[usage_plan]]
name = "tight"
rate = 0.5
burst = 3

[[api_key]]
name = "k"
value = "a key only the stale-generation test uses"
plan = "tight"

[[route]]
path = "/keyed/{proxy+}"
upstream = "app"
[route.api_key]
"#;

    /// A request that took its snapshot before a reload and reaches the
    /// policies after the worker installed the new one is counted like any
    /// other: `burst = 3` still lets exactly 3 through. (It used to pass
    /// uncounted: "checked, not counted".)
    #[test]
    fn requests_from_before_a_reload_are_still_counted() {
        let path = std::path::Path::new("t.toml");
        let old = crate::config::from_str(path, CONFIG).unwrap();
        let mut new = crate::config::from_str(path, CONFIG).unwrap();
        new.generation = old.generation + 1;
        let mut state = WorkerState::new(&new);
        let buf = b"GET /keyed/a HTTP/1.1\r\nHost: x\r\nx-api-key: a key only the stale-generation test uses\r\n\r\n";
        let mut head = RequestHead::default();
        assert!(request::parse(buf, &old.limits, &mut head).unwrap());
        let env = old.policy_env();
        let verdicts: Vec<bool> = (0..5)
            .map(|_| {
                let req = Request {
                    buf,
                    head: &head,
                    peer: [127, 0, 0, 1].into(),
                    route: 0,
                    path: b"/keyed/a",
                    found: None,
                };
                let (mut fields, mut upstream) = (Vec::new(), Vec::new());
                let v = run(
                    &old.routes[0].policies,
                    &env,
                    &mut state,
                    &req,
                    &mut fields,
                    &mut upstream,
                );
                v == Verdict::Forward
            })
            .collect();
        assert_eq!(verdicts, [true, true, true, false, false]);
    }
}
