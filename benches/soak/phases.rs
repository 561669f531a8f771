//! The run's phases (before the pin, during it, after the release; the burst window) and
//! publish → handler latency per phase and over time.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::common::{Age, latency_summary, pct, round1, round3};

/// The run's windows, in s after the start of publishing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Windows {
    /// Pin taken, pin released.
    pub pin: Option<(f64, f64)>,
    /// Burst started, burst drained (or the end of the run when it never was).
    pub burst: Option<(f64, f64)>,
    /// Readers held the horizon for the whole run.
    pub readers: bool,
    pub publish_secs: f64,
}

impl Windows {
    pub fn from_report(pin: &Value, burst: &Value, readers: bool, end: f64) -> Self {
        let secs = |v: &Value, k: &str| v[k].as_f64();
        Windows {
            pin: secs(pin, "started_secs").zip(secs(pin, "released_secs")),
            burst: secs(burst, "started_secs")
                .map(|s| (s, secs(burst, "drained_secs").unwrap_or(end))),
            readers,
            publish_secs: end,
        }
    }

    pub fn in_burst(&self, t: f64) -> bool {
        self.burst.is_some_and(|(a, b)| t >= a && t < b)
    }

    /// The phase of a steady event sent at `t`, the burst window aside.
    pub fn phase(&self, t: f64) -> &'static str {
        match self.pin {
            Some((a, _)) if t < a => "before_pin",
            Some((_, b)) if t < b => "during_pin",
            Some(_) => "after_release",
            None => "steady",
        }
    }

    /// Whether `t` is in the held phase: the pin is held (with a pin), or readers run (without).
    pub fn held(&self, t: f64) -> bool {
        match self.pin {
            Some((a, b)) => t >= a && t < b,
            None => self.readers,
        }
    }

    /// What the verdicts call the held phase.
    pub fn held_name(&self) -> Option<&'static str> {
        match (self.pin.is_some(), self.readers) {
            (true, _) => Some("during pin"),
            (false, true) => Some("with readers"),
            _ => None,
        }
    }
}

/// Latency summaries: `all` events, `steady` ones, steady ones per phase outside the burst
/// window (`before_pin`, `during_pin`, `after_release`; or `steady_outside_burst`), steady
/// ones sent in the burst window (`burst_window_steady`), and the burst's own events.
pub fn latency_by_phase(ages: &[Age], t0_ns: i64, steady: usize, w: &Windows) -> Value {
    let mut groups: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for a in ages {
        let t = (a.sent_ns - t0_ns) as f64 / 1e9;
        let ms = a.age_ms as f64;
        groups.entry("all").or_default().push(ms);
        if a.seq < 0 || a.seq as usize >= steady {
            groups.entry("burst_events").or_default().push(ms);
            continue;
        }
        groups.entry("steady").or_default().push(ms);
        if w.in_burst(t) {
            groups.entry("burst_window_steady").or_default().push(ms);
        } else if w.pin.is_some() {
            groups.entry(w.phase(t)).or_default().push(ms);
        } else if w.burst.is_some() {
            groups.entry("steady_outside_burst").or_default().push(ms);
        }
    }
    let mut out = serde_json::Map::new();
    for (k, v) in groups {
        out.insert(k.to_owned(), latency_summary(v));
    }
    Value::Object(out)
}

/// The steady events' latency per `every` s of send time: p50, p99, max.
pub fn latency_series(ages: &[Age], t0_ns: i64, steady: usize, every: f64) -> Value {
    let mut buckets: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for a in ages
        .iter()
        .filter(|a| a.seq >= 0 && (a.seq as usize) < steady)
    {
        let t = (a.sent_ns - t0_ns) as f64 / 1e9;
        buckets
            .entry((t / every).floor() as i64)
            .or_default()
            .push(a.age_ms as f64);
    }
    buckets
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_by(|a, b| a.total_cmp(b));
            json!({
                "t": round1((k as f64 + 0.5) * every),
                "n": v.len(),
                "p50_ms": round3(pct(&v, 50.0)),
                "p99_ms": round3(pct(&v, 99.0)),
                "max_ms": round3(v[v.len() - 1]),
            })
        })
        .collect()
}
