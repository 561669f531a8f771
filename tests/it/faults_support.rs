//! Helpers shared by the fault tests (`faults_*` modules): test sizes (short by default,
//! long with `PGBUS_FAULTS_LONG=1`), bounded waits, the table handlers record their calls in,
//! and reading the queue tables.

use std::future::Future;
use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use crate::support::wait_for;

/// Whether the long variants were asked for (`PGBUS_FAULTS_LONG=1`).
pub fn long_mode() -> bool {
    std::env::var("PGBUS_FAULTS_LONG").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `short` normally, `long` with `PGBUS_FAULTS_LONG=1`.
pub fn size<T>(short: T, long: T) -> T {
    if long_mode() { long } else { short }
}

/// Whether fault tests should print more (worker logs): `PGBUS_FAULTS_VERBOSE=1`.
pub fn verbose() -> bool {
    std::env::var("PGBUS_FAULTS_VERBOSE").is_ok_and(|v| !v.is_empty() && v != "0")
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

/// Runs a query returning one `bigint`; `None` if it fails (e.g. the server is down).
pub async fn try_scalar(pool: &PgPool, sql: &str) -> Option<i64> {
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
        .fetch_one(pool)
        .await
        .ok()
}

/// Runs a query returning one `bigint`, panicking on error.
pub async fn scalar(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Delivery states.
pub const PENDING: i16 = 0;
pub const RUNNING: i16 = 1;
pub const DONE: i16 = 2;
pub const DEAD: i16 = 3;

/// One row of `pgbus.deliveries`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Row {
    pub id: i64,
    pub event_id: Uuid,
    pub state: i16,
    pub attempts: i32,
    pub solo: bool,
    pub last_error: Option<String>,
}

/// Every delivery row, by id.
pub async fn rows(pool: &PgPool) -> Vec<Row> {
    sqlx::query_as(
        "SELECT id, event_id, state, attempts, solo, last_error FROM pgbus.deliveries ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .expect("reading pgbus.deliveries")
}

/// One delivery row by id, `None` if it is gone.
pub async fn row(pool: &PgPool, id: i64) -> Option<Row> {
    sqlx::query_as(
        "SELECT id, event_id, state, attempts, solo, last_error FROM pgbus.deliveries WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
    .expect("reading a delivery")
}

/// The table handlers record each call in, in autocommit, before returning `Ok`: one row per
/// handler call that got that far.
pub const CREATE_LOG_TABLE: &str = "CREATE TABLE fault_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     uuid   NOT NULL,
    subscription text   NOT NULL,
    delivery_id  bigint NOT NULL,
    attempt      int    NOT NULL,
    pid          int    NOT NULL,
    at           timestamptz NOT NULL DEFAULT clock_timestamp()
)";

/// Records one handler call in `fault_log`.
pub async fn record(
    pool: &PgPool,
    delivery: &pgbus::Delivery,
    pid: u32,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO fault_log (event_id, subscription, delivery_id, attempt, pid)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(delivery.event.id)
    .bind(&*delivery.subscription)
    .bind(delivery.id)
    .bind(delivery.attempt as i32)
    .bind(pid as i32)
    .execute(pool)
    .await
    .map(|_| ())
}

/// One row of `fault_log`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LogRow {
    pub event_id: Uuid,
    pub subscription: String,
    pub delivery_id: i64,
    pub attempt: i32,
    pub pid: i32,
}

/// Every `fault_log` row, in insertion order.
pub async fn log_rows(pool: &PgPool) -> Vec<LogRow> {
    sqlx::query_as(
        "SELECT event_id, subscription, delivery_id, attempt, pid FROM fault_log ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .expect("reading fault_log")
}

/// How many (event, subscription) pairs of the given events, for the given subscriptions,
/// have no `fault_log` row: deliveries lost.
pub async fn lost_pairs(pool: &PgPool, events: &[Uuid], subscriptions: &[&str]) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM unnest($1::uuid[]) AS e(id) CROSS JOIN unnest($2::text[]) AS s(name)
         WHERE NOT EXISTS (SELECT 1 FROM fault_log l
                           WHERE l.event_id = e.id AND l.subscription = s.name)",
    )
    .bind(events)
    .bind(subscriptions)
    .fetch_one(pool)
    .await
    .expect("counting lost deliveries")
}

/// (state, count) of the delivery rows, for failure messages.
pub async fn state_counts(pool: &PgPool) -> Vec<(i16, i64)> {
    sqlx::query_as("SELECT state, count(*) FROM pgbus.deliveries GROUP BY state ORDER BY state")
        .fetch_all(pool)
        .await
        .unwrap_or_default()
}
