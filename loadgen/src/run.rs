//! The control thread: check the configuration, build the shared plan, start
//! the workers, draw progress, merge their tallies into a [`Report`].

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::sync::{Arc, Barrier, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::codec::build_request;
use crate::h2::H2Request;
use crate::plan::{Live, Plan, Protocol, Rendered, RequestSet, StartLine, TargetPlan};
use crate::progress::Progress;
use crate::report::{LineReport, Report, Tally};
use crate::schedule::{Abort, Budget, Phases};
use crate::target::Target;
use crate::transport::{Connector, client_config};
use crate::worker::run_worker;
use crate::{LoadConfig, Stop};

/// Longest wait for the pre-flight connect to each target.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(3);
/// Upper bounds on the options, so that a typo fails as bad input instead
/// of exhausting memory or overflowing the clock.
const MAX_CONNECTIONS: usize = 1_000_000;
const MAX_THREADS: usize = 1024;
const MAX_PIPELINE: usize = 1024;
/// HTTP/2 streams per connection (servers allow 100 to 1000 at once).
const MAX_STREAMS: usize = 65_536;
/// Longest duration, warmup or timeout (30 days).
const MAX_SPAN: Duration = Duration::from_secs(30 * 24 * 3600);

/// Runs a load test and returns its report. Errors are about the setup
/// (bad URL, nothing listening, bad option); once the load starts, failures
/// are counted in the report, never returned. Blocks the calling thread
/// (which draws progress, if asked) while its own worker threads run; do
/// not call it from inside a monoio runtime thread that must keep serving.
pub fn run(cfg: &LoadConfig) -> anyhow::Result<Report> {
    validate(cfg)?;
    let progress = Progress::wanted(cfg.progress);
    let (mut plan, cores) = build_plan(cfg)?;
    plan.publish_p99 = progress;
    let plan = Arc::new(plan);
    let start = Arc::new(StartLine {
        barrier: Barrier::new(plan.threads + 1),
        phases: OnceLock::new(),
    });

    let mut workers: Vec<JoinHandle<anyhow::Result<Tally>>> = Vec::with_capacity(plan.threads);
    for index in 0..plan.threads {
        let (shared, line) = (plan.clone(), start.clone());
        let core = cores.as_ref().map(|c| c[index % c.len()]);
        let spawned = std::thread::Builder::new()
            .name(format!("ringway-load-{index}"))
            .spawn(move || run_worker(shared, index, core, line));
        match spawned {
            Ok(handle) => workers.push(handle),
            Err(e) => {
                // The barrier counts on every worker: release the ones that
                // started (they see no clock and end), then give up.
                plan.abort.set();
                for _ in index..plan.threads {
                    std::thread::spawn({
                        let start = start.clone();
                        move || {
                            start.barrier.wait();
                            start.barrier.wait();
                        }
                    });
                }
                start.barrier.wait();
                start.barrier.wait();
                for w in workers {
                    let _ = w.join();
                }
                bail!("cannot start worker thread {index}: {e}");
            }
        }
    }
    start.barrier.wait();
    let duration = match cfg.stop {
        Stop::Duration(d) => Some(d),
        Stop::Requests(_) => None,
    };
    let phases = Phases::new(Instant::now(), cfg.warmup, duration);
    let _ = start.phases.set(phases);
    start.barrier.wait();

    if progress {
        Progress::draw(&plan.live, &workers, phases);
    }
    let mut total = Tally::new(plan.mix_lines);
    for worker in workers {
        let tally = worker
            .join()
            .map_err(|_| anyhow::anyhow!("a worker thread panicked"))??;
        total.merge(&tally);
    }
    let measured = match duration {
        Some(d) => d,
        None => total
            .last_completion
            .unwrap_or_else(Instant::now)
            .saturating_duration_since(phases.measure_from),
    };
    let status: BTreeMap<u16, u64> = total
        .status
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(code, n)| (code as u16, *n))
        .collect();
    let series = total.series_summary();
    Ok(Report {
        requests: total.requests,
        duration: measured,
        bytes_read: total.bytes_read,
        status,
        errors: total.errors,
        latency: total.latency,
        connections: plan.connections,
        threads: plan.threads,
        rate: plan.rate,
        behind_schedule: plan.rate.map(|_| total.behind),
        aborted: plan.abort.is_set(),
        series,
        lines: match &cfg.mix {
            None => Vec::new(),
            Some(mix) => mix
                .lines
                .iter()
                .zip(&total.lines)
                .map(|(line, tally)| LineReport {
                    label: line.text.clone(),
                    line: line.line,
                    weight: line.weight,
                    requests: tally.requests,
                    status: tally.status.iter().copied().collect(),
                })
                .collect(),
        },
    })
}

fn validate(cfg: &LoadConfig) -> anyhow::Result<()> {
    if cfg.urls.is_empty() {
        bail!("no URL given");
    }
    if cfg.connections == 0 || cfg.connections > MAX_CONNECTIONS {
        bail!("connections must be 1 to {MAX_CONNECTIONS}");
    }
    if cfg.pipeline == 0 || cfg.pipeline > MAX_PIPELINE {
        bail!("pipeline must be 1 to {MAX_PIPELINE}");
    }
    if cfg.threads > MAX_THREADS {
        bail!("threads must be at most {MAX_THREADS}");
    }
    let too_long = |d: Duration| d > MAX_SPAN;
    if matches!(cfg.stop, Stop::Duration(d) if too_long(d))
        || too_long(cfg.warmup)
        || too_long(cfg.timeout)
    {
        bail!("durations, --warmup and --timeout must be at most 30 days");
    }
    // The open-loop interval per connection must fit the same bound.
    if let Some(rate) = cfg.rate
        && rate.is_finite()
        && rate > 0.0
        && cfg.connections as f64 / rate > MAX_SPAN.as_secs_f64()
    {
        bail!("rate is too low: one request per connection every 30 days at least");
    }
    if cfg.streams == 0 || cfg.streams > MAX_STREAMS {
        bail!("streams must be 1 to {MAX_STREAMS}");
    }
    if cfg.http2 && cfg.pipeline > 1 {
        bail!("HTTP/2 does not pipeline: use --streams for requests in flight per connection");
    }
    if !cfg.http2 && cfg.streams > 1 {
        bail!("--streams is for HTTP/2 (--h2 or --h2c); HTTP/1.1 uses --pipeline");
    }
    match cfg.stop {
        Stop::Duration(d) if d.is_zero() => bail!("duration must be more than 0"),
        Stop::Requests(0) => bail!("request count must be at least 1"),
        Stop::Requests(_) if cfg.rate.is_some() => {
            bail!("--rate needs a duration (-d), not a request count")
        }
        _ => {}
    }
    if let Some(rate) = cfg.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        bail!("rate must be a positive number of requests per second");
    }
    if cfg.timeout.is_zero() {
        bail!("timeout must be more than 0");
    }
    if cfg.method.is_empty()
        || !cfg
            .method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_!#$%&'*+.^`|~".contains(&b))
    {
        bail!("invalid method '{}'", cfg.method);
    }
    for (name, value) in &cfg.headers {
        if name.is_empty() || name.bytes().any(|b| !b.is_ascii_graphic() || b == b':') {
            bail!("invalid header name '{name}'");
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n') {
            bail!("invalid value for header '{name}'");
        }
    }
    Ok(())
}

/// Checks the configuration and that every target answers (one connect,
/// and one TLS handshake for `https://`), without running any load.
pub(crate) fn check_reachable(cfg: &LoadConfig) -> anyhow::Result<()> {
    validate(cfg)?;
    preflight(cfg).map(|_| ())
}

/// Parses and resolves every URL and connects to it once, so a typo'd port
/// fails now, not as a run full of errors. Of the resolved addresses, the
/// first that answers is the one the run uses.
fn preflight(cfg: &LoadConfig) -> anyhow::Result<Vec<(Target, Connector)>> {
    let targets: Vec<Target> = cfg
        .urls
        .iter()
        .map(|u| Target::parse(u))
        .collect::<Result<_, _>>()?;
    let tls = if targets.iter().any(|t| t.tls) {
        // With --h2, http/1.1 is offered too, so a server without HTTP/2
        // completes the handshake and can be named for what it lacks.
        let alpn: &[&[u8]] = if cfg.http2 {
            &[crate::h2::ALPN, b"http/1.1"]
        } else {
            &[b"http/1.1"]
        };
        Some(client_config(cfg.insecure, cfg.cacert.as_deref(), alpn)?)
    } else {
        None
    };
    let wait = PREFLIGHT_TIMEOUT.min(cfg.timeout);
    let mut out = Vec::with_capacity(targets.len());
    for target in targets {
        let addrs = target
            .resolve()
            .with_context(|| format!("cannot resolve {}", target.url))?;
        let mut connected = Err(std::io::Error::other("no address"));
        for addr in addrs {
            connected = TcpStream::connect_timeout(&addr, wait).map(|tcp| (addr, tcp));
            if connected.is_ok() {
                break;
            }
        }
        let (addr, tcp) = connected.with_context(|| format!("cannot connect to {}", target.url))?;
        let connector = match &tls {
            Some(config) if target.tls => {
                // And one handshake, so a certificate problem is named now.
                let alpn = preflight_handshake(tcp, config.clone(), &target.host, wait)
                    .with_context(|| format!("TLS handshake with {} failed", target.url))?;
                if cfg.http2 && alpn.as_deref() != Some(crate::h2::ALPN) {
                    bail!(
                        "{} does not speak HTTP/2: the TLS handshake chose ALPN {}",
                        target.url,
                        alpn.map_or("none".into(), |p| String::from_utf8_lossy(&p).into_owned())
                    );
                }
                Connector::tls(addr, config.clone(), &target.host)?
            }
            _ if cfg.http2 => {
                crate::h2::preflight_h2c(tcp, wait)
                    .with_context(|| format!("--h2c {}", target.url))?;
                Connector::plain(addr)
            }
            _ => Connector::plain(addr),
        };
        out.push((target, connector));
    }
    Ok(out)
}

fn build_plan(cfg: &LoadConfig) -> anyhow::Result<(Plan, Option<Vec<core_affinity::CoreId>>)> {
    let plans: Vec<TargetPlan> = preflight(cfg)?
        .into_iter()
        .map(|(target, connector)| TargetPlan {
            requests: render_requests(cfg, &target),
            connector: connector.one_request(!cfg.keepalive),
        })
        .collect();

    let available = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = if cfg.threads == 0 {
        available
    } else {
        cfg.threads
    }
    .min(cfg.connections);
    let cores = match &cfg.pin {
        None => None,
        Some(list) => {
            let known = core_affinity::get_core_ids().context("cannot list CPUs for --pin")?;
            if list.is_empty() {
                Some(known)
            } else {
                let mut cores = Vec::with_capacity(list.len());
                for &id in list {
                    let core = known.iter().find(|c| c.id == id).with_context(|| {
                        format!(
                            "--pin: CPU {id} is not available (have {:?})",
                            known.iter().map(|c| c.id).collect::<Vec<_>>()
                        )
                    })?;
                    cores.push(*core);
                }
                Some(cores)
            }
        }
    };
    let plan = Plan {
        protocol: if cfg.http2 {
            Protocol::H2 {
                streams: cfg.streams,
            }
        } else {
            Protocol::Http1
        },
        targets: plans,
        mix_lines: cfg.mix.as_ref().map_or(0, |m| m.lines.len()),
        connections: cfg.connections,
        threads,
        pipeline: cfg.pipeline,
        keepalive: cfg.keepalive,
        timeout: cfg.timeout,
        rate: cfg.rate,
        budget: match cfg.stop {
            Stop::Requests(n) => Some(Budget::new(n)),
            Stop::Duration(_) => None,
        },
        abort: Abort::default(),
        live: (0..threads).map(|_| Live::default()).collect(),
        publish_p99: false,
    };
    Ok((plan, cores))
}

/// The request (or, with `--mix`, the requests) for `target`, rendered once.
fn render_requests(cfg: &LoadConfig, target: &Target) -> RequestSet {
    let Some(mix) = &cfg.mix else {
        return RequestSet::single(render(
            cfg,
            &cfg.method,
            target,
            &cfg.headers,
            cfg.body.as_deref(),
        ));
    };
    let mut lines = Vec::with_capacity(mix.lines.len());
    for line in &mix.lines {
        let target = Target {
            path: line.path.clone(),
            ..target.clone()
        };
        // The line's own headers first; `-H` headers it does not set follow.
        let mut headers = line.headers.clone();
        for (k, v) in &cfg.headers {
            if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(k)) {
                headers.push((k.clone(), v.clone()));
            }
        }
        lines.push(render(
            cfg,
            &line.method,
            &target,
            &headers,
            line.body.as_deref(),
        ));
    }
    let weights: Vec<u32> = mix.lines.iter().map(|l| l.weight).collect();
    RequestSet::weighted(lines, &weights)
}

/// One request in the run's protocol: HTTP/1.1 bytes, or the HTTP/2
/// header block and body.
fn render(
    cfg: &LoadConfig,
    method: &str,
    target: &Target,
    headers: &[(String, String)],
    body: Option<&[u8]>,
) -> Rendered {
    let head = method.eq_ignore_ascii_case("HEAD");
    if cfg.http2 {
        return Rendered {
            bytes: Vec::new(),
            head,
            h2: Some(H2Request::new(method, target, headers, body)),
        };
    }
    Rendered {
        bytes: build_request(method, target, headers, body, cfg.keepalive),
        head,
        h2: None,
    }
}

fn preflight_handshake(
    tcp: TcpStream,
    config: Arc<rustls::ClientConfig>,
    host: &str,
    wait: Duration,
) -> anyhow::Result<Option<Vec<u8>>> {
    tcp.set_read_timeout(Some(wait))?;
    tcp.set_write_timeout(Some(wait))?;
    let name = rustls_pki_types::ServerName::try_from(host.to_string())?;
    let mut tls = rustls::StreamOwned::new(rustls::ClientConnection::new(config, name)?, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls.conn.alpn_protocol().map(<[u8]>::to_vec))
}
