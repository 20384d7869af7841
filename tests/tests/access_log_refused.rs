//! Access log lines for what used to leave none or undercount: requests
//! refused while their head was read (400, 408, 414, 431) are logged with
//! what is known (client, status, bytes, request id), and `bytes_out` is the
//! whole response also for chunked and close-delimited bodies.

use ringway_tests::client::{closed_within, connect, read_to_close};
use ringway_tests::gateway::TempDir;
use ringway_tests::{Gateway, Origin, Reply};
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

fn config(upstream: SocketAddr, log: &Path) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n\n[server.limits]\nmax_uri_bytes = 256\nmax_headers = 10\n\n[server.timeouts]\nheader_read = \"500ms\"\n\n[server.access_log]\npath = \"{}\"\nformat = \"json\"\n\n[[upstream]]\nname = \"app\"\ntargets = [\"{upstream}\"]\n\n[[route]]\npath = \"/{{proxy+}}\"\nupstream = \"app\"\n",
        log.display()
    )
}

/// Waits (bounded) until the log holds `n` lines; returns them parsed.
fn lines(log: &Path, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + ringway_tests::WAIT;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.lines().count() >= n {
            return text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
        }
        assert!(Instant::now() < deadline, "{n} lines expected:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `raw` and reads everything until the gateway closes.
fn exchange(gw: SocketAddr, raw: &[u8]) -> Vec<u8> {
    let mut s = connect(gw);
    s.write_all(raw).unwrap();
    let mut got = Vec::new();
    read_to_close(&mut s, &mut got);
    got
}

fn status_and_id(response: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(response);
    let status = text[9..12].parse().unwrap();
    let id = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("x-request-id: ")
                .or_else(|| l.strip_prefix("X-Request-Id: "))
        })
        .expect("a request id on the refusal")
        .to_string();
    (status, id)
}

#[test]
fn heads_refused_while_read_are_logged() {
    let dir = TempDir::new();
    let log = dir.0.join("access.log");
    let origin = Origin::echo();
    let gw = Gateway::start(&config(origin.addr, &log));
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(400));
    let many = format!(
        "GET / HTTP/1.1\r\nHost: t\r\n{}\r\n",
        (0..20).map(|i| format!("X-{i}: v\r\n")).collect::<String>()
    );
    let cases: [(u16, Vec<u8>); 3] = [
        (400, b"GET / HTTP/1.1\r\nHost t\r\n\r\n".to_vec()),
        (414, long_uri.into_bytes()),
        (431, many.into_bytes()),
    ];
    for (i, (want, raw)) in cases.iter().enumerate() {
        let response = exchange(gw.addr, raw);
        let (status, id) = status_and_id(&response);
        assert_eq!(status, *want);
        let entry = lines(&log, i + 1)
            .into_iter()
            .find(|e| e["request_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no line for the {want}"));
        assert_eq!(entry["status"], *want);
        assert_eq!(entry["client_ip"], "127.0.0.1");
        assert_eq!(entry["bytes_out"], response.len() as u64, "{want}");
        assert_eq!(entry["bytes_in"], raw.len() as u64, "{want}");
    }
    // 408: part of a head, then silence past header_read.
    let mut s = connect(gw.addr);
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n").unwrap();
    let mut response = Vec::new();
    read_to_close(&mut s, &mut response);
    assert!(closed_within(&mut s, Duration::from_secs(5)));
    let (status, id) = status_and_id(&response);
    assert_eq!(status, 408);
    let entry = lines(&log, 4)
        .into_iter()
        .find(|e| e["request_id"] == id.as_str())
        .expect("a line for the 408");
    assert_eq!(entry["status"], 408);
    assert_eq!(entry["bytes_out"], response.len() as u64);
    assert!(origin.seen().is_empty(), "nothing forwarded");
}

#[test]
fn bytes_out_counts_whole_chunked_and_close_delimited_responses() {
    let dir = TempDir::new();
    let log = dir.0.join("access.log");
    let body = ringway_tests::pattern(50_000, 7);
    let b2 = body.clone();
    let origin = Origin::start(move |s| match s.target.as_str() {
        "/chunked" => Reply::Chunked(200, b2.clone(), 1000),
        _ => Reply::UntilClose(200, b2.clone()),
    });
    let gw = Gateway::start(&config(origin.addr, &log));
    for (i, path) in ["/chunked", "/until-close"].iter().enumerate() {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let response = exchange(gw.addr, raw.as_bytes());
        assert!(
            response.len() > body.len(),
            "{path}: the whole body came back"
        );
        let entry = lines(&log, i + 1)
            .into_iter()
            .find(|e| e["path"] == *path)
            .expect("a line");
        assert_eq!(entry["status"], 200);
        assert_eq!(entry["bytes_out"], response.len() as u64, "{path}");
    }
}
