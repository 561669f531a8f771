//! The completer: handler outcomes are written in batches, one statement per batch, and
//! only where this dispatcher still holds the lease (same attempt, still running).

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
    pub(crate) attempt: i32,
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
    WHERE d.id = ANY($1::int8[]) AND d.state = 1
      AND (d.id, d.attempts) IN (SELECT * FROM unnest($1::int8[], $2::int4[]))
    RETURNING 1
),
upd AS (
    UPDATE pgbus.deliveries d SET
        state = CASE r.kind WHEN 2 THEN 2 WHEN 3 THEN 3 ELSE 0 END,
        run_at = CASE WHEN r.kind IN (0, 4, 5) THEN now() + r.delay * interval '1 second'
                      ELSE d.run_at END,
        attempts = d.attempts - CASE WHEN r.kind = 4 THEN 1 ELSE 0 END,
        last_error = coalesce(r.error, d.last_error),
        finished_at = CASE WHEN r.kind IN (2, 3) THEN now() END,
        solo = CASE WHEN r.kind IN (4, 5) THEN d.solo ELSE false END
    FROM unnest($3::int8[], $4::int4[], $5::int2[], $6::float8[], $7::text[])
        AS r(id, attempt, kind, delay, error)
    WHERE d.id = ANY($3::int8[]) AND d.id = r.id AND d.attempts = r.attempt AND d.state = 1
    RETURNING 1
)
SELECT (SELECT count(*) FROM del) + (SELECT count(*) FROM upd)
"#;

/// Writes a batch of outcomes; returns how many rows still had this dispatcher's lease.
///
/// Deletions and updates come as separate arrays. `d.id = ANY(ids)` makes the planner find
/// each row by primary key: joined on `unnest` alone, it estimates `state = 1` from
/// statistics taken while every row was pending and, past a few hundred rows, switched to a
/// sequential scan joined row by row (seconds per batch at 100k deliveries).
pub(crate) async fn write(conn: &mut PgConnection, batch: &[Completion]) -> sqlx::Result<i64> {
    let (deleted, updated): (Vec<&Completion>, Vec<&Completion>) =
        batch.iter().partition(|c| c.kind == Kind::DoneDelete);
    let del_ids: Vec<i64> = deleted.iter().map(|c| c.id).collect();
    let del_attempts: Vec<i32> = deleted.iter().map(|c| c.attempt).collect();
    let ids: Vec<i64> = updated.iter().map(|c| c.id).collect();
    let attempts: Vec<i32> = updated.iter().map(|c| c.attempt).collect();
    let kinds: Vec<i16> = updated.iter().map(|c| c.kind as i16).collect();
    let delays: Vec<f64> = updated.iter().map(|c| c.delay_secs).collect();
    let errors: Vec<Option<&str>> = updated.iter().map(|c| c.error.as_deref()).collect();
    sqlx::query_scalar(COMPLETE_SQL)
        .bind(&del_ids)
        .bind(&del_attempts)
        .bind(&ids)
        .bind(&attempts)
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
