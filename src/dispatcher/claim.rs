//! The claim statement: one round trip takes a batch of due deliveries for every local
//! subscription at once, writes their leases (stamped with the claim's lease id), and takes
//! back expired ones.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

/// How many rows to claim for one subscription, with what policy.
#[derive(Debug)]
pub(crate) struct Want<'a> {
    pub(crate) subscription: &'a str,
    pub(crate) limit: i32,
    pub(crate) max_attempts: i32,
    pub(crate) lease_secs: f64,
}

impl<'a> Want<'a> {
    /// Up to `limit` deliveries of subscription `s`, under its retry policy and lease.
    pub(crate) fn of(s: &'a super::SubState, limit: usize) -> Self {
        Want {
            subscription: &s.name,
            limit: limit as i32,
            max_attempts: s.sub.retry.max_attempts as i32,
            lease_secs: s.sub.lease.as_secs_f64(),
        }
    }
}

/// One row the claim touched. `state` is 1 (running) for a delivery claimed for this
/// dispatcher; 0 or 3 for one whose expired lease was taken back (pending again as a
/// crash suspect, or dead when out of attempts): those carry no event.
#[derive(Debug)]
pub(crate) struct ClaimedRow {
    pub(crate) id: i64,
    pub(crate) subscription: String,
    pub(crate) attempts: i32,
    pub(crate) state: i16,
    /// The claim's lease id (its transaction id) for a claimed row; fences its outcome.
    pub(crate) lease_id: Option<i64>,
    /// The event, for a claimed row whose event still exists.
    pub(crate) event: Option<EventRow>,
}

/// An event as the claim reads it.
#[derive(Debug, Clone)]
pub(crate) struct EventRow {
    pub(crate) id: Uuid,
    pub(crate) event_type: String,
    pub(crate) source: String,
    pub(crate) subject: Option<String>,
    pub(crate) key: Option<String>,
    /// The payload as JSON text, parsed per delivery so that one undecodable row cannot
    /// fail the whole claimed batch.
    pub(crate) data: String,
    pub(crate) headers: String,
    pub(crate) created_at: DateTime<Utc>,
}

/// A row of the claim statement: a delivery (`id` set) or an event (`id` null).
#[derive(Debug, FromRow)]
struct ResultRow {
    id: Option<i64>,
    subscription: Option<String>,
    attempts: Option<i32>,
    state: Option<i16>,
    lease_id: Option<i64>,
    event_id: Option<Uuid>,
    priority: Option<i16>,
    due: Option<DateTime<Utc>>,
    event_type: Option<String>,
    source: Option<String>,
    subject: Option<String>,
    key: Option<String>,
    data: Option<String>,
    headers: Option<String>,
    created_at: Option<DateTime<Utc>>,
}

/// `{solo}` is replaced by `NOT d.solo` or `d.solo`: literal predicates, so that each
/// prepared statement matches its partial index even with a generic plan.
///
/// The claimed deliveries and their events come back as separate rows (an event once, however
/// many of its deliveries were claimed) and are paired here: events are fetched by primary key
/// with `id = ANY(array)`, never joined. Joined, the planner chose from statistics, and after
/// an ANALYZE taken while the queue was empty it switched to a hash join over a sequential
/// scan of `pgbus.events`, hundreds of milliseconds per claim on a large table.
const CLAIM_SQL: &str = r#"
WITH want AS (
    SELECT * FROM unnest($1::text[], $2::int4[], $3::int4[], $4::float8[])
        AS w(sub, n, max_attempts, lease)
),
picked AS (
    SELECT c.id, c.state AS old_state, c.priority, c.run_at AS due, w.max_attempts, w.lease
    FROM want w
    CROSS JOIN LATERAL (
        SELECT d.id, d.state, d.priority, d.run_at FROM pgbus.deliveries d
        WHERE d.subscription = w.sub AND d.state < 2 AND {solo} AND d.run_at <= now()
        ORDER BY d.priority, d.run_at, d.id
        LIMIT w.n
        FOR UPDATE SKIP LOCKED
    ) c
),
upd AS (
    UPDATE pgbus.deliveries d SET
        state = CASE WHEN p.old_state = 0 THEN 1
                     WHEN d.attempts >= p.max_attempts THEN 3
                     ELSE 0 END,
        attempts = d.attempts + CASE WHEN p.old_state = 0 THEN 1 ELSE 0 END,
        run_at = CASE WHEN p.old_state = 0 THEN now() + p.lease * interval '1 second'
                      ELSE now() END,
        solo = d.solo OR p.old_state = 1,
        last_error = CASE WHEN p.old_state = 0 THEN d.last_error
                          ELSE 'lease expired during attempt ' || d.attempts || ' of '
                               || p.max_attempts
                               || ': its worker was lost (killed, crashed, or hung past its lease)'
                          END,
        finished_at = CASE WHEN p.old_state = 1 AND d.attempts >= p.max_attempts THEN now() END,
        lease_id = CASE WHEN p.old_state = 0 THEN l.id END
    FROM picked p, (SELECT pg_current_xact_id()::text::int8 AS id) l
    WHERE d.id = ANY (ARRAY(SELECT id FROM picked)) AND d.id = p.id
    RETURNING d.id, d.event_id, d.subscription, d.attempts, d.state, d.lease_id, p.priority,
              p.due
)
SELECT u.id, u.subscription, u.attempts, u.state, u.lease_id, u.event_id, u.priority, u.due,
       NULL::text AS event_type, NULL::text AS source, NULL::text AS subject, NULL::text AS key,
       NULL::text AS data, NULL::text AS headers, NULL::timestamptz AS created_at
FROM upd u
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, e.id, NULL, NULL,
       e.type, e.source, e.subject, e.key, e.data::text, e.headers::text, e.created_at
FROM pgbus.events e
WHERE e.id = ANY (ARRAY(SELECT event_id FROM upd WHERE state = 1))
"#;

/// Claims due deliveries; `solo` selects crash suspects instead of ordinary work.
pub(crate) async fn claim(
    conn: &mut PgConnection,
    wants: &[Want<'_>],
    solo: bool,
) -> sqlx::Result<Vec<ClaimedRow>> {
    static NORMAL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static SOLO: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = if solo {
        SOLO.get_or_init(|| CLAIM_SQL.replace("{solo}", "d.solo"))
    } else {
        NORMAL.get_or_init(|| CLAIM_SQL.replace("{solo}", "NOT d.solo"))
    };
    let subs: Vec<&str> = wants.iter().map(|w| w.subscription).collect();
    let limits: Vec<i32> = wants.iter().map(|w| w.limit).collect();
    let max_attempts: Vec<i32> = wants.iter().map(|w| w.max_attempts).collect();
    let leases: Vec<f64> = wants.iter().map(|w| w.lease_secs).collect();
    let rows = sqlx::query_as::<_, ResultRow>(sql.as_str())
        .bind(&subs)
        .bind(&limits)
        .bind(&max_attempts)
        .bind(&leases)
        .fetch_all(conn)
        .await?;
    Ok(pair(rows))
}

/// Pairs claimed deliveries with their events, in claim order (priority, due time, id).
fn pair(rows: Vec<ResultRow>) -> Vec<ClaimedRow> {
    let mut events: HashMap<Uuid, EventRow> = HashMap::new();
    // How many claimed deliveries still want each event.
    let mut uses: HashMap<Uuid, usize> = HashMap::new();
    let mut deliveries = Vec::with_capacity(rows.len());
    for r in rows {
        match (r.id, r.event_id) {
            (Some(id), event_id) => {
                let state = r.state.unwrap_or_default();
                let event_id = event_id.filter(|_| state == 1);
                if let Some(e) = event_id {
                    *uses.entry(e).or_default() += 1;
                }
                deliveries.push((
                    (r.priority.unwrap_or_default(), r.due, id),
                    event_id,
                    ClaimedRow {
                        id,
                        subscription: r.subscription.unwrap_or_default(),
                        attempts: r.attempts.unwrap_or_default(),
                        state,
                        lease_id: r.lease_id,
                        event: None,
                    },
                ));
            }
            (None, Some(event_id)) => {
                let event = EventRow {
                    id: event_id,
                    event_type: r.event_type.unwrap_or_default(),
                    source: r.source.unwrap_or_default(),
                    subject: r.subject,
                    key: r.key,
                    data: r.data.unwrap_or_default(),
                    headers: r.headers.unwrap_or_default(),
                    created_at: r.created_at.unwrap_or_default(),
                };
                events.insert(event_id, event);
            }
            (None, None) => {}
        }
    }
    deliveries.sort_by_key(|d| d.0);
    deliveries
        .into_iter()
        .map(|(_, event_id, mut row)| {
            // The last delivery of an event takes it; the others get a copy (fan-out).
            row.event = event_id.and_then(|e| {
                let left = uses.get_mut(&e)?;
                *left -= 1;
                if *left == 0 {
                    events.remove(&e)
                } else {
                    events.get(&e).cloned()
                }
            });
            row
        })
        .collect()
}

/// Whether any crash suspect of these subscriptions is due.
pub(crate) async fn solo_due(
    conn: &mut PgConnection,
    subscriptions: &[&str],
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pgbus.deliveries d
                        WHERE d.subscription = ANY($1) AND d.state < 2 AND d.solo
                          AND d.run_at <= now())",
    )
    .bind(subscriptions)
    .fetch_one(conn)
    .await
}
