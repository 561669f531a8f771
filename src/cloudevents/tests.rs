use std::collections::BTreeMap;

use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::error::Error;
use crate::event::EventEnvelope;

fn envelope() -> EventEnvelope {
    EventEnvelope {
        id: Uuid::now_v7(),
        event_type: "property.created".into(),
        source: "listings".into(),
        subject: Some("property/42".into()),
        key: Some("property-42".into()),
        data: json!({"property_id": 42, "title": "Loft"}),
        headers: BTreeMap::from([
            (
                "traceparent".into(),
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
            ),
            ("correlationid".into(), "req-7".into()),
            ("correlation_id".into(), "left out".into()),
            ("type".into(), "cannot overwrite".into()),
            (crate::VERSION_HEADER.into(), "2".into()),
        ]),
        created_at: DateTime::parse_from_rfc3339("2024-05-01T10:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc),
    }
}

fn ce_error(result: crate::Result<CloudEvent>) -> CloudEventError {
    match result {
        Err(Error::CloudEvent(e)) => e,
        other => panic!("not a CloudEvent error: {other:?}"),
    }
}

#[test]
fn an_envelope_maps_to_every_attribute() {
    let env = envelope();
    let ce = CloudEvent::from_envelope(&env);
    let doc = ce.to_json();
    assert_eq!(
        doc,
        json!({
            "specversion": "1.0",
            "id": env.id.to_string(),
            "source": "listings",
            "type": "property.created",
            "subject": "property/42",
            "time": "2024-05-01T10:00:00.123456Z",
            "datacontenttype": "application/json",
            "dataschema": "urn:pgbus:schema:property.created:v2",
            "partitionkey": "property-42",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "correlationid": "req-7",
            "data": {"property_id": 42, "title": "Loft"}
        })
    );
    assert_eq!(CloudEvent::from_json(&doc).unwrap(), ce);
}

#[test]
fn a_decoded_cloudevent_keeps_its_attributes_through_an_envelope() {
    let doc = json!({
        "specversion": "1.0",
        "id": "A234-1234-1234",
        "source": "https://github.com/cloudevents/spec/pull",
        "type": "com.github.pull_request.opened",
        "subject": "123",
        "time": "2018-04-05T17:31:00Z",
        "datacontenttype": "application/vnd.github+json",
        "dataschema": "https://schemas.example.com/pull/v3.json",
        "comexampleextension1": "value",
        "comexampleothervalue": 5,
        "enabled": true,
        "partitionkey": "repo-1",
        "data": {"number": 123}
    });
    let ce = CloudEvent::from_json(&doc).unwrap();
    let event = ce.clone().into_new_event().unwrap();
    assert_eq!(event.headers()[crate::VERSION_HEADER], "3");
    assert_eq!(event.headers()["comexampleothervalue"], "5");
    assert_eq!(event.headers()["enabled"], "true");
    // What a dispatcher would hand over after publishing it (from another source).
    let env = EventEnvelope {
        id: event.id(),
        event_type: event.event_type().to_owned(),
        source: "ingest".into(),
        subject: event.subject.clone(),
        key: event.key.clone(),
        data: event.data().clone(),
        headers: event.headers().clone(),
        created_at: Utc::now(),
    };
    let again = CloudEvent::from_envelope(&env);
    let mut want = ce;
    want.extensions
        .insert("comexampleothervalue".into(), "5".into());
    want.extensions.insert("enabled".into(), "true".into());
    assert_eq!(again, want);
}

#[test]
fn a_uuid_id_becomes_the_event_id() {
    let id = Uuid::now_v7();
    let ce = CloudEvent::new(id.to_string(), "s", "a.b", json!(1));
    let event = ce.into_new_event().unwrap();
    assert_eq!(event.id(), id);
    assert!(!event.headers().contains_key(crate::reserved::ID));
    let upper = CloudEvent::new(id.to_string().to_uppercase(), "s", "a.b", json!(1));
    let event = upper.into_new_event().unwrap();
    assert_ne!(event.id(), id);
    assert_eq!(
        event.headers()[crate::reserved::ID],
        id.to_string().to_uppercase()
    );
}

#[test]
fn refusals_are_typed() {
    let base = json!({"specversion": "1.0", "id": "1", "source": "s", "type": "a.b"});
    let with = |k: &str, v: serde_json::Value| {
        let mut d = base.clone();
        d[k] = v;
        CloudEvent::from_json(&d)
    };
    let without = |k: &str| {
        let mut d = base.clone();
        d.as_object_mut().unwrap().remove(k);
        CloudEvent::from_json(&d)
    };
    assert!(CloudEvent::from_json(&base).is_ok());
    for name in ["id", "source", "type", "specversion"] {
        assert_eq!(
            ce_error(without(name)),
            CloudEventError::MissingAttribute(name)
        );
    }
    assert_eq!(
        ce_error(with("specversion", json!("0.3"))),
        CloudEventError::SpecVersion("0.3".into())
    );
    assert!(matches!(
        ce_error(with("specversion", json!(1.0))),
        CloudEventError::InvalidAttribute { .. }
    ));
    assert!(matches!(
        ce_error(with("id", json!(""))),
        CloudEventError::InvalidAttribute { .. }
    ));
    assert!(matches!(
        ce_error(with("time", json!("yesterday"))),
        CloudEventError::InvalidAttribute { .. }
    ));
    for bad in ["Upper", "with_underscore", "dash-ed", "é"] {
        assert_eq!(
            ce_error(with(bad, json!("x"))),
            CloudEventError::InvalidExtensionName(bad.into())
        );
    }
    assert!(matches!(
        ce_error(with("ext", json!({"nested": 1}))),
        CloudEventError::InvalidAttribute { .. }
    ));
    assert_eq!(
        ce_error(with("datacontenttype", json!("text/xml"))),
        CloudEventError::UnsupportedContentType("text/xml".into())
    );
    assert_eq!(
        ce_error(with("data_base64", json!("AAE="))),
        CloudEventError::BinaryData
    );
    assert_eq!(
        ce_error(CloudEvent::from_json(&json!([1]))),
        CloudEventError::NotAnObject
    );
    assert!(matches!(
        ce_error(CloudEvent::from_slice(b"{")),
        CloudEventError::NotJson(_)
    ));
    // A type pgbus cannot store is refused when converting.
    let odd = CloudEvent::new("1", "s", "com.example:thing", json!(null));
    assert!(matches!(
        odd.into_new_event(),
        Err(Error::InvalidEventType { .. })
    ));
}

#[test]
fn null_attributes_are_absent_and_null_data_is_no_data() {
    let doc = json!({"specversion": "1.0", "id": "1", "source": "s", "type": "a.b",
                     "subject": null, "ext": null, "data": null});
    let ce = CloudEvent::from_json(&doc).unwrap();
    assert_eq!((ce.subject, ce.data, ce.extensions.len()), (None, None, 0));
}

#[test]
fn binary_mode_round_trips_for_each_binding() {
    let mut ce = CloudEvent::from_envelope(&envelope());
    ce.subject = Some("café au lait, 100%".into());
    for binding in [Binding::Http, Binding::Kafka] {
        let msg = ce.to_binary(binding);
        let prefix = binding.prefix();
        let header = |n: &str| {
            msg.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header(&format!("{prefix}specversion")), Some("1.0"));
        assert_eq!(header(&format!("{prefix}type")), Some("property.created"));
        assert_eq!(header("content-type"), Some("application/json"));
        if binding == Binding::Http {
            assert_eq!(
                header("ce-subject"),
                Some("caf%C3%A9%20au%20lait,%20100%25")
            );
        }
        let back = CloudEvent::from_binary(
            binding,
            msg.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &msg.body,
        )
        .unwrap();
        assert_eq!(back, ce);
    }
    let missing = CloudEvent::from_binary(Binding::Http, [("ce-specversion", "1.0")], b"");
    assert_eq!(ce_error(missing), CloudEventError::MissingAttribute("id"));
}

#[test]
fn dataschema_uris_name_their_version() {
    assert_eq!(dataschema_uri(None, "a.b", 3), "urn:pgbus:schema:a.b:v3");
    let uri = dataschema_uri(Some("https://s.example.com/x/"), "a.b", 12);
    assert_eq!(uri, "https://s.example.com/x/a.b/v12.json");
    assert_eq!(version_of_dataschema(&uri), Some(12));
    assert_eq!(version_of_dataschema("urn:pgbus:schema:a.b:v3"), Some(3));
    for none in [
        "https://x/y.json",
        "https://x/v0.json",
        "https://x/vv1",
        "v",
    ] {
        assert_eq!(version_of_dataschema(none), None, "{none}");
    }
    assert!(is_json_content_type("application/json; charset=utf-8"));
    assert!(is_json_content_type("application/cloudevents+json"));
    assert!(!is_json_content_type("text/plain"));
}
