//! The CloudEvents headers of a message (binary mode, HTTP binding's names).

use serde_json::{Value, json};

/// The headers schema of a message of `event_type` (a type, or the pattern of a
/// subscription whose events are not in the catalog).
pub(super) fn cloudevents_headers(
    event_type: Option<&str>,
    pattern: Option<&str>,
    source: Option<&str>,
    dataschema: Option<&str>,
) -> Value {
    let mut ce_type =
        json!({"type": "string", "description": "CloudEvents `type`: the event type."});
    if let Some(t) = event_type {
        ce_type["const"] = json!(t);
    }
    if let Some(p) = pattern {
        ce_type["description"] = json!(format!(
            "CloudEvents `type`: an event type matching the pattern `{p}`."
        ));
    }
    let mut ce_source = json!({
        "type": "string",
        "format": "uri-reference",
        "description": "CloudEvents `source`: the publishing service."
    });
    if let Some(s) = source {
        ce_source["const"] = json!(s);
    }
    let mut ce_dataschema = json!({
        "type": "string",
        "format": "uri",
        "description": "CloudEvents `dataschema`: the payload's schema and version."
    });
    if let Some(d) = dataschema {
        ce_dataschema["const"] = json!(d);
    }
    json!({
        "type": "object",
        "description": "CloudEvents 1.0 attributes in binary mode (HTTP binding); in structured \
                        mode the same attributes are members of the `application/cloudevents+json` document.",
        "required": ["ce-specversion", "ce-id", "ce-source", "ce-type"],
        "properties": {
            "ce-specversion": {"type": "string", "const": "1.0", "description": "CloudEvents `specversion`."},
            "ce-id": {"type": "string", "description": "CloudEvents `id`: the event id (a UUID v7 for events published with pgbus)."},
            "ce-source": ce_source,
            "ce-type": ce_type,
            "ce-subject": {"type": "string", "description": "CloudEvents `subject`: the entity the event is about."},
            "ce-time": {"type": "string", "format": "date-time", "description": "CloudEvents `time`: when the event was published."},
            "ce-dataschema": ce_dataschema,
            "ce-partitionkey": {"type": "string", "description": "Partitioning extension: the event's ordering key."},
            "ce-traceparent": {"type": "string", "description": "Distributed Tracing extension: W3C trace context."},
            "content-type": {"type": "string", "const": "application/json"}
        }
    })
}
