//! A tiny, fast HTTP/1.1 server for measuring the load generator itself:
//! every request (GET, no body) gets the same small response; pipelining is
//! honoured. One monoio runtime per thread, listeners sharing the port.
//!
//! ```sh
//! cargo run --release -p ringway-load --example hello_server -- 127.0.0.1:18081 1
//! ```

use std::net::SocketAddr;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\nContent-Type: text/plain\r\n\r\nhello, ringway\n";

fn main() {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:18081".into())
        .parse()
        .expect("address");
    let threads: usize = args.next().map_or(1, |t| t.parse().expect("thread count"));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let listener = TcpListener::bind(addr).expect("bind");
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        let _ = stream.set_nodelay(true);
                        monoio::spawn(serve(stream));
                    }
                })
            })
        })
        .collect();
    eprintln!("hello_server listening on http://{addr}/ with {threads} thread(s)");
    for w in workers {
        let _ = w.join();
    }
}

async fn serve(mut stream: TcpStream) {
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut out = Vec::with_capacity(RESPONSE.len() * 64);
    let mut matched = 0usize; // bytes of "\r\n\r\n" seen in a row
    loop {
        buf.clear();
        let cap = buf.capacity();
        let (res, slice) = stream.read(buf.slice_mut(0..cap)).await;
        buf = slice.into_inner();
        let Ok(n) = res else { return };
        if n == 0 {
            return;
        }
        out.clear();
        for &b in &buf[..n] {
            matched = match (matched, b) {
                (0 | 2, b'\r') | (1 | 3, b'\n') => matched + 1,
                (_, b'\r') => 1,
                _ => 0,
            };
            if matched == 4 {
                matched = 0;
                out.extend_from_slice(RESPONSE);
            }
        }
        if !out.is_empty() {
            let (res, o) = stream.write_all(out).await;
            out = o;
            if res.is_err() {
                return;
            }
        }
    }
}
