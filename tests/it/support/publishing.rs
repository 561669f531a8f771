//! Publishing events in one call, on a connection of a pool.

use std::time::Duration;

use pgbus::{NewEvent, Publisher};
use serde_json::json;
use sqlx::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

fn publisher() -> Publisher {
    Publisher::new("tests").expect("publisher")
}

/// Publishes `event` with `publish`; returns its id.
pub async fn publish_one(pool: &PgPool, event: NewEvent) -> Uuid {
    let id = event.id();
    publisher()
        .publish(&mut pool.acquire().await.expect("conn"), event)
        .await
        .expect("publish");
    id
}

/// Publishes `events` in one `publish_all` call.
pub async fn publish_events(pool: &PgPool, events: &[NewEvent]) {
    publisher()
        .publish_all(&mut pool.acquire().await.expect("conn"), events)
        .await
        .expect("publish");
}

/// Publishes `n` events of `event_type` with payload `{"i": i}` in one `publish_all` call;
/// returns their ids in order.
pub async fn publish_n(pool: &PgPool, event_type: &str, n: usize) -> Vec<Uuid> {
    let events: Vec<NewEvent> = (0..n)
        .map(|i| NewEvent::raw(event_type, serde_json::json!({ "i": i })))
        .collect();
    publish_events(pool, &events).await;
    events.iter().map(NewEvent::id).collect()
}

/// Like [`publish_n`], but each delivery is a row of `pgbus.deliveries` (published with a
/// `deliver_at` an hour ahead) instead of the delivery log, for tests that write a row's
/// state themselves.
pub async fn publish_n_as_rows(pool: &PgPool, event_type: &str, n: usize) -> Vec<Uuid> {
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let events: Vec<NewEvent> = (0..n)
        .map(|i| NewEvent::raw(event_type, serde_json::json!({ "i": i })).deliver_at(later))
        .collect();
    publish_events(pool, &events).await;
    events.iter().map(NewEvent::id).collect()
}

/// Publishes `total` events of type `fault.tick` in batches of 25 (autocommit), spread over
/// about `over`; returns the ids of the events whose publish returned `Ok`.
pub async fn publish_paced(pool: PgPool, total: usize, over: Duration) -> Vec<Uuid> {
    const BATCH: usize = 25;
    let publisher = Publisher::new("faults.kill").expect("publisher");
    let batches = total.div_ceil(BATCH);
    let started = Instant::now();
    let mut ids = Vec::with_capacity(total);
    for b in 0..batches {
        let events: Vec<NewEvent> = (b * BATCH..((b + 1) * BATCH).min(total))
            .map(|n| NewEvent::raw("fault.tick", json!({ "n": n })))
            .collect();
        let mut conn = pool.acquire().await.expect("a connection to publish on");
        let outcomes = publisher
            .publish_all(&mut conn, &events)
            .await
            .expect("publishing (the database is not restarted in this test)");
        ids.extend(outcomes.iter().map(|o| o.id()));
        drop(conn);
        // Keep to the schedule: batch b+1 is due at (b+1)/batches of `over`.
        let due = started + over.mul_f64((b + 1) as f64 / batches as f64);
        tokio::time::sleep_until(due).await;
    }
    ids
}
