//! Publishing: transactional writes, fan-out by pattern, dedupe.

use std::collections::BTreeMap;

use pgbus::{NewEvent, PublishOutcome, Publisher, Subscription};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::database::{count, db, table_counts};
use crate::support::deliveries::{deliveries, delivery_count};
use crate::support::dispatcher::{dispatcher, register, start, stop};
use crate::support::journal::Journal;
use crate::support::wait::{SOON, wait_until};

fn publisher() -> Publisher {
    Publisher::new("publish-tests").expect("publisher")
}

/// Subscriptions per event id, from `pgbus.all_deliveries`.
async fn fan_out(pool: &PgPool) -> BTreeMap<Uuid, Vec<String>> {
    let mut map: BTreeMap<Uuid, Vec<String>> = BTreeMap::new();
    for d in deliveries(pool).await {
        map.entry(d.event_id).or_default().push(d.subscription);
    }
    for subs in map.values_mut() {
        subs.sort();
    }
    map
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolled_back_publish_writes_nothing() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("audit", &["*"]), ("props", &["property.*"])]).await;
    let p = publisher();

    let mut tx = pool.begin().await.expect("begin");
    let one = p
        .publish(&mut tx, NewEvent::raw("property.created", json!({"id": 1})))
        .await
        .expect("publish");
    assert!(
        matches!(one, PublishOutcome::Published { deliveries: 2, .. }),
        "{one:?}"
    );
    let batch = p
        .publish_all(
            &mut tx,
            &[
                NewEvent::raw("property.updated", json!({"id": 1})),
                NewEvent::raw("deal.closed", json!({"id": 2})).dedupe_key("deal-2"),
            ],
        )
        .await
        .expect("publish_all");
    assert_eq!(batch.len(), 2);
    // Visible inside the transaction...
    let in_tx: i64 = sqlx::query_scalar("SELECT count(*) FROM pgbus.all_deliveries")
        .fetch_one(&mut *tx)
        .await
        .expect("count in tx");
    assert_eq!(in_tx, 2 + 2 + 1);
    tx.rollback().await.expect("rollback");

    // ... and gone after the rollback: no event, no delivery.
    assert_eq!(table_counts(pool).await, (0, 0, 2));

    // The dedupe key of the rolled-back event is free again.
    let again = p
        .publish(
            &mut pool.acquire().await.expect("conn"),
            NewEvent::raw("deal.closed", json!({"id": 2})).dedupe_key("deal-2"),
        )
        .await
        .expect("publish after rollback");
    assert!(
        matches!(again, PublishOutcome::Published { deliveries: 1, .. }),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_publish_is_delivered_with_its_metadata() {
    let db = db().await;
    let pool = db.pool();
    let journal = Journal::new();
    let handle = start(dispatcher(pool).subscribe(Subscription::raw(
        "audit",
        ["property.*"],
        journal.handler(),
    )))
    .await;

    let event = NewEvent::raw("property.created", json!({"id": 7, "title": "Casa"}))
        .subject("property/7")
        .key("property/7")
        .header("correlation_id", "c-1")
        .header("traceparent", "00-abc-def-01");
    let id = event.id();
    let mut tx = pool.begin().await.expect("begin");
    let outcome = Publisher::new("property-service")
        .expect("publisher")
        .publish(&mut tx, event)
        .await
        .expect("publish");
    assert_eq!(
        outcome,
        PublishOutcome::Published { id, deliveries: 1 },
        "outcome"
    );
    tx.commit().await.expect("commit");

    wait_until("the delivery", SOON, || async { journal.len() == 1 }).await;
    let call = journal.calls().remove(0);
    assert_eq!(call.event_id, id);
    assert_eq!(call.event_type, "property.created");
    assert_eq!(call.attempt, 1);
    assert_eq!(call.data, json!({"id": 7, "title": "Casa"}));
    assert_eq!(call.source, "property-service");
    assert_eq!(call.subject.as_deref(), Some("property/7"));
    assert_eq!(call.key.as_deref(), Some("property/7"));
    assert_eq!(
        call.headers,
        BTreeMap::from([
            ("correlation_id".to_owned(), "c-1".to_owned()),
            ("traceparent".to_owned(), "00-abc-def-01".to_owned()),
        ])
    );
    let (source, subject, key, headers): (
        String,
        Option<String>,
        Option<String>,
        serde_json::Value,
    ) = sqlx::query_as("SELECT source, subject, key, headers FROM pgbus.events WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("event row");
    assert_eq!(source, "property-service");
    assert_eq!(subject.as_deref(), Some("property/7"));
    assert_eq!(key.as_deref(), Some("property/7"));
    assert_eq!(
        headers,
        json!({"correlation_id": "c-1", "traceparent": "00-abc-def-01"})
    );
    wait_until("the done delivery to be deleted", SOON, || async {
        delivery_count(pool).await == 0
    })
    .await;
    stop(pool, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patterns_select_the_subscriptions_an_event_fans_out_to() {
    let db = db().await;
    let pool = db.pool();
    register(
        pool,
        &[
            ("exact", &["property.created"]),
            ("prefix", &["property.*"]),
            ("all", &["*"]),
            ("deals", &["deal.*"]),
            ("underscore", &["user_x.created"]),
            ("two", &["deal.closed_won", "property.*.added"]),
        ],
    )
    .await;
    let p = publisher();
    let mut conn = pool.acquire().await.expect("conn");
    let events = [
        NewEvent::raw("property.created", json!({})),
        NewEvent::raw("property.photo.added", json!({})),
        NewEvent::raw("property", json!({})),
        NewEvent::raw("deal.closed_won", json!({})),
        // `_` is a literal in patterns, not LIKE's single-character wildcard.
        NewEvent::raw("userAx.created", json!({})),
        NewEvent::raw("user_x.created", json!({})),
        NewEvent::raw("other", json!({})),
    ];
    let outcomes = p.publish_all(&mut conn, &events).await.expect("publish");
    let expected: [&[&str]; 7] = [
        &["all", "exact", "prefix"],
        &["all", "prefix", "two"],
        &["all"],
        &["all", "deals", "two"],
        &["all"],
        &["all", "underscore"],
        &["all"],
    ];
    let fan = fan_out(pool).await;
    for ((event, outcome), want) in events.iter().zip(&outcomes).zip(expected) {
        assert_eq!(
            *outcome,
            PublishOutcome::Published {
                id: event.id(),
                deliveries: want.len() as u32
            },
            "outcome for {}",
            event.event_type()
        );
        let have: Vec<&str> = fan
            .get(&event.id())
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(have, want, "subscriptions of {}", event.event_type());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_before_a_subscription_existed_are_not_delivered_to_it() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("old", &["order.*"])]).await;
    let p = publisher();
    let before = NewEvent::raw("order.placed", json!({"n": 1}));
    let before_id = before.id();
    let outcome = p
        .publish(&mut pool.acquire().await.expect("conn"), before)
        .await
        .expect("publish before");
    assert!(
        matches!(outcome, PublishOutcome::Published { deliveries: 1, .. }),
        "{outcome:?}"
    );

    let old = Journal::new();
    let new = Journal::new();
    let handle = start(
        dispatcher(pool)
            .subscribe(Subscription::raw("old", ["order.*"], old.handler()))
            .subscribe(Subscription::raw("new", ["order.*"], new.handler())),
    )
    .await;
    let after = NewEvent::raw("order.placed", json!({"n": 2}));
    let after_id = after.id();
    let outcome = p
        .publish(&mut pool.acquire().await.expect("conn"), after)
        .await
        .expect("publish after");
    assert!(
        matches!(outcome, PublishOutcome::Published { deliveries: 2, .. }),
        "{outcome:?}"
    );

    wait_until(
        "both events delivered to `old`, the second to `new`",
        SOON,
        || async { old.len() == 2 && new.len() == 1 },
    )
    .await;
    wait_until("the queue to drain", SOON, || async {
        delivery_count(pool).await == 0
    })
    .await;
    stop(pool, handle).await;

    let mut want = vec![before_id, after_id];
    want.sort();
    assert_eq!(old.sorted_event_ids(), want);
    let new_events: Vec<Uuid> = new.calls().iter().map(|c| c.event_id).collect();
    assert_eq!(new_events, vec![after_id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_dedupe_key_is_a_duplicate_and_writes_nothing() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("all", &["*"])]).await;
    let p = publisher();
    let mut conn = pool.acquire().await.expect("conn");

    let first = NewEvent::raw("payment.received", json!({"amount": 10})).dedupe_key("stripe:evt_1");
    let first_id = first.id();
    let outcome = p.publish(&mut conn, first).await.expect("first publish");
    assert_eq!(
        outcome,
        PublishOutcome::Published {
            id: first_id,
            deliveries: 1
        }
    );
    let counts = table_counts(pool).await;

    let second =
        NewEvent::raw("payment.received", json!({"amount": 99})).dedupe_key("stripe:evt_1");
    assert_ne!(second.id(), first_id);
    let outcome = p.publish(&mut conn, second).await.expect("second publish");
    assert_eq!(outcome, PublishOutcome::Duplicate { id: first_id });
    assert!(outcome.is_duplicate());
    assert_eq!(outcome.id(), first_id);
    assert_eq!(table_counts(pool).await, counts, "a duplicate wrote rows");
    let amount: serde_json::Value =
        sqlx::query_scalar("SELECT data FROM pgbus.events WHERE dedupe_key = 'stripe:evt_1'")
            .fetch_one(pool)
            .await
            .expect("event");
    assert_eq!(
        amount,
        json!({"amount": 10}),
        "the original event was changed"
    );

    // Within one batch: the first of each key wins, later ones (and ones already stored)
    // are duplicates of it.
    let batch = [
        NewEvent::raw("payment.received", json!({"n": 1})).dedupe_key("k-a"),
        NewEvent::raw("payment.received", json!({"n": 2})).dedupe_key("k-a"),
        NewEvent::raw("payment.received", json!({"n": 3})).dedupe_key("k-b"),
        NewEvent::raw("payment.received", json!({"n": 4})).dedupe_key("stripe:evt_1"),
        NewEvent::raw("payment.received", json!({"n": 5})),
        NewEvent::raw("payment.received", json!({"n": 6})).dedupe_key("k-b"),
    ];
    let outcomes = p.publish_all(&mut conn, &batch).await.expect("batch");
    assert_eq!(
        outcomes,
        vec![
            PublishOutcome::Published {
                id: batch[0].id(),
                deliveries: 1
            },
            PublishOutcome::Duplicate { id: batch[0].id() },
            PublishOutcome::Published {
                id: batch[2].id(),
                deliveries: 1
            },
            PublishOutcome::Duplicate { id: first_id },
            PublishOutcome::Published {
                id: batch[4].id(),
                deliveries: 1
            },
            PublishOutcome::Duplicate { id: batch[2].id() },
        ]
    );
    assert_eq!(
        table_counts(pool).await,
        (counts.0 + 3, counts.1 + 3, counts.2),
        "only the three new events were written"
    );
    for dup in [1, 3, 5] {
        assert_eq!(
            count(
                pool,
                &format!(
                    "SELECT count(*) FROM pgbus.events WHERE id = '{}'",
                    batch[dup].id()
                )
            )
            .await,
            0,
            "duplicate #{dup} was written"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_with_new_patterns_changes_what_a_subscription_receives() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("moving", &["old.*"])]).await;
    register(pool, &[("moving", &["new.*", "extra.one"])]).await;
    let patterns: Vec<String> =
        sqlx::query_scalar("SELECT patterns FROM pgbus.subscriptions WHERE name = 'moving'")
            .fetch_one(pool)
            .await
            .expect("patterns");
    assert_eq!(patterns, vec!["new.*", "extra.one"]);
    let events = [
        NewEvent::raw("old.thing", json!({})),
        NewEvent::raw("new.thing", json!({})),
        NewEvent::raw("extra.one", json!({})),
    ];
    let outcomes = publisher()
        .publish_all(&mut pool.acquire().await.expect("conn"), &events)
        .await
        .expect("publish");
    let counts: Vec<u32> = outcomes
        .iter()
        .map(|o| match o {
            PublishOutcome::Published { deliveries, .. } => *deliveries,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(counts, vec![0, 1, 1]);
    assert_eq!(
        count(pool, "SELECT count(*) FROM pgbus.subscriptions").await,
        1
    );
}
