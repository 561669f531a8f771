//! pgbus: a transactional outbox and event bus on PostgreSQL.
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![doc(test(attr(deny(warnings))))]

mod error;
mod migrate;
pub mod testing;

pub use error::{Error, Result};
pub use migrate::migrate;
mod dispatcher;
mod event;
mod handler;
mod publish;
mod retry;
mod subscription;
mod wake;

pub use dispatcher::{Dispatcher, DispatcherBuilder, DispatcherHandle, ShutdownReport};
pub use event::{Event, EventEnvelope, IntoNewEvent, MAX_TEXT_LEN, MAX_TYPE_LEN, NewEvent};
pub use handler::{Delivery, Handler, HandlerError, RawHandler};
pub use publish::{PublishOutcome, Publisher, PublisherBuilder};
pub use retry::RetryPolicy;
pub use subscription::{MAX_SUBSCRIPTION_NAME_LEN, Subscription};
pub use tokio_util::sync::CancellationToken;
