//! The completer's statements: outcomes of rows with a lease of their own
//! (`src/sql/complete.sql`), outcomes of log rows under their batch's lease
//! (`src/sql/complete_log.sql`), and the detaching of batches open too long
//! (`src/sql/detach_claims.sql`). Each is one statement, fenced by the leases it names.

use sqlx::PgConnection;
use uuid::Uuid;

use super::batch::{Shrink, Straggling};
use super::shared::Shared;
use super::target::{Target, lease_ids};
use crate::sql;
use crate::state::DeliveryState;

/// Writes outcomes of rows leased one by one; returns how many rows still had this
/// dispatcher's lease.
pub(crate) async fn write_rows(conn: &mut PgConnection, batch: &[&Target]) -> sqlx::Result<i64> {
    let (deleted, updated): (Vec<&Target>, Vec<&Target>) =
        batch.iter().partition(|t| t.transition.delete);
    let del_ids: Vec<i64> = deleted.iter().map(|t| t.id).collect();
    let del_leases = lease_ids(deleted.iter().map(|t| t.lease));
    let ids: Vec<i64> = updated.iter().map(|t| t.id).collect();
    let leases = lease_ids(updated.iter().map(|t| t.lease));
    let states: Vec<DeliveryState> = updated.iter().map(|t| t.transition.state).collect();
    let delays: Vec<f64> = updated
        .iter()
        .map(|t| t.transition.delay.as_secs_f64())
        .collect();
    let uncount: Vec<i32> = updated
        .iter()
        .map(|t| i32::from(!t.transition.counted))
        .collect();
    let errors: Vec<Option<&str>> = updated
        .iter()
        .map(|t| t.transition.error.as_deref())
        .collect();
    let finished: Vec<bool> = updated.iter().map(|t| t.transition.finished()).collect();
    let solos: Vec<bool> = updated.iter().map(|t| t.transition.solo).collect();
    let durations: Vec<Option<f64>> = updated.iter().map(|t| t.duration_secs()).collect();
    sqlx::query_scalar(sql::COMPLETE)
        .bind(&del_ids)
        .bind(&del_leases)
        .bind(&ids)
        .bind(&leases)
        .bind(&states)
        .bind(&delays)
        .bind(&uncount)
        .bind(&errors)
        .bind(&finished)
        .bind(&solos)
        .bind(&durations)
        .fetch_one(conn)
        .await
}

/// What a write of log outcomes found: the batches still held (the others' outcomes were
/// dropped).
#[derive(Debug)]
pub(crate) struct LogWritten {
    pub(crate) held: Vec<i64>,
}

/// Writes outcomes of log rows under their batches' leases, closing the batches in
/// `closing` and shrinking those in `shrink`. Every target must carry its `log` origin. A done row not retained needs no
/// write: its batch's closing is its completion. So when every target is such a row, only
/// the batches completed now are written to (closed), and those not completed yet are taken
/// as still held: should one have been taken over, closing it fails later and its rows run
/// again elsewhere, as they must.
pub(crate) async fn write_log(
    shared: &Shared,
    conn: &mut PgConnection,
    batch: &[&Target],
    closing: &[i64],
    shrink: &[Shrink],
) -> sqlx::Result<LogWritten> {
    let origin = |t: &&Target| t.log.clone().expect("a log target");
    let shrunk: Vec<i64> = shrink.iter().map(|s| s.batch).collect();
    let from_txids: Vec<i64> = shrink.iter().map(|s| s.txid).collect();
    let from_ids: Vec<i64> = shrink.iter().map(|s| s.id).collect();
    let mut batches: Vec<i64> = batch.iter().map(|t| origin(t).batch).collect();
    batches.sort_unstable();
    batches.dedup();
    let leases = lease_ids(batch.iter().map(|t| t.lease));
    let rows: Vec<&Target> = (batch.iter().copied())
        .filter(|t| !t.transition.delete)
        .collect();
    if rows.is_empty() {
        let closed: Vec<i64> = if closing.is_empty() && shrink.is_empty() {
            Vec::new()
        } else {
            sqlx::query_scalar(sql::CLOSE_CLAIMS)
                .bind(closing)
                .bind(&leases)
                .bind(&shrunk)
                .bind(&from_txids)
                .bind(&from_ids)
                .fetch_all(conn)
                .await?
        };
        let held = (batches.into_iter())
            .filter(|b| !closing.contains(b) || closed.contains(b))
            .collect();
        return Ok(LogWritten { held });
    }
    let ids: Vec<i64> = rows.iter().map(|t| t.id).collect();
    let of_batch: Vec<i64> = rows.iter().map(|t| origin(t).batch).collect();
    let event_ids: Vec<Uuid> = rows.iter().map(|t| origin(t).event_id).collect();
    let subs: Vec<&str> = rows.iter().map(|t| &*shared.subs[t.sub].name).collect();
    let states: Vec<DeliveryState> = rows.iter().map(|t| t.transition.state).collect();
    let priorities: Vec<i16> = rows.iter().map(|t| origin(t).priority).collect();
    let delays: Vec<f64> = rows
        .iter()
        .map(|t| t.transition.delay.as_secs_f64())
        .collect();
    let attempts: Vec<i32> = rows
        .iter()
        .map(|t| i32::from(t.transition.counted))
        .collect();
    let keys: Vec<Option<String>> = rows.iter().map(|t| origin(t).key).collect();
    let errors: Vec<Option<&str>> = rows.iter().map(|t| t.transition.error.as_deref()).collect();
    let solos: Vec<bool> = rows.iter().map(|t| t.transition.solo).collect();
    let durations: Vec<Option<f64>> = rows.iter().map(|t| t.duration_secs()).collect();
    let event_slots: Vec<i16> = rows.iter().map(|t| origin(t).event_slot).collect();
    let seqs: Vec<Option<i64>> = rows.iter().map(|t| origin(t).seq).collect();
    let (held, _closed, _written): (Vec<i64>, i64, i64) = sqlx::query_as(sql::COMPLETE_LOG)
        .bind(&batches)
        .bind(&leases)
        .bind(closing)
        .bind(&ids)
        .bind(&of_batch)
        .bind(&event_ids)
        .bind(&subs)
        .bind(&states)
        .bind(&priorities)
        .bind(&delays)
        .bind(&attempts)
        .bind(&keys)
        .bind(&errors)
        .bind(&solos)
        .bind(&shrunk)
        .bind(&from_txids)
        .bind(&from_ids)
        .bind(&durations)
        .bind(&event_slots)
        .bind(&seqs)
        .fetch_one(conn)
        .await?;
    Ok(LogWritten { held })
}

/// Detaches batches: closes them and gives their rows without an outcome leases of their
/// own. Returns the batches detached (the others were no longer held).
pub(crate) async fn detach(
    shared: &Shared,
    conn: &mut PgConnection,
    batches: &[Straggling],
) -> sqlx::Result<Vec<i64>> {
    let ids_of: Vec<i64> = batches.iter().map(|b| b.batch).collect();
    let leases = lease_ids(batches.iter().map(|b| b.lease));
    let (rows, lengths): (Vec<i64>, Vec<f64>) = (batches.iter())
        .flat_map(|b| {
            let lease = shared.subs[b.sub].sub.lease.as_secs_f64();
            b.rows.iter().map(move |&r| (r, lease))
        })
        .unzip();
    let (detached, _rows): (Vec<i64>, i64) = sqlx::query_as(sql::DETACH_CLAIMS)
        .bind(&ids_of)
        .bind(&leases)
        .bind(&rows)
        .bind(&lengths)
        .bind(shared.owner)
        .fetch_one(conn)
        .await?;
    Ok(detached)
}
