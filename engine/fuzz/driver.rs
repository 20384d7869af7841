//! What each fuzz target checks, shared by the cargo-fuzz targets and by the
//! corpus replay test (`engine/tests/fuzz_corpus.rs`), so CI runs the same
//! assertions on every committed input without cargo-fuzz.

use ringway::h1::Framing;
use ringway::h1::Limits;
use ringway::h1::chunked::{self, ChunkedDecoder, Decoded};
use ringway::h1::request::{self, RequestHead};
use ringway::h1::response::{self, ResponseHead};
use ringway::h1::write::{self, Forward};

/// A request head either fails to parse, or its forwarded form parses again
/// (by our parser and by httparse) to the same method, target and framing:
/// nothing ringway forwards can be read two ways.
pub fn request_head(data: &[u8]) {
    let limits = Limits::default();
    let mut head = RequestHead::default();
    let Ok(true) = request::parse(data, &limits, &mut head) else {
        return;
    };
    assert!(head.head_len <= data.len());
    for h in &head.headers {
        assert!(h.name.end as usize <= head.head_len && h.value.end as usize <= head.head_len);
    }
    let mut out = Vec::new();
    let fwd = Forward {
        method: None,
        trusted_peer: false,
        forwarded: true,
        client_ip: b"192.0.2.1",
        proto: b"http",
        host: None,
        target: None,
        upgrade: head.upgrade.is_some(),
        fields: b"x-request-id: 0123456789abcdef0123456789abcdef\r\n",
        replaced: &[],
        request_id: Some(b"x-request-id"),
        length: None,
    };
    write::request_head(&mut out, data, &head, &fwd);
    let mut again = RequestHead::default();
    let big = Limits {
        max_head_bytes: 1 << 20,
        max_headers: 256,
        max_uri_bytes: 1 << 20,
    };
    match request::parse(&out, &big, &mut again) {
        Ok(true) => {}
        other => panic!(
            "forwarded head does not parse ({other:?}): {:?}",
            String::from_utf8_lossy(&out)
        ),
    }
    assert_eq!(
        again.head_len,
        out.len(),
        "forwarded head has trailing bytes"
    );
    assert_eq!(again.method(&out), head.method(data));
    assert_eq!(again.framing, head.framing);
    if let Framing::Length(n) = head.framing {
        assert_eq!(again.framing, Framing::Length(n));
    }
    let mut slots = [httparse::EMPTY_HEADER; 300];
    let mut req = httparse::Request::new(&mut slots);
    assert!(matches!(req.parse(&out), Ok(httparse::Status::Complete(n)) if n == out.len()));
}

/// The decoder never panics; fed in two pieces it agrees with itself fed
/// whole; and what it decodes, re-encoded, decodes to the same bytes.
pub fn chunked(data: &[u8]) {
    let split = data
        .first()
        .map_or(0, |&b| b as usize % (data.len().max(1)));
    let whole = decode(data, data.len());
    let pieces = decode(data, split.max(1));
    assert_eq!(whole, pieces, "split at {split} changes the result");
    if let Some((body, trailers)) = whole {
        let mut enc = Vec::new();
        chunked::write_chunk(&mut enc, &body);
        chunked::write_last_chunk(&mut enc, &trailers);
        assert_eq!(decode(&enc, enc.len()), Some((body, trailers)));
    }
}

fn decode(input: &[u8], step: usize) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut dec = ChunkedDecoder::default();
    let mut pending = Vec::new();
    let mut body = Vec::new();
    let mut fed = 0;
    loop {
        let (n, d) = dec.decode(&pending).ok()?;
        assert!(n <= pending.len());
        match d {
            Decoded::Data { start, end } => {
                assert!(start <= end && end == n);
                body.extend_from_slice(&pending[start..end]);
                pending.drain(..n);
            }
            Decoded::Done {
                trailer_start,
                trailer_end,
            } => {
                return Some((body, pending[trailer_start..trailer_end].to_vec()));
            }
            Decoded::NeedMore => {
                pending.drain(..n);
                if fed >= input.len() {
                    return None;
                }
                let end = (fed + step).min(input.len());
                pending.extend_from_slice(&input[fed..end]);
                fed = end;
            }
        }
    }
}

/// A response head either fails, or its relayed form parses to the same
/// status and framing.
pub fn response_head(data: &[u8]) {
    let limits = Limits::default();
    let was_head = data.first().is_some_and(|b| b & 1 == 1);
    let mut head = ResponseHead::default();
    let Ok(true) = response::parse(data, &limits, was_head, &mut head) else {
        return;
    };
    let down = match head.framing {
        Framing::None => Framing::None,
        Framing::Length(n) => Framing::Length(n),
        _ => Framing::Chunked,
    };
    let mut out = Vec::new();
    write::response_head(
        &mut out,
        data,
        &head,
        down,
        write::Persist::Default,
        write::Added::default(),
    );
    let mut again = ResponseHead::default();
    let big = Limits {
        max_head_bytes: 1 << 20,
        max_headers: 256,
        max_uri_bytes: 1 << 20,
    };
    match response::parse(&out, &big, was_head, &mut again) {
        Ok(true) => {}
        other => panic!(
            "relayed head does not parse ({other:?}): {:?}",
            String::from_utf8_lossy(&out)
        ),
    }
    assert_eq!(again.status, head.status);
    // A close-delimited body is re-framed as chunked for HTTP/1.1 clients.
    let want = match head.framing {
        Framing::UntilClose => Framing::Chunked,
        f => f,
    };
    if head.status != 101 {
        assert_eq!(again.framing, want);
    }
}

/// A PROXY protocol header either is refused, incomplete, or whole; a whole
/// one parses the same from exactly its own bytes, and the addresses it
/// names survive being written again in either version.
pub fn proxy_header(data: &[u8]) {
    use ringway::proxy_protocol::{self, Header};
    let Ok(Some(h)) = proxy_protocol::parse(data) else {
        return;
    };
    assert!(h.len <= data.len());
    assert_eq!(proxy_protocol::parse(&data[..h.len]), Ok(Some(h)));
    for n in 0..h.len {
        assert!(
            !matches!(proxy_protocol::parse(&data[..n]), Ok(Some(_))),
            "a {n}-byte prefix is already whole"
        );
    }
    if let Some((client, local)) = h.addresses {
        let writers: [fn(&mut Vec<u8>, _, _); 2] =
            [proxy_protocol::write_v1, proxy_protocol::write_v2];
        for write in writers {
            let mut out = Vec::new();
            write(&mut out, client, local);
            let again = proxy_protocol::parse(&out);
            assert_eq!(
                again,
                Ok(Some(Header {
                    len: out.len(),
                    addresses: h.addresses
                }))
            );
        }
    }
}

/// An Amazon API Gateway export (any bytes, read as JSON or YAML): the
/// importer answers a snapshot, or errors whose lines lie inside the text;
/// it never panics. Every node's JSON pointer leads back to a node.
pub fn openapi(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(root) = ringway::openapi::tree::parse(&text) {
        let mut keys = Vec::new();
        root.pointers("", &mut keys);
        for (span, pointer) in &keys {
            assert!(span.start <= span.end && span.end <= text.len(), "{span:?}");
            assert!(root.at_pointer(pointer).is_some(), "{pointer}");
        }
    }
    let lines = text.matches('\n').count() + 2;
    if let Err(e) = ringway::openapi::from_text(std::path::Path::new("fuzz.yaml"), &text) {
        for d in &e.diagnostics {
            assert!(d.line <= lines, "line {} of {lines}: {e}", d.line);
        }
    }
}

/// HTTP/2 frames from a client (any bytes after the preface): the
/// connection state either takes them or names a connection error; it
/// never panics, and every request head it makes parses as HTTP/1.1.
pub fn h2_frames(data: &[u8]) {
    use ringway::h2::session::{H2Settings, Session};
    let cfg = H2Settings {
        max_concurrent_streams: 4,
        initial_window: 1024,
        max_header_list: 2048,
        max_resets_per_second: 50,
        max_control_frames_per_second: 50,
        ..H2Settings::default()
    };
    let mut s = Session::new(cfg, 4096, -1);
    s.start();
    // A SETTINGS frame first, so the rest reaches the frame handlers.
    let mut input = vec![0, 0, 0, 4, 0, 0, 0, 0, 0];
    input.extend_from_slice(data);
    let _ = s.receive(&input);
    let limits = ringway::h1::Limits::default();
    for id in std::mem::take(&mut s.started) {
        let st = s.streams.get(&id).expect("a started stream is open");
        let mut head = ringway::h1::request::RequestHead::default();
        assert!(
            matches!(
                ringway::h1::request::parse(&st.head, &limits, &mut head),
                Ok(true) | Err(_)
            ),
            "{:?}",
            String::from_utf8_lossy(&st.head)
        );
        s.finish(id, false);
    }
}

/// An HPACK header block: decoded into an HTTP/1.1 head or refused; a head
/// it makes is whole, with no CR or LF inside a field.
pub fn h2_fields(data: &[u8]) {
    use ringway::h2::fields::{Scratch, decode_request};
    let mut dec = ringway_hpack::Decoder::with_limit(4096);
    let mut scratch = Scratch::default();
    let mut out = Vec::new();
    if decode_request(&mut dec, &mut scratch, data, (4096, true), &mut out).is_ok() {
        assert!(out.ends_with(b"\r\n\r\n"));
        let mut head = ringway::h1::request::RequestHead::default();
        let parsed = ringway::h1::request::parse(&out, &ringway::h1::Limits::default(), &mut head);
        assert!(
            !matches!(parsed, Ok(false)),
            "{:?}",
            String::from_utf8_lossy(&out)
        );
    }
}
