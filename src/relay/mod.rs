//! Relays: subscriptions whose built-in handler hands each event to a broker, NATS
//! JetStream (feature `nats`) or RabbitMQ (feature `rabbitmq`), and succeeds only once the
//! broker has confirmed it.
//!
//! A relay is an ordinary [`Subscription`]: its deliveries are claimed, leased, retried with
//! backoff and dead-lettered like any other, so a broker that is down, slow or refusing
//! only makes deliveries wait and retry. A delivery is done only after
//!
//! - NATS: the JetStream publish acknowledgement (from the expected stream, when one is
//!   named);
//! - RabbitMQ: the publisher confirm of a message published `mandatory` (a message no
//!   queue is bound for comes back and is an error, not a success).
//!
//! Every message carries the event id as its deduplication id: the `Nats-Msg-Id` header
//! (JetStream drops a second copy within the stream's duplicate window) and the AMQP
//! `message-id` property (RabbitMQ itself keeps both copies; consumers deduplicate on it).
//! Delivery to the broker is at least once: a relay that crashes after the broker's ack and
//! before its completion is written publishes the event again.
//!
//! The message is the event as a CloudEvent ([`Format`]): in binary mode (the default) its
//! attributes as `ce-*` headers and the JSON payload as the body, the W3C `traceparent` and
//! `tracestate` headers as they are too; in structured mode one JSON document. The
//! destination (subject, routing key) comes from the event type through [`Destinations`].
//!
//! # Throughput
//!
//! The handler API is one delivery per call, so a relay pipelines through concurrency: each
//! call writes its message to the client's connection and then waits for that message's
//! acknowledgement, while hundreds of other calls of the same subscription do the same, so
//! the broker sees a stream of publishes with many acknowledgements outstanding. Relay
//! subscriptions (`nats::NatsRelay::subscription`, `rabbitmq::RabbitMqRelay::subscription`)
//! therefore start at a concurrency of [`DEFAULT_CONCURRENCY`]. No acknowledgement is
//! shared between deliveries: each one's outcome is its own broker's answer.
#![cfg_attr(not(any(feature = "nats", feature = "rabbitmq")), allow(dead_code))]

mod error;
mod mapping;
mod message;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;

use std::time::Duration;

pub use error::RelayError;
pub use mapping::Destinations;
pub use message::{Format, RelayMessage, STRUCTURED_CONTENT_TYPE, TRACE_HEADERS};

use crate::handler::RawHandler;
use crate::subscription::Subscription;

/// The concurrency a relay subscription starts with: how many deliveries wait for their
/// broker acknowledgement at once in one dispatcher.
pub const DEFAULT_CONCURRENCY: usize = 512;

/// How long a relay waits for a broker's acknowledgement by default.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// A subscription for a relay handler: [`DEFAULT_CONCURRENCY`], and a handler timeout
/// past the relay's own acknowledgement timeout (so the relay's error, not a timeout, is
/// what a delivery records).
pub(crate) fn relay_subscription<H: RawHandler>(
    name: impl Into<String>,
    patterns: impl IntoIterator<Item = impl Into<String>>,
    handler: H,
    ack_timeout: Duration,
) -> Subscription {
    Subscription::raw(name, patterns, handler)
        .concurrency(DEFAULT_CONCURRENCY)
        .handler_timeout(ack_timeout * 3 + Duration::from_secs(5))
}
