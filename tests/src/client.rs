//! A raw HTTP/1.1 client: write exact bytes, read back parsed responses.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub version: u8,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body came chunked.
    pub chunked: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Connects with generous timeouts.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, crate::WAIT).expect("connect to gateway");
    s.set_read_timeout(Some(crate::WAIT)).unwrap();
    s.set_write_timeout(Some(crate::WAIT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Sends `raw` on a new connection and reads one response.
pub fn send_raw(addr: SocketAddr, raw: &[u8]) -> Response {
    let mut s = connect(addr);
    s.write_all(raw).unwrap();
    let mut buf = Vec::new();
    read_response(&mut s, &mut buf, false).expect("a response")
}

/// A GET with `Host: test` on a new connection.
pub fn get(addr: SocketAddr, target: &str) -> Response {
    try_get(addr, target).expect("a response")
}

/// A GET with `Host: test` on a new connection; `None` if the connection
/// closes without a response.
pub fn try_get(addr: SocketAddr, target: &str) -> Option<Response> {
    let mut s = connect(addr);
    s.write_all(format!("GET {target} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
        .ok()?;
    read_response(&mut s, &mut Vec::new(), false)
}

/// Reads everything until the peer closes (or the read times out).
pub fn read_to_close(s: &mut impl Read, buf: &mut Vec<u8>) {
    let mut tmp = [0u8; 64 * 1024];
    loop {
        match s.read(&mut tmp) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
}

/// True if the peer closed the connection (reads EOF or reset) within `limit`.
pub fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut tmp = [0u8; 1024];
    loop {
        match s.read(&mut tmp) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

fn fill(s: &mut impl Read, buf: &mut Vec<u8>) -> Option<()> {
    let mut tmp = [0u8; 64 * 1024];
    match s.read(&mut tmp) {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&tmp[..n]);
            Some(())
        }
    }
}

/// Reads one response from `s`; `buf` carries bytes across calls (pipelining).
/// `head_request` means the response has no body whatever it says.
pub fn read_response(s: &mut impl Read, buf: &mut Vec<u8>, head_request: bool) -> Option<Response> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(buf) {
            Ok(httparse::Status::Complete(n)) => {
                let status = resp.code.unwrap();
                let mut r = Response {
                    status,
                    version: resp.version.unwrap(),
                    headers: resp
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_string(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect(),
                    body: Vec::new(),
                    chunked: false,
                };
                buf.drain(..n);
                if head_request || status < 200 || status == 204 || status == 304 {
                    return Some(r);
                }
                if r.header("transfer-encoding")
                    .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
                {
                    r.chunked = true;
                    r.body = read_chunked(s, buf)?;
                } else if let Some(len) = r.header("content-length") {
                    let len: usize = len.trim().parse().ok()?;
                    while buf.len() < len {
                        fill(s, buf)?;
                    }
                    r.body = buf.drain(..len).collect();
                } else {
                    read_to_close(s, buf);
                    r.body = std::mem::take(buf);
                }
                return Some(r);
            }
            Ok(httparse::Status::Partial) => fill(s, buf)?,
            Err(e) => panic!(
                "unparseable response ({e}): {:?}",
                String::from_utf8_lossy(buf)
            ),
        }
    }
}

fn read_chunked(s: &mut impl Read, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = loop {
            if let Some(p) = buf.windows(2).position(|w| w == b"\r\n") {
                let l = buf[..p].to_vec();
                buf.drain(..p + 2);
                break l;
            }
            fill(s, buf)?;
        };
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&line).split(';').next()?.trim(), 16)
                .ok()?;
        if size == 0 {
            loop {
                if let Some(p) = buf.windows(2).position(|w| w == b"\r\n") {
                    let empty = p == 0;
                    buf.drain(..p + 2);
                    if empty {
                        return Some(body);
                    }
                } else {
                    fill(s, buf)?;
                }
            }
        }
        while buf.len() < size + 2 {
            fill(s, buf)?;
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
}
