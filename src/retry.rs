//! Retry policy: how many attempts a delivery gets and how long it waits between them.

use std::time::Duration;

use crate::error::{Error, Result};

/// Exponential backoff with jitter and a cap on attempts.
///
/// The delay after failed attempt `n` (1-based) is `base_delay * 2^(n-1)`, capped at
/// `max_delay`, then scaled by a random factor in `[1 - jitter, 1 + jitter]`. After
/// `max_attempts` failed attempts the delivery is dead.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub(crate) max_attempts: u32,
    pub(crate) base_delay: Duration,
    pub(crate) max_delay: Duration,
    pub(crate) jitter: f64,
}

impl Default for RetryPolicy {
    /// 25 attempts, 1 s base delay, 1 h cap, ±25 % jitter: about 13 hours from the first
    /// failure to dead.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 25,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(3600),
            jitter: 0.25,
        }
    }
}

impl RetryPolicy {
    /// Attempts before a delivery is dead, the first one included. Default: 25. Must be ≥ 1.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Delay after the first failure. Default: 1 s.
    pub fn base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// Longest delay between attempts. Default: 1 h. Must be ≥ `base_delay`.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Relative jitter applied to each delay, in `[0, 1]`. Default: 0.25.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// The configured number of attempts.
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.max_attempts == 0 {
            return Err(Error::config("retry.max_attempts", "must be at least 1"));
        }
        if self.max_delay < self.base_delay {
            return Err(Error::config(
                "retry.max_delay",
                "must not be shorter than base_delay",
            ));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(Error::config("retry.jitter", "must be within [0, 1]"));
        }
        Ok(())
    }

    /// The delay before the attempt after failed attempt `attempt` (1-based), with jitter
    /// drawn from `unit` in `[0, 1)`.
    pub(crate) fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(62);
        let raw = self.base_delay.as_secs_f64() * (1u64 << exp) as f64;
        let capped = raw.min(self.max_delay.as_secs_f64());
        let factor = 1.0 + self.jitter * (2.0 * unit - 1.0);
        Duration::from_secs_f64((capped * factor).max(0.0))
    }

    /// Whether a failure of attempt `attempt` ends the delivery.
    pub(crate) fn exhausted(&self, attempt: u32) -> bool {
        attempt >= self.max_attempts
    }
}

/// A uniform number in `[0, 1)` from the random bits of a fresh UUID v7.
pub(crate) fn random_unit() -> f64 {
    let bits = uuid::Uuid::now_v7().as_u128() as u64 >> 11;
    bits as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let p = RetryPolicy::default().jitter(0.0);
        assert_eq!(p.delay(1, 0.3), Duration::from_secs(1));
        assert_eq!(p.delay(2, 0.3), Duration::from_secs(2));
        assert_eq!(p.delay(5, 0.3), Duration::from_secs(16));
        assert_eq!(p.delay(40, 0.3), Duration::from_secs(3600));
    }

    #[test]
    fn jitter_stays_in_band() {
        let p = RetryPolicy::default();
        for _ in 0..1000 {
            let d = p.delay(3, random_unit()).as_secs_f64();
            assert!((3.0..=5.0).contains(&d), "{d}");
        }
    }

    #[test]
    fn invalid_policies_are_refused() {
        assert!(RetryPolicy::default().max_attempts(0).validate().is_err());
        assert!(RetryPolicy::default().jitter(1.5).validate().is_err());
        assert!(
            RetryPolicy::default()
                .base_delay(Duration::from_secs(10))
                .max_delay(Duration::from_secs(1))
                .validate()
                .is_err()
        );
    }
}
