//! Events: the typed [`Event`] trait, the outgoing [`NewEvent`] and the delivered
//! [`EventEnvelope`].

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use uuid::Uuid;

use crate::dedupe::DedupeScope;
use crate::error::{Error, Result};
use crate::version::{self, DecodeError, VERSION_HEADER, VersionedPayload};

/// Longest event type name, in bytes.
pub const MAX_TYPE_LEN: usize = 200;
/// Longest subject, ordering key, dedupe key, source or header value, in bytes.
pub const MAX_TEXT_LEN: usize = 1024;

/// A typed event: a serde type with a stable type name.
///
/// The set of types implementing `Event` is the service's event catalog.
///
/// A type may declare a schema [`VERSION`](Event::VERSION), stored with every event it
/// publishes; a handler of a newer version reads older events through
/// [`upgrade`](Event::upgrade) (see [`VersionedPayload`]), and an event of a version the
/// type cannot read makes the delivery dead with an error naming both versions.
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct PropertyCreated {
///     property_id: i64,
///     title: String,
/// }
///
/// impl pgbus::Event for PropertyCreated {
///     const TYPE: &'static str = "property.created";
/// }
/// ```
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The event type name, e.g. `property.created`: dot-separated segments of ASCII
    /// letters, digits, `_` and `-`, at most [`MAX_TYPE_LEN`] bytes.
    const TYPE: &'static str;

    /// The payload's schema version, a whole number from 1, stored with each published event
    /// (header [`VERSION_HEADER`]). Raise it when the payload changes in a way older
    /// readers cannot decode, and give [`upgrade`](Event::upgrade) the way up from the
    /// versions still stored. Default: 1.
    const VERSION: u32 = 1;

    /// Turns the payload of an older schema version into this type; called by decoding
    /// when an event's version is below [`VERSION`](Event::VERSION). Decode `older` as the
    /// previous version's type with [`VersionedPayload::decode`] (which upgrades it in
    /// turn) and convert. Default: no upgrade ([`DecodeError::NoUpgrade`]).
    ///
    /// # Errors
    ///
    /// Whatever decoding the older version returns, or [`DecodeError::upgrade`] for a
    /// payload that cannot be upgraded.
    fn upgrade(older: VersionedPayload) -> std::result::Result<Self, DecodeError> {
        Err(DecodeError::NoUpgrade {
            event_type: older.event_type().to_owned(),
            found: older.version(),
            known: Self::VERSION,
        })
    }
}

/// An event about to be published: its type, JSON payload and optional metadata.
///
/// Build one from a typed event with [`NewEvent::from_event`] (or pass `&event` straight to
/// [`Publisher::publish`](crate::Publisher::publish)), or from a type name and raw JSON with
/// [`NewEvent::raw`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub(crate) id: Uuid,
    pub(crate) event_type: String,
    pub(crate) data: Value,
    pub(crate) subject: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) dedupe_key: Option<String>,
    pub(crate) dedupe_scope: DedupeScope,
    pub(crate) priority: i16,
    pub(crate) deliver_at: Option<DateTime<Utc>>,
}

impl NewEvent {
    /// An event of type `event_type` carrying `data` as is. The type name is checked when
    /// published.
    pub fn raw(event_type: impl Into<String>, data: Value) -> Self {
        NewEvent {
            id: Uuid::now_v7(),
            event_type: event_type.into(),
            data,
            subject: None,
            key: None,
            headers: BTreeMap::new(),
            dedupe_key: None,
            dedupe_scope: DedupeScope::EventType,
            priority: 0,
            deliver_at: None,
        }
    }

    /// Serializes a typed event, with its schema version ([`Event::VERSION`]) in the
    /// header [`VERSION_HEADER`].
    ///
    /// # Errors
    ///
    /// [`Error::Serialize`] if serde fails (e.g. a map with non-string keys).
    pub fn from_event<E: Event>(event: &E) -> Result<Self> {
        let data = serde_json::to_value(event).map_err(|source| Error::Serialize {
            type_name: E::TYPE.to_owned(),
            source,
        })?;
        Ok(Self::raw(E::TYPE, data).schema_version(E::VERSION))
    }

    /// The id the event will have (a UUID v7, time-ordered).
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The event type name.
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// The aggregate or entity this event is about (e.g. `property/42`). Default: none.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Ordering key. Stored with each delivery; per-key ordering is on the roadmap.
    /// Default: none.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Adds a header, such as `correlation_id`, `causation_id` or `traceparent`.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Publishing a second event with the same dedupe key in the same scope (see
    /// [`dedupe_scope`](Self::dedupe_scope)) writes nothing and reports
    /// [`PublishOutcome::Duplicate`](crate::PublishOutcome::Duplicate), for as long as the
    /// key is kept (the dispatcher's dedupe retention). Default: none.
    pub fn dedupe_key(mut self, key: impl Into<String>) -> Self {
        self.dedupe_key = Some(key.into());
        self
    }

    /// Within what the dedupe key is unique. Default: [`DedupeScope::EventType`].
    pub fn dedupe_scope(mut self, scope: DedupeScope) -> Self {
        self.dedupe_scope = scope;
        self
    }

    /// Priority of the event's deliveries: smaller runs first. Default: 0.
    pub fn priority(mut self, priority: i16) -> Self {
        self.priority = priority;
        self
    }

    /// The deliveries become due at this time instead of at once. Default: now.
    pub fn deliver_at(mut self, at: DateTime<Utc>) -> Self {
        self.deliver_at = Some(at);
        self
    }

    /// The payload's schema version, stored in the header [`VERSION_HEADER`] (typed events
    /// get theirs from [`Event::VERSION`]). Publishing refuses a version of 0.
    pub fn schema_version(self, version: u32) -> Self {
        self.header(VERSION_HEADER, version.to_string())
    }

    /// The headers so far.
    pub fn headers(&self) -> &BTreeMap<String, String> {
        &self.headers
    }

    /// The payload.
    pub fn data(&self) -> &Value {
        &self.data
    }

    /// Uses a caller-chosen id instead of a fresh UUID v7.
    ///
    /// An id is unique within one slot of the events ring (`pgbus.events` is partitioned
    /// into eight slots, each taking events for a sixth of the event retention): publishing
    /// an id again is refused while the first event's slot takes events, not after
    /// publishing moved to another slot. To refuse a repeat for a known window, give the
    /// event a [`dedupe_key`](Self::dedupe_key) instead, which holds across the whole ring
    /// for the dedupe retention.
    pub fn with_id(mut self, id: Uuid) -> Self {
        self.id = id;
        self
    }
}

/// Anything [`Publisher::publish`](crate::Publisher::publish) and
/// [`Publisher::publish_all`](crate::Publisher::publish_all) accept: a [`NewEvent`], a
/// reference to one, or a reference to a typed [`Event`].
pub trait IntoNewEvent<'a> {
    /// Converts into a [`NewEvent`], borrowed where it already is one.
    ///
    /// # Errors
    ///
    /// [`Error::Serialize`] if a typed payload fails to serialize.
    fn into_new_event(self) -> Result<Cow<'a, NewEvent>>;
}

impl<'a> IntoNewEvent<'a> for NewEvent {
    fn into_new_event(self) -> Result<Cow<'a, NewEvent>> {
        Ok(Cow::Owned(self))
    }
}

impl<'a> IntoNewEvent<'a> for &'a NewEvent {
    fn into_new_event(self) -> Result<Cow<'a, NewEvent>> {
        Ok(Cow::Borrowed(self))
    }
}

impl<'a, E: Event> IntoNewEvent<'a> for &E {
    fn into_new_event(self) -> Result<Cow<'a, NewEvent>> {
        NewEvent::from_event(self).map(Cow::Owned)
    }
}

/// A published event as a handler receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventEnvelope {
    /// Event id (UUID v7).
    pub id: Uuid,
    /// Event type name.
    pub event_type: String,
    /// Publishing service.
    pub source: String,
    /// Aggregate or entity id, if any.
    pub subject: Option<String>,
    /// Ordering key, if any.
    pub key: Option<String>,
    /// The JSON payload.
    pub data: Value,
    /// Headers (correlation ids, `traceparent`, ...).
    pub headers: BTreeMap<String, String>,
    /// When the event was published (transaction time of the publish).
    pub created_at: DateTime<Utc>,
}

impl EventEnvelope {
    /// The payload's schema version: the header [`VERSION_HEADER`], or 1 without it.
    ///
    /// # Errors
    ///
    /// [`DecodeError::InvalidVersion`] when the header is not a whole number from 1.
    pub fn schema_version(&self) -> std::result::Result<u32, DecodeError> {
        version::stored_version(&self.headers)
    }

    /// Deserializes the payload as `E`, at the event's schema version: directly when it is
    /// `E::VERSION`, through [`Event::upgrade`] when it is older, never when it is newer.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`]: the payload does not fit, or its version is one `E` cannot read.
    pub fn decode<E: Event>(&self) -> std::result::Result<E, DecodeError> {
        let version = self.schema_version()?;
        if version == E::VERSION {
            return version::decode_payload(&self.data, version);
        }
        VersionedPayload::new(self.event_type.clone(), version, self.data.clone()).decode()
    }
}
