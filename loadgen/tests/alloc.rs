//! Steady state allocates nothing per request: a run of 6 000 requests
//! allocates about as much as a run of 1 000 (setup only). The server here
//! is deliberately allocation-free per request, so every allocation the
//! counting allocator sees beyond setup would be the load generator's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};

use ringway_load::{LoadConfig, Stop};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Answers every `\r\n\r\n`-terminated request (no bodies) with a fixed
/// response, from fixed buffers.
fn start_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                let mut buf = [0u8; 4096];
                let mut matched = 0; // bytes of "\r\n\r\n" seen in a row
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    for &b in &buf[..n] {
                        matched = match (matched, b) {
                            (0 | 2, b'\r') => matched + 1,
                            (1 | 3, b'\n') => matched + 1,
                            (_, b'\r') => 1,
                            _ => 0,
                        };
                        if matched == 4 {
                            matched = 0;
                            if stream.write_all(RESPONSE).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    port
}

fn allocations_for(port: u16, requests: u64, pipeline: usize) -> u64 {
    let cfg = LoadConfig {
        connections: 4,
        threads: 2,
        pipeline,
        stop: Stop::Requests(requests),
        ..LoadConfig::new(format!("http://127.0.0.1:{port}/"))
    };
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let report = ringway_load::run(&cfg).unwrap();
    let used = ALLOCATIONS.load(Ordering::SeqCst) - before;
    assert_eq!(report.requests, requests);
    used
}

#[test]
fn no_allocation_per_request() {
    let port = start_server();
    for pipeline in [1, 4] {
        allocations_for(port, 100, pipeline); // warm up lazily initialised state
        let small = allocations_for(port, 1_000, pipeline);
        let large = allocations_for(port, 6_000, pipeline);
        eprintln!("pipeline {pipeline}: {small} allocations for 1000 requests, {large} for 6000");
        // 5 000 more requests; allow a little slack for scheduler noise.
        assert!(
            large <= small + 50,
            "pipeline {pipeline}: {small} allocations for 1000, {large} for 6000"
        );
    }
}
