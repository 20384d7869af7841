//! Upstream resilience in numbers: the `/metrics` series (per target
//! health, ejections and attempts; per upstream retries by reason, budget
//! exhaustion, breaker trips, panic routing and request outcomes) and the
//! live target table of `/config`. Fed by the workers' reports and the
//! snapshot's published [`crate::resilience::Live`] table.

use super::prometheus::{family, label};
use super::{OUTCOMES, UpstreamCounters, WorkerReport};
use crate::resilience::{BREAKERS, RETRY_REASONS};
use crate::snapshot::{Snapshot, Upstream};
use std::fmt::Write;

/// One upstream's counters summed over the workers that report on it.
fn summed(reports: &[WorkerReport], ui: usize, u: &Upstream) -> UpstreamCounters {
    let n = u.targets.len();
    let mut s = UpstreamCounters {
        attempts: vec![0; n],
        ejections: vec![0; n],
        ..Default::default()
    };
    for c in reports.iter().filter_map(|r| r.upstreams.get(ui)) {
        // A worker still on another generation may count other targets.
        if c.attempts.len() != n {
            continue;
        }
        for i in 0..4 {
            s.retries[i] += c.retries[i];
            s.outcomes[i] += c.outcomes[i];
        }
        for i in 0..3 {
            s.breaker[i] += c.breaker[i];
        }
        s.budget_exhausted += c.budget_exhausted;
        s.panic_routed += c.panic_routed;
        s.panicking |= c.panicking;
        for t in 0..n {
            s.attempts[t] += c.attempts[t];
            s.ejections[t] += c.ejections[t];
        }
    }
    s
}

/// Workers on which each target of upstream `ui` is ejected now.
fn ejected_on(reports: &[WorkerReport], ui: usize, n: usize) -> Vec<u64> {
    let mut v = vec![0; n];
    for c in reports.iter().filter_map(|r| r.upstreams.get(ui)) {
        for (t, e) in c.ejected_now.iter().enumerate().take(n) {
            v[t] += u64::from(*e);
        }
    }
    v
}

/// Writes the resilience series.
pub fn render(o: &mut String, reports: &[WorkerReport], snap: &Snapshot) {
    type Family = (&'static str, &'static str, &'static str);
    let families: [Family; 11] = [
        (
            "ringway_upstream_target_healthy",
            "gauge",
            "Active health of each target: 1 up (or not checked), 0 down.",
        ),
        (
            "ringway_upstream_target_ejected_workers",
            "gauge",
            "Workers on which outlier detection has the target ejected now.",
        ),
        (
            "ringway_upstream_target_ejections_total",
            "counter",
            "Outlier ejections of each target (summed over workers).",
        ),
        (
            "ringway_upstream_target_attempts_total",
            "counter",
            "Attempts (first tries and retries) sent to each target.",
        ),
        (
            "ringway_upstream_health_checks_total",
            "counter",
            "Active health checks by result.",
        ),
        (
            "ringway_upstream_retries_by_reason_total",
            "counter",
            "Retries by upstream and reason (connect, reset, timeout, status).",
        ),
        (
            "ringway_upstream_retry_budget_exhausted_total",
            "counter",
            "Retries the retry budget refused.",
        ),
        (
            "ringway_upstream_breaker_trips_total",
            "counter",
            "Requests refused with 503 by a circuit breaker limit.",
        ),
        (
            "ringway_upstream_panic_routed_total",
            "counter",
            "Requests routed to every target because more than max_ejected_percent were out.",
        ),
        (
            "ringway_upstream_panic_workers",
            "gauge",
            "Workers routing to every target of the upstream now (panic).",
        ),
        (
            "ringway_upstream_requests_total",
            "counter",
            "Requests by upstream and outcome (ok, 5xx, failed, refused).",
        ),
    ];
    let mut out: Vec<String> = vec![String::new(); families.len()];
    for (ui, u) in snap.upstreams.iter().enumerate() {
        let s = summed(reports, ui, u);
        let name = label(&u.name);
        let ejected = ejected_on(reports, ui, u.targets.len());
        for (i, t) in u.targets.iter().enumerate() {
            let tl = format!("upstream=\"{name}\",target=\"{}\"", label(&t.label));
            let healthy = u8::from(snap.live.is_up(t.id));
            let _ = writeln!(out[0], "{}{{{tl}}} {healthy}", families[0].0);
            let _ = writeln!(out[1], "{}{{{tl}}} {}", families[1].0, ejected[i]);
            let _ = writeln!(out[2], "{}{{{tl}}} {}", families[2].0, s.ejections[i]);
            let _ = writeln!(out[3], "{}{{{tl}}} {}", families[3].0, s.attempts[i]);
            if u.resilience.health.is_some() {
                let checks = &snap.live.checks[t.id];
                for (r, result) in ["pass", "fail"].iter().enumerate() {
                    let n = checks[r].load(std::sync::atomic::Ordering::Relaxed);
                    let _ = writeln!(out[4], "{}{{{tl},result=\"{result}\"}} {n}", families[4].0);
                }
            }
        }
        let ul = format!("upstream=\"{name}\"");
        for (r, reason) in RETRY_REASONS.iter().enumerate() {
            let _ = writeln!(
                out[5],
                "{}{{{ul},reason=\"{reason}\"}} {}",
                families[5].0, s.retries[r]
            );
        }
        let _ = writeln!(out[6], "{}{{{ul}}} {}", families[6].0, s.budget_exhausted);
        for (b, limit) in BREAKERS.iter().enumerate() {
            let _ = writeln!(
                out[7],
                "{}{{{ul},limit=\"{limit}\"}} {}",
                families[7].0, s.breaker[b]
            );
        }
        let _ = writeln!(out[8], "{}{{{ul}}} {}", families[8].0, s.panic_routed);
        let panicking = reports
            .iter()
            .filter_map(|r| r.upstreams.get(ui))
            .filter(|c| c.panicking)
            .count();
        let _ = writeln!(out[9], "{}{{{ul}}} {panicking}", families[9].0);
        for (k, outcome) in OUTCOMES.iter().enumerate() {
            let _ = writeln!(
                out[10],
                "{}{{{ul},outcome=\"{outcome}\"}} {}",
                families[10].0, s.outcomes[k]
            );
        }
    }
    for ((name, kind, help), lines) in families.iter().zip(out) {
        family(o, name, kind, help);
        o.push_str(&lines);
    }
}

/// The live target table of each upstream, for `/config`.
pub fn target_table(reports: &[WorkerReport], snap: &Snapshot, ui: usize) -> serde_json::Value {
    let u = &snap.upstreams[ui];
    let ejected = ejected_on(reports, ui, u.targets.len());
    let checked = u.resilience.health.is_some();
    let rows: Vec<_> = u
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let health = match (checked, snap.live.is_up(t.id)) {
                (false, _) => "unchecked",
                (true, true) => "up",
                (true, false) => "down",
            };
            let state = if !snap.live.is_up(t.id) {
                "down"
            } else if ejected[i] > 0 {
                "ejected"
            } else {
                "serving"
            };
            serde_json::json!({
                "addr": t.label,
                "authority": t.authority,
                "weight": t.weight,
                "health": health,
                "ejected_workers": ejected[i],
                "state": state,
            })
        })
        .collect();
    serde_json::Value::Array(rows)
}

/// The balancing algorithm's name, for `/config`.
pub fn balance_name(u: &Upstream) -> &'static str {
    match u.resilience.balance {
        crate::resilience::Balance::RoundRobin => "round_robin",
        crate::resilience::Balance::LeastRequest => "least_request",
        crate::resilience::Balance::Hash(_) => "hash",
        crate::resilience::Balance::Random => "random",
    }
}
