//! Command line: `ringway-load URL [URL...] [options]`, or
//! `ringway-load --compare URL_A URL_B [options]`. Turns arguments into a
//! [`LoadConfig`], runs it, writes the report. Bad input: one line on
//! stderr, exit code 2.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;

use crate::compare::Comparison;
use crate::mix::Mix;
use crate::{LoadConfig, Stop};

/// Rounds of `--compare` unless `--rounds` says otherwise.
const DEFAULT_ROUNDS: usize = 5;

/// The `--mix` line format, shown at the end of `--help`.
pub(crate) const MIX_HELP: &str = "\
Mix file (--mix FILE): one request per line, replayed in proportion to the weights.
  METHOD PATH [Name:value ...] [@BODY_FILE] [weight=N]
  - PATH starts with '/' and may carry a query; it replaces the URL's path.
  - Name:value is a header (quote the field to keep spaces: \"Authorization: Bearer x\").
  - @BODY_FILE is the body, read once, relative to the mix file's directory.
  - weight=N (1..1000000, default 1) sets the line's share of the requests.
  - Blank lines and lines starting with '#' are skipped.
  Example:
    GET  /api/items?limit=10 weight=6
    GET  /api/items/42 \"Authorization: Bearer abc\" weight=3
    POST /api/items Content-Type:application/json @item.json weight=1";

/// HTTP/1.1 and HTTP/2 load generator (closed or open loop, thread per core).
#[derive(Debug, Parser)]
#[command(name = "ringway-load", version, about, after_help = MIX_HELP)]
struct Args {
    /// Target URLs (http:// or https://); connections are spread over them round-robin.
    #[arg(required_unless_present = "compare", value_name = "URL")]
    urls: Vec<String>,
    /// Interleaved A/B test: alternate rounds against URL_A and URL_B with the
    /// same options; print each round, the medians and the ratio B/A.
    #[arg(long, num_args = 2, value_names = ["URL_A", "URL_B"], conflicts_with_all = ["urls", "svg", "hdr_log"])]
    compare: Option<Vec<String>>,
    /// Rounds of --compare (each runs A once and B once) [default: 5].
    #[arg(long)]
    rounds: Option<usize>,
    /// Replay the requests of FILE in proportion (line format below).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["method", "body", "body_file"])]
    mix: Option<PathBuf>,
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
    /// Request method (default GET).
    #[arg(short = 'm', long)]
    method: Option<String>,
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
    /// Draw latency percentiles over time and the latency distribution to this SVG file.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// No live status line (it is drawn only when stdout is a terminal anyway).
    #[arg(short = 'q', long)]
    quiet: bool,
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

/// Where the outputs go, besides stdout.
struct Outputs {
    json: Option<PathBuf>,
    hdr_log: Option<PathBuf>,
    svg: Option<PathBuf>,
}

impl Args {
    fn into_config(self) -> anyhow::Result<(LoadConfig, Outputs)> {
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
        let mix = self.mix.as_deref().map(Mix::load).transpose()?;
        for url in self.urls.iter().chain(self.compare.iter().flatten()) {
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
            method: self.method.unwrap_or_else(|| "GET".to_string()),
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
            progress: !self.quiet,
            mix,
        };
        if cfg.threads == 0 && self.threads.is_some() {
            bail!("threads must be at least 1");
        }
        let outputs = Outputs {
            json: self.json,
            hdr_log: self.hdr_log,
            svg: self.svg,
        };
        Ok((cfg, outputs))
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

/// Creates an output file before the load, so a bad path fails first.
fn create(path: &PathBuf, what: &str) -> anyhow::Result<File> {
    File::create(path).with_context(|| format!("cannot create {what} file {}", path.display()))
}

/// Writes one output file; false (after saying why on stderr) on failure.
fn write_out(
    file: File,
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> bool {
    let mut w = BufWriter::new(file);
    match write(&mut w).and_then(|()| w.flush()) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("ringway-load: cannot write {}: {e}", path.display());
            false
        }
    }
}

fn write_json(w: &mut impl Write, value: &serde_json::Value) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, value).map_err(std::io::Error::from)?;
    writeln!(w)
}

fn run_cli(args: Args) -> anyhow::Result<ExitCode> {
    let compare = args.compare.clone();
    if args.rounds.is_some() && compare.is_none() {
        bail!("--rounds needs --compare");
    }
    let rounds = args.rounds.unwrap_or(DEFAULT_ROUNDS);
    let (cfg, outputs) = args.into_config()?;
    if let Some(urls) = compare {
        return run_compare(&cfg, &urls, rounds, outputs.json);
    }
    let files = [
        (&outputs.json, "--json"),
        (&outputs.hdr_log, "--hdr-log"),
        (&outputs.svg, "--svg"),
    ];
    let mut opened = Vec::new();
    for (path, what) in files {
        opened.push(path.as_ref().map(|p| create(p, what)).transpose()?);
    }
    let report = match crate::run(&cfg) {
        Ok(report) => report,
        Err(e) => {
            // Leave no empty output files behind.
            for path in files.iter().filter_map(|(p, _)| p.as_ref()) {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
    };

    let mut stdout = std::io::stdout().lock();
    report.print(&mut stdout);
    let _ = stdout.flush();
    let mut ok = true;
    let [json_file, hdr_file, svg_file] =
        <[Option<File>; 3]>::try_from(opened).map_err(|_| anyhow::anyhow!("three output slots"))?;
    if let (Some(file), Some(path)) = (json_file, &outputs.json) {
        ok &= write_out(file, path, |w| write_json(w, &report.to_json()));
    }
    if let (Some(file), Some(path)) = (hdr_file, &outputs.hdr_log) {
        ok &= write_out(file, path, |w| report.write_percentile_distribution(w));
    }
    if let (Some(file), Some(path)) = (svg_file, &outputs.svg) {
        let title = cfg.urls.join(" ");
        ok &= write_out(file, path, |w| {
            w.write_all(crate::plot::plot(&report, &title).as_bytes())
        });
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `--compare`: rounds printed as they end, then the verdict.
fn run_compare(
    cfg: &LoadConfig,
    urls: &[String],
    rounds: usize,
    json: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let [a, b] = urls else {
        bail!("--compare needs two URLs");
    };
    let json_file = json.as_ref().map(|p| create(p, "--json")).transpose()?;
    let result = Comparison::run(cfg, a, b, rounds, |round, side, result| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", Comparison::round_line(round, side, result));
        let _ = out.flush();
    });
    let comparison = match result {
        Ok(c) => c,
        Err(e) => {
            if let Some(p) = &json {
                let _ = std::fs::remove_file(p);
            }
            return Err(e);
        }
    };
    let mut stdout = std::io::stdout().lock();
    let _ = comparison.print(&mut stdout);
    let _ = stdout.flush();
    let ok = match (json_file, &json) {
        (Some(file), Some(path)) => write_out(file, path, |w| write_json(w, &comparison.to_json())),
        _ => true,
    };
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
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
