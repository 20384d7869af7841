//! The `ringway-load` binary's report features, end to end against local
//! test servers: exact `-n` counts, the per-second series, `--compare`,
//! `--mix`, `--svg`, and bad input (exit 2, one line). Every run is
//! bounded by a request count or a short duration; no bound depends on
//! the machine's speed except the generous `--compare` ratio band.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use support::{Reply, Server, assert_exit_2, ringway_load};

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ringway-load-features-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run_ok(args: &[&str]) -> String {
    let out = ringway_load(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn request_count_is_exact_through_the_binary() {
    let server = Server::start(|_| Reply::ok());
    let dir = scratch("exact");
    let json = dir.join("r.json");
    for pipeline in ["1", "3"] {
        let before = server.requests();
        run_ok(&[
            &server.url(),
            "-n",
            "1000",
            "-c",
            "8",
            "-t",
            "2",
            "--pipeline",
            pipeline,
            "--json",
            json.to_str().unwrap(),
        ]);
        let j = read_json(&json);
        assert_eq!(j["requests"], 1000, "pipeline {pipeline}");
        assert_eq!(j["status"]["200"], 1000, "pipeline {pipeline}");
        assert_eq!(
            server.requests() - before,
            1000,
            "server count, pipeline {pipeline}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn per_second_series_adds_up_to_the_totals() {
    // Every 40th response is cut short: read errors appear in the series too.
    let server = Server::start(|n| {
        if n % 40 == 39 {
            Reply::raw(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", true)
        } else {
            Reply::ok().after(Duration::from_millis(1))
        }
    });
    let dir = scratch("series");
    let json = dir.join("r.json");
    run_ok(&[
        &server.url(),
        "-d",
        "1500ms",
        "-c",
        "4",
        "-t",
        "2",
        "--json",
        json.to_str().unwrap(),
    ]);
    let j = read_json(&json);
    let series = j["series"].as_array().expect("series");
    assert!(!series.is_empty() && series.len() <= 2, "{series:?}");
    let sum = |key: &str| series.iter().map(|s| s[key].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum("requests"), j["requests"].as_u64().unwrap());
    assert_eq!(sum("errors"), j["errors"]["total"].as_u64().unwrap());
    assert!(j["errors"]["read"].as_u64().unwrap() > 0, "{}", j["errors"]);
    for (i, s) in series.iter().enumerate() {
        assert_eq!(s["second"], i as u64);
        if s["requests"].as_u64().unwrap() > 0 {
            let (p50, p99, p999) = (
                s["p50_us"].as_u64().unwrap(),
                s["p99_us"].as_u64().unwrap(),
                s["p99_9_us"].as_u64().unwrap(),
            );
            assert!(p50 > 0 && p50 <= p99 && p99 <= p999, "{s}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn compare_reports_a_two_fold_difference() {
    // B answers in half A's time: with the same closed-loop connections,
    // B completes about twice as many requests.
    let a = Server::start(|_| Reply::ok().after(Duration::from_millis(20)));
    let b = Server::start(|_| Reply::ok().after(Duration::from_millis(10)));
    let dir = scratch("compare");
    let json = dir.join("c.json");
    let stdout = run_ok(&[
        "--compare",
        &a.url(),
        &b.url(),
        "-d",
        "400ms",
        "--rounds",
        "3",
        "-c",
        "4",
        "-t",
        "1",
        "--json",
        json.to_str().unwrap(),
    ]);
    for round in 1..=3 {
        for side in ['A', 'B'] {
            assert!(
                stdout.contains(&format!("round  {round}  {side}")),
                "{stdout}"
            );
        }
    }
    assert!(stdout.contains("B/A"), "{stdout}");
    let j = read_json(&json);
    let ratio = j["ratio_b_over_a"]["median"].as_f64().unwrap();
    assert!((1.4..=2.8).contains(&ratio), "B/A = {ratio}\n{stdout}");
    let (lo, hi) = (
        j["ratio_b_over_a"]["min"].as_f64().unwrap(),
        j["ratio_b_over_a"]["max"].as_f64().unwrap(),
    );
    assert!(lo <= ratio && ratio <= hi);
    assert_eq!(j["a"]["rounds"].as_array().unwrap().len(), 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mix_replays_lines_in_proportion() {
    let server = Server::start_routed(|_, path| {
        if path.starts_with("/missing") {
            Reply::status(404, "no")
        } else {
            Reply::ok()
        }
    });
    let dir = scratch("mix");
    std::fs::write(dir.join("item.json"), br#"{"name":"x"}"#).unwrap();
    let mix = dir.join("mix.txt");
    std::fs::write(
        &mix,
        "# a test mix\n\
         GET /a?x=1 weight=5\n\
         \n\
         POST /b Content-Type:application/json @item.json weight=3\n\
         GET /missing \"X-Note: two words\" weight=2\n",
    )
    .unwrap();
    let json = dir.join("r.json");
    let stdout = run_ok(&[
        &server.url(),
        "--mix",
        mix.to_str().unwrap(),
        "-n",
        "10000",
        "-c",
        "8",
        "-t",
        "2",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(stdout.contains("mix"), "{stdout}");
    let j = read_json(&json);
    assert_eq!(j["requests"], 10_000);
    let lines = j["mix"].as_array().unwrap();
    assert_eq!(lines.len(), 3);
    let paths = server.paths();
    for (line, (path, weight, status)) in lines.iter().zip([
        ("/a?x=1", 5, "200"),
        ("/b", 3, "200"),
        ("/missing", 2, "404"),
    ]) {
        let expected = 10_000.0 * weight as f64 / 10.0;
        let got = line["requests"].as_u64().unwrap();
        assert!(
            (got as f64 - expected).abs() <= expected * 0.05,
            "{path}: {got} of 10000, expected {expected}"
        );
        assert_eq!(line["status"][status].as_u64(), Some(got), "{line}");
        assert_eq!(line["weight"], weight);
        // The server saw the same split (it may also count the pre-flight-free
        // requests of no other run: this server serves this test only).
        assert_eq!(paths.get(path).copied(), Some(got), "{paths:?}");
    }
    assert_eq!(lines[1]["line"], 4);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn svg_plot_is_well_formed_xml() {
    let server = Server::start(|_| Reply::ok());
    let dir = scratch("svg");
    let svg = dir.join("plot.svg");
    run_ok(&[
        &server.url(),
        "-n",
        "2000",
        "-c",
        "4",
        "-t",
        "1",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("the SVG parses as XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    let paths = root
        .descendants()
        .filter(|n| n.tag_name().name() == "path")
        .count();
    assert!(
        paths >= 4,
        "{paths} paths: the series and the distribution curve"
    );
    assert!(text.contains("99.9%"), "the distribution's tail ticks");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_exits_2_with_one_clear_line() {
    let server = Server::start(|_| Reply::ok());
    let url = server.url();
    let dir = scratch("bad");
    let bad_mix = dir.join("bad.txt");
    std::fs::write(&bad_mix, "GET /ok\n# fine so far\nGET no-slash\n").unwrap();
    let mix_arg = bad_mix.to_str().unwrap().to_string();
    assert_exit_2(
        &[&url, "--mix", &mix_arg, "-n", "10"],
        &format!("{mix_arg}:3: path 'no-slash' must start with '/'"),
    );
    let missing = dir.join("missing.txt");
    assert_exit_2(
        &[&url, "--mix", missing.to_str().unwrap()],
        "cannot read it",
    );
    std::fs::write(&bad_mix, "GET /a weight=lots\n").unwrap();
    assert_exit_2(&[&url, "--mix", &mix_arg], ":1: weight 'lots'");
    assert_exit_2(&[&url, "--frobnicate"], "--frobnicate");
    assert_exit_2(&[&url, "--mix", &mix_arg, "-m", "POST"], "--method");
    assert_exit_2(&["not a url"], "invalid URL");
    assert_exit_2(&["http://127.0.0.1:0/"], "invalid URL");
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}/", l.local_addr().unwrap().port())
    };
    assert_exit_2(&["--compare", &url, &dead, "-d", "1s"], "cannot connect");
    assert_exit_2(&["--compare", &url], "URL_B");
    assert_exit_2(&["--compare", &url, &url, "--rounds", "0"], "--rounds");
    assert_exit_2(&[&url, "--rounds", "2"], "--compare");
    assert_exit_2(&[&url, "--pipeline", "0", "-n", "1"], "pipeline");
    // Values that would exhaust memory or overflow the clock are bad input too.
    assert_exit_2(&[&url, "--pipeline", "1000000", "-n", "1"], "pipeline");
    assert_exit_2(&[&url, "-c", "100000000", "-n", "1"], "connections");
    assert_exit_2(&[&url, "-t", "100000", "-n", "1"], "threads");
    assert_exit_2(&[&url, "--timeout", "9999999999s", "-n", "1"], "30 days");
    assert_exit_2(&[&url, "-d", "9999999999s"], "30 days");
    assert_exit_2(&[&url, "--rate", "0.0000001", "-d", "1s"], "rate");
    assert_eq!(server.requests(), 0, "no bad invocation sent a request");
    std::fs::remove_dir_all(&dir).unwrap();
}
