//! Upgrade and WebSocket: a real WebSocket client (tungstenite) through the
//! real binary to a real WebSocket echo upstream.

use ringway_tests::client::{connect, read_response};
use ringway_tests::gateway::simple_config;
use ringway_tests::{Gateway, Origin, Reply, pattern};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;
use tungstenite::Message;

/// A WebSocket echo server on 127.0.0.1: every text or binary message comes back.
fn ws_echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let Ok(mut ws) = tungstenite::accept(s) else {
                    return;
                };
                while let Ok(msg) = ws.read() {
                    match msg {
                        Message::Text(_) | Message::Binary(_) => {
                            let echoed = ws.send(msg);
                            if echoed.is_err() {
                                return;
                            }
                        }
                        Message::Close(_) => {
                            let _ = ws.flush();
                            return;
                        }
                        _ => {}
                    }
                }
            });
        }
    });
    addr
}

fn ws_connect(gw: SocketAddr) -> tungstenite::WebSocket<TcpStream> {
    let s = TcpStream::connect(gw).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (ws, resp) =
        tungstenite::client(format!("ws://{gw}/chat"), s).expect("handshake through ringway");
    assert_eq!(resp.status(), 101);
    ws
}

#[test]
fn text_binary_large_ping_and_close_through_the_tunnel() {
    ringway_tests::on_both_drivers(text_binary_large_ping_and_close);
}

fn text_binary_large_ping_and_close(env: &[(&str, &str)]) {
    let up = ws_echo();
    let gw = Gateway::start_with_env(&simple_config(up, 2, ""), env);
    let mut ws = ws_connect(gw.addr);
    ws.send(Message::text("hello")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("hello"));
    ws.send(Message::binary(vec![0u8, 1, 2, 255])).unwrap();
    assert_eq!(ws.read().unwrap(), Message::binary(vec![0u8, 1, 2, 255]));
    let big = pattern(1024 * 1024, 5);
    ws.send(Message::binary(big.clone())).unwrap();
    assert_eq!(ws.read().unwrap().into_data().as_ref(), &big[..]);
    ws.send(Message::Ping(b"p".to_vec().into())).unwrap();
    match ws.read().unwrap() {
        Message::Pong(p) => assert_eq!(p.as_ref(), b"p"),
        other => panic!("expected a pong, got {other:?}"),
    }
    ws.close(None).unwrap();
    // The close handshake completes: the server's close frame comes back, then EOF.
    loop {
        match ws.read() {
            Ok(Message::Close(_)) => continue,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(tungstenite::Error::ConnectionClosed) | Err(tungstenite::Error::AlreadyClosed) => {
                break;
            }
            Err(e) => panic!("close failed: {e}"),
        }
    }
}

#[test]
fn many_concurrent_tunnels() {
    let up = ws_echo();
    let gw = Gateway::start(&simple_config(up, 2, ""));
    let addr = gw.addr;
    let handles: Vec<_> = (0..64)
        .map(|i| {
            std::thread::spawn(move || {
                let mut ws = ws_connect(addr);
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
