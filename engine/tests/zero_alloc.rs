//! The hot path allocates nothing per request once warm: parsing a request
//! head into reused storage, routing it, expanding a backend template and
//! writing the upstream head into a reused buffer; picking an upstream
//! target. Checked with a counting global allocator (this test binary
//! only) that counts per thread, so a test counts its own allocations only
//! (the harness's threads, and tests run side by side, are not counted).

use ringway::h1::Limits;
use ringway::h1::request::{self, RequestHead};
use ringway::h1::write::{self, Forward};
use ringway::proxy::balance::Balancer;
use ringway_router::{Lookup, RouteSpec, Router, UriTemplate};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

struct Counting;
thread_local! {
    // Const-initialised, no destructor: safe to touch from the allocator.
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

/// Allocations made so far by this thread.
fn allocations() -> usize {
    ALLOCS.with(Cell::get)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
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

#[test]
fn parse_route_expand_and_write_allocate_nothing_when_warm() {
    let router = Router::compile(
        &[
            RouteSpec::new("/{proxy+}", &["ANY"]),
            RouteSpec::new("/users/{id}", &["GET", "DELETE"]),
            RouteSpec::new("/users/{id}/orders/{order}", &["GET"]),
        ],
        None,
    )
    .unwrap();
    let params: Vec<&str> = router.route_params(2).collect();
    let template = UriTemplate::parse("http://app/v2/users/{id}/orders/{order}", &params).unwrap();
    let raw = b"GET /users/42/orders/7?expand=items HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: test/1.0\r\nAccept: */*\r\nX-Forwarded-For: 10.0.0.1\r\nCookie: a=b\r\n\r\n";
    let limits = Limits::default();
    let mut head = RequestHead::default();
    let mut target = Vec::with_capacity(256);
    let mut out = Vec::with_capacity(4096);

    let mut one_request = || {
        assert_eq!(request::parse(raw, &limits, &mut head), Ok(true));
        let host = head.host.map(|h| h.get(raw));
        let Lookup::Found(m) = router.find(head.method(raw), host, head.path(raw)) else {
            panic!("no route")
        };
        assert_eq!(m.route, 2);
        target.clear();
        template
            .expand(head.path(raw), &m, &router, head.query(raw), &mut target)
            .unwrap();
        out.clear();
        let fwd = Forward {
            method: None,
            trusted_peer: false,
            forwarded: true,
            client_ip: b"127.0.0.1",
            proto: b"http",
            host: None,
            target: Some(&target),
            upgrade: false,
            fields: b"",
            replaced: &[],
            request_id: Some(b"x-request-id"),
            length: None,
        };
        write::request_head(&mut out, raw, &head, &fwd);
    };
    one_request(); // warm: head storage and buffers reach their working size
    let before = allocations();
    for _ in 0..1000 {
        one_request();
    }
    let after = allocations();
    assert_eq!(
        after - before,
        0,
        "{} allocations in 1000 requests",
        after - before
    );
    assert!(
        out.starts_with(b"GET /v2/users/42/orders/7?expand=items HTTP/1.1\r\n"),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

#[test]
fn picks_allocate_nothing_when_warm() {
    for balance in ["round_robin", "least_request", "hash", "random"] {
        let text = format!(
            "[[upstream]]\nname = \"app\"\ntargets = [\"127.0.0.1:1\", {{ addr = \"127.0.0.1:2\", weight = 3 }}, \"127.0.0.1:3\"]\nbalance = \"{balance}\"\nhash_key = \"$request.path\"\n\n[upstream.outlier]\nconsecutive_5xx = 1000000\n\n[[route]]\npath = \"/\"\nupstream = \"app\"\n"
        );
        let snap = ringway::config::from_str(Path::new("t.toml"), &text).unwrap();
        let up = &snap.upstreams[0];
        let mut b = Balancer::new(&snap, 7);
        let mut one = |k: u64| {
            let t = b.pick(&snap, 0, 0, Some(k));
            b.start_attempt(0, t);
            b.judge(up, 0, t, Ok(if k.is_multiple_of(2) { 200 } else { 503 }));
            b.end_attempt(0, t);
            let again = b.pick(&snap, 0, 1 << t, Some(k));
            assert_ne!(again, t, "{balance}: a retry goes elsewhere");
        };
        one(1);
        let before = allocations();
        for k in 0..1000 {
            one(k);
        }
        let after = allocations();
        assert_eq!(
            after - before,
            0,
            "{balance}: {} allocations in 1000 picks",
            after - before
        );
    }
}
