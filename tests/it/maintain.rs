//! Retention pruning: fully delivered old events and old done deliveries go; events that
//! still have a pending, running or dead delivery stay (moved forward in the events ring).

use std::time::Duration;

use async_trait::async_trait;
use pgbus::{Delivery, Dispatcher, HandlerError, NewEvent, Publisher, RawHandler, Subscription};
use serde_json::json;

use crate::support::database::{count, db};
use crate::support::deliveries::delivery_count_in;
use crate::support::events_ring::close_current_slot;
use crate::support::states::{DEAD, DONE};
use crate::support::wait::wait_until;

struct FailMarked;

#[async_trait]
impl RawHandler for FailMarked {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        if delivery.event.data["fail"] == json!(true) {
            return Err(HandlerError::permanent("marked to fail"));
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prunes_old_delivered_events_and_done_rows_only() {
    let db = db().await;
    let pool = db.pool();
    let builder = || {
        Dispatcher::builder(pool.clone())
            .subscribe(Subscription::raw("prune.sub", ["prune.*"], FailMarked))
            .poll_interval(Duration::from_millis(50))
            .retain_done(true)
            .event_retention(Some(Duration::from_secs(3600)))
            .done_retention(Duration::from_secs(3600))
            .maintenance_interval(Duration::from_millis(100))
    };
    // Register the subscription, then publish: 3 that succeed, 1 that ends dead.
    builder()
        .build()
        .unwrap()
        .start()
        .await
        .unwrap()
        .shutdown()
        .await
        .unwrap();
    let publisher = Publisher::new("prune-test").unwrap();
    let mut conn = pool.acquire().await.unwrap();
    for i in 0..3 {
        publisher
            .publish(&mut conn, NewEvent::raw("prune.ok", json!({ "i": i })))
            .await
            .unwrap();
    }
    publisher
        .publish(
            &mut conn,
            NewEvent::raw("prune.bad", json!({ "fail": true })),
        )
        .await
        .unwrap();
    // And one event no subscription matches (no delivery at all).
    publisher
        .publish(&mut conn, NewEvent::raw("other.thing", json!({})))
        .await
        .unwrap();

    let handle = builder().build().unwrap().start().await.unwrap();
    wait_until(
        "all deliveries to finish",
        Duration::from_secs(20),
        || async { delivery_count_in(pool, &[DONE, DEAD]).await == 4 },
    )
    .await;
    // Nothing is old yet: nothing pruned.
    assert_eq!(count(pool, "SELECT count(*) FROM pgbus.events").await, 5);

    // Age everything past retention: the done rows first (else they would keep their events
    // alive into the next slot), then the events ring's slot.
    sqlx::query("UPDATE pgbus.deliveries SET finished_at = now() - interval '2 hours'")
        .execute(pool)
        .await
        .unwrap();
    wait_until(
        "the old done rows to be pruned",
        Duration::from_secs(20),
        || async { delivery_count_in(pool, &[DONE]).await == 0 },
    )
    .await;
    close_current_slot(pool, 7200.0).await;
    wait_until(
        "old delivered events to be pruned",
        Duration::from_secs(20),
        || async { count(pool, "SELECT count(*) FROM pgbus.events").await == 1 },
    )
    .await;
    handle.shutdown().await.unwrap();

    // The dead delivery and its event stay; done rows are gone.
    assert_eq!(delivery_count_in(pool, &[DEAD]).await, 1);
    assert_eq!(delivery_count_in(pool, &[DONE]).await, 0);
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM pgbus.events WHERE type = 'prune.bad'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn maintenance_interval_zero_is_refused() {
    let db = db().await;
    let err = Dispatcher::builder(db.pool().clone())
        .subscribe(Subscription::raw("prune.cfg", ["*"], FailMarked))
        .maintenance_interval(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            pgbus::Error::Config {
                field: "maintenance_interval",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatcher_vacuums_deliveries_once_dead_tuples_pile_up() {
    let db = db().await;
    let pool = db.pool();
    // Autovacuum off for the table, so that only the dispatcher can vacuum it (under load,
    // autovacuum sometimes got there first and left the dispatcher nothing to do).
    sqlx::query("ALTER TABLE pgbus.deliveries SET (autovacuum_enabled = false)")
        .execute(pool)
        .await
        .unwrap();
    // 60,000 dead tuples: rows inserted and deleted.
    sqlx::query(
        "INSERT INTO pgbus.deliveries (event_id, subscription)
         SELECT gen_random_uuid(), 'vacuum.sub' FROM generate_series(1, 60000)",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("DELETE FROM pgbus.deliveries")
        .execute(pool)
        .await
        .unwrap();
    let vacuumed = || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables
             WHERE schemaname = 'pgbus' AND relname = 'deliveries'",
        )
        .fetch_one(pool)
        .await
        .unwrap()
    };
    assert!(!vacuumed().await, "nobody vacuumed the table yet");
    let handle = Dispatcher::builder(pool.clone())
        .subscribe(Subscription::raw("vacuum.sub", ["vacuum.*"], FailMarked))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    wait_until(
        "the dispatcher to vacuum pgbus.deliveries",
        Duration::from_secs(30),
        vacuumed,
    )
    .await;
    handle.shutdown().await.unwrap();
}
