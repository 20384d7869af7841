//! The `compare` report's plot: one small panel per scenario and metric,
//! each with its own y scale, grouped bars per target with min–max
//! whiskers. Drawn with the shared SVG writer of `ringway_load::svg`.

use ringway_load::svg::{Bar, PANEL_H, PANEL_W, Svg};

use crate::proxy::Target;
use crate::report::Report;
use crate::scenario::Kind;

const GAP: f64 = 16.0;
const TOP: f64 = 84.0;
const ROW_TITLE_H: f64 = 26.0;
const LEFT: f64 = 20.0;
const MIN_WIDTH: f64 = 960.0;

fn color(t: Target) -> &'static str {
    match t {
        Target::Ringway => "#d9480f",
        Target::Nginx => "#2f9e44",
        Target::Haproxy => "#1971c2",
        Target::Direct => "#868e96",
    }
}

/// The plot: row 1 requests per proxy CPU-second, row 2 p99 latency, row 3
/// proxy RSS per idle connection.
pub fn plot(report: &Report) -> String {
    let load: Vec<_> = report
        .scenarios
        .iter()
        .filter(|s| matches!(s.scenario.kind, Kind::Load { .. }))
        .collect();
    let idle: Vec<_> = report
        .scenarios
        .iter()
        .filter(|s| matches!(s.scenario.kind, Kind::Idle { .. }))
        .collect();
    let cols = load.len().max(idle.len()).max(1);
    let width = (LEFT * 2.0 + cols as f64 * (PANEL_W + GAP)).max(MIN_WIDTH);
    let rows = 2 + usize::from(!idle.is_empty());
    let height = TOP + rows as f64 * (ROW_TITLE_H + PANEL_H + GAP) + 20.0;
    let mut svg = Svg::new(width, height);
    svg.text(
        LEFT,
        24.0,
        16.0,
        true,
        &format!("ringway vs nginx vs HAProxy — {}", report.date),
    );
    svg.text(
        LEFT,
        42.0,
        11.0,
        false,
        &format!(
            "{} CPUs ({}), Linux {}, {} worker(s) per proxy; medians of {} run(s) of {:.0} s, whiskers min–max (arrow: clipped)",
            report.machine.nproc,
            report.machine.cpu_model,
            report.machine.kernel,
            report.workers,
            report.runs,
            report.duration_s
        ),
    );
    svg.text(
        LEFT,
        57.0,
        11.0,
        false,
        &format!("pinning: {}", report.pinning),
    );
    let legend: Vec<(&str, &str)> = [
        Target::Ringway,
        Target::Nginx,
        Target::Haproxy,
        Target::Direct,
    ]
    .iter()
    .map(|&t| (t.name(), color(t)))
    .collect();
    svg.legend(LEFT, 64.0, 80.0, &legend);
    let spread =
        |s: &crate::report::ScenarioSummary, t: Target, key: &str| -> Option<(f64, f64, f64)> {
            let m = s.targets.iter().find(|x| x.target == t)?.metrics.get(key)?;
            Some((m.median, m.min, m.max))
        };
    let rows_spec: [(&str, &str, bool); 2] = [
        (
            "requests per proxy CPU-second (higher is better)",
            "req_per_cpu_s",
            false,
        ),
        ("p99 latency, ms (lower is better)", "p99_ms", true),
    ];
    let mut y = TOP;
    for (title, key, with_direct) in rows_spec {
        svg.text(LEFT, y + 16.0, 13.0, true, title);
        y += ROW_TITLE_H;
        for (i, s) in load.iter().enumerate() {
            let mut targets = vec![Target::Ringway, Target::Nginx, Target::Haproxy];
            if with_direct {
                targets.push(Target::Direct);
            }
            let bars: Vec<Bar> = targets.iter().map(|&t| bar(t, spread(s, t, key))).collect();
            svg.bar_panel(LEFT + i as f64 * (PANEL_W + GAP), y, s.scenario.key, &bars);
        }
        y += PANEL_H + GAP;
    }
    if !idle.is_empty() {
        svg.text(
            LEFT,
            y + 16.0,
            13.0,
            true,
            "proxy RSS per idle keep-alive connection, KiB (lower is better)",
        );
        y += ROW_TITLE_H;
        for (i, s) in idle.iter().enumerate() {
            let bars: Vec<Bar> = [Target::Ringway, Target::Nginx, Target::Haproxy]
                .iter()
                .map(|&t| bar(t, spread(s, t, "kib_per_conn")))
                .collect();
            svg.bar_panel(LEFT + i as f64 * (PANEL_W + GAP), y, s.scenario.key, &bars);
        }
    }
    svg.finish()
}

fn bar(target: Target, value: Option<(f64, f64, f64)>) -> Bar<'static> {
    Bar {
        name: target.name(),
        color: color(target),
        value,
    }
}
