//! The events ring (`pgbus.events_ring`, migrations 0014 and 0016) by hand: ageing it, so
//! that a test need not wait a retention period, and reading where events are.

use sqlx::PgPool;

/// Moves publishing to the next slot as if the current one had been closed `ago_secs`
/// seconds ago: every generation so far is dated back, and the new one opens then.
pub async fn close_current_slot(pool: &PgPool, ago_secs: f64) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "BEGIN;
         UPDATE pgbus.events_ring
         SET opened_at = least(opened_at, now() - {ago} * interval '1 second' - interval '1 ms');
         INSERT INTO pgbus.events_ring (generation, slot, opened_at)
         SELECT generation + 1, (slot + 1) % 8, now() - {ago} * interval '1 second'
         FROM pgbus.events_ring ORDER BY generation DESC LIMIT 1;
         COMMIT;",
        ago = ago_secs
    )))
    .execute(pool)
    .await
    .expect("closing the events ring's current slot");
}

/// The ring's current slot.
pub async fn current_slot(pool: &PgPool) -> i16 {
    sqlx::query_scalar("SELECT pgbus.events_slot()")
        .fetch_one(pool)
        .await
        .expect("the current slot")
}

/// How many events slot `slot` holds.
pub async fn events_in(pool: &PgPool, slot: i16) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pgbus.events WHERE slot = $1")
        .bind(slot)
        .fetch_one(pool)
        .await
        .expect("counting a slot's events")
}
