//! The soak's summary on stdout: the run, the latency, per relation the verdict, and the size
//! series.

use serde_json::Value;

use crate::common::{human, ms, thousands};

pub fn print_summary(report: &Value) {
    println!(
        "\nsoak: {} events, published in {} s ({} events/s achieved; publisher at most {} events behind), all delivered after {} s: {}",
        thousands(report["events"].as_f64().unwrap_or(0.0)),
        report["publish_secs"],
        thousands(report["achieved_publish_rate"].as_f64().unwrap_or(0.0)),
        report["publisher_max_behind_events"],
        report["total_secs"],
        report["delivered_all"]
    );
    let l = &report["latency"];
    println!(
        "publish → handler start: p50 {} ms, p90 {} ms, p99 {} ms, max {} ms; largest open backlog {} deliveries; autovacuum on deliveries {} times",
        ms(&l["p50_ms"]),
        ms(&l["p90_ms"]),
        ms(&l["p99_ms"]),
        ms(&l["max_ms"]),
        report["max_open_backlog"],
        report["deliveries_autovacuum_count"]
    );
    println!(
        "\n{:<40} {:>12} {:>12} {:>12} {:>9}  verdict",
        "relation (pg_total_relation_size)", "at 25%", "max", "final", "max/25%"
    );
    let empty = serde_json::Map::new();
    let rels = report["relations"].as_object().unwrap_or(&empty);
    for (name, r) in rels {
        let verdict = if r["grows_by_design"].as_bool() == Some(true) {
            "grows with the count by design (events are kept for event_retention, 7 days by default)"
        } else if r["levels_off"].as_bool() == Some(true) {
            "levels off"
        } else {
            "GROWS"
        };
        println!(
            "{:<40} {:>12} {:>12} {:>12} {:>9.2}  {verdict}",
            name,
            human(r["at_25pct_bytes"].as_i64().unwrap_or(0)),
            human(r["max_bytes"].as_i64().unwrap_or(0)),
            human(r["final_bytes"].as_i64().unwrap_or(0)),
            r["max_over_25pct"].as_f64().unwrap_or(f64::NAN),
        );
    }
    // Compact series, at most ~24 points per relation, in KiB.
    let samples = report["samples"].as_array().cloned().unwrap_or_default();
    let step = samples.len().div_ceil(24).max(1);
    let picked: Vec<&Value> = samples.iter().step_by(step).collect();
    println!(
        "\nsize series in KiB (every {:.0} s):",
        report["sample_secs"].as_f64().unwrap_or(5.0) * step as f64
    );
    let row = |label: &str, cell: &dyn Fn(&Value) -> String| {
        let cells: Vec<String> = picked.iter().map(|s| cell(s)).collect();
        println!("  {:<38} {}", label, cells.join(" "));
    };
    row("t (s)", &|s| {
        format!("{:.0}", s["t"].as_f64().unwrap_or(0.0))
    });
    for name in rels.keys() {
        row(name, &|s| {
            (s["sizes"][name].as_i64().unwrap_or(0) / 1024).to_string()
        });
    }
    row("running (state 1) deliveries", &|s| {
        s["running"].to_string()
    });
    row("open deliveries", &|s| s["open"].to_string());
}
