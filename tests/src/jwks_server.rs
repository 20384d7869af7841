//! A JWKS endpoint for the JWT tests: serves whatever key set the test
//! currently sets, over plain HTTP or TLS, on 127.0.0.1, and counts the
//! requests it answered. A port can also be held bound but not listening
//! (connections to it are refused) and opened later, for "the issuer is down,
//! then comes up" without racing other tests for the port. Also the
//! base64url encoding tokens and JWKs are written in (the `base64` crate).

use crate::pki::Leaf;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use rustls_pki_types::pem::PemObject;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

struct State {
    body: Mutex<String>,
    requests: AtomicUsize,
    stop: AtomicBool,
    tls: Option<Arc<ServerConfig>>,
}

/// A running JWKS endpoint, stopped on drop.
pub struct JwksServer {
    pub addr: SocketAddr,
    state: Arc<State>,
}

/// A loopback port held bound but not listening: connecting is refused.
pub struct Reserved {
    pub addr: SocketAddr,
    socket: socket2::Socket,
}

impl Reserved {
    pub fn new() -> Reserved {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        socket.bind(&any.into()).expect("bind");
        let addr = socket
            .local_addr()
            .unwrap()
            .as_socket()
            .expect("an inet address");
        Reserved { addr, socket }
    }

    /// Starts listening on the held port and serving `body` over plain HTTP.
    pub fn listen(self, body: &str) -> JwksServer {
        self.socket.listen(128).expect("listen");
        JwksServer::serve(self.socket.into(), body, None)
    }
}

impl Default for Reserved {
    fn default() -> Self {
        Self::new()
    }
}

impl JwksServer {
    /// Plain HTTP.
    pub fn http(body: &str) -> JwksServer {
        Self::serve(TcpListener::bind("127.0.0.1:0").unwrap(), body, None)
    }

    /// HTTPS with `leaf` (issued for the names the URL will use).
    pub fn https(body: &str, leaf: &Leaf) -> JwksServer {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(leaf.der.to_vec())],
                PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
            )
            .unwrap();
        Self::serve(
            TcpListener::bind("127.0.0.1:0").unwrap(),
            body,
            Some(Arc::new(config)),
        )
    }

    fn serve(l: TcpListener, body: &str, tls: Option<Arc<ServerConfig>>) -> JwksServer {
        let addr = l.local_addr().unwrap();
        let state = Arc::new(State {
            body: Mutex::new(body.to_string()),
            requests: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            tls,
        });
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                if st.stop.load(Ordering::Acquire) {
                    return;
                }
                let Ok(tcp) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || answer(&st, tcp));
            }
        });
        JwksServer { addr, state }
    }

    /// `scheme://host:port/path` with the given host name (e.g. `localhost`
    /// for a TLS certificate issued to it).
    pub fn url(&self, host: &str, path: &str) -> String {
        let scheme = if self.state.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{host}:{}{path}", self.addr.port())
    }

    /// Serves `body` from now on.
    pub fn set(&self, body: &str) {
        *self.state.body.lock().unwrap() = body.to_string();
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::Acquire)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect(self.addr);
    }
}

/// Reads one request head and answers it with the current body, then closes.
fn answer(st: &State, tcp: TcpStream) {
    let _ = tcp.set_read_timeout(Some(crate::WAIT));
    let _ = tcp.set_write_timeout(Some(crate::WAIT));
    match &st.tls {
        None => {
            let mut s = tcp;
            respond(st, &mut s);
        }
        Some(config) => {
            let Ok(conn) = ServerConnection::new(config.clone()) else {
                return;
            };
            let mut s = StreamOwned::new(conn, tcp);
            if respond(st, &mut s) {
                s.conn.send_close_notify();
                let _ = s.flush();
            }
        }
    }
}

fn respond(st: &State, s: &mut (impl Read + Write)) -> bool {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let body = st.body.lock().unwrap().clone();
    st.requests.fetch_add(1, Ordering::AcqRel);
    let out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(out.as_bytes()).is_ok() && s.flush().is_ok()
}

/// Unpadded base64url, as JWTs and JWKS documents use.
pub fn b64url(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}
