//! The completer: the one writer of outcomes. It receives explicit targets (decided by
//! `crate::state`), writes them in batches (`write.rs`), only where this dispatcher still
//! holds the lease, and decides nothing. A log row's outcome is written under its batch's
//! lease while the batch is open; the write that gives a batch's last row its outcome closes
//! the batch. Batches open for too long are detached here too, so that every write to them
//! comes from this one task.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgConnection;
use tokio::sync::{mpsc, oneshot};

use super::backoff::Backoff;
use super::connection::KeptConnection;
use super::shared::{ClaimKey, Shared};
use super::target::{Msg, Settled, Target};
use super::write::{detach, write_log, write_rows};
use crate::state::DeliveryState;

/// The targets of a batch by the statement that writes them: rows with a lease of their own
/// first, then log rows of batches still open (whose outcome goes through the batch). Those
/// a transactional handler's transaction settled are left out, but for done log rows their
/// open batch waits for (written as done: no row, the batch's closing).
fn split<'t>(shared: &Shared, batch: &'t [Target]) -> [(Part, Vec<&'t Target>); 2] {
    let open = |t: &Target| (t.log.as_ref()).is_some_and(|l| shared.batches.is_open(l.batch));
    let (log, rows): (Vec<&Target>, Vec<&Target>) = (batch.iter())
        .filter(|t| !t.needs_no_write(open(t)))
        .partition(|t| open(t));
    [(Part::Rows, rows), (Part::Log, log)]
}

/// How many targets of a batch were settled as lost by a transactional handler.
fn settled_lost(batch: &[Target]) -> usize {
    (batch.iter())
        .filter(|t| t.settled == Settled::Lost)
        .count()
}

/// Writes one part of a batch of targets (see [`split`]); returns how many were dropped
/// because their lease had passed to another dispatcher. The parts are written one after
/// the other, so that a retry repeats only the failed one.
async fn write(
    shared: &Shared,
    conn: &mut PgConnection,
    targets: &[&Target],
    part: Part,
) -> sqlx::Result<usize> {
    if targets.is_empty() {
        return Ok(0);
    }
    match part {
        Part::Rows => {
            let written = write_rows(conn, targets).await?;
            Ok(targets.len().saturating_sub(written as usize))
        }
        Part::Log => {
            let pairs: Vec<(i64, i64)> = (targets.iter())
                .filter_map(|t| Some((t.log.as_ref()?.batch, t.id)))
                .collect();
            let plan = shared.batches.plan(&pairs);
            let written = write_log(shared, conn, targets, &plan.closing, &plan.shrink).await?;
            shared.batches.written(&pairs, &written.held, &plan.shrink);
            Ok(pairs
                .iter()
                .filter(|(b, _)| !written.held.contains(b))
                .count())
        }
    }
}

/// The two statements of a write, in the order they run.
#[derive(Debug, Clone, Copy)]
enum Part {
    Rows,
    Log,
}

/// Runs until told to finish: gathers targets and writes them in batches, retrying with
/// backoff while the database is unreachable.
pub(crate) async fn run(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Msg>) {
    let max = shared.config.complete_batch;
    let delay = shared.config.complete_delay;
    let mut batch: Vec<Target> = Vec::with_capacity(max);
    let mut conn = KeptConnection::new(shared.pool.clone());
    loop {
        let mut step = match rx.recv().await {
            Some(msg) => gather(msg, &mut batch),
            None => return,
        };
        if step.is_none() && !delay.is_zero() {
            let deadline = tokio::time::Instant::now() + delay;
            while step.is_none() && batch.len() < max {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(msg)) => step = gather(msg, &mut batch),
                    Ok(None) | Err(_) => break,
                }
            }
        }
        while step.is_none() && batch.len() < max {
            match rx.try_recv() {
                Ok(msg) => step = gather(msg, &mut batch),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            flush(&shared, &mut conn, &mut batch).await;
        }
        match step {
            None => {}
            Some(Step::Detach) => detach_old(&shared, &mut conn).await,
            Some(Step::Finish(mut last, reply)) => {
                let mut result = Ok(());
                for (part, targets) in split(&shared, &last) {
                    let written = conn.run(async |c| write(&shared, c, &targets, part).await);
                    if let Err(e) = written.await {
                        result = Err(e);
                    }
                }
                after_write(&shared, &mut last);
                let _ = reply.send(result);
                return;
            }
        }
    }
}

/// What to do after writing the gathered targets.
enum Step {
    Detach,
    /// Write the last targets, say it is done, and stop.
    Finish(Vec<Target>, oneshot::Sender<sqlx::Result<()>>),
}

/// Adds a target to the batch, or returns the step it asks for.
fn gather(msg: Msg, batch: &mut Vec<Target>) -> Option<Step> {
    match msg {
        Msg::Complete(t) => {
            batch.push(t);
            None
        }
        Msg::Detach => Some(Step::Detach),
        Msg::Finish { last, reply } => Some(Step::Finish(last, reply)),
    }
}

/// Writes a batch, retrying with backoff until it is written or the shutdown deadline
/// passed, then forgets it.
async fn flush(shared: &Shared, conn: &mut KeptConnection, batch: &mut Vec<Target>) {
    let mut lost_in_tx = settled_lost(batch);
    for (part, targets) in split(shared, batch) {
        let mut backoff = Backoff::starting_at(Duration::from_millis(50));
        loop {
            match conn
                .run(async |c| write(shared, c, &targets, part).await)
                .await
            {
                Ok(lost) => {
                    let lost = lost + std::mem::take(&mut lost_in_tx);
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
    }
    after_write(shared, batch);
}

/// Detaches the batches open for a third of their lease or longer (one attempt; the lease
/// task asks again next time).
async fn detach_old(shared: &Shared, conn: &mut KeptConnection) {
    let third = |sub: usize| shared.subs[sub].sub.lease / 3;
    let old = shared.batches.older_than(third, Instant::now());
    if old.is_empty() {
        return;
    }
    match conn.run(async |c| detach(shared, c, &old).await).await {
        Ok(detached) => {
            let all: Vec<i64> = old.iter().map(|b| b.batch).collect();
            shared.batches.forget(&all);
            let lost = all.len() - detached.len();
            tracing::debug!(
                detached = detached.len(),
                lost,
                "pgbus: detached batches open for a third of their lease"
            );
        }
        Err(e) => tracing::warn!(error = %e, "pgbus: detaching long batches failed; will retry"),
    }
}

/// Frees the room of written targets; new crash suspects make the fetch loop look for them,
/// finished deliveries of ordered subscriptions make it claim.
fn after_write(shared: &Shared, batch: &mut Vec<Target>) {
    let suspects = batch
        .iter()
        .any(|t| t.transition.solo && t.transition.state == DeliveryState::Pending);
    // A key of an ordered subscription whose delivery finished may run its next one now:
    // claim at once rather than at the next poll (a hot key runs at its handler's pace).
    let ordered = batch.iter().any(|t| shared.subs[t.sub].sub.ordered);
    shared.forget(batch.drain(..).map(|t| ClaimKey {
        id: t.id,
        lease: t.lease,
    }));
    if suspects {
        shared.signals.suspects_written();
    }
    if ordered {
        shared.signals.wake.notify_one();
    }
}
