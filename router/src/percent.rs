//! Percent-encoding (RFC 3986 §2.1), without allocation.
//!
//! Decoding is strict: a `%` must be followed by two hex digits, otherwise the
//! input is rejected ([`InvalidEncoding`]). `+` is not special anywhere (it is
//! a space only in HTML forms, which routing has nothing to do with).
//! [`decode_query_value`] is the one lenient exception, for query values
//! compared as a client's browser or SDK may have written them.

use std::cmp::Ordering;
use std::fmt;

/// A `%` not followed by two hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidEncoding;

impl fmt::Display for InvalidEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid percent-encoding")
    }
}

impl std::error::Error for InvalidEncoding {}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The decoded bytes of `raw`, one by one; an invalid escape yields
/// `Err(InvalidEncoding)` and ends the iteration.
#[derive(Debug, Clone)]
pub struct Decoded<'a> {
    raw: &'a [u8],
    pos: usize,
}

/// Iterates over the percent-decoded bytes of `raw`.
pub fn decode(raw: &[u8]) -> Decoded<'_> {
    Decoded { raw, pos: 0 }
}

impl Iterator for Decoded<'_> {
    type Item = Result<u8, InvalidEncoding>;

    fn next(&mut self) -> Option<Self::Item> {
        let b = *self.raw.get(self.pos)?;
        if b != b'%' {
            self.pos += 1;
            return Some(Ok(b));
        }
        let pair = (self.raw.get(self.pos + 1), self.raw.get(self.pos + 2));
        if let (Some(&hi), Some(&lo)) = pair
            && let (Some(hi), Some(lo)) = (hex_value(hi), hex_value(lo))
        {
            self.pos += 3;
            return Some(Ok(hi << 4 | lo));
        }
        self.pos = self.raw.len();
        Some(Err(InvalidEncoding))
    }
}

/// Appends the percent-decoded `raw` to `out`. On error `out` may hold a
/// partial result.
pub fn decode_into(raw: &[u8], out: &mut Vec<u8>) -> Result<(), InvalidEncoding> {
    for b in decode(raw) {
        out.push(b?);
    }
    Ok(())
}

/// Byte equality, inlined: route keys and methods are short, so a plain loop
/// beats a call to `memcmp`.
#[inline]
pub(crate) fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// Compares the decoded form of `raw` with `literal` (already decoded).
/// `None` when `raw` is not validly encoded (it then equals no literal).
pub(crate) fn cmp_decoded(raw: &[u8], literal: &[u8]) -> Option<Ordering> {
    if !raw.contains(&b'%') {
        return Some(raw.cmp(literal));
    }
    let mut lit = literal.iter();
    for b in decode(raw) {
        let b = b.ok()?;
        match lit.next() {
            None => return Some(Ordering::Greater),
            Some(&l) if l != b => return Some(b.cmp(&l)),
            Some(_) => {}
        }
    }
    Some(if lit.next().is_some() {
        Ordering::Less
    } else {
        Ordering::Equal
    })
}

/// A set of bytes that may appear unencoded.
pub struct AsciiSet([bool; 256]);

const fn build_set(extra: &[u8]) -> AsciiSet {
    let mut set = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        set[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_' || c == b'~';
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        set[extra[i] as usize] = true;
        i += 1;
    }
    AsciiSet(set)
}

/// What a path segment may carry unencoded: RFC 3986 `pchar` minus `;`
/// (some servers cut a segment at `;`, so `..;` could act as `..`).
pub(crate) const SEGMENT: AsciiSet = build_set(b"!$&'()*+,=:@");

/// What a query parameter value may carry unencoded: `pchar`, `/` and `?`
/// minus the separators `&`, `=`, `+` and `;`.
pub(crate) const QUERY_VALUE: AsciiSet = build_set(b"!$'()*,:@/?");

/// The unreserved characters only (RFC 3986 §2.3): a query name or value
/// made of arbitrary text.
pub const UNRESERVED: AsciiSet = build_set(b"");

/// RFC 3986 `pchar`: what a path segment may carry unencoded.
pub const PCHAR: AsciiSet = build_set(b"!$&'()*+,;=:@");

/// `pchar` and `%`: path text that is already percent-encoded, kept as it is.
pub const PCHAR_ENCODED: AsciiSet = build_set(b"!$&'()*+,;=:@%");

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Appends `v`, each byte percent-encoded unless `set` allows it.
pub fn encode_into(v: &[u8], set: &AsciiSet, out: &mut Vec<u8>) {
    for &b in v {
        encode_byte(b, set, out);
    }
}

/// Decodes a query value into `out` the lenient way clients expect: `%XX`
/// is a byte, `+` a space, and a `%` without two hex digits stays a `%`.
/// The decoded length, or `None` if it does not fit in `out`.
pub fn decode_query_value(raw: &[u8], out: &mut [u8]) -> Option<usize> {
    let (mut i, mut n) = (0, 0);
    while i < raw.len() {
        let byte = match raw[i] {
            b'%' => match (
                raw.get(i + 1).copied().and_then(hex_value),
                raw.get(i + 2).copied().and_then(hex_value),
            ) {
                (Some(hi), Some(lo)) => {
                    i += 2;
                    hi << 4 | lo
                }
                _ => b'%',
            },
            b'+' => b' ',
            b => b,
        };
        *out.get_mut(n)? = byte;
        n += 1;
        i += 1;
    }
    Some(n)
}

/// Appends `b`, percent-encoded unless `set` allows it.
pub(crate) fn encode_byte(b: u8, set: &AsciiSet, out: &mut Vec<u8>) {
    if set.0[b as usize] {
        out.push(b);
    } else {
        out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_valid_and_rejects_invalid() {
        let table: &[(&[u8], Option<&[u8]>)] = &[
            (b"abc", Some(b"abc")),
            (b"a%20b", Some(b"a b")),
            (b"%2f%2F", Some(b"//")),
            (b"%e2%82%AC", Some("€".as_bytes())),
            (b"+", Some(b"+")),
            (b"%", None),
            (b"%2", None),
            (b"%zz", None),
            (b"a%g1", None),
        ];
        for &(raw, want) in table {
            let mut out = Vec::new();
            let got = decode_into(raw, &mut out).ok().map(|()| out);
            assert_eq!(got.as_deref(), want, "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn compares_decoded() {
        assert_eq!(cmp_decoded(b"pets", b"pets"), Some(Ordering::Equal));
        assert_eq!(cmp_decoded(b"p%65ts", b"pets"), Some(Ordering::Equal));
        assert_eq!(cmp_decoded(b"p%65t", b"pets"), Some(Ordering::Less));
        assert_eq!(cmp_decoded(b"p%65tsx", b"pets"), Some(Ordering::Greater));
        assert_eq!(cmp_decoded(b"p%6", b"pets"), None);
    }

    #[test]
    fn encodes() {
        let mut out = Vec::new();
        for &b in b"a b/;%~" {
            encode_byte(b, &SEGMENT, &mut out);
        }
        assert_eq!(out, b"a%20b%2F%3B%25~");
        out.clear();
        encode_into(b"a b;%/", &PCHAR, &mut out);
        assert_eq!(out, b"a%20b;%25%2F");
        out.clear();
        encode_into(b"a%20;/", &PCHAR_ENCODED, &mut out);
        assert_eq!(out, b"a%20;%2F");
        out.clear();
        encode_into(b"a=b&c", &UNRESERVED, &mut out);
        assert_eq!(out, b"a%3Db%26c");
    }

    #[test]
    fn decodes_query_values_leniently() {
        let mut out = [0u8; 8];
        let table: &[(&[u8], Option<&[u8]>)] = &[
            (b"a%20b+c", Some(b"a b c")),
            (b"100%", Some(b"100%")),
            (b"%zz%4", Some(b"%zz%4")),
            (b"%41%42", Some(b"AB")),
            (b"123456789", None),
        ];
        for &(raw, want) in table {
            let got = decode_query_value(raw, &mut out).map(|n| &out[..n]);
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(raw));
        }
    }
}
