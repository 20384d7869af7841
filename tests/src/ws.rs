//! WebSocket helpers: an echo upstream (plain or TLS) and a client run
//! through the gateway (plain or TLS), both with tungstenite.

use crate::pki;
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use tungstenite::{Message, WebSocket};

/// A WebSocket echo server on 127.0.0.1: every text or binary message comes
/// back; with `tls`, over TLS.
pub fn echo(tls: Option<Arc<ServerConfig>>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let tls = tls.clone();
            std::thread::spawn(move || {
                s.set_read_timeout(Some(crate::WAIT)).ok();
                match tls {
                    None => serve_echo(s),
                    Some(config) => {
                        let Ok(conn) = ServerConnection::new(config) else {
                            return;
                        };
                        serve_echo(StreamOwned::new(conn, s));
                    }
                }
            });
        }
    });
    addr
}

fn serve_echo<S: Read + Write>(s: S) {
    let Ok(mut ws) = tungstenite::accept(s) else {
        return;
    };
    #[allow(clippy::collapsible_match)] // the guard would have to move `msg`
    while let Ok(msg) = ws.read() {
        match msg {
            Message::Text(_) | Message::Binary(_) => {
                if ws.send(msg).is_err() {
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
}

/// A WebSocket client to `path` on `addr` (plain).
pub fn connect(addr: SocketAddr, path: &str) -> WebSocket<TcpStream> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(crate::WAIT)).unwrap();
    let (ws, resp) =
        tungstenite::client(format!("ws://{addr}{path}"), s).expect("handshake through ringway");
    assert_eq!(resp.status(), 101);
    ws
}

/// A WebSocket client over TLS (SNI `name`, trusting `ca`).
pub fn connect_tls(addr: SocketAddr, ca: &pki::Ca, name: &str, path: &str) -> WebSocket<pki::Tls> {
    let tls = pki::connect(addr, &pki::client_config(ca, None), name).expect("TLS to the gateway");
    let (ws, resp) =
        tungstenite::client(format!("wss://{name}{path}"), tls).expect("handshake through ringway");
    assert_eq!(resp.status(), 101);
    ws
}

/// Text, binary, a 1 MiB message, ping/pong, then the close handshake to the end.
pub fn exercise<S: Read + Write>(ws: &mut WebSocket<S>) {
    ws.send(Message::text("hello")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("hello"));
    ws.send(Message::binary(vec![0u8, 1, 2, 255])).unwrap();
    assert_eq!(ws.read().unwrap(), Message::binary(vec![0u8, 1, 2, 255]));
    let big = crate::pattern(1024 * 1024, 5);
    ws.send(Message::binary(big.clone())).unwrap();
    assert_eq!(ws.read().unwrap().into_data().as_ref(), &big[..]);
    ws.send(Message::Ping(b"p".to_vec().into())).unwrap();
    match ws.read().unwrap() {
        Message::Pong(p) => assert_eq!(p.as_ref(), b"p"),
        other => panic!("expected a pong, got {other:?}"),
    }
    ws.close(None).unwrap();
    loop {
        match ws.read() {
            Ok(Message::Close(_)) => continue,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(tungstenite::Error::ConnectionClosed) | Err(tungstenite::Error::AlreadyClosed) => {
                break;
            }
            Err(e) => panic!("close handshake: {e}"),
        }
    }
}
