//! The soak's settings (`PGBUS_SOAK_*`), its mode name and where its results go.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{env_f64, env_usize, out_dir, quick, thousands};

#[derive(Debug, Clone)]
pub struct Settings {
    pub quick: bool,
    /// `PGBUS_SOAK_EVENTS`: steady events of the main publishing phase.
    pub events: usize,
    pub rate: f64,
    pub tick: Duration,
    pub every: Duration,
    /// `PGBUS_SOAK_PIN=1`: a REPEATABLE READ transaction with an xid, from `pin_at` for `pin_secs`.
    pub pin: bool,
    pub pin_at: f64,
    pub pin_secs: f64,
    /// Steady publishing goes on this long after the release.
    pub after_secs: f64,
    /// `PGBUS_SOAK_READERS`: connections looping REPEATABLE READ counts of a business table.
    pub readers: usize,
    pub reader_rows: usize,
    pub reader_tx_secs: f64,
    /// `PGBUS_SOAK_BURST`: extra events published at once at `burst_at`.
    pub burst: usize,
    pub burst_at: f64,
    /// `PGBUS_SOAK_BASELINE`: an unpinned run's JSON to judge against.
    pub baseline: Option<PathBuf>,
}

impl Settings {
    pub fn from_env() -> Self {
        let q = quick();
        let events = env_usize("PGBUS_SOAK_EVENTS", if q { 100_000 } else { 1_000_000 });
        let rate = env_f64("PGBUS_SOAK_RATE", 5_000.0);
        let pin = env_usize("PGBUS_SOAK_PIN", 0) != 0;
        let pin_at = env_f64("PGBUS_SOAK_PIN_AT_SECS", 0.0);
        let main_secs = events as f64 / rate;
        let readers = env_usize("PGBUS_SOAK_READERS", 0);
        let mode_is_plain = !pin && readers == 0 && env_usize("PGBUS_SOAK_BURST", 0) == 0;
        let baseline = match std::env::var_os("PGBUS_SOAK_BASELINE") {
            Some(p) if p.is_empty() => None,
            Some(p) => Some(PathBuf::from(p)),
            // The last plain run's results, when there are some (never for a plain run).
            None => {
                Some(out_dir().join("soak-latest.json")).filter(|p| !mode_is_plain && p.exists())
            }
        };
        Settings {
            quick: q,
            events,
            rate,
            tick: Duration::from_millis(env_usize("PGBUS_SOAK_TICK_MS", 10) as u64),
            every: Duration::from_secs_f64(env_f64(
                "PGBUS_SOAK_SAMPLE_SECS",
                if q { 2.0 } else { 5.0 },
            )),
            pin,
            pin_at,
            pin_secs: env_f64("PGBUS_SOAK_PIN_SECS", (main_secs - pin_at).max(0.0)),
            after_secs: env_f64("PGBUS_SOAK_AFTER_SECS", if pin { 150.0 } else { 0.0 }),
            readers,
            reader_rows: env_usize("PGBUS_SOAK_READER_ROWS", 100_000),
            reader_tx_secs: env_f64("PGBUS_SOAK_READER_TX_SECS", 3.0),
            burst: env_usize("PGBUS_SOAK_BURST", 0),
            burst_at: env_f64("PGBUS_SOAK_BURST_AT_SECS", 30.0),
            baseline,
        }
    }

    /// When the pin is released (s after the start of publishing).
    pub fn release_at(&self) -> Option<f64> {
        self.pin.then_some(self.pin_at + self.pin_secs)
    }

    /// How long steady publishing lasts: the main phase, and in pinned mode at least until
    /// `after_secs` after the release.
    pub fn publish_secs(&self) -> f64 {
        let main = self.events as f64 / self.rate;
        match self.release_at() {
            Some(r) => main.max(r + self.after_secs),
            None => main,
        }
    }

    /// Steady events in all (≥ `events`); burst events are numbered after them.
    pub fn steady_events(&self) -> usize {
        self.events
            .max((self.publish_secs() * self.rate).round() as usize)
    }

    /// `pinned`, `readers`, `burst` joined by `-`; empty for the plain run.
    pub fn mode(&self) -> String {
        let parts: Vec<&str> = [
            (self.pin, "pinned"),
            (self.readers > 0, "readers"),
            (self.burst > 0, "burst"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        parts.join("-")
    }

    pub fn describe(&self) -> Value {
        json!({
            "mode": self.mode(),
            "events": self.events,
            "steady_events": self.steady_events(),
            "rate": self.rate,
            "tick_ms": self.tick.as_millis() as u64,
            "sample_secs": self.every.as_secs_f64(),
            "planned_publish_secs": self.publish_secs(),
            "pin": self.pin,
            "pin_at_secs": self.pin.then_some(self.pin_at),
            "pin_secs": self.pin.then_some(self.pin_secs),
            "after_secs": self.pin.then_some(self.after_secs),
            "readers": self.readers,
            "reader_rows": (self.readers > 0).then_some(self.reader_rows),
            "reader_tx_secs": (self.readers > 0).then_some(self.reader_tx_secs),
            "burst": self.burst,
            "burst_at_secs": (self.burst > 0).then_some(self.burst_at),
            "baseline": self.baseline.as_ref().map(|p| p.display().to_string()),
        })
    }

    /// The run's settings in one paragraph.
    pub fn line(&self) -> String {
        let mut s = format!(
            "soak: {} steady events at {}/s ({:.0} s; publish_all every {:?}), sampling every {:?}",
            thousands(self.steady_events() as f64),
            thousands(self.rate),
            self.publish_secs(),
            self.tick,
            self.every
        );
        if self.pin {
            s += &format!(
                "; PIN: REPEATABLE READ + txid_current() from {:.0} s for {:.0} s, then {:.0} s after the release",
                self.pin_at, self.pin_secs, self.after_secs
            );
        }
        if self.readers > 0 {
            s += &format!(
                "; READERS: {} REPEATABLE READ readers of a {}-row table, {:.1} s transactions back to back",
                self.readers,
                thousands(self.reader_rows as f64),
                self.reader_tx_secs
            );
        }
        if self.burst > 0 {
            s += &format!(
                "; BURST: {} events at {:.0} s (publish_all, 1,000 per call, own task)",
                thousands(self.burst as f64),
                self.burst_at
            );
        }
        if let Some(b) = &self.baseline {
            s += &format!("; unpinned reference: {}", b.display());
        }
        s
    }
}

/// The results' file prefix (`soak`, `soak-pinned`, …) and the SVG's file name.
pub fn file_names(mode: &str) -> (String, String) {
    if mode.is_empty() {
        ("soak".to_owned(), "pgbus-soak.svg".to_owned())
    } else {
        (format!("soak-{mode}"), format!("pgbus-soak-{mode}.svg"))
    }
}
