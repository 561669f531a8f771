//! Handlers: what a subscription runs for each delivery, and how it reports failure.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::event::{Event, EventEnvelope};

/// One delivery of one event to one subscription, as its handler sees it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Delivery {
    /// Delivery id: stable across attempts; use it (or the event id) to make handlers
    /// idempotent.
    pub id: i64,
    /// This attempt's number, starting at 1.
    pub attempt: u32,
    /// The subscription's `max_attempts`: a failure of attempt `max_attempts` makes the
    /// delivery dead.
    pub max_attempts: u32,
    /// The subscription being delivered to.
    pub subscription: Arc<str>,
    /// The event.
    pub event: EventEnvelope,
}

impl Delivery {
    /// Whether this is the last attempt the retry policy allows: if it fails, the delivery
    /// is dead instead of retried.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }

    /// Builds a delivery outside a dispatcher. Not part of the stable API: use
    /// `pgbus_testing::DeliveryBuilder`, which calls this, to unit-test handlers.
    #[doc(hidden)]
    pub fn __new(
        id: i64,
        attempt: u32,
        max_attempts: u32,
        subscription: Arc<str>,
        event: EventEnvelope,
    ) -> Self {
        Delivery {
            id,
            attempt,
            max_attempts,
            subscription,
            event,
        }
    }
}

/// Why a handler failed, and what pgbus should do about it.
///
/// Any error converts into [`HandlerError::Retry`] with `?`: every `std::error::Error + Send
/// + Sync`, `Box<dyn Error + Send + Sync>`, `anyhow::Error` and plain `String`/`&str`
/// messages. The message keeps the error's chain of causes (`outer: inner: root`). Return
/// [`HandlerError::permanent`] for failures retrying cannot fix.
#[derive(Debug)]
#[non_exhaustive]
pub enum HandlerError {
    /// Try again later: after `delay` if given, else after the retry policy's backoff.
    /// Dead once the policy's attempts are used up.
    Retry {
        /// What went wrong (stored as the delivery's `last_error`).
        message: String,
        /// A specific delay before the next attempt.
        delay: Option<Duration>,
    },
    /// Do not try again: the delivery is dead at once.
    Permanent {
        /// What went wrong (stored as the delivery's `last_error`).
        message: String,
    },
}

impl HandlerError {
    /// A retryable failure with the policy's backoff.
    pub fn retry(message: impl fmt::Display) -> Self {
        HandlerError::Retry {
            message: message.to_string(),
            delay: None,
        }
    }

    /// A retryable failure, next attempt after `delay`.
    pub fn retry_after(message: impl fmt::Display, delay: Duration) -> Self {
        HandlerError::Retry {
            message: message.to_string(),
            delay: Some(delay),
        }
    }

    /// A permanent failure: the delivery is dead at once.
    pub fn permanent(message: impl fmt::Display) -> Self {
        HandlerError::Permanent {
            message: message.to_string(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            HandlerError::Retry { message, .. } | HandlerError::Permanent { message } => message,
        }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandlerError::Retry { message, .. } => write!(f, "retryable: {message}"),
            HandlerError::Permanent { message } => write!(f, "permanent: {message}"),
        }
    }
}

/// Anything that converts into a boxed error: every `std::error::Error + Send + Sync`,
/// `Box<dyn Error + Send + Sync>`, `anyhow::Error` (which converts into one), `String` and
/// `&str`.
impl<E> From<E> for HandlerError
where
    E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
{
    fn from(error: E) -> Self {
        HandlerError::retry(error_chain(&*error.into()))
    }
}

/// The error and its causes, `outer: inner: root`, leaving out a cause whose text the
/// message already holds (many errors repeat their source in their own message).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// Handles one typed event type.
///
/// ```
/// use pgbus::{Delivery, Event, Handler, HandlerError};
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # struct PropertyCreated { property_id: i64 }
/// # impl Event for PropertyCreated { const TYPE: &'static str = "property.created"; }
///
/// struct NotifyAgents;
///
/// #[async_trait::async_trait]
/// impl Handler<PropertyCreated> for NotifyAgents {
///     async fn handle(&self, event: PropertyCreated, delivery: &Delivery) -> Result<(), HandlerError> {
///         println!("property {} (attempt {})", event.property_id, delivery.attempt);
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait Handler<E: Event>: Send + Sync + 'static {
    /// Handles one delivery. A payload that does not deserialize as `E` never reaches this
    /// method: the delivery is dead at once with an error naming the type.
    async fn handle(&self, event: E, delivery: &Delivery) -> Result<(), HandlerError>;
}

/// Handles raw events of any type the subscription's patterns match.
#[async_trait]
pub trait RawHandler: Send + Sync + 'static {
    /// Handles one delivery; the payload is `delivery.event.data`.
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError>;
}

/// The dispatcher's uniform view of typed and raw handlers.
#[async_trait]
pub(crate) trait ErasedHandler: Send + Sync + 'static {
    async fn call(&self, delivery: &Delivery) -> Result<(), Failure>;
}

/// A handler failure as the dispatcher records it.
#[derive(Debug)]
pub(crate) enum Failure {
    Handler(HandlerError),
    /// The payload does not deserialize as the handler's type: dead at once.
    Decode(String),
}

impl Failure {
    /// The payload of `delivery` does not decode as `E`.
    pub(crate) fn undecodable<E>(delivery: &Delivery, e: impl fmt::Display) -> Self {
        Failure::Decode(format!(
            "cannot deserialize event {} of type {:?} as {}: {e}",
            delivery.event.id,
            delivery.event.event_type,
            std::any::type_name::<E>()
        ))
    }
}

pub(crate) struct Typed<E, H> {
    pub(crate) handler: H,
    pub(crate) _event: PhantomData<fn() -> E>,
}

#[async_trait]
impl<E: Event, H: Handler<E>> ErasedHandler for Typed<E, H> {
    async fn call(&self, delivery: &Delivery) -> Result<(), Failure> {
        let event =
            (delivery.event.decode::<E>()).map_err(|e| Failure::undecodable::<E>(delivery, e))?;
        self.handler
            .handle(event, delivery)
            .await
            .map_err(Failure::Handler)
    }
}

pub(crate) struct Raw<H>(pub(crate) H);

#[async_trait]
impl<H: RawHandler> ErasedHandler for Raw<H> {
    async fn call(&self, delivery: &Delivery) -> Result<(), Failure> {
        self.0.handle(delivery).await.map_err(Failure::Handler)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("saving the follow-up failed")]
    struct Outer(#[source] std::io::Error);

    fn retry_message(e: HandlerError) -> String {
        match e {
            HandlerError::Retry { message, delay } => {
                assert_eq!(delay, None);
                message
            }
            other => panic!("not a retry: {other:?}"),
        }
    }

    #[test]
    fn common_error_types_convert_into_a_retry_with_their_causes() {
        let io = || std::io::Error::other("disk full");
        assert_eq!(retry_message(io().into()), "disk full");
        assert_eq!(
            retry_message(Outer(io()).into()),
            "saving the follow-up failed: disk full"
        );
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(Outer(io()));
        assert_eq!(
            retry_message(boxed.into()),
            "saving the follow-up failed: disk full"
        );
        let any = anyhow::Error::new(io()).context("calling the CRM");
        assert_eq!(retry_message(any.into()), "calling the CRM: disk full");
        assert_eq!(retry_message("plain text".into()), "plain text");
        assert_eq!(retry_message(String::from("owned").into()), "owned");
    }

    #[test]
    fn a_cause_repeated_in_its_message_is_not_repeated() {
        #[derive(Debug, thiserror::Error)]
        #[error("query failed: disk full")]
        struct Repeats(#[source] std::io::Error);
        let e: HandlerError = Repeats(std::io::Error::other("disk full")).into();
        assert_eq!(retry_message(e), "query failed: disk full");
    }

    #[test]
    fn the_last_attempt_is_the_policys_last() {
        let envelope = EventEnvelope {
            id: uuid::Uuid::now_v7(),
            event_type: "a.b".into(),
            source: "s".into(),
            subject: None,
            key: None,
            data: serde_json::Value::Null,
            headers: Default::default(),
            created_at: chrono::Utc::now(),
        };
        let d = |attempt| Delivery::__new(1, attempt, 3, "sub".into(), envelope.clone());
        assert!(!d(2).is_last_attempt());
        assert!(d(3).is_last_attempt());
    }
}
