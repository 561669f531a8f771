//! Maintenance: event retention (the events ring turns, and its slots past the retention are
//! truncated once their survivors moved forward: `pgbus.events_rotate`, migration 0016),
//! pruning of retained done deliveries and of dedupe keys, so the tables level off instead
//! of growing with the event count; the done
//! markers of transactional handlers once their batches are closed; the sampled gauges of the
//! metrics feature (`crate::telemetry::gauges`); and when each served subscription was last
//! claimed (`src/sql/record_last_claimed.sql`).

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use super::connection::KeptConnection;
use super::pooler;
use super::shared::Shared;
use crate::{sql, telemetry};

/// Advisory lock key so that only one dispatcher prunes at a time.
pub(crate) const PRUNE_LOCK_KEY: i64 = 0x7067_6275_735f_7072; // "pgbus_pr"

/// Advisory lock key so that only one dispatcher vacuums at a time.
const VACUUM_LOCK_KEY: i64 = 0x7067_6275_735f_7663; // "pgbus_vc"

/// Rows deleted per statement, so one prune never holds many locks or a long transaction.
const PRUNE_BATCH: i64 = 5_000;

/// How long the events ring waits for a slot's lock before leaving it for the next
/// maintenance (claims queue behind the truncation meanwhile, as in `ring.rs`).
const RING_LOCK_TIMEOUT: Duration = Duration::from_millis(5);

/// How often the dead tuples of `pgbus.deliveries` are looked at.
const VACUUM_CHECK: Duration = Duration::from_secs(5);

/// Dead tuples in `pgbus.deliveries` past which a dispatcher vacuums it itself. Every
/// delivery leaves about two (claim, completion); autovacuum's launcher only looks every
/// `autovacuum_naptime` (1 min by default), long enough for hundreds of thousands to pile
/// up in front of the claim's index scan.
const VACUUM_DEAD_TUPLES: i64 = 50_000;

/// Every maintenance interval, prunes what retention allows; every few seconds, vacuums
/// the deliveries table when dead tuples pile up (one dispatcher at a time).
pub(crate) async fn run(shared: Arc<Shared>) {
    let interval = shared.config.maintenance_interval;
    let mut next_prune = tokio::time::Instant::now() + interval;
    // The vacuum lock is session-level (VACUUM cannot run in a transaction): behind a
    // transaction pooler it needs the session pool, else vacuuming is left to autovacuum.
    let config = &shared.config;
    let vacuum_pool = match (&config.session_pool, config.transaction_pooler) {
        (Some(session), _) => Some(session),
        (None, false) => Some(&shared.pool),
        (None, true) => None,
    };
    let mut vacuum = config.vacuum && vacuum_pool.is_some();
    // The look-ups every few seconds (gauges, dead tuples) on a connection of their own with
    // the dispatcher's settings: planned once, not on whichever connection of the pool, for
    // every one of them (measured: the first sample on a connection took 8 ms of planning
    // and compiling, at 200 events/s the slowest claim of its second).
    let mut checks = KeptConnection::new(shared.pool.clone());
    // The first tick is at once: the gauges are known from the start.
    let mut ticks = tokio::time::interval(VACUUM_CHECK.min(interval));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shared.signals.stop.cancelled() => return,
        }
        let names: Vec<&str> = shared.subs.iter().map(|s| &*s.name).collect();
        if telemetry::gauges::ENABLED {
            let pooled = config.transaction_pooler;
            let sampled = checks.run(async |c| telemetry::gauges::sample(c, &names, pooled).await);
            if let Err(e) = sampled.await {
                tracing::debug!(error = %e, "pgbus: sampling the gauges failed; will retry");
            }
        }
        if let (true, Some(pool)) = (vacuum, vacuum_pool) {
            match vacuum_if_needed(&mut checks, pool).await {
                Ok(_) => {}
                Err(e) if is_permission_error(&e) => {
                    tracing::warn!(error = %e, "pgbus: not allowed to VACUUM pgbus.deliveries; leaving it to autovacuum");
                    vacuum = false;
                }
                Err(e) => tracing::warn!(error = %e, "pgbus: vacuuming failed; will retry"),
            }
        }
        if shared.subs.iter().any(|s| s.sub.is_transactional()) {
            prune_tx_done(&shared).await;
        }
        if tokio::time::Instant::now() < next_prune {
            continue;
        }
        next_prune = tokio::time::Instant::now() + interval;
        if let Err(e) = prune(
            &shared.pool,
            config.transaction_pooler,
            shared.config.event_retention,
            shared.config.done_retention,
        )
        .await
        {
            tracing::warn!(error = %e, "pgbus: pruning failed; will retry");
        }
        if let Some(retention) = config.dedupe_retention() {
            let keys = prune_dedupe_keys(&shared.pool, config.transaction_pooler, retention);
            if let Err(e) = keys.await {
                tracing::warn!(error = %e, "pgbus: pruning dedupe keys failed; will retry");
            }
        }
    }
}

/// Deletes the done markers of transactional handlers whose batch is closed (every few
/// seconds, so they do not pile up in `pgbus.deliveries` under a fast drain).
async fn prune_tx_done(shared: &Shared) {
    let pruned = in_batches(|| async {
        let markers = sqlx::query(sql::PRUNE_TX_DONE).bind(PRUNE_BATCH);
        let done = pooler::execute(&shared.pool, shared.config.transaction_pooler, markers);
        Ok(done.await?.rows_affected())
    })
    .await;
    if let Err(e) = pruned {
        tracing::warn!(error = %e, "pgbus: pruning the done markers of transactional handlers failed; will retry");
    }
}

/// Vacuums `pgbus.deliveries` when its dead tuples (looked up on `checks`) passed the
/// threshold and no other session holds the vacuum lock; returns whether it did.
async fn vacuum_if_needed(checks: &mut KeptConnection, pool: &PgPool) -> sqlx::Result<bool> {
    let dead: Option<i64> = (checks
        .run(async |c| sqlx::query_scalar(sql::DEAD_TUPLES).fetch_optional(c).await))
    .await?;
    let dead = dead.unwrap_or(0);
    if dead < VACUUM_DEAD_TUPLES {
        return Ok(false);
    }
    let mut conn = pool.acquire().await?;
    let got: bool = sqlx::query_scalar(sql::TRY_ADVISORY_LOCK)
        .bind(VACUUM_LOCK_KEY)
        .fetch_one(&mut *conn)
        .await?;
    if !got {
        return Ok(false);
    }
    let result = sqlx::query(sql::VACUUM_DELIVERIES)
        .execute(&mut *conn)
        .await;
    let unlock = sqlx::query(sql::ADVISORY_UNLOCK)
        .bind(VACUUM_LOCK_KEY)
        .execute(&mut *conn)
        .await;
    result?;
    unlock?;
    tracing::debug!(dead, "pgbus: vacuumed pgbus.deliveries");
    Ok(true)
}

fn is_permission_error(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "42501")
}

/// Deletes done deliveries older than `done_retention`, then takes one step of the events
/// ring for `event_retention` (none when it is `None`: the ring never turns). Returns the
/// number of ring steps taken (0 when another dispatcher held the lock) and of deliveries
/// deleted. Behind a transaction pooler (`pooled`), each statement runs in a transaction of
/// its own (`pooler.rs`).
pub(crate) async fn prune(
    pool: &PgPool,
    pooled: bool,
    event_retention: Option<Duration>,
    done_retention: Duration,
) -> sqlx::Result<(u64, u64)> {
    let deliveries = in_batches(|| async {
        let done = sqlx::query(sql::PRUNE_DONE)
            .bind(done_retention.as_secs_f64())
            .bind(PRUNE_BATCH);
        Ok(pooler::execute(pool, pooled, done).await?.rows_affected())
    })
    .await?;
    let events = match event_retention {
        Some(retention) => {
            let step = sqlx::query(sql::EVENTS_ROTATE)
                .bind(retention.as_secs_f64())
                .bind(RING_LOCK_TIMEOUT.as_secs_f64())
                .bind(true)
                .bind(PRUNE_LOCK_KEY);
            pooler::execute(pool, pooled, step).await?.rows_affected()
        }
        None => 0,
    };
    if deliveries > 0 {
        tracing::debug!(deliveries, "pgbus: pruned");
    }
    Ok((events, deliveries))
}

/// Deletes the dedupe keys older than `retention`; returns how many.
async fn prune_dedupe_keys(pool: &PgPool, pooled: bool, retention: Duration) -> sqlx::Result<u64> {
    in_batches(|| async {
        let old = sqlx::query(sql::PRUNE_DEDUPE_KEYS)
            .bind(retention.as_secs_f64())
            .bind(PRUNE_BATCH);
        Ok(pooler::execute(pool, pooled, old).await?.rows_affected())
    })
    .await
}

/// Runs a deletion of at most `PRUNE_BATCH` rows until one deletes fewer; returns the total.
async fn in_batches<F, Fut>(mut delete: F) -> sqlx::Result<u64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = sqlx::Result<u64>>,
{
    let mut total = 0;
    loop {
        let n = delete().await?;
        total += n;
        if n < PRUNE_BATCH as u64 {
            return Ok(total);
        }
    }
}
