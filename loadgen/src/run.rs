//! The control thread: check the configuration, build the shared plan, start
//! the workers, draw progress, merge their tallies into a [`Report`].

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::net::TcpStream;
use std::sync::{Arc, Barrier, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::codec::build_request;
use crate::report::{Report, Tally};
use crate::schedule::{Abort, Budget, Phases};
use crate::target::Target;
use crate::transport::{Connector, client_config};
use crate::worker::{Live, Plan, StartLine, TargetPlan, run_worker};
use crate::{LoadConfig, Stop};

/// Longest wait for the pre-flight connect to each target.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs a load test and returns its report. Errors are about the setup
/// (bad URL, nothing listening, bad option); once the load starts, failures
/// are counted in the report, never returned. Blocks the calling thread
/// (which draws progress, if asked) while its own worker threads run; do
/// not call it from inside a monoio runtime thread that must keep serving.
pub fn run(cfg: &LoadConfig) -> anyhow::Result<Report> {
    validate(cfg)?;
    let (plan, cores) = build_plan(cfg)?;
    let plan = Arc::new(plan);
    let start = Arc::new(StartLine {
        barrier: Barrier::new(plan.threads + 1),
        phases: OnceLock::new(),
    });

    let mut workers: Vec<JoinHandle<anyhow::Result<Tally>>> = Vec::with_capacity(plan.threads);
    for index in 0..plan.threads {
        let (plan, start) = (plan.clone(), start.clone());
        let core = cores.as_ref().map(|c| c[index % c.len()]);
        let spawned = std::thread::Builder::new()
            .name(format!("ringway-load-{index}"))
            .spawn(move || run_worker(plan, index, core, start));
        match spawned {
            Ok(handle) => workers.push(handle),
            // The barrier counts on every worker; without this one nobody could pass it.
            Err(e) => panic!("cannot spawn worker thread {index}: {e}"),
        }
    }
    start.barrier.wait();
    let duration = match cfg.stop {
        Stop::Duration(d) => Some(d),
        Stop::Requests(_) => None,
    };
    let phases = Phases::new(Instant::now(), cfg.warmup, duration);
    start.phases.set(phases).expect("phases are set once");
    start.barrier.wait();

    if cfg.progress && std::io::stderr().is_terminal() {
        show_progress(&plan, &workers, phases);
    }
    let mut total = Tally::new();
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
    })
}

fn validate(cfg: &LoadConfig) -> anyhow::Result<()> {
    if cfg.urls.is_empty() {
        bail!("no URL given");
    }
    if cfg.connections == 0 {
        bail!("connections must be at least 1");
    }
    if cfg.pipeline == 0 {
        bail!("pipeline must be at least 1");
    }
    if cfg.streams == 0 {
        bail!("streams must be at least 1");
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

fn build_plan(cfg: &LoadConfig) -> anyhow::Result<(Plan, Option<Vec<core_affinity::CoreId>>)> {
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
    let mut plans = Vec::with_capacity(targets.len());
    for target in &targets {
        // One connect attempt, so a typo'd port fails now, not as a run full
        // of errors. Of the resolved addresses, the first that answers is used.
        let wait = PREFLIGHT_TIMEOUT.min(cfg.timeout);
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
        let one = build_request(
            &cfg.method,
            target,
            &cfg.headers,
            cfg.body.as_deref(),
            cfg.keepalive,
        );
        let pipeline = if cfg.keepalive { cfg.pipeline } else { 1 };
        let h2 = cfg.http2.then(|| {
            crate::h2::H2Request::new(&cfg.method, target, &cfg.headers, cfg.body.as_deref())
        });
        plans.push(TargetPlan {
            connector,
            request_len: one.len(),
            requests: if h2.is_some() {
                Vec::new()
            } else {
                one.repeat(pipeline)
            },
            head: cfg.method.eq_ignore_ascii_case("HEAD"),
            h2,
        });
    }

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
        targets: plans,
        connections: cfg.connections,
        threads,
        pipeline: cfg.pipeline,
        streams: cfg.streams,
        keepalive: cfg.keepalive,
        timeout: cfg.timeout,
        rate: cfg.rate,
        budget: match cfg.stop {
            Stop::Requests(n) => Some(Budget::new(n)),
            Stop::Duration(_) => None,
        },
        abort: Abort::default(),
        live: (0..threads).map(|_| Live::default()).collect(),
    };
    Ok((plan, cores))
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

/// Redraws a one-line status on stderr until every worker has finished.
fn show_progress(plan: &Plan, workers: &[JoinHandle<anyhow::Result<Tally>>], phases: Phases) {
    use std::sync::atomic::Ordering::Relaxed;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let (mut last_count, mut last_at) = (0u64, Instant::now());
    while !workers.iter().all(|w| w.is_finished()) {
        std::thread::sleep(Duration::from_millis(250));
        let now = Instant::now();
        let count: u64 = plan.live.iter().map(|l| l.requests.load(Relaxed)).sum();
        let errors: u64 = plan.live.iter().map(|l| l.errors.load(Relaxed)).sum();
        let rps = (count - last_count.min(count)) as f64 / (now - last_at).as_secs_f64();
        (last_count, last_at) = (count, now);
        let phase = if phases.measuring(now) {
            ""
        } else {
            "warmup, "
        };
        bar.set_message(format!(
            "{phase}{rps:.0} req/s, {count} requests, {errors} errors"
        ));
        bar.tick();
    }
    bar.finish_and_clear();
}
