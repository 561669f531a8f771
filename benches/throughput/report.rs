//! The results table printed at the end of a run (and by `PGBUS_BENCH_PLOT`).

use serde_json::Value;

use crate::common::{ms, thousands, trunc};

pub fn print_table(report: &Value) {
    let empty = Vec::new();
    let scenarios = report["scenarios"].as_array().unwrap_or(&empty);
    let floor = report["floor"].as_array().unwrap_or(&empty);
    println!(
        "{:<62} {:>11} {:<13} {:>22} {:>7} {:>7} {:>7} {:>7}  vs floor",
        "scenario", "rate", "unit", "runs", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    println!("{}", "-".repeat(170));
    for s in scenarios {
        let runs = s["runs"]
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|x| thousands(x.as_f64().unwrap_or(f64::NAN)))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let rate = match s["rate"].as_f64() {
            Some(r) => thousands(r),
            None => format!(
                "{}*",
                thousands(s["offered_rate"].as_f64().unwrap_or(f64::NAN))
            ),
        };
        let l = &s["latency"];
        let vs = match (s["fraction_of_floor"].as_f64(), s["floor_ref"].as_str()) {
            (Some(f), Some(r)) => format!("{:.0}% of {r}", f * 100.0),
            _ => match (s["p99_times_floor"].as_f64(), s["floor_ref"].as_str()) {
                (Some(x), Some(r)) => format!("p99 {x:.2}× {r}"),
                _ => String::new(),
            },
        };
        println!(
            "{:<62} {:>11} {:<13} {:>22} {:>7} {:>7} {:>7} {:>7}  {vs}",
            trunc(s["name"].as_str().unwrap_or(""), 62),
            rate,
            s["unit"]
                .as_str()
                .unwrap_or("")
                .split(' ')
                .next()
                .unwrap_or(""),
            runs,
            ms(&l["p50_ms"]),
            ms(&l["p90_ms"]),
            ms(&l["p99_ms"]),
            ms(&l["max_ms"]),
        );
    }
    if scenarios.iter().any(|s| s["rate"].is_null()) {
        println!(
            "* latency scenarios: offered publish rate; latency = publish commit → handler start"
        );
    }
    for s in scenarios.iter().filter(|s| s["id"] == "drain") {
        let d = &s["run_details"][0]["dead_after"];
        if let Some(dead) = d["pgstattuple"]["dead"]
            .as_i64()
            .or(d["n_dead_tup"].as_i64())
        {
            println!(
                "drain (run 1, no snapshot held): {dead} dead tuples in pgbus.deliveries right after the drain; table + indexes {}",
                d["total_bytes"]
            );
        }
    }
    for s in scenarios.iter().filter(|s| s["id"] == "pinned") {
        println!(
            "pinned horizon: dead tuples in pgbus.deliveries before {}, after drain {}, after release + VACUUM {}; throughput {}× the drain median",
            s["dead_before"],
            s["dead_after_drain"],
            s["dead_after_release_and_vacuum"],
            s["vs_drain_median"]
        );
    }
    if !floor.is_empty() {
        println!("\nraw SQL floor (same server, pgbus's tables and indexes, no library):");
        for f in floor {
            println!(
                "  {:<100} {:>11} {}",
                f["name"].as_str().unwrap_or(""),
                thousands(f["rate"].as_f64().unwrap_or(f64::NAN)),
                f["unit"].as_str().unwrap_or("")
            );
        }
    }
}
