//! The `order_log` table: handlers of ordered fault tests record when each call started and
//! ended (database clock, in autocommit), so that a test can check, across killed processes,
//! that every key ran in publish order and never two calls of one key at once.

use std::collections::BTreeMap;

use pgbus::Delivery;
use sqlx::PgPool;

/// Creates `order_log` in the database of `pool`.
pub async fn create_order_log(pool: &PgPool) {
    sqlx::query(
        "CREATE TABLE order_log (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            key         text   NOT NULL,
            seq         int    NOT NULL,
            delivery_id bigint NOT NULL,
            attempt     int    NOT NULL,
            pid         int    NOT NULL,
            started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
            ended_at    timestamptz
        )",
    )
    .execute(pool)
    .await
    .expect("creating order_log");
}

/// A handler call: records its start, then its end (a call killed in between has none).
pub async fn run(pool: &PgPool, delivery: &Delivery, pid: u32) -> Result<(), sqlx::Error> {
    // Unkeyed events (unordered) are recorded under the key ''.
    let key = delivery.event.key.clone().unwrap_or_default();
    let seq = delivery.event.data["seq"].as_i64().unwrap_or(-1) as i32;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO order_log (key, seq, delivery_id, attempt, pid)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(&key)
    .bind(seq)
    .bind(delivery.id)
    .bind(delivery.attempt as i32)
    .bind(pid as i32)
    .fetch_one(pool)
    .await?;
    sqlx::query("UPDATE order_log SET ended_at = clock_timestamp() WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// One call: position, start and end in microseconds since the epoch, the worker's pid.
#[derive(Debug, Clone, Copy)]
pub struct Call {
    pub seq: i64,
    pub start: i64,
    pub end: Option<i64>,
    pub pid: i32,
}

/// Every call of a keyed event, per key, in start order.
pub async fn calls_by_key(pool: &PgPool) -> BTreeMap<String, Vec<Call>> {
    let rows: Vec<(String, i32, i64, Option<i64>, i32)> = sqlx::query_as(
        "SELECT key, seq,
                (extract(epoch FROM started_at) * 1e6)::int8,
                (extract(epoch FROM ended_at) * 1e6)::int8, pid
         FROM order_log WHERE key <> '' ORDER BY key, started_at, id",
    )
    .fetch_all(pool)
    .await
    .expect("reading order_log");
    let mut by_key: BTreeMap<String, Vec<Call>> = BTreeMap::new();
    for (key, seq, start, end, pid) in rows {
        by_key.entry(key).or_default().push(Call {
            seq: seq.into(),
            start,
            end,
            pid,
        });
    }
    by_key
}

/// How many (key, position) pairs of keyed events have a call that ended.
pub async fn handled(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT DISTINCT key, seq FROM order_log
                               WHERE ended_at IS NOT NULL AND key <> '') d",
    )
    .fetch_one(pool)
    .await
    .expect("counting order_log")
}
