//! What picking an upstream target costs a request, per `balance`
//! algorithm, with 3 and with 16 targets (health table read, ejection
//! state, the pick itself): `Balancer::pick` on a compiled snapshot.
//!
//! Run: `cargo bench -p ringway-bench --bench balance -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use ringway::proxy::balance::Balancer;
use ringway::snapshot::Snapshot;

fn snapshot(balance: &str, targets: usize) -> Snapshot {
    let list: Vec<String> = (0..targets)
        .map(|i| {
            format!(
                "{{ addr = \"127.0.0.1:{}\", weight = {} }}",
                9000 + i,
                1 + i % 3
            )
        })
        .collect();
    let hash = if balance == "hash" {
        "hash_key = \"$request.path\"\n"
    } else {
        ""
    };
    let text = format!(
        "[[upstream]]\nname = \"app\"\ntargets = [{}]\nbalance = \"{balance}\"\n{hash}\n[upstream.outlier]\nconsecutive_5xx = 5\n\n[[route]]\npath = \"/\"\nupstream = \"app\"\n",
        list.join(", ")
    );
    ringway::config::from_str(Path::new("bench.toml"), &text).expect("a valid config")
}

fn pick(c: &mut Criterion) {
    let mut g = c.benchmark_group("balance/pick");
    for targets in [3, 16] {
        for balance in ["round_robin", "least_request", "hash", "random"] {
            let snap = snapshot(balance, targets);
            let mut b = Balancer::new(&snap, 7);
            let mut key = 0u64;
            g.bench_function(format!("{balance}, {targets} targets"), |bench| {
                bench.iter(|| {
                    key = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
                    black_box(b.pick(black_box(&snap), 0, 0, Some(key)))
                })
            });
        }
    }
}

criterion_group!(benches, pick);
criterion_main!(benches);
