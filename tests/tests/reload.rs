//! SIGHUP reload: new routes answer, in-flight requests finish on the old
//! config, a broken file keeps the old config, and reloads under load lose
//! no request.

use ringway_tests::client::{connect, get, read_response};
use ringway_tests::{Gateway, Origin, Reply};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

fn config(upstream: std::net::SocketAddr, extra_route: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 2\n\n[[upstream]]\nname = \"app\"\ntargets = [\"{upstream}\"]\n\n[[route]]\npath = \"/a/{{proxy+}}\"\nupstream = \"app\"\n{extra_route}"
    )
}

const B_ROUTE: &str = "\n[[route]]\npath = \"/b/{proxy+}\"\nupstream = \"app\"\n";

#[test]
fn a_reload_adds_a_route_while_an_old_request_finishes() {
    let origin = Origin::start(|s| match s.target.as_str() {
        "/a/slow" => Reply::Delay(
            Duration::from_millis(1200),
            Box::new(Reply::Length(200, vec![], b"slow".to_vec())),
        ),
        _ => Reply::Length(200, vec![], b"ok".to_vec()),
    });
    let gw = Gateway::start(&config(origin.addr, ""));
    assert_eq!(get(gw.addr, "/b/x").status, 404);
    let addr = gw.addr;
    let slow = std::thread::spawn(move || get(addr, "/a/slow"));
    // A keep-alive connection opened before the reload sees the new routes after it.
    let mut kept = connect(gw.addr);
    let mut buf = Vec::new();
    kept.write_all(b"GET /a/1 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_response(&mut kept, &mut buf, false).unwrap().status,
        200
    );

    // The slow request is in flight: the origin has it.
    assert!(origin.wait_for_target("/a/slow"));
    std::fs::write(&gw.config_path, config(origin.addr, B_ROUTE)).unwrap();
    gw.signal(libc::SIGHUP);
    assert!(gw.wait_for_generation(1), "{:#?}", gw.log());
    assert_eq!(get(gw.addr, "/b/x").status, 200);
    kept.write_all(b"GET /b/2 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_response(&mut kept, &mut buf, false).unwrap().status,
        200
    );
    let r = slow.join().unwrap();
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"slow"[..]),
        "the request in flight across the reload"
    );
}

#[test]
fn a_broken_file_keeps_the_running_config() {
    let origin = Origin::echo();
    let gw = Gateway::start(&config(origin.addr, ""));
    std::fs::write(
        &gw.config_path,
        config(
            origin.addr,
            "\n[[route]]\npath = \"/c\"\nupstream = \"missing\"\n",
        ),
    )
    .unwrap();
    gw.signal(libc::SIGHUP);
    assert!(gw.wait_for_log("reload failed"), "{:#?}", gw.log());
    assert!(
        gw.log_contains("ringway.toml:15:12: key `route[1].upstream`"),
        "{:#?}",
        gw.log()
    );
    assert_eq!(get(gw.addr, "/a/still").status, 200);
    assert_eq!(get(gw.addr, "/c").status, 404);
}

#[test]
fn twenty_reloads_under_load_lose_no_request() {
    let origin = Origin::echo();
    let gw = Gateway::start(&config(origin.addr, ""));
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let (stop, ok, failed, addr) = (stop.clone(), ok.clone(), failed.clone(), gw.addr);
            std::thread::spawn(move || {
                let mut s = connect(addr);
                let mut buf = Vec::new();
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    // Half the clients keep one connection, half open a new one each time.
                    if i % 2 == 1 {
                        s = connect(addr);
                        buf.clear();
                    }
                    let sent =
                        s.write_all(format!("GET /a/{n} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
                    match (sent, read_response(&mut s, &mut buf, false)) {
                        (Ok(()), Some(r)) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    for i in 0..20 {
        let extra = if i % 2 == 0 { B_ROUTE } else { "" };
        std::fs::write(&gw.config_path, config(origin.addr, extra)).unwrap();
        gw.signal(libc::SIGHUP);
        assert!(gw.wait_for_generation(i + 1), "{:#?}", gw.log());
        // Some requests are served on each generation before the next reload.
        let before = ok.load(Ordering::Relaxed);
        assert!(ringway_tests::wait_until(
            || ok.load(Ordering::Relaxed) >= before + 5
        ));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "{} ok",
        ok.load(Ordering::Relaxed)
    );
    assert!(ok.load(Ordering::Relaxed) > 100);
}

#[test]
fn ringway_reload_signals_the_server_running_that_file() {
    let origin = Origin::echo();
    let gw = Gateway::start(&config(origin.addr, ""));
    assert_eq!(get(gw.addr, "/b/x").status, 404);
    std::fs::write(&gw.config_path, config(origin.addr, B_ROUTE)).unwrap();
    let out = std::process::Command::new(ringway_tests::gateway::binary("ringway"))
        .arg("reload")
        .arg("-c")
        .arg(&gw.config_path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("pid {}", gw.child.id())));
    assert!(gw.wait_for_generation(1), "{:#?}", gw.log());
    assert_eq!(get(gw.addr, "/b/x").status, 200);
    // `routes` prints the table of a file.
    let out = std::process::Command::new(ringway_tests::gateway::binary("ringway"))
        .arg("routes")
        .arg("-c")
        .arg(&gw.config_path)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("/b/{proxy+}"));
}

#[test]
fn a_reload_opens_new_listeners_and_closes_removed_ones() {
    let origin = Origin::echo();
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    };
    let (first, second) = (free(), free());
    let cfg = |listen: &str| config(origin.addr, "").replace("listen = [\"127.0.0.1:0\"]", listen);
    let gw = Gateway::start(&cfg(&format!("listen = [\"{first}\"]")));
    assert_eq!(get(first, "/a/1").status, 200);
    let mut kept = connect(first);
    std::fs::write(&gw.config_path, cfg(&format!("listen = [\"{second}\"]"))).unwrap();
    gw.signal(libc::SIGHUP);
    // Each worker has opened the new listener and closed the old one.
    assert!(gw.wait_for_generation(1), "{:#?}", gw.log());
    assert_eq!(get(second, "/a/2").status, 200, "the new listener serves");
    assert!(
        std::net::TcpStream::connect(first).is_err(),
        "the removed listener is closed"
    );
    // A connection accepted before the reload keeps working.
    let mut buf = Vec::new();
    kept.write_all(b"GET /a/3 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_response(&mut kept, &mut buf, false).unwrap().status,
        200
    );
}
