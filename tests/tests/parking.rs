//! Parked idle connections (`keepalive_park`): a plain keep-alive
//! connection idle past it gives up its task and waits in the worker's
//! epoll set. Whatever arrives next on it (requests, pipelined requests, a
//! body, end of stream) must be served exactly as on a connection that never
//! parked, and the sweep and the drain must still close it.

use ringway_tests::client::{closed_within, connect, read_response};
use ringway_tests::{Gateway, Origin, on_both_drivers, prom, sha256, wait_until};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

fn config(upstream: SocketAddr, timeouts: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 2\nshutdown_timeout = \"10s\"\n\n[server.timeouts]\n{timeouts}\n\n[server.admin]\nlisten = \"127.0.0.1:0\"\n\n[[upstream]]\nname = \"app\"\ntargets = [\"{upstream}\"]\n\n[[route]]\npath = \"/{{proxy+}}\"\nupstream = \"app\"\n"
    )
}

/// Summed over the workers.
fn gauge(admin: SocketAddr, name: &str) -> f64 {
    prom::value(&prom::scrape(admin), name, &[])
}

fn parked(admin: SocketAddr) -> f64 {
    gauge(admin, "ringway_connections_parked")
}

fn open(admin: SocketAddr) -> f64 {
    gauge(admin, "ringway_connections_open")
}

/// Sends `raw` and checks the `targets` come back in order, each a 200 from
/// the echo origin for that target.
fn exchange(s: &mut TcpStream, raw: &[u8], targets: &[&str]) {
    s.write_all(raw).unwrap();
    let mut buf = Vec::new();
    for t in targets {
        let r = read_response(s, &mut buf, false).expect("a response");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-target"), Some(*t));
    }
    assert!(buf.is_empty(), "nothing beyond the responses");
}

#[test]
fn parked_connections_serve_their_next_requests_and_close_on_eof_and_drain() {
    on_both_drivers(|env| {
        let origin = Origin::echo();
        let text = config(origin.addr, "keepalive_park = \"100ms\"");
        let mut gw = Gateway::start_with_env(&text, env);
        let admin = gw.admin_addr();
        const N: usize = 24;
        let mut conns: Vec<TcpStream> = (0..N)
            .map(|i| {
                let mut s = connect(gw.addr);
                let t = format!("/first/{i}");
                exchange(
                    &mut s,
                    format!("GET {t} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
                    &[&t],
                );
                s
            })
            .collect();
        // The admin scrape's own connection is not kept alive, so it never parks.
        assert!(
            wait_until(|| parked(admin) == N as f64),
            "parked: {}",
            parked(admin)
        );
        assert_eq!(open(admin), N as f64);

        // What arrives on a parked connection: one request, two pipelined in
        // one write, or a request with a body.
        let body = ringway_tests::pattern(100_000, 7);
        for (i, s) in conns.iter_mut().enumerate() {
            match i % 3 {
                0 => {
                    let t = format!("/second/{i}");
                    exchange(
                        s,
                        format!("GET {t} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
                        &[&t],
                    );
                }
                1 => {
                    let (a, b) = (format!("/p1/{i}"), format!("/p2/{i}"));
                    let raw = format!(
                        "GET {a} HTTP/1.1\r\nHost: t\r\n\r\nGET {b} HTTP/1.1\r\nHost: t\r\n\r\n"
                    );
                    exchange(s, raw.as_bytes(), &[&a, &b]);
                }
                _ => {
                    let t = format!("/post/{i}");
                    let mut raw = format!(
                        "POST {t} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    raw.extend_from_slice(&body);
                    s.write_all(&raw).unwrap();
                    let r = read_response(s, &mut Vec::new(), false).unwrap();
                    assert_eq!(r.status, 200);
                    assert_eq!(r.header("x-target"), Some(t.as_str()));
                    assert_eq!(r.header("x-body-sha256"), Some(sha256(&body).as_str()));
                }
            }
        }
        // The origin saw each request once: N first ones, then N + N/3 (pipelined pairs).
        let seen = origin.seen();
        assert_eq!(seen.len(), N + N + N / 3, "requests at the origin");

        // They park again; a client that closes a parked connection frees it.
        assert!(wait_until(|| parked(admin) == N as f64));
        let keep = conns.split_off(N / 2);
        drop(conns);
        assert!(
            wait_until(|| open(admin) == (N / 2) as f64 && parked(admin) == (N / 2) as f64),
            "open {} parked {}",
            open(admin),
            parked(admin)
        );

        // Draining closes parked connections at once: nothing is cut off.
        gw.signal(libc::SIGTERM);
        for mut s in keep {
            assert!(closed_within(&mut s, Duration::from_secs(10)));
        }
        assert_eq!(gw.wait_exit(Duration::from_secs(10)), Some(0));
        let drained: Vec<String> = gw
            .log()
            .into_iter()
            .filter(|l| l.contains("drained: waited"))
            .collect();
        assert_eq!(drained.len(), 2, "{drained:#?}");
        assert!(
            drained.iter().all(|l| l.contains(" 0 cut off")),
            "{drained:#?}"
        );
    });
}

#[test]
fn parked_connections_still_close_after_keepalive_idle() {
    let origin = Origin::echo();
    let text = config(
        origin.addr,
        "keepalive_park = \"100ms\"\nkeepalive_idle = \"1s\"",
    );
    let gw = Gateway::start(&text);
    let admin = gw.admin_addr();
    let mut s = connect(gw.addr);
    let quiet = std::time::Instant::now();
    exchange(&mut s, b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n", &["/a"]);
    assert!(wait_until(|| parked(admin) == 1.0));
    assert!(closed_within(&mut s, Duration::from_secs(10)));
    let after = quiet.elapsed();
    assert!(
        after >= Duration::from_millis(900),
        "closed after {after:?}"
    );
    assert!(wait_until(|| open(admin) == 0.0 && parked(admin) == 0.0));
}

#[test]
fn keepalive_park_zero_never_parks() {
    let origin = Origin::echo();
    let text = config(
        origin.addr,
        "keepalive_park = \"0s\"\nkeepalive_idle = \"1s\"",
    );
    let gw = Gateway::start(&text);
    let admin = gw.admin_addr();
    let mut s = connect(gw.addr);
    exchange(&mut s, b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n", &["/a"]);
    // Until keepalive_idle closes it (1 s: with `keepalive_park = "100ms"`
    // it would have parked within the first two sweeps), it is never parked.
    let mut samples = 0;
    while !closed_within(&mut s, Duration::from_millis(100)) {
        assert_eq!(parked(admin), 0.0);
        samples += 1;
        assert!(samples < 200, "keepalive_idle never closed the connection");
    }
    assert!(samples >= 3, "sampled {samples} times");
}

#[test]
fn idle_connections_close_at_keepalive_idle_not_header_read_on_both_drivers() {
    // On the epoll driver an idle wait that returned at once (a "relaxed"
    // readiness wait after a read that filled the buffer) left the
    // connection in its next head read, which `header_read` closed.
    on_both_drivers(|env| {
        let origin = Origin::echo();
        let text = config(
            origin.addr,
            "keepalive_park = \"0s\"\nheader_read = \"1s\"\nkeepalive_idle = \"3s\"",
        );
        let gw = Gateway::start_with_env(&text, env);
        let mut s = connect(gw.addr);
        exchange(&mut s, b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n", &["/a"]);
        let quiet = std::time::Instant::now();
        assert!(closed_within(&mut s, Duration::from_secs(20)));
        let after = quiet.elapsed();
        assert!(
            after >= Duration::from_millis(2900),
            "closed after {after:?} ({env:?})"
        );
    });
}

#[test]
fn tls_connections_do_not_park_plain_ones_beside_them_do() {
    use ringway_tests::gateway::TempDir;
    use ringway_tests::pki::{self, Ca};
    let origin = Origin::echo();
    let dir = TempDir::new();
    let ca = Ca::new("park ca");
    let (cert, key) = ca.server(&["site.test"]).write(&dir.0, "site");
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:0\", {{ addr = \"127.0.0.1:0\", tls = {{ cert = \"{}\", key = \"{}\" }} }}]\nworkers = 1\n\n[server.timeouts]\nkeepalive_park = \"100ms\"\n\n[server.admin]\nlisten = \"127.0.0.1:0\"\n\n[[upstream]]\nname = \"app\"\ntargets = [\"{}\"]\n\n[[route]]\npath = \"/{{proxy+}}\"\nupstream = \"app\"\n",
        cert.display(),
        key.display(),
        origin.addr
    );
    let gw = Gateway::start(&text);
    let admin = gw.admin_addr();
    let (plain_addr, tls_addr) = (gw.addrs[0], gw.addrs[1]);
    let config = pki::client_config(&ca, None);
    let mut tls = pki::connect(tls_addr, &config, "site.test").unwrap();
    let get = |s: &mut dyn std::io::Write, t: &str| {
        s.write_all(format!("GET {t} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .unwrap();
    };
    // The TLS connection goes idle first: any sweep that parks the plain
    // one has passed the TLS one's park time too.
    get(&mut tls, "/tls/1");
    let r = read_response(&mut tls, &mut Vec::new(), false).unwrap();
    assert_eq!(r.header("x-target"), Some("/tls/1"));
    let mut plain = connect(plain_addr);
    exchange(
        &mut plain,
        b"GET /plain/1 HTTP/1.1\r\nHost: t\r\n\r\n",
        &["/plain/1"],
    );
    assert!(wait_until(|| parked(admin) == 1.0));
    for _ in 0..3 {
        assert_eq!(parked(admin), 1.0, "only the plain connection parks");
    }
    assert_eq!(open(admin), 2.0);
    // Both go on serving.
    get(&mut tls, "/tls/2");
    let r = read_response(&mut tls, &mut Vec::new(), false).unwrap();
    assert_eq!(r.header("x-target"), Some("/tls/2"));
    exchange(
        &mut plain,
        b"GET /plain/2 HTTP/1.1\r\nHost: t\r\n\r\n",
        &["/plain/2"],
    );
}
