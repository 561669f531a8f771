//! Maintenance: retention pruning of fully delivered events and of retained done
//! deliveries, so the tables level off instead of growing with the event count.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use super::Shared;

/// Advisory lock key so that only one dispatcher prunes at a time.
const PRUNE_LOCK_KEY: i64 = 0x7067_6275_735f_7072; // "pgbus_pr"

/// Rows deleted per statement, so one prune never holds many locks or a long transaction.
const PRUNE_BATCH: i64 = 5_000;

const PRUNE_EVENTS_SQL: &str = r#"
WITH lock AS (SELECT pg_try_advisory_xact_lock($3) AS got),
old AS (
    SELECT e.id FROM pgbus.events e, lock
    WHERE lock.got
      AND e.created_at < now() - $1 * interval '1 second'
      AND NOT EXISTS (SELECT 1 FROM pgbus.deliveries d WHERE d.event_id = e.id)
    LIMIT $2
)
DELETE FROM pgbus.events e USING old WHERE e.id = old.id
"#;

const PRUNE_DONE_SQL: &str = r#"
WITH old AS (
    SELECT id FROM pgbus.deliveries
    WHERE state = 2 AND finished_at < now() - $1 * interval '1 second'
    LIMIT $2
)
DELETE FROM pgbus.deliveries d USING old WHERE d.id = old.id
"#;

/// Every maintenance interval, prunes what retention allows.
pub(crate) async fn run(shared: Arc<Shared>) {
    let interval = shared.config.maintenance_interval;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shared.stop.cancelled() => return,
        }
        if let Err(e) = prune(
            &shared.pool,
            shared.config.event_retention,
            shared.config.done_retention,
        )
        .await
        {
            tracing::warn!(error = %e, "pgbus: pruning failed; will retry");
        }
    }
}

/// Deletes events older than `event_retention` that have no delivery left (every
/// subscription is done with them), and done deliveries older than `done_retention`.
/// Returns the number of events and deliveries deleted.
pub(crate) async fn prune(
    pool: &PgPool,
    event_retention: Option<Duration>,
    done_retention: Duration,
) -> sqlx::Result<(u64, u64)> {
    let mut deliveries = 0;
    loop {
        let n = sqlx::query(PRUNE_DONE_SQL)
            .bind(done_retention.as_secs_f64())
            .bind(PRUNE_BATCH)
            .execute(pool)
            .await?
            .rows_affected();
        deliveries += n;
        if n < PRUNE_BATCH as u64 {
            break;
        }
    }
    let mut events = 0;
    if let Some(retention) = event_retention {
        loop {
            let n = sqlx::query(PRUNE_EVENTS_SQL)
                .bind(retention.as_secs_f64())
                .bind(PRUNE_BATCH)
                .bind(PRUNE_LOCK_KEY)
                .execute(pool)
                .await?
                .rows_affected();
            events += n;
            if n < PRUNE_BATCH as u64 {
                break;
            }
        }
    }
    if events + deliveries > 0 {
        tracing::debug!(events, deliveries, "pgbus: pruned");
    }
    Ok((events, deliveries))
}
