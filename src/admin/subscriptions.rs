//! Subscriptions: what each holds and how far behind it is, pause and resume, removal.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Admin;
use super::types::{age, opt_secs};
use crate::error::{Error, Result};
use crate::sql;
use crate::subscription::validate_name;

/// A subscription's deliveries by state, wherever they live (`pgbus.all_deliveries`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, sqlx::FromRow)]
pub struct DeliveryCounts {
    /// Waiting to run (due now or later).
    pub pending: i64,
    /// Pending and due now.
    pub due: i64,
    /// Claimed by a dispatcher.
    pub running: i64,
    /// Dead letters.
    pub dead: i64,
    /// Done and retained (only with `retain_done`; otherwise done deliveries are deleted).
    pub done: i64,
    /// Dead, or done and retained, in the last minute.
    pub finished_last_minute: i64,
    /// Dead, or done and retained, in the last hour.
    pub finished_last_hour: i64,
    /// When the last retained or dead delivery finished.
    pub last_finished_at: Option<DateTime<Utc>>,
    /// The due time of the oldest pending delivery that is due.
    pub oldest_due: Option<DateTime<Utc>>,
}

/// One subscription, its deliveries and who serves it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubscriptionInfo {
    /// Its name.
    pub name: String,
    /// Its event type patterns.
    pub patterns: Vec<String>,
    /// `"active"` or `"paused"`.
    pub state: &'static str,
    /// Since when it is paused.
    pub paused_at: Option<DateTime<Utc>>,
    /// When it was first registered.
    pub created_at: DateTime<Utc>,
    /// When its patterns last changed.
    pub updated_at: DateTime<Utc>,
    /// Its deliveries by state.
    pub counts: DeliveryCounts,
    /// How long its oldest due pending delivery has been waiting (`None`: nothing due).
    #[serde(rename = "lag_seconds", serialize_with = "opt_secs")]
    pub lag: Option<Duration>,
    /// The live dispatchers that serve it (their ids in `pgbus.dispatchers`).
    pub dispatchers: Vec<i32>,
    /// When a dispatcher last claimed deliveries of it (`None`: not since schema version
    /// 12). Read from its lanes' rows of `pgbus.claims`, whose newest (the lane's cursor,
    /// never pruned) keeps the time of its last claim, and from its unfinished deliveries;
    /// nothing is written for it.
    pub last_claimed_at: Option<DateTime<Utc>>,
}

impl SubscriptionInfo {
    /// Whether claims skip it.
    pub fn is_paused(&self) -> bool {
        self.paused_at.is_some()
    }
}

/// What [`Admin::remove_subscription`] deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemovedSubscription {
    /// Pending deliveries deleted.
    pub pending: i64,
    /// Dead letters deleted.
    pub dead: i64,
    /// Retained done deliveries deleted.
    pub done: i64,
    /// Running deliveries left to finish under their lease (an outcome that makes one
    /// pending again leaves it pending with no subscription: remove a subscription once no
    /// dispatcher serves it).
    pub running: i64,
}

#[derive(sqlx::FromRow)]
struct Row {
    name: String,
    patterns: Vec<String>,
    paused_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    last_claimed_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct CountRow {
    subscription: String,
    #[sqlx(flatten)]
    counts: DeliveryCounts,
}

impl Admin {
    /// Every registered subscription, by name, with its counts, lag and live dispatchers.
    ///
    /// # Errors
    ///
    /// [`Error::Database`].
    pub async fn subscriptions(&self) -> Result<Vec<SubscriptionInfo>> {
        self.subscriptions_named(None).await
    }

    /// One subscription.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSubscriptionName`], [`Error::UnknownSubscription`], [`Error::Database`].
    pub async fn subscription(&self, name: &str) -> Result<SubscriptionInfo> {
        validate_name(name)?;
        self.subscriptions_named(Some(name))
            .await?
            .pop()
            .ok_or_else(|| Error::UnknownSubscription(name.to_owned()))
    }

    async fn subscriptions_named(&self, name: Option<&str>) -> Result<Vec<SubscriptionInfo>> {
        let rows: Vec<Row> = sqlx::query_as(sql::ADMIN_SUBSCRIPTIONS)
            .bind(name)
            .fetch_all(&self.pool)
            .await?;
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        let mut counts: HashMap<String, DeliveryCounts> =
            sqlx::query_as::<_, CountRow>(sql::ADMIN_SUBSCRIPTION_COUNTS)
                .bind(&names)
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(|c| (c.subscription, c.counts))
                .collect();
        let dispatchers = self.dispatchers().await?;
        let now = Utc::now();
        Ok(rows
            .into_iter()
            .map(|r| {
                let counts = counts.remove(&r.name).unwrap_or_default();
                let served = dispatchers
                    .iter()
                    .filter(|d| d.alive && d.subscriptions.contains(&r.name))
                    .map(|d| d.id)
                    .collect();
                SubscriptionInfo {
                    state: if r.paused_at.is_some() {
                        "paused"
                    } else {
                        "active"
                    },
                    lag: counts.oldest_due.map(|at| age(at, now)),
                    name: r.name,
                    patterns: r.patterns,
                    paused_at: r.paused_at,
                    created_at: r.created_at,
                    updated_at: r.updated_at,
                    counts,
                    dispatchers: served,
                    last_claimed_at: r.last_claimed_at,
                }
            })
            .collect())
    }

    /// Pauses a subscription across every dispatcher: claims skip it from their next round
    /// on (deliveries already claimed finish; publishing still creates its deliveries). The
    /// pause is stored in `pgbus.subscriptions` and survives dispatchers restarting.
    /// Returns whether it was active before.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSubscriptionName`], [`Error::UnknownSubscription`], [`Error::Database`].
    pub async fn pause(&self, name: &str) -> Result<bool> {
        validate_name(name)?;
        let row: Option<(Option<DateTime<Utc>>, bool)> = sqlx::query_as(sql::ADMIN_PAUSE)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|(_, changed)| changed)
            .ok_or_else(|| Error::UnknownSubscription(name.to_owned()))
    }

    /// Resumes a paused subscription. Returns whether it was paused.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSubscriptionName`], [`Error::UnknownSubscription`], [`Error::Database`].
    pub async fn resume(&self, name: &str) -> Result<bool> {
        validate_name(name)?;
        let changed: Option<bool> = sqlx::query_scalar(sql::ADMIN_RESUME)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        changed.ok_or_else(|| Error::UnknownSubscription(name.to_owned()))
    }

    /// Removes a subscription and its deliveries that are not running (pending, dead,
    /// retained done), in one statement. Publishing stops fanning out to it at once.
    /// Running deliveries are left to finish under their lease and counted. A dispatcher
    /// that still serves it registers it again when it starts: remove it from the code
    /// (and let its dispatchers stop) first.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSubscriptionName`], [`Error::UnknownSubscription`], [`Error::Database`].
    pub async fn remove_subscription(&self, name: &str) -> Result<RemovedSubscription> {
        validate_name(name)?;
        let (removed, pending, dead, done, running): (bool, i64, i64, i64, i64) =
            sqlx::query_as(sql::ADMIN_REMOVE_SUBSCRIPTION)
                .bind(name)
                .fetch_one(&self.pool)
                .await?;
        if !removed {
            return Err(Error::UnknownSubscription(name.to_owned()));
        }
        Ok(RemovedSubscription {
            pending,
            dead,
            done,
            running,
        })
    }

    /// [`Error::UnknownSubscription`] unless `name` is registered (after checking the name).
    pub(super) async fn ensure_subscription(&self, name: &str) -> Result<()> {
        validate_name(name)?;
        let rows: Vec<Row> = sqlx::query_as(sql::ADMIN_SUBSCRIPTIONS)
            .bind(name)
            .fetch_all(&self.pool)
            .await?;
        if rows.is_empty() {
            Err(Error::UnknownSubscription(name.to_owned()))
        } else {
            Ok(())
        }
    }
}
