//! Publishing events inside the caller's transaction: one statement writes the events and
//! fans them out to one delivery per matching subscription.

mod batch;
mod builder;
mod notify;
mod outcome;

use std::sync::Arc;

use sqlx::{Connection, PgConnection};

use crate::error::Result;
use crate::event::IntoNewEvent;
use crate::{telemetry, validate, wake};

pub use builder::PublisherBuilder;
pub use outcome::PublishOutcome;

use notify::Debounce;

/// Writes events, inside the caller's transaction. Cheap to clone.
///
/// ```no_run
/// # async fn demo(pool: sqlx::PgPool) -> pgbus::Result<()> {
/// let publisher = pgbus::Publisher::builder().source("property-service").build()?;
/// let mut tx = pool.begin().await?;
/// // ... the service's own writes ...
/// publisher
///     .publish(&mut *tx, pgbus::NewEvent::raw("property.created", serde_json::json!({"id": 42})))
///     .await?;
/// tx.commit().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    source: String,
    max_payload_bytes: usize,
    notify: Debounce,
    transaction_pooler: bool,
}

impl Publisher {
    /// A builder with every setting at its default.
    pub fn builder() -> PublisherBuilder {
        PublisherBuilder::default()
    }

    /// A publisher with the given source and every other setting at its default.
    ///
    /// # Errors
    ///
    /// As [`PublisherBuilder::build`].
    pub fn new(source: impl Into<String>) -> Result<Publisher> {
        Self::builder().source(source).build()
    }

    /// The configured source.
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// Publishes one event in one round trip. Pass `&mut *tx` to publish inside a
    /// transaction: the event and its deliveries exist exactly when the transaction commits.
    ///
    /// # Errors
    ///
    /// A validation error (type name, field, payload size or content) before anything is
    /// written, or [`Error::Database`](crate::Error::Database).
    pub async fn publish<'a>(
        &self,
        conn: &mut PgConnection,
        event: impl IntoNewEvent<'a>,
    ) -> Result<PublishOutcome> {
        let mut out = self.publish_all(conn, [event]).await?;
        Ok(out.remove(0))
    }

    /// Publishes a batch of events in one round trip (arrays and `UNNEST`), returning one
    /// outcome per event, in order. Takes what [`publish`](Self::publish) takes: `&events`
    /// for a `Vec<NewEvent>`, a `Vec` of `NewEvent`s, or references to typed events. Either
    /// every event is valid and the batch is written, or nothing is.
    ///
    /// # Errors
    ///
    /// As [`Publisher::publish`], for the first invalid event.
    pub async fn publish_all<'a, I>(
        &self,
        conn: &mut PgConnection,
        events: I,
    ) -> Result<Vec<PublishOutcome>>
    where
        I: IntoIterator,
        I::Item: IntoNewEvent<'a>,
    {
        let mut events = events
            .into_iter()
            .map(IntoNewEvent::into_new_event)
            .collect::<Result<Vec<_>>>()?;
        if events.is_empty() {
            return Ok(Vec::new());
        }
        for e in &events {
            validate::new_event(e, self.inner.max_payload_bytes)?;
        }
        telemetry::trace_context::inject(&mut events);
        let notify = self.inner.notify.should_notify();
        let source = &self.inner.source;
        let outcomes = if self.inner.transaction_pooler {
            // Unnamed statements, pinned to one server connection by a transaction (a
            // savepoint inside the caller's).
            let mut tx = conn.begin().await?;
            let outcomes = batch::write(&mut tx, &events, source, notify, false).await?;
            tx.commit().await?;
            outcomes
        } else {
            batch::write(conn, &events, source, notify, true).await?
        };
        wake::wake_local();
        telemetry::metrics::published(
            (events.iter().zip(&outcomes))
                .filter(|(_, o)| matches!(o, PublishOutcome::Published { .. }))
                .map(|(e, _)| e.event_type.as_str()),
        );
        Ok(outcomes)
    }
}
