//! Command line: `ringway-load URL [URL...] [options]`. Turns arguments into
//! a [`LoadConfig`], runs it, writes the report. Bad input: one line on
//! stderr, exit code 2.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;

use crate::{LoadConfig, Stop};

/// HTTP/1.1 load generator (closed or open loop, thread per core).
#[derive(Debug, Parser)]
#[command(name = "ringway-load", version, about)]
struct Args {
    /// Target URLs (http:// or https://); connections are spread over them round-robin.
    #[arg(required = true, value_name = "URL")]
    urls: Vec<String>,
    /// Total number of connections.
    #[arg(short = 'c', long = "connections", default_value_t = 64)]
    connections: usize,
    /// Run for this long (e.g. 10s, 500ms). Default 10s.
    #[arg(short = 'd', long, value_parser = parse_duration, conflicts_with = "requests")]
    duration: Option<Duration>,
    /// Stop after exactly this many completed requests.
    #[arg(short = 'n', long)]
    requests: Option<u64>,
    /// Worker threads (default: available cores).
    #[arg(short = 't', long)]
    threads: Option<usize>,
    /// Pin worker threads to CPUs: `--pin` (all cores in order) or `--pin 0,2-3`.
    #[arg(long, value_name = "CPUS", num_args = 0..=1, default_missing_value = "", require_equals = true)]
    pin: Option<String>,
    /// Open loop: send this many requests per second in total (needs -d).
    #[arg(short = 'R', long)]
    rate: Option<f64>,
    /// Request method.
    #[arg(short = 'm', long, default_value = "GET")]
    method: String,
    /// Extra request header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    headers: Vec<String>,
    /// Request body.
    #[arg(long, conflicts_with = "body_file")]
    body: Option<String>,
    /// Request body read from a file.
    #[arg(long, value_name = "FILE")]
    body_file: Option<PathBuf>,
    /// Close the connection after every request (`Connection: close`).
    #[arg(long)]
    no_keepalive: bool,
    /// Requests kept in flight per connection.
    #[arg(long, default_value_t = 1, value_name = "K")]
    pipeline: usize,
    /// HTTP/2 over TLS (ALPN h2); the URLs must be https://.
    #[arg(long, conflicts_with = "h2c")]
    h2: bool,
    /// HTTP/2 over cleartext TCP with prior knowledge; the URLs must be http://.
    #[arg(long)]
    h2c: bool,
    /// HTTP/2: concurrent streams (requests in flight) per connection.
    #[arg(long, default_value_t = 1, value_name = "N")]
    streams: usize,
    /// Per-request timeout.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    timeout: Duration,
    /// Run this long first without recording.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    warmup: Option<Duration>,
    /// Write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the latency percentile distribution (HdrHistogram text format, ms) to this file.
    #[arg(long, value_name = "FILE")]
    hdr_log: Option<PathBuf>,
    /// Skip TLS certificate verification.
    #[arg(short = 'k', long)]
    insecure: bool,
    /// Also trust the CA certificates in this PEM file.
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("'{s}' is not a duration like 10s or 500ms ({e})"))
}

/// Parses `0,2,4-7`.
fn parse_cpu_list(s: &str) -> anyhow::Result<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("--pin: '{part}' is not a CPU number or range");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) =
                    (a.parse().with_context(bad)?, b.parse().with_context(bad)?);
                if a > b {
                    bail!(bad());
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().with_context(bad)?),
        }
    }
    Ok(cpus)
}

/// `--pin 0,1` (space-separated) becomes `--pin=0,1`, so a bare `--pin`
/// can still be followed by the URL.
fn join_pin_value(args: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut iter = args.into_iter().peekable();
    while let Some(arg) = iter.next() {
        let next_is_cpus = iter.peek().is_some_and(|n| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_digit() || b == b',' || b == b'-')
        });
        if arg == "--pin" && next_is_cpus {
            let cpus = iter.next().unwrap_or_default();
            out.push(format!("--pin={cpus}"));
        } else {
            out.push(arg);
        }
    }
    out
}

impl Args {
    fn into_config(self) -> anyhow::Result<(LoadConfig, Option<PathBuf>, Option<PathBuf>)> {
        let stop = match (self.duration, self.requests) {
            (Some(d), _) => Stop::Duration(d),
            (None, Some(n)) => Stop::Requests(n),
            (None, None) if self.rate.is_some() => bail!("--rate needs a duration (-d)"),
            (None, None) => Stop::Duration(Duration::from_secs(10)),
        };
        let mut headers = Vec::with_capacity(self.headers.len());
        for h in &self.headers {
            let (name, value) = h
                .split_once(':')
                .with_context(|| format!("header '{h}' is not of the form 'Name: value'"))?;
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
        let body = match (self.body, &self.body_file) {
            (Some(b), _) => Some(b.into_bytes()),
            (None, Some(path)) => Some(
                std::fs::read(path)
                    .with_context(|| format!("cannot read --body-file {}", path.display()))?,
            ),
            (None, None) => None,
        };
        let pin = self.pin.as_deref().map(parse_cpu_list).transpose()?;
        for url in &self.urls {
            let https = url
                .get(..8)
                .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
            if self.h2 && !https {
                bail!("--h2 is HTTP/2 over TLS and needs https:// URLs (use --h2c for '{url}')");
            }
            if self.h2c && https {
                bail!("--h2c is cleartext HTTP/2 and needs http:// URLs (use --h2 for '{url}')");
            }
        }
        let cfg = LoadConfig {
            urls: self.urls,
            connections: self.connections,
            stop,
            threads: self.threads.unwrap_or(0),
            pin,
            rate: self.rate,
            method: self.method,
            headers,
            body,
            keepalive: !self.no_keepalive,
            pipeline: self.pipeline,
            http2: self.h2 || self.h2c,
            streams: self.streams,
            timeout: self.timeout,
            warmup: self.warmup.unwrap_or(Duration::ZERO),
            insecure: self.insecure,
            cacert: self.cacert,
            progress: true,
        };
        if cfg.threads == 0 && self.threads.is_some() {
            bail!("threads must be at least 1");
        }
        Ok((cfg, self.json, self.hdr_log))
    }
}

/// Entry point of the `ringway-load` binary.
pub fn main() -> ExitCode {
    let args = match Args::try_parse_from(join_pin_value(std::env::args().collect())) {
        Ok(args) => args,
        Err(e) if !e.use_stderr() => {
            let _ = e.print(); // --help, --version
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("ringway-load: {first} (see --help)");
            return ExitCode::from(2);
        }
    };
    match run_cli(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ringway-load: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run_cli(args: Args) -> anyhow::Result<ExitCode> {
    let (cfg, json_path, hdr_path) = args.into_config()?;
    // Open output files first, so a bad path fails before the load, not after.
    let create = |path: &PathBuf, what: &str| {
        File::create(path).with_context(|| format!("cannot create {what} file {}", path.display()))
    };
    let json_file = json_path
        .as_ref()
        .map(|p| create(p, "--json"))
        .transpose()?;
    let hdr_file = hdr_path
        .as_ref()
        .map(|p| create(p, "--hdr-log"))
        .transpose()?;

    let report = match crate::run(&cfg) {
        Ok(report) => report,
        Err(e) => {
            // Leave no empty output files behind.
            for path in json_path.iter().chain(hdr_path.iter()) {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
    };

    let mut stdout = std::io::stdout().lock();
    report.print(&mut stdout);
    let _ = stdout.flush();
    let mut failed = false;
    if let (Some(file), Some(path)) = (json_file, &json_path) {
        let mut w = BufWriter::new(file);
        let written = serde_json::to_writer_pretty(&mut w, &report.to_json())
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(w))
            .and_then(|()| w.flush());
        if let Err(e) = written {
            eprintln!("ringway-load: cannot write {}: {e}", path.display());
            failed = true;
        }
    }
    if let (Some(file), Some(path)) = (hdr_file, &hdr_path) {
        let mut w = BufWriter::new(file);
        if let Err(e) = report
            .write_percentile_distribution(&mut w)
            .and_then(|()| w.flush())
        {
            eprintln!("ringway-load: cannot write {}: {e}", path.display());
            failed = true;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0,2-4").unwrap(), vec![0, 2, 3, 4]);
        assert_eq!(parse_cpu_list("").unwrap(), Vec::<usize>::new());
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("x").is_err());
    }

    #[test]
    fn pin_value_is_joined_only_when_it_is_a_cpu_list() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            join_pin_value(args(&["x", "--pin", "0,1", "http://h/"])),
            args(&["x", "--pin=0,1", "http://h/"])
        );
        assert_eq!(
            join_pin_value(args(&["x", "--pin", "http://h/"])),
            args(&["x", "--pin", "http://h/"])
        );
    }

    #[test]
    fn rate_without_duration_is_rejected() {
        let args = Args::try_parse_from(["ringway-load", "http://h/", "--rate", "10"]).unwrap();
        assert!(args.into_config().is_err());
        let args = Args::try_parse_from(["ringway-load", "http://h/", "--rate", "10", "-d", "1s"])
            .unwrap();
        assert!(args.into_config().is_ok());
    }
}
