//! `--compare URL_A URL_B`: an interleaved A/B test. Rounds alternate the
//! two targets with the same settings (A B, then B A, and so on, so a
//! steady drift of the machine favours neither), and the verdict is the
//! median of the per-round ratios B/A, with their min and max. A spread
//! wider than the difference from 1 means the runs cannot tell A from B.

use std::io::{self, Write};

use serde_json::{Value, json};

use crate::{LoadConfig, Report};

/// One side of one round.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Side {
    pub rps: f64,
    pub requests: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
}

impl Side {
    fn of(report: &Report) -> Side {
        Side {
            rps: report.rps(),
            requests: report.requests,
            errors: report.errors.total(),
            p50_us: report.latency_us(0.5),
            p99_us: report.latency_us(0.99),
        }
    }
}

/// The outcome of an A/B comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub url_a: String,
    pub url_b: String,
    /// (A, B) per round, in order.
    pub rounds: Vec<(Side, Side)>,
}

/// The numbers the verdict rests on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub median_a: f64,
    pub median_b: f64,
    /// Median of the per-round ratios B/A of req/s.
    pub ratio: f64,
    pub ratio_min: f64,
    pub ratio_max: f64,
    /// The ratios' spread (max − min) exceeds the difference |ratio − 1|.
    pub inconclusive: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

impl Comparison {
    /// Runs `rounds` rounds of `base` against each URL. `each` sees every
    /// run as it ends: round (0-based), side (`'A'` or `'B'`), result.
    pub fn run(
        base: &LoadConfig,
        url_a: &str,
        url_b: &str,
        rounds: usize,
        mut each: impl FnMut(usize, char, &Side),
    ) -> anyhow::Result<Comparison> {
        if rounds == 0 {
            anyhow::bail!("--rounds must be at least 1");
        }
        let config = |url: &str| LoadConfig {
            urls: vec![url.to_string()],
            ..base.clone()
        };
        let (cfg_a, cfg_b) = (config(url_a), config(url_b));
        // Both must answer before the first round, not halfway through.
        crate::run::check_reachable(&cfg_a)?;
        crate::run::check_reachable(&cfg_b)?;
        let mut out = Comparison {
            url_a: url_a.to_string(),
            url_b: url_b.to_string(),
            rounds: Vec::with_capacity(rounds),
        };
        for round in 0..rounds {
            let order = if round % 2 == 0 {
                ['A', 'B']
            } else {
                ['B', 'A']
            };
            let (mut a, mut b) = (None, None);
            for side in order {
                let cfg = if side == 'A' { &cfg_a } else { &cfg_b };
                let result = Side::of(&crate::run(cfg)?);
                each(round, side, &result);
                *(if side == 'A' { &mut a } else { &mut b }) = Some(result);
            }
            if let (Some(a), Some(b)) = (a, b) {
                out.rounds.push((a, b));
            }
        }
        Ok(out)
    }

    /// Per-round ratios B/A of req/s (a round where A did nothing counts as 0).
    pub fn ratios(&self) -> Vec<f64> {
        self.rounds
            .iter()
            .map(|(a, b)| if a.rps > 0.0 { b.rps / a.rps } else { 0.0 })
            .collect()
    }

    pub fn verdict(&self) -> Verdict {
        let ratios = self.ratios();
        let ratio = median(ratios.clone());
        let ratio_min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let ratio_max = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Verdict {
            median_a: median(self.rounds.iter().map(|(a, _)| a.rps).collect()),
            median_b: median(self.rounds.iter().map(|(_, b)| b.rps).collect()),
            ratio,
            ratio_min,
            ratio_max,
            inconclusive: ratio_max - ratio_min > (ratio - 1.0).abs(),
        }
    }

    /// One line for one run, as printed while the comparison goes on.
    pub fn round_line(round: usize, side: char, s: &Side) -> String {
        format!(
            "round {:>2}  {side}  {:>10.1} req/s  p50 {:>8.2} ms  p99 {:>8.2} ms  {} errors",
            round + 1,
            s.rps,
            s.p50_us as f64 / 1e3,
            s.p99_us as f64 / 1e3,
            s.errors
        )
    }

    /// The summary after the rounds.
    pub fn print(&self, out: &mut impl Write) -> io::Result<()> {
        let v = self.verdict();
        let spread = |pick: fn(&(Side, Side)) -> f64| {
            let xs: Vec<f64> = self.rounds.iter().map(pick).collect();
            (
                xs.iter().copied().fold(f64::INFINITY, f64::min),
                xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            )
        };
        let (a_min, a_max) = spread(|r| r.0.rps);
        let (b_min, b_max) = spread(|r| r.1.rps);
        writeln!(
            out,
            "A  {:>10.1} req/s median  ({a_min:.1}–{a_max:.1})  {}",
            v.median_a, self.url_a
        )?;
        writeln!(
            out,
            "B  {:>10.1} req/s median  ({b_min:.1}–{b_max:.1})  {}",
            v.median_b, self.url_b
        )?;
        writeln!(
            out,
            "B/A  {:.3}  (min {:.3}, max {:.3} over {} rounds; median of per-round ratios)",
            v.ratio,
            v.ratio_min,
            v.ratio_max,
            self.rounds.len()
        )?;
        if v.inconclusive {
            writeln!(
                out,
                "warning: the ratios spread over {:.3} (max − min), more than B differs from A ({:.3}): \
                 these rounds cannot tell A from B; run more or longer rounds on a quieter machine",
                v.ratio_max - v.ratio_min,
                (v.ratio - 1.0).abs()
            )?;
        }
        Ok(())
    }

    pub fn to_json(&self) -> Value {
        let v = self.verdict();
        let side = |url: &str, median: f64, pick: fn(&(Side, Side)) -> Side| {
            json!({
                "url": url,
                "median_rps": median,
                "rounds": self.rounds.iter().map(|r| {
                    let s = pick(r);
                    json!({
                        "rps": s.rps,
                        "requests": s.requests,
                        "errors": s.errors,
                        "p50_us": s.p50_us,
                        "p99_us": s.p99_us,
                    })
                }).collect::<Vec<_>>(),
            })
        };
        json!({
            "a": side(&self.url_a, v.median_a, |r| r.0),
            "b": side(&self.url_b, v.median_b, |r| r.1),
            "ratio_b_over_a": {
                "median": v.ratio,
                "min": v.ratio_min,
                "max": v.ratio_max,
                "rounds": self.ratios(),
            },
            "inconclusive": v.inconclusive,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(rps: f64) -> Side {
        Side {
            rps,
            requests: 0,
            errors: 0,
            p50_us: 0,
            p99_us: 0,
        }
    }

    #[test]
    fn verdict_and_warning() {
        let c = Comparison {
            url_a: "a".into(),
            url_b: "b".into(),
            rounds: vec![
                (side(100.0), side(200.0)),
                (side(100.0), side(190.0)),
                (side(110.0), side(220.0)),
            ],
        };
        let v = c.verdict();
        assert_eq!(v.ratio, 2.0);
        assert!((v.ratio_min - 1.9).abs() < 1e-9 && v.ratio_max == 2.0);
        assert!(!v.inconclusive);
        let noisy = Comparison {
            rounds: vec![
                (side(100.0), side(80.0)),
                (side(100.0), side(130.0)),
                (side(100.0), side(105.0)),
            ],
            ..c
        };
        assert!(noisy.verdict().inconclusive);
        let mut text = Vec::new();
        noisy.print(&mut text).unwrap();
        assert!(String::from_utf8(text).unwrap().contains("warning:"));
    }
}
