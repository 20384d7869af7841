//! Pooled upstream connections the upstream closes (FIN) or resets (RST)
//! while they sit idle are dropped from the pool as the close happens —
//! seen by the pool's close watch, with no request needed to find out —
//! so the next request, even a POST (never retried), goes out on a new
//! connection. Both monoio drivers.

use ringway_tests::client::{connect, read_response};
use ringway_tests::{Gateway, on_both_drivers, prom, wait_until};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

fn config(upstream: SocketAddr) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\npin = false\n\n[server.admin]\nlisten = \"127.0.0.1:0\"\n\n[[upstream]]\nname = \"app\"\ntargets = [\"{upstream}\"]\nconnect_timeout = \"2s\"\nresponse_timeout = \"5s\"\n\n[[route]]\npath = \"/{{proxy+}}\"\nupstream = \"app\"\n"
    )
}

/// Summed over the workers.
fn metric(admin: SocketAddr, name: &str) -> f64 {
    prom::value(&prom::scrape(admin), name, &[])
}

/// Reads one request head (and a `Content-Length` body) from `s`; returns
/// its request line.
fn read_request(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).expect("read request"),
            1,
            "request cut off"
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).expect("ASCII head");
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("request body");
    head.lines().next().unwrap_or_default().to_string()
}

fn respond(s: &mut TcpStream, body: &str) {
    let r = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(r.as_bytes()).expect("write response");
}

/// An origin that answers one GET on its first connection and keeps it
/// open until told to close it (`reset`: with an RST, via `SO_LINGER` 0);
/// then answers a request on a second connection. It reports the request
/// line the second connection carried.
fn origin(reset: bool) -> (SocketAddr, mpsc::Sender<()>, thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (close, closing) = mpsc::channel::<()>();
    let handle = thread::spawn(move || {
        let (mut first, _) = listener.accept().unwrap();
        assert!(read_request(&mut first).starts_with("GET "));
        respond(&mut first, "first");
        closing
            .recv_timeout(Duration::from_secs(30))
            .expect("told to close");
        if reset {
            socket2::SockRef::from(&first)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
        }
        drop(first);
        let (mut second, _) = listener.accept().unwrap();
        let line = read_request(&mut second);
        respond(&mut second, "second");
        line
    });
    (addr, close, handle)
}

fn idle_upstream_close_is_seen_before_the_next_request(reset: bool) {
    on_both_drivers(|env| {
        let (addr, close, origin) = origin(reset);
        let gw = Gateway::start_with_env(&config(addr), env);
        let admin = gw.admin_addr();
        let mut s = connect(gw.addr);
        let mut buf = Vec::new();
        s.write_all(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let r = read_response(&mut s, &mut buf, false).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"first"[..]));
        assert!(wait_until(|| metric(
            admin,
            "ringway_upstream_idle_connections"
        ) == 1.0));
        close.send(()).unwrap();
        // No request goes out meanwhile: the watch alone drops it.
        assert!(
            wait_until(|| metric(admin, "ringway_upstream_pool_closed_total") == 1.0),
            "closed: {}",
            metric(admin, "ringway_upstream_pool_closed_total")
        );
        assert_eq!(metric(admin, "ringway_upstream_idle_connections"), 0.0);
        // A POST is never retried: it succeeds only if it goes on a new connection.
        s.write_all(b"POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi")
            .unwrap();
        let r = read_response(&mut s, &mut buf, false).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"second"[..]));
        assert_eq!(origin.join().unwrap(), "POST /b HTTP/1.1");
        assert_eq!(metric(admin, "ringway_upstream_connects_total"), 2.0);
        assert_eq!(metric(admin, "ringway_upstream_retries_total"), 0.0);
    });
}

#[test]
fn an_idle_pooled_connection_the_upstream_closes_is_dropped_at_once() {
    idle_upstream_close_is_seen_before_the_next_request(false);
}

#[test]
fn an_idle_pooled_connection_the_upstream_resets_is_dropped_at_once() {
    idle_upstream_close_is_seen_before_the_next_request(true);
}
