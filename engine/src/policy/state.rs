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
    /// unchanged (its bucket starts full).
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

    /// What a request on `route` may count on: nothing (an empty key list,
    /// no route state) if it began under another generation than this
    /// state's.
    #[inline]
    pub(super) fn for_request(
        &mut self,
        generation: u64,
        route: usize,
    ) -> (&mut [api_key::KeyState], Option<&mut Locals>) {
        if generation != self.generation {
            return (&mut [], None);
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
