//! The live status line: elapsed time, req/s over the last refresh, errors
//! and p99 so far, redrawn in place on a terminal. Drawn only when stdout
//! is a terminal (so a redirected or piped report stays clean) and not
//! switched off (`--quiet`). The report replaces it when the run ends.

use std::io::IsTerminal as _;
use std::sync::atomic::Ordering::Relaxed;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::plan::Live;
use crate::schedule::Phases;

/// How often the line is redrawn.
const REFRESH: Duration = Duration::from_millis(250);

pub(crate) struct Progress;

impl Progress {
    /// True when a status line should be drawn.
    pub fn wanted(asked: bool) -> bool {
        asked && std::io::stdout().is_terminal()
    }

    /// Redraws the line until every worker has finished. The p99 shown is
    /// the highest of the workers' own p99s (each refreshed once a second):
    /// exact with one thread, an upper bound with several.
    pub fn draw<T>(live: &[Live], workers: &[JoinHandle<T>], phases: Phases) {
        let bar =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stdout());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        let (mut last_count, mut last_at) = (0u64, Instant::now());
        while !workers.iter().all(|w| w.is_finished()) {
            std::thread::sleep(REFRESH);
            let now = Instant::now();
            let count: u64 = live.iter().map(|l| l.requests.load(Relaxed)).sum();
            let errors: u64 = live.iter().map(|l| l.errors.load(Relaxed)).sum();
            let p99 = live
                .iter()
                .map(|l| l.p99_us.load(Relaxed))
                .max()
                .unwrap_or(0);
            let rps = (count - last_count.min(count)) as f64 / (now - last_at).as_secs_f64();
            (last_count, last_at) = (count, now);
            let elapsed = now.saturating_duration_since(phases.start).as_secs_f64();
            let phase = if phases.measuring(now) { "" } else { "warmup " };
            let p99 = if p99 == 0 {
                "-".to_string()
            } else {
                format!("{:.2} ms", p99 as f64 / 1e3)
            };
            bar.set_message(format!(
                "{phase}{elapsed:6.1} s  {rps:>9.0} req/s  {count} requests  {errors} errors  p99 {p99}"
            ));
            bar.tick();
        }
        bar.finish_and_clear();
    }
}
