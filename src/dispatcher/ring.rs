//! The delivery log's upkeep, every second on any dispatcher (a statement-level advisory
//! lock lets one rotate at a time): take back batches whose lease expired, truncate the
//! log's slots that every lane has read, move publishing to the next slot, do the same for
//! the partitions of `pgbus.claims` (copying lane cursors forward first), move the unread
//! rows of lanes that stopped claiming out of the log when they keep the ring from turning,
//! and now and then delete old closed batches (only found when the ring cannot turn).

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgConnection;
use tokio::time::Instant;

use super::connection::KeptConnection;
use super::shared::Shared;
use crate::sql;

/// How often the ring is looked after.
const TICK: Duration = Duration::from_secs(1);

/// How long a slot of the log takes inserts before publishing moves to the next one. With
/// four slots, a row stays readable at least three periods after it was published.
const PERIOD: Duration = Duration::from_secs(10);

/// How long a truncation waits for a slot's lock before leaving that slot for the next tick.
/// Every claim queues behind the waiting truncation (a claim's generic plans lock every
/// partition), so this bounds what the wait adds to a claim's pause; claims hold the lock
/// for a statement only, so it is nearly always had well within it. (The pause is also the
/// time the truncation holds the lock: `pgbus.log_slot_needed`, migration 0024, and the
/// TRUNCATE.)
const LOCK_TIMEOUT: Duration = Duration::from_millis(5);

/// How long a lane that keeps the ring from turning may go without a claim before its unread
/// rows are moved to `pgbus.deliveries` (a paused subscription, or one no dispatcher serves).
const STUCK_AFTER: Duration = Duration::from_secs(60);

/// Advisory lock key so that only one dispatcher rotates at a time.
const ROTATE_LOCK_KEY: i64 = 0x7067_6275_735f_7267; // "pgbus_rg"

/// Batches taken back per statement.
const SWEEP_BATCH: i32 = 100;

/// Closed batches older than this are deleted (each lane keeps its newest, its cursor).
const CLAIMS_KEPT: Duration = Duration::from_secs(60);

/// Closed batches deleted per statement.
const PRUNE_BATCH: i64 = 5_000;

pub(crate) async fn run(shared: Arc<Shared>) {
    let mut conn = KeptConnection::new(shared.pool.clone());
    let mut next_prune = Instant::now() + CLAIMS_KEPT;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = shared.signals.stop.cancelled() => return,
        }
        match conn.run(async |c| sweep(c).await).await {
            Ok(0) => {}
            Ok(rows) => {
                tracing::warn!(
                    rows,
                    "pgbus: took back the rows of batches whose lease expired; they will run alone"
                );
                shared.signals.side_rows_written();
            }
            Err(e) => {
                tracing::warn!(error = %e, "pgbus: taking back expired batches failed; will retry")
            }
        }
        if let Err(e) = conn.run(async |c| rotate(c).await).await {
            tracing::warn!(error = %e, "pgbus: rotating the delivery log failed; will retry");
        }
        if Instant::now() >= next_prune {
            next_prune = Instant::now() + CLAIMS_KEPT;
            if let Err(e) = conn.run(async |c| prune(c).await).await {
                tracing::warn!(error = %e, "pgbus: pruning closed batches failed; will retry");
            }
        }
    }
}

/// Takes back every batch whose lease expired; returns how many rows went to
/// `pgbus.deliveries` to be taken back there.
pub(crate) async fn sweep(conn: &mut PgConnection) -> sqlx::Result<i64> {
    let mut moved = 0;
    loop {
        let (batches, rows): (i64, i64) = sqlx::query_as(sql::SWEEP_CLAIMS)
            .bind(SWEEP_BATCH)
            .fetch_one(&mut *conn)
            .await?;
        moved += rows;
        if batches < i64::from(SWEEP_BATCH) {
            return Ok(moved);
        }
    }
}

/// One step of the ring, for the log, for `pgbus.claims`, then for stuck lanes; returns the log's slots
/// truncated (none when another session rotates).
async fn rotate(conn: &mut PgConnection) -> sqlx::Result<Vec<i16>> {
    let truncated: Option<Vec<i16>> = sqlx::query_scalar(sql::LOG_ROTATE)
        .bind(PERIOD.as_secs_f64())
        .bind(LOCK_TIMEOUT.as_secs_f64())
        .bind(ROTATE_LOCK_KEY)
        .fetch_optional(&mut *conn)
        .await?;
    let truncated = truncated.unwrap_or_default();
    if !truncated.is_empty() {
        tracing::debug!(?truncated, "pgbus: truncated slots of the delivery log");
    }
    let claims: Option<Vec<i16>> = sqlx::query_scalar(sql::CLAIMS_ROTATE)
        .bind(ROTATE_LOCK_KEY)
        .fetch_optional(&mut *conn)
        .await?;
    let claims = claims.unwrap_or_default();
    if !claims.is_empty() {
        tracing::debug!(?claims, "pgbus: truncated partitions of pgbus.claims");
    }
    let moved: Option<i64> = sqlx::query_scalar(sql::LOG_EVACUATE)
        .bind(PERIOD.as_secs_f64())
        .bind(STUCK_AFTER.as_secs_f64())
        .bind(ROTATE_LOCK_KEY)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(moved @ 1..) = moved {
        tracing::info!(
            moved,
            "pgbus: moved the unread deliveries of subscriptions that stopped claiming out of \
             the delivery log, so that its ring turns again"
        );
    }
    Ok(truncated)
}

/// Deletes old closed batches, a bounded number per statement.
async fn prune(conn: &mut PgConnection) -> sqlx::Result<u64> {
    let mut total = 0;
    loop {
        let n = sqlx::query(sql::PRUNE_CLAIMS)
            .bind(CLAIMS_KEPT.as_secs_f64())
            .bind(PRUNE_BATCH)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        total += n;
        if n < PRUNE_BATCH as u64 {
            return Ok(total);
        }
    }
}
