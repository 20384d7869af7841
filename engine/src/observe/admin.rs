//! The admin endpoint: a separate listener, served by its own thread, never
//! by the workers. `GET /metrics` (Prometheus text), `GET /healthz` (200
//! while serving, 503 while draining), `GET /config` (the compiled route
//! table as JSON).
//!
//! A scrape is a message to the workers (`scrape.rs`); the admin thread
//! sums what they publish.

use super::prometheus::{self, Process};
use super::scrape::Scrape;
use crate::control::Shared;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tracing::warn;

/// Starts the admin thread on an already bound listener.
pub fn spawn(
    listener: TcpListener,
    shared: Arc<Shared>,
    scrape: Arc<Scrape>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("ringway-admin".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(s) => {
                        if let Err(e) = handle(s, &shared, &scrape) {
                            warn!("admin request failed: {e}");
                        }
                    }
                    Err(e) => {
                        warn!("admin accept failed: {e}");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        })?;
    Ok(())
}

fn handle(mut s: TcpStream, shared: &Shared, scrape: &Scrape) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = Vec::with_capacity(1024);
    let mut tmp = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut tmp)?;
        if n == 0 || buf.len() > 16 * 1024 {
            return Ok(());
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    let line = buf.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let path = path.split(|&b| b == b'?').next().unwrap_or_default();
    let (status, ctype, body) = match (method, path) {
        (b"GET", b"/metrics") => {
            let reports = scrape.collect();
            let snap = shared.latest();
            let p = Process {
                reloads_ok: shared.reloads_ok.load(Ordering::Relaxed),
                reloads_failed: shared.reloads_failed.load(Ordering::Relaxed),
                draining: shared.draining.load(Ordering::Relaxed),
            };
            (
                200,
                "text/plain; version=0.0.4",
                prometheus::render(&reports, &snap, &p),
            )
        }
        (b"GET", b"/healthz") if shared.draining.load(Ordering::Relaxed) => {
            (503, "text/plain", "draining\n".to_string())
        }
        (b"GET", b"/healthz") => (200, "text/plain", "ok\n".to_string()),
        (b"GET", b"/config") => (200, "application/json", config_json(&shared.latest())),
        (b"GET", _) => (404, "text/plain", "not found\n".to_string()),
        _ => (405, "text/plain", "only GET\n".to_string()),
    };
    let reason = crate::h1::error::reason(status);
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body.as_bytes())
}

fn config_json(snap: &crate::snapshot::Snapshot) -> String {
    let routes: Vec<_> = snap
        .router
        .table()
        .map(|e| {
            let r = &snap.routes[e.route];
            serde_json::json!({
                "host": e.host,
                "method": e.method,
                "path": e.path,
                // A mock route answers by itself: it has no upstream.
                "upstream": if r.policies.mock.is_some() { None } else { snap.upstreams.get(r.upstream).map(|u| u.name.as_str()) },
                "mock": r.policies.mock.is_some(),
                "uri": r.uri_text,
                "websocket": r.websocket,
            })
        })
        .collect();
    let upstreams: Vec<_> = snap
        .upstreams
        .iter()
        .map(|u| {
            serde_json::json!({
                "name": u.name,
                "targets": u.targets.iter().map(|t| format!("{}{}", if t.tls { "https://" } else { "" }, t.authority)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let doc = serde_json::json!({
        "generation": snap.generation,
        "stage": snap.router.stage(),
        "listen": snap.listen.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "upstreams": upstreams,
        "routes": routes,
    });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}
