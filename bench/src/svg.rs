//! A small hand-written SVG plot: one small panel per scenario and metric,
//! each with its own y scale, grouped bars per target with min–max whiskers.

use std::fmt::Write as _;

use crate::proxy::Target;
use crate::report::Report;
use crate::scenario::Kind;

const PANEL_W: f64 = 200.0;
const PANEL_H: f64 = 190.0;
const GAP: f64 = 16.0;
const TOP: f64 = 84.0;
const ROW_TITLE_H: f64 = 26.0;
const LEFT: f64 = 20.0;
const MIN_WIDTH: f64 = 960.0;
/// Room above the tallest median bar.
const HEADROOM: f64 = 1.25;
/// Inside a panel: space for the title and the value labels under the bars.
const PANEL_TOP: f64 = 34.0;
const PANEL_BOTTOM: f64 = 30.0;

fn color(t: Target) -> &'static str {
    match t {
        Target::Ringway => "#d9480f",
        Target::Nginx => "#2f9e44",
        Target::Haproxy => "#1971c2",
        Target::Direct => "#868e96",
    }
}

/// Escapes text for SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn label(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 1000.0 {
        format!("{:.1}k", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// One bar: target, median, min, max (None: failed / not measured).
type Bar = (Target, Option<(f64, f64, f64)>);

/// Draws one panel with its top-left corner at (x, y).
fn panel(svg: &mut String, x: f64, y: f64, title: &str, bars: &[Bar]) {
    let _ = writeln!(
        svg,
        r##"<rect x="{x}" y="{y}" width="{PANEL_W}" height="{PANEL_H}" fill="#fbfbfb" stroke="#dee2e6"/>"##
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" font-size="12" text-anchor="middle" font-weight="bold">{}</text>"#,
        x + PANEL_W / 2.0,
        y + 16.0,
        esc(title)
    );
    // Scaled to the medians, so one bad run's whisker cannot flatten the
    // bars; whiskers past the top are clipped and marked with an arrow.
    let top = bars
        .iter()
        .filter_map(|(_, v)| v.map(|(median, _, _)| median))
        .fold(0.0_f64, f64::max)
        * HEADROOM;
    let plot_top = y + PANEL_TOP;
    let plot_h = PANEL_H - PANEL_TOP - PANEL_BOTTOM;
    let base = y + PANEL_H - PANEL_BOTTOM;
    let slot = (PANEL_W - 20.0) / bars.len().max(1) as f64;
    let bar_w = slot * 0.7;
    let _ = writeln!(
        svg,
        r##"<line x1="{}" y1="{base}" x2="{}" y2="{base}" stroke="#495057"/>"##,
        x + 10.0,
        x + PANEL_W - 10.0
    );
    for (i, (target, value)) in bars.iter().enumerate() {
        let cx = x + 10.0 + slot * (i as f64 + 0.5);
        let scale = |v: f64| {
            if top > 0.0 {
                v.max(0.0) / top * plot_h
            } else {
                0.0
            }
        };
        match value {
            Some((median, min, max)) => {
                let h = scale(*median);
                let _ = writeln!(
                    svg,
                    r#"<rect x="{:.1}" y="{:.1}" width="{bar_w:.1}" height="{h:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                    cx - bar_w / 2.0,
                    base - h,
                    color(*target),
                    target.name(),
                    label(*median)
                );
                if max > min {
                    let y1 = base - scale(*min);
                    let clipped = base - scale(*max) < plot_top;
                    let y2 = (base - scale(*max)).max(plot_top);
                    let cap = if clipped {
                        format!(
                            "M{:.1} {:.1}L{cx:.1} {y2:.1}L{:.1} {:.1}",
                            cx - 4.0,
                            y2 + 6.0,
                            cx + 4.0,
                            y2 + 6.0
                        )
                    } else {
                        format!("M{:.1} {y2:.1}h8", cx - 4.0)
                    };
                    let _ = writeln!(
                        svg,
                        r##"<path d="M{cx:.1} {y1:.1}V{y2:.1}M{:.1} {y1:.1}h8{cap}" stroke="#212529" fill="none"><title>min {} – max {}</title></path>"##,
                        cx - 4.0,
                        label(*min),
                        label(*max)
                    );
                }
                let _ = writeln!(
                    svg,
                    r#"<text x="{cx:.1}" y="{:.1}" font-size="10" text-anchor="middle" font-weight="bold" paint-order="stroke" stroke="white" stroke-width="3">{}</text>"#,
                    base - h - 3.0,
                    label(*median)
                );
            }
            None => {
                let _ = writeln!(
                    svg,
                    r##"<text x="{cx:.1}" y="{:.1}" font-size="10" text-anchor="middle" fill="#c92a2a">failed</text>"##,
                    base - 4.0
                );
            }
        }
        let _ = writeln!(
            svg,
            r#"<text x="{cx:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"#,
            base + 13.0,
            target.name()
        );
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
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="24" font-size="16" font-weight="bold">ringway vs nginx vs HAProxy — {}</text>"#,
        esc(&report.date)
    );
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="42" font-size="11">{} CPUs ({}), Linux {}, {} worker(s) per proxy; medians of {} run(s) of {:.0} s, whiskers min–max (arrow: clipped)</text>"#,
        report.machine.nproc,
        esc(&report.machine.cpu_model),
        esc(&report.machine.kernel),
        report.workers,
        report.runs,
        report.duration_s
    );
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="57" font-size="11">pinning: {}</text>"#,
        esc(&report.pinning)
    );
    let mut lx = LEFT;
    for t in [
        Target::Ringway,
        Target::Nginx,
        Target::Haproxy,
        Target::Direct,
    ] {
        let _ = writeln!(
            svg,
            r#"<rect x="{lx}" y="64" width="10" height="10" fill="{}"/><text x="{}" y="73" font-size="11">{}</text>"#,
            color(t),
            lx + 14.0,
            t.name()
        );
        lx += 80.0;
    }
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
        let _ = writeln!(
            svg,
            r#"<text x="{LEFT}" y="{}" font-size="13" font-weight="bold">{title}</text>"#,
            y + 16.0
        );
        y += ROW_TITLE_H;
        for (i, s) in load.iter().enumerate() {
            let mut targets = vec![Target::Ringway, Target::Nginx, Target::Haproxy];
            if with_direct {
                targets.push(Target::Direct);
            }
            let bars: Vec<Bar> = targets.iter().map(|&t| (t, spread(s, t, key))).collect();
            panel(
                &mut svg,
                LEFT + i as f64 * (PANEL_W + GAP),
                y,
                s.scenario.key,
                &bars,
            );
        }
        y += PANEL_H + GAP;
    }
    if !idle.is_empty() {
        let _ = writeln!(
            svg,
            r#"<text x="{LEFT}" y="{}" font-size="13" font-weight="bold">proxy RSS per idle keep-alive connection, KiB (lower is better)</text>"#,
            y + 16.0
        );
        y += ROW_TITLE_H;
        for (i, s) in idle.iter().enumerate() {
            let bars: Vec<Bar> = [Target::Ringway, Target::Nginx, Target::Haproxy]
                .iter()
                .map(|&t| (t, spread(s, t, "kib_per_conn")))
                .collect();
            panel(
                &mut svg,
                LEFT + i as f64 * (PANEL_W + GAP),
                y,
                s.scenario.key,
                &bars,
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}
