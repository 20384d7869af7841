//! Only WebSocket upgrades are tunnelled, and they work over TLS on either
//! side; any other `Upgrade` (h2c above all) is dropped and the request
//! served as a plain one, and an upstream that switches protocols unasked
//! gets a 502.

use ringway_tests::gateway::TempDir;
use ringway_tests::pki::{self, Ca};
use ringway_tests::{Gateway, Origin, send_raw, ws};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};

fn config(listen: &str, upstream: &str, tls: &str) -> String {
    format!(
        "[server]\nlisten = [{listen}]\nworkers = 1\n\n[[upstream]]\nname = \"app\"\ntargets = [\"{upstream}\"]\n{tls}\n\n[[route]]\npath = \"/{{proxy+}}\"\nupstream = \"app\"\n"
    )
}

#[test]
fn an_h2c_upgrade_is_served_as_a_plain_request() {
    let origin = Origin::echo();
    let gw = Gateway::start(&config("\"127.0.0.1:0\"", &origin.addr.to_string(), ""));
    let r = send_raw(
        gw.addr,
        b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    for name in ["upgrade", "http2-settings"] {
        assert_eq!(seen[0].header(name), None, "{name} was forwarded");
    }
    assert!(
        seen[0]
            .headers_named("connection")
            .iter()
            .all(|v| !v.to_ascii_lowercase().contains("upgrade")),
        "{:?}",
        seen[0].headers
    );
    // Not even alongside HTTP2-Settings without Connection naming it.
    let r = send_raw(
        gw.addr,
        b"GET /y HTTP/1.1\r\nHost: t\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(origin.seen()[1].header("http2-settings"), None);
}

/// An upstream that answers every request with a 101 and then waits to see
/// whether the connection stays open: it reports EOF (ringway closed it).
fn switching_upstream() -> (SocketAddr, std::sync::mpsc::Receiver<bool>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            s.set_read_timeout(Some(ringway_tests::WAIT)).ok();
            let mut buf = [0u8; 4096];
            let mut head = Vec::new();
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = s.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n",
            );
            let closed = matches!(s.read(&mut buf), Ok(0));
            let _ = tx.send(closed);
        }
    });
    (addr, rx)
}

#[test]
fn a_101_nobody_asked_for_is_a_502_and_the_upstream_connection_closes() {
    let (up, closed) = switching_upstream();
    let gw = Gateway::start(&config("\"127.0.0.1:0\"", &up.to_string(), ""));
    for raw in [
        &b"GET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"[..],
        b"GET /b HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nConnection: close\r\n\r\n",
    ] {
        assert_eq!(send_raw(gw.addr, raw).status, 502);
        assert_eq!(closed.recv_timeout(ringway_tests::WAIT), Ok(true));
    }
}

#[test]
fn wss_through_a_tls_listener_to_a_plain_upstream() {
    let dir = TempDir::new();
    let ca = Ca::new("ws ca");
    let (cert, key) = ca.server(&["site.test"]).write(&dir.0, "site");
    let up = ws::echo(None);
    let listen = format!(
        "{{ addr = \"127.0.0.1:0\", tls = {{ cert = \"{}\", key = \"{}\" }} }}",
        cert.display(),
        key.display()
    );
    let gw = Gateway::start(&config(&listen, &up.to_string(), ""));
    let mut socket = ws::connect_tls(gw.addr, &ca, "site.test", "/chat");
    ws::exercise(&mut socket);
}

#[test]
fn ws_to_an_https_upstream() {
    let dir = TempDir::new();
    let ca = Ca::new("upstream ca");
    let up = ws::echo(Some(pki::server_config(&ca.server(&["backend.test"]))));
    let ca_file = dir.0.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let tls = format!(
        "tls = {{ ca = \"{}\", server_name = \"backend.test\" }}",
        ca_file.display()
    );
    let gw = Gateway::start(&config("\"127.0.0.1:0\"", &format!("https://{up}"), &tls));
    let mut socket = ws::connect(gw.addr, "/chat");
    ws::exercise(&mut socket);
}

#[test]
fn wss_to_an_https_upstream() {
    let dir = TempDir::new();
    let ca = Ca::new("both ca");
    let (cert, key) = ca.server(&["site.test"]).write(&dir.0, "site");
    let up = ws::echo(Some(pki::server_config(&ca.server(&["backend.test"]))));
    let ca_file = dir.0.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let listen = format!(
        "{{ addr = \"127.0.0.1:0\", tls = {{ cert = \"{}\", key = \"{}\" }} }}",
        cert.display(),
        key.display()
    );
    let tls = format!(
        "tls = {{ ca = \"{}\", server_name = \"backend.test\" }}",
        ca_file.display()
    );
    let gw = Gateway::start(&config(&listen, &format!("https://{up}"), &tls));
    let mut socket = ws::connect_tls(gw.addr, &ca, "site.test", "/chat");
    ws::exercise(&mut socket);
}
