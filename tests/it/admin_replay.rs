//! The admin API's replay and redelivery: a backfill in bounded batches that never creates a
//! second delivery for an (event, subscription), even with replays running at once; filters
//! by time, type and subject; redelivery of one event; bad input refused without writing.

use chrono::Utc;
use pgbus::admin::{Redelivery, Replay, TimeRange};
use pgbus::{Admin, DeliveryState, Error, NewEvent, Subscription};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::database::{count, db, table_counts};
use crate::support::deliveries::delivery_count_in;
use crate::support::dispatcher::{dispatcher, register, start, stop};
use crate::support::journal::Journal;
use crate::support::publishing::{publish_events, publish_n};
use crate::support::states::DONE;
use crate::support::wait::{SOON, wait_until};

/// (deliveries, distinct events) of `subscription`.
async fn deliveries_of(pool: &PgPool, subscription: &str) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*), count(DISTINCT event_id) FROM pgbus.all_deliveries WHERE subscription = $1",
    )
    .bind(subscription)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_backfill_runs_in_batches_and_never_duplicates_a_delivery() {
    let db = db().await;
    let pool = db.pool();
    let admin = Admin::new(pool.clone());
    // Before the subscription exists: 25 orders placed, 5 cancelled, 4 payments.
    publish_n(pool, "order.placed", 25).await;
    publish_n(pool, "order.cancelled", 5).await;
    publish_n(pool, "payment.received", 4).await;
    register(pool, &[("audit.orders", &["order.*"])]).await;
    // After: 3 more, delivered by publishing.
    publish_n(pool, "order.placed", 3).await;
    assert_eq!(deliveries_of(pool, "audit.orders").await, (3, 3));

    let mut seen = Vec::new();
    let report = admin
        .replay_with_progress(&Replay::new("audit.orders").batch_size(7), |r| {
            seen.push(*r)
        })
        .await
        .expect("replay");
    // 37 events examined (all of them), 30 deliveries created (not the payments, not the 3).
    assert_eq!((report.examined, report.created), (37, 30));
    assert_eq!(report.batches, 6, "ceil(37 / 7) batches");
    assert_eq!(seen.len(), 6);
    assert_eq!(seen.last(), Some(&report));
    assert!(seen.windows(2).all(|w| w[0].examined < w[1].examined));
    assert_eq!(deliveries_of(pool, "audit.orders").await, (33, 33));
    let due_now = count(
        pool,
        "SELECT count(*) FROM pgbus.all_deliveries
         WHERE subscription = 'audit.orders' AND state = 0 AND run_at <= now()",
    )
    .await;
    assert_eq!(due_now, 33);

    // Again: nothing is missing, nothing is created.
    let again = admin.replay(&Replay::new("audit.orders")).await.unwrap();
    assert_eq!((again.examined, again.created), (37, 0));
    assert_eq!(deliveries_of(pool, "audit.orders").await, (33, 33));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_running_at_once_create_each_delivery_once() {
    let db = db().await;
    let pool = db.pool();
    let admin = Admin::new(pool.clone());
    publish_n(pool, "order.placed", 300).await;
    register(pool, &[("audit.orders", &["order.*"])]).await;
    let replay = Replay::new("audit.orders").batch_size(16);
    let (a, b, c) = tokio::join!(
        admin.replay(&replay),
        admin.replay(&replay),
        admin.replay(&replay)
    );
    let created = a.unwrap().created + b.unwrap().created + c.unwrap().created;
    assert_eq!(created, 300);
    assert_eq!(deliveries_of(pool, "audit.orders").await, (300, 300));
}

#[tokio::test]
async fn a_replay_filters_by_time_type_and_subject() {
    let db = db().await;
    let pool = db.pool();
    let admin = Admin::new(pool.clone());
    let subject = |i: usize| NewEvent::raw("deal.updated", json!({ "i": i })).subject("deal/7");
    publish_events(pool, &[subject(0), subject(1)]).await;
    publish_n(pool, "deal.closed_won", 2).await;
    let middle = Utc::now();
    publish_events(pool, &[subject(2)]).await;
    publish_n(pool, "deal.closed_won", 3).await;
    register(
        pool,
        &[("a", &["deal.*"]), ("b", &["deal.*"]), ("c", &["deal.*"])],
    )
    .await;

    let by_subject = admin
        .replay(&Replay::new("a").subject("deal/7"))
        .await
        .unwrap();
    assert_eq!((by_subject.examined, by_subject.created), (3, 3));
    let by_type = admin
        .replay(&Replay::new("b").types(["deal.closed_won"]))
        .await
        .unwrap();
    assert_eq!(by_type.created, 5);
    let by_time = admin
        .replay(&Replay::new("c").created(TimeRange::since(middle)))
        .await
        .unwrap();
    assert_eq!(by_time.created, 4);
    assert_eq!(deliveries_of(pool, "a").await, (3, 3));
    assert_eq!(deliveries_of(pool, "b").await, (5, 5));
    assert_eq!(deliveries_of(pool, "c").await, (4, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivery_creates_requeues_or_leaves_a_delivery_on_its_way() {
    let db = db().await;
    let pool = db.pool();
    let admin = Admin::new(pool.clone());
    let journal = Journal::new();
    let handle = start(
        dispatcher(pool)
            .retain_done(true)
            .subscribe(Subscription::raw(
                "crm.sync",
                ["contact.*"],
                journal.handler(),
            )),
    )
    .await;
    let ids = publish_n(pool, "contact.created", 1).await;
    wait_until("the delivery to be done", SOON, || async {
        delivery_count_in(pool, &[DONE]).await == 1
    })
    .await;
    stop(pool, handle).await;
    let done_id = count(pool, "SELECT id FROM pgbus.deliveries").await;

    let again = admin.redeliver(ids[0], "crm.sync").await.unwrap();
    assert_eq!(
        again,
        Redelivery::Requeued {
            id: done_id,
            was: DeliveryState::Done
        }
    );
    let on_its_way = admin.redeliver(ids[0], "crm.sync").await.unwrap();
    assert_eq!(
        on_its_way,
        Redelivery::AlreadyQueued {
            id: done_id,
            state: DeliveryState::Pending
        }
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM pgbus.deliveries WHERE attempts = 0 AND state = 0"
        )
        .await,
        1
    );

    // An event published before the subscription existed: created.
    register(pool, &[("late", &["other.*"])]).await;
    let created = admin.redeliver(ids[0], "late").await.unwrap();
    assert!(matches!(created, Redelivery::Created { .. }), "{created:?}");
    assert_eq!(deliveries_of(pool, "late").await, (1, 1));

    let before = table_counts(pool).await;
    assert!(matches!(
        admin.redeliver(Uuid::now_v7(), "late").await,
        Err(Error::UnknownEvent(_))
    ));
    assert!(matches!(
        admin.redeliver(ids[0], "ghost").await,
        Err(Error::UnknownSubscription(_))
    ));
    assert_eq!(table_counts(pool).await, before);
}

#[tokio::test]
async fn bad_replays_are_refused_before_anything_is_written() {
    let db = db().await;
    let pool = db.pool();
    let admin = Admin::new(pool.clone());
    publish_n(pool, "order.placed", 3).await;
    register(pool, &[("audit.orders", &["order.*"])]).await;
    let before = table_counts(pool).await;
    let now = Utc::now();
    for (replay, what) in [
        (Replay::new("audit.orders").batch_size(0), "batch 0"),
        (
            Replay::new("audit.orders").batch_size(50_001),
            "batch too big",
        ),
        (
            Replay::new("audit.orders").created(TimeRange::between(now, now)),
            "empty range",
        ),
        (Replay::new("audit.orders").types(["bad..type"]), "bad type"),
        (Replay::new("ghost"), "unknown subscription"),
    ] {
        let result = admin.replay(&replay).await;
        let expected = match what {
            "batch 0" | "batch too big" => matches!(result, Err(Error::OutOfRange { .. })),
            "empty range" => matches!(result, Err(Error::InvalidTimeRange { .. })),
            "bad type" => matches!(result, Err(Error::InvalidEventType { .. })),
            _ => matches!(result, Err(Error::UnknownSubscription(_))),
        };
        assert!(expected, "{what}: {result:?}");
    }
    assert_eq!(table_counts(pool).await, before);
}
