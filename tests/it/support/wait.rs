//! Bounded polling: tests wait for an outcome, never for a fixed time.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How long a test waits for something that should take well under a second.
pub const SOON: Duration = Duration::from_secs(20);

/// Polls `condition` every 20 ms until it returns true; panics naming `what` if it is
/// still false after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if condition().await {
            return;
        }
        assert!(
            started.elapsed() < timeout,
            "waiting for {what}: condition still false after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
