//! A JWKS URL: its key set, refreshed on a background thread and handed to
//! the workers without a lock on the request path.
//!
//! The fetcher thread (one per distinct URL, started by [`RemoteKeys::start`]
//! when a snapshot goes live, never by `ringway check`) stores each new key
//! set in `slot` and then bumps `generation`. A worker reads `generation`
//! (one load of a rarely written cache line) on each request and takes the
//! slot's lock only when the number changed, keeping its own `Arc` of the
//! set in between. A failed fetch keeps the last good set. Until the first
//! fetch succeeds `generation` is 0 and tokens are refused.
//!
//! A token naming a `kid` the set lacks (a key rotated in at the issuer)
//! asks the thread for an early fetch, at most once per
//! [`EARLY_REFRESH_EVERY`]; that request itself is refused.
//!
//! Reload: compiling a config looks up a live `RemoteKeys` with the same URL,
//! CA bundle and refresh period (see [`shared`]) and reuses it, keys and
//! thread included, so a reload does not start over without keys.

use super::fetch::{self, JwksUrl};
use super::keys::{KeySet, parse_jwks};
use ringway_tls::rustls::ClientConfig;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::Thread;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// The least time between two early fetches asked for by unknown `kid`s.
pub const EARLY_REFRESH_EVERY: Duration = Duration::from_secs(30);
/// After a failed fetch, the next try comes after 1 s, 2 s, 4 s, ... up to
/// this (or the refresh period, if shorter).
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// What makes two `[route.jwt]` tables fetch the same thing.
#[derive(Clone, PartialEq, Eq)]
struct Identity {
    url: String,
    refresh: Duration,
    /// The PEM text of `jwks_ca`, if given.
    ca: Option<Vec<u8>>,
}

pub struct RemoteKeys {
    identity: Identity,
    url: JwksUrl,
    tls: Option<Arc<ClientConfig>>,
    /// 0 until the first successful fetch; +1 per changed key set.
    generation: AtomicU64,
    slot: Mutex<Option<Arc<KeySet>>>,
    /// Set by a worker that wants an early fetch; cleared by the fetcher.
    wanted: AtomicBool,
    /// Milliseconds since `epoch` of the last early fetch asked for (0: none).
    early_at: AtomicU64,
    epoch: Instant,
    /// The fetcher thread, once started (`None`: it could not be).
    fetcher: OnceLock<Option<Thread>>,
    pub fetches_ok: AtomicU64,
    pub fetches_failed: AtomicU64,
}

impl std::fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKeys")
            .field("url", &self.identity.url)
            .field("refresh", &self.identity.refresh)
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Live key sources by identity, so a reload (or two routes naming one URL) shares one.
static LIVE: Mutex<Vec<Weak<RemoteKeys>>> = Mutex::new(Vec::new());

/// The `RemoteKeys` for this URL, CA and period: a live one if the running
/// config has it, else a new one (not fetching until [`RemoteKeys::start`]).
pub fn shared(
    url: JwksUrl,
    text: &str,
    refresh: Duration,
    ca: Option<Vec<u8>>,
    tls: Option<Arc<ClientConfig>>,
) -> Arc<RemoteKeys> {
    let identity = Identity {
        url: text.to_string(),
        refresh,
        ca,
    };
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    live.retain(|w| w.strong_count() > 0);
    if let Some(r) = live
        .iter()
        .filter_map(Weak::upgrade)
        .find(|r| r.identity == identity)
    {
        return r;
    }
    let r = Arc::new(RemoteKeys {
        identity,
        url,
        tls,
        generation: AtomicU64::new(0),
        slot: Mutex::new(None),
        wanted: AtomicBool::new(false),
        early_at: AtomicU64::new(0),
        epoch: Instant::now(),
        fetcher: OnceLock::new(),
        fetches_ok: AtomicU64::new(0),
        fetches_failed: AtomicU64::new(0),
    });
    live.push(Arc::downgrade(&r));
    r
}

impl RemoteKeys {
    /// The URL as configured.
    pub fn url(&self) -> &str {
        &self.identity.url
    }

    /// The generation of the current key set (0: none yet). Hot path: one atomic load.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The current key set (takes the slot's lock: call when [`Self::generation`] changed).
    pub fn current(&self) -> Option<Arc<KeySet>> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Starts the fetcher thread, once; later calls do nothing.
    pub fn start(self: &Arc<Self>) {
        self.fetcher.get_or_init(|| {
            let weak = Arc::downgrade(self);
            let name = "ringway-jwks".to_string();
            match std::thread::Builder::new()
                .name(name)
                .spawn(move || fetch_loop(weak))
            {
                Ok(h) => Some(h.thread().clone()),
                Err(e) => {
                    warn!("jwks {}: cannot start the fetch thread: {e}", self.url());
                    None
                }
            }
        });
    }

    /// Asks the fetcher for an early fetch, unless one was asked for within
    /// [`EARLY_REFRESH_EVERY`]. Never blocks: two atomics and an unpark.
    pub fn request_refresh(&self) {
        let now = (self.epoch.elapsed().as_millis() as u64).max(1);
        let last = self.early_at.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < EARLY_REFRESH_EVERY.as_millis() as u64 {
            return;
        }
        if self
            .early_at
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        self.wanted.store(true, Ordering::Release);
        if let Some(Some(t)) = self.fetcher.get() {
            t.unpark();
        }
    }

    /// One fetch; on success installs the set if it differs from the last one.
    fn fetch_once(&self, last_body: &mut Option<Vec<u8>>) -> Result<(), String> {
        let body = fetch::get(&self.url, self.tls.as_ref())?;
        if last_body.as_deref() == Some(body.as_slice()) && self.generation() != 0 {
            return Ok(());
        }
        let text = std::str::from_utf8(&body).map_err(|_| "the body is not UTF-8".to_string())?;
        let set = parse_jwks(text)?;
        let n = set.len();
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(set));
        let g = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        *last_body = Some(body);
        info!(
            "jwks {}: {n} key{} loaded (key set {g})",
            self.url(),
            if n == 1 { "" } else { "s" }
        );
        Ok(())
    }
}

impl Drop for RemoteKeys {
    fn drop(&mut self) {
        // Wake the fetcher so it sees the set is gone and exits.
        if let Some(Some(t)) = self.fetcher.get() {
            t.unpark();
        }
    }
}

/// The fetcher thread: fetch, sleep until the next refresh (or an early
/// request), again; exits once no config refers to the URL any more.
fn fetch_loop(weak: Weak<RemoteKeys>) {
    let mut last_body = None;
    let mut failures = 0u32;
    loop {
        let Some(me) = weak.upgrade() else { return };
        me.wanted.store(false, Ordering::Relaxed);
        let wait = match me.fetch_once(&mut last_body) {
            Ok(()) => {
                me.fetches_ok.fetch_add(1, Ordering::Relaxed);
                failures = 0;
                me.identity.refresh
            }
            Err(e) => {
                me.fetches_failed.fetch_add(1, Ordering::Relaxed);
                let retry = retry_delay(failures).min(me.identity.refresh);
                failures = failures.saturating_add(1);
                let keeping = if me.generation() == 0 {
                    "no keys yet: tokens are refused"
                } else {
                    "keeping the last good key set"
                };
                warn!(
                    "jwks {}: fetch failed: {e}; {keeping}; next try in {retry:?}",
                    me.url()
                );
                retry
            }
        };
        drop(me);
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::park_timeout(left);
            let Some(me) = weak.upgrade() else { return };
            if me.wanted.load(Ordering::Acquire) {
                break;
            }
        }
    }
}

/// 1 s, 2 s, 4 s, ... capped at [`MAX_RETRY_DELAY`].
fn retry_delay(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(6)).min(MAX_RETRY_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_up_to_a_minute() {
        let d: Vec<u64> = (0..9).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(d, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn same_url_ca_and_period_share_one_source() {
        let url = |s: &str| JwksUrl::parse(s).unwrap();
        let t = "http://127.0.0.1:9/a";
        let a = shared(url(t), t, Duration::from_secs(300), None, None);
        let b = shared(url(t), t, Duration::from_secs(300), None, None);
        let c = shared(url(t), t, Duration::from_secs(60), None, None);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        drop((a, b));
        // Nothing held it: a new one starts over.
        let d = shared(url(t), t, Duration::from_secs(300), None, None);
        assert_eq!(d.generation(), 0);
    }

    #[test]
    fn early_refresh_requests_are_rate_limited() {
        let t = "http://127.0.0.1:9/rate";
        let r = shared(
            JwksUrl::parse(t).unwrap(),
            t,
            Duration::from_secs(1),
            None,
            None,
        );
        r.request_refresh();
        assert!(r.wanted.swap(false, Ordering::Relaxed));
        r.request_refresh();
        assert!(!r.wanted.load(Ordering::Relaxed), "asked twice within 30 s");
    }
}
