//! The admin listener serves clients concurrently: slow or stuck clients
//! cannot hold `/healthz` and `/metrics` for everybody else.

use ringway_tests::client::{connect, get, read_response};
use ringway_tests::{Gateway, Origin};
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

fn config(upstream: SocketAddr) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n\n[server.admin]\nlisten = \"127.0.0.1:0\"\n\n[[upstream]]\nname = \"app\"\ntargets = [\"{upstream}\"]\n\n[[route]]\npath = \"/{{proxy+}}\"\nupstream = \"app\"\n"
    )
}

#[test]
fn healthz_answers_while_200_clients_drip_their_requests() {
    let origin = Origin::echo();
    let gw = Gateway::start(&config(origin.addr));
    let admin = gw.admin_addr();
    // 200 clients, each with half a request head sent and the rest withheld.
    let mut slow: Vec<_> = (0..200)
        .map(|_| {
            let mut s = connect(admin);
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: a").unwrap();
            s
        })
        .collect();
    for _ in 0..5 {
        let r = get(admin, "/healthz");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"ok\n");
    }
    assert_eq!(get(admin, "/metrics").status, 200);
    // The slow clients are still being served: finishing a head gets an answer.
    let s = &mut slow[7];
    s.write_all(b"\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let r = read_response(s, &mut buf, false).expect("a response");
    assert_eq!(r.status, 200);
}

#[test]
fn oversized_heads_and_bodies_are_refused() {
    let origin = Origin::echo();
    let gw = Gateway::start(&config(origin.addr));
    let admin = gw.admin_addr();
    let mut s = connect(admin);
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut head = b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Fill: ".to_vec();
    head.resize(20 * 1024, b'a');
    let _ = s.write_all(&head);
    let mut buf = Vec::new();
    assert_eq!(
        read_response(&mut s, &mut buf, false).map(|r| r.status),
        Some(431)
    );

    let mut s = connect(admin);
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    assert_eq!(
        read_response(&mut s, &mut buf, false).map(|r| r.status),
        Some(413)
    );

    // A small body is read and ignored.
    let mut s = connect(admin);
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
        .unwrap();
    let mut buf = Vec::new();
    assert_eq!(
        read_response(&mut s, &mut buf, false).map(|r| r.status),
        Some(200)
    );
}
