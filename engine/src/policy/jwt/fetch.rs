//! A blocking HTTP/1.1 GET for JWKS documents, for the fetcher thread only
//! (never on a worker): `std::net::TcpStream`, rustls for `https://` with
//! the same client configuration upstream TLS uses, and the engine's own
//! response-head parser and chunked decoder. Bounded in size
//! ([`MAX_BODY_BYTES`]) and time ([`CONNECT_TIMEOUT`], [`FETCH_TIMEOUT`]).
//! Redirects are not followed.

use crate::h1::Framing;
use crate::h1::chunked::{ChunkedDecoder, Decoded};
use crate::h1::response::{self, ResponseHead};
use ringway_tls::rustls::pki_types::ServerName;
use ringway_tls::rustls::{ClientConfig, ClientConnection, StreamOwned};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A JWKS document larger than this is refused.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Per address tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The whole exchange, connect included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(15);

/// An `http://` or `https://` URL, split for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksUrl {
    pub tls: bool,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// `host[:port]` as written, for the Host field.
    pub authority: String,
    /// Path and query, at least `/`.
    pub target: String,
}

impl JwksUrl {
    /// Checks the syntax only: no name resolution, no I/O.
    pub fn parse(s: &str) -> Result<JwksUrl, String> {
        if let Some(c) = s.chars().find(|c| c.is_ascii_control() || *c == ' ') {
            return Err(format!("the URL holds {c:?}"));
        }
        let (tls, rest) = match s.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
            Some((scheme, _)) => {
                return Err(format!(
                    "scheme {scheme:?} is not supported: use http:// or https://"
                ));
            }
            None => return Err("not a URL: write http://HOST/PATH or https://HOST/PATH".into()),
        };
        let rest = rest.split('#').next().unwrap_or("");
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(end);
        if authority.contains('@') {
            return Err("credentials in the URL are not supported".into());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or("an IPv6 host needs its closing `]`")?;
            if h.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!("{h:?} is not an IPv6 address"));
            }
            match after {
                "" => (h, None),
                p => (h, Some(p.strip_prefix(':').ok_or("junk after `]`")?)),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err("the URL has no host".into());
        }
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'))
        {
            return Err(format!("{host:?} is not a host name"));
        }
        let port = match port {
            None => {
                if tls {
                    443
                } else {
                    80
                }
            }
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(format!("{p:?} is not a port")),
            },
        };
        let target = match target {
            "" => "/".to_string(),
            t if t.starts_with('?') => format!("/{t}"),
            t => t.to_string(),
        };
        Ok(JwksUrl {
            tls,
            host: host.to_string(),
            port,
            authority: authority.to_string(),
            target,
        })
    }
}

/// GETs `url`; the body of a 200 response.
pub fn get(url: &JwksUrl, tls: Option<&Arc<ClientConfig>>) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + FETCH_TIMEOUT;
    let tcp = connect(url, deadline)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: application/json, application/jwk-set+json\r\nUser-Agent: ringway\r\nConnection: close\r\n\r\n",
        url.target, url.authority
    );
    if url.tls {
        let config = tls.ok_or("no TLS client configuration")?;
        let name = ServerName::try_from(url.host.clone())
            .map_err(|e| format!("{:?} cannot be a TLS server name: {e}", url.host))?;
        let conn = ClientConnection::new(config.clone(), name).map_err(|e| format!("TLS: {e}"))?;
        let mut s = StreamOwned::new(conn, tcp);
        exchange(&mut s, request.as_bytes(), deadline).map_err(|e| {
            if e.contains("certificate") || e.contains("Certificate") {
                format!("TLS: {e}")
            } else {
                e
            }
        })
    } else {
        let mut s = tcp;
        exchange(&mut s, request.as_bytes(), deadline)
    }
}

fn connect(url: &JwksUrl, deadline: Instant) -> Result<TcpStream, String> {
    let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {:?}: {e}", url.host))?
        .collect();
    let mut last = format!("{:?} resolves to no address", url.host);
    for a in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT.min(left)) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = format!("connect to {a}: {e}"),
        }
    }
    Err(last)
}

/// How long the next read or write may block.
fn arm(s: &TcpStream, deadline: Instant) -> Result<(), String> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(format!("no answer within {FETCH_TIMEOUT:?}"));
    }
    s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(left)).map_err(|e| e.to_string())
}

/// The socket under a plain or TLS stream (for its timeouts).
trait Socket: Read + Write {
    fn tcp(&self) -> &TcpStream;
}

impl Socket for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Socket for StreamOwned<ClientConnection, TcpStream> {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
}

fn exchange<S: Socket>(s: &mut S, request: &[u8], deadline: Instant) -> Result<Vec<u8>, String> {
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            format!("no answer within {FETCH_TIMEOUT:?}")
        }
        _ => e.to_string(),
    };
    arm(s.tcp(), deadline)?;
    s.write_all(request).map_err(io)?;
    s.flush().map_err(io)?;
    let limits = crate::h1::Limits::default();
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut chunk = [0u8; 16 * 1024];
    let mut head = ResponseHead::default();
    // The head.
    loop {
        arm(s.tcp(), deadline)?;
        let n = s.read(&mut chunk).map_err(io)?;
        if n == 0 {
            return Err("the server closed the connection before a response".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        match response::parse(&buf, &limits, false, &mut head) {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => return Err(format!("bad response: {e:?}")),
        }
    }
    if head.status != 200 {
        return Err(format!("HTTP status {}", head.status));
    }
    let mut rest = buf.split_off(head.head_len);
    let mut body = Vec::new();
    match head.framing {
        Framing::None => {}
        Framing::Length(n) => {
            if n > MAX_BODY_BYTES as u64 {
                return Err(format!("the body is over {MAX_BODY_BYTES} bytes"));
            }
            let n = n as usize;
            body = rest;
            body.truncate(n);
            while body.len() < n {
                arm(s.tcp(), deadline)?;
                let got = s.read(&mut chunk).map_err(io)?;
                if got == 0 {
                    return Err("the body ended early".into());
                }
                body.extend_from_slice(&chunk[..got.min(n - body.len())]);
            }
        }
        Framing::UntilClose => {
            body = rest;
            loop {
                if body.len() > MAX_BODY_BYTES {
                    return Err(format!("the body is over {MAX_BODY_BYTES} bytes"));
                }
                arm(s.tcp(), deadline)?;
                let got = s.read(&mut chunk).map_err(io)?;
                if got == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..got]);
            }
            if body.len() > MAX_BODY_BYTES {
                return Err(format!("the body is over {MAX_BODY_BYTES} bytes"));
            }
        }
        Framing::Chunked => {
            let mut decoder = ChunkedDecoder::default();
            loop {
                let mut at = 0;
                while at < rest.len() && !decoder.is_done() {
                    let (used, what) = decoder
                        .decode(&rest[at..])
                        .map_err(|e| format!("bad chunked body: {e:?}"))?;
                    if let Decoded::Data { start, end } = what {
                        body.extend_from_slice(&rest[at + start..at + end]);
                        if body.len() > MAX_BODY_BYTES {
                            return Err(format!("the body is over {MAX_BODY_BYTES} bytes"));
                        }
                    }
                    at += used;
                    if used == 0 {
                        break;
                    }
                }
                rest.drain(..at);
                if decoder.is_done() {
                    break;
                }
                arm(s.tcp(), deadline)?;
                let got = s.read(&mut chunk).map_err(io)?;
                if got == 0 {
                    return Err("the chunked body ended early".into());
                }
                rest.extend_from_slice(&chunk[..got]);
            }
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_or_say_why_not() {
        let u = JwksUrl::parse("https://issuer.example.com/.well-known/jwks.json").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.target.as_str()),
            (true, "issuer.example.com", 443, "/.well-known/jwks.json")
        );
        let u = JwksUrl::parse("http://127.0.0.1:8080?x=1#frag").unwrap();
        assert_eq!(
            (
                u.tls,
                u.host.as_str(),
                u.port,
                u.authority.as_str(),
                u.target.as_str()
            ),
            (false, "127.0.0.1", 8080, "127.0.0.1:8080", "/?x=1")
        );
        let u = JwksUrl::parse("HTTPS://[::1]:8443/k").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 8443));
        for (bad, says) in [
            ("ftp://example.com/jwks", "scheme \"ftp\""),
            ("example.com/jwks", "not a URL"),
            ("https:///jwks", "no host"),
            ("https://:443/jwks", "no host"),
            ("http://h:99999/", "not a port"),
            ("http://h:0/", "not a port"),
            ("http://user:pw@h/", "credentials"),
            ("http://h /", "holds"),
            ("http://[::1/", "closing"),
            ("http://ex%41mple.com/", "not a host name"),
        ] {
            let e = JwksUrl::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    /// Serves one canned response on 127.0.0.1; returns the URL.
    fn serve_once(response: &'static [u8]) -> JwksUrl {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = [0u8; 1024];
            let _ = s.read(&mut req);
            let _ = s.write_all(response);
        });
        JwksUrl::parse(&format!("http://{addr}/jwks")).unwrap()
    }

    #[test]
    fn bodies_by_length_chunks_and_close() {
        for (raw, want) in [
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".as_slice(),
                Ok(b"hello".to_vec()),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
                Ok(b"hello".to_vec()),
            ),
            (
                b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello",
                Ok(b"hello".to_vec()),
            ),
            (
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
                Err("HTTP status 404".to_string()),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
                Err(format!("the body is over {MAX_BODY_BYTES} bytes")),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello",
                Err("the body ended early".to_string()),
            ),
        ] {
            assert_eq!(get(&serve_once(raw), None), want);
        }
    }
}
