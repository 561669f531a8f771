//! [`DeliveryBuilder`]: a [`pgbus::Delivery`] made by hand, to unit-test handlers without a
//! database.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use pgbus::{Delivery, Event, EventEnvelope};
use serde_json::Value;
use uuid::Uuid;

/// Builds a [`pgbus::Delivery`] as a dispatcher would hand it to a handler, so that the
/// handler can be called directly in a unit test: no database, no dispatcher.
///
/// Start from a typed event with [`DeliveryBuilder::of`] or from a type name and JSON with
/// [`DeliveryBuilder::raw`]; every setter has a default:
///
/// | setter | default |
/// | --- | --- |
/// | [`id`](Self::id) (delivery id) | `1` |
/// | [`attempt`](Self::attempt) | `1` (the first attempt) |
/// | [`max_attempts`](Self::max_attempts) | `25`, as [`pgbus::RetryPolicy::default`] |
/// | [`subscription`](Self::subscription) | `"test"` |
/// | [`event_id`](Self::event_id) | a fresh UUID v7, as publishing makes |
/// | [`source`](Self::source) | `"pgbus"`, the publisher's default source |
/// | [`subject`](Self::subject), [`key`](Self::key) | none |
/// | [`header`](Self::header) | no headers ([`of`](Self::of): the schema version) |
/// | [`created_at`](Self::created_at) | now, when [`build`](Self::build) is called |
///
/// Nothing is validated: a test may well hand a handler what publishing would refuse.
///
/// ```
/// use pgbus::{Delivery, Event, Handler, HandlerError};
/// use pgbus_testing::DeliveryBuilder;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct PropertyCreated {
///     property_id: i64,
/// }
///
/// impl Event for PropertyCreated {
///     const TYPE: &'static str = "property.created";
/// }
///
/// /// Gives up on the last attempt instead of failing once more.
/// struct NotifyAgents;
///
/// #[pgbus::async_trait]
/// impl Handler<PropertyCreated> for NotifyAgents {
///     async fn handle(&self, event: PropertyCreated, delivery: &Delivery) -> Result<(), HandlerError> {
///         if event.property_id < 0 {
///             return Err(HandlerError::permanent("no such property"));
///         }
///         if delivery.is_last_attempt() {
///             return Ok(()); // skip the notification rather than dead-letter it
///         }
///         Err(HandlerError::retry("agents' service unavailable"))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let event = PropertyCreated { property_id: 42 };
/// let first = DeliveryBuilder::of(&event).build();
/// assert!(matches!(
///     NotifyAgents.handle(event, &first).await,
///     Err(HandlerError::Retry { .. })
/// ));
///
/// let event = PropertyCreated { property_id: 42 };
/// let last = DeliveryBuilder::of(&event).attempt(3).max_attempts(3).build();
/// assert!(NotifyAgents.handle(event, &last).await.is_ok());
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a DeliveryBuilder does nothing until built"]
pub struct DeliveryBuilder {
    id: i64,
    attempt: u32,
    max_attempts: u32,
    subscription: Arc<str>,
    event_id: Uuid,
    event_type: String,
    source: String,
    subject: Option<String>,
    key: Option<String>,
    data: Value,
    headers: BTreeMap<String, String>,
    created_at: Option<DateTime<Utc>>,
}

impl DeliveryBuilder {
    /// A delivery of the typed `event`, serialized as publishing does (`serde_json`), of
    /// type `E::TYPE`, with its schema version `E::VERSION` in the header
    /// [`pgbus::VERSION_HEADER`] (set another with [`header`](Self::header) to hand a
    /// handler an older version).
    ///
    /// # Panics
    ///
    /// If `event` does not serialize to JSON (e.g. a map with non-string keys): publishing
    /// it would fail too.
    pub fn of<E: Event>(event: &E) -> Self {
        let data = serde_json::to_value(event).unwrap_or_else(|e| {
            panic!(
                "DeliveryBuilder::of: serializing event of type {:?} failed: {e}",
                E::TYPE
            )
        });
        Self::raw(E::TYPE, data).header(pgbus::VERSION_HEADER, E::VERSION.to_string())
    }

    /// A delivery of an event of type `event_type` carrying `data` as is, for
    /// [`pgbus::RawHandler`]s (or to hand a typed handler's subscription a payload that does
    /// not decode).
    pub fn raw(event_type: impl Into<String>, data: Value) -> Self {
        DeliveryBuilder {
            id: 1,
            attempt: 1,
            max_attempts: pgbus::RetryPolicy::default().attempts(),
            subscription: Arc::from("test"),
            event_id: Uuid::now_v7(),
            event_type: event_type.into(),
            source: "pgbus".to_owned(),
            subject: None,
            key: None,
            data,
            headers: BTreeMap::new(),
            created_at: None,
        }
    }

    /// The delivery id ([`Delivery::id`]). Default: 1.
    pub fn id(mut self, id: i64) -> Self {
        self.id = id;
        self
    }

    /// The attempt number, starting at 1 ([`Delivery::attempt`]). Default: 1.
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// The subscription's attempts ([`Delivery::max_attempts`]). Default: 25, as the
    /// library's default [`pgbus::RetryPolicy`].
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// The subscription's name ([`Delivery::subscription`]). Default: `"test"`.
    pub fn subscription(mut self, subscription: impl Into<Arc<str>>) -> Self {
        self.subscription = subscription.into();
        self
    }

    /// The event id ([`EventEnvelope::id`]). Default: a fresh UUID v7.
    pub fn event_id(mut self, id: Uuid) -> Self {
        self.event_id = id;
        self
    }

    /// The publishing service ([`EventEnvelope::source`]). Default: `"pgbus"`, the
    /// publisher's default.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// The aggregate or entity the event is about ([`EventEnvelope::subject`]). Default: none.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// The ordering key ([`EventEnvelope::key`]). Default: none.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Adds a header ([`EventEnvelope::headers`]), replacing one of the same name. Default:
    /// no headers.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// When the event was published ([`EventEnvelope::created_at`]). Default: the time
    /// [`build`](Self::build) is called.
    pub fn created_at(mut self, at: DateTime<Utc>) -> Self {
        self.created_at = Some(at);
        self
    }

    /// The delivery.
    pub fn build(self) -> Delivery {
        let event = EventEnvelope {
            id: self.event_id,
            event_type: self.event_type,
            source: self.source,
            subject: self.subject,
            key: self.key,
            data: self.data,
            headers: self.headers,
            created_at: self.created_at.unwrap_or_else(Utc::now),
        };
        Delivery::__new(
            self.id,
            self.attempt,
            self.max_attempts,
            self.subscription,
            event,
        )
    }
}

#[cfg(test)]
mod tests;
