//! Counting and reporting: per-worker tallies (plain fields, no atomics),
//! merged once at the end into a [`Report`].

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};

/// Latency values are recorded in microseconds up to this bound (one hour);
/// larger values saturate.
const MAX_LATENCY_US: u64 = 3_600_000_000;
/// The per-second histograms stop at one minute (larger values saturate)
/// and keep two significant digits: about 10 KiB per second and worker.
const SERIES_MAX_LATENCY_US: u64 = 60_000_000;
const SERIES_SIGFIG: u8 = 2;

/// Failure classes, each counted separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// TCP connect or TLS handshake failed.
    Connect,
    /// No response (or connection) within `--timeout`.
    Timeout,
    /// Reading failed, or the server closed before the response was complete.
    Read,
    /// Writing the request failed.
    Write,
    /// The response was not valid HTTP/1.x, or broke the HTTP/2 protocol.
    Parse,
    /// HTTP/2: the server reset a stream (RST_STREAM) or closed the
    /// connection with an error (GOAWAY).
    Reset,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Read,
        ErrorKind::Write,
        ErrorKind::Parse,
        ErrorKind::Reset,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Read => "read",
            ErrorKind::Write => "write",
            ErrorKind::Parse => "parse",
            ErrorKind::Reset => "reset",
        }
    }
}

/// Error counts by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorCounts([u64; ErrorKind::ALL.len()]);

impl ErrorCounts {
    pub fn get(&self, kind: ErrorKind) -> u64 {
        self.0[kind as usize]
    }

    pub fn add(&mut self, kind: ErrorKind, n: u64) {
        self.0[kind as usize] += n;
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static histogram bounds are valid")
}

/// One second of the measured time, as one worker counted it.
pub(crate) struct Second {
    pub requests: u64,
    pub errors: u64,
    pub latency: Histogram<u32>,
}

impl Second {
    fn new() -> Self {
        Second {
            requests: 0,
            errors: 0,
            latency: Histogram::new_with_bounds(1, SERIES_MAX_LATENCY_US, SERIES_SIGFIG)
                .expect("static histogram bounds are valid"),
        }
    }
}

/// What one mix line got back.
#[derive(Debug, Clone, Default)]
pub(crate) struct LineTally {
    pub requests: u64,
    /// (status, count), in order of first appearance; few distinct codes.
    pub status: Vec<(u16, u64)>,
}

impl LineTally {
    fn add(&mut self, status: u16, n: u64) {
        self.requests += n;
        match self.status.iter_mut().find(|(code, _)| *code == status) {
            Some((_, count)) => *count += n,
            None => self.status.push((status, n)),
        }
    }
}

/// What one worker thread counted. Owned by that thread; merged at the end.
pub(crate) struct Tally {
    pub requests: u64,
    pub bytes_read: u64,
    /// Responses by status code (index = code, 0..=999).
    pub status: Box<[u64; 1000]>,
    pub errors: ErrorCounts,
    pub latency: Histogram<u64>,
    /// Largest lag between a request's scheduled and actual send time.
    pub behind: Duration,
    pub last_completion: Option<Instant>,
    /// Second `i` of the measured time (from its start) at index `i`.
    pub series: Vec<Second>,
    /// Per mix line (empty without `--mix`).
    pub lines: Vec<LineTally>,
}

impl Tally {
    pub fn new(mix_lines: usize) -> Self {
        Tally {
            requests: 0,
            bytes_read: 0,
            status: Box::new([0; 1000]),
            errors: ErrorCounts::default(),
            latency: new_histogram(),
            behind: Duration::ZERO,
            last_completion: None,
            series: Vec::new(),
            lines: vec![LineTally::default(); mix_lines],
        }
    }

    /// The bucket of measured second `second`, created on first use (one
    /// allocation per second, not per request).
    #[inline]
    pub fn second(&mut self, second: usize) -> &mut Second {
        if second >= self.series.len() {
            self.series.resize_with(second + 1, Second::new);
        }
        &mut self.series[second]
    }

    /// A response completed at `now`, in measured second `second`, for mix line `line`.
    #[inline]
    pub fn record(
        &mut self,
        status: u16,
        latency: Duration,
        now: Instant,
        second: usize,
        line: usize,
    ) {
        self.requests += 1;
        self.status[usize::from(status).min(999)] += 1;
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.latency.saturating_record(us);
        self.last_completion = Some(now);
        let bucket = self.second(second);
        bucket.requests += 1;
        bucket.latency.saturating_record(us);
        if let Some(l) = self.lines.get_mut(line) {
            l.add(status, 1);
        }
    }

    /// An error in measured second `second`.
    pub fn record_error(&mut self, kind: ErrorKind, second: usize) {
        self.errors.add(kind, 1);
        self.second(second).errors += 1;
    }

    pub fn merge(&mut self, other: &Tally) {
        self.requests += other.requests;
        self.bytes_read += other.bytes_read;
        for (a, b) in self.status.iter_mut().zip(other.status.iter()) {
            *a += b;
        }
        for kind in ErrorKind::ALL {
            self.errors.add(kind, other.errors.get(kind));
        }
        self.latency
            .add(&other.latency)
            .expect("histograms share bounds");
        self.behind = self.behind.max(other.behind);
        self.last_completion = self.last_completion.max(other.last_completion);
        for (i, theirs) in other.series.iter().enumerate() {
            let ours = self.second(i);
            ours.requests += theirs.requests;
            ours.errors += theirs.errors;
            ours.latency
                .add(&theirs.latency)
                .expect("histograms share bounds");
        }
        if self.lines.len() < other.lines.len() {
            self.lines.resize(other.lines.len(), LineTally::default());
        }
        for (ours, theirs) in self.lines.iter_mut().zip(&other.lines) {
            for &(status, n) in &theirs.status {
                ours.add(status, n);
            }
        }
    }

    /// The per-second summaries of the series.
    pub fn series_summary(&self) -> Vec<SecondSummary> {
        self.series
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let q = |x| {
                    if s.latency.is_empty() {
                        0
                    } else {
                        s.latency.value_at_quantile(x)
                    }
                };
                SecondSummary {
                    second: i as u64,
                    requests: s.requests,
                    errors: s.errors,
                    p50_us: q(0.5),
                    p99_us: q(0.99),
                    p99_9_us: q(0.999),
                }
            })
            .collect()
    }
}

/// One second of the run: what completed (and failed) in it, and the
/// latency percentiles of what completed (two significant digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecondSummary {
    /// Seconds since the start of measurement (the bucket is `[second, second + 1)`).
    pub second: u64,
    pub requests: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p99_9_us: u64,
}

/// What one `--mix` line got: its requests and their status codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineReport {
    /// The line as written in the mix file (trimmed).
    pub label: String,
    /// Line number in the mix file (1-based).
    pub line: usize,
    pub weight: u32,
    pub requests: u64,
    pub status: BTreeMap<u16, u64>,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct Report {
    /// Completed requests (a response was read in full), warmup excluded.
    pub requests: u64,
    /// Measured time (warmup excluded).
    pub duration: Duration,
    /// Bytes read from the network during the measured time.
    pub bytes_read: u64,
    /// Responses by status code. 4xx and 5xx are counted here, not as errors.
    pub status: BTreeMap<u16, u64>,
    pub errors: ErrorCounts,
    /// Latency in microseconds, merged from every worker. In open loop it is
    /// measured from each request's scheduled send time.
    pub latency: Histogram<u64>,
    pub connections: usize,
    pub threads: usize,
    /// Target rate of an open-loop run (`None`: closed loop).
    pub rate: Option<f64>,
    /// Open loop: the largest lag between a scheduled send and the actual one.
    pub behind_schedule: Option<Duration>,
    /// A `-n` run stopped early because errors reached the request count.
    pub aborted: bool,
    /// Per measured second; requests and errors add up to the totals.
    pub series: Vec<SecondSummary>,
    /// Per `--mix` line (empty without `--mix`).
    pub lines: Vec<LineReport>,
}

impl Report {
    /// Completed requests per second.
    pub fn rps(&self) -> f64 {
        per_second(self.requests as f64, self.duration)
    }

    /// Bytes read per second.
    pub fn transfer_rate(&self) -> f64 {
        per_second(self.bytes_read as f64, self.duration)
    }

    /// Latency at `quantile` (0.0..=1.0), microseconds; 0 with no samples.
    pub fn latency_us(&self, quantile: f64) -> u64 {
        if self.latency.is_empty() {
            0
        } else {
            self.latency.value_at_quantile(quantile)
        }
    }

    fn percentiles(&self) -> [(&'static str, &'static str, u64); 7] {
        let q = |x| self.latency_us(x);
        [
            ("p50", "p50", q(0.5)),
            ("p75", "p75", q(0.75)),
            ("p90", "p90", q(0.9)),
            ("p99", "p99", q(0.99)),
            ("p99.9", "p99_9", q(0.999)),
            ("p99.99", "p99_99", q(0.9999)),
            (
                "max",
                "max",
                if self.latency.is_empty() {
                    0
                } else {
                    self.latency.max()
                },
            ),
        ]
    }

    /// Writes the human-readable report. Write errors are ignored (the
    /// report is best effort; `--json` is the machine-readable path).
    pub fn print(&self, out: &mut impl Write) {
        let _ = self.write_text(out);
    }

    fn write_text(&self, out: &mut impl Write) -> io::Result<()> {
        let mode = match self.rate {
            Some(rate) => format!("open loop at {rate} req/s"),
            None => "closed loop".to_string(),
        };
        writeln!(
            out,
            "ringway-load: {} connections, {} thread{}, {mode}",
            self.connections,
            self.threads,
            if self.threads == 1 { "" } else { "s" }
        )?;
        writeln!(out, "  duration      {:.2} s", self.duration.as_secs_f64())?;
        writeln!(
            out,
            "  requests      {}  ({:.1} req/s)",
            self.requests,
            self.rps()
        )?;
        writeln!(
            out,
            "  transfer      {}  ({}/s)",
            human_bytes(self.bytes_read as f64),
            human_bytes(self.transfer_rate())
        )?;
        let status: Vec<String> = self
            .status
            .iter()
            .map(|(code, n)| format!("{code}: {n}"))
            .collect();
        writeln!(
            out,
            "  status        {}",
            if status.is_empty() {
                "none".into()
            } else {
                status.join(", ")
            }
        )?;
        let errors: Vec<String> = ErrorKind::ALL
            .iter()
            .map(|&k| format!("{} {}", k.name(), self.errors.get(k)))
            .collect();
        writeln!(
            out,
            "  errors        {}  ({})",
            self.errors.total(),
            errors.join(", ")
        )?;
        if let Some(behind) = self.behind_schedule {
            writeln!(
                out,
                "  behind schedule  {:.1} ms at most",
                behind.as_secs_f64() * 1e3
            )?;
        }
        if self.aborted {
            writeln!(out, "  stopped early: errors reached the request count")?;
        }
        if !self.lines.is_empty() {
            writeln!(
                out,
                "  mix           requests  share   weight  status   line"
            )?;
            for l in &self.lines {
                let share = if self.requests > 0 {
                    l.requests as f64 * 100.0 / self.requests as f64
                } else {
                    0.0
                };
                let status: Vec<String> =
                    l.status.iter().map(|(c, n)| format!("{c}:{n}")).collect();
                writeln!(
                    out,
                    "    {:>17}  {share:5.1}%  {:>6}  {}  {}: {}",
                    l.requests,
                    l.weight,
                    if status.is_empty() {
                        "-".to_string()
                    } else {
                        status.join(",")
                    },
                    l.line,
                    l.label
                )?;
            }
        }
        let p = self.percentiles();
        write!(out, "  latency (us)")?;
        for (name, _, _) in p {
            write!(out, " {name:>9}")?;
        }
        write!(out, "\n              ")?;
        for (_, _, v) in p {
            write!(out, " {v:>9}")?;
        }
        writeln!(out)
    }

    /// The machine-readable report (the `--json` file).
    pub fn to_json(&self) -> Value {
        let status: Map<String, Value> = self
            .status
            .iter()
            .map(|(code, n)| (code.to_string(), json!(n)))
            .collect();
        let mut errors: Map<String, Value> = ErrorKind::ALL
            .iter()
            .map(|&k| (k.name().to_string(), json!(self.errors.get(k))))
            .collect();
        errors.insert("total".into(), json!(self.errors.total()));
        let mut latency: Map<String, Value> = self
            .percentiles()
            .iter()
            .map(|&(_, key, v)| (key.to_string(), json!(v)))
            .collect();
        latency.insert(
            "min".into(),
            json!(if self.latency.is_empty() {
                0
            } else {
                self.latency.min()
            }),
        );
        latency.insert("mean".into(), json!(self.latency.mean()));
        latency.insert("stdev".into(), json!(self.latency.stdev()));
        json!({
            "requests": self.requests,
            "duration_s": self.duration.as_secs_f64(),
            "rps": self.rps(),
            "bytes_read": self.bytes_read,
            "transfer_bytes_per_s": self.transfer_rate(),
            "connections": self.connections,
            "threads": self.threads,
            "mode": if self.rate.is_some() { "open" } else { "closed" },
            "rate": self.rate,
            "behind_schedule_ms": self.behind_schedule.map(|d| d.as_secs_f64() * 1e3),
            "aborted": self.aborted,
            "errors": errors,
            "status": status,
            "latency_us": latency,
            "series": self.series.iter().map(|s| json!({
                "second": s.second,
                "requests": s.requests,
                "errors": s.errors,
                "p50_us": s.p50_us,
                "p99_us": s.p99_us,
                "p99_9_us": s.p99_9_us,
            })).collect::<Vec<_>>(),
            "mix": self.lines.iter().map(|l| json!({
                "line": l.line,
                "request": l.label,
                "weight": l.weight,
                "requests": l.requests,
                "status": l.status.iter().map(|(c, n)| (c.to_string(), json!(n))).collect::<Map<String, Value>>(),
            })).collect::<Vec<_>>(),
        })
    }

    /// Writes the latency distribution in HdrHistogram's percentile text
    /// format (values in milliseconds), which HdrHistogram's plotter reads.
    pub fn write_percentile_distribution(&self, out: &mut impl Write) -> io::Result<()> {
        const TICKS_PER_HALF_DISTANCE: u32 = 5;
        const SCALE: f64 = 1000.0; // us → ms
        let h = &self.latency;
        writeln!(
            out,
            "{:>12} {:>14} {:>10} {:>14}\n",
            "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
        )?;
        let mut total = 0u64;
        if !h.is_empty() {
            for v in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
                total += v.count_since_last_iteration();
                let value = h.highest_equivalent(v.value_iterated_to()) as f64 / SCALE;
                let q = v.quantile_iterated_to();
                if q < 1.0 {
                    writeln!(
                        out,
                        "{value:12.3} {q:2.12} {total:10} {:14.2}",
                        1.0 / (1.0 - q)
                    )?;
                } else {
                    writeln!(out, "{value:12.3} {q:2.12} {total:10}")?;
                }
            }
        }
        let (mean, stdev, max) = if h.is_empty() {
            (0.0, 0.0, 0.0)
        } else {
            (h.mean() / SCALE, h.stdev() / SCALE, h.max() as f64 / SCALE)
        };
        writeln!(
            out,
            "#[Mean    = {mean:12.3}, StdDeviation   = {stdev:12.3}]"
        )?;
        writeln!(
            out,
            "#[Max     = {max:12.3}, Total count    = {:12}]",
            h.len()
        )?;
        let sub_buckets = (2 * 10u64.pow(u32::from(h.sigfig()))).next_power_of_two();
        writeln!(
            out,
            "#[Buckets = {:12}, SubBuckets     = {:12}]",
            h.buckets(),
            sub_buckets
        )
    }
}

fn per_second(x: f64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 { x / s } else { 0.0 }
}

fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.2} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_report() -> Report {
        let mut t = Tally::new(0);
        let now = Instant::now();
        for ms in 1..=100u64 {
            t.record(
                if ms % 10 == 0 { 503 } else { 200 },
                Duration::from_millis(ms),
                now,
                (ms / 60) as usize,
                0,
            );
        }
        t.record_error(ErrorKind::Read, 0);
        t.record_error(ErrorKind::Read, 1);
        let status = t
            .status
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(c, n)| (c as u16, *n))
            .collect();
        let series = t.series_summary();
        Report {
            requests: t.requests,
            duration: Duration::from_secs(2),
            bytes_read: 4096,
            status,
            errors: t.errors,
            latency: t.latency,
            connections: 4,
            threads: 2,
            rate: None,
            behind_schedule: None,
            aborted: false,
            series,
            lines: Vec::new(),
        }
    }

    #[test]
    fn json_has_the_documented_fields() {
        let j = sample_report().to_json();
        assert_eq!(j["requests"], 100);
        assert_eq!(j["rps"], 50.0);
        assert_eq!(j["status"]["200"], 90);
        assert_eq!(j["status"]["503"], 10);
        assert_eq!(j["errors"]["read"], 2);
        assert_eq!(j["errors"]["total"], 2);
        assert!(j["behind_schedule_ms"].is_null());
        let p50 = j["latency_us"]["p50"].as_u64().unwrap();
        assert!((49_000..=51_000).contains(&p50), "{p50}");
        for key in ["p75", "p90", "p99", "p99_9", "p99_99", "max"] {
            assert!(j["latency_us"][key].as_u64().unwrap() >= p50, "{key}");
        }
        for key in ["connections", "threads", "duration_s", "bytes_read"] {
            assert!(j[key].is_number(), "{key}");
        }
        let series = j["series"].as_array().unwrap();
        assert_eq!(series.len(), 2);
        let sum = |k: &str| series.iter().map(|s| s[k].as_u64().unwrap()).sum::<u64>();
        assert_eq!((sum("requests"), sum("errors")), (100, 2));
    }

    #[test]
    fn text_outputs_render() {
        let r = sample_report();
        let mut text = Vec::new();
        r.print(&mut text);
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("requests      100"), "{text}");
        assert!(text.contains("503: 10"), "{text}");
        let mut hdr = Vec::new();
        r.write_percentile_distribution(&mut hdr).unwrap();
        let hdr = String::from_utf8(hdr).unwrap();
        assert!(hdr.starts_with("       Value"), "{hdr}");
        assert!(hdr.contains("Total count    =          100"), "{hdr}");
        let last = hdr
            .lines()
            .rfind(|l| !l.starts_with('#') && !l.trim().is_empty())
            .unwrap();
        assert!(last.contains("1.000000000000"), "{last}");
    }
}
