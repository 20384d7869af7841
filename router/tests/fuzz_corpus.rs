//! Replays every committed fuzz corpus file (`fuzz/corpus/match_and_expand/`)
//! through the fuzz driver, so CI exercises it without cargo-fuzz.

#[path = "../fuzz/driver.rs"]
mod driver;

#[test]
fn replay_match_and_expand_corpus() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/match_and_expand");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).expect("corpus dir") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let result = std::panic::catch_unwind(|| driver::run(&data));
        assert!(result.is_ok(), "corpus file {} fails", path.display());
        count += 1;
    }
    assert!(count >= 5, "corpus has {count} files");
}

/// A small deterministic mutation run over the corpus: byte flips and
/// insertions of the bytes the syntax cares about.
#[test]
fn mutated_corpus() {
    const INTERESTING: &[u8] = b"{}/+%.\\?\n 0aA:*[]";
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/match_and_expand");
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    // `MUTATIONS=100000 cargo test --release --test fuzz_corpus` runs longer.
    let rounds = std::env::var("MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    for entry in std::fs::read_dir(dir).expect("corpus dir") {
        let seed = std::fs::read(entry.unwrap().path()).unwrap();
        for _ in 0..rounds {
            let mut data = seed.clone();
            for _ in 0..1 + next() % 8 {
                let at = (next() as usize) % (data.len() + 1);
                let byte = INTERESTING[(next() as usize) % INTERESTING.len()];
                match next() % 3 {
                    0 if at < data.len() => data[at] = byte,
                    1 if at < data.len() => {
                        data.remove(at);
                    }
                    _ => data.insert(at, byte),
                }
            }
            let result = std::panic::catch_unwind(|| driver::run(&data));
            assert!(
                result.is_ok(),
                "mutated input fails: {:?}",
                String::from_utf8_lossy(&data)
            );
        }
    }
}
