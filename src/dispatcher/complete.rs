//! The completer: handler outcomes are written in batches, one statement per batch, and
//! only where this dispatcher still holds the lease (same lease id, still running).

use std::time::Duration;

use sqlx::PgConnection;

use super::connection::KeptConnection;
use tokio::sync::{mpsc, oneshot};

use super::Shared;

/// What to write for a finished (or abandoned) delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i16)]
pub(crate) enum Kind {
    /// Pending again after `delay_secs`.
    Retry = 0,
    /// Done: the row is deleted.
    DoneDelete = 1,
    /// Done: the row is kept in state done.
    DoneKeep = 2,
    /// Dead.
    Dead = 3,
    /// Released without having run: pending at once, attempt not counted.
    ReleaseUnstarted = 4,
    /// Released after it started: pending at once, attempt counted.
    ReleaseStarted = 5,
}

/// One outcome to write.
#[derive(Debug)]
pub(crate) struct Completion {
    pub(crate) id: i64,
    /// The lease id of the claim it came from: written only while that claim holds it.
    pub(crate) lease: i64,
    pub(crate) kind: Kind,
    pub(crate) delay_secs: f64,
    pub(crate) error: Option<String>,
}

/// Messages to the completer task.
#[derive(Debug)]
pub(crate) enum Msg {
    Complete(Completion),
    /// Write everything sent before, then stop and say so.
    Finish(oneshot::Sender<()>),
}

const COMPLETE_SQL: &str = r#"
WITH del AS (
    DELETE FROM pgbus.deliveries d
    WHERE d.id = ANY($1::int8[]) AND d.state = 1 AND d.lease_id = ANY($2::int8[])
    RETURNING 1
),
upd AS (
    UPDATE pgbus.deliveries d SET (state, run_at, attempts, last_error, finished_at, solo, lease_id) = (
        SELECT CASE v.kind WHEN 2 THEN 2 WHEN 3 THEN 3 ELSE 0 END,
               CASE WHEN v.kind IN (0, 4, 5) THEN now() + v.delay * interval '1 second'
                    ELSE d.run_at END,
               d.attempts - CASE WHEN v.kind = 4 THEN 1 ELSE 0 END,
               coalesce(v.error, d.last_error),
               CASE WHEN v.kind IN (2, 3) THEN now() END,
               CASE WHEN v.kind IN (4, 5) THEN d.solo ELSE false END,
               NULL::int8
        FROM (SELECT ($5::int2[])[p.i] AS kind, ($6::float8[])[p.i] AS delay,
                     ($7::text[])[p.i] AS error
              FROM (SELECT array_position($3::int8[], d.id) AS i) p) v)
    WHERE d.id = ANY($3::int8[]) AND d.state = 1 AND d.lease_id = ANY($4::int8[])
    RETURNING 1
)
SELECT (SELECT count(*) FROM del) + (SELECT count(*) FROM upd)
"#;

/// The distinct lease ids of a set of outcomes (a handful: one per claim they came from).
pub(crate) fn lease_ids<'a>(leases: impl Iterator<Item = &'a i64>) -> Vec<i64> {
    let mut ids: Vec<i64> = leases.copied().collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Writes a batch of outcomes; returns how many rows still had this dispatcher's lease.
///
/// Deletions and updates come as separate arrays. Every row is found by primary key
/// (`d.id = ANY(ids)`) and fenced by a filter on its lease id against the few lease ids of
/// the batch, with no join: joined to `unnest`, the planner (estimating `state = 1` from
/// statistics taken while every row was pending) chose a nested loop over the array for
/// every row, quadratic in the batch size (50 ms for 500 rows), or a sequential scan.
/// An updated row finds its own values by its position in the id array.
pub(crate) async fn write(conn: &mut PgConnection, batch: &[Completion]) -> sqlx::Result<i64> {
    let (deleted, updated): (Vec<&Completion>, Vec<&Completion>) =
        batch.iter().partition(|c| c.kind == Kind::DoneDelete);
    let del_ids: Vec<i64> = deleted.iter().map(|c| c.id).collect();
    let del_leases = lease_ids(deleted.iter().map(|c| &c.lease));
    let ids: Vec<i64> = updated.iter().map(|c| c.id).collect();
    let leases = lease_ids(updated.iter().map(|c| &c.lease));
    let kinds: Vec<i16> = updated.iter().map(|c| c.kind as i16).collect();
    let delays: Vec<f64> = updated.iter().map(|c| c.delay_secs).collect();
    let errors: Vec<Option<&str>> = updated.iter().map(|c| c.error.as_deref()).collect();
    sqlx::query_scalar(COMPLETE_SQL)
        .bind(&del_ids)
        .bind(&del_leases)
        .bind(&ids)
        .bind(&leases)
        .bind(&kinds)
        .bind(&delays)
        .bind(&errors)
        .fetch_one(conn)
        .await
}

/// Runs until told to finish: gathers outcomes and writes them in batches, retrying with
/// backoff while the database is unreachable.
pub(crate) async fn run(shared: std::sync::Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Msg>) {
    let max = shared.config.complete_batch;
    let mut batch: Vec<Completion> = Vec::with_capacity(max);
    let mut finish: Option<oneshot::Sender<()>> = None;
    let mut conn = KeptConnection::new(shared.pool.clone());
    while finish.is_none() {
        match rx.recv().await {
            Some(Msg::Complete(c)) => batch.push(c),
            Some(Msg::Finish(done)) => finish = Some(done),
            None => break,
        }
        if finish.is_none() && !shared.config.complete_delay.is_zero() {
            let deadline = tokio::time::Instant::now() + shared.config.complete_delay;
            while batch.len() < max {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(Msg::Complete(c))) => batch.push(c),
                    Ok(Some(Msg::Finish(done))) => {
                        finish = Some(done);
                        break;
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }
        while finish.is_none() && batch.len() < max {
            match rx.try_recv() {
                Ok(Msg::Complete(c)) => batch.push(c),
                Ok(Msg::Finish(done)) => finish = Some(done),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            flush(&shared, &mut conn, &mut batch).await;
        }
    }
    if let Some(done) = finish {
        let _ = done.send(());
    }
}

async fn flush(shared: &Shared, conn: &mut KeptConnection, batch: &mut Vec<Completion>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        match conn.run(async |c| write(c, batch).await).await {
            Ok(written) => {
                let lost = batch.len() as i64 - written;
                if lost > 0 {
                    tracing::warn!(
                        lost,
                        "pgbus: {lost} outcomes not written: their lease had passed to another worker"
                    );
                }
                break;
            }
            Err(e) if shared.abandon.is_cancelled() => {
                tracing::error!(error = %e, count = batch.len(),
                    "pgbus: giving up writing outcomes at shutdown; their leases will expire and they will run again");
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "pgbus: writing outcomes failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shared.abandon.cancelled() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    shared.forget(batch.drain(..).map(|c| c.id));
}
