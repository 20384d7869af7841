//! A small hand-written SVG writer, shared by `ringway-load --svg` and the
//! `ringway-bench` reports: a document, text, bar panels (median bars with
//! min–max whiskers, each panel with its own y scale) and line panels
//! (linear or log10 axes). No dependencies; the output is plain SVG 1.1
//! that browsers and XML parsers read.

use std::fmt::Write as _;

/// Size of a bar panel.
pub const PANEL_W: f64 = 200.0;
pub const PANEL_H: f64 = 190.0;
/// Room above the tallest median bar.
const HEADROOM: f64 = 1.25;
/// Inside a bar panel: space for the title and the value labels under the bars.
const PANEL_TOP: f64 = 34.0;
const PANEL_BOTTOM: f64 = 30.0;
/// Inside a line panel: margins for the title, the axes and their labels.
const PLOT_LEFT: f64 = 58.0;
const PLOT_RIGHT: f64 = 14.0;
const PLOT_TOP: f64 = 30.0;
const PLOT_BOTTOM: f64 = 40.0;

/// Escapes text for SVG.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A short number for a label: `12k`, `1.5k`, `340`, `12.5`, `0.42`.
pub fn label(v: f64) -> String {
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

/// One bar of a bar panel.
#[derive(Debug, Clone, Copy)]
pub struct Bar<'a> {
    pub name: &'a str,
    pub color: &'a str,
    /// Median, min, max (`None`: failed or not measured).
    pub value: Option<(f64, f64, f64)>,
}

/// An axis scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Linear,
    /// Base-10 logarithmic; values must be positive (others are dropped).
    Log10,
}

/// One line of a line panel.
#[derive(Debug, Clone)]
pub struct Line<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub points: Vec<(f64, f64)>,
}

/// A line panel's content.
#[derive(Debug, Clone)]
pub struct LineChart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub x_scale: Scale,
    pub y_scale: Scale,
    /// Labels for chosen x positions (`None`: evenly spaced numbers).
    pub x_ticks: Option<Vec<(f64, String)>>,
    pub lines: Vec<Line<'a>>,
}

/// An SVG document being written.
pub struct Svg {
    out: String,
}

impl Svg {
    /// A `width` × `height` document on a white background.
    pub fn new(width: f64, height: f64) -> Svg {
        let mut out = String::new();
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif">"#
        );
        let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
        Svg { out }
    }

    /// Text at (x, y), left-aligned.
    pub fn text(&mut self, x: f64, y: f64, size: f64, bold: bool, text: &str) {
        let weight = if bold { r#" font-weight="bold""# } else { "" };
        let _ = writeln!(
            self.out,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="{size}"{weight}>{}</text>"#,
            esc(text)
        );
    }

    /// A row of colour swatches with names, starting at (x, y); `step` apart.
    pub fn legend(&mut self, x: f64, y: f64, step: f64, entries: &[(&str, &str)]) {
        for (i, (name, color)) in entries.iter().enumerate() {
            let lx = x + i as f64 * step;
            let _ = writeln!(
                self.out,
                r#"<rect x="{lx:.1}" y="{y:.1}" width="10" height="10" fill="{}"/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
                esc(color),
                lx + 14.0,
                y + 9.0,
                esc(name)
            );
        }
    }

    /// A [`PANEL_W`] × [`PANEL_H`] bar panel with its top-left corner at
    /// (x, y): one bar per entry, scaled to the medians so one bad run's
    /// whisker cannot flatten the bars (whiskers past the top are clipped
    /// and marked with an arrow).
    pub fn bar_panel(&mut self, x: f64, y: f64, title: &str, bars: &[Bar]) {
        self.frame(x, y, PANEL_W, PANEL_H, 16.0, title);
        let svg = &mut self.out;
        let top = bars
            .iter()
            .filter_map(|b| b.value.map(|(median, _, _)| median))
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
        let scale = |v: f64| {
            if top > 0.0 {
                v.max(0.0) / top * plot_h
            } else {
                0.0
            }
        };
        for (i, bar) in bars.iter().enumerate() {
            let cx = x + 10.0 + slot * (i as f64 + 0.5);
            match bar.value {
                Some((median, min, max)) => {
                    let h = scale(median);
                    let _ = writeln!(
                        svg,
                        r#"<rect x="{:.1}" y="{:.1}" width="{bar_w:.1}" height="{h:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                        cx - bar_w / 2.0,
                        base - h,
                        esc(bar.color),
                        esc(bar.name),
                        label(median)
                    );
                    if max > min {
                        let y1 = base - scale(min);
                        let clipped = base - scale(max) < plot_top;
                        let y2 = (base - scale(max)).max(plot_top);
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
                            label(min),
                            label(max)
                        );
                    }
                    let _ = writeln!(
                        svg,
                        r#"<text x="{cx:.1}" y="{:.1}" font-size="10" text-anchor="middle" font-weight="bold" paint-order="stroke" stroke="white" stroke-width="3">{}</text>"#,
                        base - h - 3.0,
                        label(median)
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
                esc(bar.name)
            );
        }
    }

    /// A `w` × `h` line panel with its top-left corner at (x, y).
    pub fn line_panel(&mut self, x: f64, y: f64, w: f64, h: f64, chart: &LineChart) {
        self.frame(x, y, w, h, 18.0, chart.title);
        let svg = &mut self.out;
        let (px, py) = (x + PLOT_LEFT, y + PLOT_TOP);
        let (pw, ph) = (w - PLOT_LEFT - PLOT_RIGHT, h - PLOT_TOP - PLOT_BOTTOM);
        let fx = |v: f64| axis_value(chart.x_scale, v);
        let fy = |v: f64| axis_value(chart.y_scale, v);
        let points = || {
            chart
                .lines
                .iter()
                .flat_map(|l| l.points.iter())
                .filter_map(|&(a, b)| Some((fx(a)?, fy(b)?)))
        };
        let Some((x0, x1, y0, y1)) = points().fold(None, |acc, (a, b)| match acc {
            None => Some((a, a, b, b)),
            Some((x0, x1, y0, y1)) => Some((
                f64::min(x0, a),
                f64::max(x1, a),
                f64::min(y0, b),
                f64::max(y1, b),
            )),
        }) else {
            let _ = writeln!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#868e96">no data</text>"##,
                x + w / 2.0,
                y + h / 2.0
            );
            return;
        };
        // Linear y axes start at zero; log axes span whole decades.
        let (y0, y1) = match chart.y_scale {
            Scale::Linear => (y0.min(0.0), if y1 > 0.0 { y1 * 1.08 } else { 1.0 }),
            Scale::Log10 => (y0.floor(), y1.ceil().max(y0.floor() + 1.0)),
        };
        let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
        let sx = |v: f64| px + (v - x0) / (x1 - x0) * pw;
        let sy = |v: f64| py + ph - (v - y0) / (y1 - y0) * ph;
        // Axes, grid and tick labels.
        let _ = writeln!(
            svg,
            r##"<path d="M{px:.1} {py:.1}V{:.1}H{:.1}" stroke="#495057" fill="none"/>"##,
            py + ph,
            px + pw
        );
        let y_ticks: Vec<(f64, String)> = match chart.y_scale {
            Scale::Linear => nice_ticks(y0, y1)
                .into_iter()
                .map(|v| (v, label(v)))
                .collect(),
            Scale::Log10 => (y0 as i32..=y1 as i32)
                .map(|e| (f64::from(e), label(10f64.powi(e))))
                .collect(),
        };
        for (v, text) in y_ticks {
            let ty = sy(v);
            let _ = writeln!(
                svg,
                r##"<line x1="{px:.1}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#e9ecef"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"##,
                px + pw,
                px - 4.0,
                ty + 3.0,
                esc(&text)
            );
        }
        let x_ticks: Vec<(f64, String)> = match &chart.x_ticks {
            Some(ticks) => ticks
                .iter()
                .filter_map(|(v, t)| Some((fx(*v)?, t.clone())))
                .filter(|(v, _)| *v >= x0 && *v <= x1)
                .collect(),
            None => match chart.x_scale {
                Scale::Linear => nice_ticks(x0, x1)
                    .into_iter()
                    .map(|v| (v, label(v)))
                    .collect(),
                Scale::Log10 => (x0.ceil() as i32..=x1.floor() as i32)
                    .map(|e| (f64::from(e), label(10f64.powi(e))))
                    .collect(),
            },
        };
        for (v, text) in x_ticks {
            let tx = sx(v);
            let _ = writeln!(
                svg,
                r##"<line x1="{tx:.1}" y1="{py:.1}" x2="{tx:.1}" y2="{:.1}" stroke="#e9ecef"/><text x="{tx:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"##,
                py + ph,
                py + ph + 13.0,
                esc(&text)
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"#,
            px + pw / 2.0,
            y + h - 8.0,
            esc(chart.x_label)
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle" transform="rotate(-90 {:.1} {:.1})">{}</text>"#,
            x + 14.0,
            py + ph / 2.0,
            x + 14.0,
            py + ph / 2.0,
            esc(chart.y_label)
        );
        // The lines, then their legend in the top-left corner.
        for line in &chart.lines {
            let mut d = String::new();
            for (a, b) in line
                .points
                .iter()
                .filter_map(|&(a, b)| Some((fx(a)?, fy(b)?)))
            {
                let cmd = if d.is_empty() { 'M' } else { 'L' };
                let _ = write!(d, "{cmd}{:.1} {:.1}", sx(a), sy(b));
            }
            if !d.is_empty() {
                let _ = writeln!(
                    svg,
                    r#"<path d="{d}" stroke="{}" stroke-width="1.6" fill="none"><title>{}</title></path>"#,
                    esc(line.color),
                    esc(line.name)
                );
            }
        }
        for (i, line) in chart.lines.iter().enumerate() {
            let (lx, ly) = (px + 8.0 + i as f64 * 70.0, py + 6.0);
            let _ = writeln!(
                svg,
                r#"<rect x="{lx:.1}" y="{ly:.1}" width="10" height="3" fill="{}"/><text x="{:.1}" y="{:.1}" font-size="10">{}</text>"#,
                esc(line.color),
                lx + 13.0,
                ly + 5.0,
                esc(line.name)
            );
        }
    }

    /// A panel's background and its centred title, `title_y` below its top.
    fn frame(&mut self, x: f64, y: f64, w: f64, h: f64, title_y: f64, title: &str) {
        let _ = writeln!(
            self.out,
            r##"<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="#fbfbfb" stroke="#dee2e6"/>"##
        );
        let _ = writeln!(
            self.out,
            r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle" font-weight="bold">{}</text>"#,
            x + w / 2.0,
            y + title_y,
            esc(title)
        );
    }

    /// Closes the document and returns its text.
    pub fn finish(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }
}

/// A value on an axis: itself (linear) or its log10 (`None` if not positive).
fn axis_value(scale: Scale, v: f64) -> Option<f64> {
    match scale {
        Scale::Linear => v.is_finite().then_some(v),
        Scale::Log10 => (v > 0.0 && v.is_finite()).then(|| v.log10()),
    }
}

/// About five round tick values from `lo` to `hi`.
fn nice_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = hi - lo;
    if span.is_nan() || span <= 0.0 || !span.is_finite() {
        return vec![lo];
    }
    let raw = span / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(magnitude * 10.0);
    let mut ticks = Vec::new();
    let mut v = (lo / step).ceil() * step;
    while v <= hi + step * 1e-9 && ticks.len() < 20 {
        ticks.push(v);
        v += step;
    }
    ticks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(nice_ticks(0.0, 10.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(nice_ticks(0.0, 0.0), vec![0.0]);
    }

    #[test]
    fn text_is_escaped() {
        let mut svg = Svg::new(10.0, 10.0);
        svg.text(0.0, 0.0, 10.0, false, "a<b & \"c\"");
        let out = svg.finish();
        assert!(out.contains("a&lt;b &amp; &quot;c&quot;"), "{out}");
        assert!(out.ends_with("</svg>\n"));
    }
}
