//! Dedupe keys: unique within a scope (per event type by default, per source, or global),
//! kept for the dedupe retention, and still deduplicating after the upgrade that moved them
//! out of `pgbus.events`.

use std::time::Duration;

use pgbus::{DedupeScope, DispatcherBuilder, NewEvent, PublishOutcome, Publisher, Subscription};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::database::{count, db, empty_db};
use crate::support::dispatcher::{dispatcher, register, start, stop};
use crate::support::journal::Journal;
use crate::support::old_schema::schema_at;
use crate::support::wait::{SOON, wait_until};

async fn publish(pool: &PgPool, source: &str, event: NewEvent) -> PublishOutcome {
    let mut conn = pool.acquire().await.expect("a connection");
    Publisher::new(source)
        .expect("publisher")
        .publish(&mut conn, event)
        .await
        .expect("publishing")
}

fn keyed(event_type: &str, key: &str, scope: DedupeScope) -> NewEvent {
    NewEvent::raw(event_type, json!({}))
        .dedupe_key(key)
        .dedupe_scope(scope)
}

fn published(outcome: PublishOutcome) -> Uuid {
    assert!(!outcome.is_duplicate(), "a duplicate: {outcome:?}");
    outcome.id()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_unique_per_event_type_by_default() {
    let db = db().await;
    let pool = db.pool();
    let invoice = NewEvent::raw("invoice.paid", json!({})).dedupe_key("1");
    let first = published(publish(pool, "billing", invoice).await);
    let user = NewEvent::raw("user.created", json!({})).dedupe_key("1");
    let other = published(publish(pool, "billing", user).await);
    assert_ne!(first, other);
    // Whatever the source: the scope is the type.
    let again = NewEvent::raw("invoice.paid", json!({})).dedupe_key("1");
    assert_eq!(
        publish(pool, "accounts", again).await,
        PublishOutcome::Duplicate { id: first }
    );
    assert_eq!(count(pool, "SELECT count(*) FROM pgbus.events").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_can_be_unique_per_source_or_globally() {
    let db = db().await;
    let pool = db.pool();
    use DedupeScope::{Global, Source};
    let a = published(publish(pool, "billing", keyed("invoice.paid", "k", Source)).await);
    // Another type from the same source: a duplicate.
    assert_eq!(
        publish(pool, "billing", keyed("invoice.sent", "k", Source)).await,
        PublishOutcome::Duplicate { id: a }
    );
    // The same type from another source: a new event.
    published(publish(pool, "accounts", keyed("invoice.paid", "k", Source)).await);

    let g = published(publish(pool, "billing", keyed("invoice.paid", "g", Global)).await);
    assert_eq!(
        publish(pool, "accounts", keyed("user.created", "g", Global)).await,
        PublishOutcome::Duplicate { id: g }
    );
    // Scopes are apart: the same key per type is not taken by the global one.
    published(
        publish(
            pool,
            "billing",
            keyed("invoice.paid", "g", DedupeScope::EventType),
        )
        .await,
    );

    // In one batch, per scope: the first of each (scope, key) wins.
    let batch = [
        keyed("order.placed", "b", Global),
        keyed("order.shipped", "b", DedupeScope::EventType),
        keyed("order.paid", "b", Global),
    ];
    let mut conn = pool.acquire().await.expect("a connection");
    let outcomes = (Publisher::new("shop").expect("publisher"))
        .publish_all(&mut conn, &batch)
        .await
        .expect("publishing a batch");
    assert!(!outcomes[0].is_duplicate() && !outcomes[1].is_duplicate());
    assert_eq!(outcomes[2], PublishOutcome::Duplicate { id: batch[0].id() });
}

/// A dispatcher whose maintenance prunes events older than a second, every 100 ms.
fn pruning(pool: &PgPool) -> DispatcherBuilder {
    dispatcher(pool)
        .event_retention(Some(Duration::from_secs(1)))
        .maintenance_interval(Duration::from_millis(100))
        .subscribe(Subscription::raw(
            "kept",
            ["invoice.*"],
            Journal::new().handler(),
        ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_deduplicates_within_its_retention_and_publishes_anew_after_it() {
    let db = db().await;
    let pool = db.pool();
    let event = || NewEvent::raw("invoice.paid", json!({})).dedupe_key("inv-7");
    let first = published(publish(pool, "billing", event()).await);
    assert_eq!(
        publish(pool, "billing", event()).await,
        PublishOutcome::Duplicate { id: first },
        "within the window"
    );
    register(pool, &[("kept", &["invoice.*"])]).await;
    // The dedupe retention follows the event retention unless set.
    let handle = start(pruning(pool)).await;
    wait_until("the key pruned after the event retention", SOON, || async {
        count(pool, "SELECT count(*) FROM pgbus.dedupe_keys").await == 0
    })
    .await;
    stop(pool, handle).await;
    let second = published(publish(pool, "billing", event()).await);
    assert_ne!(second, first, "after the window: a new event");

    // A dedupe retention of its own: kept while the events are.
    let handle = start(pruning(pool).dedupe_retention(None)).await;
    wait_until("the events pruned", SOON, || async {
        count(pool, "SELECT count(*) FROM pgbus.events").await == 0
    })
    .await;
    stop(pool, handle).await;
    assert_eq!(
        publish(pool, "billing", event()).await,
        PublishOutcome::Duplicate { id: second },
        "kept forever: a duplicate of the pruned event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sql_publish_function_deduplicates_per_event_type() {
    let db = db().await;
    let pool = db.pool();
    let sql = "SELECT pgbus.publish($1, '{}'::jsonb, 'sql', dedupe_key => $2)";
    let call = |t: &'static str| async move {
        sqlx::query_scalar::<_, Uuid>(sql)
            .bind(t)
            .bind("k-1")
            .fetch_one(pool)
            .await
            .expect("pgbus.publish")
    };
    let first = call("invoice.paid").await;
    assert_eq!(
        call("invoice.paid").await,
        first,
        "a duplicate returns the original"
    );
    assert_ne!(
        call("user.created").await,
        first,
        "another type: a new event"
    );
    // The Rust publisher's default scope is the same.
    let rust = NewEvent::raw("invoice.paid", json!({})).dedupe_key("k-1");
    assert_eq!(
        publish(pool, "rust", rust).await,
        PublishOutcome::Duplicate { id: first }
    );
    assert_eq!(count(pool, "SELECT count(*) FROM pgbus.events").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_published_before_the_upgrade_keep_deduplicating_in_every_scope() {
    let db = empty_db().await;
    let pool = db.pool();
    schema_at(pool, 2).await;
    let old: Uuid = sqlx::query_scalar(
        "INSERT INTO pgbus.events (id, type, source, data, dedupe_key)
         VALUES (gen_random_uuid(), 'invoice.paid', 'billing', '{}', 'old-key') RETURNING id",
    )
    .fetch_one(pool)
    .await
    .expect("a version-2 event with a dedupe key");
    pgbus::migrate(pool).await.expect("migrating");
    for (source, event) in [
        (
            "billing",
            keyed("invoice.paid", "old-key", DedupeScope::EventType),
        ),
        (
            "billing",
            keyed("invoice.sent", "old-key", DedupeScope::Source),
        ),
        (
            "other",
            keyed("user.created", "old-key", DedupeScope::Global),
        ),
    ] {
        assert_eq!(
            publish(pool, source, event).await,
            PublishOutcome::Duplicate { id: old }
        );
    }
    let sql: Uuid = sqlx::query_scalar(
        "SELECT pgbus.publish('invoice.paid', '{}'::jsonb, 'sql', dedupe_key => 'old-key')",
    )
    .fetch_one(pool)
    .await
    .expect("pgbus.publish");
    assert_eq!(sql, old);
    // Another type, per type: the key is free there.
    published(
        publish(
            pool,
            "billing",
            keyed("user.created", "old-key", DedupeScope::EventType),
        )
        .await,
    );
}
