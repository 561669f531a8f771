//! Reading the deliveries (`pgbus.all_deliveries`: the rows of `pgbus.deliveries` and the
//! delivery log's unfinished rows): every row, one row, and counts by state.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::states::State;

/// One delivery, as `pgbus.all_deliveries` shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
#[allow(dead_code)] // Read in failure messages (`{row:?}`) when no test names a field.
pub struct DeliveryRow {
    pub id: i64,
    pub event_id: Uuid,
    pub subscription: String,
    pub state: State,
    pub attempts: i32,
    pub solo: bool,
    pub last_error: Option<String>,
    pub run_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// `SELECT <the DeliveryRow columns> FROM pgbus.all_deliveries <tail>`, as a `&'static str`.
macro_rules! select_rows {
    ($tail:literal) => {
        concat!(
            "SELECT id, event_id, subscription, state, attempts, solo, last_error, run_at,
                    finished_at
             FROM pgbus.all_deliveries ",
            $tail
        )
    };
}

/// Every delivery row, by id.
pub async fn deliveries(pool: &PgPool) -> Vec<DeliveryRow> {
    sqlx::query_as(select_rows!("ORDER BY id"))
        .fetch_all(pool)
        .await
        .expect("reading pgbus.all_deliveries")
}

/// One delivery row by id, `None` if it is gone.
pub async fn delivery(pool: &PgPool, id: i64) -> Option<DeliveryRow> {
    sqlx::query_as(select_rows!("WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
        .expect("reading a delivery")
}

/// The one delivery row of `subscription`; panics if there is not exactly one.
pub async fn only_delivery(pool: &PgPool, subscription: &str) -> DeliveryRow {
    let mut rows: Vec<DeliveryRow> =
        sqlx::query_as(select_rows!("WHERE subscription = $1 ORDER BY id"))
            .bind(subscription)
            .fetch_all(pool)
            .await
            .expect("reading the deliveries of a subscription");
    assert_eq!(
        rows.len(),
        1,
        "expected exactly one delivery for {subscription}, have {rows:#?}"
    );
    rows.remove(0)
}

/// How many delivery rows there are.
pub async fn delivery_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pgbus.all_deliveries")
        .fetch_one(pool)
        .await
        .expect("counting deliveries")
}

/// How many delivery rows are in one of `states`.
pub async fn delivery_count_in(pool: &PgPool, states: &[State]) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pgbus.all_deliveries WHERE state = ANY($1)")
        .bind(states)
        .fetch_one(pool)
        .await
        .expect("counting deliveries by state")
}

/// How many delivery rows are in none of `states`.
pub async fn delivery_count_not_in(pool: &PgPool, states: &[State]) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pgbus.all_deliveries WHERE state <> ALL($1)")
        .bind(states)
        .fetch_one(pool)
        .await
        .expect("counting deliveries by state")
}

/// (state, count) of the delivery rows, for failure messages; empty if it cannot be read.
pub async fn state_counts(pool: &PgPool) -> Vec<(State, i64)> {
    sqlx::query_as("SELECT state, count(*) FROM pgbus.all_deliveries GROUP BY state ORDER BY state")
        .fetch_all(pool)
        .await
        .unwrap_or_default()
}
