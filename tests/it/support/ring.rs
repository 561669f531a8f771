//! Turning the rings by hand: the delivery log's (`pgbus.log_rotate`) and the claims'
//! (`pgbus.claims_rotate`), with a zero period, so that the log switches slot every step.

use sqlx::PgPool;

/// One step of both rings: the log switches slot, then the claims' ring copies cursors out
/// of the partitions publishing left, or truncates one.
pub async fn step(pool: &PgPool) {
    sqlx::query("SELECT pgbus.log_rotate('0 s', '50 ms')")
        .execute(pool)
        .await
        .expect("rotating the delivery log");
    claims_step(pool).await;
}

/// One step of the claims' ring alone.
pub async fn claims_step(pool: &PgPool) {
    sqlx::query("SELECT pgbus.claims_rotate()")
        .execute(pool)
        .await
        .expect("rotating pgbus.claims");
}

/// Turns the log's ring `n` times, then lets the claims' ring catch up (the cursors, copied
/// forward at each turn, leave the partition they were copied from one step later).
pub async fn turn(pool: &PgPool, n: usize) {
    for _ in 0..n {
        step(pool).await;
    }
    for _ in 0..2 {
        claims_step(pool).await;
    }
}
