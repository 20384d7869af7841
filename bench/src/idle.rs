//! A tiny blocking HTTP/1.1 client: one keep-alive GET per connection, then
//! the connection is held open. Used to check that a proxy answers, and to
//! park thousands of idle keep-alive connections on it.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// Per-socket connect/read/write timeout.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// A response head must fit in this many bytes.
const MAX_HEAD: usize = 16 * 1024;
/// Threads that open idle connections in parallel.
const OPENER_THREADS: usize = 4;
/// An opener thread gives up after this many failures in a row.
const MAX_FAILURES_IN_A_ROW: usize = 20;

/// What one keep-alive `GET /` got back; the connection stays open.
pub struct Answer {
    pub conn: TcpStream,
    pub status: u16,
    /// The response head, status line and fields, as text.
    pub head: String,
}

impl Answer {
    /// The value of the first response field named `name` (any case).
    pub fn field(&self, name: &str) -> Option<&str> {
        field(&self.head, name)
    }
}

/// The value of the first field named `name` (any case) in a response head.
fn field<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// Connects to `addr`, sends one keep-alive `GET /`, reads the whole
/// response, and returns the still-open connection and the status code.
pub fn get_and_keep(addr: SocketAddr) -> Result<(TcpStream, u16)> {
    get(addr, &[]).map(|a| (a.conn, a.status))
}

/// Like [`get_and_keep`], with extra request header fields (`Name: value`),
/// and the response head kept.
pub fn get(addr: SocketAddr, fields: &[String]) -> Result<Answer> {
    if !addr.ip().is_loopback() {
        bail!("only loopback targets: {addr}");
    }
    let mut s =
        TcpStream::connect_timeout(&addr, IO_TIMEOUT).with_context(|| format!("connect {addr}"))?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.set_nodelay(true)?;
    let mut request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\n");
    for f in fields {
        request.push_str(f);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    s.write_all(request.as_bytes())?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            bail!("response head over {MAX_HEAD} bytes");
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            bail!("connection closed before the response head");
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no status code in the response")?;
    let length: usize = field(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .context("response has no Content-Length")?;
    let mut have = buf.len() - head_end;
    while have < length {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            bail!("connection closed inside the response body");
        }
        have += n;
    }
    Ok(Answer {
        conn: s,
        status,
        head,
    })
}

/// `GET path` with `Connection: close`; returns the status and the body
/// (read to the end of the connection). For the proxies' admin endpoints.
pub fn get_text(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    if !addr.ip().is_loopback() {
        bail!("only loopback targets: {addr}");
    }
    let mut s =
        TcpStream::connect_timeout(&addr, IO_TIMEOUT).with_context(|| format!("connect {addr}"))?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut all = Vec::new();
    s.read_to_end(&mut all)?;
    let text = String::from_utf8_lossy(&all).to_string();
    let (head, body) = text.split_once("\r\n\r\n").context("no response head")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no status code in the response")?;
    Ok((status, body.to_string()))
}

/// Waits until `addr` answers a GET with 200 (over TLS with `tls`; in plain
/// HTTP with the extra header `fields`), or `timeout` passes.
pub fn wait_ready(
    addr: SocketAddr,
    timeout: Duration,
    alive: &mut dyn FnMut() -> bool,
    tls: Option<&std::sync::Arc<rustls::ClientConfig>>,
    fields: &[String],
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no attempt");
    for _ in 0..10_000 {
        if Instant::now() >= deadline {
            break;
        }
        if !alive() {
            bail!("exited during start-up");
        }
        if crate::process::stop_requested() {
            bail!("stopped by signal");
        }
        let answer = match tls {
            None => get(addr, fields).map(|a| a.status),
            Some(config) => crate::tls::get_status(addr, config),
        };
        match answer.map(|code| ((), code)) {
            Ok((_, 200)) => return Ok(()),
            Ok((_, code)) => last = format!("answered {code}"),
            Err(e) => last = format!("{e:#}"),
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    bail!("not ready after {timeout:?}: {last}")
}

/// Idle connections parked on a proxy.
pub struct Parked {
    pub conns: Vec<TcpStream>,
    pub failures: usize,
    pub first_error: Option<String>,
}

/// Opens `count` connections to `addr` (each does one GET first) from a few
/// threads, stopping early after `deadline`.
pub fn park(addr: SocketAddr, count: usize, deadline: Instant) -> Parked {
    let per_thread = count.div_ceil(OPENER_THREADS);
    let handles: Vec<_> = (0..OPENER_THREADS)
        .map(|t| {
            let n = per_thread.min(count.saturating_sub(t * per_thread));
            std::thread::spawn(move || {
                let mut conns = Vec::with_capacity(n);
                let mut failures = 0;
                let mut first_error = None;
                let mut in_a_row = 0;
                for _ in 0..n {
                    if Instant::now() >= deadline
                        || in_a_row >= MAX_FAILURES_IN_A_ROW
                        || crate::process::stop_requested()
                    {
                        failures += 1;
                        continue;
                    }
                    let error = match get_and_keep(addr) {
                        Ok((s, 200)) => {
                            conns.push(s);
                            in_a_row = 0;
                            continue;
                        }
                        Ok((_, code)) => format!("status {code}"),
                        Err(e) => format!("{e:#}"),
                    };
                    failures += 1;
                    in_a_row += 1;
                    first_error.get_or_insert(error);
                }
                (conns, failures, first_error)
            })
        })
        .collect();
    let mut parked = Parked {
        conns: Vec::with_capacity(count),
        failures: 0,
        first_error: None,
    };
    for h in handles {
        if let Ok((c, f, e)) = h.join() {
            parked.conns.extend(c);
            parked.failures += f;
            if parked.first_error.is_none() {
                parked.first_error = e;
            }
        }
    }
    parked
}
