//! CloudEvents checked against an independent implementation, the Python CloudEvents SDK:
//! CloudEvents it made (structured and binary mode) are decoded by pgbus, published, delivered
//! and encoded again, and every attribute is compared; events pgbus published are encoded and
//! read back by the SDK in both modes, attribute by attribute.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use pgbus::cloudevents::{Binding, CloudEvent};
use pgbus::{Delivery, EventEnvelope, HandlerError, NewEvent, Publisher, RawHandler, Subscription};
use serde_json::{Value, json};

use crate::support::database::db;
use crate::support::dispatcher::{dispatcher, start, stop};
use crate::support::tools::{python, run, script};
use crate::support::wait::{SOON, wait_until};

/// Records the envelope of every delivery.
#[derive(Clone, Default)]
struct Envelopes(Arc<Mutex<Vec<EventEnvelope>>>);

#[pgbus::async_trait]
impl RawHandler for Envelopes {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        self.0.lock().unwrap().push(delivery.event.clone());
        Ok(())
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ListingPriced {
    property_id: i64,
    price_eur: i64,
}

impl pgbus::Event for ListingPriced {
    const TYPE: &'static str = "listing.priced";
    const VERSION: u32 = 4;
}

fn sdk(mode: &str) -> Command {
    let mut c = Command::new(python().expect("checked"));
    c.arg(script("cloudevents_sdk.py")).arg(mode);
    c
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().expect("a time string"))
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

/// Checks that `ce` has exactly the SDK's `attributes` and `data`.
fn assert_same(ce: &CloudEvent, attributes: &Value, data: &Value, what: &str) {
    let a = attributes.as_object().expect("attributes");
    let text = |k: &str| a.get(k).and_then(Value::as_str).map(str::to_owned);
    assert_eq!(text("specversion").as_deref(), Some("1.0"), "{what}");
    assert_eq!(Some(ce.id.clone()), text("id"), "{what}: id");
    assert_eq!(Some(ce.source.clone()), text("source"), "{what}: source");
    assert_eq!(Some(ce.event_type.clone()), text("type"), "{what}: type");
    assert_eq!(ce.subject, text("subject"), "{what}: subject");
    assert_eq!(ce.dataschema, text("dataschema"), "{what}: dataschema");
    assert_eq!(ce.time, a.get("time").map(time), "{what}: time");
    let ct = |c: Option<String>| c.filter(|c| c != "application/json");
    assert_eq!(
        ct(ce.datacontenttype.clone()),
        ct(text("datacontenttype")),
        "{what}: datacontenttype"
    );
    let spec = [
        "specversion",
        "id",
        "source",
        "type",
        "subject",
        "dataschema",
        "time",
        "datacontenttype",
    ];
    let extensions: BTreeMap<String, String> = a
        .iter()
        .filter(|(k, _)| !spec.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.as_str().expect("string extension").to_owned()))
        .collect();
    assert_eq!(ce.extensions, extensions, "{what}: extensions");
    assert_eq!(ce.data.as_ref(), Some(data), "{what}: data");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_and_pgbus_read_each_others_cloudevents() {
    if python().is_none() {
        return;
    }
    let db = db().await;
    let pool = db.pool();
    let seen = Envelopes::default();
    let handle =
        start(dispatcher(pool).subscribe(Subscription::raw("ce.all", ["*"], seen.clone()))).await;

    // 1. The SDK's CloudEvents, decoded by pgbus in both modes, published and delivered.
    let made: Vec<Value> = serde_json::from_str(&run(sdk("make"), "")).expect("the SDK's output");
    let publisher = Publisher::new("ingest").expect("publisher");
    let mut conn = pool.acquire().await.expect("conn");
    let mut published = Vec::new();
    for item in &made {
        let structured = CloudEvent::from_slice(item["structured"].as_str().unwrap().as_bytes())
            .expect("pgbus reads the SDK's structured JSON");
        assert_same(
            &structured,
            &item["attributes"],
            &item["data"],
            "SDK structured",
        );
        let headers: Vec<(String, String)> = item["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        let binary = CloudEvent::from_binary(
            Binding::Http,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            item["body"].as_str().unwrap().as_bytes(),
        )
        .expect("pgbus reads the SDK's binary mode");
        assert_same(&binary, &item["attributes"], &item["data"], "SDK binary");
        let event = structured.into_new_event().expect("an event to publish");
        published.push((event.id(), item.clone()));
        publisher.publish(&mut conn, event).await.expect("publish");
    }

    // 2. pgbus's own events: typed and versioned, with subject, key and extension headers.
    let ours = [
        NewEvent::from_event(&ListingPriced {
            property_id: 7,
            price_eur: 350_000,
        })
        .unwrap()
        .subject("property/7")
        .key("property-7")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .header("correlationid", "req-1"),
        NewEvent::raw(
            "audit.logged",
            json!({"nested": {"list": [1, "two", null, 3.5]}, "text": "plain"}),
        ),
    ];
    let ours_ids: Vec<_> = ours.iter().map(NewEvent::id).collect();
    Publisher::new("listings")
        .unwrap()
        .publish_all(&mut conn, &ours)
        .await
        .expect("publish ours");
    drop(conn);
    let total = made.len() + ours.len();
    wait_until("every event delivered", SOON, || async {
        seen.0.lock().unwrap().len() == total
    })
    .await;
    stop(pool, handle).await;
    let envelopes: BTreeMap<_, _> = seen
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|e| (e.id, e.clone()))
        .collect();

    // The SDK's events, back out of PostgreSQL: every attribute as the SDK made it.
    for (id, item) in &published {
        let ce = CloudEvent::from_envelope(&envelopes[id]);
        assert_same(
            &ce,
            &item["attributes"],
            &item["data"],
            "SDK event after a round trip",
        );
    }

    // 3. pgbus's CloudEvents read by the SDK, structured and binary.
    let encoded: Vec<CloudEvent> = ours_ids
        .iter()
        .map(|id| CloudEvent::from_envelope(&envelopes[id]))
        .collect();
    assert_eq!(
        encoded[0].dataschema.as_deref(),
        Some("urn:pgbus:schema:listing.priced:v4")
    );
    assert_eq!(encoded[0].extensions["partitionkey"], "property-7");
    let input: Vec<Value> = encoded
        .iter()
        .map(|ce| {
            let binary = ce.to_binary(Binding::Http);
            json!({
                "structured": ce.to_json_string(),
                "headers": binary.headers.iter().cloned().collect::<BTreeMap<_, _>>(),
                "body": String::from_utf8(binary.body).unwrap(),
            })
        })
        .collect();
    let read: Vec<Value> =
        serde_json::from_str(&run(sdk("read"), &Value::from(input).to_string())).unwrap();
    for (ce, item) in encoded.iter().zip(&read) {
        for mode in ["structured", "binary"] {
            let found = &item[mode];
            assert_same(
                ce,
                &found["attributes"],
                &found["data"],
                &format!("read by the SDK ({mode})"),
            );
        }
    }
}
