//! A test origin that runs as a process of its own, so a test can kill it
//! (`SIGKILL`: its connections reset) and start it again on the same port.
//! Thread per connection, keep-alive, std only.
//!
//! `ringway-test-origin --listen 127.0.0.1:0 --name a` prints
//! `listening on ADDR` on stdout, then answers every request `200` with
//! body NAME and `X-Origin: NAME`, until told otherwise on stdin, one
//! command per line (each acknowledged with `ok` on stdout):
//!
//! - `ok` — answer 200 (the default);
//! - `status N` — answer N;
//! - `retry-after S` — answer 503 with `Retry-After: S`;
//! - `stall` — read requests, never answer;
//! - `delay MS` — answer 200 after MS milliseconds;
//! - `slow-status N MS` — answer N after MS milliseconds.
//!
//! Every answer names the origin (`X-Origin`), the request body's length
//! (`X-Body-Len`) and its Host (`X-Host`). `GET /__count` answers `requests=N checks=M`: requests served other than
//! this one, split by whether their User-Agent is `ringway-health`.

use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Ok,
    Status(u16),
    RetryAfter(u64),
    Stall,
    Delay(u64),
    SlowStatus(u16, u64),
}

struct State {
    name: String,
    mode: Mutex<Mode>,
    requests: AtomicU64,
    checks: AtomicU64,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut listen, mut name) = ("127.0.0.1:0".to_string(), "origin".to_string());
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().expect("--listen ADDR"),
            "--name" => name = args.next().expect("--name NAME"),
            other => panic!("unknown argument {other}"),
        }
    }
    let l = TcpListener::bind(&listen).expect("bind");
    let state = Arc::new(State {
        name,
        mode: Mutex::new(Mode::Ok),
        requests: AtomicU64::new(0),
        checks: AtomicU64::new(0),
    });
    println!("listening on {}", l.local_addr().expect("address"));
    let _ = std::io::stdout().flush();
    let st = state.clone();
    std::thread::spawn(move || commands(&st));
    for s in l.incoming() {
        let Ok(s) = s else { continue };
        let st = state.clone();
        std::thread::spawn(move || serve(s, &st));
    }
}

/// Reads mode changes from stdin; exits the process when stdin closes.
fn commands(st: &State) {
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let mut w = line.split_whitespace();
        let n = |w: Option<&str>| w.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let mode = match w.next() {
            Some("ok") => Mode::Ok,
            Some("status") => Mode::Status(n(w.next()) as u16),
            Some("retry-after") => Mode::RetryAfter(n(w.next())),
            Some("stall") => Mode::Stall,
            Some("delay") => Mode::Delay(n(w.next())),
            Some("slow-status") => Mode::SlowStatus(n(w.next()) as u16, n(w.next())),
            _ => continue,
        };
        *st.mode.lock().unwrap() = mode;
        println!("ok");
        let _ = std::io::stdout().flush();
    }
    std::process::exit(0);
}

fn serve(mut s: TcpStream, st: &State) {
    let _ = s.set_nodelay(true);
    let mut buf = Vec::new();
    let mut tmp = [0u8; 16 * 1024];
    let mut host: String;
    loop {
        let (head_len, path, body_len, health, close) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let field = |name: &str| {
                        req.headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case(name))
                            .map(|h| String::from_utf8_lossy(h.value).into_owned())
                    };
                    let len = field("content-length").and_then(|v| v.trim().parse().ok());
                    let health = field("user-agent").is_some_and(|v| v == "ringway-health");
                    let close =
                        field("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
                    host = field("host").unwrap_or_default();
                    break (
                        n,
                        req.path.unwrap_or("/").to_string(),
                        len.unwrap_or(0usize),
                        health,
                        close,
                    );
                }
                Ok(httparse::Status::Partial) => match s.read(&mut tmp) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&tmp[..n]),
                },
                Err(_) => return,
            }
        };
        while buf.len() < head_len + body_len {
            match s.read(&mut tmp) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
        buf.drain(..head_len + body_len);
        let mode = *st.mode.lock().unwrap();
        let reply = if path == "/__count" {
            let body = format!(
                "requests={} checks={}",
                st.requests.load(Ordering::SeqCst),
                st.checks.load(Ordering::SeqCst)
            );
            response(200, &[], &body)
        } else {
            let counter = if health { &st.checks } else { &st.requests };
            counter.fetch_add(1, Ordering::SeqCst);
            match mode {
                Mode::Ok => response(200, &[], &st.name),
                Mode::Status(code) => response(code, &[], &st.name),
                Mode::RetryAfter(secs) => {
                    response(503, &[format!("Retry-After: {secs}")], &st.name)
                }
                Mode::SlowStatus(code, ms) => {
                    std::thread::sleep(Duration::from_millis(ms));
                    response(code, &[], &st.name)
                }
                Mode::Delay(ms) => {
                    std::thread::sleep(Duration::from_millis(ms));
                    response(200, &[], &st.name)
                }
                Mode::Stall => {
                    // Hold the connection without answering until the peer goes.
                    while !matches!(s.read(&mut tmp), Ok(0) | Err(_)) {}
                    return;
                }
            }
        };
        let head = format!(
            "X-Origin: {}\r\nX-Body-Len: {body_len}\r\nX-Host: {host}",
            st.name
        );
        let reply = reply.replacen("\r\n", &format!("\r\n{head}\r\n"), 1);
        if s.write_all(reply.as_bytes()).is_err() || close {
            return;
        }
    }
}

fn response(status: u16, extra: &[String], body: &str) -> String {
    let mut r = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
    for e in extra {
        r.push_str(e);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r.push_str(body);
    r
}
