//! `ringway-bench policies`: what do the API gateway policies cost? Runs the
//! same keep-alive GET load against ringway with no policy, with each of
//! CORS, API key, throttle and JWT (RS256) alone and with all four, and
//! against nginx plain and with CORS fields + `limit_req`, in interleaved
//! repeated runs; writes `bench/results/policies.{md,json}`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::jwt::Rs256;
use crate::measure::{Bench, RunRecord};
use crate::policy_report::{PolicyReport, VariantResult};
use crate::proxy::{Programs, Target};
use crate::report::TargetSummary;
use crate::scenario::{Kind, SMALL_RESPONSE_BYTES, Tls};
use crate::suite::{self, Pinning, Scratch, Timing};
use crate::variants::{self, Variant};
use crate::{origin, process, setup};

#[derive(Debug, clap::Args)]
pub struct PoliciesArgs {
    /// About 1 minute: 1 run of 2 s per variant.
    #[arg(long)]
    quick: bool,
    /// Interleaved runs per variant (default 5; 1 with --quick).
    #[arg(long)]
    runs: Option<usize>,
    /// Measured duration of each run (default 5s; 2s with --quick).
    #[arg(long, value_parser = crate::parse_duration)]
    duration: Option<Duration>,
    /// Warm-up before each measured run, not counted (default 1s; 500ms with --quick).
    #[arg(long, value_parser = crate::parse_duration)]
    warmup: Option<Duration>,
    /// Keep-alive connections of the load generator.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Workers (threads / processes) of every proxy.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Threads of the load generator.
    #[arg(long, default_value_t = 1)]
    load_threads: usize,
    /// Do not pin: let the kernel place proxies, upstream and load generator.
    #[arg(long)]
    no_pin: bool,
    /// Only these variants (comma separated keys, e.g. ringway-plain,ringway-jwt).
    #[arg(long, value_delimiter = ',')]
    variants: Option<Vec<String>>,
    /// Where NAME.{md,json} go.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results"))]
    out_dir: PathBuf,
    /// File name stem of the report: NAME.md and NAME.json.
    #[arg(long, default_value = "policies", value_name = "NAME")]
    report_name: String,
}

/// Upper bound on `--connections`.
const MAX_CONNECTIONS: usize = 10_000;

pub fn run(args: PoliciesArgs) -> Result<()> {
    let started = Instant::now();
    let date = setup::utc_now();
    let default = Timing::defaults(args.quick, 5);
    let timing = Timing::resolve(args.runs, args.duration, args.warmup, default)?;
    if args.workers == 0 || args.load_threads == 0 {
        bail!("--workers and --load-threads must be at least 1");
    }
    if args.connections == 0 || args.connections > MAX_CONNECTIONS {
        bail!("--connections must be 1..={MAX_CONNECTIONS}");
    }
    suite::check_report_name(&args.report_name)?;
    let mut chosen = variants::all();
    if let Some(only) = &args.variants {
        for key in only {
            if !chosen.iter().any(|v| v.key == key) {
                let keys: Vec<_> = chosen.iter().map(|v| v.key).collect();
                bail!("--variants: unknown variant '{key}' ({})", keys.join(", "));
            }
        }
        chosen.retain(|v| only.iter().any(|k| k == v.key));
    }

    process::install_stop_handler();
    let nofile = setup::raise_nofile();
    eprintln!("bench: RLIMIT_NOFILE {nofile}");
    let (ringway, load) = setup::ringway_binaries()?;
    let nginx = if chosen.iter().any(|v| v.target() == Target::Nginx) {
        setup::ensure_program("nginx")
            .map_err(|e| eprintln!("bench: {e:#}; the nginx variants will be reported as failed"))
            .ok()
    } else {
        None
    };
    let machine = setup::Machine::describe(nginx.as_deref(), None);
    let ringway_source = setup::ringway_source(&ringway);
    let pinning = Pinning::plan(args.workers, args.no_pin);
    eprintln!("bench: pinning: {}", pinning.text);

    let scratch = Scratch::create(&ringway, &load)?;
    let rs256 = Rs256::generate(&scratch.dir.join("jwt"))?;
    let origins = origin::Origins::start(
        &scratch.gateway,
        &scratch.dir.join("origin"),
        &[SMALL_RESPONSE_BYTES],
        &pinning.load_cpus,
    )?;
    eprintln!("bench: origin on {}", origins.describe());
    let bench = Bench {
        programs: Programs {
            ringway: scratch.gateway.clone(),
            nginx,
            haproxy: None,
        },
        load: scratch.load.clone(),
        work_dir: scratch.dir.join("runs"),
        workers: args.workers,
        load_threads: args.load_threads,
        proxy_cpus: pinning.proxy_cpus.clone(),
        load_cpus: pinning.load_cpus.clone(),
        duration: timing.duration,
        warmup: timing.warmup,
        origins,
        post_body_file: None,
        tls: None,
        tls_error: None,
        count_syscalls: false,
        h2load: Err("not used by the policy benchmark".into()),
    };
    let kind = Kind::Load {
        connections: args.connections,
        keepalive: true,
        post_bytes: None,
        large_responses: false,
        open_loop: None,
        tls: Tls::Off,
    };

    // Cluster variants share a Redis started here (Debian's redis-server).
    let redis = if chosen.iter().any(Variant::needs_redis) {
        Some(crate::redis::Redis::start(&scratch.dir.join("redis"))?)
    } else {
        None
    };
    let redis_url = redis.as_ref().map(|r| r.url.clone());
    let setups: Vec<_> = chosen
        .iter()
        .map(|v| v.policies(&rs256, redis_url.as_deref()))
        .collect();
    let mut records: Vec<Vec<RunRecord>> = vec![Vec::new(); chosen.len()];
    let mut seq = 0;
    for run in 0..timing.runs {
        for ((v, policies), recs) in chosen.iter().zip(&setups).zip(&mut records) {
            seq += 1;
            eprint!(
                "bench: [{:>4.0}s] run {}/{} {:<17} ",
                started.elapsed().as_secs_f64(),
                run + 1,
                timing.runs,
                v.key
            );
            let mut r = bench.run(&kind, None, v.target(), policies, run, seq);
            fail_on_bad_responses(&mut r);
            eprintln!("{}", crate::one_line(&r));
            if process::stop_requested() {
                bail!("stopped by signal; every child stopped, no results written");
            }
            recs.push(r);
        }
    }

    let results: Vec<VariantResult> = chosen
        .iter()
        .zip(records)
        .map(|(v, recs)| VariantResult::new(v.clone(), v.config_text(&rs256), recs))
        .collect();
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| r.failed())
        .map(|r| r.variant.key)
        .collect();
    let report = PolicyReport {
        date,
        command: suite::command_line(),
        machine,
        pinning: pinning.text,
        quick: args.quick,
        runs: timing.runs,
        duration_s: timing.duration.as_secs_f64(),
        warmup_s: timing.warmup.as_secs_f64(),
        workers: args.workers,
        load_threads: args.load_threads,
        connections: args.connections,
        response_bytes: SMALL_RESPONSE_BYTES,
        fields: variants::request_fields("<token>"),
        ringway_source,
        jwt: rs256.description.clone(),
        elapsed_s: started.elapsed().as_secs_f64(),
        overheads: crate::policy_report::overheads(&results),
        versus_nginx: crate::policy_report::versus_nginx(&results),
        variants: results,
    };
    let md = report.markdown();
    let json = serde_json::to_string_pretty(&report)? + "\n";
    suite::write_reports(
        &args.out_dir,
        &args.report_name,
        &[("md", &md), ("json", &json)],
    )?;
    println!("{md}");
    eprintln!(
        "bench: wrote {}/{}.{{md,json}} in {:.0} s",
        args.out_dir.display(),
        args.report_name,
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        bail!(
            "failed measurement for {} (see the report)",
            failed.join(", ")
        );
    }
    Ok(())
}

/// A run whose load saw a non-2xx response or a client error measured
/// something else than the variant (a refused request costs less than a
/// forwarded one): it becomes a failure, with the counts, and no numbers.
fn fail_on_bad_responses(r: &mut RunRecord) {
    if r.failure.is_some() {
        return;
    }
    let bad = r.metrics.get("errors").copied().unwrap_or(f64::NAN);
    if bad == 0.0 {
        return;
    }
    let requests = r.metrics.get("requests").copied().unwrap_or(0.0);
    let why = if bad.is_nan() {
        "no error count in the load generator's report".to_string()
    } else {
        format!("{bad} of {requests} responses were not 2xx or failed")
    };
    r.metrics.clear();
    r.failure = Some(format!("{why}: {}", r.notes.join("; ")));
}

impl VariantResult {
    fn new(variant: Variant, config: String, records: Vec<RunRecord>) -> VariantResult {
        let summary = TargetSummary::from_records(variant.target(), records);
        VariantResult {
            variant,
            config,
            summary,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::Metrics;

    fn record(errors: f64) -> RunRecord {
        RunRecord {
            target: Target::Ringway,
            run: 0,
            metrics: Metrics::from([
                ("errors".to_string(), errors),
                ("requests".to_string(), 1000.0),
                ("req_per_cpu_s".to_string(), 90_000.0),
            ]),
            failure: None,
            notes: vec![r#"non-2xx responses: {"200":990,"429":10}"#.into()],
            tls_session: None,
        }
    }

    #[test]
    fn a_run_with_non_2xx_responses_is_a_failure_without_numbers() {
        let mut r = record(10.0);
        fail_on_bad_responses(&mut r);
        assert!(r.metrics.is_empty());
        let f = r.failure.unwrap();
        assert!(f.starts_with("10 of 1000 responses were not 2xx"), "{f}");
        assert!(f.contains("\"429\":10"), "{f}");
        let mut r = record(0.0);
        fail_on_bad_responses(&mut r);
        assert!(r.failure.is_none());
        assert_eq!(r.metrics.len(), 3);
    }
}
