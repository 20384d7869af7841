//! A small threaded HTTP/1.1 test server on 127.0.0.1:0: one thread per
//! connection, raw bytes out, counting requests and connections, so the
//! load generator's figures can be checked against the server's; the
//! binary runner, the exit-2 check and a throwaway `localhost` certificate.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// Runs the `ringway-load` binary to completion.
pub fn ringway_load(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringway-load"))
        .args(args)
        .output()
        .expect("binary runs")
}

/// A throwaway CA and a `localhost` certificate it signed (for the TLS
/// servers of `tls.rs` and `h2.rs`).
pub struct Localhost {
    pub ca_pem: String,
    pub cert: rcgen::Certificate,
    pub key: rcgen::KeyPair,
}

impl Localhost {
    pub fn issue(ca_name: &str) -> Localhost {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, ca_name);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        Localhost {
            ca_pem: ca.pem(),
            cert,
            key,
        }
    }
}

/// Bad input: exit code 2, one line on stderr that mentions `mentions`,
/// nothing on stdout, no panic.
pub fn assert_exit_2(args: &[&str], mentions: &str) {
    let out = ringway_load(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.starts_with("ringway-load: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains(mentions),
        "{args:?}: expected '{mentions}' in {stderr}"
    );
    assert!(out.stdout.is_empty(), "{args:?}");
}

/// What the server does with one request.
pub struct Reply {
    /// Wait this long before answering.
    pub delay: Duration,
    /// Raw response bytes (may be incomplete on purpose).
    pub bytes: Vec<u8>,
    /// Close the connection after writing.
    pub close: bool,
}

impl Reply {
    pub fn status(code: u16, body: &str) -> Reply {
        Reply {
            delay: Duration::ZERO,
            bytes: format!(
                "HTTP/1.1 {code} X\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
            close: false,
        }
    }

    pub fn ok() -> Reply {
        Reply::status(200, "hello")
    }

    pub fn raw(bytes: &[u8], close: bool) -> Reply {
        Reply {
            delay: Duration::ZERO,
            bytes: bytes.to_vec(),
            close,
        }
    }

    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// Gets the request's number (over all connections) and its request target.
type Handler = dyn Fn(u64, &str) -> Reply + Send + Sync;

struct Shared {
    handler: Box<Handler>,
    /// Requests per request target (path and query).
    paths: Mutex<BTreeMap<String, u64>>,
    requests: AtomicU64,
    connections: AtomicU64,
    stopped: AtomicBool,
    open: Mutex<Vec<TcpStream>>,
    last_request: Mutex<Vec<u8>>,
}

/// A running test server. Stops (and closes every connection) on drop.
pub struct Server {
    pub port: u16,
    shared: Arc<Shared>,
}

impl Server {
    /// Starts a server; `handler` gets the 0-based number of each request
    /// (counted over all connections) and says how to answer it.
    pub fn start(handler: impl Fn(u64) -> Reply + Send + Sync + 'static) -> Server {
        Server::start_routed(move |n, _| handler(n))
    }

    /// Starts a server whose `handler` also sees each request's target.
    pub fn start_routed(handler: impl Fn(u64, &str) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            paths: Mutex::new(BTreeMap::new()),
            requests: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            open: Mutex::new(Vec::new()),
            last_request: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        thread::spawn(move || {
            // Polling accept, so `stop` can drop the listener (then connects are refused).
            while !s.stopped.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        stream.set_nodelay(true).unwrap();
                        s.connections.fetch_add(1, Ordering::SeqCst);
                        s.open.lock().unwrap().push(stream.try_clone().unwrap());
                        let s = s.clone();
                        thread::spawn(move || serve(stream, &s));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        Server { port, shared }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Requests received per request target.
    pub fn paths(&self) -> BTreeMap<String, u64> {
        self.shared.paths.lock().unwrap().clone()
    }

    /// The raw bytes of the last request received.
    pub fn last_request(&self) -> String {
        String::from_utf8_lossy(&self.shared.last_request.lock().unwrap()).into_owned()
    }

    /// Stops listening and closes every open connection.
    pub fn stop(&self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        for stream in self.shared.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        // Let the accept loop notice and drop the listener.
        thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves one connection: parse requests (head + Content-Length body), answer each.
fn serve(mut stream: TcpStream, shared: &Shared) {
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    loop {
        // Parse as many complete requests as the buffer holds.
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            let Ok(httparse::Status::Complete(head)) = req.parse(&buf) else {
                break;
            };
            let mut body = 0usize;
            let mut client_close = false;
            for h in req.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") {
                    body = std::str::from_utf8(h.value)
                        .unwrap()
                        .trim()
                        .parse()
                        .unwrap();
                }
                if h.name.eq_ignore_ascii_case("connection")
                    && h.value.eq_ignore_ascii_case(b"close")
                {
                    client_close = true;
                }
            }
            if buf.len() < head + body {
                break;
            }
            let path = req.path.unwrap_or("").to_string();
            *shared.last_request.lock().unwrap() = buf[..head + body].to_vec();
            buf.drain(..head + body);
            if shared.stopped.load(Ordering::SeqCst) {
                return;
            }
            let n = shared.requests.fetch_add(1, Ordering::SeqCst);
            *shared
                .paths
                .lock()
                .unwrap()
                .entry(path.clone())
                .or_insert(0) += 1;
            let reply = (shared.handler)(n, &path);
            if !reply.delay.is_zero() {
                thread::sleep(reply.delay);
            }
            if stream.write_all(&reply.bytes).is_err() {
                return;
            }
            if reply.close || client_close {
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
