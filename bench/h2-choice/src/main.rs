//! Two (three) h2c servers that answer every request with 200 and the 13
//! bytes "hello, world\n", for measuring HTTP/2 frame layers against each
//! other on the same runtime:
//!
//! - `monoio-http`: the `monoio_http::h2::server` module (a port of the
//!   `h2` crate to monoio's owned-buffer I/O).
//! - `own`: ringway's `engine/src/h2` layer as ringway's connection task
//!   drives it — `Session` for the frames, a writer task for `out`, a task
//!   per stream reading the body and writing an HTTP/1.1 response through
//!   `StreamIo` (which turns it into HEADERS and DATA).
//! - `own-raw`: the same `Session`, but the stream task puts the HEADERS
//!   and DATA frames in itself (no HTTP/1.1 response to parse): the frame
//!   layer alone.
//!
//! Every server: cleartext HTTP/2 with prior knowledge, one thread, monoio
//! on io_uring (the ring flags ringway's workers try first), pinned to the
//! CPU given, mimalloc as in ringway. Request bodies are read to their end.
//!
//! Usage: h2-choice MODE --port PORT [--cpu N] [--lifetime SECS] [--max-conns N]
//!        h2-choice hpack [CPU]   (the HPACK micro-measurement, see `hpack_micro`)
//! The server stops by itself after `--lifetime` seconds (default 600) or
//! once `--max-conns` connections (default 100000) have been accepted and
//! served.

use bytes::Bytes;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Splitable};
use monoio::net::{TcpListener, TcpStream};
use ringway::h2::frame::{PREFACE, code};
use ringway::h2::io::{ConnInfo, StreamIo};
use ringway::h2::session::{ConnError, OUT_HIGH, Session};
use ringway::h2::{H2Settings, fields};
use std::cell::RefCell;
use std::future::poll_fn;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BODY: &[u8] = b"hello, world\n";
/// What the `own` stream task writes: StreamIo parses it like an upstream
/// response and sends HEADERS (:status, content-length) and one DATA frame.
const H1_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\n\r\nhello, world\n";
/// Reads on one connection before it is dropped (a bound, far above any run).
const MAX_READS_PER_CONN: u64 = 100_000_000;
/// How long a stream may wait for a window or for the writer.
const BODY_IDLE: Duration = Duration::from_secs(10);
const READ_CHUNK: usize = 16 * 1024;

// The HTTP/2 settings both servers announce, ringway's defaults
// (`[server.h2]`): 128 streams, 256 KiB stream window, 16 KiB frames and
// header lists.
const MAX_STREAMS: u32 = 128;
const STREAM_WINDOW: u32 = 256 * 1024;
const MAX_FRAME: u32 = 16 * 1024;
const MAX_HEADER_LIST: u32 = 16 * 1024;
/// monoio-http's connection window. ringway's grows with the streams open
/// (stream window × streams, up to 2^31-1); 64 streams × 256 KiB is what
/// it reaches at h2load's -m 64, so monoio-http gets that from the start.
const CONN_WINDOW: u32 = 64 * STREAM_WINDOW;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    MonoioHttp,
    Own,
    OwnRaw,
}

struct Args {
    mode: Mode,
    port: u16,
    cpu: Option<usize>,
    lifetime: Duration,
    max_conns: u64,
}

fn usage() -> ! {
    eprintln!(
        "usage: h2-choice monoio-http|own|own-raw --port PORT [--cpu N] [--lifetime SECS] [--max-conns N]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mode = match argv.first().map(String::as_str) {
        Some("monoio-http") => Mode::MonoioHttp,
        Some("own") => Mode::Own,
        Some("own-raw") => Mode::OwnRaw,
        _ => usage(),
    };
    let mut a = Args {
        mode,
        port: 0,
        cpu: None,
        lifetime: Duration::from_secs(600),
        max_conns: 100_000,
    };
    let mut i = 1;
    while i < argv.len() {
        let v = argv.get(i + 1).unwrap_or_else(|| usage());
        match argv[i].as_str() {
            "--port" => a.port = v.parse().unwrap_or_else(|_| usage()),
            "--cpu" => a.cpu = Some(v.parse().unwrap_or_else(|_| usage())),
            "--lifetime" => a.lifetime = Duration::from_secs(v.parse().unwrap_or_else(|_| usage())),
            "--max-conns" => a.max_conns = v.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
        i += 2;
    }
    if a.port == 0 {
        usage();
    }
    a
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("hpack") {
        hpack_micro();
        return;
    }
    let args = parse_args();
    if let Some(cpu) = args.cpu {
        let ok = core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
        if !ok {
            eprintln!("h2-choice: could not pin to CPU {cpu}");
            std::process::exit(1);
        }
    }
    // DEFER_TASKRUN (with SINGLE_ISSUER) first, as ringway's workers do;
    // then cooperative task running; then a plain ring.
    for flags in 0..3 {
        let mut ring = io_uring::IoUring::builder();
        match flags {
            0 => {
                ring.setup_coop_taskrun()
                    .setup_single_issuer()
                    .setup_defer_taskrun();
            }
            1 => {
                ring.setup_coop_taskrun();
            }
            _ => {}
        }
        let built = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .uring_builder(ring)
            .enable_timer()
            .with_entries(4096)
            .build();
        if let Ok(mut rt) = built {
            eprintln!(
                "h2-choice: {:?} on 127.0.0.1:{}, ring flags {flags}, cpu {:?}",
                args.mode, args.port, args.cpu
            );
            rt.block_on(run(args));
            return;
        }
    }
    eprintln!("h2-choice: no io_uring ring could be set up");
    std::process::exit(1);
}

async fn run(args: Args) {
    let listener = match TcpListener::bind(("127.0.0.1", args.port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("h2-choice: bind 127.0.0.1:{}: {e}", args.port);
            std::process::exit(1);
        }
    };
    let mode = args.mode;
    let accepting = async move {
        for _ in 0..args.max_conns {
            let Ok((sock, _peer)) = listener.accept().await else {
                continue;
            };
            let _ = sock.set_nodelay(true);
            match mode {
                Mode::MonoioHttp => {
                    monoio::spawn(monoio_http_conn(sock));
                }
                Mode::Own | Mode::OwnRaw => {
                    monoio::spawn(own_conn(sock, mode == Mode::OwnRaw));
                }
            }
        }
    };
    let _ = monoio::time::timeout(args.lifetime, accepting).await;
}

// ---------------------------------------------------------------- monoio-http

async fn monoio_http_conn(sock: TcpStream) {
    use monoio_http::h2::server;
    let mut b = server::Builder::new();
    b.initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONN_WINDOW)
        .max_frame_size(MAX_FRAME)
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(MAX_HEADER_LIST);
    let Ok(mut conn) = b.handshake::<_, Bytes>(sock).await else {
        return;
    };
    // The connection makes progress only while `accept` is polled: this
    // loop drives it, each request gets a task of its own.
    for _ in 0..MAX_READS_PER_CONN {
        match conn.accept().await {
            Some(Ok((req, respond))) => {
                monoio::spawn(monoio_http_stream(req, respond));
            }
            Some(Err(_)) | None => return,
        }
    }
}

async fn monoio_http_stream(
    mut req: http::Request<monoio_http::h2::RecvStream>,
    mut respond: monoio_http::h2::server::SendResponse<Bytes>,
) {
    let body = req.body_mut();
    // Bounded by the body: each chunk is at least one byte of it, except
    // for empty DATA frames, which the flood limits bound in practice.
    for _ in 0..MAX_READS_PER_CONN {
        if body.is_end_stream() {
            break;
        }
        match body.data().await {
            Some(Ok(chunk)) => {
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            Some(Err(_)) => return,
            None => break,
        }
    }
    let resp = http::Response::builder()
        .status(200)
        .header(http::header::CONTENT_LENGTH, "13")
        .body(())
        .expect("a static response");
    let Ok(mut send) = respond.send_response(resp, false) else {
        return;
    };
    let _ = send.send_data(Bytes::from_static(BODY), true);
}

// ---------------------------------------------------------------- own layer

async fn own_conn(sock: TcpStream, raw: bool) {
    let fd = sock.as_raw_fd();
    let Ok(local) = sock.local_addr() else {
        return;
    };
    let conn = ConnInfo {
        tls: false,
        local,
        fd,
    };
    let cfg = H2Settings {
        max_concurrent_streams: MAX_STREAMS,
        initial_window: STREAM_WINDOW,
        max_frame_size: MAX_FRAME,
        max_header_list: MAX_HEADER_LIST as usize,
        ..H2Settings::default()
    };
    let (mut rd, wr) = sock.into_split();
    let sess = Rc::new(RefCell::new(Session::new(
        cfg,
        ringway::h1::limits::DEFAULT_MAX_HEAD_BYTES,
        fd,
    )));
    sess.borrow_mut().start();
    let writing = monoio::spawn(own_write_loop(wr, sess.clone()));
    let ended = own_read_loop(&sess, &mut rd, conn, raw).await;
    {
        let mut s = sess.borrow_mut();
        match ended {
            Some(e) => s.send_goaway(e.code),
            None => s.send_goaway(code::NO_ERROR),
        }
        s.kill();
    }
    let _ = writing.await;
}

/// Reads frames into the session and starts a task per new stream, as
/// ringway's `proxy/h2conn.rs` does (without idle marks and metrics).
async fn own_read_loop<R: AsyncReadRent>(
    sess: &Rc<RefCell<Session>>,
    rd: &mut R,
    conn: ConnInfo,
    raw: bool,
) -> Option<ConnError> {
    let mut preface = false;
    let frame_room = sess.borrow().cfg.max_frame_size as usize + 9;
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    for _ in 0..MAX_READS_PER_CONN {
        // A client that does not read what we owe it waits for its socket.
        let backlog = poll_fn(|cx| {
            let mut s = sess.borrow_mut();
            if s.dead || s.out.len() < 2 * OUT_HIGH {
                Poll::Ready(())
            } else {
                s.wait(cx.waker());
                Poll::Pending
            }
        });
        backlog.await;
        if buf.capacity() - buf.len() < frame_room.min(16 * 1024) {
            buf.reserve(frame_room);
        }
        let (len, cap) = (buf.len(), buf.capacity());
        let (r, slice) = rd
            .read(monoio::buf::IoBufMut::slice_mut(buf, len..cap))
            .await;
        buf = slice.into_inner();
        match r {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        if !preface {
            let n = buf.len().min(PREFACE.len());
            if buf[..n] != PREFACE[..n] {
                return Some(ConnError {
                    code: code::PROTOCOL_ERROR,
                    why: "no client preface",
                });
            }
            if n < PREFACE.len() {
                continue;
            }
            buf.drain(..PREFACE.len());
            preface = true;
        }
        let used = sess.borrow_mut().receive(&buf);
        match used {
            Ok(n) => {
                buf.drain(..n);
            }
            Err(e) => return Some(e),
        }
        let started = std::mem::take(&mut sess.borrow_mut().started);
        for id in started {
            let sess = sess.clone();
            if raw {
                monoio::spawn(own_raw_stream(sess, id));
            } else {
                monoio::spawn(own_stream(sess, id, conn));
            }
        }
    }
    None
}

/// Sends what the session queues until the connection is over.
async fn own_write_loop<W: AsyncWriteRent>(mut wr: W, sess: Rc<RefCell<Session>>) {
    let mut buf = Vec::new();
    for _ in 0..MAX_READS_PER_CONN {
        let ready = poll_fn(|cx| {
            let mut s = sess.borrow_mut();
            if !s.out.is_empty() {
                std::mem::swap(&mut s.out, &mut buf);
                s.wake_waiting();
                Poll::Ready(true)
            } else if s.dead {
                Poll::Ready(false)
            } else {
                s.writer = Some(cx.waker().clone());
                Poll::Pending
            }
        });
        if !ready.await {
            break;
        }
        let owned = std::mem::take(&mut buf);
        match monoio::time::timeout(BODY_IDLE, wr.write_all(owned)).await {
            Ok((Ok(_), b)) => {
                buf = b;
                buf.clear();
            }
            _ => {
                sess.borrow_mut().kill();
                return;
            }
        }
    }
    let _ = monoio::time::timeout(BODY_IDLE, wr.shutdown()).await;
}

/// One stream as ringway runs it: the request body read through
/// `StreamIo` (as the exchange's body relay would), the response written
/// to it as HTTP/1.1 bytes.
async fn own_stream(sess: Rc<RefCell<Session>>, id: u32, conn: ConnInfo) {
    let (is_head, recv_end) = {
        let mut s = sess.borrow_mut();
        let Some(st) = s.streams.get_mut(&id) else {
            return;
        };
        // The HTTP/1.1 head the session built; ringway parses it next.
        drop(std::mem::take(&mut st.head));
        (st.request.is_head, st.recv_end)
    };
    let mut io = StreamIo::new(sess.clone(), id, conn, (is_head, BODY_IDLE));
    if !recv_end {
        let mut rbuf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
        for _ in 0..MAX_READS_PER_CONN {
            let (r, b) = io.read(rbuf).await;
            rbuf = b;
            match r {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
    let (r, _) = io.write(H1_RESPONSE).await;
    let complete = r.is_ok() && io.end();
    sess.borrow_mut().finish(id, complete);
}

/// One stream on the session alone: body drained, HEADERS and DATA put in
/// directly.
async fn own_raw_stream(sess: Rc<RefCell<Session>>, id: u32) {
    {
        let mut s = sess.borrow_mut();
        let Some(st) = s.streams.get_mut(&id) else {
            return;
        };
        drop(std::mem::take(&mut st.head));
    }
    let mut scratch = vec![0u8; READ_CHUNK];
    for _ in 0..MAX_READS_PER_CONN {
        let r = poll_fn(
            |cx| match sess.borrow_mut().read_body(id, &mut scratch, cx.waker()) {
                Some(r) => Poll::Ready(r),
                None => Poll::Pending,
            },
        )
        .await;
        match r {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => {
                sess.borrow_mut().finish(id, false);
                return;
            }
        }
    }
    let mut block = Vec::with_capacity(32);
    fields::put_status(&mut block, 200);
    fields::put_field(&mut block, b"content-length", b"13");
    let room = poll_fn(|cx| match sess.borrow_mut().has_room(cx.waker()) {
        Ok(true) => Poll::Ready(true),
        Ok(false) => Poll::Pending,
        Err(_) => Poll::Ready(false),
    });
    if !room.await {
        sess.borrow_mut().finish(id, false);
        return;
    }
    sess.borrow_mut().send_headers(id, &block, false);
    let mut left = BODY;
    for _ in 0..BODY.len() {
        let n = poll_fn(|cx| match sess.borrow_mut().send_capacity(id, cx.waker()) {
            Ok(0) => Poll::Pending,
            Ok(n) => Poll::Ready(Some(n)),
            Err(_) => Poll::Ready(None),
        })
        .await;
        let Some(n) = n else {
            sess.borrow_mut().finish(id, false);
            return;
        };
        let n = n.min(left.len());
        sess.borrow_mut().send_data(id, &left[..n], n == left.len());
        left = &left[n..];
        if left.is_empty() {
            break;
        }
    }
    sess.borrow_mut().finish(id, left.is_empty());
}

// ---------------------------------------------------------------- hpack micro

/// Time per decode of one request field, `:path: /api/v1/items/12345` as a
/// literal without indexing (indexed name), the way nghttp2 sends it:
/// through loona-hpack (what `engine/src/h2` uses) with the value
/// Huffman-coded and raw, and the Huffman string alone through
/// httlib-huffman (what ringway-load's HPACK decoder uses). A fixed number
/// of iterations each; prints ns per decode.
fn hpack_micro() {
    use std::hint::black_box;
    use std::time::Instant;
    if let Some(cpu) = std::env::args().nth(2).and_then(|c| c.parse().ok()) {
        core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
    }
    const ITERS: u32 = 200_000;
    let value = b"/api/v1/items/12345";
    let mut huff = Vec::new();
    httlib_huffman::encode(value, &mut huff).expect("encodable");
    // 0x04: literal without indexing, name = static index 4 (:path).
    let block_huff: Vec<u8> = [&[0x04, 0x80 | huff.len() as u8][..], &huff].concat();
    let block_raw: Vec<u8> = [&[0x04, value.len() as u8][..], &value[..]].concat();
    let time = |name: &str, f: &mut dyn FnMut() -> usize| {
        let mut sink = 0usize;
        for _ in 0..ITERS / 10 {
            sink = sink.wrapping_add(f());
        }
        let t = Instant::now();
        for _ in 0..ITERS {
            sink = sink.wrapping_add(f());
        }
        let ns = t.elapsed().as_nanos() as f64 / f64::from(ITERS);
        println!("{name:52} {ns:>10.1} ns/decode (sink {})", sink % 7);
    };
    let mut dec = loona_hpack::Decoder::new();
    time("loona-hpack 0.4.3, :path Huffman-coded", &mut || {
        let mut n = 0;
        dec.decode_with_cb(black_box(&block_huff), |_, v| n += v.len())
            .expect("valid block");
        n
    });
    let mut dec = loona_hpack::Decoder::new();
    time("loona-hpack 0.4.3, :path raw", &mut || {
        let mut n = 0;
        dec.decode_with_cb(black_box(&block_raw), |_, v| n += v.len())
            .expect("valid block");
        n
    });
    let mut out = Vec::with_capacity(64);
    time(
        "httlib-huffman 0.3.4 (5 bits), the Huffman string",
        &mut || {
            out.clear();
            httlib_huffman::decode(
                black_box(&huff),
                &mut out,
                httlib_huffman::DecoderSpeed::FiveBits,
            )
            .expect("valid Huffman");
            assert_eq!(out, value);
            out.len()
        },
    );
}
