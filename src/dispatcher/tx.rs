//! Running a transactional handler: begin a transaction on the dispatcher's pool, call the
//! handler in it, write the delivery's completion in it, fenced by the lease
//! (`src/sql/complete_tx.sql`), and commit. The handler's writes and the completion commit
//! together; a failure, a lost fence, a panic or a timeout rolls both back.

use std::sync::Arc;

use sqlx::{PgPool, Postgres, Transaction};

use super::shared::{ClaimKey, Shared};
use crate::handler::{Delivery, Failure, HandlerError};
use crate::sql;
use crate::state::DeliveryState;
use crate::tx_handler::ErasedTxHandler;

/// How a handler run ended.
#[derive(Debug)]
pub(crate) enum Ran {
    /// An ordinary result: the completer writes the outcome (for a transactional handler,
    /// a failure whose writes were rolled back).
    Handled(Result<(), Failure>),
    /// Done: the handler's writes and the completion committed together.
    Committed,
    /// The completion's fence failed (the delivery was taken over): rolled back.
    Lost,
}

/// What the completion in the handler's transaction is fenced by, and what a log row's done
/// marker holds.
#[derive(Debug, Clone)]
pub(crate) struct Fence {
    id: i64,
    lease: i64,
    batch: Option<i64>,
    retain: bool,
    event_id: uuid::Uuid,
    subscription: Arc<str>,
    priority: i16,
    key: Option<String>,
    /// The events ring slot of the event (migration 0014).
    event_slot: i16,
    persistent: bool,
}

impl Fence {
    /// The fence of a held delivery.
    pub(crate) fn of(shared: &Shared, key: ClaimKey, delivery: &Delivery) -> Self {
        let log = (shared.held().get(&key)).and_then(|h| h.log.clone());
        Fence {
            id: key.id,
            lease: key.lease,
            batch: log.as_ref().map(|l| l.batch),
            retain: shared.config.retain_done,
            event_id: delivery.event.id,
            subscription: delivery.subscription.clone(),
            priority: log.as_ref().map_or(0, |l| l.priority),
            event_slot: log.as_ref().map_or(0, |l| l.event_slot),
            key: log.and_then(|l| l.key),
            persistent: !shared.config.transaction_pooler,
        }
    }

    /// Writes the completion; false if the fence failed.
    async fn write(&self, tx: &mut Transaction<'static, Postgres>) -> sqlx::Result<bool> {
        // A batch detached while the handler ran: its row may have become a running row of
        // pgbus.deliveries after the first statement's snapshot, so look once more.
        let tries = if self.batch.is_some() { 2 } else { 1 };
        for _ in 0..tries {
            let written: i64 = sqlx::query_scalar(sql::COMPLETE_TX)
                .persistent(self.persistent)
                .bind(self.id)
                .bind(self.lease)
                .bind(self.batch)
                .bind(self.retain)
                .bind(DeliveryState::Done)
                .bind(self.event_id)
                .bind(&*self.subscription)
                .bind(self.priority)
                .bind(self.key.as_deref())
                .bind(self.event_slot)
                .fetch_one(&mut **tx)
                .await?;
            if written > 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Runs `handler` for `delivery` in a transaction of its own and writes its completion in it.
pub(crate) async fn run(
    pool: PgPool,
    handler: Arc<dyn ErasedTxHandler>,
    delivery: Delivery,
    fence: Fence,
) -> Ran {
    let failed = |what: &str, e: sqlx::Error| {
        Ran::Handled(Err(Failure::Handler(HandlerError::retry(format!(
            "{what} the handler's transaction failed: {e}"
        )))))
    };
    let mut tx = match pool.begin().await {
        Ok(tx) => tx,
        Err(e) => return failed("beginning", e),
    };
    if let Err(failure) = handler.call(&delivery, &mut tx).await {
        let _ = tx.rollback().await;
        return Ran::Handled(Err(failure));
    }
    match fence.write(&mut tx).await {
        Ok(true) => {}
        Ok(false) => {
            let _ = tx.rollback().await;
            return Ran::Lost;
        }
        Err(e) => {
            let _ = tx.rollback().await;
            return failed("completing the delivery in", e);
        }
    }
    // Should the commit's reply be lost after it committed, the failure reported here is
    // fenced out: the row is done (deleted or marked), and the completer's write of a
    // failure finds no running row, or a log row's marker in place of its retry.
    match tx.commit().await {
        Ok(()) => Ran::Committed,
        Err(e) => failed("committing", e),
    }
}
