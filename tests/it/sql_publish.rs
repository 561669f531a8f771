//! `pgbus.publish` from SQL: the rows it writes are those the Rust publisher writes for the
//! same input (events, the delivery log, pgbus.deliveries), a duplicate returns the
//! original's id on both paths, its ids are UUIDv7, and its events reach Rust handlers.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use pgbus::{Publisher, Subscription};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::database::db;
use crate::support::dispatcher::{dispatcher, register, start, stop};
use crate::support::journal::Journal;
use crate::support::sql_publish::Input;
use crate::support::wait::{SOON, wait_until};

const SOURCE: &str = "sql-tests";

/// Inputs covering each column: due now, later, with a dedupe key, to no subscription.
fn inputs() -> Vec<Input> {
    let mut full = Input::new("property.created", json!({"id": 42, "tags": ["a", "b"]}));
    full.subject = Some("property/42".into());
    full.key = Some("property/42".into());
    full.headers = BTreeMap::from([
        ("correlation_id".to_owned(), "c-1".to_owned()),
        ("pgbus-version".to_owned(), "2".to_owned()),
    ]);
    full.priority = -3;
    let mut later = Input::new("property.updated", json!({"id": 42}));
    later.deliver_at = Some(Utc::now() + chrono::Duration::hours(1));
    later.priority = 5;
    let mut deduped = Input::new("property.created", json!({"id": 43}));
    deduped.dedupe_key = Some("property-43".into());
    vec![
        full,
        later,
        deduped,
        Input::new("nobody.listens", json!(null)),
    ]
}

/// Everything written, without what differs between two publishes of the same input (ids,
/// transaction ids, times): events, log rows and deliveries in a stable order.
async fn written(pool: &PgPool) -> (Vec<String>, Vec<String>, Vec<String>) {
    let events = sqlx::query_scalar(
        "SELECT concat_ws(' | ', type, source, subject, key, data::text, headers::text,
                          dedupe_key, priority)
         FROM pgbus.events ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .expect("events");
    let log = sqlx::query_scalar(
        "SELECT concat_ws(' | ', e.type, l.slot, l.subscription, l.priority, l.key)
         FROM pgbus.delivery_log l JOIN pgbus.events e ON e.id = l.event_id
         ORDER BY e.id, l.subscription",
    )
    .fetch_all(pool)
    .await
    .expect("log rows");
    let deliveries = sqlx::query_scalar(
        "SELECT concat_ws(' | ', e.type, d.subscription, d.state, d.priority,
                          d.run_at > now() + interval '59 minutes', d.attempts, d.solo, d.key,
                          d.last_error, d.finished_at, d.owner, d.lease_id)
         FROM pgbus.deliveries d JOIN pgbus.events e ON e.id = d.event_id
         ORDER BY e.id, d.subscription",
    )
    .fetch_all(pool)
    .await
    .expect("deliveries");
    (events, log, deliveries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_and_rust_publishing_write_identical_rows() {
    let subscriptions: &[(&str, &[&str])] = &[
        ("listings", &["property.*"]),
        ("audit", &["*"]),
        ("created-only", &["property.created"]),
    ];
    let (rust_db, sql_db) = (db().await, db().await);
    register(rust_db.pool(), subscriptions).await;
    register(sql_db.pool(), subscriptions).await;
    let publisher = Publisher::new(SOURCE).expect("publisher");
    let mut rust_conn = rust_db.pool().acquire().await.expect("conn");
    let mut sql_conn = sql_db.pool().acquire().await.expect("conn");
    for input in inputs() {
        let a = input
            .publish_rust(&mut rust_conn, &publisher)
            .await
            .expect("Rust publish");
        let b = input
            .publish_sql(&mut sql_conn, SOURCE)
            .await
            .expect("SQL publish");
        // A duplicate returns the original's id on both paths.
        if input.dedupe_key.is_some() {
            assert_eq!(
                input
                    .publish_rust(&mut rust_conn, &publisher)
                    .await
                    .expect("dup"),
                a
            );
            assert_eq!(
                input.publish_sql(&mut sql_conn, SOURCE).await.expect("dup"),
                b
            );
        }
    }
    let (rust, sql) = (written(rust_db.pool()).await, written(sql_db.pool()).await);
    assert_eq!(rust.0.len(), 4, "{rust:#?}");
    assert!(!rust.1.is_empty() && !rust.2.is_empty(), "{rust:#?}");
    assert_eq!(sql, rust);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_ids_are_time_ordered_uuid_v7() {
    let db = db().await;
    let before = Utc::now().timestamp_millis();
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT pgbus.uuid_v7() FROM generate_series(1, 2000)")
        .fetch_all(db.pool())
        .await
        .expect("ids");
    let after = Utc::now().timestamp_millis();
    let mut previous = 0u128;
    for id in &ids {
        assert_eq!(id.get_version_num(), 7, "{id}");
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122, "{id}");
        let bits = id.as_u128();
        let ms = (bits >> 80) as i64;
        assert!(
            (before - 5..=after + 5).contains(&ms),
            "{id}: {ms} not in {before}..{after}"
        );
        // Milliseconds and the 12 bits of sub-millisecond time never go back in a session.
        let time = (bits >> 80) << 12 | (bits >> 64) & 0xfff;
        assert!(time >= previous, "{id} goes back in time");
        previous = time;
    }
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_from_sql_reach_rust_handlers_with_their_envelope() {
    let db = db().await;
    let pool = db.pool();
    let journal = Journal::new();
    let handle = start(dispatcher(pool).subscribe(Subscription::raw(
        "listings",
        ["property.*"],
        journal.handler(),
    )))
    .await;
    let mut input = inputs().remove(0);
    input.priority = 0;
    let mut tx = pool.begin().await.expect("begin");
    let id = input.publish_sql(&mut tx, SOURCE).await.expect("publish");
    tx.commit().await.expect("commit");
    wait_until("the SQL event to be handled", SOON, || async {
        journal.len() == 1
    })
    .await;
    let call = &journal.calls()[0];
    assert_eq!(call.event_id, id);
    assert_eq!(call.event_type, "property.created");
    assert_eq!(call.source, SOURCE);
    assert_eq!(call.subject.as_deref(), Some("property/42"));
    assert_eq!(call.key.as_deref(), Some("property/42"));
    assert_eq!(call.headers, input.headers);
    assert_eq!(call.data, input.data);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(journal.len(), 1);
    stop(pool, handle).await;
}
