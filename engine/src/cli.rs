//! The `ringway` command line: serve, check, demo, upstream.

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
        #[command(flatten)]
        inputs: Inputs,
        /// Override `[server] driver`: auto, io_uring or epoll.
        #[arg(long)]
        driver: Option<String>,
    },
    /// Validate a config file and print what it would serve (exit 0 valid, 2 invalid).
    Check {
        #[command(flatten)]
        inputs: Inputs,
    },
    /// Print the compiled route table of a config file (same as `check`).
    Routes {
        #[command(flatten)]
        inputs: Inputs,
    },
    /// Write the config as an OpenAPI 3.0 document with the Amazon API
    /// Gateway extensions (YAML; `x-ringway-*` for what AWS has no word for).
    ExportOpenapi {
        #[command(flatten)]
        inputs: Inputs,
        /// Write JSON instead of YAML.
        #[arg(long)]
        json: bool,
    },
    /// Ask the running `ringway serve -c FILE` to reload FILE (sends it SIGHUP).
    Reload {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Per-day usage and the quota left of one API key (from Redis in
    /// cluster mode, else from the running gateway's admin listener).
    Usage {
        #[arg(short, long)]
        config: PathBuf,
        /// The API key's name (`[[api_key]] name`).
        #[arg(long)]
        key: String,
        /// First day, YYYY-MM-DD (default: six days before `--to`).
        #[arg(long)]
        from: Option<String>,
        /// Last day, YYYY-MM-DD (default: today, UTC).
        #[arg(long)]
        to: Option<String>,
        /// Print JSON (as `/usage` does) instead of text.
        #[arg(long)]
        json: bool,
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

/// What a config is read from: a TOML file, API Gateway exports, or both.
#[derive(clap::Args)]
struct Inputs {
    /// Config file (TOML).
    #[arg(short, long, required_unless_present = "openapi")]
    config: Option<PathBuf>,
    /// An Amazon API Gateway export (OpenAPI 3 / Swagger 2, JSON or YAML) to
    /// serve, alone or with the TOML config; may be given more than once.
    #[arg(long)]
    openapi: Vec<PathBuf>,
    /// Unsupported OpenAPI content is an error, not a warning.
    #[arg(long)]
    strict: bool,
}

impl Inputs {
    fn sources(&self) -> crate::snapshot::Sources {
        crate::snapshot::Sources {
            config: self.config.clone(),
            openapi: self.openapi.clone(),
            strict: self.strict,
        }
    }

    /// The compiled config, its warnings logged; or the errors printed and exit code 2.
    fn load(&self) -> Result<crate::snapshot::Snapshot, i32> {
        match crate::openapi::load(&self.sources()) {
            Ok((snap, warnings)) => {
                for w in &warnings {
                    tracing::warn!("{w}");
                }
                Ok(snap)
            }
            Err(e) => {
                eprintln!("{e}");
                Err(2)
            }
        }
    }
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
        Command::Serve { inputs, driver } => serve(&inputs, driver),
        Command::Reload { config } => reload(&config),
        Command::Check { inputs } | Command::Routes { inputs } => check(&inputs),
        Command::ExportOpenapi { inputs, json } => {
            match crate::openapi::load_model(&inputs.sources(), None, &Default::default()) {
                Ok((snap, file, _)) => {
                    let base = snap.source.parent().unwrap_or(std::path::Path::new("."));
                    let doc = crate::openapi::export::document(&file, base);
                    if json {
                        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
                    } else {
                        print!("{}", crate::openapi::export::yaml(&doc));
                    }
                    0
                }
                Err(e) => {
                    eprintln!("{e}");
                    2
                }
            }
        }
        Command::Usage {
            config,
            key,
            from,
            to,
            json,
        } => usage(&config, &key, (from.as_deref(), to.as_deref()), json),
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

/// `ringway check`: the route table and every OpenAPI item not served as written.
fn check(inputs: &Inputs) -> i32 {
    match crate::openapi::load(&inputs.sources()) {
        Ok((s, warnings)) => {
            print!("{}", s.describe());
            if !warnings.is_empty() {
                println!(
                    "warnings (what is not served as written; unsupported items are errors with --strict):"
                );
                for w in &warnings {
                    println!("  {w}");
                }
            }
            println!("{}: OK", s.source.display());
            0
        }
        Err(e) => {
            eprintln!("{e}");
            2
        }
    }
}

/// `ringway usage`: in cluster mode asks Redis itself; otherwise the counts
/// live in the running gateway, so it asks that gateway's admin listener.
fn usage(
    path: &std::path::Path,
    key: &str,
    (from, to): (Option<&str>, Option<&str>),
    json: bool,
) -> i32 {
    use crate::observe::usage::{report, today};
    let sources = crate::snapshot::Sources {
        config: Some(path.to_path_buf()),
        ..Default::default()
    };
    let snap = match crate::openapi::load(&sources).map(|(s, _)| s) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let (day, unix) = today();
    let days = match crate::cluster::usage::Days::parse(from, to, day) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("ringway usage: {e}");
            return 2;
        }
    };
    if snap.cluster.is_some() {
        return match report(&snap, key, days, unix) {
            Ok(r) => {
                print!("{}", if json { r.to_json() } else { r.to_text() });
                0
            }
            Err((_, message)) => {
                eprintln!("ringway usage: {message}");
                1
            }
        };
    }
    let Some(admin) = snap.admin else {
        eprintln!(
            "ringway usage: {} has no [cluster] and no [server.admin]: the counts live in the running gateway, which needs an admin listener to report them",
            path.display()
        );
        return 2;
    };
    let target = format!(
        "/usage?key={key}&from={}&to={}",
        crate::cluster::usage::day_name(days.from),
        crate::cluster::usage::day_name(days.to)
    );
    match admin_get(admin, &target) {
        Ok((200, body)) if json => {
            print!("{body}");
            0
        }
        Ok((200, body)) => match serde_json::from_str::<serde_json::Value>(&body) {
            Ok(v) => {
                print!("{}", usage_text(&v));
                0
            }
            Err(_) => {
                print!("{body}");
                0
            }
        },
        Ok((status, body)) => {
            eprintln!("ringway usage: {status} from {admin}: {}", body.trim());
            1
        }
        Err(e) => {
            eprintln!("ringway usage: the gateway's admin listener at {admin} did not answer: {e}");
            1
        }
    }
}

/// A `/usage` JSON document as the text `ringway usage` prints.
fn usage_text(v: &serde_json::Value) -> String {
    use std::fmt::Write;
    let mut s = format!(
        "key {} (plan {}), from {}\n",
        v["key"], v["plan"], v["source"]
    )
    .replace('"', "");
    for d in v["days"].as_array().into_iter().flatten() {
        let _ = writeln!(s, "{}  {}", d["date"].as_str().unwrap_or("?"), d["used"]);
    }
    match v["quota"].as_object() {
        Some(q) => {
            let _ = writeln!(
                s,
                "quota: {} of {} left this {}",
                q["remaining"],
                q["limit"],
                q["period"].as_str().unwrap_or("?")
            );
        }
        None => s.push_str("quota: none\n"),
    }
    s
}

/// A plain HTTP/1.1 GET to the admin listener: status and body.
fn admin_get(addr: std::net::SocketAddr, target: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

fn serve(inputs: &Inputs, driver: Option<String>) -> i32 {
    let mut snap = match inputs.load() {
        Ok(s) => s,
        Err(code) => return code,
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
    let sources = crate::snapshot::Sources {
        config: Some(path.to_path_buf()),
        ..Default::default()
    };
    if let Err(e) = crate::openapi::load(&sources) {
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
