//! The request side of HPACK (RFC 7541): a header block encoder that uses
//! only the static table — an indexed field where name and value match an
//! entry, otherwise a literal without indexing (with an indexed name where
//! the name is in the table). With no dynamic table the block is the same
//! for every request, so it is built once per target and sent verbatim.

use super::STATIC;
use ringway_hpack::{put_integer, put_string};

/// Header fields an HTTP/2 request must not carry (RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// Appends one header field (`name` must be lowercase).
pub fn put_field(out: &mut Vec<u8>, name: &str, value: &str) {
    if let Some(i) = STATIC.iter().position(|e| *e == (name, value)) {
        // Indexed header field (§6.1).
        put_integer(out, 0x80, 7, i + 1);
        return;
    }
    // Literal header field without indexing (§6.2.2).
    match STATIC.iter().position(|(n, _)| *n == name) {
        Some(i) => put_integer(out, 0, 4, i + 1),
        None => {
            out.push(0);
            put_string(out, name.as_bytes());
        }
    }
    put_string(out, value.as_bytes());
}

/// What a request looks like on every stream.
pub struct RequestHead<'a> {
    pub method: &'a str,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// `host[:port]`; a `Host` header in `headers` replaces it.
    pub authority: &'a str,
    pub path: &'a str,
    /// Extra headers as the user gave them (any case).
    pub headers: &'a [(String, String)],
    /// Length of the request body, if any (sent as `content-length`
    /// unless `headers` has one).
    pub body_len: Option<usize>,
}

/// Encodes the header block of a request.
pub fn encode_request(req: &RequestHead<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    let lower: Vec<(String, &str)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
        .filter(|(k, _)| !CONNECTION_SPECIFIC.contains(&k.as_str()))
        .collect();
    let given = |name: &str| lower.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
    put_field(&mut out, ":method", req.method);
    put_field(&mut out, ":scheme", req.scheme);
    put_field(
        &mut out,
        ":authority",
        given("host").unwrap_or(req.authority),
    );
    put_field(&mut out, ":path", req.path);
    if given("user-agent").is_none() {
        put_field(&mut out, "user-agent", "ringway-load");
    }
    if let Some(len) = req.body_len
        && given("content-length").is_none()
    {
        put_field(&mut out, "content-length", &len.to_string());
    }
    for (name, value) in &lower {
        if name != "host" {
            put_field(&mut out, name, value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_names_are_in_table_order() {
        // Spot checks against RFC 7541 Appendix A.
        for (index, name) in [
            (1, ":authority"),
            (28, "content-length"),
            (38, "host"),
            (58, "user-agent"),
            (61, "www-authenticate"),
        ] {
            assert_eq!(STATIC[index - 1].0, name);
        }
    }

    #[test]
    fn integers_match_rfc_7541_examples() {
        // C.1.1: 10 with a 5-bit prefix; C.1.2: 1337 with a 5-bit prefix.
        let table: &[(usize, &[u8])] = &[
            (10, &[0x0a]),
            (1337, &[0x1f, 0x9a, 0x0a]),
            (31, &[0x1f, 0x00]),
        ];
        for (value, want) in table {
            let mut out = Vec::new();
            put_integer(&mut out, 0, 5, *value);
            assert_eq!(out, *want, "{value}");
        }
    }

    #[test]
    fn fields_encode_as_expected() {
        let table: &[(&str, &str, &[u8])] = &[
            (":method", "GET", &[0x82]),
            (":method", "POST", &[0x83]),
            (":path", "/", &[0x84]),
            (":scheme", "https", &[0x87]),
            // Indexed name (1 = :authority), literal value.
            (":authority", "a:1", &[0x01, 3, b'a', b':', b'1']),
            // Index 58 does not fit in 4 bits: 15 + 43.
            ("user-agent", "x", &[0x0f, 43, 1, b'x']),
            // New name.
            ("x-k", "v", &[0x00, 3, b'x', b'-', b'k', 1, b'v']),
        ];
        for (name, value, want) in table {
            let mut out = Vec::new();
            put_field(&mut out, name, value);
            assert_eq!(out, *want, "{name}: {value}");
        }
    }

    /// Our decoder reads our request blocks back.
    #[test]
    fn a_request_block_decodes_back() {
        let headers = vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("Connection".to_string(), "close".to_string()),
            ("X-Long".to_string(), "v".repeat(300)),
        ];
        let block = encode_request(&RequestHead {
            method: "POST",
            scheme: "http",
            authority: "127.0.0.1:8080",
            path: "/items?x=1",
            headers: &headers,
            body_len: Some(12),
        });
        let mut fields = Vec::new();
        super::super::Decoder::with_limit(4096)
            .decode(&block, |name, value| {
                fields.push((
                    String::from_utf8(name.to_vec()).unwrap(),
                    String::from_utf8(value.to_vec()).unwrap(),
                ))
            })
            .unwrap();
        let want: Vec<(String, String)> = [
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", "127.0.0.1:8080"),
            (":path", "/items?x=1"),
            ("user-agent", "ringway-load"),
            ("content-length", "12"),
            ("content-type", "application/json"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([("x-long".to_string(), "v".repeat(300))])
        .collect();
        assert_eq!(fields, want);
    }
}
