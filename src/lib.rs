//! pgbus: a transactional outbox and event bus on PostgreSQL.
//!
//! A service writes its events in the same transaction as its own data, with sqlx; a
//! [`Dispatcher`] delivers every committed event to each subscription whose type patterns
//! match it, calling an async handler, with retries, backoff, leases and a dead-letter state.
//! Nothing but PostgreSQL is needed: no broker, no cron job polling an events table.
//!
//! # A tour
//!
//! **Migrate** once at start-up (idempotent, safe from many processes at once; everything
//! lives in the `pgbus` schema): `pgbus::migrate(&pool).await?`.
//!
//! **Define typed events.** The types implementing [`Event`] are the service's event
//! catalog; raw JSON events ([`NewEvent::raw`]) work too.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct PropertyCreated {
//!     property_id: i64,
//!     title: String,
//! }
//!
//! impl pgbus::Event for PropertyCreated {
//!     const TYPE: &'static str = "property.created";
//! }
//! ```
//!
//! **Publish inside the business transaction.** [`Publisher::publish`] takes the
//! transaction's connection (`&mut tx`, as a sqlx transaction derefs to its connection):
//! the event and its deliveries (one per matching subscription) exist exactly when the
//! transaction commits. A rollback publishes nothing.
//!
//! ```no_run
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Serialize, Deserialize)]
//! # struct PropertyCreated { property_id: i64, title: String }
//! # impl pgbus::Event for PropertyCreated { const TYPE: &'static str = "property.created"; }
//! # async fn demo(pool: sqlx::PgPool) -> pgbus::Result<()> {
//! pgbus::migrate(&pool).await?;
//! let publisher = pgbus::Publisher::new("property-service")?;
//!
//! let mut tx = pool.begin().await?;
//! let property_id: i64 =
//!     sqlx::query_scalar("INSERT INTO properties (title) VALUES ($1) RETURNING id")
//!         .bind("Sunny flat with terrace")
//!         .fetch_one(&mut *tx)
//!         .await?;
//! let event = PropertyCreated { property_id, title: "Sunny flat with terrace".into() };
//! publisher.publish(&mut tx, &event).await?;
//! tx.commit().await?;
//! # Ok(())
//! # }
//! ```
//!
//! **Handle events.** A [`Handler`] gets the decoded event and the [`Delivery`] (its id,
//! attempt number and envelope). Delivery is at least once, so make handlers idempotent
//! with the delivery or event id, or, when their effects are writes to the same database,
//! make them a [`TxHandler`]: its writes commit with the delivery's completion, exactly
//! once. Any error returned with `?` is retried with backoff;
//! [`HandlerError::retry_after`] picks the delay, [`HandlerError::permanent`] gives up at
//! once (the delivery is dead).
//!
//! ```
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Serialize, Deserialize)]
//! # struct PropertyCreated { property_id: i64, title: String }
//! # impl pgbus::Event for PropertyCreated { const TYPE: &'static str = "property.created"; }
//! use pgbus::{Delivery, Handler, HandlerError};
//!
//! struct ScheduleFollowUp {
//!     pool: sqlx::PgPool,
//! }
//!
//! #[pgbus::async_trait]
//! impl Handler<PropertyCreated> for ScheduleFollowUp {
//!     async fn handle(&self, event: PropertyCreated, delivery: &Delivery) -> Result<(), HandlerError> {
//!         // Keyed by the event id: a second run of this delivery inserts nothing.
//!         sqlx::query(
//!             "INSERT INTO follow_ups (event_id, property_id) VALUES ($1, $2)
//!              ON CONFLICT (event_id) DO NOTHING",
//!         )
//!         .bind(delivery.event.id)
//!         .bind(event.property_id)
//!         .execute(&self.pool)
//!         .await?;
//!         Ok(())
//!     }
//! }
//! ```
//!
//! **Run a dispatcher** with one or more [`Subscription`]s: durable, named consumer groups.
//! Each gets its own delivery of every matching event, with its own retry policy,
//! concurrency and lease. Subscriptions are registered when the dispatcher starts; events
//! published before that are not delivered to them.
//!
//! **Shut down gracefully** with [`DispatcherHandle::shutdown`], or by cancelling its
//! [`token`](DispatcherHandle::token): it stops claiming, lets running handlers finish
//! within the shutdown timeout and releases what did not finish. No delivery stays
//! `running`.
//!
//! ```no_run
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Serialize, Deserialize)]
//! # struct PropertyCreated { property_id: i64, title: String }
//! # impl pgbus::Event for PropertyCreated { const TYPE: &'static str = "property.created"; }
//! # struct ScheduleFollowUp { pool: sqlx::PgPool }
//! # #[pgbus::async_trait]
//! # impl pgbus::Handler<PropertyCreated> for ScheduleFollowUp {
//! #     async fn handle(&self, _: PropertyCreated, _: &pgbus::Delivery) -> Result<(), pgbus::HandlerError> { Ok(()) }
//! # }
//! # struct Audit;
//! # #[pgbus::async_trait]
//! # impl pgbus::RawHandler for Audit {
//! #     async fn handle(&self, _: &pgbus::Delivery) -> Result<(), pgbus::HandlerError> { Ok(()) }
//! # }
//! use std::time::Duration;
//!
//! use pgbus::{Dispatcher, RetryPolicy, Subscription};
//!
//! # async fn demo(pool: sqlx::PgPool) -> pgbus::Result<()> {
//! let dispatcher = Dispatcher::builder(pool.clone())
//!     .subscribe(
//!         Subscription::to::<PropertyCreated, _>("listings.follow-up", ScheduleFollowUp { pool })
//!             .retry(RetryPolicy::default().max_attempts(10)),
//!     )
//!     .subscribe(Subscription::raw("audit.properties", ["property.*"], Audit).concurrency(4))
//!     .shutdown_timeout(Duration::from_secs(10))
//!     .build()?
//!     .start()
//!     .await?;
//!
//! // Cancel the token from a signal handler (or anywhere else) to shut down.
//! let token = dispatcher.token();
//! tokio::spawn(async move {
//!     let _ = tokio::signal::ctrl_c().await;
//!     token.cancel();
//! });
//! let report = dispatcher.stopped().await?;
//! println!("stopped; {} deliveries released", report.released);
//! # Ok(())
//! # }
//! ```
//!
//! **Speak the standards.** [`cloudevents`] maps events to CloudEvents 1.0 and back;
//! [`Event::VERSION`] and [`Event::upgrade`] version payloads; [`catalog`] collects the
//! event catalog, rendered as AsyncAPI 3.0 by `asyncapi` (feature `asyncapi`, JSON Schema
//! with feature `schema`); `inbox` (feature `inbox`) stores signed webhooks exactly once.
//!
//! **Relay to a broker.** [`relay`] has subscriptions whose handler publishes each event to
//! NATS JetStream (feature `nats`) or RabbitMQ (feature `rabbitmq`) and succeeds only once
//! the broker confirmed it, deduplicated there by the event id.
//!
//! The companion crate `pgbus-testing` starts a throwaway PostgreSQL for tests and examples,
//! and builds deliveries to unit-test handlers without a database. The repository's
//! `examples/quickstart.rs` runs all of the above end to end.
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![doc(test(attr(deny(warnings), allow(dead_code, unused_variables))))]

pub mod admin;
#[cfg(feature = "asyncapi")]
pub mod asyncapi;
pub mod catalog;
pub mod cloudevents;
mod dedupe;
mod dispatcher;
mod error;
mod event;
mod handler;
#[cfg(feature = "inbox")]
pub mod inbox;
mod migrate;
mod ordering;
mod publish;
mod registration;
pub mod relay;
mod reserved;
mod retry;
mod sql;
mod state;
mod subscription;
mod telemetry;
mod tx_handler;
mod validate;
mod version;
mod wake;

pub use admin::Admin;
pub use error::{Error, Result};
pub use migrate::migrate;
pub use ordering::DeadKeyPolicy;

pub use dedupe::DedupeScope;
pub use dispatcher::{Dispatcher, DispatcherBuilder, DispatcherHandle, ShutdownReport};
pub use event::{Event, EventEnvelope, IntoNewEvent, MAX_TEXT_LEN, MAX_TYPE_LEN, NewEvent};
pub use handler::{Delivery, Handler, HandlerError, RawHandler};
pub use publish::{PublishOutcome, Publisher, PublisherBuilder};
pub use retry::RetryPolicy;
pub use state::DeliveryState;
pub use subscription::{MAX_SUBSCRIPTION_NAME_LEN, Subscription};
pub use tokio_util::sync::CancellationToken;
pub use tx_handler::{RawTxHandler, TxHandler};
pub use version::{DecodeError, VERSION_HEADER, VersionedPayload};

#[doc(no_inline)]
pub use async_trait::async_trait;
