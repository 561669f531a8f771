//! Transactional handlers: a handler that writes to the dispatcher's own database gets an
//! open transaction, and the delivery's completion is written in that same transaction, so
//! its effect and its completion commit together or not at all.

use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{Postgres, Transaction};

use crate::event::Event;
use crate::handler::{Delivery, ErasedHandler, Failure, HandlerError};

/// Handles one typed event type inside a transaction on the dispatcher's pool.
///
/// Whatever the handler writes through `tx` commits together with the delivery's
/// completion: the dispatcher begins the transaction, calls the handler, then writes the
/// completion in the same transaction, fenced by the delivery's lease, and commits. A
/// handler error, a panic, a timeout, a crash or a lease taken over by another dispatcher
/// rolls the handler's writes back with it, so the effect happens exactly once. Do not
/// commit `tx` yourself (it is borrowed); nest savepoints with `tx.begin()` if you need them.
///
/// Effects outside the database (an email, an HTTP call) are not covered: they still happen
/// at least once.
///
/// ```
/// use pgbus::{Delivery, Event, HandlerError, TxHandler};
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # struct InvoicePaid { invoice_id: i64 }
/// # impl Event for InvoicePaid { const TYPE: &'static str = "invoice.paid"; }
///
/// struct RecordPayment;
///
/// #[async_trait::async_trait]
/// impl TxHandler<InvoicePaid> for RecordPayment {
///     async fn handle(
///         &self,
///         event: InvoicePaid,
///         _delivery: &Delivery,
///         tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
///     ) -> Result<(), HandlerError> {
///         sqlx::query("UPDATE invoices SET paid = true WHERE id = $1")
///             .bind(event.invoice_id)
///             .execute(&mut **tx)
///             .await?;
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait TxHandler<E: Event>: Send + Sync + 'static {
    /// Handles one delivery inside `tx`. A payload that does not deserialize as `E` never
    /// reaches this method: the delivery is dead at once with an error naming the type.
    async fn handle(
        &self,
        event: E,
        delivery: &Delivery,
        tx: &mut Transaction<'static, Postgres>,
    ) -> Result<(), HandlerError>;
}

/// Handles raw events of any type the subscription's patterns match, inside a transaction
/// on the dispatcher's pool (see [`TxHandler`]).
#[async_trait]
pub trait RawTxHandler: Send + Sync + 'static {
    /// Handles one delivery inside `tx`; the payload is `delivery.event.data`.
    async fn handle(
        &self,
        delivery: &Delivery,
        tx: &mut Transaction<'static, Postgres>,
    ) -> Result<(), HandlerError>;
}

/// The dispatcher's uniform view of typed and raw transactional handlers.
#[async_trait]
pub(crate) trait ErasedTxHandler: Send + Sync + 'static {
    async fn call(
        &self,
        delivery: &Delivery,
        tx: &mut Transaction<'static, Postgres>,
    ) -> Result<(), Failure>;
}

/// What a subscription runs: a plain handler, or one inside a transaction.
#[derive(Clone)]
pub(crate) enum Handling {
    Plain(Arc<dyn ErasedHandler>),
    Tx(Arc<dyn ErasedTxHandler>),
}

pub(crate) struct TypedTx<E, H> {
    pub(crate) handler: H,
    pub(crate) _event: PhantomData<fn() -> E>,
}

#[async_trait]
impl<E: Event, H: TxHandler<E>> ErasedTxHandler for TypedTx<E, H> {
    async fn call(
        &self,
        delivery: &Delivery,
        tx: &mut Transaction<'static, Postgres>,
    ) -> Result<(), Failure> {
        let event = delivery
            .event
            .decode::<E>()
            .map_err(|e| Failure::undecodable::<E>(delivery, e))?;
        self.handler
            .handle(event, delivery, tx)
            .await
            .map_err(Failure::Handler)
    }
}

pub(crate) struct RawTx<H>(pub(crate) H);

#[async_trait]
impl<H: RawTxHandler> ErasedTxHandler for RawTx<H> {
    async fn call(
        &self,
        delivery: &Delivery,
        tx: &mut Transaction<'static, Postgres>,
    ) -> Result<(), Failure> {
        self.0.handle(delivery, tx).await.map_err(Failure::Handler)
    }
}
