//! The claims: one statement takes a batch for every local subscription at once, from the
//! delivery log (`src/sql/claim_log.sql`, a lease per batch) or from `pgbus.deliveries`
//! (`src/sql/claim.sql`, a lease per row: retries, deliver_at, crash suspects); the rows come
//! back here, paired with their events, in claim order.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

use super::batch::LogOrigin;
use super::moved_events;
use crate::sql;

/// How many rows to claim for one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Want {
    /// The subscription's position in the dispatcher.
    pub(crate) sub: usize,
    pub(crate) limit: usize,
}

/// A delivery the claim took, now running under this dispatcher's lease.
#[derive(Debug)]
pub(crate) struct ClaimedRow {
    pub(crate) id: i64,
    /// The subscription's position in the dispatcher.
    pub(crate) sub: usize,
    pub(crate) attempts: i32,
    /// Its previous lease had expired: its worker was lost during attempt `attempts`.
    pub(crate) taken_back: bool,
    /// The claim's lease id (its transaction id); fences the outcome.
    pub(crate) lease_id: i64,
    /// The event, for a delivery claimed to run whose event still exists.
    pub(crate) event: Option<EventRow>,
    /// The event's id, for a delivery claimed to run (not taken back).
    pub(crate) event_id: Option<Uuid>,
    /// Its batch, for a row of the delivery log.
    pub(crate) log: Option<LogOrigin>,
}

/// An event as the claim reads it.
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Default, FromRow)]
pub(super) struct ResultRow {
    pub(super) id: Option<i64>,
    pub(super) idx: Option<i32>,
    attempts: Option<i32>,
    taken_back: Option<bool>,
    lease_id: Option<i64>,
    pub(super) event_id: Option<Uuid>,
    priority: Option<i16>,
    due: Option<DateTime<Utc>>,
    claim_id: Option<i64>,
    txid: Option<i64>,
    event_type: Option<String>,
    source: Option<String>,
    subject: Option<String>,
    pub(super) key: Option<String>,
    data: Option<String>,
    headers: Option<String>,
    created_at: Option<DateTime<Utc>>,
    /// The events ring slot of the delivery's event (migration 0014), or of the event.
    event_slot: Option<i16>,
    /// A keyed log row's publish order, for an ordered subscription (claim_log only).
    #[sqlx(default)]
    seq: Option<i64>,
}

/// Claims due deliveries of the wanted subscriptions (`subs` holds every subscription's
/// name and lease in seconds, by position) for dispatcher `owner`; `solo` takes crash
/// suspects instead of ordinary work.
pub(crate) async fn claim(
    conn: &mut PgConnection,
    subs: &[(&str, f64)],
    wants: &[Want],
    solo: bool,
    owner: i32,
) -> sqlx::Result<Vec<ClaimedRow>> {
    let (names, idx, limits, leases) = want_arrays(subs, wants);
    let rows = sqlx::query_as::<_, ResultRow>(sql::CLAIM)
        .bind(&names)
        .bind(&idx)
        .bind(&limits)
        .bind(&leases)
        .bind(solo)
        .bind(owner)
        .fetch_all(&mut *conn)
        .await?;
    let mut claimed = pair(rows);
    moved_events::fill(conn, &mut claimed).await?;
    Ok(claimed)
}

/// Claims rows of the delivery log for the wanted subscriptions, one batch lease per lane
/// read, for dispatcher `owner`.
pub(crate) async fn claim_log(
    conn: &mut PgConnection,
    subs: &[(&str, f64)],
    wants: &[Want],
    owner: i32,
) -> sqlx::Result<Vec<ClaimedRow>> {
    let (names, idx, limits, leases) = want_arrays(subs, wants);
    let rows = sqlx::query_as::<_, ResultRow>(sql::CLAIM_LOG)
        .bind(&names)
        .bind(&idx)
        .bind(&limits)
        .bind(&leases)
        .bind(owner)
        .fetch_all(&mut *conn)
        .await?;
    let mut claimed = pair(rows);
    moved_events::fill(conn, &mut claimed).await?;
    Ok(claimed)
}

/// The wants as the claims' array parameters: names, positions, limits, leases (seconds).
pub(super) type WantArrays<'a> = (Vec<&'a str>, Vec<i32>, Vec<i32>, Vec<f64>);

pub(super) fn want_arrays<'a>(subs: &[(&'a str, f64)], wants: &[Want]) -> WantArrays<'a> {
    (
        wants.iter().map(|w| subs[w.sub].0).collect(),
        wants.iter().map(|w| w.sub as i32).collect(),
        wants.iter().map(|w| w.limit as i32).collect(),
        wants.iter().map(|w| subs[w.sub].1).collect(),
    )
}

/// Pairs claimed deliveries with their events, in claim order (priority, due time, id).
pub(super) fn pair(rows: Vec<ResultRow>) -> Vec<ClaimedRow> {
    let mut events: HashMap<Uuid, EventRow> = HashMap::new();
    // How many claimed deliveries still want each event.
    let mut uses: HashMap<Uuid, usize> = HashMap::new();
    let mut deliveries = Vec::with_capacity(rows.len());
    for r in rows {
        match (r.id, r.event_id) {
            (Some(id), event_id) => {
                let taken_back = r.taken_back.unwrap_or_default();
                let log = r.claim_id.zip(event_id).map(|(batch, event_id)| LogOrigin {
                    batch,
                    event_id,
                    priority: r.priority.unwrap_or_default(),
                    key: None,
                    txid: r.txid.unwrap_or_default(),
                    event_slot: r.event_slot.unwrap_or_default(),
                    seq: r.seq,
                });
                let event_id = event_id.filter(|_| !taken_back);
                if let Some(e) = event_id {
                    *uses.entry(e).or_default() += 1;
                }
                deliveries.push((
                    (r.priority.unwrap_or_default(), r.due, id),
                    event_id,
                    ClaimedRow {
                        id,
                        sub: r.idx.unwrap_or_default() as usize,
                        attempts: r.attempts.unwrap_or_default(),
                        taken_back,
                        lease_id: r.lease_id.unwrap_or_default(),
                        event: None,
                        event_id,
                        log,
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
            if let (Some(log), Some(event)) = (row.log.as_mut(), row.event.as_ref()) {
                log.key.clone_from(&event.key);
            }
            row
        })
        .collect()
}

/// Whether any crash suspect of these subscriptions is due.
pub(crate) async fn solo_due(conn: &mut PgConnection, names: &[&str]) -> sqlx::Result<bool> {
    sqlx::query_scalar(sql::SOLO_DUE)
        .bind(names)
        .fetch_one(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(id: i64, priority: i16, event: Uuid, taken_back: bool) -> ResultRow {
        ResultRow {
            id: Some(id),
            idx: Some(1),
            attempts: Some(1),
            taken_back: Some(taken_back),
            lease_id: Some(7),
            event_id: Some(event),
            priority: Some(priority),
            due: Some(DateTime::<Utc>::UNIX_EPOCH),
            ..ResultRow::default()
        }
    }

    fn event(id: Uuid) -> ResultRow {
        ResultRow {
            event_id: Some(id),
            event_type: Some("a.b".into()),
            source: Some("s".into()),
            data: Some("{}".into()),
            headers: Some("{}".into()),
            ..ResultRow::default()
        }
    }

    #[test]
    fn pairs_in_claim_order_and_shares_an_event_between_its_deliveries() {
        let (e1, e2) = (Uuid::now_v7(), Uuid::now_v7());
        let rows = vec![
            event(e1),
            delivery(3, 0, e1, false),
            delivery(2, 0, e2, false),
            delivery(9, -1, e1, false),
            event(e2),
        ];
        let claimed = pair(rows);
        let order: Vec<i64> = claimed.iter().map(|r| r.id).collect();
        assert_eq!(order, [9, 2, 3], "priority first, then id");
        let events: Vec<Uuid> = claimed
            .iter()
            .map(|r| r.event.as_ref().unwrap().id)
            .collect();
        assert_eq!(events, [e1, e2, e1]);
        assert!(claimed.iter().all(|r| r.sub == 1 && r.lease_id == 7));
    }

    #[test]
    fn a_taken_back_row_gets_no_event_and_a_missing_event_stays_missing() {
        let (e1, gone) = (Uuid::now_v7(), Uuid::now_v7());
        let claimed = pair(vec![
            delivery(1, 0, e1, true),
            event(e1),
            delivery(2, 0, gone, false),
        ]);
        assert!(claimed[0].taken_back && claimed[0].event.is_none());
        assert!(!claimed[1].taken_back && claimed[1].event.is_none());
    }
}
