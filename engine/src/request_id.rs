//! Request ids: each request gets one (`x-request-id` by default, the name
//! is `[server] request_id`). A client's own id is kept when it is short and
//! plain; otherwise ringway makes one up. The id goes upstream, onto every
//! response the client gets (relayed or ringway's own), into the access log
//! and into mapping values (`$context.requestId`).
//!
//! Ids are made per worker without shared state: 128 bits printed as 32 hex
//! digits, a random per-worker half and a per-worker counter scrambled by a
//! bijection, so two ids of one process never collide and do not read as a
//! sequence.

use crate::h1::request::RequestHead;
use std::cell::Cell;
use std::ops::Range;

/// The longest client-supplied id kept.
pub const MAX_LEN: usize = 128;

/// One worker's id source.
pub struct Ids {
    /// The random per-worker half, already printed (it never changes).
    high: [u8; 16],
    key: u64,
    counter: Cell<u64>,
}

impl Ids {
    /// A source whose ids differ from every other worker's and process's (random seeds).
    pub fn new(worker: usize) -> Ids {
        use std::hash::{BuildHasher, Hasher};
        let seed = |salt: u64| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(salt);
            h.write_usize(worker);
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            h.finish()
        };
        let mut high = [0u8; 16];
        hex(&mut high, seed(1));
        Ids {
            high,
            key: seed(2),
            counter: Cell::new(0),
        }
    }

    /// Appends a fresh id (32 lower-case hex digits).
    pub fn next_into(&self, out: &mut Vec<u8>) {
        let n = self.counter.get().wrapping_add(1);
        self.counter.set(n);
        let mut text = [0u8; 32];
        text[..16].copy_from_slice(&self.high);
        hex(&mut text[16..], mix(n ^ self.key));
        out.extend_from_slice(&text);
    }
}

/// splitmix64's finalizer: a bijection on u64, so distinct counters stay distinct.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn hex(out: &mut [u8], v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, d) in out.iter_mut().enumerate() {
        *d = DIGITS[((v >> ((15 - i) * 4)) & 0xf) as usize];
    }
}

/// A client's id is kept when it is 1..=128 bytes of letters, digits and `-_.:+=/@`.
pub fn acceptable(v: &[u8]) -> bool {
    !v.is_empty()
        && v.len() <= MAX_LEN
        && v.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-_.:+=/@".contains(&b))
}

/// Chooses this request's id and writes its field line (`name: id` CRLF)
/// into `fields` (what every response carries) and into `upstream` (what the
/// upstream request carries). `head` is `None` when the request head did not
/// parse. Returns where the id is in `fields`.
pub fn assign(
    ids: &Ids,
    name: &[u8],
    req: Option<(&[u8], &RequestHead)>,
    fields: &mut Vec<u8>,
    upstream: &mut Vec<u8>,
) -> Range<usize> {
    let start = fields.len();
    fields.extend_from_slice(name);
    fields.extend_from_slice(b": ");
    let id_start = fields.len();
    let theirs = req.and_then(|(buf, head)| {
        let mut same = head
            .headers
            .iter()
            .filter(|h| h.name.get(buf).eq_ignore_ascii_case(name));
        // Exactly one acceptable value; two ids or a strange one get a fresh id.
        match (same.next(), same.next()) {
            (Some(h), None) => Some(h.value.get(buf)).filter(|v| acceptable(v)),
            _ => None,
        }
    });
    match theirs {
        Some(v) => fields.extend_from_slice(v),
        None => ids.next_into(fields),
    }
    let id = id_start..fields.len();
    fields.extend_from_slice(b"\r\n");
    upstream.extend_from_slice(&fields[start..]);
    id
}

/// Where the id is in `fields` when [`assign`] wrote it first (empty when ids are off).
pub fn range(fields: &[u8], name: Option<&[u8]>) -> Range<usize> {
    match name {
        Some(n) if fields.len() > n.len() + 2 => {
            let start = n.len() + 2;
            let end = fields[start..]
                .iter()
                .position(|&b| b == b'\r')
                .map_or(start, |e| start + e);
            start..end
        }
        _ => 0..0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h1::{Limits, request};

    #[test]
    fn ids_are_32_hex_digits_and_distinct() {
        let ids = Ids::new(0);
        let other = Ids::new(1);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let mut a = Vec::new();
            ids.next_into(&mut a);
            assert_eq!(a.len(), 32);
            assert!(a.iter().all(u8::is_ascii_hexdigit));
            assert!(seen.insert(a));
            let mut b = Vec::new();
            other.next_into(&mut b);
            assert!(seen.insert(b));
        }
    }

    fn head(raw: &[u8]) -> RequestHead {
        let mut h = RequestHead::default();
        assert_eq!(request::parse(raw, &Limits::default(), &mut h), Ok(true));
        h
    }

    #[test]
    fn a_plain_client_id_is_kept_and_others_replaced() {
        let ids = Ids::new(0);
        let cases: [(&[u8], Option<&[u8]>); 5] = [
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: abc-123\r\n\r\n",
                Some(b"abc-123"),
            ),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", None),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nx-request-id: a b\r\n\r\n",
                None,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nx-request-id: \"q\"\r\n\r\n",
                None,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nx-request-id: a\r\nx-request-id: b\r\n\r\n",
                None,
            ),
        ];
        for (raw, kept) in cases {
            let h = head(raw);
            let (mut f, mut u) = (b"X: 1\r\n".to_vec(), Vec::new());
            let r = assign(&ids, b"x-request-id", Some((raw, &h)), &mut f, &mut u);
            let id = f[r.clone()].to_vec();
            match kept {
                Some(k) => assert_eq!(id, k),
                None => assert_eq!(id.len(), 32, "{}", String::from_utf8_lossy(raw)),
            }
            let line = [b"x-request-id: ".as_slice(), &id, b"\r\n"].concat();
            assert_eq!(&f[6..], line.as_slice());
            assert_eq!(u, line);
            assert_eq!(range(&u, Some(b"x-request-id")), 14..14 + id.len());
        }
    }

    #[test]
    fn long_ids_are_replaced() {
        assert!(acceptable(&[b'a'; MAX_LEN]));
        assert!(!acceptable(&[b'a'; MAX_LEN + 1]));
        assert!(!acceptable(b""));
        assert!(!acceptable(b"a\rb"));
    }
}
