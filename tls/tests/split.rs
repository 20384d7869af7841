//! A split TLS stream moves bytes both ways at once: the client half
//! writes 1 MiB while the other half reads the echo back, with neither
//! waiting for the other (a tunnel's shape).

mod common;

use common::*;
use ringway_tls::{ServerTls, client_config, connect};

#[test]
fn both_halves_run_at_once() {
    let dir = TempDir::new();
    let ca = Ca::new("Split CA");
    let spec = ca.server_leaf(&["a.test"]).write(&dir, "a");
    let server = ServerTls::load(std::slice::from_ref(&spec), None).unwrap();
    let server = EchoServer::start(server.worker_config());
    let config = client_config(Some(&dir.write("ca.pem", ca.pem())), None).unwrap();
    let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 7 % 251) as u8).collect();
    let back = block_on(async {
        let tcp = monoio::net::TcpStream::connect_addr(server.addr)
            .await
            .unwrap();
        let tls = connect(config, "a.test", tcp).await.unwrap();
        let (mut r, mut w) = tls.into_split();
        let send = async {
            for chunk in data.chunks(10_000) {
                w.write_all(chunk).await.unwrap();
            }
            w.shutdown().await.unwrap();
        };
        let receive = async {
            let mut got = Vec::new();
            loop {
                match r.read_into(&mut got).await {
                    Ok(0) => return got,
                    Ok(_) => {}
                    Err(e) => panic!("read after {} bytes: {e}", got.len()),
                }
            }
        };
        monoio::join!(send, receive).1
    });
    assert_eq!(back.len(), data.len());
    assert!(back == data, "echoed bytes differ");
}
