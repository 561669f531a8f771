//! The document: info, channels, operations, components.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::ASYNCAPI_VERSION;
use super::components::Schemas;
use super::headers::cloudevents_headers;
use super::ids::Ids;
use crate::catalog::{Catalog, EventDoc, matches};
use crate::cloudevents::{JSON_CONTENT_TYPE, dataschema_uri};

/// A channel of the document and its one message.
struct Channel {
    id: String,
    message: String,
}

/// Builds the document of a validated catalog.
pub(super) fn render(catalog: &Catalog) -> Value {
    let mut doc = Builder::default();
    let mut by_type: BTreeMap<String, Channel> = BTreeMap::new();
    for (event, published) in catalog
        .published
        .iter()
        .map(|e| (e, true))
        .chain(catalog.consumed.iter().map(|e| (e, false)))
    {
        let channel = doc.event_channel(catalog, event, published);
        if published {
            let id = doc.ids.fresh(&format!("send_{}", channel.id));
            let summary = format!("{} publishes `{}`.", catalog.title, event.event_type());
            doc.operation(id, "send", &channel, summary);
        }
        by_type.insert(event.event_type().to_owned(), channel);
    }
    // Events the subscriptions receive that no entry documents: a channel each (a type, or
    // a pattern's events).
    for sub in &catalog.subscriptions {
        for pattern in &sub.patterns {
            let documented = catalog
                .published
                .iter()
                .chain(&catalog.consumed)
                .any(|e| matches(pattern, e.event_type()));
            if !documented && !by_type.contains_key(pattern) {
                let channel = doc.undocumented_channel(pattern);
                by_type.insert(pattern.clone(), channel);
            }
        }
    }
    // A receive operation per subscription and channel one of its patterns matches.
    for sub in &catalog.subscriptions {
        for (address, channel) in &by_type {
            if !sub.patterns.iter().any(|p| matches(p, address)) {
                continue;
            }
            let id = doc
                .ids
                .fresh(&format!("receive_{}_{}", sub.name, channel.id));
            let summary = format!(
                "Subscription `{}` (patterns {}) receives `{address}`.",
                sub.name,
                sub.patterns
                    .iter()
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            doc.operation(id, "receive", channel, summary);
        }
    }

    let mut info = json!({"title": catalog.title, "version": catalog.version});
    if let Some(d) = &catalog.description {
        info["description"] = json!(d);
    }
    let mut components = Map::new();
    components.insert("messages".into(), Value::Object(doc.messages));
    let schemas = doc.schemas.into_map();
    if !schemas.is_empty() {
        components.insert("schemas".into(), Value::Object(schemas));
    }
    json!({
        "asyncapi": ASYNCAPI_VERSION,
        "info": info,
        "defaultContentType": JSON_CONTENT_TYPE,
        "channels": doc.channels,
        "operations": doc.operations,
        "components": components,
    })
}

#[derive(Default)]
struct Builder {
    ids: Ids,
    channels: Map<String, Value>,
    operations: Map<String, Value>,
    messages: Map<String, Value>,
    schemas: Schemas,
}

impl Builder {
    /// The channel of a documented event type, with its message.
    fn event_channel(&mut self, catalog: &Catalog, event: &EventDoc, published: bool) -> Channel {
        let t = event.event_type();
        let id = self.ids.fresh(t);
        let dataschema = dataschema_uri(catalog.schema_base.as_deref(), t, event.schema_version());
        let source = if published {
            catalog.source.as_deref()
        } else {
            None
        };
        let mut message = json!({
            "name": t,
            "title": format!("{t} (version {})", event.schema_version()),
            "contentType": JSON_CONTENT_TYPE,
            "headers": cloudevents_headers(Some(t), None, source, Some(&dataschema)),
            "payload": match event.payload_schema() {
                Some(schema) => self.schemas.embed(schema),
                None => json!({"description": "Any JSON value: no schema documented."}),
            },
            "x-pgbus-schema-version": event.schema_version(),
        });
        if let Some(d) = event.description_text() {
            message["summary"] = json!(d.lines().next().unwrap_or(d));
            message["description"] = json!(d);
        }
        let description = if published {
            format!("Events of type `{t}`, published by {}.", catalog.title)
        } else {
            format!("Events of type `{t}`, published by another service.")
        };
        self.channel(id, t, description, message)
    }

    /// A channel for the events a subscription pattern matches that no entry documents.
    fn undocumented_channel(&mut self, pattern: &str) -> Channel {
        let id = self.ids.fresh(pattern);
        let exact = !pattern.split('.').any(|s| s == "*");
        let message = json!({
            "name": pattern,
            "title": if exact { pattern.to_owned() } else { format!("events matching {pattern}") },
            "contentType": JSON_CONTENT_TYPE,
            "headers": if exact {
                cloudevents_headers(Some(pattern), None, None, None)
            } else {
                cloudevents_headers(None, Some(pattern), None, None)
            },
            "payload": {"description": "Any JSON value: no schema documented."},
        });
        let description = if exact {
            format!("Events of type `{pattern}` (not documented in this catalog).")
        } else {
            format!("Events whose type matches `{pattern}` (a whole `*` segment matches any text).")
        };
        self.channel(id, pattern, description, message)
    }

    fn channel(
        &mut self,
        id: String,
        address: &str,
        description: String,
        message: Value,
    ) -> Channel {
        let message_id = id.clone();
        self.messages.insert(message_id.clone(), message);
        self.channels.insert(
            id.clone(),
            json!({
                "address": address,
                "description": description,
                "messages": {
                    message_id.clone(): {"$ref": format!("#/components/messages/{message_id}")}
                }
            }),
        );
        Channel {
            id,
            message: message_id,
        }
    }

    fn operation(&mut self, id: String, action: &str, channel: &Channel, summary: String) {
        self.operations.insert(
            id,
            json!({
                "action": action,
                "channel": {"$ref": format!("#/channels/{}", channel.id)},
                "summary": summary,
                "messages": [
                    {"$ref": format!("#/channels/{}/messages/{}", channel.id, channel.message)}
                ]
            }),
        );
    }
}
