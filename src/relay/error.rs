//! Why a relay could not hand an event to its broker.

use std::time::Duration;

use crate::handler::HandlerError;

/// A relay's failure: connecting, setting up, or publishing one event.
///
/// Inside a relay subscription every variant but [`RelayError::InvalidDestination`] makes
/// the delivery retry with the subscription's backoff: nothing is marked done that the
/// broker has not confirmed. Outside one (connecting, declaring a stream or exchange) it
/// arrives as [`Error::Relay`](crate::Error::Relay).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The broker could not be reached, or the connection or channel broke.
    #[error("{broker}: connection failed: {message}")]
    Connect {
        /// `nats` or `rabbitmq`.
        broker: &'static str,
        /// What the client said.
        message: String,
    },
    /// Setting up the destination (a JetStream stream, an AMQP exchange) failed.
    #[error("{broker}: setting up {what} failed: {message}")]
    Setup {
        /// `nats` or `rabbitmq`.
        broker: &'static str,
        /// What was being set up.
        what: String,
        /// What the broker said.
        message: String,
    },
    /// The message could not be sent.
    #[error("{broker}: publishing to {destination:?} failed: {message}")]
    Publish {
        /// `nats` or `rabbitmq`.
        broker: &'static str,
        /// The subject or routing key.
        destination: String,
        /// What the client said.
        message: String,
    },
    /// The broker refused the message: a JetStream error reply (no stream for the subject,
    /// a full stream, the wrong stream), an AMQP negative acknowledgement.
    #[error("{broker}: the broker refused the message for {destination:?}: {message}")]
    Rejected {
        /// `nats` or `rabbitmq`.
        broker: &'static str,
        /// The subject or routing key.
        destination: String,
        /// What the broker said.
        message: String,
    },
    /// A mandatory AMQP message was returned: no queue is bound for its routing key.
    #[error(
        "rabbitmq: unroutable: exchange {exchange:?} routed {routing_key:?} to no queue ({reply})"
    )]
    Unroutable {
        /// The exchange published to.
        exchange: String,
        /// The routing key.
        routing_key: String,
        /// The broker's reply code and text.
        reply: String,
    },
    /// No acknowledgement arrived in time; the broker may or may not have the message (a
    /// retry is deduplicated by the event id where the broker does that).
    #[error("{broker}: no acknowledgement for {destination:?} within {after:?}")]
    AckTimeout {
        /// `nats` or `rabbitmq`.
        broker: &'static str,
        /// The subject or routing key.
        destination: String,
        /// How long the relay waited.
        after: Duration,
    },
    /// The destination mapping gave a subject or routing key the broker cannot take.
    /// Retrying cannot fix it: the delivery is dead at once.
    #[error("invalid destination {destination:?} for event type {event_type:?}: {reason}")]
    InvalidDestination {
        /// The event's type.
        event_type: String,
        /// What the mapping gave.
        destination: String,
        /// Why it cannot be used.
        reason: &'static str,
    },
}

impl RelayError {
    /// Whether retrying may succeed: every variant but
    /// [`InvalidDestination`](RelayError::InvalidDestination).
    pub fn is_retryable(&self) -> bool {
        !matches!(self, RelayError::InvalidDestination { .. })
    }

    /// The handler outcome of this failure: a retry with the policy's backoff, or (for an
    /// invalid destination) a permanent failure.
    pub fn into_handler_error(self) -> HandlerError {
        if self.is_retryable() {
            HandlerError::retry(self)
        } else {
            HandlerError::permanent(self)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_invalid_destination_is_permanent() {
        let invalid = RelayError::InvalidDestination {
            event_type: "a.b".into(),
            destination: "a b".into(),
            reason: "has whitespace",
        };
        assert!(matches!(
            invalid.into_handler_error(),
            HandlerError::Permanent { .. }
        ));
        let timeout = RelayError::AckTimeout {
            broker: "nats",
            destination: "events.a".into(),
            after: Duration::from_secs(1),
        };
        match timeout.into_handler_error() {
            HandlerError::Retry { message, delay } => {
                assert_eq!(delay, None);
                assert!(message.contains("no acknowledgement"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}
