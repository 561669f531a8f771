//! What the admin API's operations share: events as stored, time ranges, page cursors, and
//! the checks of their input.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::error::{Error, Result};

/// An event as stored in `pgbus.events`.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct EventRecord {
    /// The event id.
    pub id: Uuid,
    /// Its type, e.g. `property.created`.
    #[sqlx(rename = "type")]
    #[serde(rename = "type")]
    pub event_type: String,
    /// The publishing service.
    pub source: String,
    /// The entity it is about, if any.
    pub subject: Option<String>,
    /// Its ordering key, if any.
    pub key: Option<String>,
    /// The payload.
    pub data: serde_json::Value,
    /// Its headers.
    #[sqlx(json)]
    pub headers: BTreeMap<String, String>,
    /// Its dedupe key, if any.
    pub dedupe_key: Option<String>,
    /// Its priority (smaller runs first).
    pub priority: i16,
    /// When it was published (the publishing transaction's time).
    pub created_at: DateTime<Utc>,
}

/// A half-open time range `[from, to)`; either end may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TimeRange {
    /// Inclusive start; `None`: no bound.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive end; `None`: no bound.
    pub to: Option<DateTime<Utc>>,
}

impl TimeRange {
    /// Any time.
    pub fn all() -> TimeRange {
        TimeRange::default()
    }

    /// `[from, to)`.
    pub fn between(from: DateTime<Utc>, to: DateTime<Utc>) -> TimeRange {
        TimeRange {
            from: Some(from),
            to: Some(to),
        }
    }

    /// From `from` on.
    pub fn since(from: DateTime<Utc>) -> TimeRange {
        TimeRange {
            from: Some(from),
            to: None,
        }
    }

    /// Before `to`.
    pub fn until(to: DateTime<Utc>) -> TimeRange {
        TimeRange {
            from: None,
            to: Some(to),
        }
    }

    /// [`Error::InvalidTimeRange`] when both ends are given and `from` is not before `to`.
    pub(crate) fn check(&self) -> Result<()> {
        match (self.from, self.to) {
            (Some(from), Some(to)) if from >= to => Err(Error::InvalidTimeRange { from, to }),
            _ => Ok(()),
        }
    }
}

/// Where the next page of a listing starts: the position of the last item of the page
/// before (its time and id). Written as `<RFC 3339 time>/<id>`, e.g. on a command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cursor<I> {
    /// The last item's time (a dead letter's `finished_at`, an event's `created_at`).
    pub at: DateTime<Utc>,
    /// The last item's id.
    pub id: I,
}

impl<I: fmt::Display> fmt::Display for Cursor<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.at.to_rfc3339_opts(SecondsFormat::Micros, true);
        write!(f, "{at}/{}", self.id)
    }
}

impl<I: FromStr> FromStr for Cursor<I> {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("{s:?} is not a cursor (<RFC 3339 time>/<id>)");
        let (at, id) = s.rsplit_once('/').ok_or_else(bad)?;
        let at = DateTime::parse_from_rfc3339(at).map_err(|_| bad())?;
        let id = id.parse().map_err(|_| bad())?;
        Ok(Cursor {
            at: at.with_timezone(&Utc),
            id,
        })
    }
}

/// [`Error::OutOfRange`] unless `min <= value <= max`.
pub(crate) fn check_range(field: &'static str, value: u64, min: u64, max: u64) -> Result<()> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(Error::OutOfRange {
            field,
            value,
            min,
            max,
        })
    }
}

/// Checks event type patterns and turns them into SQL `LIKE` patterns (`None` when empty:
/// any type).
pub(crate) fn type_likes(patterns: &[String]) -> Result<Option<Vec<String>>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    patterns
        .iter()
        .map(|p| {
            crate::validate::validate_pattern(p)?;
            Ok(crate::validate::pattern_to_like(p))
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// Serializes an optional duration as seconds (a float), for JSON output.
pub(crate) fn opt_secs<S: serde::Serializer>(
    d: &Option<std::time::Duration>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// The age of `at` (zero if it is in the future).
pub(crate) fn age(at: DateTime<Utc>, now: DateTime<Utc>) -> std::time::Duration {
    (now - at).to_std().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_through_text() {
        let c = Cursor {
            at: DateTime::parse_from_rfc3339("2026-12-01T10:00:00.123456Z")
                .unwrap()
                .with_timezone(&Utc),
            id: 42_i64,
        };
        assert_eq!(c.to_string(), "2026-12-01T10:00:00.123456Z/42");
        assert_eq!(c.to_string().parse::<Cursor<i64>>().unwrap(), c);
        assert!("nonsense".parse::<Cursor<i64>>().is_err());
        assert!("2026-12-01T10:00:00Z/x".parse::<Cursor<i64>>().is_err());
    }

    #[test]
    fn ranges_and_limits() {
        let t = Utc::now();
        assert!(TimeRange::between(t, t).check().is_err());
        assert!(
            TimeRange::between(t, t - chrono::Duration::seconds(1))
                .check()
                .is_err()
        );
        assert!(
            TimeRange::between(t - chrono::Duration::seconds(1), t)
                .check()
                .is_ok()
        );
        assert!(TimeRange::since(t).check().is_ok());
        assert!(check_range("limit", 0, 1, 10).is_err());
        assert!(check_range("limit", 10, 1, 10).is_ok());
    }
}
