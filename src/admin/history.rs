//! Event history: an entity's events in publish order (its audit trail), and events by type
//! and time, each with what became of its deliveries.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::types::{Cursor, EventRecord, TimeRange, check_range, type_likes};
use super::{Admin, MAX_PAGE};
use crate::error::Result;
use crate::sql;
use crate::state::DeliveryState;

/// Which events [`Admin::events`] lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    types: Vec<String>,
    created: TimeRange,
}

impl EventQuery {
    /// Every event.
    pub fn new() -> EventQuery {
        EventQuery::default()
    }

    /// Only events whose type matches one of these patterns.
    pub fn types<S: Into<String>>(mut self, patterns: impl IntoIterator<Item = S>) -> Self {
        self.types = patterns.into_iter().map(Into::into).collect();
        self
    }

    /// Only events published within this range.
    pub fn created(mut self, range: TimeRange) -> Self {
        self.created = range;
        self
    }
}

/// What became of an event for one subscription.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryOutcome {
    /// The subscription.
    pub subscription: String,
    /// The delivery, or `None` when the subscription matches the event, existed when it was
    /// published, and has no delivery row for it: it was done (and deleted), discarded, or
    /// the subscription's patterns changed since.
    pub delivery_id: Option<i64>,
    /// The delivery's state (`None`: no row, as above).
    pub state: Option<DeliveryState>,
    /// Attempts made.
    pub attempts: Option<i32>,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it became done or dead.
    pub finished_at: Option<DateTime<Utc>>,
}

/// An event and its deliveries, by subscription.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventHistory {
    /// The event.
    pub event: EventRecord,
    /// What became of it for each subscription, by subscription name.
    pub deliveries: Vec<DeliveryOutcome>,
}

/// One page of events, in publish order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventPage {
    /// The events.
    pub events: Vec<EventHistory>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor<Uuid>>,
}

#[derive(sqlx::FromRow)]
struct OutcomeRow {
    event_id: Uuid,
    subscription: String,
    id: Option<i64>,
    state: Option<DeliveryState>,
    attempts: Option<i32>,
    last_error: Option<String>,
    finished_at: Option<DateTime<Utc>>,
}

/// Where a listing starts: after `after`, or at the beginning.
fn start(after: Option<Cursor<Uuid>>) -> (DateTime<Utc>, Uuid) {
    // 0001-01-01T00:00:00Z: before any event, and within PostgreSQL's range.
    let beginning = DateTime::from_timestamp(-62_135_596_800, 0).unwrap_or_default();
    after.map_or((beginning, Uuid::nil()), |c| (c.at, c.id))
}

impl Admin {
    /// One page of the events about `subject` (the entity's audit trail), in publish order
    /// (by `created_at`, then id), at most `limit` (1–[`MAX_PAGE`]); `after` is the previous
    /// page's [`next`](EventPage::next).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`](crate::Error::OutOfRange),
    /// [`Error::InvalidField`](crate::Error::InvalidField), [`Error::Database`](crate::Error::Database).
    pub async fn subject_history(
        &self,
        subject: &str,
        limit: u32,
        after: Option<Cursor<Uuid>>,
    ) -> Result<EventPage> {
        check_range("limit", limit.into(), 1, MAX_PAGE.into())?;
        crate::validate::validate_text("subject", subject)?;
        let (at, id) = start(after);
        let events: Vec<EventRecord> = sqlx::query_as(sql::ADMIN_EVENTS_SUBJECT)
            .bind(subject)
            .bind(at)
            .bind(id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        self.with_deliveries(events, limit).await
    }

    /// One page of the events matching `query`, in publish order (by `created_at`, then
    /// id), at most `limit` (1–[`MAX_PAGE`]); `after` is the previous page's
    /// [`next`](EventPage::next).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`](crate::Error::OutOfRange),
    /// [`Error::InvalidTimeRange`](crate::Error::InvalidTimeRange),
    /// [`Error::InvalidEventType`](crate::Error::InvalidEventType),
    /// [`Error::Database`](crate::Error::Database).
    pub async fn events(
        &self,
        query: &EventQuery,
        limit: u32,
        after: Option<Cursor<Uuid>>,
    ) -> Result<EventPage> {
        check_range("limit", limit.into(), 1, MAX_PAGE.into())?;
        query.created.check()?;
        let likes = type_likes(&query.types)?;
        let (at, id) = start(after);
        let events: Vec<EventRecord> = sqlx::query_as(sql::ADMIN_EVENTS_BY_TYPE)
            .bind(likes.as_deref())
            .bind(query.created.from)
            .bind(query.created.to)
            .bind(at)
            .bind(id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        self.with_deliveries(events, limit).await
    }

    async fn with_deliveries(&self, events: Vec<EventRecord>, limit: u32) -> Result<EventPage> {
        let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
        let rows: Vec<OutcomeRow> = if ids.is_empty() {
            Vec::new()
        } else {
            sqlx::query_as(sql::ADMIN_EVENT_DELIVERIES)
                .bind(&ids)
                .fetch_all(&self.pool)
                .await?
        };
        let mut by_event: HashMap<Uuid, Vec<DeliveryOutcome>> = HashMap::new();
        for r in rows {
            by_event
                .entry(r.event_id)
                .or_default()
                .push(DeliveryOutcome {
                    subscription: r.subscription,
                    delivery_id: r.id,
                    state: r.state,
                    attempts: r.attempts,
                    last_error: r.last_error,
                    finished_at: r.finished_at,
                });
        }
        let next = match events.last() {
            Some(last) if events.len() == limit as usize => Some(Cursor {
                at: last.created_at,
                id: last.id,
            }),
            _ => None,
        };
        let events = events
            .into_iter()
            .map(|event| EventHistory {
                deliveries: by_event.remove(&event.id).unwrap_or_default(),
                event,
            })
            .collect();
        Ok(EventPage { events, next })
    }
}
