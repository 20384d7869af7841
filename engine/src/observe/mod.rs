//! Observability: per-worker metrics (plain numbers owned by one thread,
//! summed only when scraped), the Prometheus text writer and the admin
//! endpoint.

pub mod access_log;
pub mod admin;
pub mod prometheus;
pub mod scrape;
pub mod upstreams;
pub mod usage;

use hdrhistogram::Histogram;

/// Request counts and latency of one route on one worker.
#[derive(Clone)]
pub struct RouteMetrics {
    /// Responses by method class (`METHOD_CLASSES`) and status class: index
    /// 1..=5 for 1xx..5xx, 0 for "no response".
    pub classes: [[u64; 6]; 3],
    /// Latency in microseconds, from a whole request head to the end of the exchange.
    pub latency_us: Histogram<u64>,
    pub latency_sum_us: u64,
}

impl RouteMetrics {
    fn new() -> Self {
        RouteMetrics {
            classes: [[0; 6]; 3],
            latency_us: Histogram::new_with_bounds(1, 3_600_000_000, 2)
                .expect("valid histogram bounds"),
            latency_sum_us: 0,
        }
    }
}

/// The method classes requests are counted by.
pub const METHOD_CLASSES: [&str; 3] = ["read", "write", "other"];

/// `read` (GET, HEAD, OPTIONS), `write` (POST, PUT, PATCH, DELETE), or `other`.
pub fn method_class(method: &[u8]) -> u8 {
    match method {
        b"GET" | b"HEAD" | b"OPTIONS" => 0,
        b"POST" | b"PUT" | b"PATCH" | b"DELETE" => 1,
        _ => 2,
    }
}

/// One worker's metrics. Only its own thread writes them.
#[derive(Clone)]
pub struct Metrics {
    /// Per route of the current snapshot, plus a last entry for requests no route matched.
    pub routes: Vec<RouteMetrics>,
    /// Responses by exact status code (0..=599), for the reject counters.
    pub status: Vec<u64>,
    /// Request bytes received (heads, and bodies of known length).
    pub bytes_in: u64,
    /// Response bytes sent (heads, and bodies of known length).
    pub bytes_out: u64,
    pub upstream_connect_errors: u64,
    pub upstream_timeouts: u64,
    pub upstream_bad_responses: u64,
    pub client_aborts: u64,
}

impl Metrics {
    pub fn new(routes: usize) -> Self {
        Metrics {
            routes: (0..=routes).map(|_| RouteMetrics::new()).collect(),
            status: vec![0; 600],
            bytes_in: 0,
            bytes_out: 0,
            upstream_connect_errors: 0,
            upstream_timeouts: 0,
            upstream_bad_responses: 0,
            client_aborts: 0,
        }
    }

    /// Starts per-route series over for a new route table (after a reload).
    pub fn reset_routes(&mut self, routes: usize) {
        self.routes = (0..=routes).map(|_| RouteMetrics::new()).collect();
    }

    pub fn record(&mut self, route: Option<usize>, method_class: u8, status: u16, micros: u64) {
        let last = self.routes.len() - 1;
        let r = &mut self.routes[route.unwrap_or(last).min(last)];
        r.classes[usize::from(method_class).min(2)][usize::from(status / 100).min(5)] += 1;
        let _ = r.latency_us.record(micros.max(1));
        r.latency_sum_us += micros;
        if let Some(n) = self.status.get_mut(usize::from(status)) {
            *n += 1;
        }
    }
}

/// Everything one worker reports when scraped.
#[derive(Clone)]
pub struct WorkerReport {
    pub id: usize,
    pub core: Option<usize>,
    pub driver: &'static str,
    pub generation: u64,
    pub accepted: u64,
    pub shed: u64,
    pub open: u64,
    /// Idle connections parked without a task.
    pub parked: u64,
    pub requests: u64,
    pub panics: u64,
    pub spliced_bytes: u64,
    pub upstream_connects: u64,
    pub retries: u64,
    pub tls_failures: u64,
    pub proxy_protocol_errors: u64,
    pub h2: H2Report,
    pub pool_hits: u64,
    pub pool_misses: u64,
    /// Idle pooled connections dropped because the upstream closed them.
    pub pool_closed_idle: u64,
    pub pool_idle: u64,
    pub metrics: Metrics,
    /// Per upstream of the current snapshot: retries, ejections, breaker trips…
    pub upstreams: Vec<UpstreamCounters>,
}

/// One worker's HTTP/2 numbers.
#[derive(Clone, Copy, Default, Debug)]
pub struct H2Report {
    pub requests: u64,
    pub streams: u64,
    pub resets_received: u64,
    pub resets_sent: u64,
    pub goaways: u64,
    pub connections: u64,
}

/// Request outcomes counted per upstream.
pub const OUTCOMES: [&str; 4] = ["ok", "5xx", "failed", "refused"];

/// Per upstream counters, reported on scrape.
#[derive(Clone, Default, Debug)]
pub struct UpstreamCounters {
    /// Retries by `resilience::RetryReason::index`.
    pub retries: [u64; 4],
    pub budget_exhausted: u64,
    /// Circuit breaker refusals by `resilience::Breaker::index`.
    pub breaker: [u64; 3],
    /// Requests routed to every target because too many were out.
    pub panic_routed: u64,
    /// By [`OUTCOMES`].
    pub outcomes: [u64; 4],
    /// Per target (in upstream order): attempts sent, and ejections.
    pub attempts: Vec<u64>,
    pub ejections: Vec<u64>,
    /// Per target: ejected on this worker right now.
    pub ejected_now: Vec<bool>,
    /// This worker routes to all targets (panic) right now.
    pub panicking: bool,
}
