//! Schema versions of typed events: the version stored with each event (the reserved
//! header [`VERSION_HEADER`]), the older payload an [`Event::upgrade`] receives, and the
//! errors of a versioned decode.
//!
//! An event without the header is version 1, so raw events and events published before a
//! type declared a version decode as its first version.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::event::Event;

/// The reserved header holding an event's schema version (a whole number from 1). Typed
/// events get it from [`Event::VERSION`] when published; without it an event is version 1.
pub const VERSION_HEADER: &str = "pgbus-version";

/// The schema version stored in `headers`: 1 without the header.
///
/// # Errors
///
/// [`DecodeError::InvalidVersion`] when the header is not a whole number from 1.
pub(crate) fn stored_version(headers: &BTreeMap<String, String>) -> Result<u32, DecodeError> {
    match headers.get(VERSION_HEADER) {
        None => Ok(1),
        Some(v) => parse_version(v).ok_or_else(|| DecodeError::InvalidVersion { value: v.clone() }),
    }
}

/// A schema version as written in the header: decimal digits, no sign or leading zero, ≥ 1.
pub(crate) fn parse_version(text: &str) -> Option<u32> {
    if text.is_empty() || text.starts_with('0') || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The payload of an event at the schema version it was published with, as
/// [`Event::upgrade`] receives it when that version is older than the type's.
///
/// ```
/// use pgbus::{DecodeError, Event, VersionedPayload};
/// use serde::{Deserialize, Serialize};
///
/// /// Version 1, kept to read what was published before version 2.
/// #[derive(Serialize, Deserialize)]
/// struct PropertyCreatedV1 {
///     property_id: i64,
/// }
///
/// impl Event for PropertyCreatedV1 {
///     const TYPE: &'static str = "property.created";
/// }
///
/// #[derive(Serialize, Deserialize)]
/// struct PropertyCreated {
///     property_id: i64,
///     city: Option<String>,
/// }
///
/// impl Event for PropertyCreated {
///     const TYPE: &'static str = "property.created";
///     const VERSION: u32 = 2;
///
///     fn upgrade(older: VersionedPayload) -> Result<Self, DecodeError> {
///         let v1: PropertyCreatedV1 = older.decode()?;
///         Ok(PropertyCreated { property_id: v1.property_id, city: None })
///     }
/// }
///
/// let stored = VersionedPayload::new("property.created", 1, serde_json::json!({"property_id": 7}));
/// let event: PropertyCreated = stored.decode().unwrap();
/// assert_eq!(event.property_id, 7);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct VersionedPayload {
    event_type: String,
    version: u32,
    data: Value,
}

impl VersionedPayload {
    /// A payload of `event_type` at schema `version`.
    pub fn new(event_type: impl Into<String>, version: u32, data: Value) -> Self {
        VersionedPayload {
            event_type: event_type.into(),
            version,
            data,
        }
    }

    /// The event type name.
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// The schema version the payload was published with.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The payload.
    pub fn data(&self) -> &Value {
        &self.data
    }

    /// The payload, taken.
    pub fn into_data(self) -> Value {
        self.data
    }

    /// Decodes as `E`: directly when the payload is at `E::VERSION`, through
    /// [`E::upgrade`](Event::upgrade) when it is older, and never when it is newer.
    ///
    /// An upgrade decodes the payload as the previous version's type, which upgrades in
    /// turn, so a chain `v1 → v2 → v3` needs one `upgrade` per version. An `upgrade` must
    /// not decode as its own type (that would upgrade again, without end).
    ///
    /// # Errors
    ///
    /// [`DecodeError::NewerVersion`] for a payload newer than `E`,
    /// [`DecodeError::NoUpgrade`] for an older one `E` has no upgrade from,
    /// [`DecodeError::Payload`] when the payload does not deserialize, or whatever the
    /// upgrade returns.
    pub fn decode<E: Event>(self) -> Result<E, DecodeError> {
        match self.version.cmp(&E::VERSION) {
            Ordering::Equal => decode_payload(&self.data, self.version),
            Ordering::Less => E::upgrade(self),
            Ordering::Greater => Err(DecodeError::NewerVersion {
                event_type: self.event_type,
                found: self.version,
                known: E::VERSION,
            }),
        }
    }
}

/// Deserializes `data` as `E`, at `version`.
pub(crate) fn decode_payload<E: Event>(data: &Value, version: u32) -> Result<E, DecodeError> {
    E::deserialize(data).map_err(|source| DecodeError::Payload { version, source })
}

/// Why an event's payload could not become the typed event a handler wants.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The payload does not deserialize as the type of its version.
    #[error("payload of schema version {version} does not deserialize: {source}")]
    Payload {
        /// The schema version it was decoded at.
        version: u32,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// The event was published with a newer schema version than this build knows.
    #[error(
        "event of type {event_type:?} has schema version {found}, newer than version {known}, \
         the newest this build knows"
    )]
    NewerVersion {
        /// The event type.
        event_type: String,
        /// The event's version.
        found: u32,
        /// The newest version the type knows.
        known: u32,
    },
    /// The event has an older schema version, and the type has no upgrade from it.
    #[error(
        "event of type {event_type:?} has schema version {found}, older than version {known}, \
         and the type has no upgrade from it"
    )]
    NoUpgrade {
        /// The event type.
        event_type: String,
        /// The event's version.
        found: u32,
        /// The type's version.
        known: u32,
    },
    /// An upgrade function refused the payload.
    #[error("upgrading event of type {event_type:?} from schema version {from}: {message}")]
    Upgrade {
        /// The event type.
        event_type: String,
        /// The version it was upgraded from.
        from: u32,
        /// Why.
        message: String,
    },
    /// The version header holds something other than a schema version.
    #[error("header {VERSION_HEADER} is {value:?}, not a schema version (a whole number from 1)")]
    InvalidVersion {
        /// The header's value.
        value: String,
    },
}

impl DecodeError {
    /// An upgrade's own refusal of `older`, e.g. a field it cannot fill in.
    pub fn upgrade(older: &VersionedPayload, message: impl fmt::Display) -> Self {
        DecodeError::Upgrade {
            event_type: older.event_type.clone(),
            from: older.version,
            message: message.to_string(),
        }
    }
}

#[cfg(test)]
mod tests;
