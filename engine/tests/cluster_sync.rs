//! The cluster sync protocol against a real redis-server: two "instances"
//! (two fleets with their own sync threads, as two processes would have)
//! share a quota exactly and a bucket within the documented bound, and
//! survive Redis going away and coming back.

#[path = "../../tests/src/redis.rs"]
#[allow(dead_code)]
mod redis_server;

use redis_server::RedisServer;
use ringway::cluster::{ClusterConfig, Fleet, OnDown};
use ringway::limit::Rate;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(10);

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn fleet(redis: &RedisServer, prefix: &str) -> Arc<Fleet> {
    let f = Fleet::new(ClusterConfig {
        shown: redis.url(),
        url: redis.url(),
        prefix: prefix.into(),
        interval: Duration::from_millis(20),
        on_down: OnDown::Local,
        ca: None,
    });
    ringway::cluster::sync::spawn(f.clone()).unwrap();
    f
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// One instance's admission of one request against a fleet quota, as the
/// API-key policy does it: within the grant, or wait for the next sync
/// while the fleet may have more, else refuse.
fn admit(f: &Fleet, q: &ringway::cluster::FleetQuota, used: &AtomicU64, window: u64) -> bool {
    let deadline = Instant::now() + WAIT;
    loop {
        let u = used.load(Ordering::Relaxed);
        if u < q.ceiling(f, window, u) {
            used.fetch_add(1, Ordering::Relaxed);
            q.admitted();
            return true;
        }
        if !q.may_grow(f) {
            return false;
        }
        assert!(Instant::now() < deadline, "no grant in time");
        f.want_sync();
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn two_instances_share_a_quota_exactly() {
    let redis = RedisServer::start();
    let (a, b) = (fleet(&redis, "t1:"), fleet(&redis, "t1:"));
    wait_until("both up", || a.is_up() && b.is_up());
    let (qa, qb) = (a.quota("k", 100), b.quota("k", 100));
    let (ua, ub) = (AtomicU64::new(0), AtomicU64::new(0));
    let mut admitted = 0;
    let mut refused_after_last = 0;
    for i in 0..300 {
        let ok = if i % 3 == 0 {
            admit(&b, &qb, &ub, 7)
        } else {
            admit(&a, &qa, &ua, 7)
        };
        if ok {
            admitted += 1;
            assert_eq!(
                refused_after_last, 0,
                "request {i} admitted after a refusal"
            );
        } else if admitted == 100 {
            refused_after_last += 1;
        }
    }
    assert_eq!(admitted, 100);
    assert!(refused_after_last >= 190);
    assert_eq!(redis.cmd(&["GET", "t1:quota:k:7"]), "100");
    // Usage reached Redis, per day.
    wait_until("usage pushed", || {
        let days = redis.cmd(&["HGETALL", "t1:usage:k"]);
        days.lines().nth(1).and_then(|n| n.parse::<u64>().ok()) == Some(100)
    });
}

#[test]
fn a_shared_bucket_holds_within_the_bound() {
    let redis = RedisServer::start();
    let (a, b) = (fleet(&redis, "t2:"), fleet(&redis, "t2:"));
    wait_until("both up", || a.is_up() && b.is_up());
    // 100 per second, burst 10, for 1 s at about twice the rate on each.
    let rate = Rate::new(100.0, 10.0);
    let (ba, bb) = (a.bucket("plan:x", rate), b.bucket("plan:x", rate));
    let start = Instant::now();
    let mut admitted = 0u64;
    let mut sent = 0u64;
    while start.elapsed() < Duration::from_secs(1) {
        let now = ringway::limit::now();
        for bucket in [&ba, &bb] {
            sent += 1;
            if bucket.take(&a, now).is_ok() {
                admitted += 1;
            }
        }
        std::thread::sleep(Duration::from_micros(2500));
    }
    let secs = start.elapsed().as_secs_f64();
    let allowed = 10.0 + 100.0 * secs;
    // The documented bound: instances × (burst + rate × interval) over the limit.
    let bound = allowed + 2.0 * (10.0 + 100.0 * 0.02);
    assert!(
        sent as f64 > 1.5 * allowed,
        "the test must offer more than the limit"
    );
    assert!(
        (admitted as f64) <= bound,
        "admitted {admitted}, allowed {allowed:.0}, bound {bound:.0}"
    );
    assert!(
        (admitted as f64) >= 0.8 * allowed,
        "admitted {admitted} of {allowed:.0}"
    );
}

#[test]
fn redis_down_then_back() {
    let mut redis = RedisServer::start();
    let a = fleet(&redis, "t3:");
    wait_until("up", || a.is_up());
    redis.kill();
    wait_until("down", || !a.is_up());
    assert!(a.stats.outages.load(Ordering::Relaxed) >= 1);
    // Serving on local shares meanwhile: the quota ceiling is a share of what was left.
    let q = a.quota("k", 50);
    assert!(q.ceiling(&a, 3, 0) > 0);
    redis.run();
    wait_until("up again", || a.is_up());
    // And a flushed Redis is just an empty one.
    redis.cmd(&["FLUSHALL"]);
    let before = a.stats.syncs.load(Ordering::Relaxed);
    wait_until("syncs after a flush", || {
        a.stats.syncs.load(Ordering::Relaxed) > before + 2
    });
    assert!(a.is_up());
}
