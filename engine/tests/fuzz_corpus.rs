//! Replays every committed fuzz corpus file (and every committed crash
//! regression) through the fuzz drivers, then a short deterministic mutation
//! run, so CI exercises the codec's fuzz checks without cargo-fuzz.
//! `MUTATIONS=2000000 cargo test --release -p ringway --test fuzz_corpus` runs longer.
//! The real fuzzing: `engine/fuzz/run.sh` (cargo-fuzz, bounded time per target).

#[path = "../fuzz/driver.rs"]
mod driver;

use std::path::PathBuf;

/// A fuzz target: its corpus folder and its driver.
type Target = (&'static str, fn(&[u8]));

const TARGETS: &[Target] = &[
    ("request_head", driver::request_head),
    ("chunked", driver::chunked),
    ("response_head", driver::response_head),
    ("proxy_header", driver::proxy_header),
    ("openapi", driver::openapi),
    ("h2_frames", driver::h2_frames),
    ("h2_fields", driver::h2_fields),
];

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    for dir in [
        root.join("corpus").join(target),
        root.join("regressions").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            let data = std::fs::read(&p).unwrap();
            out.push((p, data));
        }
    }
    out.sort();
    out
}

#[test]
fn replay_corpora_and_regressions() {
    for (target, run) in TARGETS {
        let files = inputs(target);
        assert!(
            files.len() >= 5,
            "{target}: corpus has {} files",
            files.len()
        );
        for (path, data) in files {
            if std::panic::catch_unwind(|| run(&data)).is_err() {
                panic!("{target}: {} fails", path.display());
            }
        }
    }
}

#[test]
fn mutated_corpora() {
    const HTTP: &[u8] = b"\r\n :;,0aAfF\t\x00\x7f-+chunkedContent-LengthTransfer-Encoding";
    // For the importer: YAML's and JSON's punctuation, and what integration URIs are made of.
    const YAML: &[u8] = b"\n :-,[]{}&*!|>'\"#%@?~$/+.0\t\x00\xc3";
    // MUTATIONS is the total per target, spread over its corpus files.
    let total: usize = std::env::var("MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (target, run) in TARGETS {
        let files = inputs(target);
        // The importer compiles a whole config per input: a tenth as many.
        let (total, interesting) = if *target == "openapi" {
            (total / 10, YAML)
        } else {
            (total, HTTP)
        };
        let rounds = (total / files.len().max(1)).max(1);
        for (path, seed) in files {
            for _ in 0..rounds {
                let mut d = seed.clone();
                for _ in 0..(1 + next() % 4) {
                    let r = next() as usize;
                    match r % 4 {
                        0 if !d.is_empty() => {
                            let i = r / 4 % d.len();
                            d[i] = interesting[(r >> 16) % interesting.len()];
                        }
                        1 => {
                            let i = if d.is_empty() {
                                0
                            } else {
                                r / 4 % (d.len() + 1)
                            };
                            d.insert(i, interesting[(r >> 16) % interesting.len()]);
                        }
                        2 if !d.is_empty() => {
                            let i = r / 4 % d.len();
                            d.remove(i);
                        }
                        _ if !d.is_empty() => {
                            let i = r / 4 % d.len();
                            let b = d[i];
                            d.insert(i, b);
                        }
                        _ => {}
                    }
                }
                if std::panic::catch_unwind(|| run(&d)).is_err() {
                    panic!(
                        "{target}: mutation of {} fails: {:?}",
                        path.display(),
                        String::from_utf8_lossy(&d)
                    );
                }
            }
        }
    }
}
