//! `ringway demo`: the embedded default. A built-in upstream, the gateway in
//! front of it and a load generator, all on loopback, then a report.

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// How long to drive the gateway.
    #[arg(short, long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub duration: std::time::Duration,
    /// Concurrent client connections.
    #[arg(short, long, default_value_t = 64)]
    pub connections: usize,
    /// Gateway workers (0 = one per core).
    #[arg(short, long, default_value_t = 0)]
    pub workers: usize,
}

pub fn run(_args: &DemoArgs) -> i32 {
    eprintln!("demo: not wired yet");
    1
}
