//! Times and ages on the command line: `2026-12-01T10:00:00Z`, or an age such as `2h`.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// An age (`30s`, `5m`, `2h`, `7d`, `1h 30m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Age(pub Duration);

impl FromStr for Age {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        humantime::parse_duration(s)
            .map(Age)
            .map_err(|e| format!("{s:?} is not an age such as 30s, 5m, 2h or 7d: {e}"))
    }
}

/// A point in time: RFC 3339, or an age meaning that long ago.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// This time.
    At(DateTime<Utc>),
    /// This long before now.
    Ago(Duration),
}

impl Moment {
    /// The time it names, with ages counted back from `now`.
    pub fn resolve(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Moment::At(t) => t,
            Moment::Ago(d) => now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX),
        }
    }
}

impl FromStr for Moment {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(Moment::At(t.with_timezone(&Utc)));
        }
        humantime::parse_duration(s)
            .map(Moment::Ago)
            .map_err(|_| format!("{s:?} is neither an RFC 3339 time nor an age such as 2h"))
    }
}

/// A time range from two optional moments.
pub fn range(since: Option<Moment>, until: Option<Moment>) -> pgbus::admin::TimeRange {
    let now = Utc::now();
    pgbus::admin::TimeRange {
        from: since.map(|m| m.resolve(now)),
        to: until.map(|m| m.resolve(now)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_and_ages_parse() {
        assert_eq!("2h".parse::<Age>().unwrap().0, Duration::from_secs(7200));
        assert!("soon".parse::<Age>().is_err());
        assert!(matches!(
            "2026-12-01T10:00:00Z".parse::<Moment>(),
            Ok(Moment::At(_))
        ));
        assert_eq!(
            "90s".parse::<Moment>(),
            Ok(Moment::Ago(Duration::from_secs(90)))
        );
        assert!("yesterday".parse::<Moment>().is_err());
    }
}
