//! The PROXY protocol through the binary: listeners with `proxy_protocol =
//! true` take the client address from a v1 or v2 header (hand-made here,
//! and from a real HAProxy), refuse every malformed header without a byte
//! of response, and upstreams with `send_proxy_protocol` get a header
//! naming the client on each new connection, reused only for that client.

use ringway_tests::client::{closed_within, connect, read_response, read_to_close};
use ringway_tests::gateway::{TempDir, check};
use ringway_tests::haproxy::HaProxy;
use ringway_tests::{Gateway, Origin, pki, prom};
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// A v2 header, command PROXY over TCP, naming `client` → `local`.
fn v2(client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    let mut h = SIG.to_vec();
    h.push(0x21);
    match (client.ip(), local.ip()) {
        (IpAddr::V4(c), IpAddr::V4(l)) => {
            h.extend_from_slice(&[0x11, 0, 12]);
            h.extend_from_slice(&c.octets());
            h.extend_from_slice(&l.octets());
        }
        (IpAddr::V6(c), IpAddr::V6(l)) => {
            h.extend_from_slice(&[0x21, 0, 36]);
            h.extend_from_slice(&c.octets());
            h.extend_from_slice(&l.octets());
        }
        _ => unreachable!("one family"),
    }
    h.extend_from_slice(&client.port().to_be_bytes());
    h.extend_from_slice(&local.port().to_be_bytes());
    h
}

/// A v2 `LOCAL` header (the balancer's own health check): no address block.
fn v2_local() -> Vec<u8> {
    let mut h = SIG.to_vec();
    h.extend_from_slice(&[0x20, 0x00, 0, 0]);
    h
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn config(upstream: SocketAddr, log: &Path, extra_listen: &str, rest: &str) -> String {
    format!(
        "[server]\nlisten = [{{ addr = \"127.0.0.1:0\", proxy_protocol = true }}{extra_listen}]\nworkers = 1\n\n[server.timeouts]\nheader_read = \"1s\"\n\n[server.admin]\nlisten = \"127.0.0.1:0\"\n\n[server.access_log]\npath = \"{}\"\nformat = \"json\"\n\n[[upstream]]\nname = \"app\"\ntargets = [\"{upstream}\"]\n\n{rest}[[route]]\npath = \"/{{proxy+}}\"\nupstream = \"app\"\n",
        log.display()
    )
}

/// A gateway with one `proxy_protocol` listener (plus `extra_listen`),
/// a JSON access log and an echoing origin; `rest` goes before its route.
/// The directory holds the log: keep it until the end.
fn rig(
    env: &[(&str, &str)],
    extra_listen: &str,
    rest: &str,
) -> (Gateway, Origin, PathBuf, TempDir) {
    let dir = TempDir::new();
    let log = dir.0.join("access.log");
    let origin = Origin::echo();
    let gw = Gateway::start_with_env(&config(origin.addr, &log, extra_listen, rest), env);
    (gw, origin, log, dir)
}

/// Sends `header` then a GET for `path` on one connection; the response.
fn get_after(gw: SocketAddr, header: &[u8], path: &str) -> ringway_tests::Response {
    let mut s = connect(gw);
    s.write_all(header).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    read_response(&mut s, &mut Vec::new(), false).expect("a response")
}

/// The access log line for `path` (waits, bounded, for the writer).
fn logged(log: &Path, path: &str) -> serde_json::Value {
    let deadline = Instant::now() + ringway_tests::WAIT;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let found = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["path"] == path);
        if let Some(v) = found {
            return v;
        }
        assert!(Instant::now() < deadline, "no log line for {path}:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn metric(gw: &Gateway, name: &str) -> f64 {
    let r = ringway_tests::client::get(gw.admin_addr(), "/metrics");
    let samples = prom::parse(&String::from_utf8(r.body).unwrap()).unwrap();
    prom::value(&samples, name, &[])
}

#[test]
fn carried_addresses_become_the_client_address() {
    ringway_tests::on_both_drivers(carried_addresses);
}

fn carried_addresses(env: &[(&str, &str)]) {
    let (gw, origin, log, _dir) = rig(env, "", "");
    let cases: [(&str, Vec<u8>, &str); 6] = [
        (
            "/v1-tcp4",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n".to_vec(),
            "192.0.2.7",
        ),
        (
            "/v1-tcp6",
            b"PROXY TCP6 2001:db8::7 2001:db8::1 56324 443\r\n".to_vec(),
            "2001:db8::7",
        ),
        ("/v1-unknown", b"PROXY UNKNOWN\r\n".to_vec(), "127.0.0.1"),
        (
            "/v2-tcp4",
            v2(addr("203.0.113.9:4000"), addr("198.51.100.1:443")),
            "203.0.113.9",
        ),
        (
            "/v2-tcp6",
            v2(addr("[2001:db8::9]:4000"), addr("[2001:db8::1]:443")),
            "2001:db8::9",
        ),
        ("/v2-local", v2_local(), "127.0.0.1"),
    ];
    for (path, header, client) in &cases {
        let r = get_after(gw.addr, header, path);
        assert_eq!(r.status, 200, "{path}");
        let seen = origin.seen();
        let s = seen.iter().find(|s| s.target == *path).expect("forwarded");
        assert_eq!(s.header("x-forwarded-for"), Some(*client), "{path}");
        assert_eq!(logged(&log, path)["client_ip"], *client, "{path}");
    }
    assert_eq!(metric(&gw, "ringway_proxy_protocol_errors_total"), 0.0);
}

#[test]
fn malformed_headers_close_the_connection_without_a_response() {
    ringway_tests::on_both_drivers(malformed_headers);
}

fn malformed_headers(env: &[(&str, &str)]) {
    let (gw, origin, _, _dir) = rig(env, "", "");
    let mut oversized = b"PROXY UNKNOWN ".to_vec();
    oversized.resize(200, b'x');
    let mut bad_family = v2(addr("192.0.2.7:1"), addr("192.0.2.8:2"));
    bad_family[13] = 0x41;
    let cases: [(&str, Vec<u8>); 5] = [
        (
            "bad signature",
            b"GET / HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
        ),
        ("oversized v1", oversized),
        (
            "bad v1 grammar",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 56324\r\nGET / HTTP/1.1\r\n\r\n".to_vec(),
        ),
        ("bad v2 family", bad_family),
        // Truncated, then silence: closed once header_read (1 s) has passed.
        (
            "truncated",
            v2(addr("192.0.2.7:1"), addr("192.0.2.8:2"))[..20].to_vec(),
        ),
    ];
    for (what, bytes) in &cases {
        let mut s = connect(gw.addr);
        s.write_all(bytes).unwrap();
        assert!(
            closed_within(&mut s, Duration::from_secs(5)),
            "{what}: still open"
        );
        let mut rest = Vec::new();
        read_to_close(&mut s, &mut rest);
        assert!(rest.is_empty(), "{what}: answered {rest:?}");
    }
    assert!(origin.seen().is_empty(), "nothing forwarded");
    assert_eq!(metric(&gw, "ringway_proxy_protocol_errors_total"), 5.0);
}

#[test]
fn the_header_comes_before_the_tls_handshake() {
    let dir = TempDir::new();
    let ca = pki::Ca::new("pp-ca");
    let (cert, key) = ca.server(&["site.test"]).write(&dir.0, "site");
    let log = dir.0.join("access.log");
    let origin = Origin::echo();
    let cfg = format!(
        "[server]\nlisten = [{{ addr = \"127.0.0.1:0\", proxy_protocol = true, tls = {{ cert = \"{}\", key = \"{}\" }} }}]\nworkers = 1\n\n[server.access_log]\npath = \"{}\"\nformat = \"json\"\n\n[[upstream]]\nname = \"app\"\ntargets = [\"{}\"]\n\n[[route]]\npath = \"/{{proxy+}}\"\nupstream = \"app\"\n",
        cert.display(),
        key.display(),
        log.display(),
        origin.addr
    );
    let gw = Gateway::start(&cfg);
    let mut tcp = connect(gw.addr);
    tcp.write_all(&v2(addr("192.0.2.44:5555"), addr("198.51.100.1:443")))
        .unwrap();
    let conn = rustls::ClientConnection::new(
        pki::client_config(&ca, None),
        rustls_pki_types::ServerName::try_from("site.test").unwrap(),
    )
    .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"GET /over-tls HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = read_response(&mut tls, &mut Vec::new(), false).expect("a response over TLS");
    assert_eq!(r.status, 200);
    let seen = origin.seen();
    assert_eq!(seen[0].header("x-forwarded-for"), Some("192.0.2.44"));
    assert_eq!(seen[0].header("x-forwarded-proto"), Some("https"));
    assert_eq!(logged(&log, "/over-tls")["client_ip"], "192.0.2.44");
}

#[test]
fn ip_rules_judge_the_carried_address() {
    // A second, plain listener: there the real peer (127.0.0.1) is the client.
    let rest = "[[route]]\npath = \"/guarded\"\nupstream = \"app\"\n[route.ip]\nallow = [\"192.0.2.0/24\"]\n\n";
    let (gw, origin, _, _dir) = rig(&[], ", \"127.0.0.1:0\"", rest);
    let admitted = v2(addr("192.0.2.7:1000"), addr("198.51.100.1:80"));
    assert_eq!(get_after(gw.addr, &admitted, "/guarded").status, 200);
    // LOCAL keeps the real peer, which the rule denies; so does the plain listener.
    assert_eq!(get_after(gw.addr, &v2_local(), "/guarded").status, 403);
    assert_eq!(get_after(gw.addrs[1], b"", "/guarded").status, 403);
    assert_eq!(origin.seen().len(), 1);
}

#[test]
fn haproxy_in_front_with_send_proxy_v2() {
    let (gw, origin, log, _dir) = rig(&[], "", "");
    // HAProxy names a documentation address as the client (its own peer is
    // 127.0.0.1, like ringway's real peer), so the test tells them apart.
    let hap = HaProxy::start(
        gw.addr,
        "  tcp-request connection set-src ipv4(192.0.2.55)",
        "send-proxy-v2",
    );
    for path in ["/through-haproxy/1", "/through-haproxy/2"] {
        let r = get_after(hap.addr, b"", path);
        assert_eq!(r.status, 200, "{path}");
        let seen = origin.seen();
        let s = seen.iter().find(|s| s.target == path).expect("forwarded");
        assert_eq!(s.header("x-forwarded-for"), Some("192.0.2.55"));
        assert_eq!(logged(&log, path)["client_ip"], "192.0.2.55");
    }
    assert_eq!(metric(&gw, "ringway_proxy_protocol_errors_total"), 0.0);
}

/// An origin that reads the PROXY header each connection starts with and
/// answers every request with the client address that header named.
struct HeaderOrigin {
    addr: SocketAddr,
    /// The client address each connection's header named, in accept order.
    headers: Arc<Mutex<Vec<String>>>,
}

impl HeaderOrigin {
    fn start() -> HeaderOrigin {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let headers = Arc::new(Mutex::new(Vec::new()));
        let h2 = headers.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { continue };
                let h = h2.clone();
                std::thread::spawn(move || serve_with_header(s, &h));
            }
        });
        HeaderOrigin { addr, headers }
    }

    fn headers(&self) -> Vec<String> {
        self.headers.lock().unwrap().clone()
    }
}

fn serve_with_header(s: TcpStream, headers: &Mutex<Vec<String>>) {
    s.set_read_timeout(Some(ringway_tests::WAIT)).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let client = read_proxy_header(&mut r);
    headers.lock().unwrap().push(client.clone());
    let mut s = s;
    loop {
        // Bodiless GETs only: read the head to its empty line.
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
        }
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{client}",
            client.len()
        );
        if s.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// `ip:port` of the client a v1 or v2 header names (TCP4/TCP6 only).
fn read_proxy_header(r: &mut impl BufRead) -> String {
    let mut first = [0u8; 12];
    r.read_exact(&mut first).unwrap();
    if &first == SIG {
        let mut fixed = [0u8; 4];
        r.read_exact(&mut fixed).unwrap();
        let mut block = vec![0u8; u16::from_be_bytes([fixed[2], fixed[3]]) as usize];
        r.read_exact(&mut block).unwrap();
        let (ip, port): (IpAddr, usize) = match fixed[1] {
            0x11 => (<[u8; 4]>::try_from(&block[..4]).unwrap().into(), 8),
            0x21 => (<[u8; 16]>::try_from(&block[..16]).unwrap().into(), 32),
            other => panic!("unexpected v2 family/transport {other:#x}"),
        };
        return SocketAddr::new(ip, u16::from_be_bytes([block[port], block[port + 1]])).to_string();
    }
    let mut line = String::from_utf8(first.to_vec()).unwrap();
    r.read_line(&mut line).unwrap();
    let f: Vec<&str> = line.trim_end().split(' ').collect();
    assert_eq!((f[0], f.len()), ("PROXY", 6), "{line:?}");
    SocketAddr::new(f[2].parse().unwrap(), f[4].parse().unwrap()).to_string()
}

#[test]
fn upstreams_get_a_header_naming_the_client_and_reuse_follows_it() {
    for version in ["v1", "v2"] {
        let dir = TempDir::new();
        let log = dir.0.join("access.log");
        let origin = HeaderOrigin::start();
        let cfg = config(origin.addr, &log, "", "").replace(
            "targets = [",
            &format!("send_proxy_protocol = \"{version}\"\ntargets = ["),
        );
        let gw = Gateway::start(&cfg);
        let a = v2(addr("192.0.2.1:1111"), addr("198.51.100.1:80"));
        let b = v2(addr("192.0.2.2:2222"), addr("198.51.100.1:80"));
        // One keep-alive client connection per client: A, A, then B, then A again.
        for (header, body) in [
            (&a, "192.0.2.1:1111"),
            (&a, "192.0.2.1:1111"),
            (&b, "192.0.2.2:2222"),
            (&a, "192.0.2.1:1111"),
        ] {
            let r = get_after(gw.addr, header, "/who");
            assert_eq!(
                (r.status, String::from_utf8_lossy(&r.body).as_ref()),
                (200, body),
                "{version}"
            );
        }
        // A's connection was reused for A only: two upstream connections, one per client.
        assert_eq!(
            origin.headers(),
            ["192.0.2.1:1111", "192.0.2.2:2222"],
            "{version}"
        );
    }
}

#[test]
fn config_errors_name_the_key() {
    let (code, _, err) = check(
        "[server]\nlisten = [{ addr = \"127.0.0.1:0\", proxy_protocol = \"yes\" }]\n\n[[upstream]]\nname = \"app\"\ntargets = [\"127.0.0.1:1\"]\nsend_proxy_protocol = \"v3\"\n\n[[route]]\npath = \"/\"\nupstream = \"app\"\n",
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("ringway.toml:2:"), "{err}");
    assert!(err.contains("server.listen[0].proxy_protocol"), "{err}");
    assert!(err.contains("ringway.toml:7:"), "{err}");
    assert!(err.contains("upstream[0].send_proxy_protocol"), "{err}");
    assert!(err.contains("\"v3\""), "{err}");
}
