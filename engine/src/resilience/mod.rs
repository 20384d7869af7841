//! Upstream resilience, the compiled side: how an `[[upstream]]` balances
//! (`balance`, `hash_key`), checks (`[upstream.health]`), ejects
//! (`[upstream.outlier]`), retries (`[upstream.retry]`) and breaks
//! (`[upstream.limits]`), plus the per-target state the control thread
//! publishes to the workers ([`Live`]).
//!
//! Plain data compiled once per snapshot. The per-worker side (the
//! balancers' counters, outlier ejections, retry budgets, breaker counts)
//! is in `proxy/balance.rs`; the control thread that runs the active checks
//! and re-resolves DNS names is [`checker`].

pub mod checker;
pub mod maglev;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

/// How an upstream picks a target for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Balance {
    /// Smooth weighted round robin, per worker.
    RoundRobin,
    /// Power of two choices over per-worker in-flight counts (weighted).
    LeastRequest,
    /// Consistent hashing of a request value over a Maglev table.
    Hash(HashKey),
    /// Weighted random.
    Random,
}

/// The request value `balance = "hash"` hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// `$context.identity.sourceIp`: the client address (after `trusted_proxies`).
    SourceIp,
    /// `$request.header.X` (name kept lowercase).
    Header(Box<[u8]>),
    /// `$request.querystring.X`.
    Query(Box<[u8]>),
    /// `$request.path`.
    Path,
}

impl HashKey {
    /// Parses a `hash_key` value; the message says what is accepted.
    pub fn parse(s: &str) -> Result<HashKey, String> {
        if s == "$context.identity.sourceIp" {
            return Ok(HashKey::SourceIp);
        }
        if s == "$request.path" {
            return Ok(HashKey::Path);
        }
        let token = |n: &str| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.~!#$&'*+^`|".contains(&b))
        };
        if let Some(n) = s.strip_prefix("$request.header.")
            && token(n)
        {
            return Ok(HashKey::Header(n.to_ascii_lowercase().into_bytes().into()));
        }
        if let Some(n) = s.strip_prefix("$request.querystring.")
            && token(n)
        {
            return Ok(HashKey::Query(n.as_bytes().into()));
        }
        Err(format!(
            "unknown hash key {s:?}: expected $request.header.NAME, $request.querystring.NAME, $request.path or $context.identity.sourceIp"
        ))
    }
}

/// `[upstream.health]`, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy: u32,
    pub unhealthy: u32,
    /// Statuses that pass; empty: any 2xx.
    pub expect: Vec<u16>,
    pub host: Option<String>,
}

impl HealthCheck {
    pub fn passes(&self, status: u16) -> bool {
        if self.expect.is_empty() {
            (200..300).contains(&status)
        } else {
            self.expect.contains(&status)
        }
    }
}

/// `[upstream.outlier]`, compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierPolicy {
    pub consecutive_5xx: u32,
    pub consecutive_failures: u32,
    pub ejection: Duration,
    pub max_ejection: Duration,
}

/// Why an attempt failed, as `[upstream.retry] on` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    /// No connection could be made: nothing was sent.
    Connect,
    /// The connection broke (reset, closed) before a response head.
    Reset,
    /// No response head within the per-try timeout.
    Timeout,
    /// The response head had a 5xx status listed in `on`.
    Status(u16),
}

impl RetryReason {
    /// Metric label of the reason.
    pub fn label(self) -> &'static str {
        match self {
            RetryReason::Connect => "connect",
            RetryReason::Reset => "reset",
            RetryReason::Timeout => "timeout",
            RetryReason::Status(_) => "status",
        }
    }
    /// Index into per-reason counters ([`RETRY_REASONS`]).
    pub fn index(self) -> usize {
        match self {
            RetryReason::Connect => 0,
            RetryReason::Reset => 1,
            RetryReason::Timeout => 2,
            RetryReason::Status(_) => 3,
        }
    }
}

/// The labels of per-reason retry counters, by [`RetryReason::index`].
pub const RETRY_REASONS: [&str; 4] = ["connect", "reset", "timeout", "status"];

/// `[upstream.retry]`, compiled (also the defaults of an upstream without it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total tries, the first included.
    pub attempts: u32,
    pub on_connect: bool,
    pub on_reset: bool,
    pub on_timeout: bool,
    /// Bit `s - 500` set: retry on status `s`.
    pub on_status: u128,
    /// Each try's response head must come within this (default: `response_timeout`).
    pub per_try_timeout: Option<Duration>,
    pub budget_percent: u32,
    pub backoff: Duration,
    pub non_idempotent: bool,
}

/// Retries always allowed in flight per worker and upstream, whatever the budget says.
pub const MIN_RETRY_CONCURRENCY: u32 = 3;

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 2,
            on_connect: true,
            on_reset: true,
            on_timeout: false,
            on_status: 0,
            per_try_timeout: None,
            budget_percent: 20,
            backoff: Duration::from_millis(25),
            non_idempotent: false,
        }
    }
}

impl RetryPolicy {
    /// Whether `on` lists this reason.
    pub fn covers(&self, r: RetryReason) -> bool {
        match r {
            RetryReason::Connect => self.on_connect,
            RetryReason::Reset => self.on_reset,
            RetryReason::Timeout => self.on_timeout,
            RetryReason::Status(s) => {
                (500..600).contains(&s) && self.on_status & (1u128 << (s - 500)) != 0
            }
        }
    }

    /// Adds one `on` entry; the message lists what is accepted.
    pub fn add_reason(&mut self, s: &str) -> Result<(), String> {
        match s {
            "connect" => self.on_connect = true,
            "reset" => self.on_reset = true,
            "timeout" => self.on_timeout = true,
            "5xx" => self.on_status = u128::MAX >> 28,
            _ => match s.parse::<u16>() {
                // "504" also covers ringway's own per-try timeout (it would answer 504).
                Ok(504) => {
                    self.on_status |= 1 << 4;
                    self.on_timeout = true;
                }
                Ok(n @ 500..=599) => self.on_status |= 1u128 << (n - 500),
                _ => {
                    return Err(format!(
                        "unknown retry reason {s:?}: expected \"connect\", \"reset\", \"timeout\", \"5xx\" or a status 500-599"
                    ));
                }
            },
        }
        Ok(())
    }
}

/// `[upstream.limits]`, compiled: `u32::MAX` where unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitLimits {
    pub max_connections: u32,
    pub max_pending: u32,
    pub max_requests: u32,
}

impl Default for CircuitLimits {
    fn default() -> Self {
        CircuitLimits {
            max_connections: u32::MAX,
            max_pending: u32::MAX,
            max_requests: u32::MAX,
        }
    }
}

/// Which circuit-breaker limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breaker {
    MaxRequests,
    MaxPending,
    MaxConnections,
}

pub const BREAKERS: [&str; 3] = ["max_requests", "max_pending", "max_connections"];

impl Breaker {
    pub fn index(self) -> usize {
        self as usize
    }
    /// The JSON reason of the 503.
    pub fn message(self) -> &'static str {
        match self {
            Breaker::MaxRequests => "upstream circuit open: max_requests in flight",
            Breaker::MaxPending => {
                "upstream circuit open: max_pending requests waiting for a connection"
            }
            Breaker::MaxConnections => "upstream circuit open: max_connections in use",
        }
    }
}

/// Everything resilience adds to one compiled upstream.
#[derive(Debug, Clone)]
pub struct Resilience {
    pub balance: Balance,
    /// The Maglev lookup table (`balance = "hash"` only): target index per slot.
    pub maglev: Box<[u16]>,
    pub health: Option<HealthCheck>,
    pub outlier: Option<OutlierPolicy>,
    /// Never take out more than this share of targets; past it, route to all (panic).
    pub max_ejected_percent: u32,
    pub retry: RetryPolicy,
    pub limits: CircuitLimits,
    /// DNS names are re-resolved this often (`None`: only at load).
    pub resolve_interval: Option<Duration>,
}

impl Default for Resilience {
    fn default() -> Self {
        Resilience {
            balance: Balance::RoundRobin,
            maglev: Box::default(),
            health: None,
            outlier: None,
            max_ejected_percent: 50,
            retry: RetryPolicy::default(),
            limits: CircuitLimits::default(),
            resolve_interval: None,
        }
    }
}

/// A target's active health state in [`Live`].
pub const UP: u8 = 1;
pub const DOWN: u8 = 0;

/// Per-target state published by the control thread and read by every
/// worker with Relaxed loads: written only on a change of state, so the
/// cache lines stay shared. Indexed by `Target::id`.
#[derive(Debug)]
pub struct Live {
    /// [`UP`] or [`DOWN`] (active checks), on cache lines of their own: the
    /// counters below, written at every check, never share a line with it.
    health: Box<[HealthLine]>,
    /// Checks that passed and failed, per target.
    pub checks: Box<[[AtomicU64; 2]]>,
    /// Per upstream: a worker already logged that it routes to all targets (panic).
    pub panic_logged: Box<[AtomicBool]>,
}

/// 64 targets' health bytes on one cache line.
#[derive(Debug)]
#[repr(align(64))]
struct HealthLine([AtomicU8; 64]);

impl Live {
    pub fn new(targets: usize, upstreams: usize) -> Live {
        Live {
            health: (0..targets.div_ceil(64))
                .map(|_| HealthLine(std::array::from_fn(|_| AtomicU8::new(UP))))
                .collect(),
            checks: (0..targets)
                .map(|_| [AtomicU64::new(0), AtomicU64::new(0)])
                .collect(),
            panic_logged: (0..upstreams).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// The health cell of target `id` (`None` past the table).
    pub fn cell(&self, id: usize) -> Option<&AtomicU8> {
        self.health.get(id / 64).map(|line| &line.0[id % 64])
    }

    #[inline]
    pub fn is_up(&self, target: usize) -> bool {
        self.cell(target)
            .is_none_or(|h| h.load(Ordering::Relaxed) == UP)
    }

    /// Copies the state of every target of `from` that `to` has too (same
    /// upstream name and address): a reload keeps what the checks found.
    pub fn adopt(
        &self,
        keys: &[(String, SocketAddr)],
        from: &Live,
        from_keys: &[(String, SocketAddr)],
    ) {
        for (i, k) in keys.iter().enumerate() {
            let Some(j) = from_keys.iter().position(|f| f == k) else {
                continue;
            };
            if let (Some(to), Some(was)) = (self.cell(i), from.cell(j)) {
                to.store(was.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            for r in 0..2 {
                let n = from.checks[j][r].load(Ordering::Relaxed);
                self.checks[i][r].store(n, Ordering::Relaxed);
            }
        }
    }
}

/// DNS answers the checker thread got for target names (`host:port` →
/// addresses), used instead of resolving again when the config text is
/// compiled after a change.
#[derive(Debug, Clone, Default)]
pub struct Resolved(pub std::sync::Arc<std::collections::HashMap<String, Vec<SocketAddr>>>);

impl Resolved {
    pub fn get(&self, hostport: &str) -> Option<Vec<SocketAddr>> {
        self.0.get(hostport).cloned()
    }
}

/// A small, fast 64-bit hash (FNV-1a, then a final mix) for hash keys and
/// Maglev permutations: stable across runs and processes.
pub fn hash64(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64 finaliser: spreads FNV's weak low bits.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_keys_parse() {
        assert_eq!(HashKey::parse("$request.path"), Ok(HashKey::Path));
        assert_eq!(
            HashKey::parse("$request.header.X-User-Id"),
            Ok(HashKey::Header(b"x-user-id".to_vec().into()))
        );
        assert_eq!(
            HashKey::parse("$request.querystring.user"),
            Ok(HashKey::Query(b"user".to_vec().into()))
        );
        assert!(HashKey::parse("$request.header.").is_err());
        assert!(HashKey::parse("$request.body").is_err());
    }

    #[test]
    fn retry_reasons() {
        let mut p = RetryPolicy {
            on_connect: false,
            on_reset: false,
            ..RetryPolicy::default()
        };
        for r in ["502", "504"] {
            p.add_reason(r).unwrap();
        }
        assert!(p.covers(RetryReason::Status(502)));
        assert!(!p.covers(RetryReason::Status(503)));
        assert!(
            p.covers(RetryReason::Timeout),
            "504 covers the per-try timeout"
        );
        assert!(!p.covers(RetryReason::Connect));
        assert!(p.add_reason("404").is_err());
        assert!(p.add_reason("conect").is_err());
        p.add_reason("5xx").unwrap();
        assert!(p.covers(RetryReason::Status(599)));
    }
}
