//! The completer: the one writer of outcomes. It receives explicit targets (decided by
//! `crate::state`), writes them in batches, one statement per batch, only where this
//! dispatcher still holds the lease (same lease id, still running), and decides nothing.

use std::sync::Arc;

use sqlx::PgConnection;
use tokio::sync::{mpsc, oneshot};

use super::backoff::Backoff;
use super::connection::KeptConnection;
use super::shared::{ClaimKey, Shared};
use super::target::{Msg, Target, lease_ids};
use crate::sql;
use crate::state::DeliveryState;

/// Writes a batch of targets; returns how many rows still had this dispatcher's lease.
pub(crate) async fn write(conn: &mut PgConnection, batch: &[Target]) -> sqlx::Result<i64> {
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
        .fetch_one(conn)
        .await
}

/// Runs until told to finish: gathers targets and writes them in batches, retrying with
/// backoff while the database is unreachable.
pub(crate) async fn run(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Msg>) {
    let max = shared.config.complete_batch;
    let delay = shared.config.complete_delay;
    let mut batch: Vec<Target> = Vec::with_capacity(max);
    let mut conn = KeptConnection::new(shared.pool.clone());
    loop {
        let mut finish = match rx.recv().await {
            Some(msg) => gather(msg, &mut batch),
            None => return,
        };
        if finish.is_none() && !delay.is_zero() {
            let deadline = tokio::time::Instant::now() + delay;
            while finish.is_none() && batch.len() < max {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(msg)) => finish = gather(msg, &mut batch),
                    Ok(None) | Err(_) => break,
                }
            }
        }
        while finish.is_none() && batch.len() < max {
            match rx.try_recv() {
                Ok(msg) => finish = gather(msg, &mut batch),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            flush(&shared, &mut conn, &mut batch).await;
        }
        if let Some((mut last, reply)) = finish {
            let result = if last.is_empty() {
                Ok(())
            } else {
                let written = conn.run(async |c| write(c, &last).await).await;
                after_write(&shared, &mut last);
                written.map(|_| ())
            };
            let _ = reply.send(result);
            return;
        }
    }
}

/// The request to finish: the last targets, and where to say it is done.
type Finish = (Vec<Target>, oneshot::Sender<sqlx::Result<()>>);

/// Adds a target to the batch, or returns the request to finish.
fn gather(msg: Msg, batch: &mut Vec<Target>) -> Option<Finish> {
    match msg {
        Msg::Complete(t) => {
            batch.push(t);
            None
        }
        Msg::Finish { last, reply } => Some((last, reply)),
    }
}

/// Writes a batch, retrying with backoff until it is written or the shutdown deadline
/// passed, then forgets it.
async fn flush(shared: &Shared, conn: &mut KeptConnection, batch: &mut Vec<Target>) {
    let mut backoff = Backoff::starting_at(std::time::Duration::from_millis(50));
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
            Err(e) if shared.signals.abandon.is_cancelled() => {
                tracing::error!(error = %e, count = batch.len(),
                    "pgbus: giving up writing outcomes at shutdown; their leases will expire and they will run again");
                break;
            }
            Err(e) => {
                let retry_in = backoff.failed();
                tracing::warn!(error = %e, ?retry_in, "pgbus: writing outcomes failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(retry_in) => {}
                    _ = shared.signals.abandon.cancelled() => {}
                }
            }
        }
    }
    after_write(shared, batch);
}

/// Frees the room of written targets; new crash suspects make the fetch loop look for them.
fn after_write(shared: &Shared, batch: &mut Vec<Target>) {
    let suspects = batch
        .iter()
        .any(|t| t.transition.solo && t.transition.state == DeliveryState::Pending);
    shared.forget(batch.drain(..).map(|t| ClaimKey {
        id: t.id,
        lease: t.lease,
    }));
    if suspects {
        shared.signals.suspects_written();
    }
}
