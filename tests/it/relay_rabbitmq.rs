//! The RabbitMQ relay against a real RabbitMQ node, read back by pika: every event arrives
//! once with its message id, type, CloudEvents headers and payload bytes, persistent; a
//! message no queue is bound for is an error that retries until a queue is bound.

use std::collections::HashMap;
use std::time::Duration;

use pgbus::NewEvent;
use pgbus::relay::rabbitmq::{ExchangeKind, RabbitMqRelay};
use pgbus::relay::{Destinations, Format};
use uuid::Uuid;

use crate::relay_nats::{number, varied_events, varied_shape};
use crate::support::brokers::{amqp_read, amqp_setup, rabbitmq};
use crate::support::database::{count, db};
use crate::support::dispatcher::{dispatcher, quick_retry, start, stop};
use crate::support::publishing::publish_events;
use crate::support::wait::{SOON, wait_until};

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
async fn rabbitmq_relay_publishes_every_event_confirmed_with_its_headers() {
    let Some((server, python)) = rabbitmq().await else {
        return;
    };
    let url = server.url();
    amqp_setup(&python, &url, "pgbus.events", "all-events", "events.#").await;
    amqp_setup(&python, &url, "pgbus.structured", "structured", "#").await;
    let db = db().await;
    let pool = db.pool().clone();
    let binary = RabbitMqRelay::builder(&url, "pgbus.events")
        .destinations(Destinations::prefix("events."))
        .build()
        .unwrap();
    let structured = RabbitMqRelay::builder(&url, "pgbus.structured")
        .declare_exchange(ExchangeKind::Topic)
        .format(Format::Structured)
        .build()
        .unwrap();
    let handle = start(
        dispatcher(&pool)
            .subscribe(binary.subscription("relay.amqp", ["*"]))
            .subscribe(structured.subscription("relay.amqp-structured", ["*"])),
    )
    .await;
    let events = varied_events(60);
    publish_events(&pool, &events).await;
    wait_all_done(&pool).await;
    stop(&pool, handle).await;

    let by_id: HashMap<Uuid, &NewEvent> = events.iter().map(|e| (e.id(), e)).collect();
    let messages = amqp_read(&python, &url, "all-events").await;
    assert_eq!(messages.len(), events.len(), "one message per event");
    for m in &messages {
        let id: Uuid = m
            .message_id
            .as_deref()
            .expect("message-id")
            .parse()
            .unwrap();
        let e = by_id[&id];
        let h = |n: &str| m.headers.get(n).map(String::as_str);
        assert_eq!(m.exchange, "pgbus.events");
        assert_eq!(m.routing_key, format!("events.{}", e.event_type()));
        assert_eq!(m.kind.as_deref(), Some(e.event_type()));
        assert_eq!(m.content_type.as_deref(), Some("application/json"));
        assert_eq!(m.delivery_mode, Some(2), "persistent");
        assert!(m.timestamp.is_some_and(|t| t > 1_700_000_000));
        assert_eq!(h("ce-id"), Some(id.to_string().as_str()));
        assert_eq!(h("ce-specversion"), Some("1.0"));
        assert_eq!(h("ce-type"), Some(e.event_type()));
        assert_eq!(h("ce-source"), Some("tests"));
        assert!(h("ce-time").is_some());
        let (subject, key, traceparent) = varied_shape(number(e));
        assert_eq!(h("ce-subject"), subject.as_deref());
        assert_eq!(h("ce-partitionkey"), key.as_deref());
        assert_eq!(h("traceparent"), traceparent);
        assert_eq!(
            m.body,
            serde_json::to_vec(e.data()).unwrap(),
            "payload bytes"
        );
    }
    let docs = amqp_read(&python, &url, "structured").await;
    assert_eq!(docs.len(), events.len());
    for m in &docs {
        let doc: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
        let e = by_id[&doc["id"].as_str().unwrap().parse::<Uuid>().unwrap()];
        assert_eq!(m.message_id.as_deref(), doc["id"].as_str());
        assert_eq!(doc["type"], e.event_type());
        assert_eq!(&doc["data"], e.data());
        assert_eq!(
            m.content_type.as_deref(),
            Some(pgbus::relay::STRUCTURED_CONTENT_TYPE)
        );
    }
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unroutable_message_is_an_error_until_a_queue_is_bound() {
    let Some((server, python)) = rabbitmq().await else {
        return;
    };
    let url = server.url();
    let db = db().await;
    let pool = db.pool().clone();
    let relay = RabbitMqRelay::builder(&url, "pgbus.unbound")
        .declare_exchange(ExchangeKind::Topic)
        .build()
        .unwrap();
    let handle = start(
        dispatcher(&pool).subscribe(
            relay
                .subscription("relay.amqp-unbound", ["*"])
                .retry(quick_retry().max_attempts(1000)),
        ),
    )
    .await;
    let events = varied_events(10);
    publish_events(&pool, &events).await;
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
    assert!(
        error.contains("unroutable") && error.contains("NO_ROUTE"),
        "{error}"
    );
    amqp_setup(&python, &url, "pgbus.unbound", "late", "#").await;
    wait_all_done(&pool).await;
    stop(&pool, handle).await;
    let mut got: Vec<String> = amqp_read(&python, &url, "late")
        .await
        .into_iter()
        .filter_map(|m| m.message_id)
        .collect();
    got.sort();
    let mut want: Vec<String> = events.iter().map(|e| e.id().to_string()).collect();
    want.sort();
    assert_eq!(got, want, "each event once, after the queue was bound");
    server.stop();
}

/// Unroutable messages among many routable ones in flight on one channel: each returned
/// message is matched to its own publish by `message-id`, so no unroutable event is marked
/// done and every routable one reaches the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returned_messages_are_matched_to_their_own_publish() {
    let Some((server, python)) = rabbitmq().await else {
        return;
    };
    let url = server.url();
    amqp_setup(&python, &url, "pgbus.mixed", "routable", "routable.#").await;
    let db = db().await;
    let pool = db.pool().clone();
    let relay = RabbitMqRelay::builder(&url, "pgbus.mixed").build().unwrap();
    let handle = start(
        dispatcher(&pool).subscribe(
            relay
                .subscription("relay.amqp-mixed", ["*"])
                .retry(quick_retry().max_attempts(10_000)),
        ),
    )
    .await;
    // One unroutable event in every 20, published in a few transactions so that the claims
    // mix them with routable ones.
    let events: Vec<NewEvent> = (0..4000)
        .map(|i| {
            let kind = if i % 20 == 7 {
                "unbound.thing"
            } else {
                "routable.thing"
            };
            NewEvent::raw(kind, serde_json::json!({ "i": i }))
        })
        .collect();
    for chunk in events.chunks(500) {
        publish_events(&pool, chunk).await;
    }
    let unroutable = events
        .iter()
        .filter(|e| e.event_type() == "unbound.thing")
        .count() as i64;
    wait_until(
        "every routable delivery done",
        Duration::from_secs(60),
        || async {
            count(
                &pool,
                "SELECT count(*) FROM pgbus.all_deliveries d JOIN pgbus.events e \
                 ON e.id = d.event_id WHERE d.state < 2 AND e.type = 'routable.thing'",
            )
            .await
                == 0
        },
    )
    .await;
    let unfinished = count(
        &pool,
        "SELECT count(*) FROM pgbus.all_deliveries d JOIN pgbus.events e \
         ON e.id = d.event_id WHERE d.state < 2 AND e.type = 'unbound.thing'",
    )
    .await;
    stop(&pool, handle).await;
    assert_eq!(
        unfinished, unroutable,
        "every unroutable event is still retrying, none was marked done"
    );
    let got: std::collections::HashSet<String> = amqp_read(&python, &url, "routable")
        .await
        .into_iter()
        .filter_map(|m| m.message_id)
        .collect();
    for e in &events {
        let id = e.id().to_string();
        assert_eq!(
            got.contains(&id),
            e.event_type() == "routable.thing",
            "event {id} of type {} in the queue",
            e.event_type()
        );
    }
    server.stop();
}
