//! The NATS JetStream relay against a real `nats-server -js`, read back by nats-py: every
//! event arrives once, with its CloudEvents headers, trace context, dedupe id and payload
//! bytes; structured mode; a subject no stream takes, and a server that is down, make
//! deliveries retry until the broker has them.

use std::collections::HashMap;
use std::time::Duration;

use pgbus::NewEvent;
use pgbus::cloudevents::CloudEvent;
use pgbus::relay::nats::NatsRelay;
use pgbus::relay::{Destinations, Format};
use serde_json::json;
use uuid::Uuid;

use crate::support::brokers::{NatsMessage, nats, read_stream};
use crate::support::database::{count, db};
use crate::support::dispatcher::{dispatcher, quick_retry, start, stop};
use crate::support::publishing::publish_events;
use crate::support::wait::{SOON, wait_until};

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// The subject, ordering key and traceparent [`varied_events`] gave event number `i`.
pub fn varied_shape(i: usize) -> (Option<String>, Option<String>, Option<&'static str>) {
    match i % 3 {
        0 => (Some(format!("property/{i}")), None, Some(TRACEPARENT)),
        1 => (None, Some(format!("key-{}", i % 5)), None),
        _ => (None, None, None),
    }
}

/// The number `i` in the payload of a [`varied_events`] event.
pub fn number(e: &NewEvent) -> usize {
    e.data()["i"].as_u64().expect("an event of varied_events") as usize
}

/// Events of several shapes: a subject, an ordering key, trace context, Unicode.
pub fn varied_events(n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|i| {
            let e = NewEvent::raw(
                if i % 2 == 0 { "property.created" } else { "deal.closed_won" },
                json!({ "i": i, "title": "café «terrasse»", "price": 250_000 + i, "tags": ["a", "b"] }),
            );
            match i % 3 {
                0 => e.subject(format!("property/{i}")).header("traceparent", TRACEPARENT),
                1 => e.key(format!("key-{}", i % 5)),
                _ => e,
            }
        })
        .collect()
}

fn header<'a>(m: &'a NatsMessage, name: &str) -> Option<&'a str> {
    m.headers.get(name).map(String::as_str)
}

async fn wait_all_done(pool: &sqlx::PgPool) {
    wait_until(
        "every relay delivery done",
        Duration::from_secs(60),
        || async {
            count(
                pool,
                "SELECT count(*) FROM pgbus.all_deliveries WHERE state < 2",
            )
            .await
                == 0
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_relay_publishes_every_event_with_its_cloudevents_headers() {
    let Some((server, python)) = nats().await else {
        return;
    };
    let db = db().await;
    let pool = db.pool().clone();
    let binary = NatsRelay::builder(server.url())
        .destinations(Destinations::prefix("events."))
        .stream("PGBUS")
        .create_stream(["events.>"])
        .connect()
        .await
        .expect("relay");
    let structured = NatsRelay::builder(server.url())
        .destinations(
            Destinations::prefix("structured.")
                .route("deal.*", "structured.deals")
                .unwrap(),
        )
        .format(Format::Structured)
        .stream("PGBUS_S")
        .create_stream(["structured.>"])
        .connect()
        .await
        .expect("relay");
    let handle = start(
        dispatcher(&pool)
            .subscribe(binary.subscription("relay.nats", ["property.*", "deal.*"]))
            .subscribe(structured.subscription("relay.nats-structured", ["*"])),
    )
    .await;
    let events = varied_events(60);
    publish_events(&pool, &events).await;
    wait_all_done(&pool).await;
    stop(&pool, handle).await;

    let by_id: HashMap<Uuid, &NewEvent> = events.iter().map(|e| (e.id(), e)).collect();
    let messages = read_stream(&python, &server.url(), "PGBUS", "events.>").await;
    assert_eq!(messages.len(), events.len(), "one message per event");
    let rows: Vec<(Uuid, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as("SELECT id, created_at FROM pgbus.events")
            .fetch_all(&pool)
            .await
            .unwrap();
    let created: HashMap<Uuid, _> = rows.into_iter().collect();
    for m in &messages {
        let id: Uuid = header(m, "Nats-Msg-Id")
            .expect("Nats-Msg-Id")
            .parse()
            .unwrap();
        let e = by_id[&id];
        assert_eq!(header(m, "ce-id"), Some(id.to_string().as_str()));
        assert_eq!(header(m, "ce-specversion"), Some("1.0"));
        assert_eq!(header(m, "ce-type"), Some(e.event_type()));
        assert_eq!(m.subject, format!("events.{}", e.event_type()));
        assert_eq!(header(m, "ce-source"), Some("tests"));
        assert_eq!(header(m, "content-type"), Some("application/json"));
        assert_eq!(header(m, "Nats-Expected-Stream"), Some("PGBUS"));
        let time = chrono::DateTime::parse_from_rfc3339(header(m, "ce-time").unwrap()).unwrap();
        assert_eq!(time, created[&id]);
        let (subject, key, traceparent) = varied_shape(number(e));
        assert_eq!(header(m, "ce-subject"), subject.as_deref());
        assert_eq!(header(m, "ce-partitionkey"), key.as_deref());
        assert_eq!(header(m, "traceparent"), traceparent);
        assert_eq!(header(m, "ce-traceparent"), traceparent);
        assert_eq!(
            m.body,
            serde_json::to_vec(e.data()).unwrap(),
            "payload bytes"
        );
    }

    let docs = read_stream(&python, &server.url(), "PGBUS_S", "structured.>").await;
    assert_eq!(docs.len(), events.len());
    for m in &docs {
        let ce = CloudEvent::from_json(&serde_json::from_slice(&m.body).unwrap()).unwrap();
        let e = by_id[&ce.id.parse::<Uuid>().unwrap()];
        assert_eq!(header(m, "Nats-Msg-Id"), Some(ce.id.as_str()));
        assert_eq!(
            header(m, "content-type"),
            Some(pgbus::relay::STRUCTURED_CONTENT_TYPE)
        );
        assert_eq!(ce.event_type, e.event_type());
        assert_eq!(ce.data.as_ref(), Some(e.data()));
        let subject = if e.event_type().starts_with("deal.") {
            "structured.deals".to_owned()
        } else {
            format!("structured.{}", e.event_type())
        };
        assert_eq!(m.subject, subject);
    }
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_relay_retries_until_a_stream_takes_the_subject_and_the_server_is_back() {
    let Some((mut server, python)) = nats().await else {
        return;
    };
    let db = db().await;
    let pool = db.pool().clone();
    // No stream takes `late.>` yet: JetStream answers "no responders", the delivery retries.
    let relay = NatsRelay::builder(server.url())
        .destinations(Destinations::prefix("late."))
        .ack_timeout(Duration::from_millis(500))
        .connect()
        .await
        .expect("relay");
    let handle = start(
        dispatcher(&pool).subscribe(
            relay
                .subscription("relay.nats-late", ["*"])
                .retry(quick_retry().max_attempts(1000)),
        ),
    )
    .await;
    let ids: Vec<Uuid> = {
        let events = varied_events(10);
        publish_events(&pool, &events).await;
        events.iter().map(NewEvent::id).collect()
    };
    wait_until("failed attempts recorded", SOON, || async {
        count(
            &pool,
            "SELECT count(*) FROM pgbus.all_deliveries WHERE attempts >= 2",
        )
        .await
            == 10
    })
    .await;
    let error: String = sqlx::query_scalar("SELECT last_error FROM pgbus.all_deliveries LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(error.contains("no stream takes this subject"), "{error}");

    // The server goes away, and comes back with a stream for the subjects.
    server.kill9();
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.start_again().await.unwrap();
    let admin = NatsRelay::builder(server.url())
        .stream("LATE")
        .create_stream(["late.>"])
        .connect()
        .await
        .expect("creating the stream");
    drop(admin);
    wait_all_done(&pool).await;
    stop(&pool, handle).await;
    let messages = read_stream(&python, &server.url(), "LATE", "late.>").await;
    let mut got: Vec<Uuid> = messages
        .iter()
        .map(|m| m.headers["Nats-Msg-Id"].parse().unwrap())
        .collect();
    got.sort();
    let mut want = ids;
    want.sort();
    assert_eq!(got, want);
    server.stop();
}
