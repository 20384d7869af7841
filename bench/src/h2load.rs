//! The HTTP/2 load: `h2load` (nghttp2's load generator, Debian
//! `nghttp2-client`) over TLS with ALPN `h2` only, and its output turned
//! into a report shaped like ringway-load's JSON (`requests`, `rps`,
//! `latency_us`, `errors`, `status`), so a run reads the same either way.
//!
//! h2load prints a summary but no percentiles; the latencies come from its
//! per-request log (`--log-file`: start time, status, microseconds until the
//! end of the response; status -1 for a failed stream).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::json;

/// What `h2load` is asked to do.
pub struct Spec<'a> {
    pub addr: SocketAddr,
    pub connections: usize,
    /// Concurrent streams on each connection (`-m`).
    pub streams: usize,
    pub threads: usize,
    pub duration: Duration,
    /// POST this file with every request (`-d`).
    pub body: Option<&'a Path>,
    /// Where the per-request log goes.
    pub log_file: &'a Path,
}

/// The path every h2load request asks for: shaped like an API call, so its
/// `:path` is a Huffman-coded literal as real clients send it (`/` is a
/// static-table index that skips the proxy's HPACK string decoding).
pub const PATH: &str = "/api/v1/items/12345";

/// The h2load command line for `spec`.
pub fn command(program: &Path, spec: &Spec) -> Command {
    let mut cmd = Command::new(program);
    cmd.arg(format!("https://{}{PATH}", spec.addr))
        .arg("-c")
        .arg(spec.connections.to_string())
        .arg("-m")
        .arg(spec.streams.to_string())
        .arg("-t")
        // h2load refuses more threads than connections.
        .arg(spec.threads.clamp(1, spec.connections.max(1)).to_string())
        .arg("-D")
        .arg(format!("{}ms", spec.duration.as_millis().max(1)))
        // h2 only: a proxy that does not select h2 fails the run instead
        // of being measured over HTTP/1.1 with pipelining.
        .arg("--npn-list=h2")
        .arg("--log-file")
        .arg(spec.log_file);
    if let Some(body) = spec.body {
        cmd.arg("-d").arg(body);
    }
    cmd
}

/// h2load's summary, as printed on stdout.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    /// Seconds of the measured phase (`finished in …`).
    pub seconds: f64,
    pub rps: f64,
    /// `requests: … total, … started, … done, … succeeded, … failed,
    /// … errored, … timeout`. `succeeded` is a 2xx or 3xx response;
    /// `failed` counts 4xx and 5xx responses and `errored` streams (reset,
    /// connection lost), `timeout` a subset of those.
    pub done: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub errored: u64,
    pub timeout: u64,
    /// `status codes: … 2xx, … 3xx, … 4xx, … 5xx`.
    pub status: [u64; 4],
    /// `TLS Protocol`, `Cipher`, `Server Temp Key`, `Application protocol`.
    pub tls_protocol: Option<String>,
    pub cipher: Option<String>,
    pub temp_key: Option<String>,
    pub alpn: Option<String>,
    /// Lines that look like errors (`… could not connect …`, `No protocol
    /// negotiated`), first few.
    pub complaints: Vec<String>,
}

/// Parses a duration as h2load prints it (`5.00s`, `501.13ms`, `12us`).
fn seconds(text: &str) -> Option<f64> {
    let t = text.trim().trim_end_matches(',');
    let (num, scale) = if let Some(v) = t.strip_suffix("ms") {
        (v, 1e-3)
    } else if let Some(v) = t.strip_suffix("us") {
        (v, 1e-6)
    } else if let Some(v) = t.strip_suffix('s') {
        (v, 1.0)
    } else if let Some(v) = t.strip_suffix('m') {
        (v, 60.0)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| v * scale)
}

/// The number before each of `names` in a `N name, N name` list.
fn counts<const K: usize>(list: &str, names: [&str; K]) -> Option<[u64; K]> {
    let mut out = [0u64; K];
    let mut found = [false; K];
    for item in list.split(',') {
        let mut words = item.split_whitespace();
        let (Some(n), Some(name)) = (words.next(), words.next()) else {
            continue;
        };
        if let Some(i) = names.iter().position(|x| *x == name) {
            out[i] = n.parse().ok()?;
            found[i] = true;
        }
    }
    found.iter().all(|f| *f).then_some(out)
}

/// Reads h2load's stdout.
pub fn parse(text: &str) -> Result<Summary> {
    let mut s = Summary::default();
    let mut have_requests = false;
    let mut have_finished = false;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("finished in ") {
            // finished in 5.00s, 61234.56 req/s, 3.21MB/s
            let mut parts = rest.split(',');
            s.seconds = parts
                .next()
                .and_then(seconds)
                .context("finished in: no time")?;
            s.rps = parts
                .next()
                .and_then(|p| p.trim().strip_suffix(" req/s"))
                .and_then(|v| v.trim().parse().ok())
                .context("finished in: no req/s")?;
            have_finished = true;
        } else if let Some(rest) = line.strip_prefix("requests:") {
            let [done, succeeded, failed, errored, timeout] =
                counts(rest, ["done", "succeeded", "failed", "errored", "timeout"])
                    .with_context(|| format!("cannot read h2load's `{line}`"))?;
            (s.done, s.succeeded, s.failed, s.errored, s.timeout) =
                (done, succeeded, failed, errored, timeout);
            have_requests = true;
        } else if let Some(rest) = line.strip_prefix("status codes:") {
            s.status = counts(rest, ["2xx", "3xx", "4xx", "5xx"])
                .with_context(|| format!("cannot read h2load's `{line}`"))?;
        } else if let Some((key, value)) = line.split_once(':') {
            let value = Some(value.trim().to_string());
            match key.trim() {
                "TLS Protocol" => s.tls_protocol = value,
                "Cipher" => s.cipher = value,
                "Server Temp Key" => s.temp_key = value,
                "Application protocol" => s.alpn = value,
                _ => {}
            }
        }
        let lower = line.to_ascii_lowercase();
        if s.complaints.len() < 3
            && (lower.contains("could not")
                || lower.contains("no protocol")
                || lower.contains("not negotiated")
                || lower.contains("error")
                    && !lower.starts_with("requests:")
                    && !lower.contains("0 errored"))
        {
            s.complaints.push(line.to_string());
        }
    }
    if !have_finished || !have_requests {
        bail!("h2load printed no summary (`finished in`, `requests:`)");
    }
    Ok(s)
}

impl Summary {
    /// One line: what h2load and the proxy negotiated.
    pub fn session(&self) -> String {
        let or = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
        format!(
            "h2load (OpenSSL): {}, {}, key exchange {}, ALPN {}",
            or(&self.tls_protocol),
            or(&self.cipher),
            or(&self.temp_key),
            or(&self.alpn)
        )
    }
}

/// Microseconds until the end of each successful response (status ≥ 0),
/// from h2load's per-request log; and the count of rows with status -1.
pub fn read_log(text: &str) -> (Vec<u64>, u64) {
    let mut latencies = Vec::new();
    let mut failed = 0;
    for line in text.lines() {
        let mut cols = line.split('\t');
        let (Some(_start), Some(status), Some(us)) = (cols.next(), cols.next(), cols.next()) else {
            continue;
        };
        match (status.trim().parse::<i32>(), us.trim().parse::<u64>()) {
            (Ok(s), Ok(us)) if s >= 0 => latencies.push(us),
            (Ok(_), _) => failed += 1,
            _ => {}
        }
    }
    (latencies, failed)
}

/// The value at quantile `q` (nearest rank) of sorted `v`; 0 when empty.
fn quantile(v: &[u64], q: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// The report of one h2load invocation, shaped like ringway-load's JSON:
/// `requests` are the succeeded ones; `errors.total` the failures that got
/// no response (h2load's `failed` less its 4xx and 5xx, which `status`
/// carries, so the bench's errors are `failed` plus 3xx).
pub fn report(summary: &Summary, mut latencies: Vec<u64>) -> serde_json::Value {
    latencies.sort_unstable();
    let [s2, s3, s4, s5] = summary.status;
    let no_response = summary.failed.saturating_sub(s4 + s5);
    let mut status = serde_json::Map::new();
    for (k, n) in [("2xx", s2), ("3xx", s3), ("4xx", s4), ("5xx", s5)] {
        if n > 0 {
            status.insert(k.into(), json!(n));
        }
    }
    let mut report = json!({
        "requests": summary.succeeded,
        "rps": summary.rps,
        "latency_us": {
            "p50": quantile(&latencies, 0.5),
            "p99": quantile(&latencies, 0.99),
            "p99_9": quantile(&latencies, 0.999),
        },
        "errors": {
            "total": no_response,
            "errored": summary.errored,
            "timeout": summary.timeout,
        },
        "status": status,
        "session": summary.session(),
    });
    if let Some(first) = summary.complaints.first() {
        report["first_error"] = json!(first);
    }
    report
}

/// Checks a summary is a real HTTP/2 measurement: h2 negotiated and at
/// least one request answered (h2load exits 0 when it cannot connect).
pub fn check(summary: &Summary) -> Result<()> {
    let why = || {
        if summary.complaints.is_empty() {
            String::new()
        } else {
            format!(": {}", summary.complaints.join("; "))
        }
    };
    if summary.succeeded == 0 {
        bail!(
            "h2load: no request succeeded ({} done, {} failed, {} errored){}",
            summary.done,
            summary.failed,
            summary.errored,
            why()
        );
    }
    if summary.alpn.as_deref() != Some("h2") {
        bail!(
            "h2load: the proxy did not select h2 (application protocol {:?}){}",
            summary.alpn,
            why()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// A report's `status` counts by class.
    fn status_counts(report: &serde_json::Value) -> BTreeMap<String, u64> {
        report["status"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default()
    }

    const OUTPUT: &str = "starting benchmark...
spawning thread #0: 16 total client(s). Timing-based test with 0s of warm-up time and 5s of main duration for measurements.
TLS Protocol: TLSv1.3
Cipher: TLS_AES_256_GCM_SHA384
Server Temp Key: X25519 253 bits
Application protocol: h2
Main benchmark duration is over for thread #0. Stopping all clients.

finished in 5.00s, 41234.20 req/s, 2.10MB/s
requests: 206171 total, 207195 started, 206171 done, 206160 succeeded, 11 failed, 4 errored, 1 timeout
status codes: 206160 2xx, 0 3xx, 7 4xx, 0 5xx
traffic: 10.50MB (11010048) total, 4.12MB (4321000) headers (space savings 90.12%), 2.56MB (2680223) data
                     min         max         mean         sd        +/- sd
time for request:      512us     40.12ms     24.71ms      3.10ms    80.00%
";

    #[test]
    fn summary_is_read() {
        let s = parse(OUTPUT).unwrap();
        assert_eq!(s.seconds, 5.0);
        assert_eq!(s.rps, 41234.2);
        assert_eq!(
            (s.done, s.succeeded, s.failed, s.errored, s.timeout),
            (206171, 206160, 11, 4, 1)
        );
        assert_eq!(s.status, [206160, 0, 7, 0]);
        assert_eq!(s.alpn.as_deref(), Some("h2"));
        assert_eq!(
            s.session(),
            "h2load (OpenSSL): TLSv1.3, TLS_AES_256_GCM_SHA384, key exchange X25519 253 bits, ALPN h2"
        );
        assert!(s.complaints.is_empty(), "{:?}", s.complaints);
        check(&s).unwrap();
    }

    #[test]
    fn durations_read() {
        assert_eq!(seconds("501.13ms,"), Some(0.50113));
        assert_eq!(seconds("5.00s"), Some(5.0));
        assert_eq!(seconds("12us"), Some(12e-6));
        assert_eq!(seconds("fast"), None);
    }

    #[test]
    fn failures_are_errors_once() {
        let s = parse(OUTPUT).unwrap();
        let (lat, failed) = read_log(
            "1700000000000000\t200\t812\n1700000000000100\t-1\t5000\n1700000000000200\t200\t300\n1700000000000300\t404\t90\nnot a row\n",
        );
        assert_eq!((lat.clone(), failed), (vec![812, 300, 90], 1));
        let r = report(&s, lat);
        assert_eq!(r["requests"], 206160);
        // 11 failed: 7 answered 4xx (in `status`), 4 without an answer.
        assert_eq!(r["errors"]["total"], 4);
        let st = status_counts(&r);
        assert_eq!(st.get("4xx"), Some(&7));
        assert_eq!(st.get("2xx"), Some(&206160));
        let non_2xx: u64 = st
            .iter()
            .filter(|(k, _)| !k.starts_with('2'))
            .map(|(_, n)| n)
            .sum();
        assert_eq!(r["errors"]["total"].as_u64().unwrap() + non_2xx, s.failed);
        assert_eq!(r["latency_us"]["p50"], 300);
        assert_eq!(r["latency_us"]["p99"], 812);
    }

    #[test]
    fn nothing_answered_or_no_h2_is_a_failure() {
        let refused = "finished in 501.13ms, 0.00 req/s, 0B/s
requests: 0 total, 0 started, 0 done, 0 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 0 2xx, 0 3xx, 0 4xx, 0 5xx
";
        let s = parse(refused).unwrap();
        assert!(
            check(&s)
                .unwrap_err()
                .to_string()
                .contains("no request succeeded")
        );
        let h1 = OUTPUT.replace("Application protocol: h2", "Application protocol: http/1.1");
        let s = parse(&h1).unwrap();
        assert!(
            check(&s)
                .unwrap_err()
                .to_string()
                .contains("did not select h2")
        );
        assert!(parse("starting benchmark...\n").is_err());
    }

    #[test]
    fn command_line() {
        let log = Path::new("/tmp/x.tsv");
        let body = Path::new("/tmp/body.bin");
        let spec = Spec {
            addr: ([127, 0, 0, 1], 8443).into(),
            connections: 4,
            streams: 4,
            threads: 8,
            duration: Duration::from_millis(2500),
            body: Some(body),
            log_file: log,
        };
        let cmd = command(Path::new("h2load"), &spec);
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
        assert_eq!(
            args.join(" "),
            "https://127.0.0.1:8443/api/v1/items/12345 -c 4 -m 4 -t 4 -D 2500ms --npn-list=h2 --log-file /tmp/x.tsv -d /tmp/body.bin"
        );
    }
}
