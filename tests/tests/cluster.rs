//! Cluster mode through the binaries: two ringway processes share one
//! redis-server (Debian's, started per test on a free port, stopped by pid)
//! and a usage plan's quota holds for both; Redis going away and coming back
//! is served per `on_redis_down` and shows on `/metrics`; `rediss://` works
//! with a test CA; bad `[cluster]` tables are config errors.

use ringway_tests::gateway::{TempDir, check};
use ringway_tests::redis::RedisServer;
use ringway_tests::{Gateway, Origin, prom, send_raw, wait_until};
use std::net::SocketAddr;

fn config(app: SocketAddr, cluster: &str, plan: &str) -> String {
    format!(
        r#"[server]
listen = ["127.0.0.1:0"]
workers = 2
[server.admin]
listen = "127.0.0.1:0"

[cluster]
{cluster}

[[upstream]]
name = "app"
targets = ["{app}"]

[[usage_plan]]
name = "shared"
{plan}

[[api_key]]
name = "team-a"
value = "key-a"
plan = "shared"

[[route]]
path = "/{{proxy+}}"
upstream = "app"
[route.api_key]
"#
    )
}

fn get(gw: &Gateway) -> u16 {
    send_raw(
        gw.addr,
        b"GET /x HTTP/1.1\r\nHost: t\r\nx-api-key: key-a\r\nConnection: close\r\n\r\n",
    )
    .status
}

fn redis_up(gw: &Gateway) -> f64 {
    prom::value(
        &prom::scrape(gw.admin_addr()),
        "ringway_cluster_redis_up",
        &[],
    )
}

#[test]
fn two_instances_share_a_quota_of_100_exactly() {
    let redis = RedisServer::start();
    let origin = Origin::echo();
    let cluster = format!("redis = \"{}\"\nsync_interval = \"20ms\"", redis.url());
    let cfg = config(
        origin.addr,
        &cluster,
        "quota = { limit = 100, period = \"day\" }",
    );
    let (a, b) = (Gateway::start(&cfg), Gateway::start(&cfg));
    assert!(wait_until(|| redis_up(&a) == 1.0 && redis_up(&b) == 1.0));
    // Every request is admitted until the fleet has spent 100, whichever
    // instance it reaches (the last grants one instance holds are handed back
    // when the other runs short); after the 100th, every one is refused.
    for i in 0..300 {
        let status = if i % 3 == 0 { get(&b) } else { get(&a) };
        let want = if i < 100 { 200 } else { 429 };
        assert_eq!(status, want, "request {i}");
    }
    assert_eq!(origin.seen().len(), 100);
}

fn syncs(gw: &Gateway) -> f64 {
    prom::value(
        &prom::scrape(gw.admin_addr()),
        "ringway_cluster_syncs_total",
        &[],
    )
}

#[test]
fn two_instances_share_a_burst_within_the_bound() {
    let redis = RedisServer::start();
    let origin = Origin::echo();
    let cluster = format!("redis = \"{}\"\nsync_interval = \"20ms\"", redis.url());
    // A burst of 10 and (almost) no refill: tokens can be counted.
    let cfg = config(origin.addr, &cluster, "rate = 0.01\nburst = 10");
    let (a, b) = (Gateway::start(&cfg), Gateway::start(&cfg));
    assert!(wait_until(|| redis_up(&a) == 1.0 && redis_up(&b) == 1.0));
    let mut admitted = 0;
    for i in 0..40 {
        let status = if i % 2 == 0 { get(&a) } else { get(&b) };
        assert!(status == 200 || status == 429, "request {i}: {status}");
        admitted += (status == 200) as u32;
    }
    // The documented bound: the burst, plus what each instance may admit
    // alone between two syncs (its own burst; rate × interval is ~0 here).
    assert!(
        (10..=10 + 2 * 10).contains(&admitted),
        "{admitted} admitted of a burst of 10"
    );
    // Once each has pushed its count and then read the other's (A syncs,
    // then B, then A again), the fleet's bucket is empty on both.
    for gw in [&a, &b, &a] {
        let before = syncs(gw);
        assert!(wait_until(|| syncs(gw) >= before + 2.0));
    }
    for i in 0..10 {
        let status = if i % 2 == 0 { get(&a) } else { get(&b) };
        assert_eq!(status, 429, "request {i} after the fleet's burst was spent");
    }
    assert_eq!(origin.seen().len(), admitted as usize);
}

#[test]
fn redis_killed_and_restarted_with_local_then_with_deny() {
    let mut redis = RedisServer::start();
    let origin = Origin::echo();
    for (mode, down_status) in [("local", 200), ("deny", 503)] {
        let cluster = format!(
            "redis = \"{}\"\nsync_interval = \"20ms\"\non_redis_down = \"{mode}\"",
            redis.url()
        );
        let gw = Gateway::start(&config(origin.addr, &cluster, "rate = 1000\nburst = 1000"));
        assert!(wait_until(|| redis_up(&gw) == 1.0), "{mode}: never up");
        assert_eq!(get(&gw), 200);
        redis.kill();
        assert!(wait_until(|| redis_up(&gw) == 0.0), "{mode}: never down");
        assert_eq!(get(&gw), down_status, "{mode} while Redis is down");
        assert!(gw.wait_for_log("unreachable"), "{mode}: no outage line");
        let errors = prom::value(
            &prom::scrape(gw.admin_addr()),
            "ringway_cluster_sync_errors_total",
            &[("kind", "connect")],
        );
        assert!(errors >= 1.0, "{mode}: {errors} connect errors counted");
        redis.run();
        assert!(wait_until(|| redis_up(&gw) == 1.0), "{mode}: never back");
        assert_eq!(get(&gw), 200, "{mode} after Redis is back");
        let outage_lines = gw
            .log()
            .iter()
            .filter(|l| l.contains("unreachable"))
            .count();
        assert_eq!(outage_lines, 1, "{mode}: one line per outage");
    }
}

#[test]
fn through_sentinel_and_across_a_failover() {
    let primary = RedisServer::start();
    let replica = RedisServer::start_replica(&primary);
    let sentinel = RedisServer::start_sentinel(&primary, "rw");
    let origin = Origin::echo();
    let cluster = format!(
        "redis = \"redis+sentinel://127.0.0.1:{}/rw/0\"\nsync_interval = \"20ms\"",
        sentinel.port
    );
    let gw = Gateway::start(&config(
        origin.addr,
        &cluster,
        "quota = { limit = 1000, period = \"day\" }",
    ));
    assert!(
        wait_until(|| redis_up(&gw) == 1.0),
        "never up through Sentinel"
    );
    let usage = |r: &RedisServer| {
        let days = r.cmd(&["HGETALL", "ringway:usage:team-a"]);
        days.lines().nth(1).and_then(|n| n.parse::<u64>().ok())
    };
    for _ in 0..5 {
        assert_eq!(get(&gw), 200);
    }
    assert!(
        wait_until(|| usage(&primary) == Some(5)),
        "usage not on the primary"
    );
    assert!(wait_until(|| usage(&replica) == Some(5)), "not replicated");
    // Sentinel promotes the replica once it knows it; then the old primary dies.
    assert!(
        wait_until(|| sentinel.cmd(&["SENTINEL", "FAILOVER", "rw"]) == "OK"),
        "Sentinel never accepted a failover"
    );
    let new_primary = replica.port.to_string();
    assert!(wait_until(|| {
        sentinel
            .cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "rw"])
            .ends_with(&new_primary)
    }));
    let mut primary = primary;
    primary.kill();
    // The sync loses its connection, asks the Sentinel again and carries
    // on with the new primary.
    for _ in 0..5 {
        assert_eq!(get(&gw), 200);
    }
    assert!(
        wait_until(|| usage(&replica) == Some(10)),
        "usage after the failover not on the new primary: {:?}",
        usage(&replica)
    );
    assert_eq!(redis_up(&gw), 1.0);
}

#[test]
fn rediss_with_a_test_ca() {
    let dir = TempDir::new();
    let ca = ringway_tests::pki::Ca::new("redis ca");
    let (cert, key) = ca.server(&["127.0.0.1"]).write(&dir.0, "redis");
    let ca_file = dir.0.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let redis = RedisServer::start_tls(cert, key, ca_file.clone());
    let origin = Origin::echo();
    let cluster = format!(
        "redis = \"{}\"\nsync_interval = \"20ms\"\nca = \"{}\"",
        redis.url(),
        ca_file.display()
    );
    let gw = Gateway::start(&config(
        origin.addr,
        &cluster,
        "quota = { limit = 5, period = \"day\" }",
    ));
    assert!(wait_until(|| redis_up(&gw) == 1.0), "{:#?}", gw.log());
    let statuses: Vec<u16> = (0..7).map(|_| get(&gw)).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);
}

#[test]
fn bad_cluster_tables_are_config_errors() {
    let (code, _, err) = check(
        "[cluster]\nredis = \"http://127.0.0.1:6379\"\nsync_interval = \"0s\"\non_redis_down = \"panic\"\n",
    );
    assert_eq!(code, 2);
    for (line, key) in [
        (2, "cluster.redis"),
        (3, "cluster.sync_interval"),
        (4, "cluster.on_redis_down"),
    ] {
        assert!(
            err.contains(&format!("ringway.toml:{line}:")) && err.contains(key),
            "{key}: {err}"
        );
    }
    let (code, _, err) = check("[cluster]\nredis = \"redis://127.0.0.1:1\"\nredis_url = \"x\"\n");
    assert_eq!(code, 2);
    assert!(err.contains("cluster.redis_url"), "{err}");
}
