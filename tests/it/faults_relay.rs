//! Relays under faults: the broker `kill -9`ed and restarted mid-stream, and the relay's
//! own worker processes `kill -9`ed mid-stream. Afterwards every published event is in
//! the broker at least once, as an independent client (nats-py, pika) reads it; NATS holds
//! no duplicate (the relays' `Nats-Msg-Id` within the stream's duplicate window), and
//! RabbitMQ's duplicates (it does not deduplicate) are counted and reported.

use std::collections::HashMap;
use std::time::Duration;

use pgbus::relay::Destinations;
use pgbus::relay::nats::NatsRelay;
use pgbus::relay::rabbitmq::RabbitMqRelay;
use sqlx::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

use crate::support::brokers::{amqp_read, amqp_setup, nats, rabbitmq, read_stream};
use crate::support::database::{count, db};
use crate::support::dispatcher::{dispatcher, fault_retry, start, stop};
use crate::support::env::size;
use crate::support::fleet::Fleet;
use crate::support::publishing::publish_paced;
use crate::support::rng::Rng;
use crate::support::wait::wait_until;
use crate::support::worker::{FAULT_EXCHANGE, FAULT_STREAM, Mode, WorkerConfig};

/// How many times each id appears: (distinct ids, copies beyond the first, ids missing).
fn tally(published: &[Uuid], seen: impl IntoIterator<Item = Uuid>) -> (usize, usize, usize) {
    let mut copies: HashMap<Uuid, usize> = HashMap::new();
    for id in seen {
        *copies.entry(id).or_default() += 1;
    }
    let duplicates = copies.values().map(|n| n - 1).sum();
    let missing = published
        .iter()
        .filter(|id| !copies.contains_key(id))
        .count();
    (copies.len(), duplicates, missing)
}

async fn wait_drained(pool: &PgPool, what: &str) -> Duration {
    let started = Instant::now();
    wait_until(what, Duration::from_secs(size(180, 900)), || async {
        count(
            pool,
            "SELECT count(*) FROM pgbus.all_deliveries WHERE state < 2",
        )
        .await
            == 0
    })
    .await;
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM pgbus.all_deliveries WHERE state = 3"
        )
        .await,
        0,
        "dead relay deliveries"
    );
    started.elapsed()
}

async fn nats_stream(url: &str) {
    NatsRelay::builder(url)
        .stream(FAULT_STREAM)
        .create_stream(["faults.>"])
        .connect()
        .await
        .expect("creating the stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_killed_mid_stream_every_event_stored_once() {
    let Some((mut server, python)) = nats().await else {
        return;
    };
    let total = size(10_000, 100_000);
    let db = db().await;
    let pool = db.pool().clone();
    nats_stream(&server.url()).await;
    let relay = NatsRelay::builder(server.url())
        .destinations(Destinations::prefix("faults."))
        .stream(FAULT_STREAM)
        .ack_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let handle = start(
        dispatcher(&pool).subscribe(
            relay
                .subscription("relay.faults", ["fault.*"])
                .retry(fault_retry().max_attempts(1000)),
        ),
    )
    .await;
    let publisher = tokio::spawn(publish_paced(
        pool.clone(),
        total,
        Duration::from_secs(size(6, 30)),
    ));
    let mut kills = 0;
    for _ in 0..size(2, 5) {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        server.kill9();
        kills += 1;
        tokio::time::sleep(Duration::from_millis(700)).await;
        server.start_again().await.expect("restarting nats-server");
    }
    let published = publisher.await.unwrap();
    let drained = wait_drained(&pool, "the relay to catch up after the broker restarts").await;
    stop(&pool, handle).await;
    let messages = read_stream(&python, &server.url(), FAULT_STREAM, "faults.>").await;
    let ids = messages
        .iter()
        .map(|m| m.headers["Nats-Msg-Id"].parse().unwrap());
    let (distinct, duplicates, missing) = tally(&published, ids);
    println!(
        "faults/relay-nats-broker-killed: {total} events, nats-server killed (-9) and restarted \
         {kills} times; stream holds {} messages, {distinct} distinct events, {missing} missing, \
         {duplicates} duplicates; drained {:.1} s after the \
         last publish",
        messages.len(),
        drained.as_secs_f64()
    );
    assert_eq!(missing, 0, "events missing from the stream");
    assert_eq!(duplicates, 0, "duplicates within the duplicate window");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_killed_mid_stream_every_event_in_the_queue() {
    let Some((mut server, python)) = rabbitmq().await else {
        return;
    };
    let total = size(10_000, 100_000);
    let url = server.url();
    amqp_setup(&python, &url, FAULT_EXCHANGE, "faults", "#").await;
    let db = db().await;
    let pool = db.pool().clone();
    let relay = RabbitMqRelay::builder(&url, FAULT_EXCHANGE)
        .ack_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let handle = start(
        dispatcher(&pool).subscribe(
            relay
                .subscription("relay.faults", ["fault.*"])
                .retry(fault_retry().max_attempts(1000)),
        ),
    )
    .await;
    let publisher = tokio::spawn(publish_paced(
        pool.clone(),
        total,
        Duration::from_secs(size(6, 30)),
    ));
    tokio::time::sleep(Duration::from_millis(2000)).await;
    server.kill9();
    tokio::time::sleep(Duration::from_millis(700)).await;
    server
        .start_again()
        .await
        .expect("restarting rabbitmq-server");
    let published = publisher.await.unwrap();
    let drained = wait_drained(&pool, "the relay to catch up after the broker restart").await;
    stop(&pool, handle).await;
    let messages = amqp_read(&python, &url, "faults").await;
    let ids = messages
        .iter()
        .map(|m| m.message_id.as_deref().unwrap().parse().unwrap());
    let (distinct, duplicates, missing) = tally(&published, ids);
    println!(
        "faults/relay-rabbitmq-broker-killed: {total} events, rabbitmq-server killed (-9) and \
         restarted once; queue held {} messages, {distinct} distinct events, {missing} missing, \
         {duplicates} duplicates (same message-id); drained \
         {:.1} s after the last publish",
        messages.len(),
        drained.as_secs_f64()
    );
    assert_eq!(missing, 0, "events missing from the queue");
    server.stop();
}

/// Relay workers (processes) killed with SIGKILL while events are published; returns the
/// published ids and the number of kills.
async fn kill_relay_workers(pool: &PgPool, config: WorkerConfig) -> (Vec<Uuid>, usize) {
    let total = size(10_000, 100_000);
    let mut fleet = Fleet::start(pool, config, 2).await;
    let publisher = tokio::spawn(publish_paced(
        pool.clone(),
        total,
        Duration::from_secs(size(8, 40)),
    ));
    let mut rng = Rng::from_time();
    let mut kills = 0;
    while !publisher.is_finished() {
        fleet.kill_random(&mut rng, (300, 900)).await;
        kills += 1;
    }
    let published = publisher.await.unwrap();
    wait_drained(pool, "the relay workers to catch up").await;
    fleet.kill_all().await;
    (published, kills)
}

fn relay_workers(url: &str, mode: Mode, relay_url: String) -> WorkerConfig {
    WorkerConfig {
        concurrency: 128,
        batch_size: 100,
        max_attempts: 1000,
        poll_interval: Duration::from_millis(100),
        relay_url: Some(relay_url),
        ..WorkerConfig::new(url, mode, &["relay.faults"], "fault.*")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_relay_workers_killed_mid_stream_store_each_event_once() {
    let Some((server, python)) = nats().await else {
        return;
    };
    let db = db().await;
    nats_stream(&server.url()).await;
    let config = relay_workers(db.url(), Mode::RelayNats, server.url());
    let (published, kills) = kill_relay_workers(db.pool(), config).await;
    let messages = read_stream(&python, &server.url(), FAULT_STREAM, "faults.>").await;
    let ids = messages
        .iter()
        .map(|m| m.headers["Nats-Msg-Id"].parse().unwrap());
    let (distinct, duplicates, missing) = tally(&published, ids);
    println!(
        "faults/relay-nats-workers-killed: {} events, {kills} relay workers killed (-9); stream \
         holds {} messages, {distinct} distinct events, {missing} missing, {duplicates} duplicates",
        published.len(),
        messages.len()
    );
    assert_eq!(missing, 0);
    assert_eq!(
        duplicates, 0,
        "re-published events are dropped by the duplicate window"
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_relay_workers_killed_mid_stream_lose_no_event() {
    let Some((server, python)) = rabbitmq().await else {
        return;
    };
    let url = server.url();
    amqp_setup(&python, &url, FAULT_EXCHANGE, "faults", "#").await;
    let db = db().await;
    let config = relay_workers(db.url(), Mode::RelayRabbitMq, url.clone());
    let (published, kills) = kill_relay_workers(db.pool(), config).await;
    let messages = amqp_read(&python, &url, "faults").await;
    let ids = messages
        .iter()
        .map(|m| m.message_id.as_deref().unwrap().parse().unwrap());
    let (distinct, duplicates, missing) = tally(&published, ids);
    println!(
        "faults/relay-rabbitmq-workers-killed: {} events, {kills} relay workers killed (-9); \
         queue held {} messages, {distinct} distinct events, {missing} missing, {duplicates} \
         duplicates (same message-id: RabbitMQ does not deduplicate)",
        published.len(),
        messages.len()
    );
    assert_eq!(missing, 0);
    server.stop();
}
