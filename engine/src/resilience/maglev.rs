//! The Maglev lookup table (Eisenbud et al., NSDI 2016) behind
//! `balance = "hash"`: built once per snapshot (at load, reload, or a DNS
//! change), looked up with one index per request.
//!
//! Each target has a permutation of the table's slots, derived from its
//! name (not its position), so the same target set always gives the same
//! table and adding a target takes about 1/N of the slots from the others.
//! Targets take turns filling their next free preferred slot; a target of
//! weight w takes w turns per round, so its share of slots is ~w/Σw.

use super::hash64;

/// Slots in every table (a prime). One size for every target count, so
/// that a change of targets never remaps keys by resizing: 128 KiB per
/// hashed upstream, and even shares up to a few hundred targets.
pub const SLOTS: usize = 65521;

/// Builds the table for targets named `names` with `weights` (≥ 1). Each
/// slot holds a target index.
pub fn build(names: &[String], weights: &[u32]) -> Box<[u16]> {
    let n = names.len();
    if n == 0 {
        return Box::default();
    }
    let m = SLOTS;
    let perm: Vec<(usize, usize)> = names
        .iter()
        .map(|name| {
            let offset = (hash64(name.as_bytes(), 0x6d61_676c) % m as u64) as usize;
            let skip = (hash64(name.as_bytes(), 0x6c65_7621) % (m as u64 - 1)) as usize + 1;
            (offset, skip)
        })
        .collect();
    let mut next = vec![0usize; n];
    let mut table = vec![u16::MAX; m];
    let mut filled = 0;
    'fill: loop {
        for i in 0..n {
            for _ in 0..weights[i].max(1) {
                let (offset, skip) = perm[i];
                let mut c = (offset + next[i] * skip) % m;
                while table[c] != u16::MAX {
                    next[i] += 1;
                    c = (offset + next[i] * skip) % m;
                }
                table[c] = i as u16;
                next[i] += 1;
                filled += 1;
                if filled == m {
                    break 'fill;
                }
            }
        }
    }
    table.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{i}:8080")).collect()
    }

    #[test]
    fn shares_follow_weights() {
        let t = build(&names(3), &[1, 1, 2]);
        let count = |i: u16| t.iter().filter(|&&x| x == i).count() as f64 / t.len() as f64;
        assert!((count(0) - 0.25).abs() < 0.02, "{}", count(0));
        assert!((count(2) - 0.5).abs() < 0.02, "{}", count(2));
    }

    #[test]
    fn adding_a_target_moves_about_one_nth() {
        let before = build(&names(4), &[1; 4]);
        let after = build(&names(5), &[1; 5]);
        let moved = before
            .iter()
            .zip(after.iter())
            .filter(|(a, b)| a != b)
            .count() as f64
            / before.len() as f64;
        assert!((0.15..0.3).contains(&moved), "moved {moved}");
    }
}
