//! TLS through the binary: termination with SNI and mTLS, X-Forwarded-Proto,
//! resumption, certificate reload on SIGHUP, plain HTTP on a TLS port, and
//! upstream TLS to a private-CA origin.

use ringway_tests::client::read_response;
use ringway_tests::gateway::TempDir;
use ringway_tests::pki::{self, Ca};
use ringway_tests::{Gateway, Origin};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// A config with a plain listener and one TLS listener whose `tls` table is given.
fn config(upstream: SocketAddr, tls_table: &str, workers: usize) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\", {{ addr = \"127.0.0.1:0\", tls = {tls_table} }}]\nworkers = {workers}\n\n[[upstream]]\nname = \"app\"\ntargets = [\"{upstream}\"]\n\n[[route]]\npath = \"/{{proxy+}}\"\nupstream = \"app\"\n"
    )
}

fn get_over(tls: &mut pki::Tls, path: &str) -> ringway_tests::Response {
    tls.write_all(format!("GET {path} HTTP/1.1\r\nHost: site.test\r\n\r\n").as_bytes())
        .unwrap();
    tls.flush().unwrap();
    read_response(tls, &mut Vec::new(), false).expect("a response over TLS")
}

#[test]
fn termination_with_sni_and_forwarded_proto() {
    let dir = TempDir::new();
    let ca = Ca::new("test ca");
    let (a_cert, a_key) = ca.server(&["site.test"]).write(&dir.0, "a");
    let (b_cert, b_key) = ca.server(&["*.other.test"]).write(&dir.0, "b");
    let origin = Origin::echo();
    let table = format!(
        "{{ certs = [ {{ cert = \"{}\", key = \"{}\" }}, {{ cert = \"{}\", key = \"{}\" }} ] }}",
        p(&a_cert),
        p(&a_key),
        p(&b_cert),
        p(&b_key)
    );
    let gw = Gateway::start(&config(origin.addr, &table, 2));
    assert_eq!(gw.addrs.len(), 2);
    let tls_addr = gw.addrs[1];
    let client = pki::client_config(&ca, None);
    // Each name gets its certificate: verification would fail otherwise.
    for name in ["site.test", "api.other.test"] {
        let mut t = pki::connect(tls_addr, &client, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(t.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
        let r = get_over(&mut t, "/secure");
        assert_eq!(r.status, 200, "{name}");
    }
    let seen = origin.seen();
    assert!(
        seen.iter()
            .all(|s| s.header("x-forwarded-proto") == Some("https"))
    );
    // The plain listener still says http.
    assert_eq!(
        ringway_tests::client::get(gw.addrs[0], "/plain").status,
        200
    );
    assert_eq!(
        origin.seen().last().unwrap().header("x-forwarded-proto"),
        Some("http")
    );
}

#[test]
fn mutual_tls_accepts_the_right_client_only() {
    let dir = TempDir::new();
    let ca = Ca::new("server ca");
    let clients = Ca::new("client ca");
    let stranger = Ca::new("stranger ca");
    let (cert, key) = ca.server(&["site.test"]).write(&dir.0, "site");
    let client_ca = dir.0.join("clients.pem");
    std::fs::write(&client_ca, clients.pem()).unwrap();
    let origin = Origin::echo();
    let table = format!(
        "{{ cert = \"{}\", key = \"{}\", client_ca = \"{}\" }}",
        p(&cert),
        p(&key),
        p(&client_ca)
    );
    let gw = Gateway::start(&config(origin.addr, &table, 1));
    let good = pki::client_config(&ca, Some(&clients.client("good-client")));
    let mut t =
        pki::connect(gw.addrs[1], &good, "site.test").expect("the right client is accepted");
    assert_eq!(get_over(&mut t, "/m").status, 200);
    for (what, cfg) in [
        ("no certificate", pki::client_config(&ca, None)),
        (
            "another CA",
            pki::client_config(&ca, Some(&stranger.client("x"))),
        ),
    ] {
        let refused = match pki::connect(gw.addrs[1], &cfg, "site.test") {
            Err(_) => true,
            // TLS 1.3: the server's refusal may only show on the first read.
            Ok(mut t) => {
                let _ = t.write_all(b"GET / HTTP/1.1\r\nHost: site.test\r\n\r\n");
                let mut b = [0u8; 64];
                !matches!(t.read(&mut b), Ok(n) if n > 0)
            }
        };
        assert!(refused, "{what} was let in");
    }
    assert_eq!(origin.seen().len(), 1);
}

#[test]
fn sessions_resume() {
    let dir = TempDir::new();
    let ca = Ca::new("ca");
    let (cert, key) = ca.server(&["site.test"]).write(&dir.0, "site");
    let origin = Origin::echo();
    let gw = Gateway::start(&config(
        origin.addr,
        &format!("{{ cert = \"{}\", key = \"{}\" }}", p(&cert), p(&key)),
        1,
    ));
    let client = pki::client_config(&ca, None);
    let mut first = pki::connect(gw.addrs[1], &client, "site.test").unwrap();
    assert_eq!(get_over(&mut first, "/1").status, 200);
    drop(first);
    let mut second = pki::connect(gw.addrs[1], &client, "site.test").unwrap();
    assert_eq!(
        second.conn.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
    assert_eq!(get_over(&mut second, "/2").status, 200);
}

#[test]
fn sighup_swaps_the_certificate_and_keeps_open_connections() {
    let dir = TempDir::new();
    let ca = Ca::new("ca");
    let first_leaf = ca.server(&["site.test"]);
    let (cert, key) = first_leaf.write(&dir.0, "site");
    let origin = Origin::echo();
    let gw = Gateway::start(&config(
        origin.addr,
        &format!("{{ cert = \"{}\", key = \"{}\" }}", p(&cert), p(&key)),
        1,
    ));
    let client = pki::client_config(&ca, None);
    let mut old = pki::connect(gw.addrs[1], &client, "site.test").unwrap();
    assert_eq!(pki::server_cert(&old), first_leaf.der);
    assert_eq!(get_over(&mut old, "/before").status, 200);

    let second_leaf = ca.server(&["site.test"]);
    second_leaf.write(&dir.0, "site");
    gw.signal(libc::SIGHUP);
    assert!(gw.wait_for_log("generation 1"), "{:#?}", gw.log());
    // A fresh client config: a resumed session would report the certificate of its first handshake.
    let fresh = pki::connect(gw.addrs[1], &pki::client_config(&ca, None), "site.test").unwrap();
    assert_eq!(
        pki::server_cert(&fresh),
        second_leaf.der,
        "new handshakes get the new certificate"
    );
    assert_eq!(
        get_over(&mut old, "/after").status,
        200,
        "the connection opened before the reload still works"
    );
}

#[test]
fn plain_http_on_a_tls_port_is_closed_cleanly() {
    let dir = TempDir::new();
    let ca = Ca::new("ca");
    let (cert, key) = ca.server(&["site.test"]).write(&dir.0, "site");
    let origin = Origin::echo();
    let gw = Gateway::start(&config(
        origin.addr,
        &format!("{{ cert = \"{}\", key = \"{}\" }}", p(&cert), p(&key)),
        1,
    ));
    let mut s = ringway_tests::client::connect(gw.addrs[1]);
    s.write_all(b"GET / HTTP/1.1\r\nHost: site.test\r\n\r\n")
        .unwrap();
    assert!(ringway_tests::client::closed_within(
        &mut s,
        Duration::from_secs(5)
    ));
    assert!(origin.seen().is_empty());
    // Other clients are not disturbed.
    let mut t = pki::connect(gw.addrs[1], &pki::client_config(&ca, None), "site.test").unwrap();
    assert_eq!(get_over(&mut t, "/ok").status, 200);
}

#[test]
fn upstream_tls_to_a_private_ca_origin() {
    let dir = TempDir::new();
    let ca = Ca::new("backend ca");
    let origin = pki::tls_origin(&ca.server(&["backend.local"]));
    let ca_file = dir.0.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let cfg = |name: &str| {
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n\n[[upstream]]\nname = \"secure\"\ntargets = [\"https://{origin}\"]\ntls = {{ ca = \"{}\", server_name = \"{name}\" }}\nconnect_timeout = \"2s\"\n\n[[route]]\npath = \"/{{proxy+}}\"\nupstream = \"secure\"\n",
            p(&ca_file)
        )
    };
    let gw = Gateway::start(&cfg("backend.local"));
    for _ in 0..3 {
        let r = ringway_tests::client::get(gw.addr, "/over-tls");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"tls-origin"[..]));
    }
    let wrong = Gateway::start(&cfg("someone-else.local"));
    assert_eq!(
        ringway_tests::client::get(wrong.addr, "/over-tls").status,
        502,
        "a certificate for another name is refused"
    );
}

#[test]
fn bad_certificate_files_are_config_errors_naming_the_file() {
    let dir = TempDir::new();
    let ca = Ca::new("ca");
    let (cert, _) = ca.server(&["site.test"]).write(&dir.0, "site");
    let (_, other_key) = ca.server(&["site.test"]).write(&dir.0, "other");
    let origin = Origin::echo();
    for (table, needle) in [
        (
            format!(
                "{{ cert = \"{}\", key = \"{}\" }}",
                p(&dir.0.join("missing.pem")),
                p(&other_key)
            ),
            "missing.pem",
        ),
        (
            format!("{{ cert = \"{}\", key = \"{}\" }}", p(&cert), p(&other_key)),
            "other.key",
        ),
    ] {
        let err = Gateway::try_start(&config(origin.addr, &table, 1), &[])
            .err()
            .expect("must not start");
        let log = err.1.join("\n");
        assert!(
            log.contains("server.listen[1].tls") && log.contains(needle),
            "{log}"
        );
    }
}

#[test]
fn the_issue_tls_config_works_as_written_with_paths_relative_to_the_file() {
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.0.join("certs")).unwrap();
    let ca = Ca::new("ca");
    ca.server(&["site.test"])
        .write(&dir.0.join("certs"), "site");
    ca.server(&["a.test"]).write(&dir.0, "a");
    ca.server(&["b.test"]).write(&dir.0, "b");
    std::fs::write(dir.0.join("ca.pem"), ca.pem()).unwrap();
    // site.pem/site.key are written as certs/site.pem and certs/site.key.
    let config = r#"[server]
listen = [
  "127.0.0.1:8080",
  { addr = "127.0.0.1:8443", tls = { cert = "certs/site.pem", key = "certs/site.key" } },
  { addr = "127.0.0.1:9443", tls = { certs = [ { cert = "a.pem", key = "a.key" }, { cert = "b.pem", key = "b.key" } ], client_ca = "ca.pem" } },
]

[[upstream]]
name = "secure"
targets = ["https://127.0.0.1:9444"]
tls = { ca = "ca.pem", server_name = "backend.local" }   # also client_cert, client_key

[[route]]
path = "/{proxy+}"
upstream = "secure"
"#;
    let path = dir.0.join("ringway.toml");
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(ringway_tests::gateway::binary("ringway"))
        .arg("check")
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
