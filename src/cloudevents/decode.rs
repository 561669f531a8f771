//! From a structured-mode JSON document to a CloudEvent, and a CloudEvent to an event to
//! publish.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::encode::format_time;
use super::{
    CloudEvent, CloudEventError, JSON_CONTENT_TYPE, PARTITION_KEY, SPEC_VERSION, is_extension_name,
    is_json_content_type, version_of_dataschema,
};
use crate::error::Result;
use crate::event::NewEvent;
use crate::version::VERSION_HEADER;
use crate::{reserved, validate};

impl CloudEvent {
    /// Reads a structured-mode CloudEvent.
    ///
    /// A `null` attribute counts as absent. Extension values may be strings, numbers or
    /// booleans (kept as their text).
    ///
    /// # Errors
    ///
    /// [`Error::CloudEvent`](crate::Error::CloudEvent): not an object, a required attribute
    /// missing, a `specversion` other than `1.0`, an attribute of the wrong kind (a `time`
    /// that is not RFC 3339, an empty `id`), an invalid extension name, a non-JSON content
    /// type, or `data_base64`.
    pub fn from_json(document: &Value) -> Result<CloudEvent> {
        Ok(read(document)?)
    }

    /// Reads a structured-mode CloudEvent from its bytes.
    ///
    /// # Errors
    ///
    /// As [`from_json`](Self::from_json), and [`CloudEventError::NotJson`].
    pub fn from_slice(bytes: &[u8]) -> Result<CloudEvent> {
        let document: Value =
            serde_json::from_slice(bytes).map_err(|e| CloudEventError::NotJson(e.to_string()))?;
        Self::from_json(&document)
    }

    /// The event to publish for this CloudEvent, keeping what it says (see the
    /// [module](super)'s table): its id (as the event id when it is a UUID in lower-case
    /// hyphenated form, else in the header `pgbus-id` under a fresh event id), `source`,
    /// `time`, `dataschema` and a JSON content type other than `application/json` in the
    /// reserved headers, the schema version a `dataschema` names
    /// ([`version_of_dataschema`]), `partitionkey` as the
    /// ordering key, and the other extensions as headers.
    ///
    /// Publishing it twice publishes two events: give it a
    /// [`dedupe_key`](NewEvent::dedupe_key) (e.g. from the source and id) to store a
    /// CloudEvent once.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEventType`](crate::Error::InvalidEventType) when `type` is not a
    /// pgbus type name; everything else is checked when it is published.
    pub fn into_new_event(self) -> Result<NewEvent> {
        validate::validate_type(&self.event_type)?;
        let mut event = NewEvent::raw(self.event_type, self.data.unwrap_or(Value::Null));
        match Uuid::parse_str(&self.id) {
            Ok(id) if id.hyphenated().to_string() == self.id => event = event.with_id(id),
            _ => event = event.header(reserved::ID, self.id),
        }
        event = event.header(reserved::SOURCE, self.source);
        if let Some(time) = &self.time {
            event = event.header(reserved::TIME, format_time(time));
        }
        if let Some(ct) = self.datacontenttype.filter(|ct| ct != JSON_CONTENT_TYPE) {
            event = event.header(reserved::DATACONTENTTYPE, ct);
        }
        if let Some(schema) = self.dataschema {
            if let Some(version) = version_of_dataschema(&schema) {
                event = event.header(VERSION_HEADER, version.to_string());
            }
            event = event.header(reserved::DATASCHEMA, schema);
        }
        if let Some(subject) = self.subject {
            event = event.subject(subject);
        }
        for (name, value) in self.extensions {
            event = if name == PARTITION_KEY {
                event.key(value)
            } else {
                event.header(name, value)
            };
        }
        Ok(event)
    }
}

fn read(document: &Value) -> Result<CloudEvent, CloudEventError> {
    let Value::Object(members) = document else {
        return Err(CloudEventError::NotAnObject);
    };
    let specversion =
        string(members, "specversion")?.ok_or(CloudEventError::MissingAttribute("specversion"))?;
    if specversion != SPEC_VERSION {
        return Err(CloudEventError::SpecVersion(specversion));
    }
    let required = |name: &'static str| -> Result<String, CloudEventError> {
        let value = string(members, name)?.ok_or(CloudEventError::MissingAttribute(name))?;
        if value.is_empty() {
            return Err(CloudEventError::invalid(name, "must not be empty"));
        }
        Ok(value)
    };
    let (id, source, event_type) = (required("id")?, required("source")?, required("type")?);
    let time = string(members, "time")?
        .map(|t| {
            DateTime::parse_from_rfc3339(&t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| {
                    CloudEventError::invalid("time", format!("{t:?} is not RFC 3339: {e}"))
                })
        })
        .transpose()?;
    let datacontenttype = string(members, "datacontenttype")?;
    if let Some(ct) = datacontenttype
        .as_deref()
        .filter(|ct| !is_json_content_type(ct))
    {
        return Err(CloudEventError::UnsupportedContentType(ct.to_owned()));
    }
    if !members.get("data_base64").unwrap_or(&Value::Null).is_null() {
        return Err(CloudEventError::BinaryData);
    }
    let mut extensions = BTreeMap::new();
    for (name, value) in members {
        if matches!(
            name.as_str(),
            "specversion"
                | "id"
                | "source"
                | "type"
                | "subject"
                | "time"
                | "datacontenttype"
                | "dataschema"
                | "data"
                | "data_base64"
        ) {
            continue;
        }
        if !is_extension_name(name) {
            return Err(CloudEventError::InvalidExtensionName(name.clone()));
        }
        let text = match value {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Array(_) | Value::Object(_) => {
                return Err(CloudEventError::invalid(
                    name,
                    "an extension is a string, number or boolean",
                ));
            }
        };
        extensions.insert(name.clone(), text);
    }
    Ok(CloudEvent {
        id,
        source,
        event_type,
        subject: string(members, "subject")?,
        time,
        datacontenttype,
        dataschema: string(members, "dataschema")?,
        data: members.get("data").filter(|d| !d.is_null()).cloned(),
        extensions,
    })
}

/// An optional string attribute: absent and `null` are `None`.
fn string(members: &Map<String, Value>, name: &str) -> Result<Option<String>, CloudEventError> {
    match members.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(CloudEventError::invalid(
            name,
            format!("must be a string, not {other}"),
        )),
    }
}
