//! A conformance table for HTTP/2 from clients, in the spirit of h2spec
//! (which cannot be installed on the machines this suite was written on).
//! Each case sends one thing RFC 9113 (or RFC 7541, HPACK) has a rule for,
//! on a connection of its own, and checks what the gateway did against
//! what the RFC requires: a connection error with a given code, a stream
//! error with a given code, a frame it must send, or nothing at all (then a
//! request sent after the case's frames must still be answered).
//!
//! Where the RFC lets a stream error be a connection error (any stream
//! error may be, RFC 9113 §5.4), a GOAWAY with the same code passes too.
//!
//! One test runs the whole table against one gateway per I/O driver
//! (io_uring, then the epoll fallback), writes the results as markdown to
//! `target/tmp/h2-conformance.md`, checks that `bench/results/h2-conformance.md`
//! says the same (set `H2_CONFORMANCE_WRITE=1` to rewrite it), and fails
//! when any case fails.

use ringway_tests::h2raw::{self, H2, code, flag, kind, setting};
use ringway_tests::{Gateway, Origin, Reply};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

// ---- what a case expects --------------------------------------------------

/// What the RFC requires of the gateway after a case's frames.
#[derive(Clone, Copy)]
enum Expect {
    /// A connection error: GOAWAY with this code, then the connection closes.
    Conn(u32),
    /// A stream error on this stream with one of these codes: RST_STREAM,
    /// or GOAWAY (a stream error may always be a connection error).
    Stream(u32, &'static [u32]),
    /// Ignored: the request on this stream, sent after the case's frames,
    /// is answered 200 and the connection stays up.
    Served(u32),
    /// Something more specific, said in words and checked by the function.
    Check(&'static str, fn(&mut H2) -> Result<(), String>),
}

impl Expect {
    fn describe(&self) -> String {
        match self {
            Expect::Conn(c) => format!("connection error {}", name(*c)),
            Expect::Stream(id, codes) => {
                let names: Vec<&str> = codes.iter().map(|c| name(*c)).collect();
                format!(
                    "stream error {} on stream {id} (or connection error)",
                    names.join(" or ")
                )
            }
            Expect::Served(id) => {
                format!("ignored: the GET on stream {id} sent after it is answered")
            }
            Expect::Check(what, _) => what.to_string(),
        }
    }

    fn verify(&self, h: &mut H2) -> Result<(), String> {
        match *self {
            Expect::Conn(want) => {
                h.auto = false;
                h.goaway_or_close();
                match h.goaways.first().copied() {
                    Some((_, got)) if got == want => {
                        if h.until(|h| h.closed) {
                            Ok(())
                        } else {
                            Err("GOAWAY, but the connection stayed open".into())
                        }
                    }
                    Some((_, got)) => Err(format!("GOAWAY {} instead", name(got))),
                    None if h.closed => Err("closed without GOAWAY".into()),
                    None => Err("no GOAWAY".into()),
                }
            }
            Expect::Stream(id, codes) => {
                h.auto = false;
                h.until(|h| {
                    h.streams.get(&id).is_some_and(|s| s.reset.is_some())
                        || !h.goaways.is_empty()
                        || h.closed
                });
                let reset = h.streams.get(&id).and_then(|s| s.reset);
                let goaway = h.goaways.first().map(|g| g.1);
                match (reset, goaway) {
                    (Some(c), _) if codes.contains(&c) => Ok(()),
                    (None, Some(c)) if codes.contains(&c) => Ok(()),
                    (Some(c), _) => Err(format!("RST_STREAM {} instead", name(c))),
                    (None, Some(c)) => Err(format!("GOAWAY {} instead", name(c))),
                    (None, None) => Err("neither RST_STREAM nor GOAWAY".into()),
                }
            }
            Expect::Served(id) => served(h, id),
            Expect::Check(_, f) => f(h),
        }
    }
}

fn name(c: u32) -> &'static str {
    const NAMES: [&str; 14] = [
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    ];
    NAMES.get(c as usize).copied().unwrap_or("an unknown code")
}

/// Stream `id` is answered 200, with no GOAWAY.
fn served(h: &mut H2, id: u32) -> Result<(), String> {
    h.until(|h| h.streams.get(&id).is_some_and(|s| s.done()) || !h.goaways.is_empty() || h.closed);
    let st = h.streams.get(&id).cloned().unwrap_or_default();
    match (st.status(), h.goaways.first()) {
        (Some(200), None) if st.ended => Ok(()),
        (_, Some(g)) => Err(format!("GOAWAY {}", name(g.1))),
        (status, None) => Err(format!(
            "stream {id}: status {status:?}, reset {:?}, ended {}",
            st.reset.map(name),
            st.ended
        )),
    }
}

// ---- the cases --------------------------------------------------------------

struct Case {
    /// RFC 9113 section (or "HPACK §x" for RFC 7541).
    section: &'static str,
    /// What is sent, in words.
    sent: &'static str,
    expect: Expect,
    /// Opens the case's connection and sends its frames.
    act: fn(SocketAddr) -> H2,
}

fn case(
    section: &'static str,
    sent: &'static str,
    expect: Expect,
    act: fn(SocketAddr) -> H2,
) -> Case {
    Case {
        section,
        sent,
        expect,
        act,
    }
}

/// A connection past the handshake that has sent `parts`, in one write.
fn sends(a: SocketAddr, parts: &[Vec<u8>]) -> H2 {
    let mut h = H2::handshake(a, &[]);
    let _ = h.send(&parts.concat());
    h
}

fn req(method: &str, path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    h2raw::request(method, path, extra)
}

/// A GET the origin answers at once.
fn get(id: u32) -> Vec<u8> {
    h2raw::headers(id, &req("GET", "/ok", &[]), true)
}

/// A GET the origin answers after [`SLOW`]: the stream stays
/// half-closed (remote) for the whole case.
fn slow(id: u32) -> Vec<u8> {
    h2raw::headers(id, &req("GET", "/slow", &[]), true)
}

/// A POST whose body has not come yet: the stream is open.
fn post(id: u32) -> Vec<u8> {
    h2raw::headers(id, &req("POST", "/post", &[]), false)
}

const SLOW: Duration = Duration::from_secs(5);

/// A request on stream 1 with these fields, in this order.
fn fields(list: &[(&str, &str)]) -> Vec<u8> {
    h2raw::headers(1, &h2raw::block(list), true)
}

/// The fields of a good GET, with `extra` after them.
fn good_with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut f = vec![
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "h2.test"),
        (":path", "/ok"),
    ];
    f.extend_from_slice(extra);
    f
}

/// The fields of a good GET without `left_out`.
fn good_without(left_out: &str) -> Vec<(&'static str, &'static str)> {
    good_with(&[])
        .into_iter()
        .filter(|(k, _)| *k != left_out)
        .collect()
}

/// A header block: a good GET's fields, then `tail` (raw HPACK bytes).
fn block_then(tail: &[u8]) -> Vec<u8> {
    let mut b = req("GET", "/ok", &[]);
    b.extend_from_slice(tail);
    b
}

fn hpack_int(first: u8, prefix: u8, v: usize) -> Vec<u8> {
    let mut out = Vec::new();
    h2raw::hpack_int(&mut out, first, prefix, v);
    out
}

fn cases() -> Vec<Case> {
    use Expect::*;
    const PROTOCOL: &[u32] = &[code::PROTOCOL_ERROR];
    vec![
        // 3.4: the connection preface
        case(
            "3.4",
            "a preface whose last 8 octets are wrong",
            Check(
                "connection error (GOAWAY PROTOCOL_ERROR), or closed unserved: an h2c port reads it as HTTP/1.1",
                |h| {
                    h.until(|h| h.closed || !h.goaways.is_empty());
                    let goaway = h.goaways.first().map(|g| g.1);
                    match (goaway, h.server_settings.is_empty(), h.closed) {
                        (Some(code::PROTOCOL_ERROR), _, _) | (None, true, true) => Ok(()),
                        _ => Err("the connection was served".into()),
                    }
                },
            ),
            |a| {
                let mut h = H2::open(a);
                let _ = h.send(b"PRI * HTTP/2.0\r\n\r\nXY\r\n\r\n");
                h
            },
        ),
        case(
            "3.4",
            "the preface, then PING where SETTINGS must come",
            Conn(code::PROTOCOL_ERROR),
            |a| {
                let mut h = H2::open(a);
                let _ = h.send(&[&h2raw::PREFACE[..], &h2raw::ping(1)].concat());
                h
            },
        ),
        case(
            "3.4",
            "the preface and SETTINGS",
            Check(
                "the server's first frame is SETTINGS (not an ACK)",
                |h| match h.trace.first() {
                    Some(&(kind::SETTINGS, 0, 0, _)) => Ok(()),
                    other => Err(format!("first frame {other:?}")),
                },
            ),
            |a| H2::handshake(a, &[]),
        ),
        // 4.1: frame format
        case(
            "4.1",
            "a frame of unknown type 0x20 on stream 0",
            Served(1),
            |a| sends(a, &[h2raw::frame(0x20, 0xff, 0, b"unknown"), get(1)]),
        ),
        case(
            "4.1",
            "PING with every undefined flag set",
            Check(
                "ignored flags: a PING ACK (flags 0x1 only) echoing the payload",
                |h| ping_acked(h, b"flagsset"),
            ),
            |a| sends(a, &[h2raw::frame(kind::PING, 0xfe, 0, b"flagsset")]),
        ),
        case(
            "4.1",
            "HEADERS with undefined flags (0x2, 0x10, 0x40, 0x80) set",
            Served(1),
            |a| {
                let f = flag::END_HEADERS | flag::END_STREAM | 0xd2;
                sends(
                    a,
                    &[h2raw::frame(kind::HEADERS, f, 1, &req("GET", "/ok", &[]))],
                )
            },
        ),
        case(
            "4.1",
            "HEADERS with the reserved bit of the stream id set",
            Served(1),
            |a| {
                let mut f = get(1);
                f[5] |= 0x80;
                sends(a, &[f])
            },
        ),
        // 4.2: frame size
        case(
            "4.2",
            "DATA of 16,385 octets (past SETTINGS_MAX_FRAME_SIZE 16,384)",
            Stream(1, &[code::FRAME_SIZE_ERROR]),
            |a| sends(a, &[post(1), h2raw::data(1, &[b'x'; 16_385], true)]),
        ),
        case(
            "4.2",
            "HEADERS past SETTINGS_MAX_FRAME_SIZE",
            Conn(code::FRAME_SIZE_ERROR),
            |a| {
                let filler = "f".repeat(16_400);
                let b = req("GET", "/ok", &[("x-filler", &filler)]);
                sends(a, &[h2raw::headers(1, &b, true)])
            },
        ),
        // 4.3: header compression
        case(
            "4.3",
            "a header block cut off inside a literal",
            Conn(code::COMPRESSION_ERROR),
            |a| {
                sends(
                    a,
                    &[h2raw::headers(1, &[0x00, 0x0a, b'a', b'b', b'c'], true)],
                )
            },
        ),
        // 5.1: stream states
        case(
            "5.1",
            "DATA on an idle stream",
            Conn(code::PROTOCOL_ERROR),
            |a| sends(a, &[h2raw::data(1, b"x", true)]),
        ),
        case(
            "5.1",
            "WINDOW_UPDATE on an idle stream",
            Conn(code::PROTOCOL_ERROR),
            |a| sends(a, &[h2raw::window_update(1, 100)]),
        ),
        case(
            "5.1",
            "CONTINUATION on an idle stream",
            Conn(code::PROTOCOL_ERROR),
            |a| sends(a, &[h2raw::continuation(1, &req("GET", "/ok", &[]), true)]),
        ),
        case(
            "5.1",
            "half-closed (remote): DATA after END_STREAM",
            Stream(1, &[code::STREAM_CLOSED]),
            |a| sends(a, &[slow(1), h2raw::data(1, b"x", true)]),
        ),
        case(
            "5.1",
            "half-closed (remote): HEADERS after END_STREAM",
            Stream(1, &[code::STREAM_CLOSED]),
            |a| {
                let trailers = h2raw::block(&[("x-late", "1")]);
                sends(a, &[slow(1), h2raw::headers(1, &trailers, true)])
            },
        ),
        case(
            "5.1",
            "half-closed (remote): WINDOW_UPDATE and PRIORITY",
            Served(1),
            |a| {
                sends(
                    a,
                    &[get(1), h2raw::window_update(1, 1000), h2raw::priority(1, 0)],
                )
            },
        ),
        case(
            "5.1",
            "closed (both sides ended): DATA",
            Stream(1, &[code::STREAM_CLOSED]),
            |a| after_answer(a, h2raw::data(1, b"x", true)),
        ),
        case(
            "5.1",
            "closed (both sides ended): HEADERS",
            Stream(1, &[code::STREAM_CLOSED]),
            |a| after_answer(a, get(1)),
        ),
        case(
            "5.1",
            "closed by the client's RST_STREAM: DATA",
            Stream(1, &[code::STREAM_CLOSED]),
            |a| {
                let rst = h2raw::rst_stream(1, code::CANCEL);
                sends(a, &[post(1), rst, h2raw::data(1, b"x", true)])
            },
        ),
        case(
            "5.1",
            "closed by the client's RST_STREAM: HEADERS",
            Stream(1, &[code::STREAM_CLOSED]),
            |a| {
                let rst = h2raw::rst_stream(1, code::CANCEL);
                let trailers = h2raw::headers(1, &h2raw::block(&[("x-t", "1")]), true);
                sends(a, &[post(1), rst, trailers])
            },
        ),
        case(
            "5.1",
            "closed by the server's RST_STREAM: DATA still in flight",
            Check(
                "ignored (no second RST_STREAM); the GET on stream 3 is answered",
                |h| {
                    served(h, 3)?;
                    match h.streams.get(&1).and_then(|s| s.reset) {
                        Some(code::PROTOCOL_ERROR) => Ok(()),
                        other => Err(format!("stream 1 reset {:?}", other.map(name))),
                    }
                },
            ),
            |a| {
                // A zero WINDOW_UPDATE makes the server reset stream 1.
                let zero = h2raw::window_update(1, 0);
                sends(a, &[post(1), zero, h2raw::data(1, b"late", true), get(3)])
            },
        ),
        case(
            "5.1.1",
            "HEADERS on an even (server-initiated) stream id",
            Conn(code::PROTOCOL_ERROR),
            |a| sends(a, &[get(2)]),
        ),
        case(
            "5.1.1",
            "HEADERS on stream 3 after stream 5 was opened",
            Conn(code::PROTOCOL_ERROR),
            |a| sends(a, &[get(5), get(3)]),
        ),
        case(
            "5.1.2",
            "a fifth stream past SETTINGS_MAX_CONCURRENT_STREAMS = 4",
            Stream(9, &[code::REFUSED_STREAM, code::PROTOCOL_ERROR]),
            |a| sends(a, &[slow(1), slow(3), slow(5), slow(7), slow(9)]),
        ),
        // 5.3: priority
        case(
            "5.3.1",
            "HEADERS whose priority depends on its own stream",
            Stream(1, PROTOCOL),
            |a| sends(a, &[headers_depending_on(1, 1)]),
        ),
        case(
            "5.3.1",
            "PRIORITY that makes a stream depend on itself",
            Stream(1, PROTOCOL),
            |a| sends(a, &[h2raw::priority(1, 1)]),
        ),
        case(
            "5.3",
            "PRIORITY on an idle stream, then HEADERS opening it",
            Served(1),
            |a| sends(a, &[h2raw::priority(1, 0), get(1)]),
        ),
        // 5.4: error handling
        case(
            "5.4.1",
            "a connection error after stream 1 was answered",
            Check(
                "GOAWAY naming stream 1 as the last processed, then the connection closes",
                |h| {
                    h.goaway_or_close();
                    match h.goaways.first().copied() {
                        Some((1, code::PROTOCOL_ERROR)) if h.until(|h| h.closed) => Ok(()),
                        other => Err(format!("GOAWAY {other:?}, closed {}", h.closed)),
                    }
                },
            ),
            |a| after_answer(a, h2raw::frame(kind::PING, 0, 1, &[0; 8])),
        ),
        case(
            "5.4.2",
            "a stream error on stream 1, then a GET on stream 3",
            Check("RST_STREAM on stream 1 only: stream 3 is answered", |h| {
                served(h, 3)?;
                match h.streams.get(&1).and_then(|s| s.reset) {
                    Some(code::PROTOCOL_ERROR) => Ok(()),
                    other => Err(format!("stream 1 reset {:?}", other.map(name))),
                }
            }),
            |a| sends(a, &[headers_depending_on(1, 1), get(3)]),
        ),
        // 5.5: extensions
        case(
            "5.5",
            "an unknown frame type on an open stream",
            Served(1),
            |a| {
                let ext = h2raw::frame(0x30, 0, 1, b"ext");
                sends(a, &[post(1), ext, h2raw::data(1, b"body", true)])
            },
        ),
        case(
            "5.5",
            "an unknown frame type between HEADERS and CONTINUATION",
            Conn(code::PROTOCOL_ERROR),
            |a| {
                let (first, rest) = split_get(1);
                sends(a, &[first, h2raw::frame(0x30, 0, 1, b"ext"), rest])
            },
        ),
        // 6.1: DATA
        case("6.1", "DATA on stream 0", Conn(code::PROTOCOL_ERROR), |a| {
            sends(a, &[h2raw::data(0, b"x", true)])
        }),
        case(
            "6.1",
            "DATA whose pad length is not less than its payload",
            Conn(code::PROTOCOL_ERROR),
            |a| {
                let bad = h2raw::frame(
                    kind::DATA,
                    flag::PADDED | flag::END_STREAM,
                    1,
                    &[9, b'a', b'b'],
                );
                sends(a, &[post(1), bad])
            },
        ),
        case(
            "6.1",
            "padded DATA (5 octets of body, 4 of padding)",
            Check(
                "the padding is stripped: the origin receives 5 octets",
                |h| {
                    served(h, 1)?;
                    match h.streams[&1].header("x-body-len") {
                        Some("5") => Ok(()),
                        other => Err(format!("the origin got {other:?} octets")),
                    }
                },
            ),
            |a| {
                let padded = h2raw::frame(
                    kind::DATA,
                    flag::PADDED | flag::END_STREAM,
                    1,
                    b"\x04hello\0\0\0\0",
                );
                sends(a, &[post(1), padded])
            },
        ),
        // 6.2: HEADERS
        case(
            "6.2",
            "HEADERS on stream 0",
            Conn(code::PROTOCOL_ERROR),
            |a| sends(a, &[get(0)]),
        ),
        case(
            "6.2",
            "HEADERS whose pad length is longer than its payload",
            Conn(code::PROTOCOL_ERROR),
            |a| {
                let mut p = vec![200];
                p.extend_from_slice(&req("GET", "/ok", &[]));
                let f = flag::PADDED | flag::END_HEADERS | flag::END_STREAM;
                sends(a, &[h2raw::frame(kind::HEADERS, f, 1, &p)])
            },
        ),
        case(
            "6.2",
            "HEADERS with padding and priority fields",
            Served(1),
            |a| {
                let mut p = vec![3, 0, 0, 0, 0, 15];
                p.extend_from_slice(&req("GET", "/ok", &[]));
                p.extend_from_slice(&[0, 0, 0]);
                let f = flag::PADDED | flag::PRIORITY | flag::END_HEADERS | flag::END_STREAM;
                sends(a, &[h2raw::frame(kind::HEADERS, f, 1, &p)])
            },
        ),
        case(
            "6.2",
            "HEADERS without END_HEADERS, then PRIORITY",
            Conn(code::PROTOCOL_ERROR),
            |a| {
                let (first, _) = split_get(1);
                sends(a, &[first, h2raw::priority(1, 0)])
            },
        ),
        // 6.3: PRIORITY
        case(
            "6.3",
            "PRIORITY on stream 0",
            Conn(code::PROTOCOL_ERROR),
            |a| sends(a, &[h2raw::priority(0, 1)]),
        ),
        case(
            "6.3",
            "PRIORITY of 4 octets",
            Stream(1, &[code::FRAME_SIZE_ERROR]),
            |a| sends(a, &[h2raw::frame(kind::PRIORITY, 0, 1, &[0, 0, 0, 0])]),
        ),
        // 6.4: RST_STREAM
        case(
            "6.4",
            "RST_STREAM on stream 0",
            Conn(code::PROTOCOL_ERROR),
            |a| sends(a, &[h2raw::rst_stream(0, code::CANCEL)]),
        ),
        case(
            "6.4",
            "RST_STREAM on an idle stream",
            Conn(code::PROTOCOL_ERROR),
            |a| sends(a, &[h2raw::rst_stream(1, code::CANCEL)]),
        ),
        case(
            "6.4",
            "RST_STREAM of 3 octets",
            Conn(code::FRAME_SIZE_ERROR),
            |a| {
                sends(
                    a,
                    &[post(1), h2raw::frame(kind::RST_STREAM, 0, 1, &[0, 0, 8])],
                )
            },
        ),
        // 6.5: SETTINGS
        case(
            "6.5",
            "a SETTINGS ACK with a payload",
            Conn(code::FRAME_SIZE_ERROR),
            |a| sends(a, &[h2raw::frame(kind::SETTINGS, flag::ACK, 0, &[0; 6])]),
        ),
        case(
            "6.5",
            "SETTINGS on stream 1",
            Conn(code::PROTOCOL_ERROR),
            |a| sends(a, &[h2raw::frame(kind::SETTINGS, 0, 1, &[])]),
        ),
        case(
            "6.5",
            "SETTINGS of 3 octets (not a multiple of 6)",
            Conn(code::FRAME_SIZE_ERROR),
            |a| sends(a, &[h2raw::frame(kind::SETTINGS, 0, 0, &[0, 3, 0])]),
        ),
        case(
            "6.5.2",
            "SETTINGS_ENABLE_PUSH = 2",
            Conn(code::PROTOCOL_ERROR),
            |a| sends(a, &[h2raw::settings(&[(setting::ENABLE_PUSH, 2)])]),
        ),
        case(
            "6.5.2",
            "SETTINGS_INITIAL_WINDOW_SIZE = 2^31",
            Conn(code::FLOW_CONTROL_ERROR),
            |a| {
                sends(
                    a,
                    &[h2raw::settings(&[(setting::INITIAL_WINDOW_SIZE, 1 << 31)])],
                )
            },
        ),
        case(
            "6.5.2",
            "SETTINGS_MAX_FRAME_SIZE = 16,383 (below the minimum)",
            Conn(code::PROTOCOL_ERROR),
            |a| sends(a, &[h2raw::settings(&[(setting::MAX_FRAME_SIZE, 16_383)])]),
        ),
        case(
            "6.5.2",
            "SETTINGS_MAX_FRAME_SIZE = 2^24 (above the maximum)",
            Conn(code::PROTOCOL_ERROR),
            |a| sends(a, &[h2raw::settings(&[(setting::MAX_FRAME_SIZE, 1 << 24)])]),
        ),
        case(
            "6.5.2",
            "SETTINGS with an unknown identifier (0xff)",
            Check(
                "ignored: acknowledged, and the GET on stream 1 is answered",
                |h| {
                    served(h, 1)?;
                    settings_acks(h, 2)
                },
            ),
            |a| sends(a, &[h2raw::settings(&[(0xff, 7)]), get(1)]),
        ),
        case(
            "6.5.3",
            "a second SETTINGS frame, mid-connection",
            Check("an empty SETTINGS ACK", |h| settings_acks(h, 2)),
            |a| {
                sends(
                    a,
                    &[h2raw::settings(&[(setting::MAX_HEADER_LIST_SIZE, 65_536)])],
                )
            },
        ),
        // 6.7: PING
        case(
            "6.7",
            "PING",
            Check("a PING ACK echoing the payload", |h| {
                ping_acked(h, b"pingpong")
            }),
            |a| sends(a, &[h2raw::frame(kind::PING, 0, 0, b"pingpong")]),
        ),
        case(
            "6.7",
            "a PING ACK, then a PING",
            Check(
                "the ACK is not answered: the only PING ACK echoes the second",
                |h| ping_acked(h, b"secondpg"),
            ),
            |a| {
                let ack = h2raw::frame(kind::PING, flag::ACK, 0, b"firstpng");
                sends(a, &[ack, h2raw::frame(kind::PING, 0, 0, b"secondpg")])
            },
        ),
        case("6.7", "PING on stream 1", Conn(code::PROTOCOL_ERROR), |a| {
            sends(a, &[h2raw::frame(kind::PING, 0, 1, &[0; 8])])
        }),
        case(
            "6.7",
            "PING of 6 octets",
            Conn(code::FRAME_SIZE_ERROR),
            |a| sends(a, &[h2raw::frame(kind::PING, 0, 0, &[0; 6])]),
        ),
        // 6.8: GOAWAY
        case(
            "6.8",
            "GOAWAY on stream 1",
            Conn(code::PROTOCOL_ERROR),
            |a| sends(a, &[h2raw::frame(kind::GOAWAY, 0, 1, &[0; 8])]),
        ),
        case(
            "6.8",
            "a GET on stream 1, then the client's GOAWAY",
            Served(1),
            |a| sends(a, &[get(1), h2raw::goaway(1, code::NO_ERROR)]),
        ),
        // 6.9: WINDOW_UPDATE
        case(
            "6.9",
            "WINDOW_UPDATE of 0 on the connection",
            Conn(code::PROTOCOL_ERROR),
            |a| sends(a, &[h2raw::window_update(0, 0)]),
        ),
        case(
            "6.9",
            "WINDOW_UPDATE of 0 on an open stream",
            Stream(1, PROTOCOL),
            |a| sends(a, &[slow(1), h2raw::window_update(1, 0)]),
        ),
        case(
            "6.9",
            "WINDOW_UPDATE of 3 octets",
            Conn(code::FRAME_SIZE_ERROR),
            |a| sends(a, &[h2raw::frame(kind::WINDOW_UPDATE, 0, 0, &[0, 0, 1])]),
        ),
        case(
            "6.9.1",
            "WINDOW_UPDATE taking the connection window past 2^31-1",
            Conn(code::FLOW_CONTROL_ERROR),
            |a| sends(a, &[h2raw::window_update(0, 0x7fff_ffff)]),
        ),
        case(
            "6.9.1",
            "WINDOW_UPDATE taking a stream window past 2^31-1",
            Stream(1, &[code::FLOW_CONTROL_ERROR]),
            |a| sends(a, &[slow(1), h2raw::window_update(1, 0x7fff_ffff)]),
        ),
        case(
            "6.9.2",
            "INITIAL_WINDOW_SIZE 0, a GET, then INITIAL_WINDOW_SIZE 1 once the response head is in",
            Check(
                "the change applies to the open stream: the body comes in DATA frames of 1 octet",
                |h| {
                    h.finish(1);
                    let big = h
                        .trace
                        .iter()
                        .any(|&(k, _, s, len)| k == kind::DATA && s == 1 && len > 1);
                    let st = &h.streams[&1];
                    match (st.status(), st.body.as_slice(), big) {
                        (Some(200), b"ok", false) => Ok(()),
                        (status, body, big) => Err(format!(
                            "status {status:?}, body {body:?}, a DATA frame over 1 octet: {big}"
                        )),
                    }
                },
            ),
            |a| {
                let mut h = H2::handshake(a, &[(setting::INITIAL_WINDOW_SIZE, 0)]);
                let _ = h.send(&get(1));
                h.until(|h| h.streams.get(&1).is_some_and(|s| s.head.is_some()));
                let _ = h.send(&h2raw::settings(&[(setting::INITIAL_WINDOW_SIZE, 1)]));
                h
            },
        ),
        // 6.10: CONTINUATION
        case(
            "6.10",
            "CONTINUATION after HEADERS that had END_HEADERS",
            Conn(code::PROTOCOL_ERROR),
            |a| {
                let more = h2raw::continuation(1, &h2raw::block(&[("x-a", "1")]), true);
                sends(a, &[post(1), more])
            },
        ),
        case(
            "6.10",
            "CONTINUATION on another stream than its HEADERS",
            Conn(code::PROTOCOL_ERROR),
            |a| {
                let (first, rest) = split_get(1);
                let mut other = rest;
                other[5..9].copy_from_slice(&3u32.to_be_bytes());
                sends(a, &[first, other])
            },
        ),
        case(
            "6.10",
            "HEADERS without END_HEADERS, then DATA",
            Conn(code::PROTOCOL_ERROR),
            |a| {
                let (first, _) = split_get(1);
                sends(a, &[first, h2raw::data(1, b"x", true)])
            },
        ),
        case(
            "6.10",
            "CONTINUATION on stream 0 inside a header block",
            Conn(code::PROTOCOL_ERROR),
            |a| {
                let (first, rest) = split_get(1);
                let mut zero = rest;
                zero[5..9].copy_from_slice(&0u32.to_be_bytes());
                sends(a, &[first, zero])
            },
        ),
        case(
            "6.10",
            "a header block split over HEADERS and CONTINUATION",
            Served(1),
            |a| {
                let (first, rest) = split_get(1);
                sends(a, &[first, rest])
            },
        ),
        // 8.1: HTTP messages
        case(
            "8.1.1",
            "a request whose content-length (10) is more than its DATA (3)",
            Stream(1, PROTOCOL),
            |a| {
                let h =
                    h2raw::headers(1, &req("POST", "/post", &[("content-length", "10")]), false);
                sends(a, &[h, h2raw::data(1, b"abc", true)])
            },
        ),
        case(
            "8.1.1",
            "a request whose DATA (3) is more than its content-length (1)",
            Stream(1, PROTOCOL),
            |a| {
                let h = h2raw::headers(1, &req("POST", "/post", &[("content-length", "1")]), false);
                sends(a, &[h, h2raw::data(1, b"abc", true)])
            },
        ),
        case(
            "8.1",
            "trailers without END_STREAM",
            Stream(1, PROTOCOL),
            |a| {
                let t = h2raw::headers(1, &h2raw::block(&[("x-t", "1")]), false);
                sends(a, &[post(1), h2raw::data(1, b"abc", false), t])
            },
        ),
        case(
            "8.1",
            "trailers with a pseudo-header",
            Stream(1, PROTOCOL),
            |a| {
                let t = h2raw::headers(1, &h2raw::block(&[(":path", "/x")]), true);
                sends(a, &[post(1), h2raw::data(1, b"abc", false), t])
            },
        ),
        case(
            "8.2",
            "a field name with an uppercase letter",
            Stream(1, PROTOCOL),
            |a| sends(a, &[fields(&good_with(&[("X-Upper", "1")]))]),
        ),
        case(
            "8.2.2",
            "a connection-specific field (connection: keep-alive)",
            Stream(1, PROTOCOL),
            |a| sends(a, &[fields(&good_with(&[("connection", "keep-alive")]))]),
        ),
        case("8.2.2", "te: gzip", Stream(1, PROTOCOL), |a| {
            sends(a, &[fields(&good_with(&[("te", "gzip")]))])
        }),
        case("8.2.2", "te: trailers", Served(1), |a| {
            sends(a, &[fields(&good_with(&[("te", "trailers")]))])
        }),
        case(
            "8.3",
            "a pseudo-header after a regular field",
            Stream(1, PROTOCOL),
            |a| {
                let list = [
                    (":method", "GET"),
                    (":scheme", "http"),
                    ("x-a", "1"),
                    (":path", "/ok"),
                ];
                sends(a, &[fields(&list)])
            },
        ),
        case(
            "8.3",
            "an unknown pseudo-header (:color)",
            Stream(1, PROTOCOL),
            |a| sends(a, &[fields(&good_with(&[(":color", "red")]))]),
        ),
        case(
            "8.3",
            "a response pseudo-header (:status) in a request",
            Stream(1, PROTOCOL),
            |a| sends(a, &[fields(&good_with(&[(":status", "200")]))]),
        ),
        case("8.3.1", "no :method", Stream(1, PROTOCOL), |a| {
            sends(a, &[fields(&good_without(":method"))])
        }),
        case("8.3.1", "no :scheme", Stream(1, PROTOCOL), |a| {
            sends(a, &[fields(&good_without(":scheme"))])
        }),
        case("8.3.1", "no :path", Stream(1, PROTOCOL), |a| {
            sends(a, &[fields(&good_without(":path"))])
        }),
        case("8.3.1", "an empty :path", Stream(1, PROTOCOL), |a| {
            let list = [(":method", "GET"), (":scheme", "http"), (":path", "")];
            sends(a, &[fields(&list)])
        }),
        case("8.3.1", "two :method fields", Stream(1, PROTOCOL), |a| {
            sends(a, &[fields(&good_with(&[(":method", "POST")]))])
        }),
        // RFC 7541: HPACK
        case(
            "HPACK 6.1",
            "an indexed field with index 0",
            Conn(code::COMPRESSION_ERROR),
            |a| sends(a, &[h2raw::headers(1, &block_then(&[0x80]), true)]),
        ),
        case(
            "HPACK 2.3.3",
            "an indexed field past the static table, with the dynamic table empty",
            Conn(code::COMPRESSION_ERROR),
            |a| sends(a, &[h2raw::headers(1, &block_then(&[0x80 | 70]), true)]),
        ),
        case(
            "HPACK 2.3",
            "a literal added to the dynamic table, then referenced by the next request",
            Served(3),
            |a| {
                let mut first = req("GET", "/ok", &[]);
                h2raw::literal_indexed(&mut first, b"x-kept", b"1");
                let mut second = req("GET", "/ok", &[]);
                h2raw::indexed(&mut second, 62);
                let one = h2raw::headers(1, &first, true);
                sends(a, &[one, h2raw::headers(3, &second, true)])
            },
        ),
        case(
            "HPACK 6.3",
            "a dynamic table size update to 4,097 (past SETTINGS_HEADER_TABLE_SIZE 4,096)",
            Conn(code::COMPRESSION_ERROR),
            |a| {
                let mut b = hpack_int(0x20, 5, 4097);
                b.extend_from_slice(&req("GET", "/ok", &[]));
                sends(a, &[h2raw::headers(1, &b, true)])
            },
        ),
        case(
            "HPACK 4.2",
            "a dynamic table size update after a field",
            Conn(code::COMPRESSION_ERROR),
            |a| {
                let mut b = h2raw::block(&[(":method", "GET"), (":scheme", "http")]);
                b.extend_from_slice(&hpack_int(0x20, 5, 0));
                b.extend_from_slice(&h2raw::block(&[(":path", "/ok")]));
                sends(a, &[h2raw::headers(1, &b, true)])
            },
        ),
        case(
            "HPACK 4.2",
            "a dynamic table size update to 0 at the start of a block",
            Served(1),
            |a| {
                let mut b = hpack_int(0x20, 5, 0);
                b.extend_from_slice(&req("GET", "/ok", &[]));
                sends(a, &[h2raw::headers(1, &b, true)])
            },
        ),
        case(
            "HPACK 5.2",
            "a Huffman string holding the EOS symbol",
            Conn(code::COMPRESSION_ERROR),
            |a| {
                let mut b = req("GET", "/ok", &[]);
                b.extend_from_slice(&[0x00, 0x03, b'x', b'-', b'h', 0x84, 0xff, 0xff, 0xff, 0xff]);
                sends(a, &[h2raw::headers(1, &b, true)])
            },
        ),
        case(
            "HPACK 5.1",
            "an integer encoded in more octets than any index needs",
            Conn(code::COMPRESSION_ERROR),
            |a| {
                let tail = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f];
                sends(a, &[h2raw::headers(1, &block_then(&tail), true)])
            },
        ),
    ]
}

/// HEADERS for a GET on `id` whose priority fields depend on `on`.
fn headers_depending_on(id: u32, on: u32) -> Vec<u8> {
    let mut p = on.to_be_bytes().to_vec();
    p.push(15);
    p.extend_from_slice(&req("GET", "/ok", &[]));
    let f = flag::PRIORITY | flag::END_HEADERS | flag::END_STREAM;
    h2raw::frame(kind::HEADERS, f, id, &p)
}

/// A GET on `id` as HEADERS (END_STREAM, no END_HEADERS) and a CONTINUATION ending the block.
fn split_get(id: u32) -> (Vec<u8>, Vec<u8>) {
    let b = req("GET", "/ok", &[]);
    let (a, rest) = b.split_at(b.len() / 2);
    (
        h2raw::frame(kind::HEADERS, flag::END_STREAM, id, a),
        h2raw::continuation(id, rest, true),
    )
}

/// A GET on stream 1 answered in full, then `then`.
fn after_answer(a: SocketAddr, then: Vec<u8>) -> H2 {
    let mut h = sends(a, &[get(1)]);
    h.until(|h| h.streams.get(&1).is_some_and(|s| s.done()));
    let _ = h.send(&then);
    h
}

/// The first PING ACK received echoes `payload`, and carries no flag but ACK.
fn ping_acked(h: &mut H2, payload: &[u8]) -> Result<(), String> {
    h.until(|h| !h.ping_acks.is_empty() || h.closed);
    let flags: Vec<u8> = h
        .trace
        .iter()
        .filter(|t| t.0 == kind::PING)
        .map(|t| t.1)
        .collect();
    match (h.ping_acks.first(), flags.first()) {
        (Some(p), Some(&flag::ACK)) if p == payload => Ok(()),
        (p, f) => Err(format!(
            "PING ACK {:?} with flags {f:?}",
            p.map(|p| String::from_utf8_lossy(p).into_owned())
        )),
    }
}

/// At least `n` SETTINGS ACKs came, each empty.
fn settings_acks(h: &mut H2, n: usize) -> Result<(), String> {
    let acks = |h: &H2| {
        h.trace
            .iter()
            .filter(|t| t.0 == kind::SETTINGS && t.1 & flag::ACK != 0)
            .map(|t| t.3)
            .collect::<Vec<usize>>()
    };
    h.until(|h| acks(h).len() >= n || h.closed);
    let got = acks(h);
    if got.len() >= n && got.iter().all(|&len| len == 0) {
        Ok(())
    } else {
        Err(format!("SETTINGS ACKs of {got:?} octets"))
    }
}

// ---- the run ------------------------------------------------------------------

fn origin() -> Origin {
    Origin::start(|s| {
        let ok = Reply::Length(
            200,
            vec![format!("X-Body-Len: {}", s.body.len())],
            b"ok".to_vec(),
        );
        if s.target == "/slow" {
            Reply::Delay(SLOW, Box::new(ok))
        } else {
            ok
        }
    })
}

fn gateway(origin: &Origin, env: &[(&str, &str)]) -> Gateway {
    let config = format!(
        "[server]\nlisten = [{{ addr = \"127.0.0.1:0\", h2c = true }}]\nworkers = 1\npin = false\n\n\
         [server.h2]\nmax_concurrent_streams = 4\n\n\
         [[upstream]]\nname = \"app\"\ntargets = [\"{}\"]\nconnect_timeout = \"1s\"\nresponse_timeout = \"30s\"\n\n\
         [[route]]\npath = \"/{{proxy+}}\"\nupstream = \"app\"\n",
        origin.addr
    );
    Gateway::start_with_env(&config, env)
}

/// Runs every case against a gateway on `env`'s driver: each case's
/// result, `Err` with what happened instead.
fn run_all(cases: &[Case], env: &[(&str, &str)]) -> Vec<Result<(), String>> {
    let origin = origin();
    let gw = gateway(&origin, env);
    cases
        .iter()
        .map(|c| {
            let mut h = (c.act)(gw.addr);
            c.expect
                .verify(&mut h)
                .map_err(|e| format!("{e}; {}", h.describe()))
        })
        .collect()
}

fn table(cases: &[Case], results: &[(&str, Vec<Result<(), String>>)]) -> String {
    let mut md = String::from(
        "# HTTP/2 conformance of ringway (RFC 9113, RFC 7541)\n\n\
         Generated by `tests/tests/h2_conformance.rs` \
         (`cargo nextest run -p ringway-tests --test h2_conformance`; \
         `H2_CONFORMANCE_WRITE=1` rewrites this file). Each case runs on a connection \
         of its own to an h2c listener (`max_concurrent_streams = 4`, \
         `max_frame_size = 16KiB`), once on each I/O driver. A stream error may \
         always be answered as a connection error with the same code (RFC 9113 §5.4), \
         so both pass. h2spec itself is not run here: see `bench/h2spec.sh`.\n\n",
    );
    let mut head = String::from("| § | Sent | RFC requires |");
    let mut rule = String::from("|---|---|---|");
    for (driver, _) in results {
        head.push_str(&format!(" {driver} |"));
        rule.push_str("---|");
    }
    md.push_str(&format!("{head}\n{rule}\n"));
    for (i, c) in cases.iter().enumerate() {
        let mut row = format!("| {} | {} | {} |", c.section, c.sent, c.expect.describe());
        for (_, r) in results {
            row.push_str(if r[i].is_ok() { " pass |" } else { " FAIL |" });
        }
        md.push_str(&row);
        md.push('\n');
    }
    md.push('\n');
    for (driver, r) in results {
        let passed = r.iter().filter(|r| r.is_ok()).count();
        md.push_str(&format!("{driver}: {passed} of {} cases pass.\n", r.len()));
    }
    md
}

#[test]
fn every_case_of_the_conformance_table_passes_on_both_drivers() {
    let cases = cases();
    let results = vec![
        ("io_uring", run_all(&cases, &[])),
        (
            "epoll",
            run_all(&cases, &[("MONOIO_FORCE_LEGACY_DRIVER", "1")]),
        ),
    ];
    let md = table(&cases, &results);
    let generated = Path::new(env!("CARGO_TARGET_TMPDIR")).join("h2-conformance.md");
    std::fs::write(&generated, &md).expect("write the table");
    let failures: Vec<String> = results
        .iter()
        .flat_map(|(driver, r)| {
            r.iter().zip(&cases).filter_map(move |(r, c)| {
                r.as_ref()
                    .err()
                    .map(|e| format!("[{driver}] {} {}: {e}", c.section, c.sent))
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} failures (table in {}):\n{}",
        failures.len(),
        generated.display(),
        failures.join("\n\n")
    );
    let committed =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/results/h2-conformance.md");
    if std::env::var_os("H2_CONFORMANCE_WRITE").is_some() {
        std::fs::write(&committed, &md).expect("write the committed table");
    }
    let current = std::fs::read_to_string(&committed).unwrap_or_default();
    assert!(
        current == md,
        "{} is not the table this run made: rerun with H2_CONFORMANCE_WRITE=1, or copy {}",
        committed.display(),
        generated.display()
    );
}
