//! `[server]`: listeners, the admin endpoint, the access log, workers and
//! pinning, the driver, limits and the request id header.

use super::error::Collector;
use super::model::{self, Pin};
use crate::h1::Limits;
use crate::h1::limits::{MAX_HEAD_BYTES_CEILING, MAX_HEADERS_CEILING};
use crate::observe::access_log::{Destination, Format};
use crate::snapshot::{DriverChoice, ListenMode};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;

/// The compiled parts of `[server]` that need more than copying.
pub(super) struct Server {
    pub listen: Vec<SocketAddr>,
    pub listen_tls: Vec<Option<Arc<ringway_tls::ServerTls>>>,
    /// Per listener: a PROXY protocol header comes first (`proxy_protocol =
    /// true`); cleartext HTTP/2 with prior knowledge (`h2c = true`).
    pub listen_mode: Vec<ListenMode>,
    pub h2: crate::h2::H2Settings,
    pub admin: Option<SocketAddr>,
    pub access_log: Option<(Format, Destination)>,
    pub workers: usize,
    pub driver: DriverChoice,
    pub limits: Limits,
}

pub(super) fn compile_server(s: &model::Server, base: &Path, c: &mut Collector<'_>) -> Server {
    let (listen, listen_tls, listen_mode) = compile_listen(s, base, c);
    let admin = compile_admin(s, &listen, c);
    let access_log = compile_access_log(s, base, c);
    let workers = compile_workers(s, c);
    let driver = compile_driver(s, c);
    if *s.backlog.get_ref() == 0 {
        c.at(
            s.backlog.span(),
            "server.backlog",
            "the backlog must be at least 1",
        );
    }
    let limits = compile_limits(&s.limits, c);
    let h2 = compile_h2(&s.h2, &limits, c);
    Server {
        h2,
        listen,
        listen_tls,
        listen_mode,
        admin,
        access_log,
        workers,
        driver,
        limits,
    }
}

type Listeners = (
    Vec<SocketAddr>,
    Vec<Option<Arc<ringway_tls::ServerTls>>>,
    Vec<ListenMode>,
);

/// A raw boolean of a listen table (`proxy_protocol`, `h2c`), its key named on error.
fn listen_bool(
    v: Option<&toml::Value>,
    key: String,
    span: std::ops::Range<usize>,
    c: &mut Collector<'_>,
) -> bool {
    match v {
        None => false,
        Some(toml::Value::Boolean(b)) => *b,
        Some(other) => {
            let found = other.type_str();
            c.at(
                span,
                key,
                format!("expected true or false, found {other} ({found})"),
            );
            false
        }
    }
}

/// `alpn = ["h2", "http/1.1"]`: the protocols a TLS listener offers, in order.
fn listen_alpn(
    v: Option<&toml::Value>,
    key: String,
    span: std::ops::Range<usize>,
    c: &mut Collector<'_>,
) -> Vec<Vec<u8>> {
    let Some(v) = v else {
        return vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    };
    let Some(list) = v.as_array() else {
        c.at(span, key, "expected a list such as [\"h2\", \"http/1.1\"]");
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in list {
        match p.as_str() {
            Some(name @ ("h2" | "http/1.1")) if !out.contains(&name.as_bytes().to_vec()) => {
                out.push(name.as_bytes().to_vec());
            }
            _ => {
                c.at(
                    span.clone(),
                    key.clone(),
                    format!("unknown or repeated protocol {p}: use \"h2\" and/or \"http/1.1\""),
                );
            }
        }
    }
    if out.is_empty() {
        c.at(span, key, "at least one protocol is needed");
    }
    out
}

fn compile_listen(s: &model::Server, base: &Path, c: &mut Collector<'_>) -> Listeners {
    let mut listen = Vec::new();
    let mut listen_tls = Vec::new();
    let mut listen_mode = Vec::new();
    for (i, l) in s.listen.iter().enumerate() {
        let (addr, tls, table) = match l.get_ref() {
            model::Listen::Addr(a) => (a.as_str(), None, None),
            model::Listen::Table(t) => (t.addr.as_str(), t.tls.as_ref(), Some(t)),
        };
        let proxy = table.and_then(|t| t.proxy_protocol.as_ref());
        let h2c = table.and_then(|t| t.h2c.as_ref());
        let alpn = table.and_then(|t| t.alpn.as_ref());
        match resolve_one(addr) {
            Ok(a) if a.port() != 0 && listen.contains(&a) => c.at(
                l.span(),
                format!("server.listen[{i}]"),
                format!("{a} is listed twice"),
            ),
            Ok(a) => {
                listen.push(a);
                let mode = ListenMode {
                    proxy_protocol: listen_bool(
                        proxy,
                        format!("server.listen[{i}].proxy_protocol"),
                        l.span(),
                        c,
                    ),
                    h2c: listen_bool(h2c, format!("server.listen[{i}].h2c"), l.span(), c),
                };
                if mode.h2c && tls.is_some() {
                    c.at(
                        l.span(),
                        format!("server.listen[{i}].h2c"),
                        "h2c is cleartext HTTP/2: a TLS listener offers h2 through `alpn`",
                    );
                }
                if alpn.is_some() && tls.is_none() {
                    c.at(
                        l.span(),
                        format!("server.listen[{i}].alpn"),
                        "`alpn` needs `tls` (for cleartext HTTP/2 use `h2c = true`)",
                    );
                }
                listen_mode.push(mode);
                let alpn = listen_alpn(alpn, format!("server.listen[{i}].alpn"), l.span(), c);
                listen_tls
                    .push(tls.and_then(|t| compile_server_tls(t, base, l.span(), (i, alpn), c)));
            }
            Err(m) => c.at(l.span(), format!("server.listen[{i}]"), m),
        }
    }
    if s.listen.is_empty() {
        c.global("server.listen", "at least one listen address is needed");
    }
    (listen, listen_tls, listen_mode)
}

fn compile_admin(
    s: &model::Server,
    listen: &[SocketAddr],
    c: &mut Collector<'_>,
) -> Option<SocketAddr> {
    s.admin
        .as_ref()
        .and_then(|a| match resolve_one(a.listen.get_ref()) {
            Ok(addr) if addr.port() != 0 && listen.contains(&addr) => {
                c.at(
                    a.listen.span(),
                    "server.admin.listen",
                    "the admin listener must not be a public listen address",
                );
                None
            }
            Ok(addr) => Some(addr),
            Err(m) => {
                c.at(a.listen.span(), "server.admin.listen", m);
                None
            }
        })
}

fn compile_access_log(
    s: &model::Server,
    base: &Path,
    c: &mut Collector<'_>,
) -> Option<(Format, Destination)> {
    s.access_log.as_ref().and_then(|a| {
        let format = match &a.format {
            None => Format::Combined,
            Some(f) => match Format::parse(f.get_ref()) {
                Ok(f) => f,
                Err(m) => {
                    c.at(f.span(), "server.access_log.format", m);
                    return None;
                }
            },
        };
        let dest = match a.path.get_ref().as_str() {
            "stdout" | "-" => Destination::Stdout,
            p => Destination::File(base.join(p)),
        };
        Some((format, dest))
    })
}

fn compile_workers(s: &model::Server, c: &mut Collector<'_>) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = match *s.workers.get_ref() {
        0 => cores,
        n if n > 1024 => {
            c.at(
                s.workers.span(),
                "server.workers",
                "more than 1024 workers is surely a mistake",
            );
            n
        }
        n => n,
    };
    if let Pin::Cpus(cpus) = s.pin.get_ref() {
        let known: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .iter()
            .map(|c| c.id)
            .collect();
        for cpu in cpus {
            if !known.contains(cpu) {
                c.at(
                    s.pin.span(),
                    "server.pin",
                    format!("CPU {cpu} is not available to this process (available: {known:?})"),
                );
            }
        }
    }
    workers
}

fn compile_driver(s: &model::Server, c: &mut Collector<'_>) -> DriverChoice {
    match s.driver.get_ref().as_deref() {
        None | Some("auto") => DriverChoice::Auto,
        Some("io_uring") => DriverChoice::IoUring,
        Some("epoll") => DriverChoice::Epoll,
        Some(other) => {
            c.at(
                s.driver.span(),
                "server.driver",
                format!("unknown driver {other:?}: use \"auto\", \"io_uring\" or \"epoll\""),
            );
            DriverChoice::Auto
        }
    }
}

/// `[server] request_id`: the header carrying request ids (default `x-request-id`).
pub(super) fn compile_request_id(
    t: Option<&toml::Spanned<model::RequestId>>,
    c: &mut Collector<'_>,
) -> Option<Box<[u8]>> {
    let Some(t) = t else {
        return Some(Box::from(&b"x-request-id"[..]));
    };
    let name = match t.get_ref() {
        model::RequestId::On(false) => return None,
        model::RequestId::On(true) => "x-request-id",
        model::RequestId::Name(n) => n.as_str(),
    };
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    let reserved = crate::h1::header::classify(name.as_bytes()) != crate::h1::header::Kind::Other;
    if !token || reserved {
        c.at(
            t.span(),
            "server.request_id",
            format!(
                "{name:?} cannot carry request ids: give a plain header name such as \"x-request-id\" (or false)"
            ),
        );
        return None;
    }
    Some(Box::from(name.as_bytes()))
}

/// Loads a TLS listener's certificates now, so a bad file is a config error naming it.
fn compile_server_tls(
    t: &model::ServerTls,
    base: &Path,
    span: std::ops::Range<usize>,
    (i, alpn): (usize, Vec<Vec<u8>>),
    c: &mut Collector<'_>,
) -> Option<Arc<ringway_tls::ServerTls>> {
    let key = format!("server.listen[{i}].tls");
    let mut specs = Vec::new();
    match (&t.cert, &t.key) {
        (Some(cert), Some(k)) => {
            specs.push(ringway_tls::CertSpec::new(base.join(cert), base.join(k)))
        }
        (None, None) => {}
        _ => c.at(span.clone(), key.clone(), "give both `cert` and `key`"),
    }
    specs.extend(
        t.certs
            .iter()
            .map(|p| ringway_tls::CertSpec::new(base.join(&p.cert), base.join(&p.key))),
    );
    if specs.is_empty() {
        c.at(
            span,
            key,
            "a TLS listener needs `cert` and `key`, or `certs = [{ cert, key }, ...]`",
        );
        return None;
    }
    let ca = t.client_ca.as_ref().map(|p| base.join(p));
    match ringway_tls::ServerTls::load(&specs, ca.as_deref()) {
        Ok(tls) => Some(Arc::new(tls.with_alpn(alpn))),
        Err(e) => {
            c.at(span, key, e.to_string());
            None
        }
    }
}

fn compile_h2(h: &model::H2, limits: &Limits, c: &mut Collector<'_>) -> crate::h2::H2Settings {
    let streams = *h.max_concurrent_streams.get_ref();
    if streams == 0 {
        c.at(
            h.max_concurrent_streams.span(),
            "server.h2.max_concurrent_streams",
            "must be at least 1",
        );
    }
    let window = h.initial_window.get_ref().0;
    if !(1..=(1u64 << 31) - 1).contains(&window) {
        c.at(
            h.initial_window.span(),
            "server.h2.initial_window",
            "must be between 1 byte and 2147483647 bytes",
        );
    }
    let frame = h.max_frame_size.get_ref().0;
    if !(16_384..=16_777_215).contains(&frame) {
        c.at(
            h.max_frame_size.span(),
            "server.h2.max_frame_size",
            "must be between 16KiB and 16777215 bytes",
        );
    }
    let list = match &h.max_header_list {
        None => limits.max_head_bytes,
        Some(l) => {
            let v = l.get_ref().0;
            if !(1024..=MAX_HEAD_BYTES_CEILING as u64).contains(&v) {
                c.at(
                    l.span(),
                    "server.h2.max_header_list",
                    format!("must be between 1024 and {MAX_HEAD_BYTES_CEILING} bytes"),
                );
            }
            v as usize
        }
    };
    for (v, key) in [
        (&h.max_resets_per_second, "server.h2.max_resets_per_second"),
        (
            &h.max_control_frames_per_second,
            "server.h2.max_control_frames_per_second",
        ),
    ] {
        if *v.get_ref() == 0 {
            c.at(v.span(), key, "must be at least 1");
        }
    }
    crate::h2::H2Settings {
        max_concurrent_streams: streams.max(1),
        initial_window: window.clamp(1, (1 << 31) - 1) as u32,
        max_frame_size: frame.clamp(16_384, 16_777_215) as u32,
        max_header_list: list,
        idle_timeout: h.idle_timeout.0,
        max_resets_per_second: *h.max_resets_per_second.get_ref(),
        max_control_frames_per_second: *h.max_control_frames_per_second.get_ref(),
    }
}

fn compile_limits(l: &model::Limits, c: &mut Collector<'_>) -> Limits {
    let head = l.max_head_bytes.get_ref().0;
    if !(1024..=MAX_HEAD_BYTES_CEILING as u64).contains(&head) {
        c.at(
            l.max_head_bytes.span(),
            "server.limits.max_head_bytes",
            format!("must be between 1024 and {MAX_HEAD_BYTES_CEILING} bytes"),
        );
    }
    let headers = *l.max_headers.get_ref();
    if !(1..=MAX_HEADERS_CEILING).contains(&headers) {
        c.at(
            l.max_headers.span(),
            "server.limits.max_headers",
            format!("must be between 1 and {MAX_HEADERS_CEILING}"),
        );
    }
    let uri = l.max_uri_bytes.get_ref().0;
    if uri < 16 || uri > head {
        c.at(
            l.max_uri_bytes.span(),
            "server.limits.max_uri_bytes",
            "must be at least 16 and at most max_head_bytes",
        );
    }
    Limits {
        max_head_bytes: head as usize,
        max_headers: headers,
        max_uri_bytes: uri as usize,
    }
}

/// `127.0.0.1:80`, `[::1]:80`, or `name:80` resolved now (first address).
pub(super) fn resolve_one(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if !s.contains(':') {
        return Err(format!("{s:?} needs a port (host:port)"));
    }
    match s.to_socket_addrs() {
        Ok(mut it) => it
            .next()
            .ok_or_else(|| format!("{s:?} resolves to no address")),
        Err(e) => Err(format!("cannot resolve {s:?}: {e}")),
    }
}
