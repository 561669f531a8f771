//! Claimed rows whose event was not in the slot of the events ring they named. The ring moves
//! an event forward (`pgbus.events_rotate`, migration 0016) and gives every row that refers
//! to it the new slot; a row copied at that moment from an older copy (a batch's row written
//! to `pgbus.deliveries` from this dispatcher's memory, a log row swept by a statement that
//! read it just before) may keep the old slot. The claims fetch by `(slot, id)`, so such a
//! row's event comes back missing: it is looked up here by id alone, in every slot
//! (`src/sql/events_any_slot.sql`). Rare, and one statement per claim that hit it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

use super::claim::{ClaimedRow, EventRow};
use crate::sql;

/// A row of `events_any_slot.sql`.
#[derive(FromRow)]
struct Found {
    event_id: Uuid,
    event_type: String,
    source: String,
    subject: Option<String>,
    key: Option<String>,
    data: String,
    headers: String,
    created_at: DateTime<Utc>,
}

/// Fills in the events of `rows` that the claim did not find in the slot they named.
pub(super) async fn fill(conn: &mut PgConnection, rows: &mut [ClaimedRow]) -> sqlx::Result<()> {
    let mut missing: Vec<Uuid> = rows
        .iter()
        .filter(|r| r.event.is_none())
        .filter_map(|r| r.event_id)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    missing.sort_unstable();
    missing.dedup();
    let found: Vec<Found> = sqlx::query_as(sql::EVENTS_ANY_SLOT)
        .bind(&missing)
        .fetch_all(conn)
        .await?;
    let events: HashMap<Uuid, EventRow> = found
        .into_iter()
        .map(|f| {
            let event = EventRow {
                id: f.event_id,
                event_type: f.event_type,
                source: f.source,
                subject: f.subject,
                key: f.key,
                data: f.data,
                headers: f.headers,
                created_at: f.created_at,
            };
            (f.event_id, event)
        })
        .collect();
    for row in rows.iter_mut().filter(|r| r.event.is_none()) {
        let Some(event) = row.event_id.and_then(|id| events.get(&id)) else {
            continue;
        };
        if let Some(log) = row.log.as_mut() {
            log.key.clone_from(&event.key);
        }
        row.event = Some(event.clone());
    }
    Ok(())
}
