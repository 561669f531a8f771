//! Dispatchers with short timings: build, start, shut down (bounded), and register
//! subscriptions ahead of publishing.

use std::time::Duration;

use pgbus::{
    Dispatcher, DispatcherBuilder, DispatcherHandle, RetryPolicy, ShutdownReport, Subscription,
};
use sqlx::PgPool;

use super::deliveries::{deliveries, delivery_count_in};
use super::journal::Journal;
use super::states::RUNNING;

/// A retry policy with short delays (20 ms to 200 ms), for tests.
pub fn quick_retry() -> RetryPolicy {
    RetryPolicy::default()
        .base_delay(Duration::from_millis(20))
        .max_delay(Duration::from_millis(200))
}

/// The fault tests' retry policy: 50 ms to 500 ms.
pub fn fault_retry() -> RetryPolicy {
    RetryPolicy::default()
        .base_delay(Duration::from_millis(50))
        .max_delay(Duration::from_millis(500))
}

/// A dispatcher builder with short timings: polls every 50 ms, shutdown deadline 5 s.
pub fn dispatcher(pool: &PgPool) -> DispatcherBuilder {
    Dispatcher::builder(pool.clone())
        .poll_interval(Duration::from_millis(50))
        .shutdown_timeout(Duration::from_secs(5))
}

/// Builds and starts.
pub async fn start(builder: DispatcherBuilder) -> DispatcherHandle {
    builder
        .build()
        .expect("valid dispatcher settings")
        .start()
        .await
        .expect("starting the dispatcher")
}

/// Shuts down, within 30 s.
pub async fn shutdown(handle: DispatcherHandle) -> ShutdownReport {
    tokio::time::timeout(Duration::from_secs(30), handle.shutdown())
        .await
        .expect("shutdown took more than 30 s")
        .expect("shutdown failed")
}

/// Shuts down (within 30 s) and checks that nothing is left running.
pub async fn stop(pool: &PgPool, handle: DispatcherHandle) -> ShutdownReport {
    let report = shutdown(handle).await;
    assert_eq!(
        delivery_count_in(pool, &[RUNNING]).await,
        0,
        "rows left running after shutdown: {:#?}",
        deliveries(pool).await
    );
    report
}

/// Registers subscriptions (start a dispatcher, shut it down), so that events published
/// from now on fan out to them.
pub async fn register(pool: &PgPool, names_and_patterns: &[(&str, &[&str])]) {
    let mut builder = dispatcher(pool);
    for (name, patterns) in names_and_patterns {
        builder = builder.subscribe(Subscription::raw(
            *name,
            patterns.iter().copied(),
            Journal::new().handler(),
        ));
    }
    stop(pool, start(builder).await).await;
}
