//! The policy chain on the hot path: a route with CORS, IP rules, an API key
//! (SHA-256 + plan bucket + quota), a per-client throttle and validation
//! allocates nothing per request once warm, and a route without policies
//! skips the chain. Prints the time per chain run (meaningful with
//! `cargo test --release -p ringway --test policy_cost -- --nocapture`).

use ringway::h1::Limits;
use ringway::h1::request::{self, RequestHead};
use ringway::policy::{self, Verdict, WorkerState};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

struct Counting;

thread_local! {
    /// Allocations made by this thread (the test harness's own threads do not count).
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const CONFIG: &str = r#"
[server]
workers = 1
trusted_proxies = ["127.0.0.1/32"]

[[upstream]]
name = "app"
targets = ["127.0.0.1:9"]

[[usage_plan]]
name = "basic"
rate = 1e12
burst = 1e12
quota = { limit = 1000000000, period = "day" }

[[api_key]]
name = "client-a"
value = "k-123"
plan = "basic"

[[route]]
path = "/{proxy+}"
upstream = "app"

[route.cors]
allow_origins = ["https://app.example.com", "https://*.example.com"]
allow_methods = ["GET", "POST"]
allow_headers = ["content-type", "authorization", "x-api-key"]
expose_headers = ["x-request-id"]
allow_credentials = true
max_age = "10m"

[route.ip]
allow = ["10.0.0.0/8", "127.0.0.1/32"]

[route.api_key]
source = "header:x-api-key"

[route.throttle]
rate = 1e12
burst = 1e12
key = "client_ip"

[route.validate]
required_headers = ["x-api-key"]

[[route]]
path = "/plain"
upstream = "app"

[[route]]
path = "/cors"
upstream = "app"
[route.cors]
allow_origins = ["https://app.example.com", "https://*.example.com"]
allow_credentials = true

[[route]]
path = "/ip"
upstream = "app"
[route.ip]
allow = ["10.0.0.0/8", "127.0.0.1/32"]

[[route]]
path = "/key"
upstream = "app"
[route.api_key]

[[route]]
path = "/throttle"
upstream = "app"
[route.throttle]
rate = 1e12
key = "client_ip"

[[route]]
path = "/validate"
upstream = "app"
[route.validate]
required_headers = ["x-api-key"]
"#;

#[test]
fn the_chain_allocates_nothing_when_warm() {
    let snap = ringway::config::from_str(std::path::Path::new("t.toml"), CONFIG).unwrap();
    let mut state = WorkerState::new(&snap);
    let raw = b"GET /users/42 HTTP/1.1\r\nHost: api.example.com\r\nOrigin: https://shop.example.com\r\nX-API-Key: k-123\r\nX-Forwarded-For: 10.1.2.3\r\nAccept: */*\r\n\r\n";
    let mut head = RequestHead::default();
    assert_eq!(request::parse(raw, &Limits::default(), &mut head), Ok(true));
    assert!(snap.routes[1].policies.is_empty());
    let mut fields = Vec::with_capacity(1024);
    let mut upstream = Vec::with_capacity(1024);
    let peer = "127.0.0.1".parse().unwrap();
    let mut run = |state: &mut WorkerState, route: usize, what: &str| {
        let chain = &snap.routes[route].policies;
        let mut one = |state: &mut WorkerState| {
            fields.clear();
            upstream.clear();
            let req = policy::Request {
                buf: raw,
                head: &head,
                peer,
                route,
                path: b"/users/42",
                found: None,
            };
            let v = policy::run(chain, &snap, state, 0, &req, &mut fields, &mut upstream);
            assert_eq!(v, Verdict::Forward);
        };
        one(state); // warm: the client's bucket is created
        let before = allocs();
        let n = 100_000;
        let t = Instant::now();
        for _ in 0..n {
            one(state);
        }
        let took = t.elapsed();
        let count = allocs() - before;
        assert_eq!(count, 0, "{what}: {count} allocations in {n} chain runs");
        println!(
            "{what:<44} {:>6.0} ns per request",
            took.as_nanos() as f64 / n as f64
        );
    };
    for (route, what) in [
        (2, "CORS (wildcard origin, credentials)"),
        (3, "IP rules (trusted proxy, X-Forwarded-For)"),
        (4, "API key (SHA-256, lookup, plan bucket, quota)"),
        (5, "throttle by client IP"),
        (6, "validate (one required header)"),
        (0, "CORS + IP + API key + throttle + validate"),
    ] {
        run(&mut state, route, what);
    }

    let text = String::from_utf8(fields.clone()).unwrap();
    assert!(text.contains("Access-Control-Allow-Origin: https://shop.example.com\r\n"));
}
