//! An upstream without `ca` is checked against the operating system's
//! trust store. `SSL_CERT_FILE` is how an operator (and this test) points
//! that store at a bundle; this file is its own test process, so setting
//! it here cannot affect other tests.

mod common;

use common::*;
use ringway_tls::{ServerTls, Trust, client_config, connect, default_trust};

#[test]
fn no_ca_means_the_system_store() {
    let dir = TempDir::new();
    let ca = Ca::new("System CA");
    let spec = ca.server_leaf(&["a.test"]).write(&dir, "a");
    let bundle = dir.write("system.pem", ca.pem());
    // SAFETY: set before any other thread exists in this test process.
    unsafe {
        std::env::set_var("SSL_CERT_FILE", &bundle);
        std::env::remove_var("SSL_CERT_DIR");
    }
    assert_eq!(default_trust(), Trust::System(1));

    let other = Ca::new("Unknown CA");
    let stranger = other.server_leaf(&["a.test"]).write(&dir, "b");
    for (leaf, trusted) in [(spec, true), (stranger, false)] {
        let server = ServerTls::load(std::slice::from_ref(&leaf), None).unwrap();
        let server = EchoServer::start(server.worker_config());
        let config = client_config(None, None).unwrap();
        let verified = block_on(async move {
            let tcp = monoio::net::TcpStream::connect_addr(server.addr)
                .await
                .unwrap();
            connect(config, "a.test", tcp).await.is_ok()
        });
        assert_eq!(verified, trusted, "leaf signed by a trusted CA: {trusted}");
    }
}
