//! What a connection reports to its worker, whatever protocol it speaks:
//! a response completed, an error happened, a request wants a `-n` token.
//! One [`Recorder`] per worker thread, shared by that worker's connection
//! tasks through an `Rc`; it owns the worker's [`Tally`].

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::plan::Plan;
use crate::report::{ErrorKind, Tally};
use crate::schedule::Phases;

/// Requests between two p99 refreshes within one second (status line only).
const P99_EVERY: u64 = 4096;

/// The per-worker accounting handle.
pub(crate) struct Recorder {
    pub plan: Arc<Plan>,
    /// This worker's index (its slot in `plan.live`).
    pub index: usize,
    pub phases: Phases,
    tally: RefCell<Tally>,
    /// The measured second the last p99 was published for.
    published: std::cell::Cell<usize>,
}

impl Recorder {
    pub fn new(plan: Arc<Plan>, index: usize, phases: Phases) -> Self {
        let tally = RefCell::new(Tally::new(plan.mix_lines));
        Recorder {
            plan,
            index,
            phases,
            tally,
            published: std::cell::Cell::new(0),
        }
    }

    /// The measured second `now` falls in.
    #[inline]
    fn second(&self, now: Instant) -> usize {
        now.saturating_duration_since(self.phases.measure_from)
            .as_secs() as usize
    }

    /// A response to a request of mix line `line`, sent (or scheduled) at
    /// `since`, completed at `now`. Counted only if the request was sent
    /// during measurement and completed before the end.
    #[inline]
    pub fn complete(&self, measured: bool, status: u16, line: usize, since: Instant, now: Instant) {
        if !measured || self.phases.ended(now) {
            return;
        }
        let second = self.second(now);
        let mut tally = self.tally.borrow_mut();
        tally.record(
            status,
            now.saturating_duration_since(since),
            now,
            second,
            line,
        );
        let live = &self.plan.live[self.index];
        live.requests.store(tally.requests, Ordering::Relaxed);
        // Once per second, and every so many requests within a second (so
        // the first second shows one too); each costs a histogram walk.
        if self.plan.publish_p99
            && (second != self.published.get() || tally.requests.is_multiple_of(P99_EVERY))
        {
            self.published.set(second);
            live.p99_us
                .store(tally.latency.value_at_quantile(0.99), Ordering::Relaxed);
        }
    }

    /// An error of `kind` at `now` (ignored outside measurement). A `-n`
    /// run whose errors reach its request count is aborted.
    pub fn error(&self, kind: ErrorKind, now: Instant) {
        if !self.phases.measuring(now) || self.phases.ended(now) {
            return;
        }
        let second = self.second(now);
        let mut tally = self.tally.borrow_mut();
        tally.record_error(kind, second);
        self.plan.live[self.index]
            .errors
            .store(tally.errors.total(), Ordering::Relaxed);
        if let Some(budget) = &self.plan.budget
            && budget.note_error()
        {
            self.plan.abort.set();
        }
    }

    /// Open loop: a measured request went out `lag` after its schedule.
    pub fn behind(&self, lag: Duration) {
        let mut tally = self.tally.borrow_mut();
        tally.behind = tally.behind.max(lag);
    }

    /// Bytes read at `now`, counted during measurement.
    #[inline]
    pub fn bytes_read(&self, n: usize, now: Instant) {
        if self.phases.measuring(now) {
            self.tally.borrow_mut().bytes_read += n as u64;
        }
    }

    /// Takes one `-n` token; always true without `-n`.
    #[inline]
    pub fn claim(&self) -> bool {
        self.plan.budget.as_ref().is_none_or(|b| b.claim())
    }

    /// Gives back `n` tokens of requests that were never answered.
    pub fn give_back(&self, n: u64) {
        if let Some(budget) = &self.plan.budget {
            budget.give_back(n);
        }
    }

    /// The tally, once every connection task has ended.
    pub fn into_tally(self) -> Tally {
        self.tally.into_inner()
    }
}
