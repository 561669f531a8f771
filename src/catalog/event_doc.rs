//! One event type as the catalog documents it.

use serde_json::Value;

use crate::event::Event;

/// An event type in the catalog: its name, schema version, description and payload schema.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDoc {
    event_type: String,
    version: u32,
    description: Option<String>,
    schema: Option<Value>,
}

impl EventDoc {
    /// The typed event `E`: its type and version, no description or schema.
    pub fn of<E: Event>() -> Self {
        EventDoc::raw(E::TYPE).version(E::VERSION)
    }

    /// The typed event `E` with its JSON Schema ([`schema_for`](super::schema_for)); the
    /// description is the schema's, which schemars takes from the type's doc comment.
    #[cfg(feature = "schema")]
    pub fn with_schema<E: Event + schemars::JsonSchema>() -> Self {
        let schema = super::schema_for::<E>();
        let description = schema
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned);
        EventDoc {
            description,
            schema: Some(schema),
            ..EventDoc::of::<E>()
        }
    }

    /// An event type by name (a raw event, or another service's), version 1.
    pub fn raw(event_type: impl Into<String>) -> Self {
        EventDoc {
            event_type: event_type.into(),
            version: 1,
            description: None,
            schema: None,
        }
    }

    /// Its schema version.
    pub fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// What the event means (Markdown).
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// The payload's JSON Schema (draft-07; definitions under `definitions` or `$defs`).
    pub fn schema(mut self, schema: Value) -> Self {
        self.schema = Some(schema);
        self
    }

    /// The event type name.
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// The schema version.
    pub fn schema_version(&self) -> u32 {
        self.version
    }

    /// The description, if any.
    pub fn description_text(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The payload's JSON Schema, if any.
    pub fn payload_schema(&self) -> Option<&Value> {
        self.schema.as_ref()
    }
}
