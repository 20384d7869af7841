//! Usage per API key and day, as API Gateway's GetUsage reports it: on the
//! admin listener (`/usage`) and from `ringway usage`, locally and (in
//! cluster mode) from Redis.

use ringway_tests::gateway::binary;
use ringway_tests::redis::RedisServer;
use ringway_tests::{Gateway, Origin, client::get, send_raw, wait_until};
use std::net::SocketAddr;

/// The admin listener gets a fixed port: `ringway usage` finds it in the file.
fn config(app: SocketAddr, extra: &str) -> String {
    let admin = ringway_tests::free_port();
    format!(
        r#"[server]
listen = ["127.0.0.1:0"]
workers = 2
[server.admin]
listen = "127.0.0.1:{admin}"

{extra}

[[upstream]]
name = "app"
targets = ["{app}"]

[[usage_plan]]
name = "basic"
quota = {{ limit = 50, period = "day" }}

[[api_key]]
name = "team-a"
value = "key-a"
plan = "basic"

[[route]]
path = "/{{proxy+}}"
upstream = "app"
[route.api_key]
"#
    )
}

fn call(gw: &Gateway, n: usize) {
    for _ in 0..n {
        let r = send_raw(
            gw.addr,
            b"GET /x HTTP/1.1\r\nHost: t\r\nx-api-key: key-a\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(r.status, 200);
    }
}

fn today() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `ringway usage -c FILE --key team-a` with the gateway's own config file.
fn cli(gw: &Gateway, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(binary("ringway"))
        .arg("usage")
        .arg("-c")
        .arg(&gw.config_path)
        .args(["--key", "team-a"])
        .args(args)
        .output()
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(out.stdout),
        text(out.stderr),
    )
}

fn todays_count(doc: &serde_json::Value) -> Option<u64> {
    doc["days"]
        .as_array()?
        .iter()
        .find(|d| d["date"] == today())?["used"]
        .as_u64()
}

#[test]
fn local_usage_on_the_admin_listener_and_from_the_cli() {
    let origin = Origin::echo();
    let gw = Gateway::start(&config(origin.addr, ""));
    call(&gw, 7);
    let r = get(gw.admin_addr(), "/usage?key=team-a");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let doc: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(todays_count(&doc), Some(7), "{doc}");
    assert_eq!(
        doc["days"].as_array().unwrap().len(),
        7,
        "a week by default"
    );
    assert_eq!(doc["quota"]["limit"], 50);
    assert_eq!(doc["source"], "local");
    let remaining = doc["quota"]["remaining"].as_u64().unwrap();
    // Workers lease quota in blocks: what is left is at most 50 - 7.
    assert!(remaining <= 43, "{remaining}");

    let (code, out, err) = cli(&gw, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("{}  7", today())), "{out}");
    assert!(out.contains("of 50 left this day"), "{out}");

    assert_eq!(get(gw.admin_addr(), "/usage?key=nobody").status, 404);
    assert_eq!(
        get(gw.admin_addr(), "/usage?key=team-a&from=2026-13-01").status,
        400
    );
    assert_eq!(get(gw.admin_addr(), "/usage").status, 400);
    let (code, _, err) = cli(&gw, &["--from", "yesterday"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn cluster_usage_comes_from_redis() {
    let redis = RedisServer::start();
    let origin = Origin::echo();
    let cluster = format!(
        "[cluster]\nredis = \"{}\"\nsync_interval = \"20ms\"",
        redis.url()
    );
    let gw = Gateway::start(&config(origin.addr, &cluster));
    call(&gw, 5);
    // The counts reach Redis with the next syncs.
    assert!(wait_until(|| {
        let r = get(gw.admin_addr(), "/usage?key=team-a");
        r.status == 200
            && serde_json::from_slice::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|d| todays_count(&d))
                == Some(5)
    }));
    let (code, out, err) = cli(&gw, &["--json"]);
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["source"], "redis");
    assert_eq!(todays_count(&doc), Some(5));
    assert!(doc["quota"]["remaining"].as_u64().unwrap() <= 45);
}
