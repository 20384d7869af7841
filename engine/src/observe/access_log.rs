//! Access logs, off the hot path. Each worker formats its lines into its own
//! buffer; full buffers (or whatever is there every 25 ms) go to one writer
//! thread over a bounded channel. When the writer falls behind, batches are
//! dropped and counted — a worker never blocks on the log.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A worker hands its buffer over once it holds this many bytes.
pub const FLUSH_BYTES: usize = 32 * 1024;
/// Batches queued for the writer before new ones are dropped.
const QUEUE_BATCHES: usize = 256;

/// How lines look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// nginx's `combined`.
    Combined,
    /// One JSON object per line.
    Json,
    /// A template with `$variables` (see README).
    Template(Vec<Piece>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Var(Var),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    RemoteAddr,
    TimeLocal,
    TimeIso8601,
    Request,
    Method,
    Uri,
    Status,
    BytesSent,
    RequestLength,
    RequestTime,
    UpstreamAddr,
    UpstreamResponseTime,
    Route,
    RequestId,
    UserAgent,
    Referer,
}

const VARS: &[(&str, Var)] = &[
    ("remote_addr", Var::RemoteAddr),
    ("time_local", Var::TimeLocal),
    ("time_iso8601", Var::TimeIso8601),
    ("request", Var::Request),
    ("request_method", Var::Method),
    ("request_uri", Var::Uri),
    ("status", Var::Status),
    ("bytes_sent", Var::BytesSent),
    ("request_length", Var::RequestLength),
    ("request_time", Var::RequestTime),
    ("upstream_addr", Var::UpstreamAddr),
    ("upstream_response_time", Var::UpstreamResponseTime),
    ("route", Var::Route),
    ("request_id", Var::RequestId),
    ("http_user_agent", Var::UserAgent),
    ("http_referer", Var::Referer),
];

impl Format {
    /// `combined`, `json`, or a template; an unknown `$variable` is an error naming it.
    pub fn parse(text: &str) -> Result<Format, String> {
        match text {
            "combined" => return Ok(Format::Combined),
            "json" => return Ok(Format::Json),
            _ => {}
        }
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(i) = rest.find('$') {
            if i > 0 {
                pieces.push(Piece::Text(rest[..i].to_string()));
            }
            rest = &rest[i..];
            let name_len = rest[1..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len() - 1);
            let name = &rest[1..1 + name_len];
            // Longest known variable that prefixes the name wins ($status_x is $status + "_x").
            let (var_name, var) = VARS
                .iter()
                .filter(|(n, _)| name.starts_with(n))
                .max_by_key(|(n, _)| n.len())
                .ok_or_else(|| {
                    format!(
                        "unknown variable ${name} (known: {})",
                        VARS.iter()
                            .map(|(n, _)| format!("${n}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
            pieces.push(Piece::Var(*var));
            rest = &rest[1 + var_name.len()..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        if pieces.is_empty() {
            return Err("an empty format logs nothing".into());
        }
        Ok(Format::Template(pieces))
    }
}

/// Where lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Stdout,
    File(PathBuf),
}

/// The process-wide side of the access log: the writer thread's channel and counters.
pub struct AccessLog {
    pub format: Format,
    tx: SyncSender<Vec<u8>>,
    pub dropped_lines: AtomicU64,
    pub reopen: Arc<AtomicBool>,
}

impl AccessLog {
    /// Opens the destination and starts the writer thread.
    pub fn start(format: Format, dest: Destination) -> std::io::Result<Arc<AccessLog>> {
        let (tx, rx) = sync_channel(QUEUE_BATCHES);
        let reopen = Arc::new(AtomicBool::new(false));
        let mut sink = Sink::open(&dest)?;
        let reopen2 = reopen.clone();
        std::thread::Builder::new()
            .name("ringway-access-log".into())
            .spawn(move || writer(rx, &mut sink, &dest, &reopen2))?;
        Ok(Arc::new(AccessLog {
            format,
            tx,
            dropped_lines: AtomicU64::new(0),
            reopen,
        }))
    }

    /// Hands a batch of whole lines to the writer, or drops it if the writer is behind.
    pub fn submit(&self, batch: Vec<u8>) {
        let lines = batch.iter().filter(|&&b| b == b'\n').count() as u64;
        match self.tx.try_send(batch) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped_lines.fetch_add(lines, Ordering::Relaxed);
            }
        }
    }
}

enum Sink {
    Stdout,
    File(File),
}

impl Sink {
    fn open(dest: &Destination) -> std::io::Result<Sink> {
        Ok(match dest {
            Destination::Stdout => Sink::Stdout,
            Destination::File(p) => {
                Sink::File(OpenOptions::new().create(true).append(true).open(p)?)
            }
        })
    }
    fn write(&mut self, data: &[u8]) {
        let _ = match self {
            Sink::Stdout => std::io::stdout().lock().write_all(data),
            Sink::File(f) => f.write_all(data),
        };
    }
}

fn writer(rx: Receiver<Vec<u8>>, sink: &mut Sink, dest: &Destination, reopen: &AtomicBool) {
    loop {
        let batch = rx.recv_timeout(Duration::from_millis(500));
        // SIGUSR1: reopen the file (log rotation moved the old one away).
        if reopen.swap(false, Ordering::AcqRel) {
            match Sink::open(dest) {
                Ok(s) => *sink = s,
                Err(e) => tracing::error!("access log: cannot reopen {dest:?}: {e}"),
            }
        }
        match batch {
            Ok(b) => sink.write(&b),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Everything one line may say. Borrowed from the request, only for the
/// moment the line is formatted.
pub struct Entry<'a> {
    pub remote_addr: &'a str,
    pub method: &'a [u8],
    pub uri: &'a [u8],
    /// The HTTP version the client spoke, times ten: 10, 11 or 20.
    pub version: u8,
    pub status: u16,
    pub bytes_sent: u64,
    pub request_length: u64,
    pub request_time: Duration,
    pub upstream_addr: Option<&'a str>,
    pub upstream_time: Option<Duration>,
    pub route: Option<&'a str>,
    pub request_id: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
    pub referer: Option<&'a [u8]>,
}

/// Per worker: the pending lines and a cached clock string (refreshed once a second).
#[derive(Default)]
pub struct LineBuffer {
    pub buf: Vec<u8>,
    clock_second: u64,
    time_local: String,
    time_iso: String,
}

impl LineBuffer {
    fn refresh_clock(&mut self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        if now != self.clock_second || self.time_local.is_empty() {
            self.clock_second = now;
            let t = crate::calendar::DateTime::from_unix(now);
            let (y, mo, d) = (t.year, t.month, t.day);
            let (h, mi, s) = (t.hour, t.minute, t.second);
            self.time_local = format!(
                "{d:02}/{}/{y}:{h:02}:{mi:02}:{s:02} +0000",
                t.month_abbrev()
            );
            self.time_iso = format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z");
        }
    }

    /// Appends one line.
    pub fn push(&mut self, format: &Format, e: &Entry<'_>) {
        self.refresh_clock();
        let mut out = std::mem::take(&mut self.buf);
        match format {
            Format::Combined => {
                // $remote_addr - - [$time_local] "$request" $status $bytes_sent "$http_referer" "$http_user_agent"
                out.extend_from_slice(e.remote_addr.as_bytes());
                out.extend_from_slice(b" - - [");
                out.extend_from_slice(self.time_local.as_bytes());
                out.extend_from_slice(b"] \"");
                request_line(&mut out, e);
                out.extend_from_slice(b"\" ");
                out.extend_from_slice(itoa::Buffer::new().format(e.status).as_bytes());
                out.push(b' ');
                out.extend_from_slice(itoa::Buffer::new().format(e.bytes_sent).as_bytes());
                out.extend_from_slice(b" \"");
                escaped(&mut out, e.referer.unwrap_or(b"-"), false);
                out.extend_from_slice(b"\" \"");
                escaped(&mut out, e.user_agent.unwrap_or(b"-"), false);
                out.push(b'"');
            }
            Format::Json => {
                out.extend_from_slice(b"{\"time\":\"");
                out.extend_from_slice(self.time_iso.as_bytes());
                out.extend_from_slice(b"\",\"request_id\":");
                json_opt(&mut out, e.request_id);
                out.extend_from_slice(b",\"client_ip\":\"");
                out.extend_from_slice(e.remote_addr.as_bytes());
                out.extend_from_slice(b"\",\"method\":\"");
                escaped(&mut out, e.method, true);
                out.extend_from_slice(b"\",\"path\":\"");
                escaped(&mut out, e.uri, true);
                out.extend_from_slice(b"\",\"status\":");
                out.extend_from_slice(itoa::Buffer::new().format(e.status).as_bytes());
                out.extend_from_slice(b",\"bytes_in\":");
                out.extend_from_slice(itoa::Buffer::new().format(e.request_length).as_bytes());
                out.extend_from_slice(b",\"bytes_out\":");
                out.extend_from_slice(itoa::Buffer::new().format(e.bytes_sent).as_bytes());
                out.extend_from_slice(b",\"upstream\":");
                json_opt(&mut out, e.upstream_addr.map(str::as_bytes));
                out.extend_from_slice(b",\"upstream_time_ms\":");
                match e.upstream_time {
                    Some(t) => {
                        out.extend_from_slice(format!("{:.3}", t.as_secs_f64() * 1000.0).as_bytes())
                    }
                    None => out.extend_from_slice(b"null"),
                }
                out.extend_from_slice(b",\"total_time_ms\":");
                out.extend_from_slice(
                    format!("{:.3}", e.request_time.as_secs_f64() * 1000.0).as_bytes(),
                );
                out.extend_from_slice(b",\"route\":");
                json_opt(&mut out, e.route.map(str::as_bytes));
                out.push(b'}');
            }
            Format::Template(pieces) => {
                for p in pieces {
                    match p {
                        Piece::Text(t) => out.extend_from_slice(t.as_bytes()),
                        Piece::Var(v) => self.var(&mut out, *v, e),
                    }
                }
            }
        }
        out.push(b'\n');
        self.buf = out;
    }

    fn var(&self, out: &mut Vec<u8>, v: Var, e: &Entry<'_>) {
        let dash = |out: &mut Vec<u8>, x: Option<&[u8]>| escaped(out, x.unwrap_or(b"-"), false);
        match v {
            Var::RemoteAddr => out.extend_from_slice(e.remote_addr.as_bytes()),
            Var::TimeLocal => out.extend_from_slice(self.time_local.as_bytes()),
            Var::TimeIso8601 => out.extend_from_slice(self.time_iso.as_bytes()),
            Var::Request => request_line(out, e),
            Var::Method => escaped(out, e.method, false),
            Var::Uri => escaped(out, e.uri, false),
            Var::Status => out.extend_from_slice(itoa::Buffer::new().format(e.status).as_bytes()),
            Var::BytesSent => {
                out.extend_from_slice(itoa::Buffer::new().format(e.bytes_sent).as_bytes())
            }
            Var::RequestLength => {
                out.extend_from_slice(itoa::Buffer::new().format(e.request_length).as_bytes())
            }
            Var::RequestTime => {
                out.extend_from_slice(format!("{:.3}", e.request_time.as_secs_f64()).as_bytes())
            }
            Var::UpstreamAddr => dash(out, e.upstream_addr.map(str::as_bytes)),
            Var::UpstreamResponseTime => match e.upstream_time {
                Some(t) => out.extend_from_slice(format!("{:.3}", t.as_secs_f64()).as_bytes()),
                None => out.push(b'-'),
            },
            Var::Route => dash(out, e.route.map(str::as_bytes)),
            Var::RequestId => dash(out, e.request_id),
            Var::UserAgent => dash(out, e.user_agent),
            Var::Referer => dash(out, e.referer),
        }
    }
}

fn request_line(out: &mut Vec<u8>, e: &Entry<'_>) {
    // A head that did not parse: nothing of the request line is known.
    if e.method.is_empty() {
        out.push(b'-');
        return;
    }
    escaped(out, e.method, false);
    out.push(b' ');
    escaped(out, e.uri, false);
    out.extend_from_slice(match e.version {
        10 => b" HTTP/1.0",
        20 => b" HTTP/2.0",
        _ => b" HTTP/1.1",
    });
}

fn json_opt(out: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        Some(v) => {
            out.push(b'"');
            escaped(out, v, true);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
}

/// Copies bytes, escaping quotes, backslashes and anything outside printable
/// ASCII (`\xHH` for text logs, `\u00HH` for JSON), so a client cannot forge
/// log lines or break the JSON.
fn escaped(out: &mut Vec<u8>, v: &[u8], json: bool) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in v {
        match b {
            b'"' | b'\\' => {
                out.push(b'\\');
                out.push(b);
            }
            0x20..=0x7e => out.push(b),
            _ if json => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 15)]);
            }
            _ => {
                out.extend_from_slice(b"\\x");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 15)]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let f = Format::parse("$remote_addr \"$request\" $status_x").unwrap();
        assert_eq!(
            f,
            Format::Template(vec![
                Piece::Var(Var::RemoteAddr),
                Piece::Text(" \"".into()),
                Piece::Var(Var::Request),
                Piece::Text("\" ".into()),
                Piece::Var(Var::Status),
                Piece::Text("_x".into()),
            ])
        );
        assert!(Format::parse("$nope").unwrap_err().contains("$nope"));
    }

    #[test]
    fn hostile_bytes_are_escaped() {
        let mut out = Vec::new();
        escaped(&mut out, b"a\"b\nc\x00", true);
        assert_eq!(out, b"a\\\"b\\u000ac\\u0000");
    }
}

/// What an exchange ended with, as a log line reports it (plain data from the proxy).
pub struct Served<'a> {
    pub remote_addr: &'a str,
    pub status: u16,
    /// Response bytes, where the body length was known up front.
    pub bytes_sent: u64,
    /// Request body bytes, where known up front.
    pub body_in: u64,
    pub request_time: Duration,
    pub upstream_addr: Option<&'a str>,
    pub upstream_time: Option<Duration>,
    pub route: Option<&'a str>,
}

/// The request fields a line needs, copied out of the read buffer before the
/// exchange consumes it (only when access logging is on). Reused per connection.
#[derive(Default)]
pub struct Captured {
    buf: Vec<u8>,
    method: (usize, usize),
    uri: (usize, usize),
    user_agent: Option<(usize, usize)>,
    referer: Option<(usize, usize)>,
    request_id: Option<(usize, usize)>,
    /// As `Entry::version`.
    pub version: u8,
    pub head_len: u64,
}

impl Captured {
    /// `request_id`: the id ringway assigned, when ids are on (else a client's `x-request-id` is logged).
    /// `h2`: the head is an HTTP/2 stream's, put in HTTP/1.1 form.
    pub fn capture(
        &mut self,
        raw: &[u8],
        head: &crate::h1::request::RequestHead,
        request_id: Option<&[u8]>,
        h2: bool,
    ) {
        self.buf.clear();
        let mut put = |b: &[u8]| {
            let start = self.buf.len();
            self.buf.extend_from_slice(b);
            (start, self.buf.len())
        };
        self.method = put(head.method(raw));
        self.uri = put(head.target.get(raw));
        let find = |name: &str| {
            head.headers
                .iter()
                .find(|h| h.name.get(raw).eq_ignore_ascii_case(name.as_bytes()))
                .map(|h| h.value.get(raw))
        };
        self.user_agent = find("user-agent").map(&mut put);
        self.referer = find("referer").map(&mut put);
        self.request_id = request_id.or_else(|| find("x-request-id")).map(&mut put);
        self.version = if h2 { 20 } else { 10 + head.minor_version };
        self.head_len = head.head_len as u64;
    }

    /// For a request refused while its head was read (400/408/414/431):
    /// only the bytes received and the id ringway gave it are known.
    pub fn refused(&mut self, request_id: Option<&[u8]>, received: u64) {
        self.buf.clear();
        (self.method, self.uri) = ((0, 0), (0, 0));
        (self.user_agent, self.referer) = (None, None);
        self.request_id = request_id.map(|id| {
            self.buf.extend_from_slice(id);
            (0, id.len())
        });
        self.version = 11;
        self.head_len = received;
    }

    fn get(&self, r: (usize, usize)) -> &[u8] {
        &self.buf[r.0..r.1]
    }

    /// An entry for these request fields and what the exchange ended with.
    pub fn entry<'a>(&'a self, served: Served<'a>) -> Entry<'a> {
        Entry {
            remote_addr: served.remote_addr,
            method: self.get(self.method),
            uri: self.get(self.uri),
            version: self.version,
            status: served.status,
            bytes_sent: served.bytes_sent,
            request_length: self.head_len + served.body_in,
            request_time: served.request_time,
            upstream_addr: served.upstream_addr,
            upstream_time: served.upstream_time,
            route: served.route,
            request_id: self.request_id.map(|r| self.get(r)),
            user_agent: self.user_agent.map(|r| self.get(r)),
            referer: self.referer.map(|r| self.get(r)),
        }
    }
}
