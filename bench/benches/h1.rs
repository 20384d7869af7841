//! The HTTP/1.1 codec's hot path: parsing request heads (typical and
//! header-heavy), writing the forwarded upstream head, parsing response
//! heads, and decoding and re-encoding chunked bodies.
//!
//! Run: `cargo bench -p ringway-bench --bench h1 -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringway::h1::Limits;
use ringway::h1::chunked::{self, ChunkedDecoder, Decoded};
use ringway::h1::request::{self, RequestHead};
use ringway::h1::response::{self, ResponseHead};
use ringway::h1::write::{self, Forward};

const TYPICAL: &[u8] = b"GET /api/v1/users/42/orders?limit=10&page=2 HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0\r\nAccept: application/json\r\nAccept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\nAuthorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.sig\r\nX-Request-Id: 5f2b8c1e-9d4a-4e6b-8f3a-1c2d3e4f5a6b\r\nConnection: keep-alive\r\n\r\n";

fn heavy() -> Vec<u8> {
    let mut r = b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n".to_vec();
    for i in 0..60 {
        r.extend_from_slice(format!("X-Header-{i}: value-{i}-with-some-length\r\n").as_bytes());
    }
    r.extend_from_slice(b"\r\n");
    r
}

fn parse_requests(c: &mut Criterion) {
    let limits = Limits::default();
    let mut g = c.benchmark_group("h1/request");
    let heavy = heavy();
    for (name, raw) in [("typical", TYPICAL), ("60 headers", heavy.as_slice())] {
        let mut head = RequestHead::default();
        g.throughput(Throughput::Bytes(raw.len() as u64));
        g.bench_function(format!("parse {name}"), |b| {
            b.iter(|| request::parse(black_box(raw), &limits, &mut head).unwrap())
        });
    }
    let mut head = RequestHead::default();
    request::parse(TYPICAL, &limits, &mut head).unwrap();
    let mut out = Vec::with_capacity(4096);
    g.throughput(Throughput::Bytes(TYPICAL.len() as u64));
    g.bench_function("write forwarded head (typical)", |b| {
        b.iter(|| {
            out.clear();
            let fwd = Forward {
                method: None,
                trusted_peer: false,
                forwarded: true,
                client_ip: b"192.0.2.7",
                proto: b"http",
                host: None,
                target: None,
                upgrade: false,
                fields: b"",
                replaced: &[],
                request_id: None,
                length: None,
            };
            write::request_head(&mut out, black_box(TYPICAL), &head, &fwd);
        })
    });
    // What request ids add: choosing the id (a new one: the client's is not
    // taken here, the header name differs) and carrying its field line.
    let ids = ringway::request_id::Ids::new(0);
    let (mut fields, mut upstream) = (Vec::with_capacity(256), Vec::with_capacity(256));
    g.bench_function("write forwarded head (typical) + new request id", |b| {
        b.iter(|| {
            out.clear();
            fields.clear();
            upstream.clear();
            ringway::request_id::assign(
                &ids,
                b"x-correlation-id",
                Some((black_box(TYPICAL), &head)),
                &mut fields,
                &mut upstream,
            );
            let fwd = Forward {
                method: None,
                trusted_peer: false,
                forwarded: true,
                client_ip: b"192.0.2.7",
                proto: b"http",
                host: None,
                target: None,
                upgrade: false,
                fields: &upstream,
                replaced: &[],
                request_id: Some(b"x-correlation-id"),
                length: None,
            };
            write::request_head(&mut out, black_box(TYPICAL), &head, &fwd);
        })
    });
    g.finish();
}

fn parse_responses(c: &mut Criterion) {
    let raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1234\r\nCache-Control: no-cache\r\nDate: Fri, 27 Nov 2026 10:00:00 GMT\r\nServer: app\r\nX-Request-Id: abc\r\n\r\n";
    let limits = Limits::default();
    let mut head = ResponseHead::default();
    let mut g = c.benchmark_group("h1/response");
    g.throughput(Throughput::Bytes(raw.len() as u64));
    g.bench_function("parse typical", |b| {
        b.iter(|| response::parse(black_box(raw), &limits, false, &mut head).unwrap())
    });
    g.finish();
}

fn chunked_codec(c: &mut Criterion) {
    // 256 KiB in 4 KiB chunks.
    let mut body = Vec::new();
    for _ in 0..64 {
        chunked::write_chunk(&mut body, &[b'x'; 4096]);
    }
    chunked::write_last_chunk(&mut body, b"");
    let mut out = Vec::with_capacity(body.len() + 1024);
    let mut g = c.benchmark_group("h1/chunked");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("decode + re-encode 256 KiB", |b| {
        b.iter(|| {
            out.clear();
            let mut dec = ChunkedDecoder::default();
            let mut pos = 0;
            loop {
                let (n, d) = dec.decode(&body[pos..]).unwrap();
                match d {
                    Decoded::Data { start, end } => {
                        chunked::write_chunk(&mut out, &body[pos + start..pos + end])
                    }
                    Decoded::Done { .. } => break,
                    Decoded::NeedMore => unreachable!("the whole body is given"),
                }
                pos += n;
            }
            black_box(out.len())
        })
    });
    g.finish();
}

/// Dot-segment resolution before routing: the check every request pays
/// (a path without a `.` segment: one scan, nothing written), and the
/// in-place rewrite a path with dot segments pays.
fn normalize_paths(c: &mut Criterion) {
    let limits = Limits::default();
    let mut g = c.benchmark_group("h1/normalize");
    let mut head = RequestHead::default();
    let mut typical = TYPICAL.to_vec();
    request::parse(&typical, &limits, &mut head).unwrap();
    g.bench_function("check (typical path, no dot segment)", |b| {
        b.iter(|| head.normalize_path(black_box(&mut typical), false).unwrap())
    });
    let dotted = b"/api/v1/./users/%2e%2e/users/42/../43/orders";
    let mut path = dotted.to_vec();
    g.bench_function("rewrite (5 dot segments)", |b| {
        b.iter(|| {
            path.copy_from_slice(dotted);
            ringway_router::dots::normalize(black_box(&mut path), false).unwrap()
        })
    });
}

criterion_group!(
    benches,
    parse_requests,
    parse_responses,
    chunked_codec,
    normalize_paths
);
criterion_main!(benches);
