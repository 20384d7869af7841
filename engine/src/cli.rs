//! The `ringway` command line: serve, check, demo, upstream.

use crate::config;
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "ringway",
    version,
    about = "A thread-per-core API gateway and reverse proxy on io_uring"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Config file (TOML).
        #[arg(short, long)]
        config: PathBuf,
        /// Override `[server] driver`: auto, io_uring or epoll.
        #[arg(long)]
        driver: Option<String>,
    },
    /// Validate a config file and print what it would serve (exit 0 valid, 2 invalid).
    Check {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Print the compiled route table of a config file (same as `check`).
    Routes {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Ask the running `ringway serve -c FILE` to reload FILE (sends it SIGHUP).
    Reload {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Built-in upstream + gateway + load generator on loopback, with a report.
    Demo(crate::demo::DemoArgs),
    /// Run only the built-in fast origin server (the benchmarks' common upstream).
    Upstream {
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: std::net::SocketAddr,
        /// Threads (each with its own SO_REUSEPORT listener).
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Response body size in bytes.
        #[arg(long, default_value_t = 13)]
        body_size: usize,
    },
}

fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// Entry point of the binary; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Serve { config, driver } => serve(config, driver),
        Command::Reload { config } => reload(&config),
        Command::Check { config } | Command::Routes { config } => match config::load(&config) {
            Ok(s) => {
                print!("{}", s.describe());
                println!("{}: OK", config.display());
                0
            }
            Err(e) => {
                eprintln!("{e}");
                2
            }
        },
        Command::Demo(args) => crate::demo::run(&args),
        Command::Upstream {
            listen,
            threads,
            body_size,
        } => {
            match crate::upstream::spawn(&crate::upstream::OriginConfig {
                listen,
                threads,
                body_size,
            }) {
                Ok(addr) => {
                    tracing::info!("origin listening on {addr}");
                    loop {
                        std::thread::park();
                    }
                }
                Err(e) => {
                    eprintln!("ringway upstream: {e}");
                    1
                }
            }
        }
    }
}

fn serve(path: PathBuf, driver: Option<String>) -> i32 {
    let mut snap = match config::load(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    if let Some(d) = driver {
        snap.driver = match d.as_str() {
            "auto" => crate::snapshot::DriverChoice::Auto,
            "io_uring" => crate::snapshot::DriverChoice::IoUring,
            "epoll" => crate::snapshot::DriverChoice::Epoll,
            other => {
                eprintln!("--driver: unknown driver {other:?} (use auto, io_uring or epoll)");
                return 2;
            }
        };
    }
    match crate::runtime::start(Arc::new(snap)) {
        Ok(running) => running.wait_with_signals(),
        Err(e) => {
            eprintln!("ringway: {e}");
            1
        }
    }
}

/// Finds every `ringway serve` whose config file is `path` and sends it SIGHUP.
/// The file is checked first, so a broken file is reported here too.
fn reload(path: &std::path::Path) -> i32 {
    if let Err(e) = config::load(path) {
        eprintln!("{e}");
        return 2;
    }
    let want = match std::fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return 2;
        }
    };
    let mut signalled = 0;
    let me = std::process::id();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let Some(serve) = args.iter().position(|a| *a == b"serve") else {
            continue;
        };
        let Some(cfg) = args[serve..]
            .windows(2)
            .find(|w| w[0] == b"-c" || w[0] == b"--config")
            .map(|w| w[1])
        else {
            continue;
        };
        let cfg = std::path::Path::new(std::str::from_utf8(cfg).unwrap_or_default());
        let cwd = std::fs::read_link(entry.path().join("cwd")).unwrap_or_default();
        if std::fs::canonicalize(cwd.join(cfg)).is_ok_and(|p| p == want)
            && crate::sys::send_sighup(pid)
        {
            println!("sent SIGHUP to ringway (pid {pid})");
            signalled += 1;
        }
    }
    if signalled == 0 {
        eprintln!("no running `ringway serve -c {}` found", path.display());
        return 1;
    }
    0
}
