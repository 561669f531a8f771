//! Replay and backfill: deliveries for a subscription from events already published, in
//! bounded batches, never a second delivery for one (event, subscription); and one event
//! delivered to one subscription again on demand.

use serde::Serialize;
use uuid::Uuid;

use super::Admin;
use super::types::{TimeRange, check_range, type_likes};
use crate::dispatcher::PRUNE_LOCK_KEY;
use crate::error::{Error, Result};
use crate::sql;
use crate::state::DeliveryState;

/// The first key of the replay locks, one per subscription ("pgbr").
const REPLAY_NAMESPACE: i32 = 0x7067_6272;

/// The default number of events one replay batch examines.
const DEFAULT_BATCH: u32 = 5_000;

/// The most events one replay batch may examine.
const MAX_BATCH: u32 = 50_000;

/// Which events to deliver to a subscription again ([`Admin::replay`]).
///
/// Only events whose type matches the subscription's patterns are replayed, narrowed by
/// [`created`](Replay::created), [`types`](Replay::types) and [`subject`](Replay::subject).
/// An event that has a delivery row for the subscription (pending, running, dead, or done
/// and retained) is skipped; one whose delivery finished and was deleted is delivered again:
/// that is what a replay is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    subscription: String,
    created: TimeRange,
    types: Vec<String>,
    subject: Option<String>,
    batch_size: u32,
}

impl Replay {
    /// Every event matching `subscription`'s patterns.
    pub fn new(subscription: impl Into<String>) -> Replay {
        Replay {
            subscription: subscription.into(),
            created: TimeRange::all(),
            types: Vec::new(),
            subject: None,
            batch_size: DEFAULT_BATCH,
        }
    }

    /// Only events published within this range.
    pub fn created(mut self, range: TimeRange) -> Self {
        self.created = range;
        self
    }

    /// Only events whose type matches one of these patterns.
    pub fn types<S: Into<String>>(mut self, patterns: impl IntoIterator<Item = S>) -> Self {
        self.types = patterns.into_iter().map(Into::into).collect();
        self
    }

    /// Only this subject's events (read through the subject index).
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// How many events one batch (one transaction) examines, 1–50,000 (default 5,000).
    pub fn batch_size(mut self, n: u32) -> Self {
        self.batch_size = n;
        self
    }
}

/// How far a replay got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    /// Events examined (all of them, or the subject's).
    pub examined: u64,
    /// Deliveries created.
    pub created: u64,
    /// Batches run (transactions committed).
    pub batches: u64,
}

/// What [`Admin::redeliver`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Redelivery {
    /// There was no delivery: this one was created, pending and due now.
    Created {
        /// The new delivery.
        id: i64,
    },
    /// The delivery was done (retained) or dead: it is pending again, due now, with a fresh
    /// set of attempts.
    Requeued {
        /// The delivery.
        id: i64,
        /// Its state before.
        was: DeliveryState,
    },
    /// The delivery is pending or running already: nothing was written.
    AlreadyQueued {
        /// The delivery.
        id: i64,
        /// Its state.
        state: DeliveryState,
    },
}

impl Admin {
    /// Replays events to a subscription (see [`Replay`]). Returns what it did.
    ///
    /// # Errors
    ///
    /// See [`Admin::replay_with_progress`].
    pub async fn replay(&self, replay: &Replay) -> Result<ReplayReport> {
        self.replay_with_progress(replay, |_| {}).await
    }

    /// Replays events to a subscription in batches of [`Replay::batch_size`] events
    /// examined, each in its own short transaction (so a replay of millions never holds one
    /// huge transaction, and an interrupted replay keeps what it did: running it again
    /// creates only what is still missing). Calls `progress` after each batch with the
    /// totals so far. Replays of one subscription run one batch at a time; event pruning
    /// waits for a batch.
    ///
    /// Each batch reads the subscription's deliveries once (no index leads from an event to
    /// its deliveries), so a replay costs more while the subscription holds a large backlog.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`], [`Error::InvalidTimeRange`], [`Error::InvalidEventType`],
    /// [`Error::InvalidField`] (the subject), [`Error::UnknownSubscription`] (all before
    /// anything is written), [`Error::Database`].
    pub async fn replay_with_progress(
        &self,
        replay: &Replay,
        mut progress: impl FnMut(&ReplayReport),
    ) -> Result<ReplayReport> {
        check_range("batch_size", replay.batch_size.into(), 1, MAX_BATCH.into())?;
        replay.created.check()?;
        let likes = type_likes(&replay.types)?;
        if let Some(subject) = &replay.subject {
            crate::validate::validate_text("subject", subject)?;
        }
        self.ensure_subscription(&replay.subscription).await?;
        let mut report = ReplayReport::default();
        let mut cursor = Uuid::nil();
        loop {
            let mut tx = self.pool.begin().await?;
            lock(&mut tx, &replay.subscription).await?;
            let (examined, last, created): (i64, Option<Uuid>, i64) =
                sqlx::query_as(sql::ADMIN_REPLAY)
                    .bind(&replay.subscription)
                    .bind(cursor)
                    .bind(i64::from(replay.batch_size))
                    .bind(replay.created.from)
                    .bind(replay.created.to)
                    .bind(likes.as_deref())
                    .bind(replay.subject.as_deref())
                    .fetch_one(&mut *tx)
                    .await?;
            tx.commit().await?;
            report.examined += examined as u64;
            report.created += created as u64;
            report.batches += 1;
            progress(&report);
            match last {
                Some(last) if examined >= i64::from(replay.batch_size) => cursor = last,
                _ => return Ok(report),
            }
        }
    }

    /// Delivers one event to one subscription again, now, whatever its type: creates the
    /// delivery if there is none, makes a done (retained) or dead one pending with a fresh
    /// set of attempts, and leaves a pending or running one alone. One transaction.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSubscriptionName`], [`Error::UnknownSubscription`],
    /// [`Error::UnknownEvent`] (nothing is written), [`Error::Database`].
    pub async fn redeliver(&self, event_id: Uuid, subscription: &str) -> Result<Redelivery> {
        self.ensure_subscription(subscription).await?;
        let mut tx = self.pool.begin().await?;
        lock(&mut tx, subscription).await?;
        let (exists, existing, state, written): (
            bool,
            Option<i64>,
            Option<DeliveryState>,
            Option<i64>,
        ) = sqlx::query_as(sql::ADMIN_REDELIVER)
            .bind(subscription)
            .bind(event_id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        match (existing, state, written) {
            _ if !exists => Err(Error::UnknownEvent(event_id)),
            (None, _, Some(id)) => Ok(Redelivery::Created { id }),
            (Some(id), Some(was), Some(_)) => Ok(Redelivery::Requeued { id, was }),
            (Some(id), Some(state), None) => Ok(Redelivery::AlreadyQueued { id, state }),
            _ => Err(Error::Internal(format!(
                "redelivery of {event_id} to {subscription}: unexpected result"
            ))),
        }
    }
}

/// Takes the subscription's replay lock and the pruning lock (shared) for the transaction.
async fn lock(tx: &mut sqlx::PgConnection, subscription: &str) -> Result<()> {
    sqlx::query(sql::ADMIN_REPLAY_LOCK)
        .bind(REPLAY_NAMESPACE)
        .bind(subscription)
        .bind(PRUNE_LOCK_KEY)
        .execute(tx)
        .await?;
    Ok(())
}
