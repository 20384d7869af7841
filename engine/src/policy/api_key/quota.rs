//! Usage plan limits on one key: the plan's token bucket (one per key,
//! shared by every worker: see [`crate::limit`]), and the quota per UTC
//! day, week (from Monday) or month, counted exactly across workers in one
//! shared [`Ledger`] per key from which each worker leases several requests
//! at a time.

use super::KeyHash;
use crate::calendar::{self, DAY};

pub use crate::limit::Ledger;
use crate::policy::throttle::retry_after;

/// The period a quota counts over, in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Day,
    Week,
    Month,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub limit: u64,
    pub period: Period,
}

#[derive(Debug, PartialEq)]
pub struct Plan {
    pub name: String,
    /// Gateway-wide requests per second and burst.
    pub rate: Option<(f64, f64)>,
    pub quota: Option<Quota>,
}

/// One key's counters on one worker.
#[derive(Debug, Clone, Copy)]
pub struct KeyState {
    pub hash: KeyHash,
    /// The quota period the lease belongs to (see [`period_of`]).
    window: u64,
    /// Requests this worker may still admit from its last lease.
    lease: u64,
}

impl KeyState {
    pub fn new(hash: KeyHash) -> KeyState {
        KeyState {
            hash,
            window: 0,
            lease: 0,
        }
    }

    /// The same key under a reloaded plan: the lease goes (the limit may
    /// have changed); the shared count and bucket stay (see `Key`).
    pub fn carried(&self) -> KeyState {
        KeyState::new(self.hash)
    }
}

/// Why a key's request is refused: 429 with `Retry-After` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Over {
    Rate(u64),
    Quota(u64),
    /// Cluster mode: the quota is being topped up from Redis; ask again shortly.
    Wait,
    /// Cluster mode, `on_redis_down = "deny"`, and Redis is down: 503.
    Down,
}

/// Data plane: charges one request to the key under `plan`, with
/// `workers` workers leasing from the ledger. `now` is [`limit::now`] (for
/// the bucket), `unix` the wall clock in seconds (for the quota period).
pub fn charge(
    state: &mut KeyState,
    plan: &Plan,
    key: &super::Key,
    workers: usize,
    (now, unix): (u64, u64),
) -> Result<(), Over> {
    let fleet = key.fleet.as_ref();
    if let Some(f) = fleet
        && !f.fleet.is_up()
        && f.fleet.on_down() == crate::cluster::OnDown::Deny
    {
        return Err(Over::Down);
    }
    if let Some(q) = plan.quota {
        let window = period_of(q.period, unix);
        if window != state.window {
            state.window = window;
            state.lease = 0;
        }
        let ledger = &key.ledger;
        if state.lease == 0 {
            // In cluster mode the ceiling is what Redis has granted this instance.
            let used = ledger.used(window);
            let quota = fleet.and_then(|f| f.quota.as_ref().map(|fq| (f, fq)));
            let ceiling = quota.map_or(q.limit, |(f, fq)| fq.ceiling(&f.fleet, window));
            let want = lease_size(ceiling, used, workers);
            state.lease = ledger.lease(window, ceiling, want);
            if state.lease == 0
                && let Some((f, fq)) = quota
                && fq.top_up(&f.fleet)
            {
                return Err(Over::Wait);
            }
        }
        if state.lease == 0 {
            return Err(Over::Quota(
                period_end(q.period, window).saturating_sub(unix).max(1),
            ));
        }
    }
    let taken = match (
        &key.bucket,
        fleet.and_then(|f| f.bucket.as_ref().map(|b| (f, b))),
    ) {
        (_, Some((f, b))) => b.take(&f.fleet, now),
        (Some((bucket, rate)), None) => bucket.take(*rate, now),
        (None, None) => Ok(()),
    };
    taken.map_err(|wait| Over::Rate(retry_after(wait)))?;
    if let Some(fq) = fleet.and_then(|f| f.quota.as_ref()) {
        fq.admitted();
    } else {
        key.book.add((unix / DAY) as i64);
    }
    // Counted only once admitted: a request the rate refuses keeps its lease.
    if plan.quota.is_some() {
        state.lease -= 1;
    }
    Ok(())
}

/// How many requests a worker leases at once: about 1/64 of a worker's
/// share of the quota (at most 1,000), and no more than a quarter of what
/// is left per worker, so that little stays stranded in other workers'
/// leases when the quota runs out.
pub fn lease_size(limit: u64, used: u64, workers: usize) -> u64 {
    let n = workers.max(1) as u64;
    let left = limit.saturating_sub(used);
    (limit / n / 64).clamp(1, 1000).min(left / n / 4).max(1)
}

/// A number for the period `unix` falls in: days, weeks (Monday to Sunday)
/// or months since the epoch, UTC.
pub fn period_of(p: Period, unix: u64) -> u64 {
    let days = unix / DAY;
    match p {
        Period::Day => days,
        Period::Week => calendar::week_of_day(days),
        Period::Month => {
            let (y, m, _) = calendar::civil_from_days(days as i64);
            (y as u64) * 12 + (m as u64 - 1)
        }
    }
}

/// The first second after period `window`.
pub fn period_end(p: Period, window: u64) -> u64 {
    match p {
        Period::Day => (window + 1) * DAY,
        Period::Week => calendar::first_day_of_week(window + 1) * DAY,
        Period::Month => {
            let next = window + 1;
            calendar::days_from_civil((next / 12) as i64, (next % 12 + 1) as u32, 1) as u64 * DAY
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::{civil_from_days, days_from_civil};

    #[test]
    fn periods_and_their_ends() {
        // 2026-11-27 10:00:00 UTC, a Friday.
        let t = 1_795_773_600;
        assert_eq!(civil_from_days((t / DAY) as i64), (2026, 11, 27));
        let day = period_of(Period::Day, t);
        assert_eq!(period_end(Period::Day, day) - t, 14 * 3600);
        // The week ends at Monday 2026-11-30 00:00.
        let week = period_of(Period::Week, t);
        assert_eq!(
            period_end(Period::Week, week),
            days_from_civil(2026, 11, 30) as u64 * DAY
        );
        assert_eq!(
            period_of(Period::Week, days_from_civil(2026, 11, 30) as u64 * DAY),
            week + 1
        );
        assert_eq!(
            period_of(
                Period::Week,
                days_from_civil(2026, 11, 29) as u64 * DAY + 86_399
            ),
            week
        );
        let month = period_of(Period::Month, t);
        assert_eq!(
            period_end(Period::Month, month),
            days_from_civil(2026, 12, 1) as u64 * DAY
        );
        let dec = period_of(Period::Month, days_from_civil(2026, 12, 31) as u64 * DAY);
        assert_eq!(
            period_end(Period::Month, dec),
            days_from_civil(2027, 1, 1) as u64 * DAY
        );
    }

    #[test]
    fn leases_from_one_ledger_never_exceed_the_limit() {
        // Four workers taking leases in turn, each admitting one request per turn.
        for limit in [1u64, 5, 100, 10_000, 123_457] {
            let ledger = Ledger::default();
            let n = 4;
            let mut leases = vec![0u64; n];
            let mut admitted = 0u64;
            let mut refused_in_a_row = 0;
            let mut w = 0;
            while refused_in_a_row < n {
                if leases[w] == 0 {
                    leases[w] = ledger.lease(7, limit, lease_size(limit, ledger.used(7), n));
                }
                if leases[w] > 0 {
                    leases[w] -= 1;
                    admitted += 1;
                    refused_in_a_row = 0;
                } else {
                    refused_in_a_row += 1;
                }
                w = (w + 1) % n;
            }
            // Every worker was refused in turn: nothing is left in any lease.
            assert_eq!(admitted, limit);
            assert_eq!(ledger.used(7), limit);
            // A new period starts over.
            assert_eq!(ledger.used(8), 0);
            assert_eq!(ledger.lease(8, limit, 3), 3.min(limit));
        }
    }

    #[test]
    fn ledgers_are_shared_by_digest() {
        let a = Ledger::of(&[9; 32]);
        let b = Ledger::of(&[9; 32]);
        assert!(std::sync::Arc::ptr_eq(&a, &b));
        assert!(!std::sync::Arc::ptr_eq(&a, &Ledger::of(&[8; 32])));
    }

    #[test]
    fn a_key_runs_out_of_burst_then_of_quota() {
        let plan = Plan {
            name: "p".into(),
            rate: Some((1.0, 2.0)),
            quota: Some(Quota {
                limit: 3,
                period: Period::Day,
            }),
        };
        let limit = crate::limit::Rate::new(1.0, 2.0);
        let key = &super::super::Key {
            name: "unit".into(),
            hash: [0; 32],
            plan: 0,
            ledger: std::sync::Arc::new(Ledger::default()),
            bucket: Some((std::sync::Arc::new(crate::limit::Bucket::default()), limit)),
            fleet: None,
            book: std::sync::Arc::new(crate::cluster::usage::Book::default()),
        };
        let mut s = KeyState::new([0; 32]);
        let t0 = 10 * SEC;
        let unix = 1_795_773_600;
        assert_eq!(charge(&mut s, &plan, key, 1, (t0, unix)), Ok(()));
        assert_eq!(charge(&mut s, &plan, key, 1, (t0, unix)), Ok(()));
        assert_eq!(
            charge(&mut s, &plan, key, 1, (t0, unix)),
            Err(Over::Rate(1))
        );
        let t1 = t0 + SEC;
        assert_eq!(charge(&mut s, &plan, key, 1, (t1, unix + 1)), Ok(()));
        let t2 = t1 + 5 * SEC;
        assert_eq!(
            charge(&mut s, &plan, key, 1, (t2, unix + 6)),
            Err(Over::Quota(14 * 3600 - 6))
        );
        // A new day starts the count over.
        assert_eq!(
            charge(&mut s, &plan, key, 1, (t2, unix + 14 * 3600)),
            Ok(())
        );
    }

    const SEC: u64 = 1_000_000_000;
}
