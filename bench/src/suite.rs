//! What every mode of the bench sets up the same way: how long and how often
//! each run goes, which CPUs the proxy and the load get, a scratch directory
//! with copies of the binaries, and the report files at the end.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

/// Upper bounds on the knobs, so a typo cannot run for a day.
const MAX_RUNS: usize = 50;
const MAX_DURATION: Duration = Duration::from_secs(600);

/// Runs per target and the length of each.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub runs: usize,
    /// Measured part of a run.
    pub duration: Duration,
    /// Load before the measured part, not counted.
    pub warmup: Duration,
}

impl Timing {
    /// The defaults of every mode: 1 run of 2 s after 500 ms of warm-up with
    /// `--quick`, else `full_runs` runs of 5 s after 1 s.
    pub fn defaults(quick: bool, full_runs: usize) -> Timing {
        if quick {
            Timing {
                runs: 1,
                duration: Duration::from_secs(2),
                warmup: Duration::from_millis(500),
            }
        } else {
            Timing {
                runs: full_runs,
                duration: Duration::from_secs(5),
                warmup: Duration::from_secs(1),
            }
        }
    }

    /// The command line's values over the mode's defaults (`quick` or
    /// `full`), checked against the upper bounds.
    pub fn resolve(
        runs: Option<usize>,
        duration: Option<Duration>,
        warmup: Option<Duration>,
        default: Timing,
    ) -> Result<Timing> {
        let t = Timing {
            runs: runs.unwrap_or(default.runs),
            duration: duration.unwrap_or(default.duration),
            warmup: warmup.unwrap_or(default.warmup),
        };
        if t.runs == 0 || t.runs > MAX_RUNS {
            bail!("--runs must be 1..={MAX_RUNS}");
        }
        if t.duration.is_zero() || t.duration > MAX_DURATION || t.warmup > MAX_DURATION {
            bail!(
                "--duration must be over 0 and at most {MAX_DURATION:?}; --warmup at most {MAX_DURATION:?}"
            );
        }
        Ok(t)
    }
}

/// Which CPUs the proxy runs on, and which the load generator and origins.
pub struct Pinning {
    /// Empty: not pinned.
    pub proxy_cpus: Vec<usize>,
    pub load_cpus: Vec<usize>,
    /// One line for the report.
    pub text: String,
}

impl Pinning {
    /// The proxy on the first `workers` CPUs (leaving at least one), the
    /// rest for the load; nothing pinned with `no_pin` or a single CPU.
    pub fn plan(workers: usize, no_pin: bool) -> Pinning {
        let nproc = crate::setup::cpu_count();
        if no_pin || nproc < 2 {
            let why = if no_pin {
                "off (--no-pin)"
            } else {
                "off (fewer than 2 CPUs)"
            };
            return Pinning {
                proxy_cpus: Vec::new(),
                load_cpus: Vec::new(),
                text: why.to_string(),
            };
        }
        let n_proxy = workers.min(nproc - 1);
        let proxy_cpus: Vec<usize> = (0..n_proxy).collect();
        let load_cpus: Vec<usize> = (n_proxy..nproc).collect();
        let text = format!(
            "proxy on CPU {}; load generator and upstream on CPU {} (set with sched_setaffinity before exec)",
            cpu_list(&proxy_cpus),
            cpu_list(&load_cpus)
        );
        Pinning {
            proxy_cpus,
            load_cpus,
            text,
        }
    }
}

fn cpu_list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// A scratch directory, removed when dropped (kept with `RINGWAY_BENCH_KEEP`
/// set), holding copies of the gateway and the load generator.
pub struct Scratch {
    pub dir: PathBuf,
    /// The copy of `ringway`.
    pub gateway: PathBuf,
    /// The copy of `ringway-load`.
    pub load: PathBuf,
}

impl Scratch {
    /// Creates the directory and copies the binaries into it. The directory
    /// and the copies carry names without "ringway", so another session's
    /// `pkill ringway` cleanup does not stop the runs (runs stopped from
    /// outside anyway are retried).
    pub fn create(ringway: &Path, load: &Path) -> Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("rwbench-{}", std::process::id()));
        let bin_dir = dir.join("bin");
        std::fs::create_dir_all(&bin_dir)
            .with_context(|| format!("cannot create {}", bin_dir.display()))?;
        // From here on, Drop cleans up even if a copy fails.
        let scratch = Scratch {
            dir,
            gateway: bin_dir.join("rw-gateway"),
            load: bin_dir.join("rw-load"),
        };
        std::fs::copy(ringway, &scratch.gateway)
            .with_context(|| format!("cannot copy {}", ringway.display()))?;
        std::fs::copy(load, &scratch.load)
            .with_context(|| format!("cannot copy {}", load.display()))?;
        Ok(scratch)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("RINGWAY_BENCH_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Checks that `name` is a plain file name stem (letters, digits, - and _).
pub fn check_report_name(name: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("--report-name must be a plain file name stem (letters, digits, - and _)");
    }
    Ok(())
}

/// Writes `NAME.EXT` into `out_dir` for each `(EXT, text)`.
pub fn write_reports(out_dir: &Path, name: &str, files: &[(&str, &str)]) -> Result<()> {
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    for (ext, text) in files {
        let p = out_dir.join(format!("{name}.{ext}"));
        std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}

/// The command line as a `cargo run` of this mode, for the report.
pub fn command_line() -> String {
    format!(
        "cargo run --release -p ringway-bench -- {}",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    )
}
