//! Dead letters: list them (filtered, newest first, by pages), retry them, discard them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::types::{Cursor, TimeRange, check_range, type_likes};
use super::{Admin, MAX_PAGE};
use crate::error::{Error, Result};
use crate::sql;
use crate::state::DeliveryState;

/// Which dead letters a listing, retry or discard applies to. Empty, it matches every dead
/// letter; each setting narrows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterFilter {
    ids: Option<Vec<i64>>,
    subscription: Option<String>,
    event_type: Option<String>,
    finished: TimeRange,
    error: Option<String>,
}

impl DeadLetterFilter {
    /// Every dead letter.
    pub fn new() -> DeadLetterFilter {
        DeadLetterFilter::default()
    }

    /// Only these deliveries.
    pub fn ids(mut self, ids: impl IntoIterator<Item = i64>) -> Self {
        self.ids = Some(ids.into_iter().collect());
        self
    }

    /// Only this subscription's (it must exist).
    pub fn subscription(mut self, name: impl Into<String>) -> Self {
        self.subscription = Some(name.into());
        self
    }

    /// Only events whose type matches this pattern (`property.created`, `property.*`).
    pub fn event_type(mut self, pattern: impl Into<String>) -> Self {
        self.event_type = Some(pattern.into());
        self
    }

    /// Only those that died within this range.
    pub fn finished(mut self, range: TimeRange) -> Self {
        self.finished = range;
        self
    }

    /// Only those whose last error contains this text, ignoring case.
    pub fn error_contains(mut self, text: impl Into<String>) -> Self {
        self.error = Some(text.into());
        self
    }

    /// Checks every setting; returns the type as a `LIKE` pattern.
    async fn check(&self, admin: &Admin) -> Result<Option<String>> {
        self.finished.check()?;
        let like = match &self.event_type {
            Some(p) => type_likes(std::slice::from_ref(p))?.and_then(|mut l| l.pop()),
            None => None,
        };
        if let Some(name) = &self.subscription {
            admin.ensure_subscription(name).await?;
        }
        Ok(like)
    }

    /// Binds `$1..$6` of the dead-letter statements.
    fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
        like: Option<String>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(self.ids.as_deref())
            .bind(self.subscription.as_deref())
            .bind(like)
            .bind(self.finished.from)
            .bind(self.finished.to)
            .bind(self.error.as_deref())
    }
}

/// How a retried dead letter counts its attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryMode {
    /// Attempts start again from zero: a fresh set of `max_attempts`.
    ResetAttempts,
    /// Attempts are kept: one more attempt, dead again if it fails.
    KeepAttempts,
}

/// One dead letter, as listed.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DeadLetter {
    /// The delivery id.
    pub id: i64,
    /// Its event.
    pub event_id: Uuid,
    /// Its subscription.
    pub subscription: String,
    /// Attempts made.
    pub attempts: i32,
    /// Why it died.
    pub last_error: Option<String>,
    /// When the delivery was created.
    pub created_at: DateTime<Utc>,
    /// When it died.
    pub finished_at: Option<DateTime<Utc>>,
    /// The event's type (`None` if the event is gone).
    pub event_type: Option<String>,
    /// The event's subject.
    pub subject: Option<String>,
}

/// One page of dead letters, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetterPage {
    /// The dead letters.
    pub items: Vec<DeadLetter>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor<i64>>,
}

impl Admin {
    /// One page of the dead letters matching `filter`, newest first (by when they died),
    /// at most `limit` (1–[`MAX_PAGE`]); `before` is the previous page's
    /// [`next`](DeadLetterPage::next).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`], [`Error::InvalidTimeRange`], [`Error::InvalidEventType`],
    /// [`Error::UnknownSubscription`], [`Error::Database`].
    pub async fn dead_letters(
        &self,
        filter: &DeadLetterFilter,
        limit: u32,
        before: Option<Cursor<i64>>,
    ) -> Result<DeadLetterPage> {
        check_range("limit", limit.into(), 1, MAX_PAGE.into())?;
        let like = filter.check(self).await?;
        let items: Vec<DeadLetter> = filter
            .bind(sqlx::query(sql::ADMIN_DEAD_LIST), like)
            .bind(before.map(|c| c.at))
            .bind(before.map(|c| c.id))
            .bind(i64::from(limit))
            .try_map(|row| sqlx::FromRow::from_row(&row))
            .fetch_all(&self.pool)
            .await?;
        let next = match items.last() {
            Some(last) if items.len() == limit as usize => {
                last.finished_at.map(|at| Cursor { at, id: last.id })
            }
            _ => None,
        };
        Ok(DeadLetterPage { items, next })
    }

    /// Makes one dead letter pending again, due now; `mode` says what becomes of its
    /// attempts. Its `last_error` and failure history are kept.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownDelivery`], [`Error::NotDead`] (nothing is written), [`Error::Database`].
    pub async fn retry_dead_letter(&self, id: i64, mode: RetryMode) -> Result<()> {
        let filter = DeadLetterFilter::new().ids([id]);
        if self.retry_dead_letters(&filter, mode).await? == 0 {
            return Err(self.not_dead(id).await);
        }
        Ok(())
    }

    /// Makes every dead letter matching `filter` pending again, due now, in one statement.
    /// Returns how many.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidTimeRange`], [`Error::InvalidEventType`],
    /// [`Error::UnknownSubscription`], [`Error::Database`].
    pub async fn retry_dead_letters(
        &self,
        filter: &DeadLetterFilter,
        mode: RetryMode,
    ) -> Result<u64> {
        let like = filter.check(self).await?;
        let done = filter
            .bind(sqlx::query(sql::ADMIN_DEAD_RETRY), like)
            .bind(mode == RetryMode::ResetAttempts)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Deletes one dead letter (its event stays until retention prunes it).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownDelivery`], [`Error::NotDead`] (nothing is written), [`Error::Database`].
    pub async fn discard_dead_letter(&self, id: i64) -> Result<()> {
        if self
            .discard_dead_letters(&DeadLetterFilter::new().ids([id]))
            .await?
            == 0
        {
            return Err(self.not_dead(id).await);
        }
        Ok(())
    }

    /// Deletes every dead letter matching `filter`, in one statement. Returns how many.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidTimeRange`], [`Error::InvalidEventType`],
    /// [`Error::UnknownSubscription`], [`Error::Database`].
    pub async fn discard_dead_letters(&self, filter: &DeadLetterFilter) -> Result<u64> {
        let like = filter.check(self).await?;
        let done = filter
            .bind(sqlx::query(sql::ADMIN_DEAD_DISCARD), like)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Why delivery `id` was not retried or discarded: it does not exist, or is not dead.
    async fn not_dead(&self, id: i64) -> Error {
        let state: sqlx::Result<Option<DeliveryState>> =
            sqlx::query_scalar(sql::ADMIN_DELIVERY_STATE)
                .bind(id)
                .fetch_optional(&self.pool)
                .await;
        match state {
            Ok(Some(state)) => Error::NotDead { id, state },
            Ok(None) => Error::UnknownDelivery(id),
            Err(e) => Error::Database(e),
        }
    }
}
