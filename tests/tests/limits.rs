//! Limits that hold however many workers run: a usage plan's bucket and a
//! route throttle are one bucket per key for the whole process. Counted in
//! tokens: a burst of 3 admits exactly 3 of 10 simultaneous requests on
//! connections spread over the workers, and one interval later exactly one
//! more passes.

use ringway_tests::client::{connect, read_response};
use ringway_tests::{Gateway, Origin};
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One token every 2 seconds: wide enough windows for a loaded machine.
const INTERVAL: Duration = Duration::from_secs(2);

fn config(app: SocketAddr, workers: usize) -> String {
    format!(
        r#"[server]
listen = ["127.0.0.1:0"]
workers = {workers}

[[upstream]]
name = "app"
targets = ["{app}"]

[[usage_plan]]
name = "tight"
rate = 0.5
burst = 3

[[api_key]]
name = "k"
value = "key-1"
plan = "tight"

[[route]]
path = "/keyed/{{proxy+}}"
upstream = "app"
[route.api_key]

[[route]]
path = "/throttled/{{proxy+}}"
upstream = "app"
[route.throttle]
rate = 0.5
burst = 3
"#
    )
}

/// Sends one request on each of `n` connections opened beforehand (so they
/// are spread over the workers by the kernel), all at once; returns how
/// many were admitted, and the instants before sending and after the last answer.
fn simultaneous(gw: SocketAddr, path: &str, n: usize) -> (usize, Instant, Instant) {
    let mut conns: Vec<_> = (0..n).map(|_| connect(gw)).collect();
    let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\nx-api-key: key-1\r\n\r\n");
    let sent = Instant::now();
    for c in &mut conns {
        c.write_all(req.as_bytes()).unwrap();
    }
    let mut admitted = 0;
    for c in &mut conns {
        let r = read_response(c, &mut Vec::new(), false).expect("an answer");
        match r.status {
            200 => admitted += 1,
            429 => assert!(r.header("retry-after").is_some()),
            other => panic!("unexpected {other}"),
        }
    }
    (admitted, sent, Instant::now())
}

/// Tokens a bucket emptied between `first_sent` and `first_done` has
/// regained by a batch between `second_sent` and `second_done`: the
/// fewest and the most the timing allows (one per whole interval).
fn refill(first: (Instant, Instant), second: (Instant, Instant), burst: usize) -> (usize, usize) {
    let least = second.0.saturating_duration_since(first.1);
    let most = second.1.saturating_duration_since(first.0);
    let tokens = |d: Duration| ((d.as_secs_f64() / INTERVAL.as_secs_f64()) as usize).min(burst);
    (tokens(least), tokens(most))
}

fn exact(workers: usize, path: &str) {
    let origin = Origin::echo();
    let gw = Gateway::start(&config(origin.addr, workers));
    let (admitted, s1, d1) = simultaneous(gw.addr, path, 10);
    assert_eq!(admitted, 3, "{workers} workers, {path}: a burst of 3");
    // The subject of this wait is the refill itself: one interval.
    std::thread::sleep(INTERVAL + Duration::from_millis(100));
    let (admitted, s2, d2) = simultaneous(gw.addr, path, 10);
    let (least, most) = refill((s1, d1), (s2, d2), 3);
    assert!(
        (least..=most).contains(&admitted),
        "{workers} workers, {path}: {admitted} admitted, timing allows {least}..={most}"
    );
    if least == most {
        assert_eq!(
            admitted, 1,
            "{workers} workers, {path}: one interval, one token"
        );
    }
    assert_eq!(origin.seen().len(), 3 + admitted);
}

#[test]
fn a_plan_bucket_is_exact_at_2_workers() {
    exact(2, "/keyed/a");
}

#[test]
fn a_plan_bucket_is_exact_at_4_workers() {
    exact(4, "/keyed/a");
}

#[test]
fn a_route_throttle_is_exact_at_2_workers() {
    exact(2, "/throttled/a");
}

#[test]
fn a_route_throttle_is_exact_at_4_workers() {
    exact(4, "/throttled/a");
}

/// A reload that leaves the plan alone keeps the bucket: the spent burst
/// stays spent.
#[test]
fn buckets_survive_a_reload_that_keeps_the_limit() {
    let origin = Origin::echo();
    let gw = Gateway::start(&config(origin.addr, 2));
    let (admitted, _, _) = simultaneous(gw.addr, "/keyed/a", 5);
    assert_eq!(admitted, 3);
    let changed = config(origin.addr, 2)
        .replace("name = \"app\"", "name = \"app\"\nconnect_timeout = \"3s\"");
    std::fs::write(&gw.config_path, changed).unwrap();
    gw.signal(libc::SIGHUP);
    assert!(gw.wait_for_log("generation 1"), "{:#?}", gw.log());
    let (admitted, _, _) = simultaneous(gw.addr, "/keyed/a", 5);
    assert!(
        admitted <= 1,
        "{admitted} admitted after a reload: the bucket started over"
    );
}
