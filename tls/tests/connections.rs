//! Handshakes and data over `accept`/`connect`: round trips, SNI, ALPN,
//! protocol versions, resumption, mTLS, upstream verification, bad peers.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use monoio::io::{AsyncReadRent, AsyncReadRentExt, AsyncWriteRent, AsyncWriteRentExt};
use ringway_tls::rustls::client::{Resumption, Tls12Resumption};
use ringway_tls::rustls::version::{TLS12, TLS13};
use ringway_tls::rustls::{self, ProtocolVersion};
use ringway_tls::{CertSpec, ErrorKind, ServerTls, client_config, connect};

/// A CA, one server certificate for `a.test`, and a `ServerTls` serving it.
struct Fixture {
    dir: TempDir,
    ca: Ca,
    leaf: Leaf,
    spec: CertSpec,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = TempDir::new();
        let ca = Ca::new("Test CA");
        let leaf = ca.server_leaf(&["a.test"]);
        let spec = leaf.write(&dir, "a");
        Fixture {
            dir,
            ca,
            leaf,
            spec,
        }
    }

    fn server(&self, client_ca: Option<&std::path::Path>) -> ServerTls {
        ServerTls::load(std::slice::from_ref(&self.spec), client_ca).unwrap()
    }
}

// ---------------------------------------------------------------- data

/// Our `connect` against our `accept`: `len` bytes out and back, then a
/// clean close in both directions.
fn round_trip_with_connect(len: usize) {
    let fx = Fixture::new();
    let server = EchoServer::start(fx.server(None).worker_config());
    let ca = fx.dir.write("ca.pem", fx.ca.pem());
    let config = client_config(Some(&ca), None).unwrap();
    let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();

    let echoed = block_on(async move {
        let tcp = monoio::net::TcpStream::connect_addr(server.addr)
            .await
            .unwrap();
        let mut tls = connect(config, "a.test", tcp).await.unwrap();
        assert_eq!(tls.alpn_protocol(), Some(&b"http/1.1"[..]));
        let mut echoed = Vec::with_capacity(len);
        for chunk in data.chunks(100 * 1024) {
            let (res, _) = tls.write_all(chunk.to_vec()).await;
            res.unwrap();
            let (res, back) = tls.read_exact(vec![0u8; chunk.len()]).await;
            res.unwrap();
            echoed.extend_from_slice(&back);
        }
        tls.shutdown().await.unwrap();
        // The server answers our close_notify with its own: a clean Ok(0).
        let (res, _) = tls.read(Vec::with_capacity(16)).await;
        assert_eq!(res.unwrap(), 0, "expected close_notify from the server");
        assert!(echoed == data, "echo differs");
        server.next().unwrap()
    });
    assert_eq!(echoed.sni.as_deref(), Some("a.test"));
}

#[test]
fn round_trip_small() {
    round_trip_with_connect(13);
}

#[test]
fn round_trip_one_mib() {
    round_trip_with_connect(1 << 20);
}

#[test]
fn readv_and_writev_with_std_client() {
    let fx = Fixture::new();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let config = fx.server(None).worker_config();
    // A server that reads with readv and answers with one writev.
    std::thread::spawn(move || {
        block_on(async move {
            let listener = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = ringway_tls::accept(config, tcp).await.unwrap();
            // One record from the client, spread over three iovecs.
            let parts = vec![vec![0u8; 4], vec![0u8; 3], vec![0u8; 8]];
            let (res, parts) = tls.readv(monoio::buf::VecBuf::from(parts)).await;
            assert_eq!(res.unwrap(), 11);
            let parts: Vec<Vec<u8>> = parts.into();
            assert_eq!(parts, [&b"hell"[..], b"o w", b"orld"]); // set_init trims the last part
            let parts = vec![
                b"HTTP/1.1 200 OK\r\n".to_vec(),
                Vec::new(),
                b"\r\nbody".to_vec(),
            ];
            let (res, _) = tls.writev(monoio::buf::VecBuf::from(parts)).await;
            assert_eq!(res.unwrap(), 23);
            tls.shutdown().await.unwrap();
        })
    });
    let addr = addr_rx.recv_timeout(TIMEOUT).unwrap();
    let client = Arc::new(std_client(&fx.ca.der(), &[&TLS13], None));
    let mut tls = std_connect(addr, &client, "a.test").unwrap();
    tls.write_all(b"hello world").unwrap();
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).unwrap(); // Ok only with close_notify
    assert_eq!(answer, b"HTTP/1.1 200 OK\r\n\r\nbody");
}

#[test]
fn buffered_input_is_reported_before_an_idle_wait() {
    let fx = Fixture::new();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    let config = fx.server(None).worker_config();
    std::thread::spawn(move || {
        block_on(async move {
            let listener = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = ringway_tls::accept(config, tcp).await.unwrap();
            let mut seen = Vec::new();
            // Two records arrive in one segment; a 1-byte read takes the first.
            for _ in 0..2 {
                let (res, buf) = tls.read(Vec::with_capacity(1)).await;
                assert_eq!(res.unwrap(), 1);
                seen.push((buf[0], tls.has_buffered_input()));
            }
            tls.release_buffers();
            // Nothing buffered: waiting on the socket is safe, and what wakes
            // it is the next record.
            tls.get_ref().readable(false).await.unwrap();
            let (res, buf) = tls.read(Vec::with_capacity(8)).await;
            assert_eq!(res.unwrap(), 1);
            seen.push((buf[0], tls.has_buffered_input()));
            seen_tx.send(seen).unwrap();
        })
    });
    let addr = addr_rx.recv_timeout(TIMEOUT).unwrap();
    let client = Arc::new(std_client(&fx.ca.der(), &[&TLS13], None));
    let mut tls = std_connect(addr, &client, "a.test").unwrap();
    tls.conn.writer().write_all(b"a").unwrap();
    tls.conn.writer().write_all(b"b").unwrap();
    tls.flush().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    tls.write_all(b"c").unwrap();
    let seen = seen_rx.recv_timeout(TIMEOUT).unwrap();
    assert_eq!(seen, [(b'a', true), (b'b', false), (b'c', false)]);
}

// ---------------------------------------------------------------- SNI

#[test]
fn sni_picks_exact_wildcard_and_default() {
    let dir = TempDir::new();
    let ca = Ca::new("Test CA");
    let first = ca.server_leaf(&["default.test"]);
    let exact = ca.server_leaf(&["api.example.test"]);
    let wildcard = ca.server_leaf(&["*.example.test"]);
    let specs = [
        first.write(&dir, "first"),
        exact.write(&dir, "exact"),
        wildcard.write(&dir, "wild"),
    ];
    let tls = ServerTls::load(&specs, None).unwrap();
    let server = EchoServer::start(tls.worker_config());
    let mut client = std_client_any_cert(&[&TLS13, &TLS12]);
    client.resumption = Resumption::disabled();
    let client = Arc::new(client);

    let cases: [(&str, &Leaf, Option<&str>); 6] = [
        ("api.example.test", &exact, Some("api.example.test")),
        ("API.Example.TEST", &exact, Some("api.example.test")),
        ("www.example.test", &wildcard, Some("www.example.test")),
        ("a.b.example.test", &first, Some("a.b.example.test")), // one label only
        ("example.test", &first, Some("example.test")),         // wildcard needs a label
        ("unknown.test", &first, Some("unknown.test")),
    ];
    for (sni, want, seen) in cases {
        let conn = std_connect(server.addr, &client, sni).unwrap();
        assert!(
            std_server_cert(&conn) == want.der,
            "SNI {sni}: wrong certificate"
        );
        assert_eq!(server.next().unwrap().sni.as_deref(), seen);
        std_close(conn);
    }

    // No SNI at all (an IP address as server name is never sent as SNI).
    let conn = std_connect(server.addr, &client, "127.0.0.1").unwrap();
    assert!(
        std_server_cert(&conn) == first.der,
        "no SNI: expected the default"
    );
    assert_eq!(server.next().unwrap().sni, None);
    std_close(conn);

    let names: Vec<_> = tls
        .certificates()
        .into_iter()
        .map(|c| c.dns_names)
        .collect();
    assert_eq!(
        names,
        [
            vec!["default.test"],
            vec!["api.example.test"],
            vec!["*.example.test"]
        ]
    );
}

// ---------------------------------------------------------------- ALPN, versions

#[test]
fn alpn_and_both_protocol_versions() {
    let fx = Fixture::new();
    let server = EchoServer::start(fx.server(None).worker_config());
    for (version, want) in [
        (&TLS12, ProtocolVersion::TLSv1_2),
        (&TLS13, ProtocolVersion::TLSv1_3),
    ] {
        let client = Arc::new(std_client(&fx.ca.der(), &[version], None));
        let mut conn = std_connect(server.addr, &client, "a.test").unwrap();
        assert_eq!(conn.conn.protocol_version(), Some(want));
        assert_eq!(conn.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
        std_round_trip(&mut conn, b"ping").unwrap();
        let seen = server.next().unwrap();
        assert_eq!(seen.version, Some(want));
        assert_eq!(seen.alpn.as_deref(), Some(&b"http/1.1"[..]));
        std_close(conn);
    }
}

#[test]
fn client_without_alpn_is_served() {
    let fx = Fixture::new();
    let server = EchoServer::start(fx.server(None).worker_config());
    let mut client = std_client(&fx.ca.der(), &[&TLS13], None);
    client.alpn_protocols.clear();
    let mut conn = std_connect(server.addr, &Arc::new(client), "a.test").unwrap();
    std_round_trip(&mut conn, b"ping").unwrap();
    assert_eq!(server.next().unwrap().alpn, None);
}

#[test]
fn client_offering_only_h2_is_refused() {
    let fx = Fixture::new();
    let server = EchoServer::start(fx.server(None).worker_config());
    let mut client = std_client(&fx.ca.der(), &[&TLS13], None);
    client.alpn_protocols = vec![b"h2".to_vec()];
    assert!(std_connect(server.addr, &Arc::new(client), "a.test").is_err());
    let err = server.next().unwrap_err();
    assert!(
        matches!(
            err.rustls_error(),
            Some(rustls::Error::NoApplicationProtocol)
        ),
        "{err:?}"
    );
}

// ---------------------------------------------------------------- resumption

/// Two connections with one client config: the second must resume, seen by
/// both the client and `ServerStream::is_resumed`.
fn assert_resumes(client: rustls::ClientConfig, first: &EchoServer, second: &EchoServer) {
    let client = Arc::new(client);
    let mut conn = std_connect(first.addr, &client, "a.test").unwrap();
    // Reading the echo also reads the TLS 1.3 tickets sent after the handshake.
    std_round_trip(&mut conn, b"ping").unwrap();
    assert!(!first.next().unwrap().resumed);
    std_close(conn);

    let mut conn = std_connect(second.addr, &client, "a.test").unwrap();
    assert_eq!(
        conn.conn.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
    std_round_trip(&mut conn, b"pong").unwrap();
    assert!(
        second.next().unwrap().resumed,
        "server did not report a resumed session"
    );
    std_close(conn);
}

#[test]
fn resumption_tls13_tickets() {
    let fx = Fixture::new();
    let server = EchoServer::start(fx.server(None).worker_config());
    assert_resumes(std_client(&fx.ca.der(), &[&TLS13], None), &server, &server);
}

#[test]
fn resumption_tls12_tickets() {
    let fx = Fixture::new();
    let server = EchoServer::start(fx.server(None).worker_config());
    assert_resumes(std_client(&fx.ca.der(), &[&TLS12], None), &server, &server);
}

#[test]
fn resumption_tls12_session_id() {
    let fx = Fixture::new();
    let server = EchoServer::start(fx.server(None).worker_config());
    let mut client = std_client(&fx.ca.der(), &[&TLS12], None);
    client.resumption =
        Resumption::in_memory_sessions(16).tls12_resumption(Tls12Resumption::SessionIdOnly);
    assert_resumes(client, &server, &server);
}

#[test]
fn ticket_from_one_worker_resumes_on_another() {
    let fx = Fixture::new();
    let tls = fx.server(None);
    let worker_a = EchoServer::start(tls.worker_config());
    let worker_b = EchoServer::start(tls.worker_config());
    assert_resumes(
        std_client(&fx.ca.der(), &[&TLS13], None),
        &worker_a,
        &worker_b,
    );
}

// ---------------------------------------------------------------- mTLS

#[test]
fn mtls_accepts_client_from_ca_and_shows_its_cert() {
    let fx = Fixture::new();
    let client_ca = Ca::new("Client CA");
    let ca_file = fx.dir.write("client-ca.pem", client_ca.pem());
    let tls = fx.server(Some(&ca_file));
    assert!(tls.requires_client_cert());
    let server = EchoServer::start(tls.worker_config());
    let alice = client_ca.client_leaf("alice.test");
    for version in [&TLS12, &TLS13] {
        let client = Arc::new(std_client(&fx.ca.der(), &[version], Some(&alice)));
        let mut conn = std_connect(server.addr, &client, "a.test").unwrap();
        std_round_trip(&mut conn, b"ping").unwrap();
        let seen = server.next().unwrap();
        assert_eq!(seen.peer_certs.first(), Some(&alice.der));
        std_close(conn);
    }
}

#[test]
fn mtls_refuses_missing_or_foreign_client_cert() {
    let fx = Fixture::new();
    let client_ca = Ca::new("Client CA");
    let ca_file = fx.dir.write("client-ca.pem", client_ca.pem());
    let server = EchoServer::start(fx.server(Some(&ca_file)).worker_config());
    let stranger = Ca::new("Other CA").client_leaf("mallory.test");
    for cert in [None, Some(&stranger)] {
        for version in [&TLS12, &TLS13] {
            let client = Arc::new(std_client(&fx.ca.der(), &[version], cert));
            // TLS 1.3 clients finish before the server judges their
            // certificate: the refusal then shows on the first read.
            let refused = std_connect(server.addr, &client, "a.test")
                .and_then(|mut conn| std_round_trip(&mut conn, b"ping"));
            assert!(
                refused.is_err(),
                "client accepted (cert: {})",
                cert.is_some()
            );
            let err = server.next().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Handshake, "{err}");
            assert!(err.rustls_error().is_some(), "{err}");
        }
    }
}

#[test]
fn upstream_client_certificate_from_client_config() {
    let fx = Fixture::new();
    let client_ca = Ca::new("Client CA");
    let ca_file = fx.dir.write("client-ca.pem", client_ca.pem());
    let server = EchoServer::start(fx.server(Some(&ca_file)).worker_config());
    let gateway = client_ca.client_leaf("gateway.test");
    let gateway_spec = gateway.write(&fx.dir, "gateway");
    let server_ca = fx.dir.write("ca.pem", fx.ca.pem());
    let config = client_config(Some(&server_ca), Some(&gateway_spec)).unwrap();
    block_on(async move {
        let tcp = monoio::net::TcpStream::connect_addr(server.addr)
            .await
            .unwrap();
        let mut tls = connect(config, "a.test", tcp).await.unwrap();
        let (res, _) = tls.write_all(b"ping".to_vec()).await;
        res.unwrap();
        let (res, back) = tls.read_exact(vec![0u8; 4]).await;
        res.unwrap();
        assert_eq!(back, b"ping");
        assert_eq!(
            server.next().unwrap().peer_certs.first(),
            Some(&gateway.der)
        );
    });
}

// ---------------------------------------------------------------- client_config

#[test]
fn client_config_verifies_name_against_private_ca() {
    let fx = Fixture::new();
    let server = EchoServer::start(fx.server(None).worker_config());
    let ca = fx.dir.write("ca.pem", fx.ca.pem());
    let config = client_config(Some(&ca), None).unwrap();
    block_on(async move {
        let tcp = monoio::net::TcpStream::connect_addr(server.addr)
            .await
            .unwrap();
        let tls = connect(Arc::clone(&config), "a.test", tcp).await.unwrap();
        assert_eq!(tls.peer_certificates().unwrap()[0], fx.leaf.der);
        assert!(server.next().is_ok());

        let tcp = monoio::net::TcpStream::connect_addr(server.addr)
            .await
            .unwrap();
        let err = connect(Arc::clone(&config), "wrong.test", tcp)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Handshake, "{err}");
        assert!(err.to_string().contains("certificate"), "{err}");
        assert!(
            matches!(
                err.rustls_error(),
                Some(rustls::Error::InvalidCertificate(_))
            ),
            "{err:?}"
        );
        assert!(
            server.next().is_err(),
            "server should see the client's alert"
        );

        let tcp = monoio::net::TcpStream::connect_addr(server.addr)
            .await
            .unwrap();
        let err = connect(config, "not a name", tcp).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    });
}

#[test]
fn client_config_with_public_roots_refuses_private_ca() {
    let fx = Fixture::new();
    let server = EchoServer::start(fx.server(None).worker_config());
    let config = client_config(None, None).unwrap();
    block_on(async move {
        let tcp = monoio::net::TcpStream::connect_addr(server.addr)
            .await
            .unwrap();
        let err = connect(config, "a.test", tcp).await.unwrap_err();
        assert!(
            matches!(
                err.rustls_error(),
                Some(rustls::Error::InvalidCertificate(_))
            ),
            "{err:?}"
        );
    });
}

// ---------------------------------------------------------------- bad peers

#[test]
fn plain_http_to_accept_fails_cleanly() {
    let fx = Fixture::new();
    let server = EchoServer::start(fx.server(None).worker_config());
    let mut tcp = TcpStream::connect_timeout(&server.addr, TIMEOUT).unwrap();
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .unwrap();
    let err = server.next().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Handshake, "{err}");
    assert!(
        err.to_string().contains("127.0.0.1"),
        "should name the peer: {err}"
    );
    // The server sent an alert (or nothing) and closed: no hang.
    let mut rest = Vec::new();
    tcp.read_to_end(&mut rest).unwrap();
    assert!(
        rest.len() <= 7 && rest.first().is_none_or(|&b| b == 0x15),
        "{rest:?}"
    );
}

#[test]
fn peer_closing_mid_handshake_is_an_io_error() {
    let fx = Fixture::new();
    let server = EchoServer::start(fx.server(None).worker_config());
    let tcp = TcpStream::connect_timeout(&server.addr, TIMEOUT).unwrap();
    drop(tcp);
    let err = server.next().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
}

#[test]
fn read_cancelled_by_timeout_makes_stream_unusable() {
    let fx = Fixture::new();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let config = fx.server(None).worker_config();
    std::thread::spawn(move || {
        block_on(async move {
            let listener = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = ringway_tls::accept(config, tcp).await.unwrap();
            let read = tls.read(Vec::with_capacity(64));
            assert!(
                monoio::time::timeout(Duration::from_millis(50), read)
                    .await
                    .is_err()
            );
            let (res, _) = tls.read(Vec::with_capacity(64)).await;
            done_tx.send(res.map_err(|e| e.kind())).unwrap();
        })
    });
    let addr = addr_rx.recv_timeout(TIMEOUT).unwrap();
    let client = Arc::new(std_client(&fx.ca.der(), &[&TLS13], None));
    let conn = std_connect(addr, &client, "a.test").unwrap();
    let result = done_rx.recv_timeout(TIMEOUT).unwrap();
    assert_eq!(result, Err(std::io::ErrorKind::BrokenPipe));
    drop(conn);
}

#[test]
fn bytes_after_close_notify_are_ignored() {
    let fx = Fixture::new();
    let server = EchoServer::start(fx.server(None).worker_config());
    let client = Arc::new(std_client(&fx.ca.der(), &[&TLS13], None));
    let mut tls = std_connect(server.addr, &client, "a.test").unwrap();
    std_round_trip(&mut tls, b"ping").unwrap();
    // close_notify and junk in one segment, the connection left open: the
    // server's read sees a clean end (Ok(0)) and answers with its own.
    tls.conn.send_close_notify();
    let mut bytes = Vec::new();
    tls.conn.write_tls(&mut bytes).unwrap();
    bytes.extend_from_slice(b"junk after the end");
    tls.sock.write_all(&bytes).unwrap();
    let mut rest = Vec::new();
    tls.read_to_end(&mut rest).unwrap(); // Ok only with the server's close_notify
    assert!(rest.is_empty());
    assert!(server.next().is_ok());
}
