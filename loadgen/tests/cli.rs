//! The `ringway-load` binary: bad input exits 2 with one line, and the
//! output files are written.

mod support;

use support::{Reply, Server, assert_exit_2 as assert_one_line_exit_2, ringway_load};

#[test]
fn bad_input_exits_2_with_one_line() {
    // A port with nothing listening: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("http://127.0.0.1:{port}/");
    assert_one_line_exit_2(&[&dead, "-d", "1s"], "cannot connect");
    let json = std::env::temp_dir().join(format!("ringway-load-dead-{}.json", std::process::id()));
    assert_one_line_exit_2(&[&dead, "--json", json.to_str().unwrap()], "cannot connect");
    assert!(!json.exists(), "no empty report file is left behind");
    assert_one_line_exit_2(&["ftp://example.com/", "-d", "1s"], "invalid URL");
    assert_one_line_exit_2(&["http://127.0.0.1:99999/"], "invalid URL");

    let server = Server::start(|_| Reply::ok());
    let url = server.url();
    assert_one_line_exit_2(&[&url, "-c", "0"], "connections");
    assert_one_line_exit_2(&[&url, "--rate", "100"], "--rate");
    assert_one_line_exit_2(&[&url, "--rate", "100", "-n", "10"], "");
    assert_one_line_exit_2(&[&url, "-d", "soon"], "duration");
    assert_one_line_exit_2(&[&url, "--bogus"], "--bogus");
    assert_one_line_exit_2(&[&url, "-H", "no colon"], "header");
    assert_eq!(server.requests(), 0);
}

#[test]
fn writes_report_json_and_percentile_log() {
    let server = Server::start(|n| {
        if n % 10 == 0 {
            Reply::status(500, "e")
        } else {
            Reply::ok()
        }
    });
    let dir = std::env::temp_dir().join(format!("ringway-load-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (json, hdr) = (dir.join("r.json"), dir.join("r.hdr"));
    let out = ringway_load(&[
        &server.url(),
        "-n",
        "200",
        "-c",
        "4",
        "--threads",
        "2",
        "--json",
        json.to_str().unwrap(),
        "--hdr-log",
        hdr.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("requests      200"), "{stdout}");
    assert!(out.stderr.is_empty(), "no progress line without a terminal");

    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(j["requests"], 200);
    assert_eq!(j["status"]["500"], 20);
    assert_eq!(j["status"]["200"], 180);
    assert_eq!(j["errors"]["connect"], 0);
    assert_eq!(
        (j["connections"].as_u64(), j["threads"].as_u64()),
        (Some(4), Some(2))
    );
    assert!(j["rps"].as_f64().unwrap() > 0.0);
    assert!(j["duration_s"].as_f64().unwrap() > 0.0);
    assert!(j["bytes_read"].as_u64().unwrap() > 200 * 30);
    for key in ["p50", "p75", "p90", "p99", "p99_9", "p99_99", "max"] {
        assert!(j["latency_us"][key].as_u64().unwrap() > 0, "{key}");
    }

    let text = std::fs::read_to_string(&hdr).unwrap();
    assert!(
        text.contains("Percentile") && text.contains("#[Max"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
