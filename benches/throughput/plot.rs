//! The throughput bench's plot: throughput bars against the floor, latency percentiles
//! against the targets.

use serde_json::Value;

use crate::common::plot::{Svg, decades, log_x, short};
use crate::common::{thousands, trunc};

/// Throughput bars (log scale) per scenario with its floor, and latency percentiles.
pub fn plot(report: &Value) -> Svg {
    let empty = Vec::new();
    let scenarios = report["scenarios"].as_array().unwrap_or(&empty);
    let mut svg = Svg::titled(report, "pgbus benchmark");
    let mut y = 90.0;
    if report["quick"].as_bool() == Some(true) {
        svg.text(
            20.0,
            80.0,
            12.0,
            "start",
            r##"fill="#b00""##,
            "quick mode: reduced sizes",
        );
        y += 6.0;
    }

    // Panel 1: throughput.
    let bars: Vec<&Value> = scenarios
        .iter()
        .filter(|s| s["rate"].as_f64().is_some())
        .collect();
    if !bars.is_empty() {
        let label_w = 360.0;
        let plot_w = svg.width - label_w - 170.0;
        let values: Vec<f64> = bars
            .iter()
            .flat_map(|s| [s["rate"].as_f64(), s["floor_rate"].as_f64()])
            .flatten()
            .filter(|v| *v > 0.0)
            .collect();
        let lo = 10f64.powf(
            values
                .iter()
                .cloned()
                .fold(f64::INFINITY, f64::min)
                .log10()
                .floor(),
        );
        let hi = 10f64.powf(values.iter().cloned().fold(0.0, f64::max).log10().ceil());
        svg.heading(
            y + 10.0,
            "Throughput (per second, log scale): pgbus (blue) vs raw SQL floor on the same server (grey)",
        );
        y += 24.0;
        let top = y;
        let row_h = 34.0;
        let x0 = label_w;
        for s in &bars {
            let rate = s["rate"].as_f64().unwrap_or(0.0);
            let name = s["name"].as_str().unwrap_or("");
            svg.text(x0 - 8.0, y + 14.0, 11.0, "end", "", &trunc(name, 54));
            let w = log_x(rate, lo, hi, plot_w);
            svg.rect(
                x0,
                y + 3.0,
                w,
                15.0,
                "#2f6db5",
                &format!("{name}: {}", thousands(rate)),
            );
            svg.text(
                x0 + w + 4.0,
                y + 15.0,
                11.0,
                "start",
                "",
                &format!("{} {}", thousands(rate), s["unit"].as_str().unwrap_or("")),
            );
            if let Some(f) = s["floor_rate"].as_f64() {
                let wf = log_x(f, lo, hi, plot_w);
                let fr = s["fraction_of_floor"].as_f64().unwrap_or(0.0);
                svg.rect(
                    x0,
                    y + 20.0,
                    wf,
                    8.0,
                    "#b5b5b5",
                    &format!("floor {}", s["floor_ref"]),
                );
                svg.text(
                    x0 + wf + 4.0,
                    y + 28.0,
                    9.0,
                    "start",
                    r##"fill="#666""##,
                    &format!("floor {} ({:.0}% reached)", thousands(f), fr * 100.0),
                );
            }
            y += row_h;
        }
        for d in decades(lo, hi) {
            let x = x0 + log_x(d, lo, hi, plot_w);
            svg.line(x, top - 2.0, x, y, "#ddd", r#"stroke-dasharray="3,3""#);
            svg.text(x, y + 12.0, 10.0, "middle", r##"fill="#666""##, &short(d));
        }
        y += 30.0;
    }

    // Panel 2: latency percentiles.
    let lats: Vec<&Value> = scenarios
        .iter()
        .filter(|s| {
            s["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("latency_"))
        })
        .filter(|s| s["latency"]["p50_ms"].as_f64().is_some())
        .collect();
    if !lats.is_empty() {
        svg.heading(
            y + 10.0,
            "Latency, publish commit → handler start (ms, log scale); dashed: targets p50 ≤ 1 ms, p99 ≤ 5 ms",
        );
        y += 24.0;
        let label_w = 360.0;
        let plot_w = svg.width - label_w - 170.0;
        let (lo, hi) = (0.1, 1000.0);
        let top = y;
        let colors = [
            ("p50_ms", "#2f6db5"),
            ("p90_ms", "#5b9bd5"),
            ("p99_ms", "#e08a2c"),
            ("max_ms", "#c0392b"),
        ];
        for s in &lats {
            let name = s["name"].as_str().unwrap_or("");
            svg.text(label_w - 8.0, y + 22.0, 11.0, "end", "", &trunc(name, 54));
            for (i, (key, color)) in colors.iter().enumerate() {
                let v = s["latency"][*key].as_f64().unwrap_or(0.0);
                let yy = y + 2.0 + i as f64 * 10.0;
                let w = log_x(v.max(lo), lo, hi, plot_w);
                svg.rect(label_w, yy, w, 8.0, color, &format!("{key}: {v:.3} ms"));
                svg.text(
                    label_w + w + 4.0,
                    yy + 8.0,
                    9.0,
                    "start",
                    "",
                    &format!("{} {:.2} ms", key.trim_end_matches("_ms"), v),
                );
            }
            y += 50.0;
        }
        for d in decades(lo, hi) {
            let x = label_w + log_x(d, lo, hi, plot_w);
            svg.line(x, top - 2.0, x, y, "#ddd", r#"stroke-dasharray="3,3""#);
            svg.text(
                x,
                y + 12.0,
                10.0,
                "middle",
                r##"fill="#666""##,
                &format!("{} ms", short(d)),
            );
        }
        for (t, label) in [(1.0, "p50 target"), (5.0, "p99 target")] {
            let x = label_w + log_x(t, lo, hi, plot_w);
            svg.line(
                x,
                top - 2.0,
                x,
                y,
                "#2a2",
                r#"stroke-dasharray="6,3" stroke-width="1.5""#,
            );
            svg.text(x + 3.0, top - 5.0, 9.0, "start", r##"fill="#2a2""##, label);
        }
        y += 30.0;
    }
    svg.footer(
        y,
        "generated by `cargo bench --bench throughput` (benches/throughput/) from its JSON results",
    );
    svg
}
