//! A small, fast HTTP/1.1 origin server built on ringway's own codec: the
//! built-in upstream of `ringway demo` and the common upstream of the
//! benchmarks (`ringway upstream`). It answers every request with a fixed
//! body after reading (and discarding) the request body.

use crate::h1::Framing;
use crate::h1::Limits;
use crate::h1::chunked::{ChunkedDecoder, Decoded};
use crate::h1::request::{self, RequestHead};
use crate::proxy::relay::{read_more, write_all};
use monoio::net::{TcpListener, TcpStream};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

/// Idle limit of a connection to the built-in upstream.
const IDLE: Duration = Duration::from_secs(60);

pub struct OriginConfig {
    pub listen: SocketAddr,
    pub threads: usize,
    pub body_size: usize,
}

/// Binds the origin's listeners (SO_REUSEPORT, one per thread) and starts
/// its threads. Returns the bound address.
pub fn spawn(cfg: &OriginConfig) -> std::io::Result<SocketAddr> {
    let (listeners, addrs) =
        crate::runtime::listener::bind_all(&[cfg.listen], cfg.threads.max(1), 4096)?;
    let body_size = cfg.body_size;
    for (i, mut ls) in listeners.into_iter().enumerate() {
        let l = ls.pop().expect("one listener per thread");
        std::thread::Builder::new()
            .name(format!("origin-{i}"))
            .spawn(move || {
                let build = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                    .enable_timer()
                    .build();
                let mut rt = build.expect("origin runtime starts");
                rt.block_on(async move {
                    let l = TcpListener::from_std(l).expect("origin listener");
                    let response: Rc<Vec<u8>> = Rc::new(canned_response(body_size));
                    loop {
                        let Ok((s, _)) = l.accept().await else {
                            continue;
                        };
                        monoio::spawn(serve(s, response.clone()));
                    }
                });
            })?;
    }
    Ok(addrs[0])
}

fn canned_response(body_size: usize) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 200 OK\r\nServer: ringway-origin\r\nContent-Type: text/plain\r\nContent-Length: {body_size}\r\n\r\n")
        .into_bytes();
    r.extend((0..body_size).map(|i| b'a' + (i % 26) as u8));
    r
}

async fn serve(mut s: TcpStream, response: Rc<Vec<u8>>) {
    let _ = s.set_nodelay(true);
    let limits = Limits::default();
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut head = RequestHead::default();
    let mut out: Vec<u8> = Vec::with_capacity(response.len() * 4);
    loop {
        // Answer every complete request in the buffer (pipelining), then write once.
        loop {
            match request::parse(&buf, &limits, &mut head) {
                Ok(true) => {}
                Ok(false) => break,
                Err(_) => return,
            }
            let keep = head.keep_alive;
            let head_len = head.head_len;
            match head.framing {
                // A request is never close-delimited.
                Framing::None | Framing::UntilClose => {
                    buf.drain(..head_len);
                }
                Framing::Length(n) => {
                    buf.drain(..head_len);
                    let mut left = n;
                    loop {
                        let take = (buf.len() as u64).min(left) as usize;
                        buf.drain(..take);
                        left -= take as u64;
                        if left == 0 {
                            break;
                        }
                        if !matches!(read_more(&mut s, &mut buf, IDLE).await, Ok(n) if n > 0) {
                            return;
                        }
                    }
                }
                Framing::Chunked => {
                    buf.drain(..head_len);
                    let mut dec = ChunkedDecoder::default();
                    loop {
                        let Ok((n, d)) = dec.decode(&buf) else { return };
                        buf.drain(..n);
                        match d {
                            Decoded::Done { .. } => break,
                            Decoded::Data { .. } => continue,
                            Decoded::NeedMore => {
                                if !matches!(read_more(&mut s, &mut buf, IDLE).await, Ok(n) if n > 0)
                                {
                                    return;
                                }
                            }
                        }
                    }
                }
            }
            out.extend_from_slice(&response);
            if !keep {
                let _ = write_all(&mut s, &mut out, IDLE).await;
                return;
            }
        }
        if !out.is_empty() {
            if write_all(&mut s, &mut out, IDLE).await.is_err() {
                return;
            }
            out.clear();
        }
        match read_more(&mut s, &mut buf, IDLE).await {
            Ok(n) if n > 0 => {}
            _ => return,
        }
    }
}
