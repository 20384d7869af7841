//! The scrape handshake between the admin thread and the workers: the
//! admin thread bumps a request number; each worker notices within its
//! 25 ms poll, publishes a copy of its numbers tagged with that number, and
//! the admin thread waits (bounded) until every worker has answered. Nothing
//! on the request path is shared or atomic.

use super::WorkerReport;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a scrape waits for every worker to publish.
const SCRAPE_WAIT: Duration = Duration::from_secs(1);

/// The mailbox of one process's scrapes.
pub struct Scrape {
    /// Bumped by the admin thread to ask every worker for its numbers.
    request: AtomicU64,
    /// Per worker: the request it last answered, and its numbers.
    reports: Mutex<Vec<Option<(u64, WorkerReport)>>>,
}

impl Scrape {
    pub fn new(workers: usize) -> Self {
        Scrape {
            request: AtomicU64::new(0),
            reports: Mutex::new(vec![None; workers]),
        }
    }

    /// Worker side: if a scrape was asked for since `answered`, publishes
    /// `report()` for worker `id` and remembers the request it answered.
    pub fn answer(&self, id: usize, answered: &mut u64, report: impl FnOnce() -> WorkerReport) {
        let wanted = self.request.load(Ordering::Acquire);
        if wanted == *answered {
            return;
        }
        *answered = wanted;
        let report = report();
        if let Some(slot) = self
            .reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(id)
        {
            *slot = Some((wanted, report));
        }
    }

    /// Admin side: asks every worker for its numbers and waits (bounded) for
    /// the answers. A worker that did not answer in time (draining, stuck)
    /// is reported with its last numbers.
    pub fn collect(&self) -> Vec<WorkerReport> {
        let (wanted, deadline) = self.ask();
        loop {
            if let Some(reports) = self.answered(wanted, deadline) {
                return reports;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Asks the workers for their numbers: the request number to wait for,
    /// and until when.
    pub fn ask(&self) -> (u64, Instant) {
        let wanted = self.request.fetch_add(1, Ordering::AcqRel) + 1;
        (wanted, Instant::now() + SCRAPE_WAIT)
    }

    /// The reports, once every worker has answered request `wanted` or
    /// `deadline` has passed; `None` while still waiting.
    pub fn answered(&self, wanted: u64, deadline: Instant) -> Option<Vec<WorkerReport>> {
        let reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = reports
            .iter()
            .all(|r| r.as_ref().is_some_and(|(g, _)| *g >= wanted));
        (fresh || Instant::now() >= deadline)
            .then(|| reports.iter().flatten().map(|(_, r)| r.clone()).collect())
    }
}
