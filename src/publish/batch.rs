//! One publish statement for a batch of events: their columns as arrays, the statement
//! (`publish.sql`, or `publish_plain.sql` when no event has a dedupe key), and one outcome
//! per event from its result rows.

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::PublishOutcome;
use crate::error::Result;
use crate::event::NewEvent;
use crate::sql;

/// Writes validated events with their fan-out; `notify` adds a NOTIFY to the statement.
/// `named`: whether the statements are prepared once per connection (not behind a
/// transaction pooler, see `PublisherBuilder::transaction_pooler`).
pub(super) async fn write(
    conn: &mut PgConnection,
    events: &[Cow<'_, NewEvent>],
    source: &str,
    notify: bool,
    named: bool,
) -> Result<Vec<PublishOutcome>> {
    let n = events.len();
    let mut ids = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut subjects = Vec::with_capacity(n);
    let mut keys = Vec::with_capacity(n);
    let mut datas = Vec::with_capacity(n);
    let mut headers = Vec::with_capacity(n);
    let mut dedupes = Vec::with_capacity(n);
    let mut priorities = Vec::with_capacity(n);
    let mut deliver_ats: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(n);
    for e in events {
        ids.push(e.id);
        types.push(e.event_type.as_str());
        subjects.push(e.subject.as_deref());
        keys.push(e.key.as_deref());
        datas.push(&e.data);
        headers.push(Json(&e.headers));
        dedupes.push(e.dedupe_key.as_deref());
        priorities.push(e.priority);
        deliver_ats.push(e.deliver_at);
    }
    let plain = dedupes.iter().all(Option::is_none);
    let scheduled = deliver_ats.iter().any(Option::is_some);
    // Each key's scope (src/dedupe.rs), as pgbus.dedupe_keys stores it.
    let scopes: Vec<Option<String>> = (events.iter())
        .map(|e| (e.dedupe_key.as_ref()).map(|_| e.dedupe_scope.column(&e.event_type, source)))
        .collect();
    let statement = sqlx::query(if plain {
        sql::PUBLISH_PLAIN
    } else {
        sql::PUBLISH
    })
    .persistent(named)
    .bind(&ids)
    .bind(&types)
    .bind(&subjects)
    .bind(&keys)
    .bind(&datas)
    .bind(&headers)
    .bind(&dedupes)
    .bind(&priorities)
    .bind(&deliver_ats)
    .bind(source)
    .bind(notify)
    .bind(sql::NOTIFY_CHANNEL)
    .bind(scheduled);
    let rows = if plain {
        statement.fetch_all(&mut *conn).await?
    } else {
        statement.bind(&scopes).fetch_all(&mut *conn).await?
    };
    if plain {
        // One row per event type with subscribers; the NOTIFY row has no type.
        let mut per_type: HashMap<String, i32> = HashMap::new();
        for row in rows {
            if let Some(t) = row.try_get::<Option<String>, _>(0)? {
                per_type.insert(t, row.try_get(1)?);
            }
        }
        return Ok(events
            .iter()
            .map(|e| PublishOutcome::Published {
                id: e.id,
                deliveries: per_type.get(&e.event_type).copied().unwrap_or(0).max(0) as u32,
            })
            .collect());
    }

    let mut written: HashMap<Uuid, u32> = HashMap::with_capacity(rows.len());
    for row in rows {
        let deliveries: i32 = row.try_get(1)?;
        written.insert(row.try_get(0)?, deliveries.max(0) as u32);
    }
    let mut outcomes = Vec::with_capacity(n);
    let (mut missing_scopes, mut missing): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    for (e, scope) in events.iter().zip(&scopes) {
        if let Some(deliveries) = written.remove(&e.id) {
            outcomes.push(Some(PublishOutcome::Published {
                id: e.id,
                deliveries,
            }));
        } else {
            // Not inserted: the dedupe key is taken in its scope (by an earlier event or one
            // earlier in this batch). Looked up below, in a new statement that sees it.
            if let (Some(key), Some(scope)) = (e.dedupe_key.as_deref(), scope) {
                missing.push(key);
                missing_scopes.push(scope);
            }
            outcomes.push(None);
        }
    }
    let originals: HashMap<(String, String), Uuid> = if missing.is_empty() {
        HashMap::new()
    } else {
        sqlx::query_as::<_, (String, String, Uuid)>(sql::DEDUPE_ORIGINALS)
            .persistent(named)
            .bind(&missing_scopes)
            .bind(&missing)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .map(|(scope, key, id)| ((scope, key), id))
            .collect()
    };
    Ok((events.iter().zip(scopes))
        .zip(outcomes)
        .map(|((e, scope), outcome)| {
            outcome.unwrap_or_else(|| PublishOutcome::Duplicate {
                id: (scope.zip(e.dedupe_key.clone()))
                    .and_then(|k| originals.get(&k).copied())
                    .unwrap_or(e.id),
            })
        })
        .collect())
}
