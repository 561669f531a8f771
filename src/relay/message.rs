//! The message a relay sends for an event: CloudEvents binary or structured mode.

use crate::cloudevents::{Binding, CloudEvent};
use crate::event::EventEnvelope;

/// The content type of a structured-mode message.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json; charset=UTF-8";

/// The W3C trace-context headers a relay copies as they are, besides their CloudEvents
/// attributes (`ce-traceparent`), so that tracing tools that know nothing of CloudEvents
/// continue the trace.
pub const TRACE_HEADERS: [&str; 2] = ["traceparent", "tracestate"];

/// How a relay writes an event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// CloudEvents binary mode (the default): the attributes as headers `ce-specversion`,
    /// `ce-id`, `ce-source`, `ce-type`, `ce-subject`, `ce-time`, `ce-dataschema` and one
    /// `ce-<extension>` each (values percent-encoded as in HTTP), `content-type`, and the
    /// JSON payload as the body.
    #[default]
    Binary,
    /// CloudEvents structured mode: the whole CloudEvent as one JSON document
    /// ([`STRUCTURED_CONTENT_TYPE`]).
    Structured,
}

/// One event as a relay sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayMessage {
    /// The pgbus event id, the broker's deduplication id (`Nats-Msg-Id`, AMQP
    /// `message-id`).
    pub id: String,
    /// Where it goes (subject or routing key).
    pub destination: String,
    /// Headers, lower-case names, in a stable order; the content type is not among them.
    pub headers: Vec<(String, String)>,
    /// The body's content type.
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
}

impl RelayMessage {
    /// The message for `event` to `destination` in `format`.
    pub fn new(event: &EventEnvelope, destination: String, format: Format) -> Self {
        let cloud_event = CloudEvent::from_envelope(event);
        let mut headers = Vec::new();
        let (content_type, body) = match format {
            Format::Binary => {
                let binary = cloud_event.to_binary(Binding::Http);
                let mut content_type = None;
                for (name, value) in binary.headers {
                    if name == "content-type" {
                        content_type = Some(value);
                    } else {
                        headers.push((name, value));
                    }
                }
                let content_type =
                    content_type.unwrap_or_else(|| crate::cloudevents::JSON_CONTENT_TYPE.into());
                (content_type, binary.body)
            }
            Format::Structured => (
                STRUCTURED_CONTENT_TYPE.to_owned(),
                cloud_event.to_json_string().into_bytes(),
            ),
        };
        for name in TRACE_HEADERS {
            if let Some(value) = event.headers.get(name) {
                headers.push((name.to_owned(), value.clone()));
            }
        }
        RelayMessage {
            id: event.id.to_string(),
            destination,
            headers,
            content_type,
            body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> EventEnvelope {
        let mut headers = std::collections::BTreeMap::new();
        headers.insert(
            "traceparent".to_owned(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
        );
        headers.insert("correlation_id".to_owned(), "req-1".to_owned());
        EventEnvelope {
            id: uuid::Uuid::now_v7(),
            event_type: "property.created".into(),
            source: "listings".into(),
            subject: Some("property 7".into()),
            key: None,
            data: serde_json::json!({"title": "café"}),
            headers,
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn binary_mode_has_ce_headers_the_trace_context_and_the_payload() {
        let e = event();
        let m = RelayMessage::new(&e, "events.property.created".into(), Format::Binary);
        assert_eq!(m.id, e.id.to_string());
        let h = |n: &str| {
            m.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(h("ce-id"), Some(m.id.as_str()));
        assert_eq!(h("ce-type"), Some("property.created"));
        assert_eq!(h("ce-source"), Some("listings"));
        assert_eq!(h("ce-subject"), Some("property%207"));
        assert_eq!(h("ce-specversion"), Some("1.0"));
        assert!(h("ce-time").is_some());
        assert_eq!(h("traceparent"), h("ce-traceparent"));
        assert!(h("traceparent").is_some());
        assert_eq!(h("content-type"), None);
        assert_eq!(h("correlation_id"), None);
        assert_eq!(m.content_type, "application/json");
        assert_eq!(m.body, serde_json::to_vec(&e.data).unwrap());
    }

    #[test]
    fn structured_mode_is_one_json_document() {
        let e = event();
        let m = RelayMessage::new(&e, "x".into(), Format::Structured);
        assert_eq!(m.content_type, STRUCTURED_CONTENT_TYPE);
        let doc: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
        assert_eq!(doc["id"], e.id.to_string());
        assert_eq!(doc["data"], e.data);
        assert_eq!(
            m.headers.len(),
            1,
            "only the trace context: {:?}",
            m.headers
        );
    }
}
