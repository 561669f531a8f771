//! The crate's error type.

use crate::cloudevents::CloudEventError;

/// A `Result` with [`Error`] as its error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a pgbus call.
///
/// Variants other than [`Error::Database`], [`Error::Migrate`] and [`Error::Internal`] are
/// raised before anything is written: a call that returns them has not touched the database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database refused a statement or the connection failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),

    /// Applying the schema migrations failed.
    #[error("migration {version} ({name}) failed: {source}")]
    Migrate {
        /// Version of the migration that failed.
        version: i64,
        /// Its file name.
        name: &'static str,
        /// What the database said.
        #[source]
        source: sqlx::Error,
    },

    /// The schema in the database is newer than this build of pgbus knows.
    #[error("database schema is at version {found}, newer than the {known} this pgbus knows")]
    SchemaTooNew {
        /// Highest version applied in the database.
        found: i64,
        /// Highest version this build ships.
        known: i64,
    },

    /// An event type name (or type pattern) is empty, too long or has invalid characters.
    #[error("invalid event type {type_name:?}: {reason}")]
    InvalidEventType {
        /// The offending name.
        type_name: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// A subscription name is empty, too long or has invalid characters.
    #[error("invalid subscription name {name:?}: {reason}")]
    InvalidSubscriptionName {
        /// The offending name.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// A subscription name was used that no dispatcher ever registered.
    #[error("unknown subscription {0:?}")]
    UnknownSubscription(String),

    /// A delivery id that names no delivery (admin API).
    #[error("no delivery {0}")]
    UnknownDelivery(i64),

    /// An event id that names no event (admin API).
    #[error("no event {0}")]
    UnknownEvent(uuid::Uuid),

    /// A dead-letter operation on a delivery that is not dead (admin API).
    #[error("delivery {id} is {state}, not dead")]
    NotDead {
        /// The delivery.
        id: i64,
        /// Its state.
        state: crate::DeliveryState,
    },

    /// A time range that is empty or inverted: its start is not before its end (admin API).
    #[error("empty time range: {from} is not before {to}")]
    InvalidTimeRange {
        /// The start (inclusive).
        from: chrono::DateTime<chrono::Utc>,
        /// The end (exclusive).
        to: chrono::DateTime<chrono::Utc>,
    },

    /// A limit or batch size out of its range (admin API).
    #[error("`{field}` is {value}, outside {min}..={max}")]
    OutOfRange {
        /// The setting.
        field: &'static str,
        /// The value given.
        value: u64,
        /// The smallest value accepted.
        min: u64,
        /// The largest value accepted.
        max: u64,
    },

    /// Two subscriptions with one name were given to one dispatcher.
    #[error("subscription {0:?} is registered twice")]
    DuplicateSubscription(String),

    /// A text field of an event (source, subject, key, dedupe key, header) is invalid.
    #[error("invalid event field `{field}`: {reason}")]
    InvalidField {
        /// Which field.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },

    /// The serialized payload is larger than the configured limit.
    #[error("payload of {size} bytes exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// Serialized size in bytes.
        size: usize,
        /// Configured limit in bytes.
        limit: usize,
    },

    /// The payload cannot be stored (e.g. it holds a NUL character or nests too deeply).
    #[error("invalid payload: {0}")]
    InvalidPayload(String),

    /// The payload failed to serialize to JSON.
    #[error("payload of event type {type_name:?} failed to serialize: {source}")]
    Serialize {
        /// The event type being published.
        type_name: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },

    /// A CloudEvent could not be read (see [`CloudEventError`]).
    #[error("invalid CloudEvent: {0}")]
    CloudEvent(#[from] CloudEventError),

    /// A webhook was refused by the inbox (see [`WebhookError`](crate::inbox::WebhookError)).
    #[cfg(feature = "inbox")]
    #[error("webhook refused: {0}")]
    Webhook(#[from] crate::inbox::WebhookError),

    /// A relay could not connect to its broker or set up its destination (see
    /// [`RelayError`](crate::relay::RelayError)).
    #[error("relay: {0}")]
    Relay(#[from] crate::relay::RelayError),

    /// An event catalog is inconsistent (an event type documented twice, a version of 0).
    #[error("invalid event catalog: {0}")]
    Catalog(String),

    /// A task of pgbus itself failed unexpectedly (it panicked): a bug in pgbus, to report.
    #[error("pgbus internal error: {0}")]
    Internal(String),

    /// A builder was given a value it cannot work with.
    #[error("invalid configuration `{field}`: {reason}")]
    Config {
        /// The setting.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
}

impl Error {
    /// Whether the call was refused for what it was given (a validation error, a refused
    /// webhook or CloudEvent), not because of the database or pgbus itself: a request that
    /// led to it deserves a 4xx, not a 5xx. Nothing was written.
    pub fn is_invalid_input(&self) -> bool {
        !matches!(
            self,
            Error::Database(_)
                | Error::Migrate { .. }
                | Error::SchemaTooNew { .. }
                | Error::Internal(_)
                | Error::Relay(_)
        )
    }

    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Self {
        Error::Config {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn field(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidField {
            field,
            reason: reason.into(),
        }
    }
}
