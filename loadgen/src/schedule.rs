//! When requests may be sent: the run's phases (warmup, measurement, end),
//! the shared request budget of `-n` runs, and the open-loop pace.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The run's clock, fixed once every worker is ready.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Phases {
    /// Start of the run (warmup included); open-loop schedules start here.
    pub start: Instant,
    /// Requests sent (or scheduled) from here on are measured.
    pub measure_from: Instant,
    /// `-d` runs end here; `-n` runs end when the budget is spent.
    pub end: Option<Instant>,
}

impl Phases {
    pub fn new(start: Instant, warmup: Duration, duration: Option<Duration>) -> Self {
        let measure_from = start + warmup;
        Phases {
            start,
            measure_from,
            end: duration.map(|d| measure_from + d),
        }
    }

    #[inline]
    pub fn measuring(&self, t: Instant) -> bool {
        t >= self.measure_from
    }

    #[inline]
    pub fn ended(&self, now: Instant) -> bool {
        self.end.is_some_and(|end| now >= end)
    }
}

/// The request count of a `-n` run, shared by every connection on every
/// thread. A connection takes one token per measured request before sending
/// it; a request that fails (or is never answered) gives its token back, so
/// exactly `total` requests complete — unless errors reach `total`, which
/// aborts the run so a dead server cannot keep it going forever.
#[derive(Debug)]
pub(crate) struct Budget {
    remaining: AtomicU64,
    errors: AtomicU64,
    total: u64,
}

impl Budget {
    pub fn new(total: u64) -> Self {
        Budget {
            remaining: AtomicU64::new(total),
            errors: AtomicU64::new(0),
            total,
        }
    }

    /// Takes one token; false when none is left.
    #[inline]
    pub fn claim(&self) -> bool {
        self.remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    pub fn give_back(&self, n: u64) {
        if n > 0 {
            self.remaining.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The request count of the run.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Counts an error; true when errors reached the budget (abort).
    pub fn note_error(&self) -> bool {
        self.errors.fetch_add(1, Ordering::Relaxed) + 1 >= self.total
    }
}

/// Set when the run must stop early (a `-n` run drowning in errors).
#[derive(Debug, Default)]
pub(crate) struct Abort(AtomicBool);

impl Abort {
    pub fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    #[inline]
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Open-loop schedule of one connection: the total rate is split evenly
/// over all connections, and connection `i` of `n` is offset by `i / rate`
/// so the sends of all connections interleave evenly.
#[derive(Debug, Clone)]
pub(crate) struct Pace {
    next: Instant,
    interval: Duration,
}

impl Pace {
    pub fn new(start: Instant, index: usize, connections: usize, rate: f64) -> Self {
        let interval = Duration::from_secs_f64(connections as f64 / rate);
        let offset = Duration::from_secs_f64(index as f64 / rate);
        Pace {
            next: start + offset,
            interval,
        }
    }

    /// The scheduled send time of the next request.
    #[inline]
    pub fn next(&self) -> Instant {
        self.next
    }

    #[inline]
    pub fn advance(&mut self) {
        self.next += self.interval;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_exact_and_returns_tokens() {
        let b = Budget::new(3);
        assert!(b.claim() && b.claim() && b.claim());
        assert!(!b.claim());
        b.give_back(1);
        assert!(b.claim());
        assert!(!b.claim());
        assert!(!b.note_error() && !b.note_error());
        assert!(b.note_error());
    }

    #[test]
    fn pace_spreads_connections() {
        let t0 = Instant::now();
        // 1000 req/s over 4 connections: each sends every 4 ms, offset by 1 ms.
        let mut p = Pace::new(t0, 1, 4, 1000.0);
        assert_eq!(p.next() - t0, Duration::from_millis(1));
        p.advance();
        assert_eq!(p.next() - t0, Duration::from_millis(5));
    }

    #[test]
    fn phases() {
        let t0 = Instant::now();
        let p = Phases::new(t0, Duration::from_secs(1), Some(Duration::from_secs(2)));
        assert!(!p.measuring(t0));
        assert!(p.measuring(t0 + Duration::from_secs(1)));
        assert!(!p.ended(t0 + Duration::from_secs(2)));
        assert!(p.ended(t0 + Duration::from_secs(3)));
    }
}
