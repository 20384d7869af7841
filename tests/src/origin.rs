//! A recording HTTP/1.1 origin on 127.0.0.1: it keeps every request it
//! receives (head fields and body bytes) and counts connections, and answers
//! with whatever the test's handler says. It can also tell when it has taken
//! in everything sent to it ([`Origin::quiet`]), the event a test waits for
//! before saying "nothing (more) was forwarded".

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the origin received it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub version: u8,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the body came chunked.
    pub chunked: bool,
    /// Which connection (0-based, in accept order) carried it.
    pub conn: usize,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// What the origin answers.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Status, extra header lines (`"K: V"`), body sent with Content-Length.
    Length(u16, Vec<String>, Vec<u8>),
    /// Body sent chunked in pieces of the given size.
    Chunked(u16, Vec<u8>, usize),
    /// Body without length; the origin closes the connection after it.
    UntilClose(u16, Vec<u8>),
    /// Exact bytes, then keep reading.
    Raw(Vec<u8>),
    /// Exact bytes, a pause, more bytes (e.g. a stray body arriving late), then keep reading.
    RawThenLate(Vec<u8>, Duration, Vec<u8>),
    /// Exact bytes, then close.
    RawClose(Vec<u8>),
    /// Sleep, then answer with the inner reply.
    Delay(Duration, Box<Reply>),
    /// Never answer (keep the connection open).
    Silent,
    /// Send a normal keep-alive response, then close the connection anyway.
    LengthThenClose(u16, Vec<u8>),
    /// A body of `len` bytes of [`crate::pattern`]`(len, seed)` with
    /// Content-Length, made and written 64 KiB at a time as the gateway
    /// takes them (never whole in memory); the counter adds up the body
    /// bytes written so far, which shows how far the gateway read.
    Stream {
        status: u16,
        len: u64,
        seed: u64,
        written: Arc<AtomicU64>,
    },
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;

/// A running origin. Its threads stop when it is dropped.
pub struct Origin {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    conns: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    /// The listening socket (a second handle), to read its accept queue.
    listener: TcpListener,
    /// Set from the moment a connection is waiting to be accepted until it is in `watch`.
    accepting: Arc<AtomicBool>,
    /// Every accepted connection, in accept order.
    watch: Arc<Mutex<Vec<Arc<Conn>>>>,
}

/// What the origin knows of one of its connections.
struct Conn {
    /// A second handle on the socket, to look for unread bytes; dropped
    /// before the origin's own, so closing still closes the socket.
    stream: Mutex<Option<TcpStream>>,
    /// Between requests, with no byte of the next one taken in. Cleared
    /// before a byte is read (bytes are peeked first), so a byte is always
    /// either still in the socket or seen with this false.
    idle: AtomicBool,
    /// The origin is done with the connection.
    ended: AtomicBool,
}

impl Conn {
    /// Nothing received and not yet taken in: no bytes, no end of stream.
    fn drained(&self) -> bool {
        let stream = self.stream.lock().unwrap();
        let Some(stream) = stream.as_ref() else {
            return true;
        };
        let mut b = 0u8;
        // SAFETY: a one-byte peek into a live local; the fd is owned by `stream`, held locked.
        let n = unsafe {
            libc::recv(
                stream.as_raw_fd(),
                (&raw mut b).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
    }

    fn quiet(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
            || (self.idle.load(Ordering::SeqCst)
                && self.drained()
                && self.idle.load(Ordering::SeqCst))
    }
}

/// Connections the kernel has completed on listener `l` but nobody accepted yet.
pub fn accept_queue(l: &impl AsRawFd) -> u32 {
    // SAFETY: getsockopt writes at most `len` bytes into the zeroed struct.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let r = libc::getsockopt(
            l.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        );
        // On a listening socket, Linux reports the accept queue's length here.
        if r == 0 { info.tcpi_unacked } else { u32::MAX }
    }
}

/// Blocks until `l` has a connection to accept.
fn wait_acceptable(l: &TcpListener) {
    let mut p = libc::pollfd {
        fd: l.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    while unsafe { libc::poll(&mut p, 1, -1) } < 0 {}
}

impl Origin {
    /// Starts an origin whose answer comes from `handler`.
    pub fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind origin");
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let conns = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let accepting = Arc::new(AtomicBool::new(false));
        let watch = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let (seen2, conns2, stop2) = (seen.clone(), conns.clone(), stop.clone());
        let (accepting2, watch2) = (accepting.clone(), watch.clone());
        let l = listener.try_clone().expect("listener handle");
        std::thread::spawn(move || {
            loop {
                wait_acceptable(&l);
                accepting2.store(true, Ordering::SeqCst);
                let accepted = l.accept();
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok((stream, _)) = accepted else {
                    accepting2.store(false, Ordering::SeqCst);
                    continue;
                };
                let mut stream = stream;
                let conn = Arc::new(Conn {
                    stream: Mutex::new(Some(stream.try_clone().expect("connection handle"))),
                    idle: AtomicBool::new(false),
                    ended: AtomicBool::new(false),
                });
                watch2.lock().unwrap().push(conn.clone());
                let id = conns2.fetch_add(1, Ordering::SeqCst);
                accepting2.store(false, Ordering::SeqCst);
                let (seen, handler, stop) = (seen2.clone(), handler.clone(), stop2.clone());
                std::thread::spawn(move || {
                    serve(&mut stream, id, &seen, &*handler, &stop, &conn.idle);
                    conn.stream.lock().unwrap().take();
                    conn.ended.store(true, Ordering::SeqCst);
                    drop(stream);
                });
            }
        });
        Origin {
            addr,
            seen,
            conns,
            stop,
            listener,
            accepting,
            watch,
        }
    }

    /// An origin that answers 200 with the request's method, target and body SHA-256 in headers, and body `ok`.
    pub fn echo() -> Origin {
        Origin::start(|s| {
            Reply::Length(
                200,
                vec![
                    format!("X-Method: {}", s.method),
                    format!("X-Target: {}", s.target),
                    format!("X-Body-Sha256: {}", crate::sha256(&s.body)),
                    format!("X-Body-Len: {}", s.body.len()),
                    format!("X-Conn: {}", s.conn),
                ],
                b"ok".to_vec(),
            )
        })
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }

    /// Waits (up to [`crate::WAIT`]) until the origin has taken in
    /// everything sent to it — no connection waiting to be accepted, and
    /// each one closed or between requests with no byte unread — then
    /// returns what it saw. The event that proves a request refused by the
    /// gateway had every chance to reach the origin.
    pub fn quiet(&self) -> Vec<Seen> {
        let quiet = crate::wait_until(|| {
            let accepted = self.connections();
            let idle =
                || !self.accepting.load(Ordering::SeqCst) && accept_queue(&self.listener) == 0;
            idle()
                && self.watch.lock().unwrap().iter().all(|c| c.quiet())
                && idle()
                && self.connections() == accepted
        });
        assert!(
            quiet,
            "the origin was still receiving after {:?}",
            crate::WAIT
        );
        self.seen()
    }

    /// Waits (up to [`crate::WAIT`]) until connection `n` (in accept order) is over.
    pub fn wait_closed(&self, n: usize) -> bool {
        crate::wait_until(|| {
            self.watch
                .lock()
                .unwrap()
                .get(n)
                .is_some_and(|c| c.ended.load(Ordering::SeqCst))
        })
    }

    /// Waits (up to [`crate::WAIT`]) until a request for `target` has arrived.
    pub fn wait_for_target(&self, target: &str) -> bool {
        crate::wait_until(|| self.seen().iter().any(|s| s.target == target))
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(
    s: &mut TcpStream,
    conn: usize,
    seen: &Mutex<Vec<Seen>>,
    handler: &Handler,
    stop: &AtomicBool,
    idle: &AtomicBool,
) {
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = s.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::new();
    let mut input = Input { stop, idle };
    loop {
        // Between requests: idle unless the next one has begun arriving.
        idle.store(buf.is_empty(), Ordering::SeqCst);
        let req = match read_request(s, &mut buf, conn, &mut input) {
            Some(r) => r,
            None => return,
        };
        let keep = !req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let mut reply = handler(&req);
        // A correct server answers HEAD with the head GET would get, and no body.
        if let (true, Reply::Length(status, headers, body)) = (req.method == "HEAD", &reply) {
            let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
            for h in headers {
                head.push_str(h);
                head.push_str("\r\n");
            }
            head.push_str("\r\n");
            reply = Reply::Raw(head.into_bytes());
        }
        seen.lock().unwrap().push(req);
        if !send(s, reply, stop) || !keep {
            return;
        }
    }
}

/// Writes a reply; false when the connection must end.
fn send(s: &mut TcpStream, reply: Reply, stop: &AtomicBool) -> bool {
    match reply {
        Reply::Length(status, headers, body) => {
            let mut out = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
            for h in headers {
                out.push_str(&h);
                out.push_str("\r\n");
            }
            out.push_str("\r\n");
            s.write_all(out.as_bytes()).is_ok() && s.write_all(&body).is_ok()
        }
        Reply::Chunked(status, body, piece) => {
            let mut out =
                format!("HTTP/1.1 {status} X\r\nTransfer-Encoding: chunked\r\n\r\n").into_bytes();
            for c in body.chunks(piece.max(1)) {
                out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                out.extend_from_slice(c);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
            s.write_all(&out).is_ok()
        }
        Reply::UntilClose(status, body) => {
            let _ = s.write_all(format!("HTTP/1.1 {status} X\r\n\r\n").as_bytes());
            let _ = s.write_all(&body);
            false
        }
        Reply::Raw(bytes) => s.write_all(&bytes).is_ok(),
        Reply::RawThenLate(first, pause, late) => {
            let ok = s.write_all(&first).is_ok();
            std::thread::sleep(pause);
            ok && s.write_all(&late).is_ok()
        }
        Reply::RawClose(bytes) => {
            let _ = s.write_all(&bytes);
            false
        }
        Reply::Delay(d, inner) => {
            std::thread::sleep(d);
            send(s, *inner, stop)
        }
        Reply::Silent => {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                let mut b = [0u8; 1024];
                match s.read(&mut b) {
                    Ok(0) => return false,
                    _ => continue,
                }
            }
            false
        }
        Reply::Stream {
            status,
            len,
            seed,
            written,
        } => {
            let head = format!("HTTP/1.1 {status} X\r\nContent-Length: {len}\r\n\r\n");
            if s.write_all(head.as_bytes()).is_err() {
                return false;
            }
            let mut bytes = crate::Pattern::new(seed);
            let mut piece = vec![0u8; 64 * 1024];
            let mut left = len;
            while left > 0 {
                if stop.load(Ordering::Relaxed) {
                    return false;
                }
                let n = left.min(piece.len() as u64) as usize;
                bytes.fill(&mut piece[..n]);
                if s.write_all(&piece[..n]).is_err() {
                    return false;
                }
                written.fetch_add(n as u64, Ordering::SeqCst);
                left -= n as u64;
            }
            true
        }
        Reply::LengthThenClose(status, body) => {
            let out = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(out.as_bytes());
            let _ = s.write_all(&body);
            false
        }
    }
}

/// What reading a connection consults: the origin's stop flag, and the
/// connection's idle flag, cleared before a byte is taken in.
struct Input<'a> {
    stop: &'a AtomicBool,
    idle: &'a AtomicBool,
}

/// Reads more into `buf`; None on EOF, error, or stop.
fn fill(s: &mut TcpStream, buf: &mut Vec<u8>, input: &mut Input<'_>) -> Option<()> {
    let mut tmp = [0u8; 64 * 1024];
    loop {
        if input.stop.load(Ordering::Relaxed) {
            return None;
        }
        // Peek first: the bytes stay in the socket until `idle` is cleared.
        let peeked = s.peek(&mut tmp[..1]);
        if let Ok(1..) = peeked {
            input.idle.store(false, Ordering::SeqCst);
        }
        match peeked.and_then(|_| s.read(&mut tmp)) {
            Ok(0) => return None,
            Ok(n) => {
                buf.extend_from_slice(&tmp[..n]);
                return Some(());
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => return None,
        }
    }
}

fn read_request(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    conn: usize,
    input: &mut Input<'_>,
) -> Option<Seen> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(n)) => {
                let mut seen = Seen {
                    method: req.method.unwrap().to_string(),
                    target: req.path.unwrap().to_string(),
                    version: req.version.unwrap(),
                    headers: req
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
                    conn,
                };
                buf.drain(..n);
                if seen
                    .header("transfer-encoding")
                    .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
                {
                    seen.chunked = true;
                    seen.body = read_chunked(s, buf, input)?;
                } else if let Some(len) = seen.header("content-length") {
                    let len: usize = len.trim().parse().ok()?;
                    while buf.len() < len {
                        fill(s, buf, input)?;
                    }
                    seen.body = buf.drain(..len).collect();
                }
                return Some(seen);
            }
            Ok(httparse::Status::Partial) => fill(s, buf, input)?,
            Err(_) => return None,
        }
    }
}

fn read_line(s: &mut TcpStream, buf: &mut Vec<u8>, input: &mut Input<'_>) -> Option<Vec<u8>> {
    loop {
        if let Some(p) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = buf[..p].to_vec();
            buf.drain(..p + 2);
            return Some(line);
        }
        fill(s, buf, input)?;
    }
}

fn read_chunked(s: &mut TcpStream, buf: &mut Vec<u8>, input: &mut Input<'_>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(s, buf, input)?;
        let size_txt = String::from_utf8_lossy(&line);
        let size = usize::from_str_radix(size_txt.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            // trailers until the empty line
            loop {
                if read_line(s, buf, input)?.is_empty() {
                    return Some(body);
                }
            }
        }
        while buf.len() < size + 2 {
            fill(s, buf, input)?;
        }
        body.extend_from_slice(&buf[..size]);
        if &buf[size..size + 2] != b"\r\n" {
            return None;
        }
        buf.drain(..size + 2);
    }
}
