//! Byte scanning eight bytes at a time (SWAR, in safe code): finding the end
//! of a path segment, and of the path before its query.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `word` equal to `byte`. Exact up to the first
/// match; bytes above it may show false positives (borrow propagation), which
/// only ever follow a true match.
#[inline]
fn matches(word: u64, byte: u8) -> u64 {
    let x = word ^ (ONES * u64::from(byte));
    x.wrapping_sub(ONES) & !x & HIGH
}

#[inline]
fn load(chunk: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(chunk);
    u64::from_le_bytes(bytes)
}

/// The end of the segment starting at `start` (the next `/` or the end of
/// `path`) and whether the segment holds a `%`.
#[inline]
pub(crate) fn segment_end(path: &[u8], start: usize) -> (usize, bool) {
    let mut i = start;
    let mut encoded = false;
    while let Some(chunk) = path.get(i..i + 8) {
        let word = load(chunk);
        let slash = matches(word, b'/');
        let percent = matches(word, b'%');
        if slash != 0 {
            let k = slash.trailing_zeros() / 8;
            let below = (1u64 << (k * 8)) - 1;
            return (i + k as usize, encoded | (percent & below != 0));
        }
        encoded |= percent != 0;
        i += 8;
    }
    while let Some(&b) = path.get(i) {
        if b == b'/' {
            break;
        }
        encoded |= b == b'%';
        i += 1;
    }
    (i, encoded)
}

/// The position of the first `byte` in `hay`, if any.
#[inline]
pub(crate) fn find(hay: &[u8], byte: u8) -> Option<usize> {
    let mut i = 0;
    while let Some(chunk) = hay.get(i..i + 8) {
        let found = matches(load(chunk), byte);
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    hay[i..].iter().position(|&b| b == byte).map(|p| i + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_segment_end(path: &[u8], start: usize) -> (usize, bool) {
        let end = path[start..]
            .iter()
            .position(|&b| b == b'/')
            .map_or(path.len(), |p| start + p);
        (end, path[start..end].contains(&b'%'))
    }

    #[test]
    fn agrees_with_bytewise_scan() {
        let samples: &[&[u8]] = &[
            b"",
            b"/",
            b"abc",
            b"abcdefgh",
            b"abcdefghi/j",
            b"a%2fb/c",
            b"abcdefg%/x",
            b"abcdefgh/%",
            b"%%%%%%%%%%/",
            b"0123456789abcdef0123/x",
            b"\x80\x7f/\xff%",
            b"////////////////",
            b"aaaaaaa%aaaaaaaaaa/a",
            b"a/b?c=d/e?f",
            b"\x2e\x2f\x2f",
        ];
        for sample in samples {
            for start in 0..=sample.len() {
                assert_eq!(
                    segment_end(sample, start),
                    naive_segment_end(sample, start),
                    "{sample:?} {start}"
                );
            }
            for byte in [b'?', b'/', b'%', 0x80] {
                assert_eq!(
                    find(sample, byte),
                    sample.iter().position(|&b| b == byte),
                    "{sample:?}"
                );
            }
        }
    }
}
