//! `--svg FILE`: one picture of a run. Top: latency percentiles per second
//! and requests (and errors) per second over the run. Bottom: the whole
//! latency distribution as HdrHistogram's percentile curve, with the x axis
//! stretched logarithmically towards the tail (90%, 99%, 99.9%, ...).

use crate::report::{Report, SecondSummary};
use crate::svg::{Line, LineChart, Scale, Svg};

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 780.0;
const MARGIN: f64 = 20.0;
const HEADER: f64 = 56.0;
const PANEL_H: f64 = 230.0;
const GAP: f64 = 16.0;
/// Percentile curve: iteration steps per halving of the remaining tail.
const TICKS_PER_HALF_DISTANCE: u32 = 5;

const P50: &str = "#2f9e44";
const P99: &str = "#1971c2";
const P999: &str = "#d9480f";
const RPS: &str = "#495057";
const ERRORS: &str = "#c92a2a";

/// x position of quantile `q` on the distribution panel: 1 / (1 - q),
/// drawn on a log10 axis (so 90% → 10, 99% → 100, ...).
fn tail_x(q: f64) -> f64 {
    1.0 / (1.0 - q.min(0.999_999_9))
}

/// The SVG of a run's report.
pub fn plot(report: &Report, title: &str) -> String {
    let mut svg = Svg::new(WIDTH, HEIGHT);
    svg.text(MARGIN, 24.0, 16.0, true, &format!("ringway-load — {title}"));
    svg.text(
        MARGIN,
        42.0,
        11.0,
        false,
        &format!(
            "{} requests in {:.1} s ({:.0} req/s), {} errors; {} connections, {} thread(s); p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms",
            report.requests,
            report.duration.as_secs_f64(),
            report.rps(),
            report.errors.total(),
            report.connections,
            report.threads,
            report.latency_us(0.5) as f64 / 1e3,
            report.latency_us(0.99) as f64 / 1e3,
            report.latency_us(0.999) as f64 / 1e3,
        ),
    );
    let ms = |us: u64| us as f64 / 1e3;
    // A second's point sits at its middle; the last one may be partial.
    let at = |second: u64| second as f64 + 0.5;
    let series = &report.series;
    let latency = LineChart {
        title: "latency per second (ms)",
        x_label: "seconds since the start of measurement",
        y_label: "ms",
        x_scale: Scale::Linear,
        y_scale: Scale::Linear,
        x_ticks: None,
        lines: [
            ("p50", P50, (|s| s.p50_us) as fn(&SecondSummary) -> u64),
            ("p99", P99, |s| s.p99_us),
            ("p99.9", P999, |s| s.p99_9_us),
        ]
        .into_iter()
        .map(|(name, color, pick)| Line {
            name,
            color,
            // Seconds in which nothing completed have no percentiles.
            points: series
                .iter()
                .filter(|s| s.requests > 0)
                .map(|s| (at(s.second), ms(pick(s))))
                .collect(),
        })
        .collect(),
    };
    let half = (WIDTH - 2.0 * MARGIN - GAP) / 2.0;
    svg.line_panel(MARGIN, HEADER, half, PANEL_H, &latency);
    let throughput = LineChart {
        title: "completed requests and errors per second",
        x_label: "seconds since the start of measurement",
        y_label: "per second",
        x_scale: Scale::Linear,
        y_scale: Scale::Linear,
        x_ticks: None,
        lines: vec![
            Line {
                name: "requests",
                color: RPS,
                points: series
                    .iter()
                    .map(|s| (at(s.second), s.requests as f64))
                    .collect(),
            },
            Line {
                name: "errors",
                color: ERRORS,
                points: series
                    .iter()
                    .map(|s| (at(s.second), s.errors as f64))
                    .collect(),
            },
        ],
    };
    svg.line_panel(MARGIN + half + GAP, HEADER, half, PANEL_H, &throughput);

    let h = &report.latency;
    let mut curve = Vec::new();
    if !h.is_empty() {
        for v in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            let value = h.highest_equivalent(v.value_iterated_to());
            curve.push((tail_x(v.quantile_iterated_to()), ms(value)));
        }
    }
    let ticks = [
        (0.0, "0%"),
        (0.9, "90%"),
        (0.99, "99%"),
        (0.999, "99.9%"),
        (0.9999, "99.99%"),
        (0.99999, "99.999%"),
        (0.999999, "99.9999%"),
    ];
    let distribution = LineChart {
        title: "latency by percentile (whole run; HdrHistogram percentile curve)",
        x_label: "percentile (log scale towards the tail)",
        y_label: "ms",
        x_scale: Scale::Log10,
        y_scale: Scale::Linear,
        x_ticks: Some(
            ticks
                .iter()
                .map(|&(q, t)| (tail_x(q), t.to_string()))
                .collect(),
        ),
        lines: vec![Line {
            name: "latency",
            color: P99,
            points: curve,
        }],
    };
    svg.line_panel(
        MARGIN,
        HEADER + PANEL_H + GAP,
        WIDTH - 2.0 * MARGIN,
        HEIGHT - HEADER - PANEL_H - GAP - MARGIN,
        &distribution,
    );
    svg.finish()
}
