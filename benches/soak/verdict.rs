//! The targets judged: the unpinned reference, storage during and after the pin, the
//! backlog's trend, and one verdict per target.

use std::path::Path;

use serde_json::{Value, json};

use crate::common::{human, ms, round3};
use crate::phases::Windows;
use crate::sample::Sample;

/// "Back within 10% of the unpinned level".
const RECOVERED: f64 = 1.1;

/// The unpinned figures a run is judged against: an unpinned run's results (`baseline`), else
/// this run's phase before the pin.
pub fn reference(
    baseline: Option<(&Path, Value)>,
    rate: f64,
    phases: &Value,
    samples: &[Sample],
    w: &Windows,
) -> Value {
    if w.held_name().is_none() {
        let own = match phases.get("steady_outside_burst") {
            Some(p) => p,
            None => &phases["steady"],
        };
        return json!({
            "source": "this run (nothing held the horizon back)",
            "p99_ms": own["p99_ms"],
            "max_bytes": samples.iter().map(Sample::deliveries).max(),
        });
    }
    if let Some((path, b)) = baseline {
        let settings = &b["settings"];
        let mut notes = Vec::new();
        if b["rate"].as_f64() != Some(rate) {
            notes.push(format!("its rate is {} events/s", b["rate"]));
        }
        if !settings["mode"].as_str().unwrap_or("").is_empty() {
            notes.push(format!("it is a {} run, not a plain one", settings["mode"]));
        }
        return json!({
            "source": path.display().to_string(),
            "p99_ms": b["latency"]["p99_ms"],
            "max_bytes": b["relations"]
                .get("delivery_storage")
                .unwrap_or(&b["relations"]["deliveries"])["max_bytes"],
            "caveat": (!notes.is_empty()).then(|| notes.join("; ")),
        });
    }
    let before = &phases["before_pin"];
    let pin_at = w.pin.map_or(0.0, |p| p.0);
    let before_max = samples
        .iter()
        .filter(|s| s.t < pin_at)
        .map(Sample::deliveries)
        .max();
    if before["n"].as_u64().unwrap_or(0) >= 100 && before_max.is_some() {
        json!({
            "source": "this run before the pin",
            "p99_ms": before["p99_ms"],
            "max_bytes": before_max,
        })
    } else {
        json!({
            "source": null,
            "caveat": "no unpinned reference: run the plain soak first (its soak-latest.json is used), or set PGBUS_SOAK_BASELINE or PGBUS_SOAK_PIN_AT_SECS",
        })
    }
}

fn max_of(
    samples: &[Sample],
    keep: impl Fn(&Sample) -> bool,
    f: fn(&Sample) -> i64,
) -> Option<i64> {
    samples.iter().filter(|s| keep(s)).map(f).max()
}

/// The delivery storage (heap + indexes) before, during and after the pin (or with readers),
/// dead tuples along the way, and how long after the release it was back within 10% of the
/// unpinned level.
pub fn storage(samples: &[Sample], w: &Windows, reference: &Value) -> Value {
    let (pin_at, release) = w.pin.unwrap_or((0.0, f64::INFINITY));
    // The flag is read just before a sample's queries: a sample at the release counts.
    let held = |s: &Sample| w.held(s.t) || s.pin_held;
    let during = max_of(samples, held, Sample::deliveries);
    let before = max_of(samples, |s| s.t < pin_at, Sample::deliveries);
    let level = reference["max_bytes"].as_i64();
    let over = |a: Option<i64>, b: Option<i64>| match (a, b) {
        (Some(a), Some(b)) if b > 0 => Some(round3(a as f64 / b as f64)),
        _ => None,
    };
    let after: Vec<&Sample> = samples.iter().filter(|s| s.t >= release).collect();
    let recovered = level.and_then(|l| {
        after
            .iter()
            .find(|s| s.deliveries() as f64 <= l as f64 * RECOVERED)
            .map(|s| round3(s.t - release))
    });
    let dead_held: Vec<i64> = samples.iter().filter(|s| held(s)).map(|s| s.dead).collect();
    json!({
        "max_before_pin_bytes": before,
        "max_held_bytes": during,
        "max_held_over_before": over(during, before),
        "max_held_over_reference": over(during, level),
        "max_after_release_bytes": after.iter().map(|s| s.deliveries()).max(),
        "final_bytes": samples.last().map(Sample::deliveries),
        "schema_max_held_bytes": max_of(samples, held, |s| s.schema),
        "schema_final_bytes": samples.last().map(|s| s.schema),
        "recovery_level_bytes": level.map(|l| (l as f64 * RECOVERED) as i64),
        "recovered_secs_after_release": recovered,
        "dead_tuples": {
            "at_pin": dead_held.first(), "max_held": dead_held.iter().max(),
            "at_release": dead_held.last(), "min_after_release": after.iter().map(|s| s.dead).min(),
            "final": samples.last().map(|s| s.dead),
        },
    })
}

/// The open backlog's trend (least squares) over the held phase (the whole steady run
/// without a pin), the burst window aside: growing when it rises by more than one second of
/// publishing (at least 1,000) over that phase.
pub fn backlog(samples: &[Sample], w: &Windows, rate: f64) -> Value {
    let pts: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.t <= w.publish_secs && !w.in_burst(s.t))
        .filter(|s| w.pin.is_none() || w.held(s.t))
        .map(|s| (s.t, s.open as f64))
        .collect();
    let n = pts.len() as f64;
    let (mt, mv) = pts
        .iter()
        .fold((0.0, 0.0), |a, p| (a.0 + p.0 / n, a.1 + p.1 / n));
    let var: f64 = pts.iter().map(|p| (p.0 - mt).powi(2)).sum();
    let slope = if var > 0.0 {
        pts.iter().map(|p| (p.0 - mt) * (p.1 - mv)).sum::<f64>() / var
    } else {
        0.0
    };
    let span = pts.last().map_or(0.0, |l| l.0 - pts[0].0);
    json!({
        "window": if w.pin.is_some() { "pin" } else { "steady publishing" },
        "samples": pts.len(),
        "slope_per_s": round3(slope),
        "growth": (slope * span).round(),
        "allowed_growth": rate.max(1000.0).round(),
        "max_open": pts.iter().map(|p| p.1 as i64).max(),
    })
}

fn verdict(target: &str, ok: Option<bool>, detail: String) -> Value {
    let result = match ok {
        Some(true) => "PASS",
        Some(false) => "FAIL",
        None => "n/a",
    };
    json!({ "target": target, "result": result, "detail": detail })
}

/// One verdict per target of the issue.
pub fn verdicts(report: &Value, w: &Windows) -> Vec<Value> {
    let (r, st, bl, ph) = (
        &report["reference"],
        &report["storage"],
        &report["backlog"],
        &report["phases"],
    );
    let held = w.held_name();
    let phase = if w.pin.is_some() {
        "during_pin"
    } else {
        "steady"
    };
    let p99 = ph[phase]["p99_ms"].as_f64().filter(|_| held.is_some());
    let ref_p99 = r["p99_ms"].as_f64();
    let ref_max = r["max_bytes"].as_i64();
    let max_held = st["max_held_bytes"].as_i64().filter(|_| held.is_some());
    let held = held.unwrap_or("during pin");
    let growth = bl["growth"].as_f64().unwrap_or(0.0);
    let allowed = bl["allowed_growth"].as_f64().unwrap_or(0.0);
    let all = report["delivered_all"].as_bool() == Some(true);
    let recovered = st["recovered_secs_after_release"].as_f64();
    vec![
        verdict(
            &format!("p99 {held} ≤ 2× unpinned"),
            p99.zip(ref_p99).map(|(p, u)| p <= 2.0 * u),
            format!(
                "p99 {} ms vs unpinned {} ms",
                ms(&json!(p99)),
                ms(&json!(ref_p99))
            ),
        ),
        verdict(
            "no growing backlog",
            Some(growth <= allowed && all),
            format!(
                "backlog {} by {} over the {} (allowed {}; max {}){}",
                if growth >= 0.0 { "grows" } else { "shrinks" },
                growth.abs(),
                bl["window"].as_str().unwrap_or("?"),
                allowed,
                bl["max_open"],
                if all {
                    ""
                } else {
                    "; NOT everything was delivered"
                }
            ),
        ),
        verdict(
            &format!("storage {held} ≤ 3× unpinned max"),
            max_held
                .zip(ref_max)
                .map(|(m, u)| m as f64 <= 3.0 * u as f64),
            format!(
                "pgbus.deliveries max {} vs unpinned max {}",
                max_held.map_or("—".into(), human),
                ref_max.map_or("—".into(), human)
            ),
        ),
        verdict(
            "back to unpinned size within 2 min of release",
            w.pin
                .and(ref_max)
                .map(|_| recovered.is_some_and(|s| s <= 120.0)),
            match (w.pin, ref_max, recovered) {
                (None, _, _) => "no release in this run".to_owned(),
                (Some(_), None, _) => "no unpinned reference".to_owned(),
                (Some(_), Some(_), Some(s)) => {
                    format!("within 10% of the unpinned max {s:.0} s after the release")
                }
                (Some(_), Some(_), None) => "not within the run".to_owned(),
            },
        ),
    ]
}
