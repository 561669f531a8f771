//! The soak's summary on stdout: the run, latency per phase, the pin, the burst, storage and
//! dead tuples, per relation the verdict, the size series, and one verdict per target.

use serde_json::Value;

use crate::common::{human, ms, thousands};

fn bytes(v: &Value) -> String {
    v.as_i64().map_or_else(|| "—".to_owned(), human)
}

fn secs(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "—".to_owned(), |s| format!("{s:.1} s"))
}

pub fn print_summary(report: &Value) {
    println!(
        "\nsoak: {} events, steady publishing for {} s ({} events/s achieved; publisher at most {} events behind), all delivered after {} s: {}",
        thousands(report["events"].as_f64().unwrap_or(0.0)),
        report["publish_secs"],
        thousands(report["achieved_publish_rate"].as_f64().unwrap_or(0.0)),
        report["publisher_max_behind_events"],
        report["total_secs"],
        report["delivered_all"]
    );
    println!("settings: {}", report["settings"]);
    println!(
        "largest open backlog {} deliveries; autovacuum on deliveries {} times",
        report["max_open_backlog"], report["deliveries_autovacuum_count"]
    );
    print_horizon(report);
    println!(
        "\npublish → handler start, by phase (steady events; burst window apart):\n  {:<22} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "phase", "n", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    let empty = serde_json::Map::new();
    let phases = report["phases"].as_object().unwrap_or(&empty);
    let order = [
        "all",
        "steady",
        "before_pin",
        "during_pin",
        "after_release",
        "steady_outside_burst",
        "burst_window_steady",
        "burst_events",
    ];
    for name in order.iter().filter(|n| phases.contains_key(**n)) {
        let l = &phases[*name];
        println!(
            "  {:<22} {:>9} {:>9} {:>9} {:>9} {:>9}",
            name,
            l["n"],
            ms(&l["p50_ms"]),
            ms(&l["p90_ms"]),
            ms(&l["p99_ms"]),
            ms(&l["max_ms"])
        );
    }
    print_storage(report);
    print_relations(report);
    print_series(report);
    println!(
        "\nverdicts (reference: {}):",
        reference_line(&report["reference"])
    );
    for v in report["verdicts"].as_array().into_iter().flatten() {
        println!(
            "  {:<5} {}: {}",
            v["result"].as_str().unwrap_or("?"),
            v["target"].as_str().unwrap_or("?"),
            v["detail"].as_str().unwrap_or("")
        );
    }
}

fn reference_line(r: &Value) -> String {
    let mut s = match r["source"].as_str() {
        Some(src) => format!(
            "{src}: p99 {} ms, deliveries max {}",
            ms(&r["p99_ms"]),
            bytes(&r["max_bytes"])
        ),
        None => "none".to_owned(),
    };
    if let Some(c) = r["caveat"].as_str() {
        s += &format!(" ({c})");
    }
    s
}

fn print_horizon(report: &Value) {
    let p = &report["pin"];
    if !p.is_null() {
        println!(
            "pin: xid {}, held from {} to {} ({} s held)",
            p["xid"],
            secs(&p["started_secs"]),
            secs(&p["released_secs"]),
            (p["released_secs"].as_f64().unwrap_or(0.0)
                - p["started_secs"].as_f64().unwrap_or(0.0))
            .round()
        );
    }
    for r in report["readers"].as_array().into_iter().flatten() {
        println!(
            "reader {}: {} transactions (mean {} s), {} counts",
            r["reader"], r["transactions"], r["mean_tx_secs"], r["counts"]
        );
    }
    let b = &report["burst"];
    if !b.is_null() {
        println!(
            "burst: {} events at {}, all published at {} ({} events/s); backlog before ≤ {}, peak {}; drained (backlog back to its pre-burst level) {} after it started: {}",
            thousands(b["events"].as_f64().unwrap_or(0.0)),
            secs(&b["started_secs"]),
            secs(&b["published_secs"]),
            thousands(b["publish_rate"].as_f64().unwrap_or(0.0)),
            b["pre_burst_backlog"],
            b["peak_backlog"],
            secs(&b["drain_time_secs"]),
            if b["drained_secs"].is_null() {
                "NOT within the run"
            } else {
                "yes"
            }
        );
    }
}

fn print_storage(report: &Value) {
    let s = &report["storage"];
    let d = &s["dead_tuples"];
    let x = |v: &Value| v.as_f64().map_or("—".to_owned(), |r| format!("{r:.2}×"));
    let mut size = format!(
        "\ndelivery storage (pgbus.deliveries, log slots, claims; heap + indexes): max {}, final {}; pgbus schema final {}",
        bytes(&report["reference"]["max_bytes"]),
        bytes(&s["final_bytes"]),
        bytes(&s["schema_final_bytes"]),
    );
    let mut dead = format!(
        "n_dead_tup of the delivery storage: {} at the end",
        d["final"]
    );
    if !s["max_held_bytes"].is_null() {
        size = format!(
            "\ndelivery storage (heap + indexes): max while the horizon was held {} ({} the unpinned max), final {}; pgbus schema max while held {}, final {}",
            bytes(&s["max_held_bytes"]),
            x(&s["max_held_over_reference"]),
            bytes(&s["final_bytes"]),
            bytes(&s["schema_max_held_bytes"]),
            bytes(&s["schema_final_bytes"]),
        );
        dead = format!(
            "n_dead_tup of the delivery storage: {} when the hold began, max {} while held, {} at the end",
            d["at_pin"], d["max_held"], d["final"]
        );
    }
    if !report["pin"].is_null() {
        size += &format!(
            "; max before the pin {} (held max / that: {}), max after the release {}",
            bytes(&s["max_before_pin_bytes"]),
            x(&s["max_held_over_before"]),
            bytes(&s["max_after_release_bytes"]),
        );
        dead += &format!(
            "; {} at the release, min {} after it; back within 10% of the unpinned max ({}) after the release: {}",
            d["at_release"],
            d["min_after_release"],
            bytes(&s["recovery_level_bytes"]),
            match s["recovered_secs_after_release"].as_f64() {
                Some(t) => format!("after {t:.0} s"),
                None => "not within the run".to_owned(),
            }
        );
    }
    println!("{size}\n{dead}");
}

fn print_relations(report: &Value) {
    println!(
        "\n{:<40} {:>12} {:>12} {:>12} {:>9}  verdict",
        "relation (pg_total_relation_size)", "at 25%", "max", "final", "max/25%"
    );
    let empty = serde_json::Map::new();
    for (name, r) in report["relations"].as_object().unwrap_or(&empty) {
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
            bytes(&r["at_25pct_bytes"]),
            bytes(&r["max_bytes"]),
            bytes(&r["final_bytes"]),
            r["max_over_25pct"].as_f64().unwrap_or(f64::NAN),
        );
    }
}

/// Compact series, at most ~24 points, sizes in KiB.
fn print_series(report: &Value) {
    let samples = report["samples"].as_array().cloned().unwrap_or_default();
    let step = samples.len().div_ceil(24).max(1);
    let picked: Vec<&Value> = samples.iter().step_by(step).collect();
    println!(
        "\nseries, sizes in KiB (every {:.0} s):",
        report["sample_secs"].as_f64().unwrap_or(5.0) * step as f64
    );
    let row = |label: &str, cell: &dyn Fn(&Value) -> String| {
        let cells: Vec<String> = picked.iter().map(|s| cell(s)).collect();
        println!("  {:<38} {}", label, cells.join(" "));
    };
    row("t (s)", &|s| {
        format!("{:.0}", s["t"].as_f64().unwrap_or(0.0))
    });
    row("pin held", &|s| {
        if s["pin_held"] == true { "PIN" } else { "-" }.to_owned()
    });
    let kib = |v: &Value| (v.as_i64().unwrap_or(0) / 1024).to_string();
    let empty = serde_json::Map::new();
    for name in report["relations"].as_object().unwrap_or(&empty).keys() {
        row(name, &|s| kib(&s["sizes"][name]));
    }
    row("deliveries heap", &|s| kib(&s["deliveries_heap"]));
    row("deliveries indexes", &|s| kib(&s["deliveries_indexes"]));
    row("pgbus schema", &|s| kib(&s["schema_total"]));
    row("n_dead_tup (deliveries)", &|s| s["n_dead_tup"].to_string());
    row("horizon age (xids)", &|s| s["horizon_age_xids"].to_string());
    row("running (state 1) deliveries", &|s| {
        s["running"].to_string()
    });
    row("open deliveries", &|s| s["open"].to_string());
}
