//! A small SVG writer for the benches' plots, and the header and footer every plot has.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{Res, round1, svg_path};

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub struct Svg {
    pub body: String,
    pub width: f64,
    pub height: f64,
}

impl Svg {
    pub fn new(width: f64) -> Self {
        Svg {
            body: String::new(),
            width,
            height: 0.0,
        }
    }

    pub fn text(&mut self, x: f64, y: f64, size: f64, anchor: &str, extra: &str, s: &str) {
        let _ = writeln!(
            self.body,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="{size}" text-anchor="{anchor}" {extra}>{}</text>"#,
            esc(s)
        );
    }

    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str, title: &str) {
        let _ = writeln!(
            self.body,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{fill}"><title>{}</title></rect>"#,
            w.max(0.5),
            esc(title)
        );
    }

    pub fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str, extra: &str) {
        let _ = writeln!(
            self.body,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{stroke}" {extra}/>"#
        );
    }

    pub fn polyline(&mut self, points: &[(f64, f64)], stroke: &str, title: &str) {
        let pts: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = writeln!(
            self.body,
            r#"<polyline points="{}" fill="none" stroke="{stroke}" stroke-width="2"><title>{}</title></polyline>"#,
            pts.join(" "),
            esc(title)
        );
    }

    pub fn finish(&self) -> String {
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
             font-family=\"Helvetica, Arial, sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{}</svg>\n",
            self.body,
            w = self.width,
            h = self.height.ceil()
        )
    }

    /// A plot 960 wide with `title` and the machine and server lines of `report` on top.
    pub fn titled(report: &Value, title: &str) -> Svg {
        let mut svg = Svg::new(960.0);
        let (machine, server) = describe_header(report);
        svg.text(20.0, 28.0, 18.0, "start", r#"font-weight="bold""#, title);
        svg.text(20.0, 48.0, 12.0, "start", r##"fill="#444""##, &machine);
        svg.text(20.0, 64.0, 12.0, "start", r##"fill="#444""##, &server);
        svg
    }

    /// A panel's bold title at (20, `y`).
    pub fn heading(&mut self, y: f64, s: &str) {
        self.text(20.0, y, 14.0, "start", r#"font-weight="bold""#, s);
    }

    /// The grey line at `y` that names what drew the plot; the plot ends just below it.
    pub fn footer(&mut self, y: f64, generated_by: &str) {
        self.text(20.0, y, 10.0, "start", r##"fill="#888""##, generated_by);
        self.height = y + 14.0;
    }

    /// Writes the plot where `$var` says, else to `benches/results/<file>`; returns where.
    pub fn save(&self, var: &str, file: &str) -> Res<PathBuf> {
        let path = svg_path(var, file);
        self.write(&path)?;
        Ok(path)
    }

    pub fn write(&self, path: &Path) -> Res<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, self.finish())?;
        Ok(())
    }
}

/// Log-scale position helper: maps `v` in `[lo, hi]` to `[0, width]`.
pub fn log_x(v: f64, lo: f64, hi: f64, width: f64) -> f64 {
    let v = v.clamp(lo, hi);
    (v.log10() - lo.log10()) / (hi.log10() - lo.log10()) * width
}

/// Powers of ten from `lo` to `hi`.
pub fn decades(lo: f64, hi: f64) -> Vec<f64> {
    let mut v = Vec::new();
    let mut x = 10f64.powf(lo.log10().floor());
    while x <= hi * 1.0001 {
        if x >= lo * 0.9999 {
            v.push(x);
        }
        x *= 10.0;
    }
    v
}

pub fn short(x: f64) -> String {
    if x >= 1e6 {
        format!("{}M", round1(x / 1e6))
    } else if x >= 1e3 {
        format!("{}k", round1(x / 1e3))
    } else if x >= 1.0 {
        format!("{}", round1(x))
    } else {
        format!("{x}")
    }
}

/// The machine line and the server line of a plot's header.
fn describe_header(report: &Value) -> (String, String) {
    let m = &report["machine"];
    let pg = &report["postgres"];
    let s = &pg["settings"];
    let version = pg["version"]
        .as_str()
        .unwrap_or("?")
        .split(" on ")
        .next()
        .unwrap_or("?")
        .to_owned();
    (
        format!(
            "{} vCPU, {} GiB, {}",
            m["nproc"],
            m["memory_gib"],
            m["cpu_model"].as_str().unwrap_or("?")
        ),
        format!(
            "{version}, fsync={} synchronous_commit={} shared_buffers={}; {}",
            s["fsync"].as_str().unwrap_or("?"),
            s["synchronous_commit"].as_str().unwrap_or("?"),
            s["shared_buffers"].as_str().unwrap_or("?"),
            report["started_at"]
                .as_str()
                .map(|t| format!("{} UTC", t.get(..16).unwrap_or(t).replace('T', " ")))
                .unwrap_or_default()
        ),
    )
}
