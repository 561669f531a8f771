//! The soak's plot: over time, `pgbus.deliveries` and `pgbus.events` (each index too), the
//! open backlog, dead tuples and the steady events' latency, with the pin window and the burst
//! shaded; the verdicts below.

use serde_json::Value;

use crate::common::plot::{Svg, short};
use crate::common::{human, ms, thousands};
use crate::phases::Windows;

const COLORS: [&str; 6] = [
    "#2f6db5", "#e08a2c", "#2a9d4a", "#c0392b", "#8e44ad", "#7f8c8d",
];
const X0: f64 = 90.0;
const W: f64 = 500.0;

/// A line of one panel: its name, its points `(t, value)` and what the legend says.
struct Line {
    name: String,
    pts: Vec<(f64, f64)>,
    legend: String,
}

/// One panel at `y` over `0..t_max` s, the pin window and the burst shaded; returns the next
/// panel's `y`.
fn panel(
    svg: &mut Svg,
    y: f64,
    title: &str,
    lines: &[Line],
    fmt: fn(f64) -> String,
    (w, t_max): (&Windows, f64),
) -> f64 {
    let h = if lines.len() > 2 { 150.0 } else { 100.0 };
    let v_max = lines
        .iter()
        .flat_map(|l| l.pts.iter().map(|p| p.1))
        .fold(0.0, f64::max)
        .max(1.0);
    svg.heading(y + 12.0, title);
    let top = y + 22.0;
    let x = |t: f64| X0 + W * (t / t_max).clamp(0.0, 1.0);
    if let Some((a, b)) = w.pin {
        svg.rect(x(a), top, x(b) - x(a), h, "#fbe3c4", "pin held");
        svg.text(
            x(a) + 3.0,
            top + 11.0,
            9.0,
            "start",
            r##"fill="#a0602a""##,
            "pin held",
        );
    }
    if let Some((a, b)) = w.burst {
        svg.rect(x(a), top, x(b) - x(a), h, "#f6c9c9", "burst until drained");
        svg.line(
            x(a),
            top,
            x(a),
            top + h,
            "#c0392b",
            r#"stroke-dasharray="3,2""#,
        );
        svg.text(
            x(a) + 3.0,
            top + h - 4.0,
            9.0,
            "start",
            r##"fill="#c0392b""##,
            "burst",
        );
    }
    for k in 0..=4 {
        let yy = top + h - h * k as f64 / 4.0;
        svg.line(X0, yy, X0 + W, yy, "#e5e5e5", "");
        let label = fmt(v_max * k as f64 / 4.0);
        svg.text(X0 - 6.0, yy + 4.0, 10.0, "end", r##"fill="#666""##, &label);
    }
    for k in 0..=5 {
        let t = t_max * k as f64 / 5.0;
        let label = format!("{t:.0} s");
        svg.text(
            x(t),
            top + h + 14.0,
            10.0,
            "middle",
            r##"fill="#666""##,
            &label,
        );
    }
    for (i, l) in lines.iter().enumerate() {
        let pts: Vec<(f64, f64)> = l
            .pts
            .iter()
            .map(|&(t, v)| (x(t), top + h - h * v / v_max))
            .collect();
        let color = COLORS[i % COLORS.len()];
        svg.polyline(&pts, color, &l.name);
        let ly = top + 4.0 + i as f64 * 18.0;
        svg.rect(X0 + W + 20.0, ly, 12.0, 10.0, color, &l.name);
        svg.text(X0 + W + 38.0, ly + 9.0, 10.0, "start", "", &l.legend);
    }
    top + h + 36.0
}

fn series(samples: &[Value], f: impl Fn(&Value) -> Option<f64>) -> Vec<(f64, f64)> {
    samples
        .iter()
        .filter_map(|s| Some((s["t"].as_f64()?, f(s)?)))
        .collect()
}

fn size(v: f64) -> String {
    human(v as i64)
}

fn count(v: f64) -> String {
    short(v.round())
}

fn millis(v: f64) -> String {
    ms(&Value::from(v))
}

/// The sizes of `table` and its indexes.
fn size_lines(report: &Value, samples: &[Value], table: &str) -> Vec<Line> {
    let empty = serde_json::Map::new();
    let rels = report["relations"].as_object().unwrap_or(&empty);
    rels.iter()
        .filter(|(n, _)| *n == table || n.starts_with(&format!("{table}/")))
        .map(|(name, r)| Line {
            name: name.clone(),
            pts: series(samples, |s| s["sizes"][name.as_str()].as_f64()),
            legend: format!(
                "{}: max {}, {:.2}× at 25%",
                match name.split_once('/') {
                    Some((_, index)) => format!("index {index}"),
                    None => format!("{name}, heap + indexes"),
                },
                human(r["max_bytes"].as_i64().unwrap_or(0)),
                r["max_over_25pct"].as_f64().unwrap_or(f64::NAN)
            ),
        })
        .collect()
}

fn line(name: &str, pts: Vec<(f64, f64)>, fmt: fn(f64) -> String) -> Line {
    let max = pts.iter().map(|p| p.1).fold(0.0, f64::max);
    Line {
        name: name.to_owned(),
        legend: format!("{name}: max {}", fmt(max)),
        pts,
    }
}

pub fn plot(report: &Value) -> Svg {
    let mode = report["settings"]["mode"].as_str().unwrap_or("");
    let title = match mode {
        "" => "pgbus soak: relation sizes over time".to_owned(),
        m => format!("pgbus soak ({m}): sizes, backlog, dead tuples, latency over time"),
    };
    let mut svg = Svg::titled(report, &title);
    let l = &report["latency"];
    let readers = report["settings"]["readers"].as_u64().unwrap_or(0);
    let mut sub = format!(
        "{} events at {}/s; publish → handler p50 {} ms, p99 {} ms, max {} ms",
        thousands(report["events"].as_f64().unwrap_or(0.0)),
        thousands(report["rate"].as_f64().unwrap_or(0.0)),
        ms(&l["p50_ms"]),
        ms(&l["p99_ms"]),
        ms(&l["max_ms"]),
    );
    if readers > 0 {
        sub += &format!("; {readers} REPEATABLE READ readers throughout");
    }
    let b = &report["burst"];
    if let Some(n) = b["events"].as_f64() {
        sub += &format!(
            "; burst of {} at {:.0} s: {}",
            thousands(n),
            b["started_secs"].as_f64().unwrap_or(0.0),
            match b["drain_time_secs"].as_f64() {
                Some(d) => format!("drained in {d:.1} s"),
                None => "not drained within the run".to_owned(),
            }
        );
    }
    svg.text(20.0, 80.0, 12.0, "start", r##"fill="#444""##, &sub);
    let samples = report["samples"].as_array().cloned().unwrap_or_default();
    let t_max = samples
        .iter()
        .filter_map(|s| s["t"].as_f64())
        .fold(1.0, f64::max);
    let end = report["publish_secs"].as_f64().unwrap_or(t_max);
    let w = Windows::from_report(&report["pin"], &report["burst"], readers > 0, end);
    let mut y = 100.0;
    for table in ["delivery_storage", "deliveries", "events"] {
        let mut lines = size_lines(report, &samples, table);
        if lines.is_empty() {
            continue;
        }
        if table == "deliveries"
            && samples
                .first()
                .is_some_and(|s| s.get("deliveries_indexes").is_some())
        {
            let indexes = series(&samples, |s| s["deliveries_indexes"].as_f64());
            lines.insert(1, line("all indexes", indexes, size));
        }
        y = panel(
            &mut svg,
            y,
            &if table == "delivery_storage" {
                "delivery storage: pgbus.deliveries, the log's slots, pgbus.claims".to_owned()
            } else {
                format!("pgbus.{table}")
            },
            &lines,
            size,
            (&w, t_max),
        );
    }
    let open = series(&samples, |s| s["open"].as_f64());
    let dead = series(&samples, |s| s["n_dead_tup"].as_f64());
    let backlog = [line("open deliveries (backlog)", open, count)];
    y = panel(&mut svg, y, "backlog", &backlog, count, (&w, t_max));
    if !dead.is_empty() {
        let dead = [line("n_dead_tup of the delivery storage", dead, count)];
        y = panel(&mut svg, y, "dead tuples", &dead, count, (&w, t_max));
    }
    let lat = report["latency_series"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !lat.is_empty() {
        let lines = [
            line("p50", series(&lat, |s| s["p50_ms"].as_f64()), millis),
            line("p99", series(&lat, |s| s["p99_ms"].as_f64()), millis),
        ];
        let title = "publish → handler (ms), steady events, by send time";
        y = panel(&mut svg, y, title, &lines, millis, (&w, t_max));
    }
    for v in report["verdicts"].as_array().into_iter().flatten() {
        let result = v["result"].as_str().unwrap_or("?");
        let color = match result {
            "PASS" => "#2a9d4a",
            "FAIL" => "#c0392b",
            _ => "#888",
        };
        let text = format!(
            "{result}  {}: {}",
            v["target"].as_str().unwrap_or(""),
            v["detail"].as_str().unwrap_or("")
        );
        svg.text(20.0, y, 12.0, "start", &format!(r#"fill="{color}""#), &text);
        y += 18.0;
    }
    svg.footer(
        y + 6.0,
        "generated by `cargo bench --bench soak` (benches/soak/) from its JSON results",
    );
    svg
}
