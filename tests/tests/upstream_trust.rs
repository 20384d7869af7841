//! Upstream TLS without `ca` trusts the operating system's store, through
//! the binary: `SSL_CERT_FILE` naming a test CA makes an https origin that
//! CA signed trusted (and the startup log says the system store was used);
//! without it, the same origin is not (502).

use ringway_tests::gateway::TempDir;
use ringway_tests::pki::{self, Ca};
use ringway_tests::{Gateway, client};
use std::net::SocketAddr;

fn config(origin: SocketAddr) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n\n[[upstream]]\nname = \"secure\"\ntargets = [\"https://{origin}\"]\ntls = {{ server_name = \"backend.local\" }}\nconnect_timeout = \"2s\"\n\n[[route]]\npath = \"/{{proxy+}}\"\nupstream = \"secure\"\n"
    )
}

#[test]
fn upstream_tls_without_ca_trusts_the_system_store() {
    let dir = TempDir::new();
    let ca = Ca::new("system store test ca");
    let origin = pki::tls_origin(&ca.server(&["backend.local"]));
    let bundle = dir.0.join("system-ca.pem");
    std::fs::write(&bundle, ca.pem()).unwrap();

    let bundle = bundle.to_str().unwrap();
    let gw = Gateway::start_without(
        &config(origin),
        &[("SSL_CERT_FILE", bundle)],
        &["SSL_CERT_DIR"],
    );
    let r = client::get(gw.addr, "/trusted");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"tls-origin"[..]));
    assert!(
        gw.wait_for_log("trust the system trust store (1 certificates)"),
        "{:#?}",
        gw.log()
    );

    // The distribution's store (or the built-in roots) does not know the test CA.
    let gw = Gateway::start_without(&config(origin), &[], &["SSL_CERT_FILE", "SSL_CERT_DIR"]);
    assert_eq!(client::get(gw.addr, "/untrusted").status, 502);
    assert!(
        gw.wait_for_log("without `ca` trust the "),
        "{:#?}",
        gw.log()
    );
}
