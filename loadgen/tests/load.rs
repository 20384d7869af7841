//! End-to-end runs of `ringway_load::run` against the threaded test server.
//! Every run is short (≤ 2 s) and every timing bound is generous.

mod support;

use std::sync::Arc;
use std::time::Duration;

use ringway_load::{ErrorKind, LoadConfig, Report, Stop};
use support::{Reply, Server};

fn config(server: &Server, connections: usize, stop: Stop) -> LoadConfig {
    LoadConfig {
        connections,
        stop,
        threads: 1,
        ..LoadConfig::new(server.url())
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn run(cfg: &LoadConfig) -> Report {
    ringway_load::run(cfg).expect("run starts")
}

#[test]
fn p50_matches_a_fixed_server_delay() {
    let server = Server::start(|_| Reply::ok().after(ms(20)));
    let report = run(&config(&server, 4, Stop::Duration(ms(1000))));
    let p50 = report.latency_us(0.5);
    assert!((20_000..=35_000).contains(&p50), "p50 = {p50} us");
    assert!(report.requests >= 40, "{} requests", report.requests);
    assert_eq!(report.errors.total(), 0);
    // 4 connections, ~20 ms each: about 200 req/s.
    assert!(
        (100.0..=210.0).contains(&report.rps()),
        "rps = {}",
        report.rps()
    );
}

#[test]
fn request_count_is_exact_across_threads() {
    for (pipeline, threads) in [(1, 2), (4, 2)] {
        let server = Server::start(|_| Reply::ok());
        let cfg = LoadConfig {
            pipeline,
            threads,
            ..config(&server, 8, Stop::Requests(1000))
        };
        let report = run(&cfg);
        assert_eq!(report.requests, 1000, "pipeline {pipeline}");
        assert_eq!(server.requests(), 1000, "server count, pipeline {pipeline}");
        assert_eq!(report.status.get(&200), Some(&1000));
        assert_eq!(report.latency.len(), 1000);
        assert_eq!(report.errors.total(), 0);
    }
}

#[test]
fn open_loop_shows_a_stall_that_closed_loop_hides() {
    // The 20th request stalls for one second; everything else is instant.
    let stall = |n| {
        if n == 20 {
            Reply::ok().after(ms(1000))
        } else {
            Reply::ok()
        }
    };

    let server = Server::start(stall);
    let open = run(&LoadConfig {
        rate: Some(200.0),
        ..config(&server, 2, Stop::Duration(ms(2000)))
    });
    let server = Server::start(stall);
    let closed = run(&config(&server, 2, Stop::Duration(ms(2000))));

    assert!(
        open.latency_us(0.999) >= 500_000,
        "open p99.9 = {}",
        open.latency_us(0.999)
    );
    assert!(
        open.latency.max() >= 900_000,
        "open max = {}",
        open.latency.max()
    );
    // The stalled connection's schedule kept running: ~100 requests waited.
    assert!(
        open.latency_us(0.9) >= 200_000,
        "open p90 = {}",
        open.latency_us(0.9)
    );
    assert!(
        open.behind_schedule.unwrap() >= ms(500),
        "behind = {:?}",
        open.behind_schedule
    );
    assert!(
        (300..=420).contains(&open.requests),
        "open requests = {}",
        open.requests
    );

    assert!(
        closed.latency.max() >= 900_000,
        "closed max = {}",
        closed.latency.max()
    );
    assert!(
        closed.latency_us(0.9) < 50_000,
        "closed p90 = {}",
        closed.latency_us(0.9)
    );
    assert!(closed.behind_schedule.is_none());
}

#[test]
fn five_hundreds_are_statuses_not_errors() {
    let server = Server::start(|n| {
        if n % 2 == 0 {
            Reply::status(503, "busy")
        } else {
            Reply::ok()
        }
    });
    let report = run(&config(&server, 2, Stop::Requests(100)));
    assert_eq!(report.status.get(&503), Some(&50));
    assert_eq!(report.status.get(&200), Some(&50));
    assert_eq!(report.errors.total(), 0);
}

#[test]
fn a_server_closing_mid_response_is_a_read_error() {
    let server = Server::start(|n| {
        if n % 2 == 0 {
            Reply::raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", true)
        } else {
            Reply::ok()
        }
    });
    let report = run(&config(&server, 2, Stop::Duration(ms(300))));
    assert!(
        report.errors.get(ErrorKind::Read) > 0,
        "{:?}",
        report.errors
    );
    assert!(report.requests > 0);
    for kind in [
        ErrorKind::Connect,
        ErrorKind::Parse,
        ErrorKind::Timeout,
        ErrorKind::Write,
    ] {
        assert_eq!(report.errors.get(kind), 0, "{kind:?}");
    }
}

#[test]
fn refused_connections_mid_run_are_connect_errors() {
    let server = Arc::new(Server::start(|_| Reply::ok()));
    let stopper = {
        let server = server.clone();
        std::thread::spawn(move || {
            std::thread::sleep(ms(300));
            server.stop();
        })
    };
    let report = run(&config(&server, 2, Stop::Duration(ms(800))));
    stopper.join().unwrap();
    assert!(report.requests > 0);
    assert!(
        report.errors.get(ErrorKind::Connect) > 0,
        "{:?}",
        report.errors
    );
}

#[test]
fn garbage_is_a_parse_error_and_silence_a_timeout() {
    let server = Server::start(|_| Reply::raw(b"SMTP ready\r\n\r\n", false));
    let report = run(&config(&server, 1, Stop::Duration(ms(200))));
    assert!(
        report.errors.get(ErrorKind::Parse) > 0,
        "{:?}",
        report.errors
    );
    assert_eq!(report.requests, 0);

    let server = Server::start(|_| Reply::raw(b"", false));
    let cfg = LoadConfig {
        timeout: ms(100),
        ..config(&server, 1, Stop::Duration(ms(450)))
    };
    let report = run(&cfg);
    let timeouts = report.errors.get(ErrorKind::Timeout);
    assert!((2..=5).contains(&timeouts), "{:?}", report.errors);
}

#[test]
fn keepalive_off_opens_one_connection_per_request() {
    let server = Server::start(|_| Reply::ok());
    let cfg = LoadConfig {
        keepalive: false,
        ..config(&server, 3, Stop::Requests(30))
    };
    let report = run(&cfg);
    assert_eq!(report.requests, 30);
    assert_eq!(server.requests(), 30);
    // One extra connection: the pre-flight connect check.
    assert_eq!(server.connections(), 31);

    // Fewer requests than connections: no connection is opened idle.
    let server = Server::start(|_| Reply::ok());
    let cfg = LoadConfig {
        keepalive: false,
        ..config(&server, 4, Stop::Requests(2))
    };
    assert_eq!(run(&cfg).requests, 2);
    assert_eq!(server.connections(), 1 + 2);
}

#[test]
fn keepalive_reuses_connections() {
    let server = Server::start(|_| Reply::ok());
    let report = run(&config(&server, 3, Stop::Requests(300)));
    assert_eq!(report.requests, 300);
    assert_eq!(server.connections(), 1 + 3);
}

#[test]
fn chunked_and_close_delimited_bodies_are_parsed() {
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n";
    let server = Server::start(move |_| Reply::raw(chunked, false));
    let report = run(&config(&server, 2, Stop::Requests(50)));
    assert_eq!((report.requests, report.errors.total()), (50, 0));
    assert_eq!(server.connections(), 1 + 2);

    let server =
        Server::start(|_| Reply::raw(b"HTTP/1.1 200 OK\r\nServer: t\r\n\r\nuntil the end", true));
    let report = run(&config(&server, 2, Stop::Requests(50)));
    assert_eq!((report.requests, report.errors.total()), (50, 0));
    assert_eq!(server.connections(), 1 + 50);
}

#[test]
fn warmup_is_not_recorded() {
    let server = Server::start(|_| Reply::ok().after(ms(10)));
    let cfg = LoadConfig {
        warmup: ms(300),
        ..config(&server, 1, Stop::Requests(5))
    };
    let report = run(&cfg);
    assert_eq!(report.requests, 5);
    assert!(
        server.requests() >= 5 + 15,
        "server saw {}",
        server.requests()
    );
}

#[test]
fn connections_spread_over_several_urls() {
    let a = Server::start(|_| Reply::ok());
    let b = Server::start(|_| Reply::status(201, "b"));
    let cfg = LoadConfig {
        urls: vec![a.url(), b.url()],
        connections: 4,
        threads: 2,
        stop: Stop::Requests(400),
        ..LoadConfig::default()
    };
    let report = run(&cfg);
    assert_eq!(report.requests, 400);
    assert_eq!(a.requests() + b.requests(), 400);
    assert!(a.requests() > 0 && b.requests() > 0);
    assert_eq!(report.status.get(&201).copied(), Some(b.requests()));
}

#[test]
fn requests_carry_method_headers_and_body() {
    let server = Server::start(|_| Reply::ok());
    let cfg = LoadConfig {
        method: "POST".into(),
        headers: vec![("X-Test".into(), "1".into())],
        body: Some(b"{\"a\":1}".to_vec()),
        ..config(&server, 1, Stop::Requests(10))
    };
    let report = run(&cfg);
    assert_eq!(report.requests, 10);
    assert_eq!(server.requests(), 10);
    let host = format!("Host: 127.0.0.1:{}", server.port);
    let last = server.last_request();
    assert!(last.starts_with("POST / HTTP/1.1\r\n"), "{last}");
    for part in [
        host.as_str(),
        "X-Test: 1\r\n",
        "Content-Length: 7\r\n",
        "\r\n\r\n{\"a\":1}",
    ] {
        assert!(last.contains(part), "{part:?} in {last}");
    }
}

#[test]
fn large_heads_and_bodies_are_read() {
    // A 20 KiB header (more than the read buffer) and a 1 MiB body.
    let big_header = format!(
        "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\nok",
        "h".repeat(20 * 1024)
    );
    let big_body = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{}",
        1 << 20,
        "b".repeat(1 << 20)
    );
    let server = Server::start(move |n| {
        Reply::raw(
            if n % 2 == 0 {
                big_header.as_bytes()
            } else {
                big_body.as_bytes()
            },
            false,
        )
    });
    let report = run(&config(&server, 2, Stop::Requests(20)));
    assert_eq!((report.requests, report.errors.total()), (20, 0));
    assert!(
        report.bytes_read >= 10 * (1 << 20) + 10 * 20 * 1024,
        "{}",
        report.bytes_read
    );
    assert_eq!(server.connections(), 1 + 2);
}

#[test]
fn open_loop_keeps_the_rate() {
    let server = Server::start(|_| Reply::ok());
    let cfg = LoadConfig {
        rate: Some(500.0),
        warmup: ms(100),
        ..config(&server, 4, Stop::Duration(ms(1000)))
    };
    let report = run(&cfg);
    assert!(
        (490..=500).contains(&report.requests),
        "{}",
        report.requests
    );
    assert_eq!(report.errors.total(), 0);
    // A fast server: the timer's tick must not show up as latency.
    assert!(
        report.latency_us(0.5) < 2_000,
        "p50 = {}",
        report.latency_us(0.5)
    );
    assert!(report.behind_schedule.unwrap() < ms(100));
    let j = report.to_json();
    assert_eq!(j["mode"], "open");
    assert!(j["behind_schedule_ms"].is_number());
}
