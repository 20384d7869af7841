//! Upgrade and WebSocket: a real WebSocket client (tungstenite) through the
//! real binary to a real WebSocket echo upstream.

use ringway_tests::client::{connect, read_response};
use ringway_tests::gateway::simple_config;
use ringway_tests::{Gateway, Origin, Reply, ws};
use std::io::Write;
use tungstenite::Message;

#[test]
fn text_binary_large_ping_and_close_through_the_tunnel() {
    ringway_tests::on_both_drivers(text_binary_large_ping_and_close);
}

fn text_binary_large_ping_and_close(env: &[(&str, &str)]) {
    let up = ws::echo(None);
    let gw = Gateway::start_with_env(&simple_config(up, 2, ""), env);
    let mut socket = ws::connect(gw.addr, "/chat");
    ws::exercise(&mut socket);
}

#[test]
fn many_concurrent_tunnels() {
    let up = ws::echo(None);
    let gw = Gateway::start(&simple_config(up, 2, ""));
    let addr = gw.addr;
    let handles: Vec<_> = (0..64)
        .map(|i| {
            std::thread::spawn(move || {
                let mut ws = ws::connect(addr, "/chat");
                for j in 0..20 {
                    let text = format!("tunnel {i} message {j}");
                    ws.send(Message::text(text.clone())).unwrap();
                    assert_eq!(ws.read().unwrap(), Message::text(text));
                }
                ws.close(None).unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().expect("tunnel thread");
    }
}

#[test]
fn routes_with_websocket_off_do_not_forward_the_upgrade() {
    let origin = Origin::echo();
    let cfg = simple_config(origin.addr, 1, "").replace(
        "upstream = \"app\"\n",
        "upstream = \"app\"\nwebsocket = false\n",
    );
    let gw = Gateway::start(&cfg);
    let mut s = connect(gw.addr);
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .unwrap();
    let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
    assert_eq!(r.status, 200);
    let seen = &origin.seen()[0];
    assert_eq!(seen.header("upgrade"), None);
    assert_eq!(seen.header("connection"), None);
}

#[test]
fn an_upgrade_answered_without_101_continues_as_http() {
    let origin = Origin::start(|_| {
        Reply::Length(426, vec!["X-Seen: yes".into()], b"no upgrade here".to_vec())
    });
    let gw = Gateway::start(&simple_config(origin.addr, 1, ""));
    let mut s = connect(gw.addr);
    let mut buf = Vec::new();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .unwrap();
    let r = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!(r.status, 426);
    assert_eq!(
        origin.seen()[0].header("upgrade"),
        Some("websocket"),
        "the upgrade request was forwarded"
    );
    s.write_all(b"GET /plain HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_response(&mut s, &mut buf, false).unwrap().status,
        426,
        "the connection is still HTTP"
    );
}
