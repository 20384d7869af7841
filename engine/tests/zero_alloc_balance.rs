//! Picking a target allocates nothing: every `balance` algorithm, the
//! attempt counts and outlier judging, once warm. Checked with a counting
//! global allocator (this test binary only).

use ringway::proxy::balance::Balancer;
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
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
            b.judge(up, 0, t, Ok(if k % 2 == 0 { 200 } else { 503 }));
            b.end_attempt(0, t);
            let again = b.pick(&snap, 0, 1 << t, Some(k));
            assert_ne!(again, t, "{balance}: a retry goes elsewhere");
        };
        one(1);
        let before = ALLOCS.load(Ordering::Relaxed);
        for k in 0..1000 {
            one(k);
        }
        let after = ALLOCS.load(Ordering::Relaxed);
        assert_eq!(
            after - before,
            0,
            "{balance}: {} allocations in 1000 picks",
            after - before
        );
    }
}
