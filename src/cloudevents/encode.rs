//! From a delivered event to a CloudEvent, and a CloudEvent to its structured-mode JSON.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use super::{
    CloudEvent, JSON_CONTENT_TYPE, PARTITION_KEY, SPEC_VERSION, dataschema_uri, is_extension_name,
    is_spec_attribute,
};
use crate::event::EventEnvelope;
use crate::reserved;
use crate::version::VERSION_HEADER;

impl CloudEvent {
    /// The CloudEvent of a delivered event (see the [module](super)'s table).
    ///
    /// An event decoded from a CloudEvent gets its original `id`, `source`, `time`,
    /// `dataschema` and `datacontenttype` back from the reserved headers. A versioned event
    /// without a `dataschema` of its own gets [`dataschema_uri`]`(None, ..)`; set
    /// [`dataschema`](Self::dataschema) afterwards for another base. Headers whose names are
    /// not extension names are left out.
    pub fn from_envelope(envelope: &EventEnvelope) -> Self {
        let headers = &envelope.headers;
        let time = headers
            .get(reserved::TIME)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map_or(envelope.created_at, |t| t.with_timezone(&Utc));
        let dataschema = headers.get(reserved::DATASCHEMA).cloned().or_else(|| {
            headers
                .get(VERSION_HEADER)
                .and_then(|v| crate::version::parse_version(v))
                .map(|v| dataschema_uri(None, &envelope.event_type, v))
        });
        let mut extensions: std::collections::BTreeMap<String, String> = headers
            .iter()
            .filter(|(name, _)| is_extension_name(name) && !is_spec_attribute(name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        if let Some(key) = &envelope.key {
            extensions.insert(PARTITION_KEY.to_owned(), key.clone());
        }
        CloudEvent {
            id: headers
                .get(reserved::ID)
                .cloned()
                .unwrap_or_else(|| envelope.id.to_string()),
            source: headers
                .get(reserved::SOURCE)
                .cloned()
                .unwrap_or_else(|| envelope.source.clone()),
            event_type: envelope.event_type.clone(),
            subject: envelope.subject.clone(),
            time: Some(time),
            datacontenttype: Some(
                headers
                    .get(reserved::DATACONTENTTYPE)
                    .cloned()
                    .unwrap_or_else(|| JSON_CONTENT_TYPE.to_owned()),
            ),
            dataschema,
            // A null payload is no payload: `data: null` reads back as absent.
            data: Some(envelope.data.clone()).filter(|d| !d.is_null()),
            extensions,
        }
    }

    /// The structured-mode JSON document (`application/cloudevents+json`).
    pub fn to_json(&self) -> Value {
        let mut doc = Map::new();
        // Extensions first, so that no extension can overwrite a spec attribute.
        for (name, value) in &self.extensions {
            doc.insert(name.clone(), Value::String(value.clone()));
        }
        let mut put = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                doc.insert(name.to_owned(), Value::String(value));
            }
        };
        put("specversion", Some(SPEC_VERSION.to_owned()));
        put("id", Some(self.id.clone()));
        put("source", Some(self.source.clone()));
        put("type", Some(self.event_type.clone()));
        put("subject", self.subject.clone());
        put("time", self.time.as_ref().map(format_time));
        put("datacontenttype", self.datacontenttype.clone());
        put("dataschema", self.dataschema.clone());
        if let Some(data) = &self.data {
            doc.insert("data".to_owned(), data.clone());
        }
        Value::Object(doc)
    }

    /// The structured-mode JSON document, serialized.
    pub fn to_json_string(&self) -> String {
        self.to_json().to_string()
    }
}

/// RFC 3339 in UTC, with as many fractional digits as the time has (none, 3, 6 or 9).
pub(crate) fn format_time(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}
