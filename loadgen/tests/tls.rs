//! `https://` targets: a rustls server on std threads with a certificate
//! from a throwaway CA; the load generator must verify it via `--cacert`,
//! refuse it without, and accept it with `--insecure`.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ringway_load::{LoadConfig, Stop};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

mod support;

/// A CA (as PEM) and a `localhost` certificate it signed, with its key.
fn certificates() -> (String, CertificateDer<'static>, PrivateKeyDer<'static>) {
    let pki = support::Localhost::issue("ringway-load test CA");
    let key = PrivatePkcs8KeyDer::from(pki.key.serialize_der());
    (pki.ca_pem, pki.cert.der().clone(), key.into())
}

struct TlsServer {
    port: u16,
    requests: Arc<AtomicU64>,
}

/// Answers every `\r\n\r\n`-terminated request with a small response, keep-alive.
fn start_server(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> TlsServer {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(AtomicU64::new(0));
    let counter = requests.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { return };
            let (config, counter) = (config.clone(), counter.clone());
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut buf = [0u8; 4096];
                let mut matched = 0;
                while let Ok(n) = tls.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    for &b in &buf[..n] {
                        matched = match (matched, b) {
                            (0 | 2, b'\r') | (1 | 3, b'\n') => matched + 1,
                            (_, b'\r') => 1,
                            _ => 0,
                        };
                        if matched == 4 {
                            matched = 0;
                            counter.fetch_add(1, Ordering::SeqCst);
                            let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntls";
                            if tls.write_all(reply).and_then(|()| tls.flush()).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    TlsServer { port, requests }
}

#[test]
fn https_verifies_against_cacert_refuses_unknown_ca_and_honours_insecure() {
    let (ca_pem, cert, key) = certificates();
    let server = start_server(cert, key);
    let dir = std::env::temp_dir().join(format!("ringway-load-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();

    let base = LoadConfig {
        connections: 2,
        threads: 1,
        pipeline: 2,
        stop: Stop::Requests(100),
        timeout: Duration::from_secs(2),
        ..LoadConfig::new(format!("https://localhost:{}/", server.port))
    };

    let trusted = LoadConfig {
        cacert: Some(ca_file.clone()),
        ..base.clone()
    };
    let report = ringway_load::run(&trusted).unwrap();
    assert_eq!((report.requests, report.errors.total()), (100, 0));
    assert_eq!(server.requests.load(Ordering::SeqCst), 100);

    let err = ringway_load::run(&base).unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("certificate"), "{message}");

    let insecure = LoadConfig {
        insecure: true,
        ..base.clone()
    };
    let report = ringway_load::run(&insecure).unwrap();
    assert_eq!((report.requests, report.errors.total()), (100, 0));

    std::fs::remove_dir_all(&dir).unwrap();
}
