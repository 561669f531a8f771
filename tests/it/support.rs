//! Helpers shared by the test modules.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use pgbus_testing::TestDatabase;
use tokio::time::Instant;

/// A fresh, migrated database of its own (see `pgbus_testing::TestDatabase::create`).
pub async fn db() -> TestDatabase {
    TestDatabase::create()
        .await
        .unwrap_or_else(|e| panic!("creating a test database failed: {e}"))
}

/// A fresh database without the pgbus schema.
pub async fn empty_db() -> TestDatabase {
    TestDatabase::create_empty()
        .await
        .unwrap_or_else(|e| panic!("creating an empty test database failed: {e}"))
}

/// `wait_for` gave up: the condition was still false when the time was up.
#[derive(Debug)]
pub struct TimedOut(Duration);

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "condition still false after {:?}", self.0)
    }
}

impl std::error::Error for TimedOut {}

/// Polls `condition` every 20 ms until it returns true or `timeout` passes. Use
/// `.expect("what was awaited")` on the result for a clear failure message.
pub async fn wait_for<F, Fut>(timeout: Duration, mut condition: F) -> Result<(), TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if condition().await {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(TimedOut(timeout));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
