//! The admin endpoint: Prometheus metrics that parse and match the requests
//! sent, health that flips during drain, and the compiled route table.

use ringway_tests::client::{get, send_raw};
use ringway_tests::{Gateway, Origin, Reply, prom};
use std::net::SocketAddr;
use std::time::Duration;

fn config(upstream: SocketAddr) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 2\nshutdown_timeout = \"10s\"\n\n[server.admin]\nlisten = \"127.0.0.1:0\"\n\n[[upstream]]\nname = \"app\"\ntargets = [\"{upstream}\"]\n\n[[route]]\npath = \"/api/{{proxy+}}\"\nupstream = \"app\"\n"
    )
}

fn scrape(admin: SocketAddr) -> Vec<prom::Sample> {
    prom::scrape(admin)
}

fn value(s: &[prom::Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    prom::value(s, name, labels)
}

#[test]
fn metrics_parse_and_count_what_was_sent() {
    let origin = Origin::echo();
    let gw = Gateway::start(&config(origin.addr));
    let admin = gw.admin_addr();
    for i in 0..10 {
        assert_eq!(get(gw.addr, &format!("/api/{i}")).status, 200);
    }
    for _ in 0..3 {
        assert_eq!(get(gw.addr, "/nowhere").status, 404);
    }
    for _ in 0..2 {
        assert_eq!(
            send_raw(
                gw.addr,
                b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
            )
            .status,
            400
        );
    }
    // Every request above is counted (a worker counts after it answers).
    let counted = |s: &[prom::Sample]| {
        s.iter()
            .filter(|x| x.name == "ringway_requests_total")
            .map(|x| x.value)
            .sum::<f64>()
    };
    assert!(ringway_tests::wait_until(|| counted(&scrape(admin)) >= 15.0));
    let s = scrape(admin);
    assert_eq!(
        value(
            &s,
            "ringway_requests_total",
            &[
                ("route", "/api/{proxy+}"),
                ("method", "read"),
                ("status", "2xx")
            ]
        ),
        10.0
    );
    assert_eq!(
        value(
            &s,
            "ringway_requests_total",
            &[("route", "(none)"), ("status", "4xx")]
        ),
        5.0
    );
    assert_eq!(
        value(&s, "ringway_rejects_total", &[("status", "404")]),
        3.0
    );
    // Heads that did not parse have no method: they count as "other".
    assert_eq!(
        value(
            &s,
            "ringway_requests_total",
            &[("route", "(none)"), ("method", "other"), ("status", "4xx")]
        ),
        2.0
    );
    assert!(value(&s, "ringway_bytes_total", &[("direction", "in")]) > 0.0);
    assert!(value(&s, "ringway_bytes_total", &[("direction", "out")]) > 0.0);
    assert_eq!(
        value(&s, "ringway_rejects_total", &[("status", "400")]),
        2.0
    );
    assert_eq!(value(&s, "ringway_connections_accepted_total", &[]), 15.0);
    let used = value(&s, "ringway_upstream_connects_total", &[])
        + value(&s, "ringway_upstream_pool_hits_total", &[]);
    assert_eq!(used, 10.0);
    let workers: Vec<_> = s
        .iter()
        .filter(|x| x.name == "ringway_worker_info")
        .collect();
    assert_eq!(workers.len(), 2);
    assert!(workers.iter().all(|w| matches!(
        w.labels.get("driver").map(String::as_str),
        Some("io_uring" | "epoll")
    )));
    assert!(
        s.iter()
            .any(|x| x.name == "ringway_request_duration_seconds"
                && x.labels.get("route").map(String::as_str) == Some("/api/{proxy+}"))
    );
    assert_eq!(value(&s, "ringway_config_generation", &[]), 0.0);
}

#[test]
fn healthz_flips_to_503_while_draining_and_config_lists_routes() {
    let origin = Origin::start(|s| match s.target.as_str() {
        "/api/slow" => Reply::Delay(
            Duration::from_millis(1500),
            Box::new(Reply::Length(200, vec![], b"done".to_vec())),
        ),
        _ => Reply::Length(200, vec![], b"ok".to_vec()),
    });
    let mut gw = Gateway::start(&config(origin.addr));
    let admin = gw.admin_addr();
    assert_eq!(get(admin, "/healthz").status, 200);
    let cfg: serde_json::Value = serde_json::from_slice(&get(admin, "/config").body).unwrap();
    assert_eq!(cfg["routes"][0]["path"], "/api/{proxy+}");
    assert_eq!(cfg["upstreams"][0]["name"], "app");
    // The public listener does not serve the admin paths.
    assert_eq!(get(gw.addr, "/metrics").status, 404);

    let addr = gw.addr;
    let slow = std::thread::spawn(move || get(addr, "/api/slow"));
    assert!(
        origin.wait_for_target("/api/slow"),
        "the slow request is in flight"
    );
    gw.signal(libc::SIGTERM);
    assert!(
        ringway_tests::wait_until(|| get(admin, "/healthz").status == 503),
        "/healthz never said draining"
    );
    assert_eq!(slow.join().unwrap().status, 200);
    assert_eq!(gw.wait_exit(Duration::from_secs(8)), Some(0));
}
