//! The cluster sync protocol against a real redis-server: two "instances"
//! (two fleets with their own sync threads, as two processes would have)
//! share a quota exactly and a bucket within the documented bound, and
//! survive Redis going away and coming back.

#[path = "../../tests/src/redis.rs"]
#[allow(dead_code)]
mod redis_server;

use redis_server::RedisServer;
use ringway::cluster::{ClusterConfig, Fleet, OnDown};
use ringway::limit::{Ledger, Rate};
use std::sync::Arc;
use std::sync::atomic::Ordering;
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
        sentinel: None,
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
/// API-key policy does it: lease one from the instance's ledger within its
/// grant, or wait while the fleet may have more (a top-up or a reclaim of
/// the other instance's unused grant), else refuse.
fn admit(f: &Fleet, q: &ringway::cluster::FleetQuota, ledger: &Ledger, window: u64) -> bool {
    let deadline = Instant::now() + WAIT;
    loop {
        if ledger.lease(window, q.ceiling(f, window), 1) == 1 {
            q.admitted();
            return true;
        }
        if !q.top_up(f) {
            return false;
        }
        assert!(Instant::now() < deadline, "no grant in time");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn two_instances_share_a_quota_exactly() {
    let redis = RedisServer::start();
    let (a, b) = (fleet(&redis, "t1:"), fleet(&redis, "t1:"));
    wait_until("both up", || a.is_up() && b.is_up());
    let (la, lb) = (Arc::new(Ledger::default()), Arc::new(Ledger::default()));
    let (qa, qb) = (a.quota("k", 100, &la), b.quota("k", 100, &lb));
    // Every request is admitted until the fleet has spent 100, whichever
    // instance it reaches: the last grants held by one are handed back to
    // the other when it runs short. Then every request is refused.
    let mut admitted = 0;
    for i in 0..300 {
        let ok = if i % 3 == 0 {
            admit(&b, &qb, &lb, 7)
        } else {
            admit(&a, &qa, &la, 7)
        };
        assert_eq!(ok, i < 100, "request {i}: admitted {ok}");
        admitted += ok as u64;
    }
    assert_eq!(admitted, 100);
    assert_eq!(redis.cmd(&["GET", "t1:quota:k:7:spent"]), "100");
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
    let q = a.quota("k", 50, &Arc::new(Ledger::default()));
    assert!(q.ceiling(&a, 3) > 0);
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
