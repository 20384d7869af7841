//! The two HPACK primitives both encoders in the workspace write with (the
//! gateway's response blocks and ringway-load's request blocks): integers
//! with an N-bit prefix (RFC 7541 §5.1) and string literals without
//! Huffman coding (§5.2). Neither encoder uses a dynamic table, so their
//! blocks are valid whatever table size the peer announced.

/// Appends `value` as an HPACK integer with a `prefix_bits`-bit prefix;
/// `first` holds the pattern bits above the prefix.
pub fn put_integer(out: &mut Vec<u8>, first: u8, prefix_bits: u8, mut value: usize) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a string literal, not Huffman coded.
pub fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    put_integer(out, 0, 7, s.len());
    out.extend_from_slice(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7541 Appendix C.1.
    #[test]
    fn integers_as_the_rfc_encodes_them() {
        for (first, bits, value, want) in [
            (0, 5, 10, &[0x0a][..]),
            (0, 5, 1337, &[0x1f, 0x9a, 0x0a][..]),
            (0, 8, 42, &[0x2a][..]),
            (0x80, 7, 126, &[0xfe][..]),
            (0, 7, 1000, &[127, 233, 6][..]),
        ] {
            let mut out = Vec::new();
            put_integer(&mut out, first, bits, value);
            assert_eq!(out, want, "{value} with a {bits}-bit prefix");
        }
        let mut out = Vec::new();
        put_string(&mut out, b"abc");
        assert_eq!(out, b"\x03abc");
    }
}
