//! The plan of a run: what the control thread builds once and every worker
//! reads. Plain data shared read-only across threads (atomics aside), so
//! the worker, the connections and the control thread all point here and
//! never at each other.

use std::sync::atomic::AtomicU64;
use std::sync::{Barrier, OnceLock};
use std::time::Duration;

use crate::h2::H2Request;
use crate::schedule::{Abort, Budget, Phases};
use crate::transport::Connector;

/// The wire protocol a connection speaks. Chosen once per run; each
/// connection's loop (`connection.rs`: connect, watchdog, retries) runs
/// the matching session on every connection it opens (`Connection::cycle`).
/// Everything a session counts goes through `recorder::Recorder`, which
/// knows no protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// HTTP/1.1 over TCP or TLS (`Connection::session`), keep-alive and pipelining.
    Http1,
    /// HTTP/2 (`h2::session`): over TLS with ALPN `h2` for `https://`
    /// targets, cleartext with prior knowledge (h2c) for `http://`.
    H2 {
        /// Concurrent streams (requests in flight) per connection.
        streams: usize,
    },
}

/// One request, rendered once for one target.
#[derive(Debug, Clone)]
pub(crate) struct Rendered {
    /// HTTP/1.1: the request's bytes (head and body), exactly as written.
    /// Empty for HTTP/2.
    pub bytes: Vec<u8>,
    /// The method is HEAD (the response carries no body).
    pub head: bool,
    /// HTTP/2: the header block and body every stream of this request sends.
    pub h2: Option<H2Request>,
}

/// The requests of one target: one entry without `--mix`, one per mix
/// line with it, and the order in which a connection cycles through them.
#[derive(Debug, Clone)]
pub(crate) struct RequestSet {
    pub lines: Vec<Rendered>,
    /// Indices into `lines`, in weight proportion and evenly interleaved
    /// (smooth weighted round robin). Each connection walks it from its own
    /// offset.
    pub wheel: Vec<u32>,
}

impl RequestSet {
    /// A single request, repeated.
    pub fn single(request: Rendered) -> Self {
        RequestSet {
            lines: vec![request],
            wheel: vec![0],
        }
    }

    /// Several requests sent in proportion to `weights` (all ≥ 1).
    pub fn weighted(lines: Vec<Rendered>, weights: &[u32]) -> Self {
        RequestSet {
            wheel: smooth_weighted_order(weights),
            lines,
        }
    }
}

/// One target as the workers see it.
pub(crate) struct TargetPlan {
    pub connector: Connector,
    pub requests: RequestSet,
}

/// Progress counters of one worker, read by the control thread.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Live {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    /// This worker's p99 latency so far, microseconds (refreshed once a second).
    pub p99_us: AtomicU64,
}

/// Everything the workers share, read-only except the atomics.
pub(crate) struct Plan {
    pub protocol: Protocol,
    pub targets: Vec<TargetPlan>,
    /// Number of mix lines (0 without `--mix`): per-line counting is on when > 0.
    pub mix_lines: usize,
    pub connections: usize,
    pub threads: usize,
    pub pipeline: usize,
    pub keepalive: bool,
    pub timeout: Duration,
    pub rate: Option<f64>,
    pub budget: Option<Budget>,
    pub abort: Abort,
    pub live: Vec<Live>,
    /// Publish a p99 in `live` (only while a progress line is drawn).
    pub publish_p99: bool,
}

/// Start-up rendezvous: every worker builds its runtime, then waits; the
/// control thread fixes the clock; then all start together.
pub(crate) struct StartLine {
    pub barrier: Barrier,
    pub phases: OnceLock<Phases>,
}

impl StartLine {
    /// Waits for the start; `None` if the control thread could not set the clock.
    pub fn wait(&self) -> Option<Phases> {
        self.barrier.wait();
        self.barrier.wait();
        self.phases.get().copied()
    }
}

/// Longest wheel built from the weights; larger totals are scaled down.
const MAX_WHEEL: u64 = 1 << 20;

/// Smooth weighted round robin (as in nginx's upstream balancer): every
/// step, each entry gains its weight and the richest one is picked and pays
/// the total. Over `sum(weights)` steps each entry appears exactly `weight`
/// times, spread as evenly as possible.
fn smooth_weighted_order(weights: &[u32]) -> Vec<u32> {
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    let weights: Vec<u64> = if total > MAX_WHEEL {
        weights
            .iter()
            .map(|&w| (u64::from(w) * MAX_WHEEL / total).max(1))
            .collect()
    } else {
        weights.iter().map(|&w| u64::from(w)).collect()
    };
    let total: i64 = weights.iter().sum::<u64>() as i64;
    let mut current = vec![0i64; weights.len()];
    let mut order = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, w) in weights.iter().enumerate() {
            current[i] += *w as i64;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        order.push(best as u32);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_is_exact_and_interleaved() {
        let order = smooth_weighted_order(&[3, 1]);
        assert_eq!(order, vec![0, 0, 1, 0]);
        let order = smooth_weighted_order(&[5, 2, 3]);
        for (line, weight) in [(0, 5), (1, 2), (2, 3)] {
            assert_eq!(order.iter().filter(|&&l| l == line).count(), weight);
        }
        assert_eq!(smooth_weighted_order(&[7]), vec![0; 7]);
    }
}
