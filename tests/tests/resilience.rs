//! Upstream resilience through the real binary, with several real origin
//! processes (`ringway-test-origin`): health checks, outlier ejection,
//! retries and their budget, per-try timeouts, the balancers, the circuit
//! breaker and DNS targets. Every wait is on an event (a metric, /config,
//! a log line, what an origin served) and bounded.

use ringway_tests::fleet::{Answer, HostsEntries, Load, OriginProcess};
use ringway_tests::{Gateway, client::get, prom, wait_until};
use std::collections::HashMap;
use std::net::SocketAddr;

/// A gateway config: one upstream `app` with `targets` (TOML array
/// entries) and `extra` upstream keys and tables, admin endpoint on.
fn config(workers: usize, targets: &[String], extra: &str) -> String {
    let admin = ringway_tests::free_port();
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = {workers}\npin = false\nadmin = {{ listen = \"127.0.0.1:{admin}\" }}\n\n[[route]]\npath = \"/{{proxy+}}\"\nupstream = \"app\"\n\n[[upstream]]\nname = \"app\"\ntargets = [{}]\nconnect_timeout = \"1s\"\nresponse_timeout = \"5s\"\n{extra}\n",
        targets.join(", ")
    )
}

fn quoted(o: &OriginProcess) -> String {
    format!("\"{}\"", o.addr)
}

fn metric(gw: &Gateway, name: &str, labels: &[(&str, &str)]) -> f64 {
    prom::value(&prom::scrape(gw.admin_addr()), name, labels)
}

fn target_metric(gw: &Gateway, name: &str, o: &OriginProcess) -> f64 {
    metric(
        gw,
        name,
        &[("upstream", "app"), ("target", &o.addr.to_string())],
    )
}

/// The `/config` target table of upstream `app`.
fn target_table(gw: &Gateway) -> Vec<serde_json::Value> {
    let r = get(gw.admin_addr(), "/config");
    let doc: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    doc["upstreams"][0]["target_table"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn by_origin(answers: &[Answer]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for a in answers.iter().filter(|a| a.status == Some(200)) {
        *m.entry(a.origin.clone()).or_insert(0) += 1;
    }
    m
}

#[test]
fn a_killed_target_is_routed_around_without_client_errors_and_comes_back() {
    let mut fleet: Vec<OriginProcess> = ["a", "b", "c"]
        .iter()
        .map(|n| OriginProcess::start(n))
        .collect();
    let targets: Vec<String> = fleet.iter().map(quoted).collect();
    let extra = "[upstream.health]\npath = \"/healthz\"\ninterval = \"100ms\"\ntimeout = \"1s\"\nhealthy = 2\nunhealthy = 2\n\n[upstream.outlier]\nconsecutive_failures = 2\nejection = \"200ms\"\n\n[upstream.retry]\nattempts = 3\non = [\"connect\", \"reset\", \"502\", \"503\", \"504\"]\n";
    let gw = Gateway::start(&config(2, &targets, extra));
    let load = Load::start(gw.addr, 6, "/work", 1_000_000);
    assert!(
        wait_until(|| fleet[1].requests() >= 20),
        "b never got traffic"
    );
    fleet[1].kill();
    assert!(
        wait_until(|| target_metric(&gw, "ringway_upstream_target_healthy", &fleet[1]) == 0.0),
        "the health checks never took b out"
    );
    assert!(gw.wait_for_log(&format!("target {} is down", fleet[1].addr)));
    let detected = std::time::Instant::now();
    let table = target_table(&gw);
    let b = table
        .iter()
        .find(|t| t["addr"] == fleet[1].addr.to_string())
        .unwrap();
    assert_eq!(b["state"], "down", "{table:?}");
    // Traffic goes on: wait for a good number of requests sent after detection.
    let seen = load.count();
    assert!(
        wait_until(|| load.count() >= seen + 300),
        "the load stalled"
    );
    fleet[1].restart();
    assert!(
        wait_until(|| target_metric(&gw, "ringway_upstream_target_healthy", &fleet[1]) == 1.0),
        "b never came back"
    );
    assert!(gw.wait_for_log(&format!("target {} is up again", fleet[1].addr)));
    assert!(
        wait_until(|| fleet[1].requests() >= 20),
        "b gets no traffic after coming back"
    );
    let answers = load.stop();
    let after: Vec<&Answer> = answers.iter().filter(|a| a.sent >= detected).collect();
    let errors = after.iter().filter(|a| a.status != Some(200)).count();
    assert!(
        after.len() >= 300,
        "{} requests after detection",
        after.len()
    );
    assert_eq!(
        errors,
        0,
        "client errors after detection, of {}",
        after.len()
    );
    // Before detection, requests to b were retried elsewhere as far as the
    // retry budget let them; every error is a 502 the budget refused to retry.
    let before = answers.len() - after.len();
    let refused = metric(&gw, "ringway_upstream_retry_budget_exhausted_total", &[]) as usize;
    let errors_before = answers.iter().filter(|a| a.status != Some(200)).count();
    assert!(answers.iter().all(|a| matches!(a.status, Some(200 | 502))));
    assert_eq!(
        errors_before, refused,
        "{errors_before} errors in {before} requests before detection"
    );
    eprintln!(
        "killed target: {errors_before} client errors (retries the budget refused) in {before} requests before detection, 0 in {} after",
        after.len()
    );
}

#[test]
fn a_target_answering_503_is_ejected_then_readmitted() {
    let mut fleet: Vec<OriginProcess> = ["a", "b", "c"]
        .iter()
        .map(|n| OriginProcess::start(n))
        .collect();
    let targets: Vec<String> = fleet.iter().map(quoted).collect();
    let extra = "[upstream.outlier]\nconsecutive_5xx = 3\nejection = \"2s\"\nmax_ejection = \"10s\"\n\n[upstream.retry]\nattempts = 1\n";
    let gw = Gateway::start(&config(1, &targets, extra));
    fleet[1].set("status 503");
    let mut fives = 0;
    assert!(
        wait_until(|| {
            fives += usize::from(get(gw.addr, "/x").status == 503);
            target_metric(&gw, "ringway_upstream_target_ejections_total", &fleet[1]) == 1.0
        }),
        "b was never ejected"
    );
    assert_eq!(fives, 3, "ejected after exactly consecutive_5xx answers");
    assert!(gw.wait_for_log(&format!("target {} ejected", fleet[1].addr)));
    let before = fleet[1].requests();
    let answers: Vec<u16> = (0..12).map(|_| get(gw.addr, "/x").status).collect();
    // Unless the 2 s ejection ended meanwhile, b got none of those.
    if target_metric(&gw, "ringway_upstream_target_ejected_workers", &fleet[1]) == 1.0 {
        assert_eq!(fleet[1].requests(), before);
        assert!(answers.iter().all(|&s| s == 200), "{answers:?}");
    }
    fleet[1].set("ok");
    assert!(
        wait_until(|| {
            get(gw.addr, "/x");
            fleet[1].requests() > before
        }),
        "b was never readmitted"
    );
    assert!(gw.wait_for_log(&format!("target {} readmitted", fleet[1].addr)));
}

#[test]
fn a_stalled_target_times_out_per_try_and_the_retry_goes_elsewhere() {
    let mut fleet: Vec<OriginProcess> =
        ["a", "b"].iter().map(|n| OriginProcess::start(n)).collect();
    let targets: Vec<String> = fleet.iter().map(quoted).collect();
    let extra = "[upstream.retry]\nattempts = 2\non = [\"connect\", \"504\"]\nper_try_timeout = \"300ms\"\n";
    let gw = Gateway::start(&config(1, &targets, extra));
    fleet[0].set("stall");
    for _ in 0..6 {
        let r = get(gw.addr, "/slow");
        assert_eq!((r.status, r.header("x-origin")), (200, Some("b")));
    }
    assert!(
        fleet[0].requests() >= 3,
        "round robin sent a's share to a first"
    );
    let retried = metric(
        &gw,
        "ringway_upstream_retries_by_reason_total",
        &[("reason", "timeout")],
    );
    assert_eq!(retried, fleet[0].requests() as f64);
}

#[test]
fn retry_after_on_503_is_honoured_up_to_the_per_try_timeout() {
    let mut fleet: Vec<OriginProcess> =
        ["a", "b"].iter().map(|n| OriginProcess::start(n)).collect();
    let targets: Vec<String> = fleet.iter().map(quoted).collect();
    let extra = "[upstream.retry]\nattempts = 2\non = [\"503\"]\nper_try_timeout = \"2s\"\n";
    let gw = Gateway::start(&config(1, &targets, extra));
    fleet[0].set("retry-after 1");
    let started = std::time::Instant::now();
    let r = get(gw.addr, "/a");
    assert_eq!((r.status, r.header("x-origin")), (200, Some("b")));
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "Retry-After: 1 waited out"
    );
    // Longer than a try may take: no retry, the 503 reaches the client as sent.
    fleet[0].set("retry-after 10");
    fleet[1].set("retry-after 10");
    let r = get(gw.addr, "/b");
    assert_eq!((r.status, r.header("retry-after")), (503, Some("10")));
}

#[test]
fn a_retry_storm_stays_within_the_budget() {
    let mut fleet: Vec<OriginProcess> = ["a", "b", "c"]
        .iter()
        .map(|n| OriginProcess::start(n))
        .collect();
    for o in &mut fleet {
        o.set("slow-status 503 20");
    }
    let targets: Vec<String> = fleet.iter().map(quoted).collect();
    let extra =
        "[upstream.retry]\nattempts = 3\non = [\"503\"]\nbudget_percent = 20\nbackoff = \"0ms\"\n";
    let gw = Gateway::start(&config(1, &targets, extra));
    let answers = Load::start(gw.addr, 30, "/storm", 20).finish();
    let requests = answers.len() as u64;
    assert_eq!(requests, 600);
    assert!(answers.iter().all(|a| a.status == Some(503)));
    let attempts: u64 = fleet.iter().map(OriginProcess::requests).sum();
    let retries = metric(
        &gw,
        "ringway_upstream_retries_by_reason_total",
        &[("reason", "status")],
    ) as u64;
    assert_eq!(attempts, requests + retries, "every attempt counted");
    // Without a budget every request would take 3 attempts (1800); with
    // 20% of ~30 in flight, retries are a fraction of first tries.
    assert!(
        attempts * 10 < requests * 16,
        "{attempts} attempts for {requests} requests"
    );
    assert!(metric(&gw, "ringway_upstream_retry_budget_exhausted_total", &[]) > 0.0);
}

#[test]
fn weighted_round_robin_shares_hold_within_two_percent() {
    let fleet: Vec<OriginProcess> = ["a", "b", "c"]
        .iter()
        .map(|n| OriginProcess::start(n))
        .collect();
    let targets = vec![
        quoted(&fleet[0]),
        format!("{{ addr = \"{}\", weight = 3 }}", fleet[1].addr),
        format!("{{ addr = \"{}\", weight = 1 }}", fleet[2].addr),
    ];
    let gw = Gateway::start(&config(2, &targets, ""));
    let answers = Load::start(gw.addr, 4, "/w", 2_500).finish();
    assert_eq!(answers.len(), 10_000);
    let m = by_origin(&answers);
    for (name, want) in [("a", 0.2), ("b", 0.6), ("c", 0.2)] {
        let share = m.get(name).copied().unwrap_or(0) as f64 / 10_000.0;
        assert!(
            (share - want).abs() <= 0.02,
            "{name}: {share} (want {want}) {m:?}"
        );
    }
}

#[test]
fn least_request_sends_fewer_requests_to_a_slow_target() {
    let mut fleet: Vec<OriginProcess> = ["a", "b", "c"]
        .iter()
        .map(|n| OriginProcess::start(n))
        .collect();
    fleet[0].set("delay 100");
    let targets: Vec<String> = fleet.iter().map(quoted).collect();
    let gw = Gateway::start(&config(1, &targets, "balance = \"least_request\"\n"));
    let answers = Load::start(gw.addr, 8, "/lr", 60).finish();
    let m = by_origin(&answers);
    let (a, b, c) = (m.get("a").copied().unwrap_or(0), m["b"], m["c"]);
    assert_eq!(a + b + c, 480);
    assert!(a * 4 < b && a * 4 < c, "slow a got {a}, b {b}, c {c}");
}

#[test]
fn hash_keeps_keys_on_their_target_and_moves_about_one_nth_when_one_is_added() {
    let fleet: Vec<OriginProcess> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| OriginProcess::start(n))
        .collect();
    let extra = "balance = \"hash\"\nhash_key = \"$request.header.x-user-id\"\n";
    let three: Vec<String> = fleet[..3].iter().map(quoted).collect();
    let gw = Gateway::start(&config(2, &three, extra));
    let map = |gw: &Gateway| -> Vec<String> {
        (0..400)
            .map(|k| {
                let req = format!("GET /h HTTP/1.1\r\nHost: t\r\nX-User-Id: user-{k}\r\n\r\n");
                let r = ringway_tests::send_raw(gw.addr, req.as_bytes());
                assert_eq!(r.status, 200);
                r.header("x-origin").unwrap().to_string()
            })
            .collect()
    };
    let first = map(&gw);
    assert_eq!(map(&gw), first, "the same key maps to the same target");
    for n in ["a", "b", "c"] {
        let share = first.iter().filter(|o| *o == n).count();
        assert!((80..=190).contains(&share), "{n}: {share} of 400");
    }
    // Add d and reload.
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    let four = text.replace(
        &three.join(", "),
        &format!("{}, {}", three.join(", "), quoted(&fleet[3])),
    );
    std::fs::write(&gw.config_path, four).unwrap();
    gw.signal(libc::SIGHUP);
    assert!(gw.wait_for_generation(1));
    let second = map(&gw);
    let moved: Vec<usize> = (0..400).filter(|&k| first[k] != second[k]).collect();
    let to_d = moved.iter().filter(|&&k| second[k] == "d").count();
    assert!(
        (50..=160).contains(&moved.len()),
        "{} of 400 keys moved (≈100 expected)",
        moved.len()
    );
    assert!(
        to_d * 10 >= moved.len() * 9,
        "{to_d} of {} moved keys went to the new target",
        moved.len()
    );
}

#[test]
fn the_circuit_breaker_answers_503_past_max_requests() {
    let mut origin = OriginProcess::start("a");
    origin.set("stall");
    let extra = "[upstream.limits]\nmax_requests = 2\n";
    let gw = Gateway::start(&config(1, &[quoted(&origin)], extra));
    let mut held = Vec::new();
    for i in 0..2 {
        let mut s = ringway_tests::client::connect(gw.addr);
        std::io::Write::write_all(
            &mut s,
            format!("GET /held{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
        )
        .unwrap();
        held.push(s);
    }
    assert!(
        wait_until(|| origin.requests() == 2),
        "the two requests never reached the origin"
    );
    let r = get(gw.addr, "/third");
    assert_eq!(r.status, 503);
    let body = String::from_utf8_lossy(&r.body);
    assert!(body.contains("max_requests"), "{body}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        metric(
            &gw,
            "ringway_upstream_breaker_trips_total",
            &[("limit", "max_requests")]
        ),
        1.0
    );
    assert_eq!(
        origin.requests(),
        2,
        "the refused request was not forwarded"
    );
    drop(held);
}

#[test]
fn a_dns_name_with_two_addresses_becomes_two_targets_and_follows_changes() {
    // /etc/hosts entries (the tests run as root), removed on drop: the name
    // resolves to 127.0.0.1, then also to ::1 (both loopback).
    let name = format!("rw-dns-{}.test", std::process::id());
    let hosts = HostsEntries::new();
    hosts.add("127.0.0.1", &name);
    let v4 = OriginProcess::start("v4");
    let port = v4.addr.port();
    let v6 = OriginProcess::start_on(
        "v6",
        SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)),
    );
    let target = format!("\"{name}:{port}\"");
    let gw = Gateway::start(&config(1, &[target], "resolve_interval = \"100ms\"\n"));
    assert_eq!(target_table(&gw).len(), 1);
    hosts.add("::1", &name);
    assert!(
        wait_until(|| target_table(&gw).len() == 2),
        "the second address never became a target"
    );
    assert!(gw.wait_for_log(&format!("{name}:{port} now resolves to")));
    // The admin view shows the new table as soon as it is built; workers take
    // it up at their next generation check.
    assert!(gw.wait_for_generation(1), "{:#?}", gw.log());
    let table = target_table(&gw);
    assert!(
        table
            .iter()
            .all(|t| t["authority"] == format!("{name}:{port}")),
        "{table:?}"
    );
    assert!(
        wait_until(|| {
            get(gw.addr, "/dns");
            v6.requests() > 0 && v4.requests() > 0
        }),
        "both addresses get requests"
    );
    hosts.remove("::1");
    assert!(
        wait_until(|| target_table(&gw).len() == 1),
        "the removed address stayed a target"
    );
    assert!(gw.wait_for_generation(2), "{:#?}", gw.log());
    let before = v6.requests();
    for _ in 0..6 {
        assert_eq!(get(gw.addr, "/dns").header("x-origin"), Some("v4"));
    }
    assert_eq!(v6.requests(), before);
}

#[test]
fn a_reload_keeps_the_health_state_of_targets_that_stay() {
    let mut fleet: Vec<OriginProcess> =
        ["a", "b"].iter().map(|n| OriginProcess::start(n)).collect();
    let targets: Vec<String> = fleet.iter().map(quoted).collect();
    // Down after 2 failed checks; back only after 1000 passes (not within this test).
    let health = "[upstream.health]\ninterval = \"100ms\"\nunhealthy = 2\nhealthy = 1000\n";
    let gw = Gateway::start(&config(1, &targets, health));
    fleet[1].kill();
    assert!(wait_until(|| target_metric(
        &gw,
        "ringway_upstream_target_healthy",
        &fleet[1]
    ) == 0.0));
    fleet[1].restart();
    assert!(
        wait_until(|| fleet[1].counts().1 >= 2),
        "b is checked again"
    );
    // A reload (another response_timeout): b must stay down, as the checks
    // found it; a reload that forgot would start it up.
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    std::fs::write(&gw.config_path, text.replace("\"5s\"", "\"6s\"")).unwrap();
    gw.signal(libc::SIGHUP);
    assert!(gw.wait_for_generation(1));
    assert_eq!(
        target_metric(&gw, "ringway_upstream_target_healthy", &fleet[1]),
        0.0
    );
    for _ in 0..6 {
        assert_eq!(get(gw.addr, "/r").header("x-origin"), Some("a"));
    }
    assert_eq!(fleet[1].requests(), 0);
}

#[test]
fn check_names_file_line_and_key_of_resilience_errors() {
    let text = "[[upstream]]\nname = \"app\"\ntargets = [{ addr = \"127.0.0.1:1\", weight = 0 }]\nbalance = \"hash\"\n\n[upstream.retry]\non = [\"sometimes\"]\n\n[upstream.health]\ninterval = \"0s\"\n\n[[route]]\npath = \"/\"\nupstream = \"app\"\n";
    let (code, _, err) = ringway_tests::gateway::check(text);
    assert_eq!(code, 2, "{err}");
    for want in [
        "ringway.toml:3:12: key `upstream[0].targets`: weight 0",
        "ringway.toml:4:11: key `upstream[0].balance`: balance = \"hash\" needs `hash_key`",
        "ringway.toml:7:7: key `upstream[0].retry.on`: unknown retry reason \"sometimes\"",
        "ringway.toml:10:12: key `upstream[0].health.interval`: must be more than zero",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn the_readme_resilience_example_passes_check() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let section = readme
        .split("## Upstream resilience")
        .nth(1)
        .expect("the README section");
    let example = section
        .split("```toml\n")
        .nth(1)
        .and_then(|t| t.split("```").next())
        .unwrap();
    let text = format!("{example}\n[[route]]\npath = \"/\"\nupstream = \"app\"\n");
    let (code, out, err) = ringway_tests::gateway::check(&text);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("app"), "{out}");
    // With balance = "hash" (and its hash_key), it still passes.
    let hashed = text.replace("balance = \"round_robin\"", "balance = \"hash\"");
    let (code, _, err) = ringway_tests::gateway::check(&hashed);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn the_circuit_breaker_bounds_connections_and_requests_waiting_for_one() {
    let mut origin = OriginProcess::start("a");
    origin.set("stall");
    let extra = "[upstream.limits]\nmax_connections = 1\nmax_pending = 1\n";
    let gw = Gateway::start(&config(1, &[quoted(&origin)], extra));
    // The one connection: held by a request the origin never answers.
    let mut held = ringway_tests::client::connect(gw.addr);
    std::io::Write::write_all(&mut held, b"GET /held HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert!(wait_until(|| origin.requests() == 1));
    // Another request waits for a connection (up to connect_timeout, 1 s),
    // then gets 503; while one waits, the next finds the one waiting place
    // taken: 503 at once.
    let addr = gw.addr;
    let mut waiting = Some(std::thread::spawn(move || get(addr, "/second")));
    let mut answers = Vec::new();
    let refused_pending = |answers: &[ringway_tests::Response]| {
        answers
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains("max_pending"))
    };
    assert!(
        wait_until(|| {
            answers.push(get(gw.addr, "/third"));
            if waiting.as_ref().is_some_and(|w| w.is_finished()) {
                answers.push(waiting.take().unwrap().join().unwrap());
            }
            refused_pending(&answers)
        }),
        "no request was refused for max_pending: {answers:?}"
    );
    if let Some(w) = waiting {
        answers.push(w.join().unwrap());
    }
    assert!(answers.iter().all(|r| r.status == 503), "{answers:?}");
    let said = |limit: &str| {
        answers
            .iter()
            .filter(|r| String::from_utf8_lossy(&r.body).contains(limit))
            .count()
    };
    assert!(said("max_connections") >= 1, "{answers:?}");
    assert_eq!(said("max_connections") + said("max_pending"), answers.len());
    let trips = |limit: &str| {
        metric(
            &gw,
            "ringway_upstream_breaker_trips_total",
            &[("limit", limit)],
        )
    };
    assert_eq!(trips("max_connections") as usize, said("max_connections"));
    assert_eq!(trips("max_pending") as usize, said("max_pending"));
    assert_eq!(origin.requests(), 1, "nothing refused was forwarded");
    drop(held);
}

#[test]
fn a_post_is_retried_only_when_nothing_was_sent() {
    let mut fleet: Vec<OriginProcess> =
        ["a", "b"].iter().map(|n| OriginProcess::start(n)).collect();
    let targets: Vec<String> = fleet.iter().map(quoted).collect();
    let extra = "[upstream.retry]\nattempts = 2\non = [\"connect\", \"503\"]\nbackoff = \"1ms\"\n";
    let gw = Gateway::start(&config(1, &targets, extra));
    let post = |path: &str| {
        let req = format!("POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
        ringway_tests::send_raw(gw.addr, req.as_bytes())
    };
    // A 503 to a POST is not retried (its body reached the origin)...
    fleet[0].set("status 503");
    fleet[1].set("status 503");
    for i in 0..4 {
        assert_eq!(post(&format!("/p{i}")).status, 503);
    }
    assert_eq!(
        fleet[0].requests() + fleet[1].requests(),
        4,
        "one attempt each"
    );
    // ... while a GET is.
    for i in 0..4 {
        assert_eq!(get(gw.addr, &format!("/g{i}")).status, 503);
    }
    assert_eq!(
        fleet[0].requests() + fleet[1].requests(),
        12,
        "two attempts each"
    );
    // A connect failure sent nothing: the POST goes to the other target, body and all.
    fleet[1].set("ok");
    fleet[0].kill();
    for i in 0..4 {
        let r = post(&format!("/c{i}"));
        assert_eq!((r.status, r.header("x-origin")), (200, Some("b")));
    }
    assert!(
        metric(
            &gw,
            "ringway_upstream_retries_by_reason_total",
            &[("reason", "connect")]
        ) >= 2.0
    );
    // An idempotent PUT whose small body came whole with its head is kept
    // and replayed: a 503 is retried on the other target, body included.
    fleet[0].restart();
    fleet[0].set("status 503");
    for i in 0..4 {
        let req = format!("PUT /u{i} HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
        let r = ringway_tests::send_raw(gw.addr, req.as_bytes());
        assert_eq!(
            (r.status, r.header("x-origin"), r.header("x-body-len")),
            (200, Some("b"), Some("5"))
        );
    }
    assert!(
        fleet[0].requests() >= 1,
        "round robin tried a first at least once"
    );
}

#[test]
fn with_every_target_out_the_upstream_routes_to_all_and_says_so_once() {
    let mut fleet: Vec<OriginProcess> =
        ["a", "b"].iter().map(|n| OriginProcess::start(n)).collect();
    let targets: Vec<String> = fleet.iter().map(quoted).collect();
    let extra = "[upstream.health]\ninterval = \"100ms\"\nunhealthy = 1\nhealthy = 1\n\n[upstream.retry]\nattempts = 1\n";
    let gw = Gateway::start(&config(1, &targets, extra));
    fleet[0].kill();
    fleet[1].kill();
    for o in &fleet {
        assert!(wait_until(|| target_metric(
            &gw,
            "ringway_upstream_target_healthy",
            o
        ) == 0.0));
    }
    for i in 0..5 {
        assert_eq!(
            get(gw.addr, &format!("/x{i}")).status,
            502,
            "both targets are dead"
        );
    }
    assert_eq!(metric(&gw, "ringway_upstream_panic_routed_total", &[]), 5.0);
    assert_eq!(metric(&gw, "ringway_upstream_panic_workers", &[]), 1.0);
    let panics = gw
        .log()
        .iter()
        .filter(|l| l.contains("routing to all of them (panic)"))
        .count();
    assert_eq!(panics, 1, "said once");
    fleet[0].restart();
    assert!(wait_until(|| target_metric(
        &gw,
        "ringway_upstream_target_healthy",
        &fleet[0]
    ) == 1.0));
    for i in 0..4 {
        let r = get(gw.addr, &format!("/y{i}"));
        assert_eq!((r.status, r.header("x-origin")), (200, Some("a")));
    }
    assert!(gw.wait_for_log("routing around the ones out again"));
    assert_eq!(metric(&gw, "ringway_upstream_panic_workers", &[]), 0.0);
}

#[test]
fn health_checks_speak_tls_to_https_targets() {
    use ringway_tests::pki::{self, Ca};
    let dir = ringway_tests::gateway::TempDir::new();
    let ca = Ca::new("backend ca");
    let origin = pki::tls_origin(&ca.server(&["backend.local"]));
    let ca_file = dir.0.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let cfg = |name: &str| {
        let admin = ringway_tests::free_port();
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\nadmin = {{ listen = \"127.0.0.1:{admin}\" }}\n\n[[upstream]]\nname = \"app\"\ntargets = [\"https://{origin}\"]\ntls = {{ ca = \"{}\", server_name = \"{name}\" }}\n\n[upstream.health]\ninterval = \"100ms\"\nunhealthy = 2\n\n[[route]]\npath = \"/{{proxy+}}\"\nupstream = \"app\"\n",
            ca_file.display()
        )
    };
    let checks = |gw: &Gateway, result: &str| {
        metric(
            gw,
            "ringway_upstream_health_checks_total",
            &[("upstream", "app"), ("result", result)],
        )
    };
    let good = Gateway::start(&cfg("backend.local"));
    assert!(
        wait_until(|| checks(&good, "pass") >= 3.0),
        "TLS checks pass"
    );
    assert_eq!(checks(&good, "fail"), 0.0);
    // A certificate for another name fails the handshake: the target goes down.
    let wrong = Gateway::start(&cfg("someone-else.local"));
    assert!(wait_until(|| metric(
        &wrong,
        "ringway_upstream_target_healthy",
        &[]
    ) == 0.0));
    assert_eq!(checks(&wrong, "pass"), 0.0);
}

#[test]
fn a_retry_to_another_target_names_it_as_host_when_the_route_does_not_preserve_host() {
    let mut fleet: Vec<OriginProcess> =
        ["a", "b"].iter().map(|n| OriginProcess::start(n)).collect();
    let targets: Vec<String> = fleet.iter().map(quoted).collect();
    let text = config(1, &targets, "").replace(
        "upstream = \"app\"\n",
        "upstream = \"app\"\npreserve_host = false\n",
    );
    let gw = Gateway::start(&text);
    fleet[0].kill();
    // Round robin sends every other request to the dead a first: retried on b.
    for i in 0..4 {
        let r = get(gw.addr, &format!("/h{i}"));
        let b = fleet[1].addr.to_string();
        assert_eq!(
            (r.status, r.header("x-origin"), r.header("x-host")),
            (200, Some("b"), Some(b.as_str()))
        );
    }
    assert!(
        metric(
            &gw,
            "ringway_upstream_retries_by_reason_total",
            &[("reason", "connect")]
        ) >= 1.0
    );
}
