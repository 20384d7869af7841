//! A worker's cache of verified tokens, so a token seen again costs a hash
//! lookup and a byte comparison instead of a signature check (RS256 and
//! ES256 take tens of microseconds; a proxied request takes about ten).
//!
//! Only tokens that passed every check are stored, with what must be
//! re-checked on each use (`exp`, `nbf`) and the forwarded claim field lines
//! ready to copy. A hit compares the full token bytes: the hash only finds
//! the slot. Two halves (young, old) bound it: inserts go to the young half;
//! when it is full the old half is dropped and the young one becomes old; a
//! hit in the old half moves the entry back to the young one. That keeps
//! tokens in use and forgets the rest, with O(1) work and no allocation on a
//! hit once both halves have their capacity. The owner clears the cache when
//! its key set changes.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

/// Tokens kept per half (so at most twice this many in all).
pub const HALF_ENTRIES: usize = 512;
/// Token and field bytes kept per half, approximately.
pub const HALF_BYTES: usize = 512 * 1024;
/// Longer tokens are checked every time, never stored.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// How much of a token's end (its signature) is hashed.
const HASHED_TAIL: usize = 64;

/// A verified token: what a hit needs.
pub struct Entry {
    /// The token, then the forwarded field lines (one allocation).
    data: Box<[u8]>,
    token_len: usize,
    pub exp: f64,
    pub nbf: Option<f64>,
}

impl Entry {
    pub fn new(token: &[u8], fields: &[u8], exp: f64, nbf: Option<f64>) -> Entry {
        let mut data = Vec::with_capacity(token.len() + fields.len());
        data.extend_from_slice(token);
        data.extend_from_slice(fields);
        Entry {
            data: data.into_boxed_slice(),
            token_len: token.len(),
            exp,
            nbf,
        }
    }

    fn token(&self) -> &[u8] {
        &self.data[..self.token_len]
    }

    /// The forwarded claims as upstream field lines (`name: value\r\n` each).
    pub fn fields(&self) -> &[u8] {
        &self.data[self.token_len..]
    }
}

/// The map's keys are already keyed hashes: use them as they are.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Half = HashMap<u64, Entry, BuildHasherDefault<Prehashed>>;

#[derive(Default)]
pub struct TokenCache {
    young: Half,
    old: Half,
    young_bytes: usize,
    /// Per cache, random: which slot a token lands in cannot be chosen from outside.
    keys: RandomState,
}

impl TokenCache {
    fn slot(&self, token: &[u8]) -> u64 {
        let tail = &token[token.len().saturating_sub(HASHED_TAIL)..];
        self.keys.hash_one((token.len(), tail))
    }

    /// The entry of exactly this token, if cached.
    pub fn get(&mut self, token: &[u8]) -> Option<&Entry> {
        let k = self.slot(token);
        if self.young.get(&k).is_some_and(|e| e.token() == token) {
            return self.young.get(&k);
        }
        if self.old.get(&k).is_none_or(|e| e.token() != token) {
            return None;
        }
        let e = self.old.remove(&k)?;
        self.put(k, e);
        self.young.get(&k)
    }

    /// Stores a verified token (unless it is too long to keep).
    pub fn insert(&mut self, entry: Entry) {
        if entry.token_len > MAX_TOKEN_BYTES {
            return;
        }
        let k = self.slot(entry.token());
        self.put(k, entry);
    }

    pub fn remove(&mut self, token: &[u8]) {
        let k = self.slot(token);
        for half in [&mut self.young, &mut self.old] {
            if half.get(&k).is_some_and(|e| e.token() == token) {
                half.remove(&k);
            }
        }
    }

    /// Forgets every token (the key set changed).
    pub fn clear(&mut self) {
        self.young.clear();
        self.old.clear();
        self.young_bytes = 0;
    }

    pub fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn put(&mut self, k: u64, e: Entry) {
        let size = e.data.len();
        if self.young.len() >= HALF_ENTRIES || self.young_bytes + size > HALF_BYTES {
            std::mem::swap(&mut self.young, &mut self.old);
            self.young.clear();
            self.young_bytes = 0;
        }
        if self.young.capacity() < HALF_ENTRIES {
            self.young.reserve(HALF_ENTRIES);
        }
        self.young_bytes += size;
        self.young.insert(k, e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(i: usize) -> Vec<u8> {
        format!("header.payload.signature-{i:08}-{}", "x".repeat(i % 7)).into_bytes()
    }

    #[test]
    fn hits_compare_the_whole_token() {
        let mut c = TokenCache::default();
        c.insert(Entry::new(b"a.b.sig", b"x-user-id: 7\r\n", 10.0, None));
        assert_eq!(c.get(b"a.b.sig").unwrap().fields(), b"x-user-id: 7\r\n");
        // Same tail (the part hashed), different head: a miss.
        assert!(c.get(b"A.b.sig").is_none());
        assert!(c.get(b"a.b.si").is_none());
        c.remove(b"a.b.sig");
        assert!(c.get(b"a.b.sig").is_none());
    }

    #[test]
    fn bounded_and_tokens_in_use_stay() {
        let mut c = TokenCache::default();
        let hot = token(usize::MAX / 2);
        c.insert(Entry::new(&hot, b"", 1.0, None));
        for i in 0..10 * HALF_ENTRIES {
            c.insert(Entry::new(&token(i), b"", 1.0, None));
            assert!(c.len() <= 2 * HALF_ENTRIES);
            if i % 100 == 0 {
                assert!(c.get(&hot).is_some(), "the token in use was evicted at {i}");
            }
        }
        assert!(c.get(&token(0)).is_none(), "an unused token stayed");
        c.clear();
        assert!(c.is_empty());
    }

    #[test]
    fn bytes_are_bounded_too() {
        let mut c = TokenCache::default();
        let big = vec![b'x'; MAX_TOKEN_BYTES];
        for i in 0..1000 {
            let mut t = big.clone();
            t[..8].copy_from_slice(&(i as u64).to_le_bytes());
            t[MAX_TOKEN_BYTES - 8..].copy_from_slice(&(i as u64).to_le_bytes());
            c.insert(Entry::new(&t, b"", 1.0, None));
        }
        assert!(c.len() * MAX_TOKEN_BYTES <= 2 * HALF_BYTES, "{}", c.len());
        c.insert(Entry::new(&vec![b'y'; MAX_TOKEN_BYTES + 1], b"", 1.0, None));
        assert!(c.get(&vec![b'y'; MAX_TOKEN_BYTES + 1]).is_none());
    }
}
