//! `ringway demo`: the embedded default. A built-in upstream, the gateway in
//! front of it and the bundled load generator, all on loopback, then a
//! report: the direct path (load generator → upstream) first, as the
//! ceiling, then the same load through ringway.

use crate::upstream::{self, OriginConfig};
use ringway_load::{LoadConfig, Report, Stop};
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// How long to drive each path.
    #[arg(short, long, default_value = "4s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Concurrent client connections.
    #[arg(short, long, default_value_t = 64)]
    pub connections: usize,
    /// Gateway workers (the upstream and the load generator get one thread each).
    #[arg(short, long, default_value_t = 1)]
    pub workers: usize,
    /// Skip the direct-path baseline.
    #[arg(long)]
    pub no_baseline: bool,
}

/// The route table the demo gateway serves, in the config file format.
fn demo_config(upstream: std::net::SocketAddr, workers: usize) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = {workers}\npin = false\nshutdown_timeout = \"2s\"\n\n\
         [[upstream]]\nname = \"demo\"\ntargets = [\"{upstream}\"]\n\n\
         [[route]]\npath = \"/\"\nupstream = \"demo\"\n\n\
         [[route]]\npath = \"/{{proxy+}}\"\nupstream = \"demo\"\n"
    )
}

fn drive(url: &str, args: &DemoArgs) -> anyhow::Result<Report> {
    let cfg = LoadConfig {
        connections: args.connections,
        stop: Stop::Duration(args.duration),
        threads: 1,
        warmup: Duration::from_millis(500),
        progress: true,
        ..LoadConfig::new(url)
    };
    ringway_load::run(&cfg)
}

pub fn run(args: &DemoArgs) -> i32 {
    match run_inner(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ringway demo: {e:#}");
            1
        }
    }
}

fn run_inner(args: &DemoArgs) -> anyhow::Result<()> {
    let origin = upstream::spawn(&OriginConfig {
        listen: "127.0.0.1:0".parse()?,
        threads: 1,
        body_size: 13,
    })?;
    let text = demo_config(origin, args.workers.max(1));
    let snapshot = crate::config::from_str(std::path::Path::new("<demo>"), &text)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let running = crate::runtime::start(Arc::new(snapshot)).map_err(|e| anyhow::anyhow!(e))?;
    let gateway = running.addrs[0];
    println!(
        "ringway demo: upstream {origin}, gateway {gateway} ({} worker(s)), {} connections, {:?} per run\n",
        args.workers.max(1),
        args.connections,
        args.duration
    );

    let direct = if args.no_baseline {
        None
    } else {
        println!("== direct: load generator -> upstream ==");
        let r = drive(&format!("http://{origin}/demo"), args)?;
        r.print(&mut std::io::stdout());
        Some(r)
    };
    println!("\n== through ringway: load generator -> ringway -> upstream ==");
    let proxied = drive(&format!("http://{gateway}/demo"), args)?;
    proxied.print(&mut std::io::stdout());
    if let Some(d) = direct {
        println!(
            "\nsummary: {:.0} req/s through ringway vs {:.0} req/s direct ({:.0}%); p99 {} us vs {} us",
            proxied.rps(),
            d.rps(),
            100.0 * proxied.rps() / d.rps().max(1.0),
            proxied.latency_us(0.99),
            d.latency_us(0.99)
        );
    }
    running.drain();
    running.wait();
    anyhow::ensure!(
        proxied.requests > 0 && proxied.errors.total() == 0,
        "the demo run saw errors: {:?}",
        proxied.errors
    );
    Ok(())
}
