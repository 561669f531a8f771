//! CloudEvents 1.0: every event as a CloudEvent, in structured mode (one JSON document) or
//! binary mode (attributes as transport headers, the payload as the body), and CloudEvents
//! received from elsewhere as events to publish.
//!
//! | CloudEvents | pgbus |
//! |---|---|
//! | `id` | the event id (a CloudEvent's non-UUID id is kept in the header `pgbus-id`) |
//! | `source` | the publisher's source (a received CloudEvent's in `pgbus-source`) |
//! | `specversion` | `1.0` |
//! | `type` | the event type |
//! | `subject` | the subject |
//! | `time` | `created_at` (a received CloudEvent's in `pgbus-time`) |
//! | `datacontenttype` | `application/json` (another JSON type in `pgbus-datacontenttype`) |
//! | `dataschema` | from the schema version ([`dataschema_uri`]); a received one in `pgbus-dataschema` |
//! | `data` | the payload |
//! | extension `partitionkey` | the ordering key (the Partitioning extension) |
//! | other extensions | headers whose names are valid extension names ([`is_extension_name`]) |
//!
//! Headers with other names (`correlation_id`, the reserved `pgbus-*`) are not extensions:
//! name the headers that should travel with CloudEvents as the spec allows (`traceparent`,
//! `correlationid`). Payloads are JSON: a CloudEvent with `data_base64` or a non-JSON
//! content type is refused.
//!
//! pgbus implements the format itself rather than through the `cloudevents-sdk` crate: that
//! crate states its licence only as a file (no SPDX expression, so license checkers see it
//! as unknown; the file is Apache-2.0 alone, while pgbus is MIT OR Apache-2.0), and even
//! without its transports it pulls in `url` (with its IDNA and Unicode tables), `snafu`,
//! `hostname`, `base64`, `bitflags` and `delegate-attr`, for a mapping that needs none of them.
//!
//! ```
//! use pgbus::cloudevents::CloudEvent;
//!
//! let json = serde_json::json!({
//!     "specversion": "1.0",
//!     "id": "A234-1234-1234",
//!     "source": "https://github.com/cloudevents/spec/pull",
//!     "type": "com.github.pull_request.opened",
//!     "time": "2018-04-05T17:31:00Z",
//!     "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
//!     "data": {"number": 123}
//! });
//! let event = CloudEvent::from_json(&json)?;
//! assert_eq!(event.extensions["traceparent"], "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
//! let to_publish = event.clone().into_new_event()?; // keeps the id, source and time
//! assert_eq!(CloudEvent::from_json(&event.to_json())?, event);
//! # Ok::<(), pgbus::Error>(())
//! ```

mod binary;
mod decode;
mod encode;
mod error;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use binary::{BinaryMessage, Binding};
pub use error::CloudEventError;

/// The CloudEvents version pgbus speaks.
pub const SPEC_VERSION: &str = "1.0";

/// The content type of every payload pgbus encodes.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// The extension carrying the ordering key (CloudEvents' Partitioning extension).
pub const PARTITION_KEY: &str = "partitionkey";

/// A CloudEvent with a JSON payload (or none).
///
/// Build one from a delivered event with [`CloudEvent::from_envelope`] or from a JSON
/// document with [`CloudEvent::from_json`]; write it with [`to_json`](Self::to_json)
/// (structured mode) or [`to_binary`](Self::to_binary); turn it into an event to publish
/// with [`into_new_event`](Self::into_new_event).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CloudEvent {
    /// `id`: with `source`, identifies the event.
    pub id: String,
    /// `source`: the context the event happened in (a URI-reference).
    pub source: String,
    /// `type`.
    pub event_type: String,
    /// `subject`: what the event is about, within the source.
    pub subject: Option<String>,
    /// `time`: when it happened.
    pub time: Option<DateTime<Utc>>,
    /// `datacontenttype`: `application/json` or another JSON media type; `None` means JSON.
    pub datacontenttype: Option<String>,
    /// `dataschema`: the URI of the payload's schema.
    pub dataschema: Option<String>,
    /// `data`: the JSON payload, if any.
    pub data: Option<Value>,
    /// Extension attributes, values as strings (a JSON number or boolean as its text).
    pub extensions: BTreeMap<String, String>,
}

impl CloudEvent {
    /// A CloudEvent with the required attributes and a JSON payload; every optional
    /// attribute unset.
    pub fn new(
        id: impl Into<String>,
        source: impl Into<String>,
        event_type: impl Into<String>,
        data: Value,
    ) -> Self {
        CloudEvent {
            id: id.into(),
            source: source.into(),
            event_type: event_type.into(),
            subject: None,
            time: None,
            datacontenttype: Some(JSON_CONTENT_TYPE.to_owned()),
            dataschema: None,
            data: Some(data),
            extensions: BTreeMap::new(),
        }
    }
}

/// Whether `name` may name a CloudEvents attribute: lower-case ASCII letters and digits
/// (the spec also asks for at most 20 characters; longer names are accepted).
pub fn is_extension_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// The context attributes of the spec, which no extension may be named after; plus the
/// members `data` and `data_base64` of the JSON format.
pub(crate) fn is_spec_attribute(name: &str) -> bool {
    matches!(
        name,
        "id" | "source"
            | "specversion"
            | "type"
            | "subject"
            | "time"
            | "datacontenttype"
            | "dataschema"
            | "data"
    )
}

/// The `dataschema` URI of version `version` of `event_type`: without a base,
/// `urn:pgbus:schema:<type>:v<version>`; with one, `<base>/<type>/v<version>.json` (where
/// a service publishes its schemas, e.g. `https://schemas.example.com/listings`).
///
/// Decoding reads the version back from such a URI ([`version_of_dataschema`]).
pub fn dataschema_uri(base: Option<&str>, event_type: &str, version: u32) -> String {
    match base {
        None => format!("urn:pgbus:schema:{event_type}:v{version}"),
        Some(base) => format!(
            "{}/{event_type}/v{version}.json",
            base.trim_end_matches('/')
        ),
    }
}

/// The schema version a `dataschema` URI names by pgbus's convention: its last segment
/// (after the last `/` or `:`) is `v<version>`, optionally followed by `.json`.
pub fn version_of_dataschema(uri: &str) -> Option<u32> {
    let last = uri.rsplit(['/', ':']).next()?;
    let digits = last.strip_prefix('v')?;
    let digits = digits.strip_suffix(".json").unwrap_or(digits);
    crate::version::parse_version(digits)
}

/// Whether `content_type` is JSON: `application/json`, `text/json` or `<type>/<sub>+json`,
/// with any parameters.
pub(crate) fn is_json_content_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence == "text/json"
        || (essence.contains('/') && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests;
