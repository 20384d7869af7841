//! What an exact limit costs a request: one shared GCRA bucket (a CAS on a
//! word of its own cache line), alone and with a second thread hammering
//! the same bucket (the worst case for contention: every request on one
//! key), and a keyed bucket (client IP) among 10,000 keys.
//!
//! Run: `cargo bench -p ringway-bench --bench limits -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use ringway::limit::{self, Bucket, Keyed, Rate};

/// A limit no benchmark reaches: every take succeeds, so the loop measures
/// the admission path, not refusals.
fn generous() -> Rate {
    Rate::new(1e9, 1e9)
}

fn one_bucket(c: &mut Criterion) {
    let mut g = c.benchmark_group("limits/bucket");
    let bucket = Arc::new(Bucket::default());
    g.bench_function("take, one thread", |b| {
        b.iter(|| black_box(&bucket).take(generous(), limit::now()))
    });
    // A second core spending from the same bucket all the time.
    let stop = Arc::new(AtomicBool::new(false));
    let other = {
        let (bucket, stop) = (bucket.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = bucket.take(generous(), limit::now());
            }
        })
    };
    g.bench_function("take, same bucket busy on another core", |b| {
        b.iter(|| black_box(&bucket).take(generous(), limit::now()))
    });
    stop.store(true, Ordering::Relaxed);
    other.join().unwrap();
}

fn keyed(c: &mut Criterion) {
    let mut g = c.benchmark_group("limits/keyed");
    let map = Keyed::new(generous(), 100_000);
    let keys: Vec<[u8; 4]> = (0..10_000u32)
        .map(|i| (0x0a00_0000 | i).to_be_bytes())
        .collect();
    let now = limit::now();
    for k in &keys {
        let _ = map.take(k, now);
    }
    let mut i = 0usize;
    g.bench_function("take, client IP among 10,000 keys", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            map.take(black_box(&keys[i]), limit::now())
        })
    });
    g.bench_function("take, one key", |b| {
        b.iter(|| map.take(black_box(&keys[0]), limit::now()))
    });
}

criterion_group!(benches, one_bucket, keyed);
criterion_main!(benches);
