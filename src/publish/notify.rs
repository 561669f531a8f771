//! The NOTIFY debounce: at most one notifying publish per window per publisher.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Decides which publish statements carry a NOTIFY.
#[derive(Debug)]
pub(super) struct Debounce {
    enabled: bool,
    window: Duration,
    epoch: Instant,
    /// Micros since `epoch` of the last publish that carried a NOTIFY, plus one (0 = never).
    last: AtomicU64,
}

impl Debounce {
    pub(super) fn new(enabled: bool, window: Duration) -> Self {
        Debounce {
            enabled,
            window,
            epoch: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    /// Whether this statement should carry a NOTIFY (at most one per window).
    pub(super) fn should_notify(&self) -> bool {
        if !self.enabled {
            return false;
        }
        let window = self.window.as_micros() as u64;
        if window == 0 {
            return true;
        }
        let now = self.epoch.elapsed().as_micros() as u64 + 1;
        let last = self.last.load(Relaxed);
        if last != 0 && now.saturating_sub(last) < window {
            return false;
        }
        self.last
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_notify_per_window() {
        let d = Debounce::new(true, Duration::from_secs(3600));
        assert!(d.should_notify());
        assert!(!d.should_notify());
        assert!(Debounce::new(true, Duration::ZERO).should_notify());
        assert!(!Debounce::new(false, Duration::ZERO).should_notify());
    }
}
