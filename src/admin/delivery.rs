//! One delivery in full: its event, its attempts, and why its earlier attempts failed.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::Admin;
use super::types::{EventRecord, opt_secs};
use crate::error::{Error, Result};
use crate::sql;
use crate::state::DeliveryState;

/// One failed attempt of a delivery (the failure history keeps the last 10).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// The attempt's number.
    pub attempt: i32,
    /// When its failure was written.
    pub failed_at: DateTime<Utc>,
    /// How long the attempt's handler ran, as the dispatcher measured it (`None` for an
    /// attempt whose handler did not run, e.g. an event that could not be read, and for
    /// failures written before schema version 12).
    #[serde(rename = "duration_seconds", serialize_with = "opt_secs")]
    pub duration: Option<Duration>,
    /// The error.
    pub error: String,
}

/// A delivery in full, as [`Admin::delivery`] shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryDetail {
    /// The delivery id.
    pub id: i64,
    /// Its subscription.
    pub subscription: String,
    /// Its state.
    pub state: DeliveryState,
    /// Attempts started.
    pub attempts: i32,
    /// Pending: when it is due; running: when its lease expires.
    pub run_at: DateTime<Utc>,
    /// Whether it is a crash suspect (its previous lease expired).
    pub solo: bool,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it became done or dead.
    pub finished_at: Option<DateTime<Utc>>,
    /// The dispatcher that claimed it last.
    pub owner: Option<i32>,
    /// Its event's id.
    pub event_id: Uuid,
    /// Its event (`None` if the event is gone).
    pub event: Option<EventRecord>,
    /// Its last failed attempts, oldest first.
    pub failures: Vec<Failure>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    event_id: Uuid,
    subscription: String,
    state: DeliveryState,
    attempts: i32,
    run_at: DateTime<Utc>,
    solo: bool,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    owner: Option<i32>,
    event_type: Option<String>,
    source: Option<String>,
    subject: Option<String>,
    key: Option<String>,
    data: Option<serde_json::Value>,
    headers: Option<sqlx::types::Json<BTreeMap<String, String>>>,
    dedupe_key: Option<String>,
    priority: Option<i16>,
    event_created_at: Option<DateTime<Utc>>,
}

impl Admin {
    /// One delivery, in any state, with its event and failure history.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownDelivery`], [`Error::Database`].
    pub async fn delivery(&self, id: i64) -> Result<DeliveryDetail> {
        let row: Row = sqlx::query_as(sql::ADMIN_DELIVERY)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(Error::UnknownDelivery(id))?;
        let failures: Vec<(i32, DateTime<Utc>, Option<f64>, String)> =
            sqlx::query_as(sql::ADMIN_DELIVERY_FAILURES)
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
        let event = match (row.event_type, row.source, row.data, row.event_created_at) {
            (Some(event_type), Some(source), Some(data), Some(created_at)) => Some(EventRecord {
                id: row.event_id,
                event_type,
                source,
                subject: row.subject,
                key: row.key,
                data,
                headers: row.headers.map(|h| h.0).unwrap_or_default(),
                dedupe_key: row.dedupe_key,
                priority: row.priority.unwrap_or(0),
                created_at,
            }),
            _ => None,
        };
        Ok(DeliveryDetail {
            id: row.id,
            subscription: row.subscription,
            state: row.state,
            attempts: row.attempts,
            run_at: row.run_at,
            solo: row.solo,
            last_error: row.last_error,
            created_at: row.created_at,
            finished_at: row.finished_at,
            owner: row.owner,
            event_id: row.event_id,
            event,
            failures: failures
                .into_iter()
                .map(|(attempt, failed_at, secs, error)| Failure {
                    attempt,
                    failed_at,
                    duration: secs.map(Duration::from_secs_f64),
                    error,
                })
                .collect(),
        })
    }
}
