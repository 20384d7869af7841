//! The decoding side of HPACK (RFC 7541 §3, §4, §6): walks a header block,
//! keeps the dynamic table in step with the peer's encoder, and hands each
//! field to a callback, borrowed (from the block, the tables, or a reused
//! Huffman scratch buffer). The only allocation is one per entry the peer
//! adds to the dynamic table.

use std::collections::VecDeque;

use crate::STATIC;

/// Per-entry overhead in the table size accounting (RFC 7541 §4.1).
const ENTRY_OVERHEAD: usize = 32;
/// Integers above this are a decoding error (a header block is at most
/// 64 KiB here, so nothing legitimate comes close).
const MAX_INTEGER: usize = 1 << 24;

/// A dynamic table entry: name and value.
type Entry = (Box<[u8]>, Box<[u8]>);

/// Why a header block could not be decoded: a COMPRESSION_ERROR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HpackError {
    /// The block ended inside a representation.
    Truncated,
    /// Index 0, or past the end of the tables.
    Index,
    /// An integer longer than any legitimate one.
    Integer,
    /// Bad Huffman code or padding.
    Huffman,
    /// A dynamic table size update above our SETTINGS_HEADER_TABLE_SIZE.
    TableSize,
    /// A dynamic table size update after a field (§4.2: only at the start of a block).
    LateSizeUpdate,
}

/// One connection's HPACK decoder.
pub struct Decoder {
    /// Newest first: dynamic index 62 is `dynamic[0]`.
    dynamic: VecDeque<Entry>,
    /// Current size of the dynamic table (§4.1).
    size: usize,
    /// Current maximum, set by the encoder's size updates.
    max_size: usize,
    /// The most the encoder may set (our SETTINGS_HEADER_TABLE_SIZE).
    limit: usize,
    /// Huffman-decoded name and value of the current field.
    name_buf: Vec<u8>,
    value_buf: Vec<u8>,
}

impl Decoder {
    /// A decoder allowing the server a dynamic table of up to `limit`
    /// bytes (our SETTINGS_HEADER_TABLE_SIZE).
    pub fn with_limit(limit: usize) -> Self {
        Decoder {
            dynamic: VecDeque::new(),
            size: 0,
            max_size: limit,
            limit,
            name_buf: Vec::new(),
            value_buf: Vec::new(),
        }
    }

    /// Decodes `block`, calling `field(name, value)` for each header field.
    /// After an error the decoder is out of step and the connection is done.
    pub fn decode(
        &mut self,
        block: &[u8],
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), HpackError> {
        let mut at = 0;
        let mut field_seen = false;
        while let Some(&first) = block.get(at) {
            let update = first & 0xe0 == 0x20;
            if update && field_seen {
                return Err(HpackError::LateSizeUpdate);
            }
            field_seen |= !update;
            if first & 0x80 != 0 {
                // Indexed header field (§6.1).
                let index = integer(block, &mut at, 7)?;
                let (name, value) = entry(&self.dynamic, index)?;
                field(name, value);
            } else if first & 0xe0 == 0x20 {
                // Dynamic table size update (§6.3).
                let size = integer(block, &mut at, 5)?;
                if size > self.limit {
                    return Err(HpackError::TableSize);
                }
                self.max_size = size;
                self.evict(0);
            } else {
                // Literal with incremental indexing (§6.2.1, 6-bit prefix),
                // without indexing or never indexed (§6.2.2-3, 4-bit prefix).
                let indexing = first & 0x40 != 0;
                let index = integer(block, &mut at, if indexing { 6 } else { 4 })?;
                if index == 0 {
                    string(block, &mut at, &mut self.name_buf)?;
                } else {
                    let (name, _) = entry(&self.dynamic, index)?;
                    self.name_buf.clear();
                    self.name_buf.extend_from_slice(name);
                }
                string(block, &mut at, &mut self.value_buf)?;
                field(&self.name_buf, &self.value_buf);
                if indexing {
                    self.insert();
                }
            }
        }
        Ok(())
    }

    /// Adds the current field to the dynamic table (§4.4).
    fn insert(&mut self) {
        let size = self.name_buf.len() + self.value_buf.len() + ENTRY_OVERHEAD;
        if size > self.max_size {
            // Larger than the table: the table empties, nothing is added.
            self.dynamic.clear();
            self.size = 0;
            return;
        }
        self.evict(size);
        self.dynamic.push_front((
            self.name_buf.as_slice().into(),
            self.value_buf.as_slice().into(),
        ));
        self.size += size;
    }

    /// Evicts the oldest entries until `room` more bytes fit.
    fn evict(&mut self, room: usize) {
        while self.size + room > self.max_size {
            match self.dynamic.pop_back() {
                Some((n, v)) => self.size -= n.len() + v.len() + ENTRY_OVERHEAD,
                None => break,
            }
        }
    }
}

/// The table entry at `index` (1-based: static, then dynamic).
fn entry(dynamic: &VecDeque<Entry>, index: usize) -> Result<(&[u8], &[u8]), HpackError> {
    match index {
        0 => Err(HpackError::Index),
        1..=61 => {
            let (name, value) = STATIC[index - 1];
            Ok((name.as_bytes(), value.as_bytes()))
        }
        _ => dynamic
            .get(index - 62)
            .map(|(n, v)| (&n[..], &v[..]))
            .ok_or(HpackError::Index),
    }
}

/// Reads an integer with a `prefix`-bit prefix at `block[*at]` (§5.1).
fn integer(block: &[u8], at: &mut usize, prefix: u32) -> Result<usize, HpackError> {
    let max = (1usize << prefix) - 1;
    let first = *block.get(*at).ok_or(HpackError::Truncated)?;
    *at += 1;
    let mut value = usize::from(first) & max;
    if value < max {
        return Ok(value);
    }
    let mut shift = 0;
    loop {
        let byte = *block.get(*at).ok_or(HpackError::Truncated)?;
        *at += 1;
        value += usize::from(byte & 0x7f) << shift;
        if value > MAX_INTEGER {
            return Err(HpackError::Integer);
        }
        if byte & 0x80 == 0 {
            return Ok(value);
        }
        shift += 7;
    }
}

/// Reads a string literal at `block[*at]` into `out` (§5.2).
fn string(block: &[u8], at: &mut usize, out: &mut Vec<u8>) -> Result<(), HpackError> {
    let huffman = block.get(*at).ok_or(HpackError::Truncated)? & 0x80 != 0;
    let len = integer(block, at, 7)?;
    let raw = block.get(*at..*at + len).ok_or(HpackError::Truncated)?;
    *at += len;
    out.clear();
    if huffman {
        httlib_huffman::decode(raw, out, httlib_huffman::DecoderSpeed::FiveBits)
            .map_err(|_| HpackError::Huffman)?;
    } else {
        out.extend_from_slice(raw);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(decoder: &mut Decoder, block: &[u8]) -> Result<Vec<(String, String)>, HpackError> {
        let mut out = Vec::new();
        decoder.decode(block, |n, v| {
            out.push((
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ))
        })?;
        Ok(out)
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// RFC 7541 Appendix C.6: three responses with Huffman coding and a
    /// 256-byte table, so entries are evicted.
    #[test]
    fn rfc_7541_c6_responses_with_huffman_and_eviction() {
        let hex = |s: &str| -> Vec<u8> {
            let s: String = s.split_whitespace().collect();
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let mut d = Decoder::with_limit(256);
        let first = hex(
            "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 \
             2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        );
        assert_eq!(
            fields(&mut d, &first).unwrap(),
            pairs(&[
                (":status", "302"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("location", "https://www.example.com"),
            ])
        );
        assert_eq!(d.size, 222);
        let second = hex("4883 640e ff c1 c0 bf");
        assert_eq!(
            fields(&mut d, &second).unwrap(),
            pairs(&[
                (":status", "307"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("location", "https://www.example.com"),
            ])
        );
        assert_eq!(d.size, 222);
        let third = hex(
            "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab \
             77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f \
             9587 3160 65c0 03ed 4ee5 b106 3d50 07",
        );
        assert_eq!(
            fields(&mut d, &third).unwrap(),
            pairs(&[
                (":status", "200"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
                ("location", "https://www.example.com"),
                ("content-encoding", "gzip"),
                (
                    "set-cookie",
                    "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"
                ),
            ])
        );
        assert_eq!(d.size, 215);
    }

    #[test]
    fn rejects_malformed_blocks() {
        let table: &[(&[u8], HpackError)] = &[
            (&[0x80], HpackError::Index),
            (&[0xbe], HpackError::Index), // 62: empty dynamic table
            (&[0x40, 0x05, b'a'], HpackError::Truncated),
            (&[0x0f], HpackError::Truncated),
            (&[0x3f, 0xe2, 0x1f], HpackError::TableSize), // 4096 + 1
            (&[0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], HpackError::Integer),
            (&[0x00, 0x81, 0xff], HpackError::Huffman), // EOS-ish padding longer than 7 bits
            (&[0x82, 0x20], HpackError::LateSizeUpdate), // a size update after :method GET
        ];
        for (block, want) in table {
            assert_eq!(
                fields(&mut Decoder::with_limit(4096), block),
                Err(*want),
                "{block:?}"
            );
        }
    }

    /// Random blocks never panic the decoder.
    #[test]
    fn random_blocks_never_panic() {
        let mut seed: u64 = 0x853c_49e6_748f_ea9b;
        let mut next = move || {
            seed ^= seed >> 12;
            seed ^= seed << 25;
            seed ^= seed >> 27;
            seed.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let mut d = Decoder::with_limit(128);
        for _ in 0..20_000 {
            let len = (next() % 24) as usize;
            let block: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if d.decode(&block, |_, _| {}).is_err() {
                d = Decoder::with_limit(128);
            }
            assert!(d.size <= d.max_size);
        }
    }
}
