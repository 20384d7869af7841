//! Cluster mode: usage-plan limits that hold for a fleet of ringway
//! instances sharing one Redis.
//!
//! The per-request decision stays local and lock-free. Each instance
//! spends from local state — a GCRA bucket per plan key or route (as in
//! [`crate::limit`]) and, for quotas, a grant leased from Redis — and one
//! control thread ([`sync`]) reconciles with Redis every `sync_interval`:
//!
//! - **Buckets.** The thread pushes how many requests this instance
//!   admitted since the last sync into the fleet's bucket in Redis (its TAT,
//!   kept in Redis' own clock) and reads back how far ahead the fleet bucket
//!   runs; the local bucket is moved at least that far ahead. Between two
//!   syncs an instance decides alone, so the fleet can over-admit by about
//!   `instances × rate × sync_interval` (plus one burst per instance when
//!   all start full); the README gives the bound and a measurement.
//! - **Quotas** are exact: Redis counts what it has granted, and grants only
//!   what is left (a Lua script, atomic). Grants are leases sized by the
//!   key's recent demand and shrinking as the quota nears its end. Redis
//!   also counts what the fleet has spent; when an instance runs short while
//!   the fleet has granted everything but not spent it, it raises a reclaim
//!   flag, holds its requests (ten intervals, 250 to 450 ms), and
//!   the instances holding unused grants hand them back at their next sync
//!   (taken out of their own ledger first, so nothing is admitted twice). A
//!   request is refused for quota only when the fleet has spent it all, or
//!   when a reclaim brought nothing back.
//! - **Usage** per key and UTC day is added to a Redis hash, for `/usage`
//!   and `ringway usage`.
//!
//! When Redis is unreachable (at start, killed, restarted, flushed, or
//! answering garbage) the instance keeps serving per `on_redis_down`:
//! `local` (each instance enforces its share of the limits: the limit divided
//! by the instances last seen) or `deny` (503 on routes with fleet limits).
//! It logs once per outage, counts sync errors, and resumes by itself.

pub mod config;
pub mod sync;
pub mod usage;

pub use config::{ClusterConfig, OnDown};

use crate::limit::{Ledger, Rate};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// The process's fleet: made by the first config with a `[cluster]` table
/// and kept for the life of the process (its buckets and grants survive
/// reloads; a reload with a changed table reconfigures it, see
/// [`Fleet::reconfigure`]).
pub fn fleet(config: ClusterConfig) -> Arc<Fleet> {
    static FLEET: std::sync::OnceLock<Arc<Fleet>> = std::sync::OnceLock::new();
    FLEET.get_or_init(|| Fleet::new(config)).clone()
}

/// Starts the sync thread of `fleet` unless it runs already.
pub fn start(fleet: &Arc<Fleet>) -> std::io::Result<()> {
    if fleet.started.swap(true, Ordering::AcqRel) {
        return Ok(());
    }
    sync::spawn(fleet.clone())
}

/// A usage plan key's (or a route's) bucket, shared fleet-wide.
#[derive(Debug)]
#[repr(align(64))]
pub struct FleetBucket {
    /// The local GCRA state (see [`crate::limit`]): theoretical arrival time, ns.
    tat: AtomicU64,
    /// Requests admitted here since the last sync (same cache line as `tat`).
    pending: AtomicU64,
    /// Redis key suffix: `bucket:<id>`.
    pub id: String,
    pub rate: Rate,
    /// This instance's share while Redis is down (`on_redis_down = "local"`).
    share: Mutex<Rate>,
}

impl FleetBucket {
    fn new(id: String, rate: Rate) -> FleetBucket {
        FleetBucket {
            tat: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            id,
            rate,
            share: Mutex::new(rate),
        }
    }

    /// Takes a token at `now` ([`crate::limit::now`]): against the fleet
    /// limit while Redis is up, against this instance's share while not.
    #[inline]
    pub fn take(&self, fleet: &Fleet, now: u64) -> Result<(), Duration> {
        let rate = if fleet.is_up() {
            self.rate
        } else {
            *self.share.lock().unwrap_or_else(|p| p.into_inner())
        };
        crate::limit::take(&self.tat, rate, now)?;
        self.pending.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The fleet's bucket runs `ahead` of now: never let the local one lag behind it.
    fn catch_up(&self, now: u64, ahead: u64) {
        self.tat
            .fetch_max(now.saturating_add(ahead), Ordering::AcqRel);
    }
}

/// A key's quota, shared fleet-wide: what Redis has granted this instance
/// in the current period.
#[derive(Debug)]
pub struct FleetQuota {
    /// Redis key suffix: `quota:<name>` (+ `:<period number>`).
    pub id: String,
    pub limit: u64,
    /// Period (high 24 bits) and requests granted to this instance in it (low 40).
    granted: AtomicU64,
    /// The fleet's count at the last sync, for lease sizing and `local` mode.
    fleet_used: AtomicU64,
    /// Requests admitted here, for the usage report (pushed and reset by the sync).
    admitted: AtomicU64,
    /// The period the counts above belong to.
    window: AtomicU64,
    /// The local ledger the workers lease from (the sync thread takes what
    /// is left of the grant out of it before handing it back).
    ledger: Arc<Ledger>,
    /// What the fleet had spent at the last sync (≤ `fleet_used`).
    fleet_spent: AtomicU64,
    /// The fleet holds granted but unspent requests that no reclaim has
    /// been raised for yet: a short worker asks for a sync, which raises it.
    reclaimable: AtomicBool,
    /// [`crate::limit::now`] until which a short instance holds requests
    /// while others hand back unused grants (0: no reclaim under way).
    reclaim_until: AtomicU64,
    /// Sync thread only: the fleet's (granted, spent) when the last reclaim
    /// was raised, so one is raised again only after the fleet moved; and
    /// the grant taken out of the ledger to return, with its period.
    reclaim: Mutex<Reclaim>,
}

#[derive(Debug, Default)]
struct Reclaim {
    mark: (u64, u64),
    returning: u64,
    window: u64,
}

const COUNT_BITS: u32 = 40;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

impl FleetQuota {
    fn new(id: String, limit: u64, ledger: Arc<Ledger>) -> FleetQuota {
        FleetQuota {
            id,
            limit,
            ledger,
            fleet_spent: AtomicU64::new(0),
            reclaimable: AtomicBool::new(false),
            reclaim_until: AtomicU64::new(0),
            reclaim: Mutex::new(Reclaim::default()),
            granted: AtomicU64::new(0),
            fleet_used: AtomicU64::new(0),
            admitted: AtomicU64::new(0),
            window: AtomicU64::new(u64::MAX),
        }
    }

    /// How many requests this instance may admit in period `window` in all
    /// (the ceiling its local ledger leases against).
    #[inline]
    pub fn ceiling(&self, fleet: &Fleet, window: u64) -> u64 {
        if self.window.load(Ordering::Relaxed) != window {
            self.window.store(window, Ordering::Relaxed);
        }
        let g = self.granted.load(Ordering::Acquire);
        let granted = if g >> COUNT_BITS == window & ((1 << 24) - 1) {
            g & COUNT_MASK
        } else {
            0
        };
        if fleet.is_up() || fleet.on_down() == OnDown::Deny {
            return granted;
        }
        // Outage, "local": what was granted, plus a share of what the fleet had left.
        let left = self
            .limit
            .saturating_sub(self.fleet_used.load(Ordering::Relaxed));
        granted + left / fleet.instances().max(1)
    }

    /// This instance's grant is used up: whether waiting can bring more.
    /// Yes when Redis is up and the fleet had quota left at the last sync
    /// (a sync is asked for now), or while a reclaim of other instances'
    /// unused grants is under way (the regular syncs bring it).
    #[inline]
    pub fn top_up(&self, fleet: &Fleet) -> bool {
        if !fleet.is_up() {
            return false;
        }
        if self.fleet_used.load(Ordering::Relaxed) < self.limit
            || self.reclaimable.load(Ordering::Relaxed)
        {
            fleet.want_sync();
            return true;
        }
        crate::limit::now() < self.reclaim_until.load(Ordering::Relaxed)
    }

    /// Sync thread: the fleet's counts after a sync. `short`: this instance
    /// asked for more than it got. A reclaim is raised (requests held until
    /// `now + hold`) once per state of the fleet's counts, so a reclaim
    /// that brought nothing back is not raised again until they move.
    fn after_sync(&self, r: &sync::QuotaReply, short: bool, now: u64, hold: Duration) {
        let mut rc = self.reclaim.lock().unwrap_or_else(|p| p.into_inner());
        let counts = (r.used, r.spent);
        let unspent = r.spent < r.used;
        if !unspent {
            self.reclaim_until.store(0, Ordering::Relaxed);
        } else if short && counts != rc.mark {
            rc.mark = counts;
            self.reclaim_until
                .store(now + hold.as_nanos() as u64, Ordering::Relaxed);
        }
        self.reclaimable
            .store(unspent && counts != rc.mark, Ordering::Relaxed);
    }

    /// Sync thread, another instance is short: takes what is left of this
    /// instance's grant for `window` out of the local ledger (so no worker
    /// can lease it any more) to hand back at the next sync: all of it when
    /// this instance admitted nothing since the last sync, half otherwise.
    fn hand_back(&self, window: u64, admitted: u64) -> bool {
        let granted = self.granted_in(window);
        let left = granted.saturating_sub(self.ledger.used(window));
        let n = if admitted > 0 { left.div_ceil(2) } else { left };
        let got = if n > 0 {
            self.ledger.lease(window, granted, n)
        } else {
            0
        };
        if got == 0 {
            return false;
        }
        let mut rc = self.reclaim.lock().unwrap_or_else(|p| p.into_inner());
        if rc.window != window {
            (rc.window, rc.returning) = (window, 0);
        }
        rc.returning += got;
        true
    }

    /// Sync thread: what is waiting to be handed back for `window`.
    fn returning(&self, window: u64) -> u64 {
        let mut rc = self.reclaim.lock().unwrap_or_else(|p| p.into_inner());
        if rc.window != window {
            (rc.window, rc.returning) = (window, 0);
        }
        rc.returning
    }

    /// Sync thread: Redis took `n` back.
    fn returned(&self, n: u64) {
        let mut rc = self.reclaim.lock().unwrap_or_else(|p| p.into_inner());
        rc.returning = rc.returning.saturating_sub(n);
    }

    /// Counts one admitted request for the usage report.
    #[inline]
    pub fn admitted(&self) {
        self.admitted.fetch_add(1, Ordering::Relaxed);
    }

    fn add_grant(&self, window: u64, n: u64) {
        let w = window & ((1 << 24) - 1);
        let _ = self
            .granted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |g| {
                let cur = if g >> COUNT_BITS == w {
                    g & COUNT_MASK
                } else {
                    0
                };
                Some((w << COUNT_BITS) | (cur + n).min(COUNT_MASK))
            });
    }

    fn granted_in(&self, window: u64) -> u64 {
        let g = self.granted.load(Ordering::Acquire);
        if g >> COUNT_BITS == window & ((1 << 24) - 1) {
            g & COUNT_MASK
        } else {
            0
        }
    }
}

/// The process's view of the fleet: Redis health, the limits it syncs, and
/// what the sync thread publishes. Shared (`Arc`) by the workers, the sync
/// thread and the admin listener; the workers only read atomics.
#[derive(Debug)]
pub struct Fleet {
    config: Mutex<Arc<ClusterConfig>>,
    up: AtomicBool,
    deny_when_down: AtomicBool,
    instances: AtomicU64,
    buckets: Mutex<Vec<Weak<FleetBucket>>>,
    quotas: Mutex<Vec<Weak<FleetQuota>>>,
    /// Set by a worker that ran out of its quota grant: sync now.
    wanted: AtomicBool,
    thread: Mutex<Option<std::thread::Thread>>,
    started: AtomicBool,
    pub stats: SyncStats,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct SyncStats {
    pub syncs: AtomicU64,
    pub connect_errors: AtomicU64,
    pub command_errors: AtomicU64,
    pub outages: AtomicU64,
}

impl Fleet {
    pub fn new(config: ClusterConfig) -> Arc<Fleet> {
        let deny = config.on_down == OnDown::Deny;
        Arc::new(Fleet {
            config: Mutex::new(Arc::new(config)),
            // Until the first sync says otherwise, Redis is taken as down.
            up: AtomicBool::new(false),
            deny_when_down: AtomicBool::new(deny),
            instances: AtomicU64::new(1),
            buckets: Mutex::new(Vec::new()),
            quotas: Mutex::new(Vec::new()),
            wanted: AtomicBool::new(false),
            thread: Mutex::new(None),
            started: AtomicBool::new(false),
            stats: SyncStats::default(),
        })
    }

    #[inline]
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    #[inline]
    pub fn on_down(&self) -> OnDown {
        if self.deny_when_down.load(Ordering::Relaxed) {
            OnDown::Deny
        } else {
            OnDown::Local
        }
    }

    /// Instances seen alive at the last sync (at least 1).
    pub fn instances(&self) -> u64 {
        self.instances.load(Ordering::Relaxed).max(1)
    }

    pub fn config(&self) -> Arc<ClusterConfig> {
        self.config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A reload with a new `[cluster]` table: the sync thread reconnects.
    pub fn reconfigure(&self, config: ClusterConfig) {
        self.deny_when_down
            .store(config.on_down == OnDown::Deny, Ordering::Relaxed);
        *self.config.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
        self.wake();
    }

    /// The bucket for `id` under `rate`, registered for syncing; the same
    /// one while both are unchanged (reloads keep it).
    pub fn bucket(&self, id: &str, rate: Rate) -> Arc<FleetBucket> {
        let mut all = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|w| w.strong_count() > 0);
        if let Some(b) = all
            .iter()
            .filter_map(Weak::upgrade)
            .find(|b| b.id == id && b.rate == rate)
        {
            return b;
        }
        let b = Arc::new(FleetBucket::new(id.to_owned(), rate));
        all.push(Arc::downgrade(&b));
        b
    }

    /// The quota of key `name` with `limit`, counted locally in `ledger`,
    /// registered for syncing.
    pub fn quota(&self, name: &str, limit: u64, ledger: &Arc<Ledger>) -> Arc<FleetQuota> {
        let mut all = self.quotas.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|w| w.strong_count() > 0);
        if let Some(q) = all
            .iter()
            .filter_map(Weak::upgrade)
            .find(|q| q.id == name && q.limit == limit && Arc::ptr_eq(&q.ledger, ledger))
        {
            return q;
        }
        let q = Arc::new(FleetQuota::new(name.to_owned(), limit, ledger.clone()));
        all.push(Arc::downgrade(&q));
        q
    }

    /// Asks the sync thread for a sync now (a worker ran out of its grant).
    #[inline]
    pub fn want_sync(&self) {
        if !self.wanted.swap(true, Ordering::AcqRel) {
            self.wake();
        }
    }

    fn wake(&self) {
        if let Some(t) = &*self.thread.lock().unwrap_or_else(|p| p.into_inner()) {
            t.unpark();
        }
    }

    fn live_buckets(&self) -> Vec<Arc<FleetBucket>> {
        let all = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        all.iter().filter_map(Weak::upgrade).collect()
    }

    fn live_quotas(&self) -> Vec<Arc<FleetQuota>> {
        let all = self.quotas.lock().unwrap_or_else(|p| p.into_inner());
        all.iter().filter_map(Weak::upgrade).collect()
    }

    fn set_instances(&self, n: u64) {
        self.instances.store(n.max(1), Ordering::Relaxed);
        for b in self.live_buckets() {
            let share = Rate::new_share(b.rate, n.max(1));
            *b.share.lock().unwrap_or_else(|p| p.into_inner()) = share;
        }
    }
}
