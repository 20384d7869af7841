//! Access logs through the binary: JSON lines with the documented fields,
//! nginx's combined format, templates, and reopening on SIGUSR1.

use ringway_tests::client::{get, send_raw};
use ringway_tests::gateway::TempDir;
use ringway_tests::{Gateway, Origin};
use std::path::Path;

fn config(upstream: std::net::SocketAddr, log: &Path, format: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 2\n\n[server.access_log]\npath = \"{}\"\nformat = '{format}'\n\n[[upstream]]\nname = \"app\"\ntargets = [\"{upstream}\"]\n\n[[route]]\npath = \"/api/{{proxy+}}\"\nupstream = \"app\"\n",
        log.display()
    )
}

/// Waits (bounded) until the file has at least `n` lines.
fn lines(path: &Path, n: usize) -> Vec<String> {
    let read = || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.lines().map(str::to_string).collect::<Vec<_>>()
    };
    ringway_tests::wait_until(|| read().len() >= n);
    read()
}

#[test]
fn json_lines_carry_the_documented_fields() {
    let dir = TempDir::new();
    let log = dir.0.join("access.log");
    let origin = Origin::echo();
    let gw = Gateway::start(&config(origin.addr, &log, "json"));
    let r = send_raw(gw.addr, b"POST /api/items?q=1 HTTP/1.1\r\nHost: t\r\nX-Request-Id: req-42\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(r.status, 200);
    assert_eq!(get(gw.addr, "/elsewhere").status, 404);
    let lines = lines(&log, 2);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let first: serde_json::Value = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["status"] == 200)
        .unwrap();
    assert_eq!(first["request_id"], "req-42");
    assert_eq!(first["client_ip"], "127.0.0.1");
    assert_eq!(first["method"], "POST");
    assert_eq!(first["path"], "/api/items?q=1");
    assert_eq!(first["route"], "/api/{proxy+}");
    assert_eq!(first["upstream"], origin.addr.to_string());
    assert!(first["bytes_in"].as_u64().unwrap() > 5);
    assert!(first["bytes_out"].as_u64().unwrap() > 2);
    assert!(first["upstream_time_ms"].as_f64().unwrap() >= 0.0);
    assert!(
        first["total_time_ms"].as_f64().unwrap() >= first["upstream_time_ms"].as_f64().unwrap()
    );
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    let missing: serde_json::Value = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["status"] == 404)
        .unwrap();
    assert_eq!(missing["route"], serde_json::Value::Null);
}

#[test]
fn combined_format_and_hostile_bytes() {
    let dir = TempDir::new();
    let log = dir.0.join("access.log");
    let origin = Origin::echo();
    let gw = Gateway::start(&config(origin.addr, &log, "combined"));
    let r = send_raw(gw.addr, b"GET /api/x HTTP/1.1\r\nHost: t\r\nUser-Agent: evil\"agent\r\nReferer: http://r.test/\r\n\r\n");
    assert_eq!(r.status, 200);
    let lines = lines(&log, 1);
    let l = &lines[0];
    assert!(l.starts_with("127.0.0.1 - - ["), "{l}");
    assert!(l.contains("] \"GET /api/x HTTP/1.1\" 200 "), "{l}");
    assert!(
        l.ends_with(" \"http://r.test/\" \"evil\\\"agent\""),
        "a quote in a header cannot end the field: {l}"
    );
}

#[test]
fn templates_and_reopen_on_sigusr1() {
    let dir = TempDir::new();
    let log = dir.0.join("access.log");
    let origin = Origin::echo();
    let gw = Gateway::start(&config(
        origin.addr,
        &log,
        "$request_method $request_uri $status $route",
    ));
    assert_eq!(get(gw.addr, "/api/one").status, 200);
    assert_eq!(
        lines(&log, 1),
        vec!["GET /api/one 200 /api/{proxy+}".to_string()]
    );
    // Rotation: move the file away, then SIGUSR1 makes ringway write to a new one.
    std::fs::rename(&log, dir.0.join("access.log.1")).unwrap();
    gw.signal(libc::SIGUSR1);
    assert!(gw.wait_for_log("reopening the access log"));
    // The writer has reopened the file: it exists again.
    assert!(ringway_tests::wait_until(|| log.exists()));
    assert_eq!(get(gw.addr, "/api/two").status, 200);
    assert_eq!(
        lines(&log, 1),
        vec!["GET /api/two 200 /api/{proxy+}".to_string()]
    );
    assert_eq!(lines(&dir.0.join("access.log.1"), 1).len(), 1);
}

#[test]
fn an_unknown_template_variable_is_a_config_error() {
    let dir = TempDir::new();
    let origin = Origin::echo();
    let err = Gateway::try_start(
        &config(origin.addr, &dir.0.join("a.log"), "$status $nope"),
        &[],
    )
    .err()
    .expect("must not start");
    let log = err.1.join("\n");
    assert!(
        log.contains("key `server.access_log.format`") && log.contains("$nope"),
        "{log}"
    );
}
