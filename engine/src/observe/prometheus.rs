//! The Prometheus text exposition format (version 0.0.4), written by hand:
//! per-worker reports summed, series labelled by worker where that is the
//! point (open connections, core, driver).

use super::WorkerReport;
use crate::snapshot::Snapshot;
use std::fmt::Write;

/// Process-wide facts that are not per worker.
pub struct Process {
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    pub draining: bool,
}

pub(super) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One sample per (label value, number) of a metric with a single label.
fn series(out: &mut String, name: &str, key: &str, values: &[(&str, u64)]) {
    for (value, n) in values {
        let _ = writeln!(out, "{name}{{{key}=\"{value}\"}} {n}");
    }
}

/// Escapes a label value.
pub(super) fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub fn render(reports: &[WorkerReport], snap: &Snapshot, p: &Process) -> String {
    let mut o = String::with_capacity(16 * 1024);
    requests(&mut o, reports, snap);
    durations(&mut o, reports, snap);
    failures(&mut o, reports);
    super::upstreams::render(&mut o, reports, snap);
    worker_counters(&mut o, reports);
    per_worker(&mut o, reports);
    configuration(&mut o, snap, p);
    jwks(&mut o, snap);
    cluster(&mut o, snap);
    draining(&mut o, p);
    o
}

/// The sum of one number over every worker.
fn sum(reports: &[WorkerReport], f: fn(&WorkerReport) -> u64) -> u64 {
    reports.iter().map(f).sum()
}

/// A route's label for the series (`(none)` for requests no route matched).
fn route_name(snap: &Snapshot, i: usize) -> String {
    snap.routes
        .get(i)
        .map_or("(none)".to_string(), |r| r.label.clone())
}

/// Requests by route, method class and status class; bytes in and out.
fn requests(o: &mut String, reports: &[WorkerReport], snap: &Snapshot) {
    let sum = |f: fn(&WorkerReport) -> u64| sum(reports, f);
    family(
        o,
        "ringway_requests_total",
        "counter",
        "Requests by route, method class (read: GET/HEAD/OPTIONS, write: POST/PUT/PATCH/DELETE, other) and status class.",
    );
    let routes = reports.first().map_or(0, |r| r.metrics.routes.len());
    for i in 0..routes {
        let name = label(&route_name(snap, i));
        for (mc, method) in super::METHOD_CLASSES.iter().enumerate() {
            for (class, text) in ["none", "1xx", "2xx", "3xx", "4xx", "5xx"]
                .iter()
                .enumerate()
            {
                let n: u64 = reports
                    .iter()
                    .filter_map(|r| r.metrics.routes.get(i))
                    .map(|m| m.classes[mc][class])
                    .sum();
                if n > 0 {
                    let _ = writeln!(
                        o,
                        "ringway_requests_total{{route=\"{name}\",method=\"{method}\",status=\"{text}\"}} {n}"
                    );
                }
            }
        }
    }
    family(
        o,
        "ringway_bytes_total",
        "counter",
        "Bytes received and sent (heads, and bodies whose length was known up front).",
    );
    series(
        o,
        "ringway_bytes_total",
        "direction",
        &[
            ("in", sum(|r| r.metrics.bytes_in)),
            ("out", sum(|r| r.metrics.bytes_out)),
        ],
    );
}

/// Request duration per route, from the merged per-worker histograms.
fn durations(o: &mut String, reports: &[WorkerReport], snap: &Snapshot) {
    let routes = reports.first().map_or(0, |r| r.metrics.routes.len());
    family(
        o,
        "ringway_request_duration_seconds",
        "summary",
        "Request duration by route: quantiles of the merged per-worker HDR histograms (2 significant digits).",
    );
    for i in 0..routes {
        let mut merged: Option<hdrhistogram::Histogram<u64>> = None;
        let mut total_us = 0u64;
        for m in reports.iter().filter_map(|r| r.metrics.routes.get(i)) {
            total_us += m.latency_sum_us;
            match &mut merged {
                Some(h) => {
                    let _ = h.add(&m.latency_us);
                }
                None => merged = Some(m.latency_us.clone()),
            }
        }
        let Some(h) = merged.filter(|h| !h.is_empty()) else {
            continue;
        };
        let name = label(&route_name(snap, i));
        for q in [0.5, 0.9, 0.99, 0.999] {
            let _ = writeln!(
                o,
                "ringway_request_duration_seconds{{route=\"{name}\",quantile=\"{q}\"}} {}",
                h.value_at_quantile(q) as f64 / 1e6
            );
        }
        let _ = writeln!(
            o,
            "ringway_request_duration_seconds_sum{{route=\"{name}\"}} {}",
            total_us as f64 / 1e6
        );
        let _ = writeln!(
            o,
            "ringway_request_duration_seconds_count{{route=\"{name}\"}} {}",
            h.len()
        );
    }
}

/// Gateway refusals by status, upstream failures, client aborts.
fn failures(o: &mut String, reports: &[WorkerReport]) {
    let sum = |f: fn(&WorkerReport) -> u64| sum(reports, f);
    family(
        o,
        "ringway_rejects_total",
        "counter",
        "Requests answered by ringway itself with an error, by status.",
    );
    for code in [
        400u16, 401, 403, 404, 405, 408, 413, 414, 415, 417, 429, 431, 502, 504,
    ] {
        let n: u64 = reports
            .iter()
            .map(|r| r.metrics.status[usize::from(code)])
            .sum();
        let _ = writeln!(o, "ringway_rejects_total{{status=\"{code}\"}} {n}");
    }

    family(
        o,
        "ringway_upstream_errors_total",
        "counter",
        "Upstream failures by kind.",
    );
    series(
        o,
        "ringway_upstream_errors_total",
        "kind",
        &[
            ("connect", sum(|r| r.metrics.upstream_connect_errors)),
            ("timeout", sum(|r| r.metrics.upstream_timeouts)),
            ("bad_response", sum(|r| r.metrics.upstream_bad_responses)),
        ],
    );
    family(
        o,
        "ringway_client_aborts_total",
        "counter",
        "Exchanges the client abandoned before the response was complete.",
    );
    let _ = writeln!(
        o,
        "ringway_client_aborts_total {}",
        sum(|r| r.metrics.client_aborts)
    );
}

/// Counters summed over the workers, and the idle pool gauge.
fn worker_counters(o: &mut String, reports: &[WorkerReport]) {
    let sum = |f: fn(&WorkerReport) -> u64| sum(reports, f);
    type Counter = (&'static str, &'static str, fn(&WorkerReport) -> u64);
    let counters: [Counter; 11] = [
        (
            "ringway_upstream_connects_total",
            "New upstream connections opened.",
            |r| r.upstream_connects,
        ),
        (
            "ringway_upstream_pool_hits_total",
            "Requests that reused a pooled upstream connection.",
            |r| r.pool_hits,
        ),
        (
            "ringway_upstream_pool_misses_total",
            "Requests that found no pooled upstream connection.",
            |r| r.pool_misses,
        ),
        (
            "ringway_upstream_pool_closed_total",
            "Idle pooled upstream connections dropped because the upstream closed or reset them (seen by the close watch, before any reuse).",
            |r| r.pool_closed_idle,
        ),
        (
            "ringway_upstream_retries_total",
            "Requests sent again (after a pooled connection failed, or as [upstream.retry] allows); by upstream and reason in ringway_upstream_retries_by_reason_total.",
            |r| r.retries,
        ),
        (
            "ringway_spliced_bytes_total",
            "Body bytes moved with splice(2).",
            |r| r.spliced_bytes,
        ),
        (
            "ringway_connection_panics_total",
            "Connection tasks that panicked (each closed one connection).",
            |r| r.panics,
        ),
        (
            "ringway_connections_shed_total",
            "Connections closed at accept because of max_connections.",
            |r| r.shed,
        ),
        (
            "ringway_tls_handshake_failures_total",
            "Failed or timed-out TLS handshakes.",
            |r| r.tls_failures,
        ),
        (
            "ringway_proxy_protocol_errors_total",
            "Connections closed because their PROXY protocol header was malformed, truncated, too long or late.",
            |r| r.proxy_protocol_errors,
        ),
        (
            "ringway_http_requests_parsed_total",
            "Request heads parsed.",
            |r| r.requests,
        ),
    ];
    for (name, help, f) in counters {
        family(o, name, "counter", help);
        let _ = writeln!(o, "{name} {}", sum(f));
    }
    let requests = sum(|r| r.requests);
    let h2 = sum(|r| r.h2.requests);
    family(
        o,
        "ringway_requests_by_protocol_total",
        "counter",
        "Requests served, by protocol the client spoke.",
    );
    let _ = writeln!(
        o,
        "ringway_requests_by_protocol_total{{proto=\"h1\"}} {}",
        requests.saturating_sub(h2)
    );
    let _ = writeln!(o, "ringway_requests_by_protocol_total{{proto=\"h2\"}} {h2}");
    family(
        o,
        "ringway_h2_streams_in_flight",
        "gauge",
        "HTTP/2 streams being served.",
    );
    let _ = writeln!(o, "ringway_h2_streams_in_flight {}", sum(|r| r.h2.streams));
    family(
        o,
        "ringway_h2_connections_total",
        "counter",
        "HTTP/2 connections accepted.",
    );
    let _ = writeln!(
        o,
        "ringway_h2_connections_total {}",
        sum(|r| r.h2.connections)
    );
    family(
        o,
        "ringway_h2_resets_total",
        "counter",
        "RST_STREAM frames, received from clients and sent to them.",
    );
    let _ = writeln!(
        o,
        "ringway_h2_resets_total{{direction=\"received\"}} {}",
        sum(|r| r.h2.resets_received)
    );
    let _ = writeln!(
        o,
        "ringway_h2_resets_total{{direction=\"sent\"}} {}",
        sum(|r| r.h2.resets_sent)
    );
    family(
        o,
        "ringway_h2_goaways_sent_total",
        "counter",
        "GOAWAY frames sent (drain, idle, errors, floods).",
    );
    let _ = writeln!(o, "ringway_h2_goaways_sent_total {}", sum(|r| r.h2.goaways));
    family(
        o,
        "ringway_upstream_idle_connections",
        "gauge",
        "Pooled idle upstream connections.",
    );
    let _ = writeln!(
        o,
        "ringway_upstream_idle_connections {}",
        sum(|r| r.pool_idle)
    );
}

/// One per-worker series: name, type, help and the worker's number.
type WorkerSeries = (
    &'static str,
    &'static str,
    &'static str,
    fn(&WorkerReport) -> u64,
);

/// Series labelled by worker: open, parked and accepted connections, core and driver.
fn per_worker(o: &mut String, reports: &[WorkerReport]) {
    let series: [WorkerSeries; 3] = [
        (
            "ringway_connections_open",
            "gauge",
            "Open client connections per worker.",
            |r| r.open,
        ),
        (
            "ringway_connections_parked",
            "gauge",
            "Idle keep-alive connections parked without a task (after keepalive_park), per worker.",
            |r| r.parked,
        ),
        (
            "ringway_connections_accepted_total",
            "counter",
            "Client connections accepted per worker.",
            |r| r.accepted,
        ),
    ];
    for (name, kind, help, value) in series {
        family(o, name, kind, help);
        for r in reports {
            let _ = writeln!(o, "{name}{{worker=\"{}\"}} {}", r.id, value(r));
        }
    }
    family(
        o,
        "ringway_worker_info",
        "gauge",
        "One series per worker: its core (or \"none\") and I/O driver.",
    );
    for r in reports {
        let core = r.core.map_or("none".to_string(), |c| c.to_string());
        let _ = writeln!(
            o,
            "ringway_worker_info{{worker=\"{}\",core=\"{core}\",driver=\"{}\"}} 1",
            r.id, r.driver
        );
    }
}

/// Reloads and the active generation.
fn configuration(o: &mut String, snap: &Snapshot, p: &Process) {
    family(
        o,
        "ringway_config_reloads_total",
        "counter",
        "Configuration reloads by result.",
    );
    let _ = writeln!(
        o,
        "ringway_config_reloads_total{{result=\"success\"}} {}",
        p.reloads_ok
    );
    let _ = writeln!(
        o,
        "ringway_config_reloads_total{{result=\"failure\"}} {}",
        p.reloads_failed
    );
    family(
        o,
        "ringway_config_generation",
        "gauge",
        "Generation of the active configuration (0 at start, +1 per reload).",
    );
    let _ = writeln!(o, "ringway_config_generation {}", snap.generation);
}

/// JWKS fetches and key sets, one series per distinct `jwks_url`.
/// Cluster mode: whether Redis answers, and the sync thread's counters.
fn cluster(o: &mut String, snap: &Snapshot) {
    use std::fmt::Write;
    use std::sync::atomic::Ordering::Relaxed;
    let Some(config) = &snap.cluster else {
        return;
    };
    let f = crate::cluster::fleet(config.clone());
    family(
        o,
        "ringway_cluster_redis_up",
        "gauge",
        "1 while the last sync with Redis succeeded.",
    );
    let _ = writeln!(o, "ringway_cluster_redis_up {}", u8::from(f.is_up()));
    family(
        o,
        "ringway_cluster_instances",
        "gauge",
        "Instances seen in the fleet at the last sync.",
    );
    let _ = writeln!(o, "ringway_cluster_instances {}", f.instances());
    family(
        o,
        "ringway_cluster_syncs_total",
        "counter",
        "Successful syncs with Redis.",
    );
    let _ = writeln!(
        o,
        "ringway_cluster_syncs_total {}",
        f.stats.syncs.load(Relaxed)
    );
    family(
        o,
        "ringway_cluster_sync_errors_total",
        "counter",
        "Failed syncs, by kind.",
    );
    for (kind, n) in [
        ("connect", &f.stats.connect_errors),
        ("command", &f.stats.command_errors),
    ] {
        let _ = writeln!(
            o,
            "ringway_cluster_sync_errors_total{{kind=\"{kind}\"}} {}",
            n.load(Relaxed)
        );
    }
    family(
        o,
        "ringway_cluster_outages_total",
        "counter",
        "Times Redis went from reachable to not.",
    );
    let _ = writeln!(
        o,
        "ringway_cluster_outages_total {}",
        f.stats.outages.load(Relaxed)
    );
}

fn jwks(o: &mut String, snap: &Snapshot) {
    let mut jwks: Vec<&std::sync::Arc<crate::policy::jwt::remote::RemoteKeys>> = Vec::new();
    for r in snap
        .routes
        .iter()
        .filter_map(|r| r.policies.jwt.as_ref()?.remote())
    {
        if !jwks.iter().any(|k| std::sync::Arc::ptr_eq(k, r)) {
            jwks.push(r);
        }
    }
    if !jwks.is_empty() {
        use std::sync::atomic::Ordering::Relaxed;
        family(
            o,
            "ringway_jwks_fetches_total",
            "counter",
            "Fetches of JWKS URLs (`jwks_url`) by result; a failure keeps the last good key set.",
        );
        for k in &jwks {
            let url = label(k.url());
            for (result, n) in [
                ("success", k.fetches_ok.load(Relaxed)),
                ("failure", k.fetches_failed.load(Relaxed)),
            ] {
                let _ = writeln!(
                    o,
                    "ringway_jwks_fetches_total{{url=\"{url}\",result=\"{result}\"}} {n}"
                );
            }
        }
        family(
            o,
            "ringway_jwks_key_set",
            "gauge",
            "Key sets loaded from each JWKS URL so far (0: no keys yet, tokens are refused).",
        );
        for k in &jwks {
            let _ = writeln!(
                o,
                "ringway_jwks_key_set{{url=\"{}\"}} {}",
                label(k.url()),
                k.generation()
            );
        }
    }
}

/// Whether the process is draining.
fn draining(o: &mut String, p: &Process) {
    family(
        o,
        "ringway_draining",
        "gauge",
        "1 while draining after SIGTERM/SIGINT.",
    );
    let _ = writeln!(o, "ringway_draining {}", u8::from(p.draining));
}
