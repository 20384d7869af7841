//! Token buckets shared by every worker of the process, so that a limit
//! means one number however many workers run: `burst = 3` lets exactly 3
//! requests through, whichever cores their connections landed on.
//!
//! A bucket is kept as GCRA (the generic cell rate algorithm) does it: one
//! number, the *theoretical arrival time* (TAT) — when the bucket would be
//! full again. A request at time `t` is admitted if, after adding one
//! emission interval `T = 1 / rate` to `max(TAT, t)`, the bucket is at most
//! `burst` intervals ahead of `t`. That makes the whole state one `u64`,
//! updated with compare-and-swap: no lock, and a refused request writes
//! nothing. Each bucket sits on a cache line of its own so two hot buckets
//! never share one.
//!
//! Buckets keyed by something open-ended (client address, a header's
//! value) live in a [`Keyed`] map: sharded, each shard a small mutex-guarded
//! table, bounded in size (see [`Keyed`] for what happens past the bound).
//!
//! Buckets outlive a reload when the limit they enforce is unchanged:
//! [`shared`] and [`shared_keyed`] hand out the same bucket for the same
//! identity and limit for the life of the process.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Nanoseconds since the process's limit clock started (monotonic).
#[inline]
pub fn now() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// A limit in GCRA terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    /// Nanoseconds between two requests at the sustained rate (`1 / rate`).
    interval: u64,
    /// How far ahead of now the bucket may run: `burst` intervals.
    tolerance: u64,
}

impl Rate {
    /// `rate` requests per second (> 0) with bursts of up to `burst` (≥ 1).
    pub fn new(rate: f64, burst: f64) -> Rate {
        let interval = (1e9 / rate).round().clamp(1.0, u64::MAX as f64 / 4.0) as u64;
        let tolerance = (interval as f64 * burst).round().min(u64::MAX as f64 / 2.0) as u64;
        Rate {
            interval,
            tolerance: tolerance.max(interval),
        }
    }

    /// One `n`th of this limit: `rate / n` with a burst of `burst / n` (at
    /// least one request).
    pub fn new_share(whole: Rate, n: u64) -> Rate {
        let interval = whole.interval.saturating_mul(n.max(1));
        Rate {
            interval,
            tolerance: whole.tolerance.max(interval),
        }
    }

    /// Nanoseconds between two requests at the sustained rate.
    pub fn interval(self) -> u64 {
        self.interval
    }

    /// How far ahead of now a bucket may run, in nanoseconds (`burst` intervals).
    pub fn tolerance(self) -> u64 {
        self.tolerance
    }

    /// The time a bucket at `tat` has to wait at `now` before it admits one
    /// more; zero when it would admit now. Also the new TAT if admitted.
    #[inline]
    fn check(self, tat: u64, now: u64) -> Result<u64, Duration> {
        let next = tat.max(now).saturating_add(self.interval);
        let ahead = next - now;
        if ahead <= self.tolerance {
            Ok(next)
        } else {
            Err(Duration::from_nanos(ahead - self.tolerance))
        }
    }
}

/// One shared bucket: the TAT, alone on its cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct Bucket {
    tat: AtomicU64,
}

impl Bucket {
    /// Takes one token at `now` ([`now()`]), or says how long until one is there.
    #[inline]
    pub fn take(&self, rate: Rate, now: u64) -> Result<(), Duration> {
        take(&self.tat, rate, now)
    }
}

/// Takes one token from the bucket whose TAT is `tat`, at `now`.
#[inline]
pub fn take(tat: &AtomicU64, rate: Rate, now: u64) -> Result<(), Duration> {
    let mut seen = tat.load(Ordering::Relaxed);
    loop {
        let next = rate.check(seen, now)?;
        match tat.compare_exchange_weak(seen, next, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return Ok(()),
            Err(current) => seen = current,
        }
    }
}

/// Distinct keys a [`Keyed`] map holds unless told otherwise.
pub const DEFAULT_MAX_KEYS: usize = 100_000;
const SHARDS: usize = 64;

/// Buckets per key (client address, header value), shared by all workers.
///
/// Keys are hashed with a per-map random SipHash key (a client cannot aim
/// its keys at one shard), and a shard holds only hash → TAT. The map holds
/// at most `max_keys` keys (about 40 bytes each). A key whose bucket is full
/// again is indistinguishable from a key never seen, so when a shard is full
/// those are forgotten first, losing nothing. Only if every key of the shard
/// is still spending tokens (a flood of distinct keys, each fast) are the
/// eighth of them nearest to full forgotten: each of those can then spend
/// its burst once more. The bound holds either way.
pub struct Keyed {
    rate: Rate,
    hasher: RandomState,
    per_shard: usize,
    shards: Box<[Shard]>,
}

#[derive(Default)]
#[repr(align(64))]
struct Shard(Mutex<HashMap<u64, u64, BuildHasherDefault<Prehashed>>>);

/// The keys are already SipHash outputs: hashing them again would be waste.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl Keyed {
    pub fn new(rate: Rate, max_keys: usize) -> Keyed {
        Keyed {
            rate,
            hasher: RandomState::new(),
            per_shard: max_keys.div_ceil(SHARDS).max(1),
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        }
    }

    /// Takes one token from `key`'s bucket at `now`.
    pub fn take(&self, key: &[u8], now: u64) -> Result<(), Duration> {
        let hash = self.hasher.hash_one(key);
        // Bits the shard's table does not use (it takes the low and top ones).
        let shard = &self.shards[(hash >> 32) as usize % SHARDS];
        let mut map = shard.0.lock().unwrap_or_else(|p| p.into_inner());
        let tat = map.get(&hash).copied().unwrap_or(0);
        let next = self.rate.check(tat, now)?;
        if map.len() >= self.per_shard && !map.contains_key(&hash) {
            self.make_room(&mut map, now);
        }
        map.insert(hash, next);
        Ok(())
    }

    fn make_room(&self, map: &mut HashMap<u64, u64, BuildHasherDefault<Prehashed>>, now: u64) {
        map.retain(|_, tat| *tat > now);
        if map.len() < self.per_shard {
            return;
        }
        let mut tats: Vec<u64> = map.values().copied().collect();
        let cut = tats.len() / 8;
        let (_, &mut threshold, _) = tats.select_nth_unstable(cut);
        map.retain(|_, tat| *tat > threshold);
    }

    /// Keys held now (all shards).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.0.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for Keyed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyed")
            .field("rate", &self.rate)
            .field("max_keys", &(self.per_shard * SHARDS))
            .finish()
    }
}

/// The bucket for `identity` (e.g. `"plan:gold"`, `"route:/api/{proxy+}"`)
/// under `rate`: the same one for the life of the process while both stay
/// the same, so a reload that leaves a limit alone keeps its state.
pub fn shared(identity: &str, rate: Rate) -> Arc<Bucket> {
    type ByIdentity = HashMap<(String, Rate), Arc<Bucket>>;
    static ALL: OnceLock<Mutex<ByIdentity>> = OnceLock::new();
    let mut all = ALL
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    all.entry((identity.to_owned(), rate)).or_default().clone()
}

/// Like [`shared`], for a keyed map of buckets.
pub fn shared_keyed(identity: &str, rate: Rate, max_keys: usize) -> Arc<Keyed> {
    type All = HashMap<(String, Rate, usize), Arc<Keyed>>;
    static ALL: OnceLock<Mutex<All>> = OnceLock::new();
    let mut all = ALL
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    all.entry((identity.to_owned(), rate, max_keys))
        .or_insert_with(|| Arc::new(Keyed::new(rate, max_keys)))
        .clone()
}

/// A usage plan key's quota count (see `policy::api_key::quota`):
/// the period (high 24 bits) and the requests counted in it (low 40 bits)
/// in one atomic word, so a period change and a lease are one
/// compare-and-swap. Workers lease from it; in cluster mode the sync thread
/// also takes back what is left of the instance's grant to return it.
#[derive(Debug, Default)]
pub struct Ledger(std::sync::atomic::AtomicU64);

const COUNT_BITS: u32 = 40;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const WINDOW_MASK: u64 = (1 << (64 - COUNT_BITS)) - 1;

impl Ledger {
    /// The ledger of the key with digest `hash`: the same one for the life of the process.
    pub fn of(hash: &[u8; 32]) -> std::sync::Arc<Ledger> {
        use std::sync::{Arc, Mutex, OnceLock};
        static ALL: OnceLock<Mutex<std::collections::HashMap<[u8; 32], Arc<Ledger>>>> =
            OnceLock::new();
        let mut all = ALL
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        all.entry(*hash).or_default().clone()
    }

    /// Takes up to `want` requests of `limit` in period `window`; returns how many it got (0: used up).
    pub fn lease(&self, window: u64, limit: u64, want: u64) -> u64 {
        use std::sync::atomic::Ordering;
        let w = window & WINDOW_MASK;
        let mut now = self.0.load(Ordering::Relaxed);
        loop {
            let used = if now >> COUNT_BITS == w {
                now & COUNT_MASK
            } else {
                0
            };
            let got = want.min(limit.min(COUNT_MASK).saturating_sub(used));
            if got == 0 {
                return 0;
            }
            let next = (w << COUNT_BITS) | (used + got);
            match self
                .0
                .compare_exchange_weak(now, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return got,
                Err(seen) => now = seen,
            }
        }
    }

    /// Requests counted in period `window` (for tests and metrics).
    pub fn used(&self, window: u64) -> u64 {
        let now = self.0.load(std::sync::atomic::Ordering::Relaxed);
        if now >> COUNT_BITS == window & WINDOW_MASK {
            now & COUNT_MASK
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn a_burst_of_three_admits_three_then_one_per_interval() {
        let rate = Rate::new(1.0, 3.0);
        let b = Bucket::default();
        let t0 = 5 * SEC;
        let admitted = (0..10).filter(|_| b.take(rate, t0).is_ok()).count();
        assert_eq!(admitted, 3);
        assert_eq!(b.take(rate, t0), Err(Duration::from_secs(1)));
        assert_eq!(b.take(rate, t0 + SEC / 2), Err(Duration::from_millis(500)));
        let later = t0 + SEC;
        let admitted = (0..10).filter(|_| b.take(rate, later).is_ok()).count();
        assert_eq!(admitted, 1, "one interval later, exactly one more");
        // Idle for a long time: full again, never more than the burst.
        let much_later = t0 + 100 * SEC;
        assert_eq!(
            (0..10).filter(|_| b.take(rate, much_later).is_ok()).count(),
            3
        );
    }

    #[test]
    fn fractional_rates() {
        // 0.5 per second, burst 1: one request per two seconds.
        let rate = Rate::new(0.5, 1.0);
        let b = Bucket::default();
        assert!(b.take(rate, SEC).is_ok());
        assert_eq!(b.take(rate, SEC), Err(Duration::from_secs(2)));
        assert!(b.take(rate, 2 * SEC).is_err());
        assert!(b.take(rate, 3 * SEC).is_ok());
    }

    #[test]
    fn threads_sharing_a_bucket_admit_exactly_the_burst() {
        let rate = Rate::new(0.001, 1000.0);
        for _ in 0..20 {
            let b = Arc::new(Bucket::default());
            let t = now();
            let admitted: usize = std::thread::scope(|s| {
                let handles: Vec<_> = (0..4)
                    .map(|_| {
                        let b = &b;
                        s.spawn(move || (0..1000).filter(|_| b.take(rate, t).is_ok()).count())
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).sum()
            });
            assert_eq!(admitted, 1000);
        }
    }

    #[test]
    fn keyed_buckets_are_independent_and_bounded() {
        let keyed = Keyed::new(Rate::new(1.0, 2.0), 640);
        let t = 10 * SEC;
        for key in [&b"10.0.0.1"[..], b"10.0.0.2"] {
            assert_eq!((0..5).filter(|_| keyed.take(key, t).is_ok()).count(), 2);
        }
        // A flood of distinct keys never grows the map past its bound.
        for i in 0..50_000u32 {
            let _ = keyed.take(&i.to_be_bytes(), t);
            assert!(keyed.len() <= 640, "{} keys after {i}", keyed.len());
        }
        // Keys whose buckets are full again go first, and nothing is lost by that.
        let keyed = Keyed::new(Rate::new(1.0, 1.0), 64);
        assert!(keyed.take(b"a", t).is_ok());
        for i in 0..10_000u32 {
            let _ = keyed.take(&i.to_be_bytes(), t + 10 * SEC);
        }
        assert!(keyed.take(b"a", t + 10 * SEC).is_ok());
        assert!(keyed.take(b"a", t + 10 * SEC).is_err());
    }

    #[test]
    fn the_same_identity_and_limit_give_the_same_bucket() {
        let rate = Rate::new(2.0, 4.0);
        let a = shared("plan:test-identity", rate);
        assert!(Arc::ptr_eq(&a, &shared("plan:test-identity", rate)));
        assert!(!Arc::ptr_eq(
            &a,
            &shared("plan:test-identity", Rate::new(2.0, 5.0))
        ));
        assert!(!Arc::ptr_eq(&a, &shared("plan:other", rate)));
        let k = shared_keyed("route:/x", rate, 10);
        assert!(Arc::ptr_eq(&k, &shared_keyed("route:/x", rate, 10)));
    }
}
