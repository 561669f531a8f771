//! Helpers for the core behaviour tests (publish, dispatch, retry, shutdown, validation,
//! wake): reading the queue tables, recording handler calls, starting dispatchers with
//! short timings.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pgbus::{
    Delivery, Dispatcher, DispatcherBuilder, DispatcherHandle, HandlerError, NewEvent, Publisher,
    RawHandler, RetryPolicy, ShutdownReport, Subscription,
};
use sqlx::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

use crate::support::wait_for;

/// How long a test waits for something that should take well under a second.
pub const SOON: Duration = Duration::from_secs(20);

/// One row of `pgbus.deliveries`.
#[derive(Debug, Clone, sqlx::FromRow)]
#[allow(dead_code)]
pub struct DeliveryRow {
    pub id: i64,
    pub event_id: Uuid,
    pub subscription: String,
    pub state: i16,
    pub attempts: i32,
    pub solo: bool,
    pub last_error: Option<String>,
    pub run_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

pub const PENDING: i16 = 0;
pub const RUNNING: i16 = 1;
pub const DONE: i16 = 2;
pub const DEAD: i16 = 3;

/// Every delivery row, by id.
pub async fn deliveries(pool: &PgPool) -> Vec<DeliveryRow> {
    sqlx::query_as(
        "SELECT id, event_id, subscription, state, attempts, solo, last_error, run_at, finished_at
         FROM pgbus.deliveries ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .expect("reading pgbus.deliveries")
}

/// The delivery rows of one subscription, by id.
pub async fn deliveries_of(pool: &PgPool, subscription: &str) -> Vec<DeliveryRow> {
    deliveries(pool)
        .await
        .into_iter()
        .filter(|d| d.subscription == subscription)
        .collect()
}

/// The one delivery row of `subscription`; panics if there is not exactly one.
pub async fn only_delivery(pool: &PgPool, subscription: &str) -> DeliveryRow {
    let mut rows = deliveries_of(pool, subscription).await;
    assert_eq!(
        rows.len(),
        1,
        "expected exactly one delivery for {subscription}, have {rows:#?}"
    );
    rows.remove(0)
}

/// Runs a `SELECT count(*) ...`.
pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// (events, deliveries, subscriptions) row counts.
pub async fn table_counts(pool: &PgPool) -> (i64, i64, i64) {
    (
        count(pool, "SELECT count(*) FROM pgbus.events").await,
        count(pool, "SELECT count(*) FROM pgbus.deliveries").await,
        count(pool, "SELECT count(*) FROM pgbus.subscriptions").await,
    )
}

/// Waits (polling, bounded by `timeout`) until `condition` holds; panics naming `what`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    if let Err(e) = wait_for(timeout, condition).await {
        panic!("waiting for {what}: {e}");
    }
}

/// A retry policy with short delays, for tests.
pub fn quick_retry() -> RetryPolicy {
    RetryPolicy::default()
        .base_delay(Duration::from_millis(20))
        .max_delay(Duration::from_millis(200))
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

/// Shuts down and checks that nothing is left running.
pub async fn stop(pool: &PgPool, handle: DispatcherHandle) -> ShutdownReport {
    let report = tokio::time::timeout(Duration::from_secs(30), handle.shutdown())
        .await
        .expect("shutdown took more than 30 s")
        .expect("shutdown failed");
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM pgbus.deliveries WHERE state = 1"
        )
        .await,
        0,
        "rows left running after shutdown: {:#?}",
        deliveries(pool).await
    );
    report
}

/// Publishes `n` events of `event_type` with payload `{"i": i}` in one `publish_all` call;
/// returns their ids in order.
pub async fn publish_n(pool: &PgPool, event_type: &str, n: usize) -> Vec<Uuid> {
    let events: Vec<NewEvent> = (0..n)
        .map(|i| NewEvent::raw(event_type, serde_json::json!({ "i": i })))
        .collect();
    publish_events(pool, &events).await;
    events.iter().map(NewEvent::id).collect()
}

/// Publishes `events` in one `publish_all` call on a connection of `pool`.
pub async fn publish_events(pool: &PgPool, events: &[NewEvent]) {
    Publisher::new("tests")
        .expect("publisher")
        .publish_all(&mut pool.acquire().await.expect("conn"), events)
        .await
        .expect("publish");
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

/// A handler call as the handler saw it.
#[derive(Debug, Clone)]
#[allow(dead_code)]
pub struct Call {
    pub delivery_id: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub subscription: String,
    pub attempt: u32,
    pub source: String,
    pub subject: Option<String>,
    pub key: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub data: serde_json::Value,
    pub at: Instant,
}

impl Call {
    fn of(delivery: &Delivery) -> Call {
        Call {
            delivery_id: delivery.id,
            event_id: delivery.event.id,
            event_type: delivery.event.event_type.clone(),
            subscription: delivery.subscription.to_string(),
            attempt: delivery.attempt,
            source: delivery.event.source.clone(),
            subject: delivery.event.subject.clone(),
            key: delivery.event.key.clone(),
            headers: delivery.event.headers.clone(),
            data: delivery.event.data.clone(),
            at: Instant::now(),
        }
    }
}

/// Records every handler call; its handlers answer with a per-call closure.
#[derive(Debug, Clone, Default)]
pub struct Journal {
    calls: Arc<Mutex<Vec<Call>>>,
    running: Arc<AtomicUsize>,
    most_running: Arc<AtomicUsize>,
}

impl Journal {
    pub fn new() -> Journal {
        Journal::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Call>> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().clone()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Most handler calls of this journal running at the same time.
    pub fn most_running(&self) -> usize {
        self.most_running.load(Ordering::SeqCst)
    }

    /// A handler that records the call and succeeds.
    pub fn handler(&self) -> impl RawHandler {
        self.handler_with(|_| async { Ok::<(), HandlerError>(()) })
    }

    /// A handler that records the call, then runs `f` (given the delivery).
    pub fn handler_with<F, Fut>(&self, f: F) -> impl RawHandler
    where
        F: Fn(Delivery) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        Recording {
            journal: self.clone(),
            f,
        }
    }
}

struct Recording<F> {
    journal: Journal,
    f: F,
}

/// Decrements the running count even when the handler panics or is aborted.
struct RunningGuard<'a>(&'a AtomicUsize);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl<F, Fut> RawHandler for Recording<F>
where
    F: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let now = self.journal.running.fetch_add(1, Ordering::SeqCst) + 1;
        let _guard = RunningGuard(&self.journal.running);
        self.journal.most_running.fetch_max(now, Ordering::SeqCst);
        self.journal.lock().push(Call::of(delivery));
        (self.f)(delivery.clone()).await
    }
}
