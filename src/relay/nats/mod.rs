//! The NATS JetStream relay (feature `nats`, client `async-nats`).
//!
//! ```no_run
//! # async fn demo(pool: sqlx::PgPool) -> pgbus::Result<()> {
//! use pgbus::relay::Destinations;
//! use pgbus::relay::nats::NatsRelay;
//!
//! let relay = NatsRelay::builder("nats://127.0.0.1:4222")
//!     .destinations(Destinations::prefix("events."))
//!     .stream("EVENTS")
//!     .create_stream(["events.>"])
//!     .connect()
//!     .await?;
//! let dispatcher = pgbus::Dispatcher::builder(pool)
//!     .subscribe(relay.subscription("relay.nats", ["property.*", "deal.*"]))
//!     .build()?
//!     .start()
//!     .await?;
//! # Ok(())
//! # }
//! ```

mod builder;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_trait::async_trait;

pub use builder::{DEFAULT_DUPLICATE_WINDOW, NatsRelayBuilder};

use super::{Destinations, Format, RelayError, RelayMessage, relay_subscription};
use crate::handler::{Delivery, HandlerError, RawHandler};
use crate::subscription::Subscription;

const BROKER: &str = "nats";

/// A relay to NATS JetStream: a [`RawHandler`] that publishes each event and succeeds once
/// JetStream acknowledged it. Cheap to clone.
///
/// Each message has the header `Nats-Msg-Id` set to the event id, so a stream with a
/// duplicate window (JetStream's default: 2 minutes) stores an event once however often it
/// is relayed within that window; with [`NatsRelayBuilder::stream`], also
/// `Nats-Expected-Stream`, so a subject that no longer belongs to that stream is refused
/// instead of stored elsewhere.
#[derive(Clone)]
pub struct NatsRelay {
    inner: Arc<Inner>,
}

struct Inner {
    jetstream: async_nats::jetstream::Context,
    destinations: Destinations,
    format: Format,
    stream: Option<String>,
    ack_timeout: Duration,
}

impl fmt::Debug for NatsRelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsRelay")
            .field("destinations", &self.inner.destinations)
            .field("format", &self.inner.format)
            .field("stream", &self.inner.stream)
            .field("ack_timeout", &self.inner.ack_timeout)
            .finish_non_exhaustive()
    }
}

impl NatsRelay {
    /// A builder for a relay to the NATS server(s) at `url` (`nats://host:port`, or several
    /// separated by commas).
    pub fn builder(url: impl Into<String>) -> NatsRelayBuilder {
        NatsRelayBuilder::new(url.into())
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

    /// The JetStream context it publishes through (to read the stream, for instance).
    pub fn jetstream(&self) -> &async_nats::jetstream::Context {
        &self.inner.jetstream
    }

    /// Publishes `event` and waits for JetStream's acknowledgement: what the handler does.
    ///
    /// # Errors
    ///
    /// A [`RelayError`]: no acknowledgement in time, a JetStream error reply, a subject
    /// that is not a valid NATS subject.
    pub async fn relay(&self, event: &crate::EventEnvelope) -> Result<(), RelayError> {
        let inner = &*self.inner;
        let destination = inner.destinations.destination(event);
        check_subject(&event.event_type, &destination)?;
        let message = RelayMessage::new(event, destination, inner.format);
        let mut headers = HeaderMap::new();
        for (name, value) in &message.headers {
            headers.insert(name.as_str(), value.as_str());
        }
        headers.insert("content-type", message.content_type.as_str());
        let mut publish = PublishMessage::build()
            .headers(headers)
            .message_id(&message.id)
            .payload(message.body.into());
        if let Some(stream) = &inner.stream {
            publish = publish.expected_stream(stream);
        }
        let destination = message.destination;
        let error = |e: async_nats::jetstream::context::PublishError| {
            publish_error(&destination, inner.ack_timeout, e)
        };
        // Sending hands the message to the connection; the acknowledgement comes later,
        // while the other deliveries of the subscription send theirs.
        let ack = inner
            .jetstream
            .send_publish(destination.clone(), publish)
            .await
            .map_err(error)?
            .await
            .map_err(error)?;
        match &inner.stream {
            Some(stream) if *stream != ack.stream => Err(RelayError::Rejected {
                broker: BROKER,
                destination,
                message: format!("stored in stream {:?}, not {stream:?}", ack.stream),
            }),
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl RawHandler for NatsRelay {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        self.relay(&delivery.event)
            .await
            .map_err(RelayError::into_handler_error)
    }
}

fn publish_error(
    destination: &str,
    ack_timeout: Duration,
    e: async_nats::jetstream::context::PublishError,
) -> RelayError {
    let destination = destination.to_owned();
    match e.kind() {
        PublishErrorKind::TimedOut => RelayError::AckTimeout {
            broker: BROKER,
            destination,
            after: ack_timeout,
        },
        PublishErrorKind::StreamNotFound => RelayError::Rejected {
            broker: BROKER,
            destination,
            message: "no stream takes this subject".to_owned(),
        },
        PublishErrorKind::BrokenPipe => RelayError::Publish {
            broker: BROKER,
            destination,
            message: e.to_string(),
        },
        _ => RelayError::Rejected {
            broker: BROKER,
            destination,
            message: e.to_string(),
        },
    }
}

/// Refuses what NATS cannot publish to: an empty subject, empty tokens, wildcards,
/// whitespace or control characters.
fn check_subject(event_type: &str, subject: &str) -> Result<(), RelayError> {
    let reason = if subject.is_empty() {
        "a NATS subject must not be empty"
    } else if subject.split('.').any(str::is_empty) {
        "a NATS subject has no empty tokens (no leading, trailing or double '.')"
    } else if subject.split('.').any(|t| t == "*" || t == ">") {
        "a NATS subject to publish to has no wildcards"
    } else if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "a NATS subject has no whitespace or control characters"
    } else {
        return Ok(());
    };
    Err(RelayError::InvalidDestination {
        event_type: event_type.to_owned(),
        destination: subject.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::check_subject;

    #[test]
    fn subjects() {
        assert!(check_subject("a.b", "events.a.b").is_ok());
        assert!(check_subject("a-b_c", "events.a-b_c").is_ok());
        for bad in ["", "events.", ".a", "a..b", "a.*", "a.>", "a b", "a\tb"] {
            assert!(check_subject("a", bad).is_err(), "{bad:?}");
        }
    }
}
