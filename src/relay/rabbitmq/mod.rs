//! The RabbitMQ relay (feature `rabbitmq`, client `lapin`, AMQP 0-9-1).
//!
//! ```no_run
//! # async fn demo(pool: sqlx::PgPool) -> pgbus::Result<()> {
//! use pgbus::relay::Destinations;
//! use pgbus::relay::rabbitmq::RabbitMqRelay;
//!
//! let relay = RabbitMqRelay::builder("amqp://guest:guest@127.0.0.1:5672/%2f", "events")
//!     .declare_exchange(pgbus::relay::rabbitmq::ExchangeKind::Topic)
//!     .destinations(Destinations::prefix("pgbus."))
//!     .build()?;
//! let dispatcher = pgbus::Dispatcher::builder(pool)
//!     .subscribe(relay.subscription("relay.rabbitmq", ["property.*"]))
//!     .build()?
//!     .start()
//!     .await?;
//! # Ok(())
//! # }
//! ```

mod builder;
mod confirms;
mod link;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use tokio::sync::oneshot;

pub use builder::RabbitMqRelayBuilder;
pub use lapin::ExchangeKind;

use super::{Destinations, Format, RelayError, RelayMessage, relay_subscription};
use crate::event::EventEnvelope;
use crate::handler::{Delivery, HandlerError, RawHandler};
use crate::subscription::Subscription;
use confirms::{Publish, Settled};
use link::Link;

const BROKER: &str = "rabbitmq";

/// AMQP's limit on a routing key (a short string), in bytes.
const MAX_ROUTING_KEY: usize = 255;

/// A relay to a RabbitMQ exchange: a [`RawHandler`] that publishes each event `mandatory`
/// and persistent, and succeeds once the broker confirmed it (publisher confirms). Cheap
/// to clone.
///
/// A message no queue is bound for comes back (`basic.return`) and is an error, so the
/// delivery retries until a queue is bound: nothing is dropped silently. The `message-id`
/// property is the event id, `type` the event type, `timestamp` the event's creation (in
/// seconds); the CloudEvents headers are AMQP headers (long strings).
#[derive(Clone)]
pub struct RabbitMqRelay {
    inner: Arc<Inner>,
}

struct Inner {
    link: Link,
    exchange: String,
    destinations: Destinations,
    format: Format,
    persistent: bool,
    ack_timeout: Duration,
}

impl fmt::Debug for RabbitMqRelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitMqRelay")
            .field("exchange", &self.inner.exchange)
            .field("destinations", &self.inner.destinations)
            .field("format", &self.inner.format)
            .field("persistent", &self.inner.persistent)
            .field("ack_timeout", &self.inner.ack_timeout)
            .finish_non_exhaustive()
    }
}

impl RabbitMqRelay {
    /// A builder for a relay to `exchange` on the broker at `uri`
    /// (`amqp://user:password@host:port/vhost`, the vhost percent-encoded: `%2f` for `/`).
    pub fn builder(uri: impl Into<String>, exchange: impl Into<String>) -> RabbitMqRelayBuilder {
        RabbitMqRelayBuilder::new(uri.into(), exchange.into())
    }

    /// A relay subscription named `name` for the event types matching `patterns`, at
    /// [`DEFAULT_CONCURRENCY`](super::DEFAULT_CONCURRENCY); change its settings as for any
    /// subscription.
    pub fn subscription(
        &self,
        name: impl Into<String>,
        patterns: impl IntoIterator<Item = impl Into<String>>,
    ) -> Subscription {
        relay_subscription(name, patterns, self.clone(), self.inner.ack_timeout)
    }

    /// Publishes `event` and waits for the broker's confirm: what the handler does.
    ///
    /// # Errors
    ///
    /// A [`RelayError`]: no connection, a broken channel, a negative acknowledgement, an
    /// unroutable message, no confirm in time, a routing key longer than 255 bytes.
    pub async fn relay(&self, event: &EventEnvelope) -> Result<(), RelayError> {
        let inner = &*self.inner;
        let destination = inner.destinations.destination(event);
        if destination.len() > MAX_ROUTING_KEY {
            return Err(RelayError::InvalidDestination {
                event_type: event.event_type.clone(),
                destination,
                reason: "an AMQP routing key is at most 255 bytes",
            });
        }
        let message = RelayMessage::new(event, destination, inner.format);
        let properties = properties(event, &message, inner.persistent);
        let session = inner.link.session().await?;
        let (reply, settled) = oneshot::channel();
        let publish = Publish {
            exchange: inner.exchange.clone(),
            routing_key: message.destination.clone(),
            body: message.body,
            properties,
            message_id: message.id,
            reply,
        };
        let publisher = session.publisher();
        let settled = tokio::time::timeout(inner.ack_timeout, async {
            if !publisher.send(publish).await {
                return None;
            }
            settled.await.ok()
        })
        .await;
        let destination = message.destination;
        let settled = match settled {
            Ok(Some(settled)) => settled,
            Ok(None) => {
                inner.link.broken(&session);
                return Err(RelayError::Publish {
                    broker: BROKER,
                    destination,
                    message: "the channel's publisher stopped".to_owned(),
                });
            }
            Err(_) => {
                return Err(RelayError::AckTimeout {
                    broker: BROKER,
                    destination,
                    after: inner.ack_timeout,
                });
            }
        };
        match settled {
            Ok(Settled::Acked) => Ok(()),
            Ok(Settled::Returned(reply)) => Err(RelayError::Unroutable {
                exchange: inner.exchange.clone(),
                routing_key: destination,
                reply,
            }),
            Ok(Settled::Nacked) => Err(RelayError::Rejected {
                broker: BROKER,
                destination,
                message: "negative acknowledgement (basic.nack)".to_owned(),
            }),
            Ok(Settled::NotConfirmed) => Err(RelayError::Rejected {
                broker: BROKER,
                destination,
                message: "the channel is not in confirm mode".to_owned(),
            }),
            Err(e) => {
                inner.link.broken(&session);
                Err(RelayError::Publish {
                    broker: BROKER,
                    destination,
                    message: e.to_string(),
                })
            }
        }
    }
}

#[async_trait]
impl RawHandler for RabbitMqRelay {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        self.relay(&delivery.event)
            .await
            .map_err(RelayError::into_handler_error)
    }
}

/// The AMQP properties of `message`: content type, message id, type, timestamp, delivery
/// mode, and the headers.
fn properties(event: &EventEnvelope, message: &RelayMessage, persistent: bool) -> BasicProperties {
    let mut headers = FieldTable::default();
    for (name, value) in &message.headers {
        headers.insert(
            ShortString::from(name.as_str()),
            AMQPValue::LongString(LongString::from(value.as_str())),
        );
    }
    BasicProperties::default()
        .with_content_type(message.content_type.as_str().into())
        .with_message_id(message.id.as_str().into())
        .with_type(event.event_type.as_str().into())
        .with_timestamp(event.created_at.timestamp().max(0) as u64)
        .with_delivery_mode(if persistent { 2 } else { 1 })
        .with_headers(headers)
}
