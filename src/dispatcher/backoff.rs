//! The backoff of a task whose database calls fail: 100 ms doubling to 5 s, reset on
//! success, cut short by a cancellation.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

const FIRST: Duration = Duration::from_millis(100);
const LONGEST: Duration = Duration::from_secs(5);

/// Doubling delays between retries of a failing database call.
#[derive(Debug)]
pub(crate) struct Backoff {
    first: Duration,
    next: Duration,
    failing: bool,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Self::starting_at(FIRST)
    }

    /// A backoff whose first delay is `first`.
    pub(crate) fn starting_at(first: Duration) -> Self {
        Backoff {
            first,
            next: first,
            failing: false,
        }
    }

    /// The delay to wait now; the next one is twice as long (at most 5 s).
    pub(crate) fn failed(&mut self) -> Duration {
        self.failing = true;
        let now = self.next;
        self.next = (self.next * 2).min(LONGEST);
        now
    }

    /// Waits out the next delay, or until `cancel` is cancelled.
    pub(crate) async fn wait(&mut self, cancel: &CancellationToken) {
        let delay = self.failed();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = cancel.cancelled() => {}
        }
    }

    /// A call succeeded; returns whether it had been failing (to log the recovery once).
    pub(crate) fn succeeded(&mut self) -> bool {
        self.next = self.first;
        std::mem::take(&mut self.failing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_five_seconds_and_resets() {
        let mut b = Backoff::new();
        let delays: Vec<u64> = (0..8).map(|_| b.failed().as_millis() as u64).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert!(b.succeeded());
        assert!(!b.succeeded());
        assert_eq!(b.failed(), FIRST);
    }
}
