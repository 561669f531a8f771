//! Retention on demand: what the dispatchers' maintenance prunes, now, in bounded batches.

use std::time::Duration;

use serde::Serialize;

use super::Admin;
use super::types::check_range;
use crate::dispatcher::PRUNE_LOCK_KEY;
use crate::error::Result;
use crate::sql;

/// The default number of rows one prune batch deletes.
const DEFAULT_BATCH: u32 = 5_000;

/// The most rows one prune batch may delete.
const MAX_BATCH: u32 = 100_000;

/// What [`Admin::prune`] deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    events_older_than: Option<Duration>,
    done_older_than: Option<Duration>,
    batch_size: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            events_older_than: None,
            done_older_than: None,
            batch_size: DEFAULT_BATCH,
        }
    }
}

impl Retention {
    /// Deletes nothing until told what.
    pub fn new() -> Retention {
        Retention::default()
    }

    /// Delete events older than this that no delivery refers to any more (every
    /// subscription is done with them), row by row. An event with a pending, running or
    /// dead delivery is never deleted. The dispatchers' own retention truncates whole slots
    /// of the events ring instead (see [`DispatcherBuilder::event_retention`](crate::DispatcherBuilder::event_retention)); this is for an
    /// age shorter than the ring keeps, e.g. right after lowering the retention.
    pub fn events_older_than(mut self, age: Duration) -> Self {
        self.events_older_than = Some(age);
        self
    }

    /// Delete retained done deliveries that finished longer ago than this.
    pub fn done_older_than(mut self, age: Duration) -> Self {
        self.done_older_than = Some(age);
        self
    }

    /// Rows one batch (one transaction) deletes, 1–100,000 (default 5,000).
    pub fn batch_size(mut self, n: u32) -> Self {
        self.batch_size = n;
        self
    }
}

/// How much a prune deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Events deleted.
    pub events: u64,
    /// Retained done deliveries deleted.
    pub deliveries: u64,
    /// Batches run.
    pub batches: u64,
}

impl Admin {
    /// Prunes by `retention` now, as the dispatchers' maintenance does (done deliveries
    /// first, then events). Returns what it deleted.
    ///
    /// # Errors
    ///
    /// See [`Admin::prune_with_progress`].
    pub async fn prune(&self, retention: &Retention) -> Result<PruneReport> {
        self.prune_with_progress(retention, |_| {}).await
    }

    /// Prunes by `retention` in batches of at most [`Retention::batch_size`] rows, each its
    /// own transaction, calling `progress` after each with the totals so far. Event batches
    /// wait for a dispatcher's prune batch or a replay batch running at the same time.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`](crate::Error::OutOfRange) (before anything is written),
    /// [`Error::Database`](crate::Error::Database).
    pub async fn prune_with_progress(
        &self,
        retention: &Retention,
        mut progress: impl FnMut(&PruneReport),
    ) -> Result<PruneReport> {
        check_range(
            "batch_size",
            retention.batch_size.into(),
            1,
            MAX_BATCH.into(),
        )?;
        let batch = i64::from(retention.batch_size);
        let mut report = PruneReport::default();
        if let Some(age) = retention.done_older_than {
            loop {
                let n = sqlx::query(sql::PRUNE_DONE)
                    .bind(age.as_secs_f64())
                    .bind(batch)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                report.deliveries += n;
                report.batches += 1;
                progress(&report);
                if n < batch as u64 {
                    break;
                }
            }
        }
        if let Some(age) = retention.events_older_than {
            loop {
                let mut tx = self.pool.begin().await?;
                sqlx::query(sql::ADMIN_PRUNE_LOCK)
                    .bind(PRUNE_LOCK_KEY)
                    .execute(&mut *tx)
                    .await?;
                let n = sqlx::query(sql::ADMIN_PRUNE_EVENTS)
                    .bind(age.as_secs_f64())
                    .bind(batch)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                report.events += n;
                report.batches += 1;
                progress(&report);
                if n < batch as u64 {
                    break;
                }
            }
        }
        Ok(report)
    }
}
