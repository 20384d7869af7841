//! Slow and hostile clients: a slowloris of 2,000 connections, stalled
//! bodies, and clients that leave mid-response.

use ringway_tests::client::{connect, get, read_response};
use ringway_tests::gateway::simple_config;
use ringway_tests::{Gateway, Origin, Reply, pattern};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

#[test]
fn normal_clients_are_served_during_a_slowloris_of_2000_connections() {
    let origin = Origin::echo();
    let gw = Gateway::start(&simple_config(
        origin.addr,
        2,
        "[server.timeouts]\nheader_read = \"3s\"",
    ));
    // The attack: 2,000 connections, each trickling a head that never ends.
    let mut attackers = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let mut s = connect(gw.addr);
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ")
            .unwrap();
        attackers.push(s);
    }
    let started = Instant::now();
    let mut worst = Duration::ZERO;
    let mut served = 0;
    while started.elapsed() < Duration::from_secs(2) {
        for s in attackers.iter_mut().step_by(10) {
            let _ = s.write_all(b"a");
        }
        let t = Instant::now();
        let r = get(gw.addr, "/normal");
        worst = worst.max(t.elapsed());
        assert_eq!(r.status, 200);
        served += 1;
        // Pacing of the attack loop (the subject): attackers trickle a byte
        // every round, and normal requests are spread over the 2 s.
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(served >= 10, "only {served} normal requests in 2 s");
    // Generous bound: a normal request is never stuck behind the attack.
    assert!(
        worst < Duration::from_secs(2),
        "a normal request took {worst:?} during the attack"
    );
    // The attackers are cut off by header_read with a 408.
    let mut timed_out = 0;
    for s in attackers.iter_mut().take(50) {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = Vec::new();
        if let Some(r) = read_response(s, &mut buf, false)
            && r.status == 408
        {
            timed_out += 1;
        }
    }
    assert_eq!(timed_out, 50);
    assert!(origin.seen().iter().all(|s| s.target == "/normal"));
}

#[test]
fn a_stalled_request_body_gets_408_and_nothing_complete_is_forwarded() {
    let origin = Origin::echo();
    let gw = Gateway::start(&simple_config(
        origin.addr,
        1,
        "[server.timeouts]\nbody_idle = \"500ms\"",
    ));
    let mut s = connect(gw.addr);
    s.write_all(b"POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789")
        .unwrap();
    let started = Instant::now();
    let r = read_response(&mut s, &mut Vec::new(), false).expect("a 408");
    assert_eq!(r.status, 408);
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert!(
        origin.quiet().is_empty(),
        "a truncated request reached the upstream"
    );
    assert_eq!(get(gw.addr, "/after").status, 200);
}

#[test]
fn a_client_leaving_mid_response_costs_the_upstream_connection_not_the_worker() {
    let big = pattern(16 * 1024 * 1024, 9);
    let origin = Origin::start(move |s| match s.target.as_str() {
        "/big" => Reply::Length(200, vec![], big.clone()),
        _ => Reply::Length(200, vec![], b"small".to_vec()),
    });
    let gw = Gateway::start(&simple_config(origin.addr, 1, ""));
    {
        let mut s = connect(gw.addr);
        s.write_all(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut head = [0u8; 4096];
        let _ = s.read(&mut head).unwrap();
        // Leave after the first bytes of a 16 MiB body.
    }
    // The gateway gives up the upstream connection of the abandoned response.
    assert!(origin.wait_closed(0), "the upstream connection stayed open");
    assert_eq!(get(gw.addr, "/next").body, b"small");
    // The abandoned upstream connection was closed, not pooled: /next needed a new one.
    assert_eq!(origin.connections(), 2);
}
