//! Publishing events in one call, on a connection of a pool.

use pgbus::{NewEvent, Publisher};
use sqlx::PgPool;
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
