//! One publish statement for a batch of events: their columns as arrays, the statement
//! (`publish.sql`, or `publish_plain.sql` when no event has a dedupe key, of which a uniform
//! batch without keys runs a lighter part), and one outcome per event from its result rows.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::{PgArguments, Postgres};
use sqlx::query::Query;
use sqlx::types::Json;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::PublishOutcome;
use crate::error::Result;
use crate::event::NewEvent;
use crate::sql;

/// A statement with its arguments so far.
type PgQuery<'q> = Query<'q, Postgres, PgArguments>;

/// The batch's columns, one array element per event, as both statements take them.
struct Columns<'a> {
    ids: Vec<Uuid>,
    types: Vec<&'a str>,
    subjects: Vec<Option<&'a str>>,
    keys: Vec<Option<&'a str>>,
    datas: Vec<&'a Value>,
    /// Null for an event without headers (the statements store `{}`): nothing to encode or
    /// parse for the usual event.
    headers: Vec<Option<Json<&'a BTreeMap<String, String>>>>,
    dedupes: Vec<Option<&'a str>>,
    priorities: Vec<i16>,
    deliver_ats: Vec<Option<DateTime<Utc>>>,
}

impl<'a> Columns<'a> {
    fn new(events: &'a [Cow<'_, NewEvent>]) -> Self {
        let n = events.len();
        let mut c = Columns {
            ids: Vec::with_capacity(n),
            types: Vec::with_capacity(n),
            subjects: Vec::with_capacity(n),
            keys: Vec::with_capacity(n),
            datas: Vec::with_capacity(n),
            headers: Vec::with_capacity(n),
            dedupes: Vec::with_capacity(n),
            priorities: Vec::with_capacity(n),
            deliver_ats: Vec::with_capacity(n),
        };
        for e in events {
            c.ids.push(e.id);
            c.types.push(e.event_type.as_str());
            c.subjects.push(e.subject.as_deref());
            c.keys.push(e.key.as_deref());
            c.datas.push(&e.data);
            c.headers
                .push((!e.headers.is_empty()).then_some(Json(&e.headers)));
            c.dedupes.push(e.dedupe_key.as_deref());
            c.priorities.push(e.priority);
            c.deliver_ats.push(e.deliver_at);
        }
        c
    }

    /// Binds the parameters both statements start with, `$1` to `$6`: ids, types, subjects,
    /// keys, payloads, headers.
    fn bind_events<'q>(&'q self, query: PgQuery<'q>) -> PgQuery<'q> {
        (query.bind(&self.ids).bind(&self.types).bind(&self.subjects))
            .bind(&self.keys)
            .bind(&self.datas)
            .bind(&self.headers)
    }

    fn scheduled(&self) -> bool {
        self.deliver_ats.iter().any(Option::is_some)
    }
}

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
    let columns = Columns::new(events);
    if columns.dedupes.iter().all(Option::is_none) {
        write_plain(conn, events, &columns, source, notify, named).await
    } else {
        write_deduped(conn, events, &columns, source, notify, named).await
    }
}

/// `publish_plain.sql` (or its uniform part, `sql::PUBLISH_UNIFORM`): no event has a dedupe
/// key, so every event is written.
async fn write_plain(
    conn: &mut PgConnection,
    events: &[Cow<'_, NewEvent>],
    c: &Columns<'_>,
    source: &str,
    notify: bool,
    named: bool,
) -> Result<Vec<PublishOutcome>> {
    // The distinct types, in batch order.
    let mut seen = HashSet::new();
    let kinds: Vec<&str> = (c.types.iter().copied())
        .filter(|t| seen.insert(*t))
        .collect();
    let scheduled = c.scheduled();
    // One type, one priority, no deliver_at: the statement cuts the ids into packs.
    let uniform =
        kinds.len() == 1 && !scheduled && c.priorities.iter().all(|p| *p == c.priorities[0]);
    let keyed = c.keys.iter().any(Option::is_some);
    // Without keys, a uniform batch needs only part of the statement: the lighter one.
    let statement = if uniform && !keyed {
        sql::PUBLISH_UNIFORM.as_str()
    } else {
        sql::PUBLISH_PLAIN
    };
    let rows = (c.bind_events(sqlx::query(statement).persistent(named)))
        .bind(&c.priorities)
        .bind(&c.deliver_ats)
        .bind(source)
        .bind(notify)
        .bind(sql::NOTIFY_CHANNEL)
        .bind(scheduled)
        .bind(&kinds)
        .bind(uniform)
        .bind(keyed)
        .fetch_all(&mut *conn)
        .await?;
    // One row per event type with subscribers; the NOTIFY row has no type.
    let mut per_type: HashMap<String, i32> = HashMap::new();
    for row in rows {
        if let Some(t) = row.try_get::<Option<String>, _>(0)? {
            per_type.insert(t, row.try_get(1)?);
        }
    }
    Ok(events
        .iter()
        .map(|e| PublishOutcome::Published {
            id: e.id,
            deliveries: per_type.get(&e.event_type).copied().unwrap_or(0).max(0) as u32,
        })
        .collect())
}

/// `publish.sql`: an event whose dedupe key is taken in its scope is not written; its
/// outcome names the event that holds the key.
async fn write_deduped(
    conn: &mut PgConnection,
    events: &[Cow<'_, NewEvent>],
    c: &Columns<'_>,
    source: &str,
    notify: bool,
    named: bool,
) -> Result<Vec<PublishOutcome>> {
    // Each key's scope (src/dedupe.rs), as pgbus.dedupe_keys stores it.
    let scopes: Vec<Option<String>> = (events.iter())
        .map(|e| (e.dedupe_key.as_ref()).map(|_| e.dedupe_scope.column(&e.event_type, source)))
        .collect();
    let rows = (c.bind_events(sqlx::query(sql::PUBLISH).persistent(named)))
        .bind(&c.dedupes)
        .bind(&c.priorities)
        .bind(&c.deliver_ats)
        .bind(source)
        .bind(notify)
        .bind(sql::NOTIFY_CHANNEL)
        .bind(c.scheduled())
        .bind(&scopes)
        .fetch_all(&mut *conn)
        .await?;

    let mut written: HashMap<Uuid, u32> = HashMap::with_capacity(rows.len());
    for row in rows {
        let deliveries: i32 = row.try_get(1)?;
        written.insert(row.try_get(0)?, deliveries.max(0) as u32);
    }
    let mut outcomes = Vec::with_capacity(events.len());
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
