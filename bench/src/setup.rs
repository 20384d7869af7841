//! Getting what the suite needs: nginx, haproxy and h2load from apt, the ringway
//! binaries from this workspace, enough file descriptors, and a description
//! of the machine for the report.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

/// Debian packages that provide each proxy, in order of preference.
const NGINX_PACKAGES: &[&str] = &["nginx-light", "nginx"];
const HAPROXY_PACKAGES: &[&str] = &["haproxy"];
const WRK_PACKAGES: &[&str] = &["wrk"];
const REDIS_PACKAGES: &[&str] = &["redis-server"];
const H2LOAD_PACKAGES: &[&str] = &["nghttp2-client"];

/// Finds `program` on PATH or in the sbin directories apt installs to.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"])
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}

/// Returns the path of `program`, installing it from apt when missing
/// (`apt-get update` once and retry if the first install fails).
pub fn ensure_program(program: &str) -> Result<PathBuf> {
    if let Some(p) = find_program(program) {
        return Ok(p);
    }
    let packages = match program {
        "nginx" => NGINX_PACKAGES,
        "haproxy" => HAPROXY_PACKAGES,
        "wrk" => WRK_PACKAGES,
        "redis-server" => REDIS_PACKAGES,
        "h2load" => H2LOAD_PACKAGES,
        other => bail!("no package known for {other}"),
    };
    for attempt in 0..2 {
        if attempt == 1 {
            eprintln!("bench: apt-get update");
            let _ = Command::new("apt-get").args(["update", "-q"]).status();
        }
        for pkg in packages {
            eprintln!("bench: {program} missing, apt-get install -y {pkg}");
            let ok = Command::new("apt-get")
                .args(["install", "-y", "-q", pkg])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .is_ok_and(|s| s.success());
            if ok && let Some(p) = find_program(program) {
                return Ok(p);
            }
        }
    }
    bail!("{program} is not installed and apt-get could not install it")
}

/// The `ringway` and `ringway-load` binaries next to this executable (same
/// target directory and profile). They are built with cargo when missing,
/// and also brought up to date when the bench runs under `cargo run` (a
/// no-op when nothing changed), so a stale gateway is never measured.
pub fn ringway_binaries() -> Result<(PathBuf, PathBuf)> {
    match built_binaries(&["ringway", "ringway-load"])?.as_slice() {
        [ringway, load] => Ok((ringway.clone(), load.clone())),
        _ => bail!("expected two binaries"),
    }
}

/// The `ringway-load` binary alone (built the same way; the gateway is not built).
pub fn load_binary() -> Result<PathBuf> {
    built_binaries(&["ringway-load"])?
        .pop()
        .context("no ringway-load binary")
}

/// The named workspace binaries next to this executable, built or brought
/// up to date with cargo as [`ringway_binaries`] describes.
fn built_binaries(names: &[&str]) -> Result<Vec<PathBuf>> {
    let exe = std::env::current_exe().context("cannot find the bench executable")?;
    let dir = exe
        .parent()
        .context("bench executable has no directory")?
        .to_path_buf();
    let paths: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    let missing = paths.iter().any(|p| !p.is_file());
    let packages: Vec<&str> = names.iter().flat_map(|n| ["-p", n]).collect();
    let shown = packages.join(" ");
    let under_cargo = std::env::var_os("CARGO").is_some();
    if missing || under_cargo {
        let profile_is_release = dir.ends_with("release");
        let release = if profile_is_release { " --release" } else { "" };
        if missing {
            eprintln!(
                "bench: binaries missing in {}; building them: cargo build{release} {shown}",
                dir.display()
            );
        } else {
            eprintln!("bench: bringing binaries up to date: cargo build{release} {shown}");
        }
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.arg("build");
        if profile_is_release {
            cmd.arg("--release");
        }
        cmd.args(&packages);
        cmd.current_dir(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .unwrap_or(Path::new(".")),
        );
        if let Some(target) = dir.parent() {
            cmd.env("CARGO_TARGET_DIR", target);
        }
        // What `cargo run` set for this package must not reach the build:
        // ring's build script tracks CARGO_MANIFEST_DIR, so an inherited
        // value made every bench start rebuild ring and all above it, twice.
        for (name, _) in std::env::vars_os() {
            let Some(name) = name.to_str() else { continue };
            if name.starts_with("CARGO_MANIFEST_")
                || name.starts_with("CARGO_PKG_")
                || matches!(
                    name,
                    "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE"
                )
            {
                cmd.env_remove(name);
            }
        }
        let status = cmd.status().context("cannot run cargo")?;
        if !status.success() {
            bail!("cargo build {shown} failed ({status})");
        }
    }
    for p in &paths {
        if !p.is_file() {
            bail!("{} not found after building", p.display());
        }
    }
    Ok(paths)
}

/// Raises this process's soft RLIMIT_NOFILE to the hard limit (children
/// inherit it). Returns the new soft limit.
pub fn raise_nofile() -> u64 {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur
    }
}

/// This process's soft RLIMIT_NOFILE.
pub fn nofile_limit() -> u64 {
    // SAFETY: getrlimit on a local struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        lim.rlim_cur
    }
}

/// CPUs this process may run on.
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// What the report says about the machine.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub nginx_version: String,
    pub haproxy_version: String,
}

impl Machine {
    pub fn describe(nginx: Option<&Path>, haproxy: Option<&Path>) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".into(), |(_, m)| m.trim().to_string());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".into(), |s| s.trim().to_string());
        let version = |p: Option<&Path>, arg: &str| {
            p.and_then(|p| Command::new(p).arg(arg).output().ok())
                .map(|o| {
                    let text = String::from_utf8_lossy(if o.stdout.is_empty() {
                        &o.stderr
                    } else {
                        &o.stdout
                    })
                    .to_string();
                    text.lines().next().unwrap_or("").trim().to_string()
                })
                .unwrap_or_else(|| "not available".into())
        };
        Machine {
            nproc: cpu_count(),
            cpu_model,
            kernel,
            nginx_version: version(nginx, "-v"),
            haproxy_version: version(haproxy, "-v"),
        }
    }
}

/// Which ringway was measured: the binary's modification time and the
/// workspace's git HEAD (with a note when engine/ has uncommitted changes).
pub fn ringway_source(binary: &Path) -> String {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."));
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(workspace)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(&["status", "--porcelain", "--", "engine"]).is_some_and(|s| !s.is_empty());
    let built = std::fs::metadata(binary)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or_else(|| "unknown".into(), |d| format_utc(d.as_secs()));
    format!(
        "binary built {built}, tree at {head}{}",
        if dirty {
            " with uncommitted engine/ changes"
        } else {
            ""
        }
    )
}

/// The current UTC time as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc_now() -> String {
    format_utc(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}

/// The engine's calendar module, compiled in: this binary drives ringway
/// over sockets and does not link the engine.
#[path = "../../engine/src/calendar.rs"]
#[allow(dead_code)]
mod calendar;

/// Seconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC`.
fn format_utc(secs: u64) -> String {
    let t = calendar::DateTime::from_unix(secs);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(super::format_utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(super::format_utc(1_798_761_599), "2026-12-31 23:59:59 UTC");
    }
}
