//! An ordered relay subscription publishes each key's events to the broker in publish order,
//! also when a key's first event keeps failing: 50 keys × 40 events, the odd keys' messages
//! unroutable (RabbitMQ) or not among the stream's subjects (NATS) until the test adds them. Meanwhile
//! the even keys are relayed completely; afterwards every key's messages, read back by an
//! independent client, are in publish order, each event once.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use pgbus::relay::nats::NatsRelay;
use pgbus::relay::rabbitmq::{ExchangeKind, RabbitMqRelay};
use pgbus::{NewEvent, Subscription};
use serde_json::json;

use crate::support::brokers::{
    amqp_read, amqp_setup, nats, rabbitmq, read_stream, set_stream_subjects,
};
use crate::support::database::{count, db};
use crate::support::dispatcher::{dispatcher, quick_retry, start, stop};
use crate::support::publishing::publish_events;
use crate::support::wait::wait_until;

const KEYS: usize = 50;
const PER_KEY: usize = 40;

/// Event `i` has key `k{i % KEYS}` and type `ord.even` or `ord.odd` by the key's parity.
fn keyed_events() -> Vec<NewEvent> {
    (0..KEYS * PER_KEY)
        .map(|i| {
            let k = i % KEYS;
            let kind = if k.is_multiple_of(2) {
                "ord.even"
            } else {
                "ord.odd"
            };
            NewEvent::raw(kind, json!({ "i": i })).key(format!("k{k}"))
        })
        .collect()
}

/// Publishes the events in eight transactions, one after the other (so publish order is
/// the order of `i`).
async fn publish_in_rounds(pool: &sqlx::PgPool, events: &[NewEvent]) {
    for chunk in events.chunks(events.len() / 8) {
        publish_events(pool, chunk).await;
    }
}

async fn wait_unfinished(pool: &sqlx::PgPool, what: &str, event_type: &str, want: i64) {
    let sql = format!(
        "SELECT count(*) FROM pgbus.all_deliveries d JOIN pgbus.events e ON e.id = d.event_id \
         WHERE d.state < 2 AND e.type = '{event_type}'"
    );
    wait_until(what, Duration::from_secs(60), || async {
        count(pool, &sql).await == want
    })
    .await;
}

/// Waits until every odd key's head has failed at least twice (its key is held back).
async fn wait_odd_heads_retrying(pool: &sqlx::PgPool) {
    wait_until(
        "the odd keys' first deliveries retrying",
        Duration::from_secs(60),
        || async {
            count(
                pool,
                "SELECT count(*) FROM pgbus.all_deliveries d JOIN pgbus.events e \
                 ON e.id = d.event_id WHERE e.type = 'ord.odd' AND d.attempts >= 2",
            )
            .await
                >= (KEYS / 2) as i64
        },
    )
    .await;
}

/// Runs `subscription`, made ordered, over the keyed events: waits until the even keys are
/// relayed and every odd key's head has failed twice, then awaits `open_odd` (which makes
/// the odd keys' messages routable) and waits until they are relayed too.
async fn relay_in_order(
    pool: &sqlx::PgPool,
    subscription: Subscription,
    open_odd: impl Future<Output = ()>,
) {
    let handle = start(
        dispatcher(pool).subscribe(
            subscription
                .ordered()
                .retry(quick_retry().max_attempts(10_000)),
        ),
    )
    .await;
    publish_in_rounds(pool, &keyed_events()).await;
    wait_unfinished(pool, "the even keys relayed", "ord.even", 0).await;
    wait_odd_heads_retrying(pool).await;
    open_odd.await;
    wait_unfinished(pool, "the odd keys relayed", "ord.odd", 0).await;
    stop(pool, handle).await;
}

/// Checks that the messages' bodies, in broker order, are each event once and in publish
/// order within every key.
fn assert_in_order_per_key<'a>(bodies: impl Iterator<Item = &'a [u8]>) {
    let mut seen = HashSet::new();
    let mut by_key: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in bodies.map(number) {
        assert!(seen.insert(i), "event {i} reached the broker twice");
        by_key.entry(i % KEYS).or_default().push(i);
    }
    assert_eq!(seen.len(), KEYS * PER_KEY, "every event reached the broker");
    for (k, got) in by_key {
        let mut want = got.clone();
        want.sort_unstable();
        assert_eq!(got, want, "key k{k} in publish order");
    }
}

fn number(body: &[u8]) -> usize {
    let v: serde_json::Value = serde_json::from_slice(body).expect("a JSON body");
    v["i"].as_u64().expect("the event number") as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordered_nats_relay_publishes_each_key_in_order() {
    let Some((server, python)) = nats().await else {
        return;
    };
    let db = db().await;
    let pool = db.pool().clone();
    let relay = NatsRelay::builder(server.url())
        .stream("ORD")
        .create_stream(["ord.even"])
        .connect()
        .await
        .expect("relay");
    // The stream takes the odd keys' subject too, once they are held back.
    let url = server.url();
    let open_odd = set_stream_subjects(&python, &url, "ORD", &["ord.even", "ord.odd"]);
    relay_in_order(
        &pool,
        relay.subscription("relay.nats-ordered", ["ord.*"]),
        open_odd,
    )
    .await;
    let messages = read_stream(&python, &url, "ORD", "ord.*").await;
    assert_in_order_per_key(messages.iter().map(|m| m.body.as_slice()));
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordered_rabbitmq_relay_publishes_each_key_in_order() {
    let Some((server, python)) = rabbitmq().await else {
        return;
    };
    let url = server.url();
    amqp_setup(&python, &url, "pgbus.ordered", "ordered", "ord.even").await;
    let db = db().await;
    let pool = db.pool().clone();
    let relay = RabbitMqRelay::builder(&url, "pgbus.ordered")
        .declare_exchange(ExchangeKind::Topic)
        .build()
        .unwrap();
    // The same queue takes the odd keys too, once they are held back.
    let open_odd = amqp_setup(&python, &url, "pgbus.ordered", "ordered", "ord.odd");
    relay_in_order(
        &pool,
        relay.subscription("relay.amqp-ordered", ["ord.*"]),
        open_odd,
    )
    .await;
    let messages = amqp_read(&python, &url, "ordered").await;
    assert_in_order_per_key(messages.iter().map(|m| m.body.as_slice()));
    server.stop();
}
