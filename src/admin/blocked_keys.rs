//! Blocked keys of ordered subscriptions: keys whose oldest unfinished delivery is retrying,
//! scheduled for later, or dead under the blocking dead-key policy, so that the key's later
//! deliveries wait (see the README's "Ordering" section).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::types::check_range;
use super::{Admin, MAX_PAGE};
use crate::error::{Error, Result};
use crate::sql;
use crate::state::DeliveryState;
use crate::subscription::validate_name;

/// Why a key of an ordered subscription cannot run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BlockedBy {
    /// Its head failed and waits for its next attempt (or was published with a later
    /// `deliver_at`): the key runs again when it is due.
    Retrying,
    /// Its head is dead and the subscription's [dead-key policy](crate::DeadKeyPolicy) is
    /// `Block`: the key waits until the dead letter is retried or discarded.
    Dead,
}

/// A key of an ordered subscription that cannot run now, with the delivery at its head.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockedKey {
    /// The event key.
    pub key: String,
    /// Why it waits.
    pub blocked_by: BlockedBy,
    /// The delivery at its head (the oldest unfinished one of the key).
    pub delivery_id: i64,
    /// When the head runs next (for [`BlockedBy::Retrying`]); for a dead head, when it was
    /// claimed last.
    pub run_at: DateTime<Utc>,
    /// The head's attempts so far.
    pub attempts: i32,
    /// The head's last error, if any.
    pub last_error: Option<String>,
    /// How many later deliveries of the key wait behind it.
    pub waiting: i64,
}

#[derive(sqlx::FromRow)]
struct Row {
    key: String,
    id: i64,
    state: i16,
    run_at: DateTime<Utc>,
    attempts: i32,
    last_error: Option<String>,
    waiting: i64,
}

impl Admin {
    /// The blocked keys of an ordered subscription, by key (byte order), at most `limit`
    /// (1–[`MAX_PAGE`]) after the key `after` (`None`: from the first). A key is blocked
    /// when its oldest unfinished delivery is retrying or scheduled for later, or dead while
    /// the subscription's dead-key policy is [`Block`](crate::DeadKeyPolicy::Block); a key
    /// whose delivery is running is busy, not blocked. An unordered subscription has none.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSubscriptionName`], [`Error::UnknownSubscription`],
    /// [`Error::OutOfRange`] for a limit out of range, [`Error::Database`].
    pub async fn blocked_keys(
        &self,
        subscription: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<BlockedKey>> {
        validate_name(subscription)?;
        check_range("limit", limit.into(), 1, MAX_PAGE.into())?;
        let ordered: Option<bool> = sqlx::query_scalar(sql::ADMIN_SUBSCRIPTION_ORDERED)
            .bind(subscription)
            .fetch_optional(&self.pool)
            .await?;
        match ordered {
            None => return Err(Error::UnknownSubscription(subscription.to_owned())),
            Some(false) => return Ok(Vec::new()),
            Some(true) => {}
        }
        let rows: Vec<Row> = sqlx::query_as(sql::ADMIN_BLOCKED_KEYS)
            .bind(subscription)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| BlockedKey {
                blocked_by: if r.state == DeliveryState::Dead as i16 {
                    BlockedBy::Dead
                } else {
                    BlockedBy::Retrying
                },
                key: r.key,
                delivery_id: r.id,
                run_at: r.run_at,
                attempts: r.attempts,
                last_error: r.last_error,
                waiting: r.waiting,
            })
            .collect())
    }
}
