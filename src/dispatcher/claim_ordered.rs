//! The claim of ordered subscriptions (`src/sql/claim_ordered.sql`): the heads of their keys,
//! one per key, from `pgbus.deliveries`; and the round-robin cursor each claimer keeps per
//! subscription (where its last walk over the keys stopped).

use sqlx::PgConnection;

use super::claim::{ClaimedRow, ResultRow, Want, pair, want_arrays};
use crate::sql;

/// Where each ordered subscription's next walk over its keys starts (after this key; `None`:
/// at the first key), by subscription position. One per claimer: two claimers walking from
/// different places find different keys.
#[derive(Debug, Default)]
pub(crate) struct Cursors(Vec<Option<String>>);

impl Cursors {
    pub(crate) fn new(subs: usize) -> Self {
        Cursors(vec![None; subs])
    }
}

/// Claims the heads of the wanted ordered subscriptions' keys for dispatcher `owner`
/// (`solo`: crash suspects instead of ordinary work), and moves their cursors to where the
/// walks stopped.
pub(crate) async fn claim_ordered(
    conn: &mut PgConnection,
    subs: &[(&str, f64)],
    wants: &[Want],
    cursors: &mut Cursors,
    solo: bool,
    owner: i32,
) -> sqlx::Result<Vec<ClaimedRow>> {
    if wants.is_empty() {
        return Ok(Vec::new());
    }
    let (names, idx, limits, leases) = want_arrays(subs, wants);
    let after: Vec<Option<&str>> = (wants.iter())
        .map(|w| cursors.0[w.sub].as_deref())
        .collect();
    let mut rows = sqlx::query_as::<_, ResultRow>(sql::CLAIM_ORDERED)
        .bind(&names)
        .bind(&idx)
        .bind(&limits)
        .bind(&leases)
        .bind(&after)
        .bind(solo)
        .bind(owner)
        .fetch_all(&mut *conn)
        .await?;
    // The walks' end positions: rows with neither a delivery nor an event.
    rows.retain_mut(|r| {
        if r.id.is_some() || r.event_id.is_some() {
            return true;
        }
        if let Some(slot) = (r.idx).and_then(|i| cursors.0.get_mut(i as usize)) {
            *slot = r.key.take();
        }
        false
    });
    let mut claimed = pair(rows);
    super::moved_events::fill(conn, &mut claimed).await?;
    Ok(claimed)
}
