//! The process: drain on SIGTERM, panic isolation, address conflicts, the
//! epoll fallback, connection limits, config errors and `ringway check`.

use ringway_tests::client::{connect, get, read_response};
use ringway_tests::gateway::{TempDir, binary, check, simple_config};
use ringway_tests::{Gateway, Origin, Reply};
use std::io::Write;
use std::process::Command;
use std::time::Duration;

#[test]
fn sigterm_lets_an_in_flight_request_finish_then_exits_zero() {
    let origin = Origin::start(|s| match s.target.as_str() {
        "/slow" => Reply::Delay(
            Duration::from_millis(1500),
            Box::new(Reply::Length(200, vec![], b"slow done".to_vec())),
        ),
        _ => Reply::Length(200, vec![], b"fast".to_vec()),
    });
    let mut gw = Gateway::start(&simple_config(origin.addr, 2, "shutdown_timeout = \"10s\""));
    // An idle keep-alive connection must not hold the drain up.
    let mut idle = connect(gw.addr);
    idle.write_all(b"GET /fast HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    read_response(&mut idle, &mut Vec::new(), false).unwrap();

    let addr = gw.addr;
    let slow = std::thread::spawn(move || get(addr, "/slow"));
    assert!(
        origin.wait_for_target("/slow"),
        "the slow request is in flight"
    );
    gw.signal(libc::SIGTERM);
    let r = slow.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"slow done");
    assert_eq!(
        gw.wait_exit(Duration::from_secs(8)),
        Some(0),
        "log: {:#?}",
        gw.log()
    );
    assert!(gw.log_contains("draining"));
    // (No "connection refused" check here: with tests running in parallel,
    // another gateway may already have been given the freed port.)
}

#[test]
fn a_panicking_connection_task_costs_one_connection_not_the_worker() {
    let origin = Origin::echo();
    let mut gw = Gateway::start_with_env(
        &simple_config(origin.addr, 1, ""),
        &[("RINGWAY_FAULT_PANIC_PATH", "/__panic")],
    );
    // Another connection is open on the same (only) worker while the panic happens.
    let mut other = connect(gw.addr);
    other
        .write_all(b"GET /before HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    assert_eq!(
        read_response(&mut other, &mut buf, false).unwrap().status,
        200
    );
    for _ in 0..3 {
        let mut s = connect(gw.addr);
        s.write_all(b"GET /__panic HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        assert!(ringway_tests::client::closed_within(
            &mut s,
            Duration::from_secs(5)
        ));
    }
    other
        .write_all(b"GET /after HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_response(&mut other, &mut buf, false).unwrap().status,
        200,
        "the open connection survived"
    );
    assert_eq!(get(gw.addr, "/new").status, 200, "the worker still accepts");
    assert!(gw.log_contains("connection task panicked"));
    gw.signal(libc::SIGTERM);
    assert_eq!(gw.wait_exit(Duration::from_secs(8)), Some(0));
    assert!(gw.log_contains("3 connection panics"), "{:#?}", gw.log());
}

#[test]
fn starting_on_a_busy_address_fails_clearly() {
    let origin = Origin::echo();
    // A plain listener (no SO_REUSEPORT) ...
    let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // ... and one that does set SO_REUSEPORT, which would otherwise share the port silently.
    let reuse = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    reuse.set_reuse_port(true).unwrap();
    reuse
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    reuse.listen(16).unwrap();
    let reuse_addr = reuse.local_addr().unwrap().as_socket().unwrap();
    for busy in [plain.local_addr().unwrap(), reuse_addr] {
        let cfg = simple_config(origin.addr, 2, "").replace("127.0.0.1:0", &busy.to_string());
        let err = Gateway::try_start(&cfg, &[]).err().expect("must not start");
        let log = err.1.join("\n");
        assert!(log.contains("already in use"), "{log}");
    }
}

#[test]
fn the_epoll_fallback_serves() {
    let origin = Origin::echo();
    let gw = Gateway::start_with_env(
        &simple_config(origin.addr, 2, ""),
        &[("MONOIO_FORCE_LEGACY_DRIVER", "1")],
    );
    assert!(gw.log_contains("falling back to epoll"), "{:#?}", gw.log());
    assert!(gw.log_contains("driver epoll"));
    assert_eq!(get(gw.addr, "/smoke").status, 200);
    let gw2 = Gateway::start(&simple_config(origin.addr, 1, "driver = \"epoll\""));
    assert!(gw2.log_contains("driver epoll"));
    assert_eq!(get(gw2.addr, "/smoke").status, 200);
}

#[test]
fn ipv6_and_several_listen_addresses() {
    let origin = Origin::echo();
    let cfg = simple_config(origin.addr, 2, "")
        .replace("[\"127.0.0.1:0\"]", "[\"127.0.0.1:0\", \"[::1]:0\"]");
    let gw = Gateway::start(&cfg);
    assert_eq!(gw.addrs.len(), 2, "{:?}", gw.addrs);
    for a in &gw.addrs {
        assert_eq!(get(*a, "/both").status, 200, "{a}");
    }
    assert!(
        origin
            .seen()
            .iter()
            .any(|s| s.header("x-forwarded-for") == Some("::1"))
    );
}

#[test]
fn connections_over_max_connections_are_shed() {
    let origin = Origin::echo();
    let gw = Gateway::start(&simple_config(origin.addr, 1, "max_connections = 2"));
    let mut held: Vec<_> = (0..2).map(|_| connect(gw.addr)).collect();
    for s in &mut held {
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        assert_eq!(
            read_response(s, &mut Vec::new(), false).unwrap().status,
            200
        );
    }
    let mut third = connect(gw.addr);
    let _ = third.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(ringway_tests::client::closed_within(
        &mut third,
        Duration::from_secs(5)
    ));
    drop(held);
    // Served again once the gateway has seen the two connections go.
    assert!(ringway_tests::wait_until(|| {
        ringway_tests::client::try_get(gw.addr, "/").is_some_and(|r| r.status == 200)
    }));
}

#[test]
fn check_accepts_the_issue_config_and_prints_the_table() {
    let cfg = "[server]\nlisten = [\"127.0.0.1:8080\"]\nworkers = 2\npin = false\n\n[[upstream]]\nname = \"app\"\ntargets = [\"127.0.0.1:9000\"]\n\n[[route]]\npath = \"/\"\nupstream = \"app\"\n";
    let (code, out, err) = check(cfg);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("/") && out.contains("app") && out.contains("127.0.0.1:9000"),
        "{out}"
    );
}

#[test]
fn config_errors_name_file_line_and_key_all_at_once() {
    let cfg = "[server]\nlisten = [\"127.0.0.1:8080\"]\n\n[[upstream]]\nname = \"app\"\ntargets = [\"127.0.0.1\"]\n\n[[route]]\npath = \"/\"\nupstream = \"nope\"\n";
    let (code, _, err) = check(cfg);
    assert_eq!(code, 2);
    assert!(
        err.contains("ringway.toml:6:12: key `upstream[0].targets`"),
        "{err}"
    );
    assert!(
        err.contains("ringway.toml:10:12: key `route[0].upstream`"),
        "{err}"
    );
    let (code, _, err) = check("[server]\nlisten = [\"127.0.0.1:8080\"]\nworkerz = 3\n");
    assert_eq!(code, 2);
    assert!(
        err.contains("ringway.toml:3:1") && err.contains("workerz"),
        "{err}"
    );
    let (code, _, err) = check("[server.timeouts]\nheader_read = 10\n");
    assert_eq!(code, 2);
    assert!(
        err.contains("ringway.toml:2:") && err.contains("header_read"),
        "{err}"
    );
    // serve refuses the same way, before binding anything.
    let dir = TempDir::new();
    let path = dir.0.join("bad.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = [\"127.0.0.1:8080\"]\nworkerz = 3\n",
    )
    .unwrap();
    let out = Command::new(binary("ringway"))
        .args(["serve", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.toml:3:1"));
}

#[test]
fn structural_errors_and_bad_routes_are_all_reported_in_one_run() {
    // An unknown key, a value of the wrong type and a missing key (serde
    // alone would stop at the first), then two routes the compiler refuses.
    let cfg = "\
[server]
listen = [\"127.0.0.1:8080\"]
workerz = 2

[server.access_log]
format = \"json\"

[[upstream]]
name = \"app\"
targets = [\"127.0.0.1:9000\"]

[[route]]
path = \"/a\"
upstream = \"app\"
throttle = { rate = \"fast\" }

[[route]]
path = \"b\"
upstream = \"app\"

[[route]]
path = \"/c\"
upstream = \"nope\"
";
    let (code, _, err) = check(cfg);
    assert_eq!(code, 2, "{err}");
    let found: Vec<&str> = err
        .lines()
        .filter_map(|l| l.split_once("/ringway.toml:").map(|(_, rest)| rest))
        .collect();
    let want = [
        "3:1: key `server.workerz`: unknown field `workerz`: did you mean `workers`?",
        "5:1: key `server.access_log`: missing field `path`",
        "15:21: key `route[0].throttle.rate`: invalid type: string \"fast\", expected f64",
        "18:8: key `route[1].path`: ",
        "23:12: key `route[2].upstream`: no [[upstream]] is named \"nope\"",
    ];
    assert_eq!(found.len(), want.len(), "{err}");
    for (got, want) in found.iter().zip(want) {
        assert!(got.starts_with(want), "wanted {want}\n{err}");
    }
}

/// The README's config error sample is what `ringway check` prints for its config.
#[test]
fn the_readme_config_error_sample_is_true() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let at = readme
        .find("all of them are\nreported in one run")
        .expect("the README's config errors paragraph");
    let block = |from: usize, fence: &str| {
        let start = readme[from..].find(fence).unwrap() + from + fence.len();
        let end = readme[start..].find("\n```").unwrap() + start;
        (&readme[start..end], end + 4)
    };
    let (config, next) = block(at, "```toml\n");
    let (output, _) = block(next, "```\n");
    let (code, _, err) = check(config);
    assert_eq!(code, 2, "{err}");
    // Output names the file by the path given; the README gives `ringway.toml`.
    let dir = err.split("ringway.toml:").next().unwrap();
    assert_eq!(
        err.replace(dir, "").trim_end(),
        output,
        "README.md is out of date"
    );
}

#[test]
fn the_example_config_is_valid() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../engine/ringway.example.toml"
    ))
    .unwrap();
    let (code, out, err) = check(&text);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("/users/{id}"), "{out}");
}

#[test]
fn idle_keep_alive_connections_close_after_keepalive_idle_and_busy_ones_do_not() {
    // A slow upstream: a request in flight is busy, not idle, however long it takes.
    let origin = Origin::start(|s| {
        if s.target == "/slow" {
            Reply::Delay(
                Duration::from_millis(1500),
                Box::new(Reply::Length(200, vec![], b"late".to_vec())),
            )
        } else {
            Reply::Length(200, vec![], b"ok".to_vec())
        }
    });
    let text = simple_config(origin.addr, 1, "[server.timeouts]\nkeepalive_idle = \"1s\"");
    let gw = Gateway::start(&text);

    // Idle after one request: closed by the sweep, about 1 s later (never before).
    let mut idle = connect(gw.addr);
    idle.write_all(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    assert_eq!(
        read_response(&mut idle, &mut buf, false).unwrap().status,
        200
    );
    let quiet = std::time::Instant::now();
    assert!(!ringway_tests::client::closed_within(
        &mut idle,
        Duration::from_millis(600)
    ));
    assert!(ringway_tests::client::closed_within(
        &mut idle,
        Duration::from_secs(5)
    ));
    let after = quiet.elapsed();
    assert!(
        after >= Duration::from_millis(900),
        "closed after {after:?}"
    );

    // Busy for longer than keepalive_idle: answered, and kept alive for the next request.
    let mut busy = connect(gw.addr);
    busy.write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let r = read_response(&mut busy, &mut buf, false).unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, b"late".as_slice()));
    busy.write_all(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_response(&mut busy, &mut buf, false).unwrap().status,
        200
    );
}
