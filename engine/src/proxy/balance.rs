//! The per-worker side of upstream resilience: which target a request
//! goes to (smooth weighted round robin, least request by power of two
//! choices, Maglev hashing, weighted random), which targets are out
//! (active health from the shared [`Live`] table, passive outlier ejection
//! judged here), the retry budget and the circuit breaker's counts.
//!
//! Everything here belongs to one worker: plain numbers in a `RefCell`, no
//! atomics but the Relaxed loads of the health table, no allocation per
//! request (target sets are `u64` bit masks; an upstream has at most 64
//! targets).

use crate::observe::UpstreamCounters;
use crate::resilience::{Balance, Breaker, Live, OutlierPolicy, RetryReason};
use crate::snapshot::{Snapshot, Upstream};
use std::time::{Duration, Instant};

/// One target's passive state on this worker.
#[derive(Clone, Default)]
struct TargetState {
    consecutive_5xx: u32,
    consecutive_failures: u32,
    /// Ejected until then.
    until: Option<Instant>,
    /// Ejections in a row (each one lasts twice the last, up to `max_ejection`).
    streak: u32,
    /// When it was last let back in.
    readmitted: Option<Instant>,
    /// Requests (attempts) now in flight to it.
    inflight: u32,
    /// Smooth weighted round robin's current weight.
    current: i64,
}

/// One upstream's state on this worker.
pub struct UpstreamState {
    targets: Vec<TargetState>,
    /// Targets ejected now (so that most picks need no clock).
    ejected: u32,
    /// Requests in flight (`max_requests`, the retry budget's base).
    pub active: u32,
    /// Retries in flight (the budget).
    pub retrying: u32,
    /// Requests waiting for a connection (`max_pending`).
    pub pending: u32,
    /// Requests holding a connection (with the idle pooled ones: `max_connections`).
    pub connected: u32,
    pub counters: UpstreamCounters,
    /// The health state this worker last saw, per target (closing pooled
    /// connections of targets that went down).
    seen_up: Vec<bool>,
}

impl UpstreamState {
    fn new(u: &Upstream) -> UpstreamState {
        let n = u.targets.len();
        UpstreamState {
            targets: vec![TargetState::default(); n],
            ejected: 0,
            active: 0,
            retrying: 0,
            pending: 0,
            connected: 0,
            counters: UpstreamCounters {
                attempts: vec![0; n],
                ejections: vec![0; n],
                ejected_now: vec![false; n],
                ..Default::default()
            },
            seen_up: vec![true; n],
        }
    }
}

/// Every upstream's state on this worker, and its random source.
pub struct Balancer {
    pub upstreams: Vec<UpstreamState>,
    rng: u64,
}

/// What a pick may not return: targets already tried by this request.
pub type Tried = u64;

impl Balancer {
    pub fn new(snap: &Snapshot, seed: u64) -> Balancer {
        Balancer {
            upstreams: snap.upstreams.iter().map(UpstreamState::new).collect(),
            rng: seed | 1,
        }
    }

    /// Carries passive state over a reload: targets of `next` that `old`
    /// had too (same upstream name and address) keep their ejection, its
    /// streak and their 5xx/failure runs. In-flight counts start at zero
    /// (requests of the old snapshot are not counted against the new one).
    pub fn adopt(&mut self, next: &Snapshot, old: &Balancer, prev: &Snapshot) {
        for (ui, u) in next.upstreams.iter().enumerate() {
            let Some(pi) = prev.upstreams.iter().position(|p| p.name == u.name) else {
                continue;
            };
            let (Some(was), Some(st)) = (old.upstreams.get(pi), self.upstreams.get_mut(ui)) else {
                continue;
            };
            for (ti, t) in u.targets.iter().enumerate() {
                let Some(pt) = prev.upstreams[pi]
                    .targets
                    .iter()
                    .position(|p| p.addr == t.addr)
                else {
                    continue;
                };
                let Some(w) = was.targets.get(pt) else {
                    continue;
                };
                st.targets[ti] = TargetState {
                    inflight: 0,
                    current: 0,
                    ..w.clone()
                };
                st.ejected += u32::from(w.until.is_some());
            }
        }
        self.rng = old.rng;
    }

    /// xorshift64*.
    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A random duration in `[d/2, d]` (retry backoff jitter).
    pub fn jitter(&mut self, d: Duration) -> Duration {
        let nanos = d.as_nanos().min(u128::from(u64::MAX)) as u64;
        if nanos < 2 {
            return d;
        }
        Duration::from_nanos(nanos / 2 + self.random() % (nanos / 2 + 1))
    }

    /// Picks the target (index in the upstream) for a request to upstream
    /// `ui` of `snap`, not one of `tried` if another is available.
    /// `key`: the request's hash for `balance = "hash"` (`None`: random).
    pub fn pick(&mut self, snap: &Snapshot, ui: usize, tried: Tried, key: Option<u64>) -> usize {
        let up = &snap.upstreams[ui];
        let n = up.targets.len();
        if n == 1 {
            return 0;
        }
        let allowed = self.allowed(snap, ui);
        // Untried targets first; if all are tried, any allowed one.
        let mut set = allowed & !tried;
        if set == 0 {
            set = allowed;
        }
        match &up.resilience.balance {
            Balance::RoundRobin => self.smooth_round_robin(up, ui, set),
            Balance::LeastRequest => self.two_choices(up, ui, set),
            Balance::Random => self.weighted_random(up, set),
            Balance::Hash(_) => match key {
                Some(h) => maglev_walk(&up.resilience.maglev, h, set),
                None => self.weighted_random(up, set),
            },
        }
    }

    /// The targets of upstream `ui` requests may go to now: those up and not
    /// ejected; all of them (panic routing) when more than
    /// `max_ejected_percent` are out.
    fn allowed(&mut self, snap: &Snapshot, ui: usize) -> u64 {
        let up = &snap.upstreams[ui];
        let n = up.targets.len();
        let all = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        let live: &Live = &snap.live;
        let st = &mut self.upstreams[ui];
        if st.ejected > 0 {
            readmit(st, &up.name, up, Instant::now());
        }
        let mut set = 0u64;
        for (i, t) in up.targets.iter().enumerate() {
            if live.is_up(t.id) && st.targets[i].until.is_none() {
                set |= 1 << i;
            }
        }
        let out = n as u32 - set.count_ones();
        let panic = set == 0 || out * 100 > up.resilience.max_ejected_percent * n as u32;
        if panic != st.counters.panicking {
            st.counters.panicking = panic;
            log_panic(live, up, ui, panic, out);
        }
        if panic {
            st.counters.panic_routed += 1;
            return all;
        }
        set
    }

    fn smooth_round_robin(&mut self, up: &Upstream, ui: usize, set: u64) -> usize {
        let st = &mut self.upstreams[ui];
        let (mut best, mut total) = (usize::MAX, 0i64);
        for (i, t) in up.targets.iter().enumerate() {
            if set & (1 << i) == 0 {
                continue;
            }
            let w = i64::from(t.weight);
            st.targets[i].current += w;
            total += w;
            if best == usize::MAX || st.targets[i].current > st.targets[best].current {
                best = i;
            }
        }
        st.targets[best].current -= total;
        best
    }

    fn two_choices(&mut self, up: &Upstream, ui: usize, set: u64) -> usize {
        let count = set.count_ones() as u64;
        if count == 1 {
            return set.trailing_zeros() as usize;
        }
        let a = nth_set(set, self.random() % count);
        let b = nth_set(set & !(1 << a), self.random() % (count - 1));
        let st = &self.upstreams[ui];
        // Fewer in flight per unit of weight wins: a/wa < b/wb ⇔ a·wb < b·wa.
        let load = |i: usize, other: usize| {
            u64::from(st.targets[i].inflight) * u64::from(up.targets[other].weight)
        };
        if load(a, b) <= load(b, a) { a } else { b }
    }

    fn weighted_random(&mut self, up: &Upstream, set: u64) -> usize {
        let total: u64 = up
            .targets
            .iter()
            .enumerate()
            .filter(|(i, _)| set & (1 << i) != 0)
            .map(|(_, t)| u64::from(t.weight))
            .sum();
        let mut r = self.random() % total.max(1);
        for (i, t) in up.targets.iter().enumerate() {
            if set & (1 << i) == 0 {
                continue;
            }
            let w = u64::from(t.weight);
            if r < w {
                return i;
            }
            r -= w;
        }
        set.trailing_zeros() as usize
    }

    /// An attempt to target `ti` of upstream `ui` begins.
    pub fn start_attempt(&mut self, ui: usize, ti: usize) {
        let st = &mut self.upstreams[ui];
        st.targets[ti].inflight += 1;
        st.counters.attempts[ti] += 1;
    }

    /// The attempt to `ti` is over (its response relayed, or it failed).
    pub fn end_attempt(&mut self, ui: usize, ti: usize) {
        let t = &mut self.upstreams[ui].targets[ti];
        t.inflight = t.inflight.saturating_sub(1);
    }

    /// Judges one attempt's result for outlier detection: `Ok(status)` of a
    /// response head, or the failure. Returns whether the target was just
    /// ejected (its pooled connections should close).
    pub fn judge(
        &mut self,
        up: &Upstream,
        ui: usize,
        ti: usize,
        result: Result<u16, RetryReason>,
    ) -> bool {
        let Some(policy) = up.resilience.outlier else {
            return false;
        };
        let st = &mut self.upstreams[ui];
        let t = &mut st.targets[ti];
        let tripped = match result {
            Ok(s) if s >= 500 => {
                t.consecutive_5xx += 1;
                t.consecutive_failures = 0;
                t.consecutive_5xx >= policy.consecutive_5xx
            }
            Ok(_) => {
                t.consecutive_5xx = 0;
                t.consecutive_failures = 0;
                false
            }
            Err(_) => {
                t.consecutive_failures += 1;
                t.consecutive_failures >= policy.consecutive_failures
            }
        };
        if !tripped || t.until.is_some() {
            return false;
        }
        // Never eject past max_ejected_percent (active health counts as out too).
        let n = up.targets.len() as u32;
        let out = st.ejected + 1;
        if out * 100 > up.resilience.max_ejected_percent * n {
            return false;
        }
        eject(st, ti, &policy, up);
        true
    }

    /// Targets whose active health went down since this worker last
    /// looked (their pooled connections should close).
    pub fn newly_down(&mut self, snap: &Snapshot) -> Vec<usize> {
        let mut down = Vec::new();
        for (u, st) in snap.upstreams.iter().zip(&mut self.upstreams) {
            for (i, t) in u.targets.iter().enumerate() {
                let up = snap.live.is_up(t.id);
                if st.seen_up[i] && !up {
                    down.push(t.id);
                }
                st.seen_up[i] = up;
            }
        }
        down
    }

    /// Counts a retry (by reason), or a retry the budget refused.
    pub fn count_retry(&mut self, ui: usize, reason: Option<RetryReason>) {
        let c = &mut self.upstreams[ui].counters;
        match reason {
            Some(r) => c.retries[r.index()] += 1,
            None => c.budget_exhausted += 1,
        }
    }

    /// Whether the retry budget of upstream `ui` allows one more retry in
    /// flight: at most `budget_percent` of the requests in flight, and
    /// always at least [`crate::resilience::MIN_RETRY_CONCURRENCY`].
    pub fn budget_allows(&self, up: &Upstream, ui: usize) -> bool {
        let st = &self.upstreams[ui];
        let share = u64::from(st.active) * u64::from(up.resilience.retry.budget_percent) / 100;
        let cap = share.max(u64::from(crate::resilience::MIN_RETRY_CONCURRENCY));
        u64::from(st.retrying) < cap
    }

    /// Counts a circuit breaker refusal.
    pub fn count_breaker(&mut self, ui: usize, b: Breaker) {
        self.upstreams[ui].counters.breaker[b.index()] += 1;
    }

    pub fn count_outcome(&mut self, ui: usize, outcome: usize) {
        if let Some(st) = self.upstreams.get_mut(ui) {
            st.counters.outcomes[outcome] += 1;
        }
    }

    /// The counters of every upstream, for a scrape.
    pub fn report(&self) -> Vec<UpstreamCounters> {
        self.upstreams
            .iter()
            .map(|st| {
                let mut c = st.counters.clone();
                for (i, t) in st.targets.iter().enumerate() {
                    c.ejected_now[i] = t.until.is_some();
                }
                c
            })
            .collect()
    }
}

/// Lets ejected targets whose time is up back in.
fn readmit(st: &mut UpstreamState, name: &str, up: &Upstream, now: Instant) {
    for (i, t) in st.targets.iter_mut().enumerate() {
        if t.until.is_some_and(|u| u <= now) {
            t.until = None;
            t.readmitted = Some(now);
            t.consecutive_5xx = 0;
            t.consecutive_failures = 0;
            st.ejected -= 1;
            tracing::info!(
                "upstream {name} target {} readmitted after its ejection",
                up.targets[i].label
            );
        }
    }
}

/// Ejects target `ti`: for `ejection`, doubled for each ejection in a row
/// (one that comes within `max_ejection` of the last readmission), up to
/// `max_ejection`.
fn eject(st: &mut UpstreamState, ti: usize, policy: &OutlierPolicy, up: &Upstream) {
    let now = Instant::now();
    let t = &mut st.targets[ti];
    let repeat = t
        .readmitted
        .is_some_and(|r| now.duration_since(r) < policy.max_ejection);
    t.streak = if repeat { t.streak + 1 } else { 1 };
    let factor = 1u32 << (t.streak - 1).min(16);
    let time = policy
        .ejection
        .saturating_mul(factor)
        .min(policy.max_ejection);
    t.until = Some(now + time);
    st.ejected += 1;
    st.counters.ejections[ti] += 1;
    tracing::warn!(
        "upstream {} target {} ejected for {time:?} ({} 5xx / {} failures in a row)",
        up.name,
        up.targets[ti].label,
        t.consecutive_5xx,
        t.consecutive_failures
    );
}

/// Says once (per episode, across workers) that upstream `ui` routes to all
/// its targets because too many are out, and when that ends.
fn log_panic(live: &Live, up: &Upstream, ui: usize, panic: bool, out: u32) {
    let Some(flag) = live.panic_logged.get(ui) else {
        return;
    };
    let was = flag.swap(panic, std::sync::atomic::Ordering::Relaxed);
    if panic && !was {
        tracing::warn!(
            "upstream {}: {out} of {} targets are out, more than max_ejected_percent = {}%: routing to all of them (panic)",
            up.name,
            up.targets.len(),
            up.resilience.max_ejected_percent
        );
    } else if !panic && was {
        tracing::info!(
            "upstream {}: enough targets are back; routing around the ones out again",
            up.name
        );
    }
}

/// The index of the `k`-th set bit of `set` (k < popcount).
fn nth_set(mut set: u64, k: u64) -> usize {
    for _ in 0..k {
        set &= set - 1;
    }
    set.trailing_zeros() as usize
}

/// The Maglev slot of hash `h`, or the next slot after it whose target is in `set`.
fn maglev_walk(table: &[u16], h: u64, set: u64) -> usize {
    let m = table.len();
    if m == 0 {
        return set.trailing_zeros() as usize;
    }
    let start = (h % m as u64) as usize;
    for step in 0..m {
        let t = table[(start + step) % m] as usize;
        if set & (1 << t) != 0 {
            return t;
        }
    }
    set.trailing_zeros() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(text: &str) -> Snapshot {
        crate::config::from_str(std::path::Path::new("t.toml"), text).unwrap()
    }

    const WEIGHTED: &str = "[[upstream]]\nname = \"a\"\ntargets = [\"127.0.0.1:1\", { addr = \"127.0.0.1:2\", weight = 3 }, \"127.0.0.1:3\"]\n[[route]]\npath = \"/\"\nupstream = \"a\"\n";

    #[test]
    fn smooth_round_robin_follows_weights_and_interleaves() {
        let s = snap(WEIGHTED);
        let mut b = Balancer::new(&s, 7);
        let picks: Vec<usize> = (0..10).map(|_| b.pick(&s, 0, 0, None)).collect();
        assert_eq!(
            picks[..5],
            [1, 0, 1, 2, 1],
            "smooth: no run of the heavy target"
        );
        let count = |i| picks.iter().filter(|&&p| p == i).count();
        assert_eq!((count(0), count(1), count(2)), (2, 6, 2));
    }

    #[test]
    fn a_tried_target_is_skipped_when_another_is_left() {
        let s = snap(WEIGHTED);
        let mut b = Balancer::new(&s, 7);
        for _ in 0..20 {
            assert_ne!(b.pick(&s, 0, 0b010, None), 1);
        }
        assert!(b.pick(&s, 0, 0b111, None) < 3);
    }

    #[test]
    fn least_request_prefers_the_idle_target() {
        let text = WEIGHTED.replace("targets =", "balance = \"least_request\"\ntargets =");
        let s = snap(&text);
        let mut b = Balancer::new(&s, 7);
        for _ in 0..10 {
            b.start_attempt(0, 0);
            b.start_attempt(0, 2);
        }
        // Any pair with the idle target picks it: two of the three pairs.
        let idle = (0..300).filter(|_| b.pick(&s, 0, 0, None) == 1).count();
        assert!((170..=230).contains(&idle), "{idle}");
    }

    #[test]
    fn outlier_ejection_routes_around_and_respects_max_percent() {
        let text = WEIGHTED.replace(
            "[[route]]",
            "[upstream.outlier]\nconsecutive_5xx = 2\nmax_ejected_percent = 34\n[[route]]",
        );
        let s = snap(&text);
        let up = &s.upstreams[0];
        let mut b = Balancer::new(&s, 7);
        assert!(!b.judge(up, 0, 0, Ok(503)));
        assert!(b.judge(up, 0, 0, Ok(503)), "second 5xx in a row ejects");
        for _ in 0..20 {
            assert_ne!(b.pick(&s, 0, 0, None), 0);
        }
        // A second ejection would pass 34%: refused.
        b.judge(up, 0, 2, Ok(500));
        assert!(!b.judge(up, 0, 2, Ok(500)));
    }

    #[test]
    fn hash_is_stable_and_walks_past_targets_that_are_out() {
        let text = WEIGHTED.replace(
            "targets =",
            "balance = \"hash\"\nhash_key = \"$request.path\"\ntargets =",
        );
        let s = snap(&text);
        let mut b = Balancer::new(&s, 7);
        let first = b.pick(&s, 0, 0, Some(12345));
        for _ in 0..10 {
            assert_eq!(b.pick(&s, 0, 0, Some(12345)), first);
        }
        let other = b.pick(&s, 0, 1 << first, Some(12345));
        assert_ne!(other, first);
    }

    #[test]
    fn budget_has_a_floor_and_a_share() {
        let s = snap(WEIGHTED);
        let mut b = Balancer::new(&s, 7);
        let up = &s.upstreams[0];
        b.upstreams[0].active = 100;
        b.upstreams[0].retrying = 19;
        assert!(b.budget_allows(up, 0));
        b.upstreams[0].retrying = 20;
        assert!(!b.budget_allows(up, 0));
        b.upstreams[0].active = 1;
        b.upstreams[0].retrying = 2;
        assert!(b.budget_allows(up, 0), "the floor of 3");
    }

    #[test]
    fn a_reload_keeps_ejections_of_targets_that_stay() {
        let text = WEIGHTED.replace(
            "[[route]]",
            "[upstream.outlier]\nconsecutive_5xx = 1\n[[route]]",
        );
        let s = snap(&text);
        let mut b = Balancer::new(&s, 7);
        assert!(b.judge(&s.upstreams[0], 0, 1, Ok(500)));
        // The next config drops the first target: the ejected one is now index 0.
        let next = snap(&text.replace("\"127.0.0.1:1\", ", ""));
        let mut n = Balancer::new(&next, 7);
        n.adopt(&next, &b, &s);
        for _ in 0..10 {
            assert_eq!(n.pick(&next, 0, 0, None), 1, "127.0.0.1:2 stays ejected");
        }
    }
}
