//! Pooled upstream connections the upstream closes (FIN) or resets (RST)
//! while they sit idle are dropped from the pool as the close happens —
//! seen by the pool's close watch, with no request needed to find out —
//! so the next request, even a POST (never retried), goes out on a new
//! connection. Both monoio drivers; plain and TLS upstreams.

use ringway_tests::client::{connect, read_response};
use ringway_tests::gateway::TempDir;
use ringway_tests::pki::{self, Ca};
use ringway_tests::{Gateway, on_both_drivers, prom, wait_until};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

fn config(upstream: SocketAddr, tls: Option<&std::path::Path>) -> String {
    let (scheme, tls) = match tls {
        Some(ca) => (
            "https://",
            format!(
                "tls = {{ ca = \"{}\", server_name = \"backend.local\" }}\n",
                ca.display()
            ),
        ),
        None => ("", String::new()),
    };
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\npin = false\n\n[server.admin]\nlisten = \"127.0.0.1:0\"\n\n[[upstream]]\nname = \"app\"\ntargets = [\"{scheme}{upstream}\"]\n{tls}connect_timeout = \"2s\"\nresponse_timeout = \"5s\"\n\n[[route]]\npath = \"/{{proxy+}}\"\nupstream = \"app\"\n"
    )
}

/// Summed over the workers.
fn metric(admin: SocketAddr, name: &str) -> f64 {
    prom::value(&prom::scrape(admin), name, &[])
}

/// Reads one request head (and a `Content-Length` body) from `s`; returns
/// its request line.
fn read_request(s: &mut impl Read) -> String {
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

fn respond(s: &mut impl Write, body: &str) {
    let r = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(r.as_bytes()).expect("write response");
    s.flush().expect("flush response");
}

/// How the origin ends its first connection.
#[derive(Clone, Copy)]
enum Close {
    /// close(2): a FIN.
    Fin,
    /// `SO_LINGER` 0, then close(2): an RST.
    Reset,
    /// TLS: a close_notify alert, then a FIN.
    TlsNotify,
}

/// An origin that answers one GET on its first connection and keeps it
/// open until told to close it (as `close` says); then answers a request
/// on a second connection. It reports the request line the second
/// connection carried. With `tls`, both connections are TLS.
fn origin(
    close: Close,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) -> (SocketAddr, mpsc::Sender<()>, thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tell, told) = mpsc::channel::<()>();
    let wrap = move |s: TcpStream| -> Box<dyn ReadWrite> {
        match &tls {
            Some(config) => {
                let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                Box::new(rustls::StreamOwned::new(conn, s))
            }
            None => Box::new(s),
        }
    };
    let handle = thread::spawn(move || {
        let (first, _) = listener.accept().unwrap();
        if let Close::Reset = close {
            socket2::SockRef::from(&first)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
        }
        let mut first = wrap(first);
        assert!(read_request(&mut first).starts_with("GET "));
        respond(&mut first, "first");
        told.recv_timeout(Duration::from_secs(30))
            .expect("told to close");
        if let Close::TlsNotify = close {
            first.close_notify();
        }
        drop(first);
        let (second, _) = listener.accept().unwrap();
        let mut second = wrap(second);
        let line = read_request(&mut second);
        respond(&mut second, "second");
        line
    });
    (addr, tell, handle)
}

/// A plain or TLS server-side stream.
trait ReadWrite: Read + Write + Send {
    /// Sends a TLS close_notify (nothing for plain TCP).
    fn close_notify(&mut self) {}
}

impl ReadWrite for TcpStream {}

impl ReadWrite for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn close_notify(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush();
    }
}

fn idle_upstream_close_is_seen_before_the_next_request(close: Close, tls: bool) {
    let dir = TempDir::new();
    let ca = Ca::new("backend ca");
    let ca_file = dir.0.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let server = tls.then(|| pki::server_config(&ca.server(&["backend.local"])));
    on_both_drivers(|env| {
        let (addr, tell, origin) = origin(close, server.clone());
        let gw = Gateway::start_with_env(&config(addr, tls.then_some(&*ca_file)), env);
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
        tell.send(()).unwrap();
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
    idle_upstream_close_is_seen_before_the_next_request(Close::Fin, false);
}

#[test]
fn an_idle_pooled_connection_the_upstream_resets_is_dropped_at_once() {
    idle_upstream_close_is_seen_before_the_next_request(Close::Reset, false);
}

#[test]
fn an_idle_pooled_tls_connection_the_upstream_closes_is_dropped_at_once() {
    // Never peeked before the close watch (session tickets look like stray bytes).
    idle_upstream_close_is_seen_before_the_next_request(Close::TlsNotify, true);
}
