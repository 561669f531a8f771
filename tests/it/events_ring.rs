//! The events ring (docs/storage/design.md §4.9): the dispatchers' retention turns it and
//! truncates whole slots past the retention; events something still refers to (a dead
//! letter, a delivery not due yet, a retained done row) move forward first and stay
//! deliverable and visible; an event id is unique within its slot only, dedupe keys across
//! the whole ring; a row that names a stale slot still gets its event.

use std::time::Duration;

use chrono::Utc;
use pgbus::admin::DeadLetterFilter;
use pgbus::{Admin, HandlerError, NewEvent, PublishOutcome, Publisher, Subscription};
use serde_json::json;
use uuid::Uuid;

use crate::support::database::{count, db};
use crate::support::dispatcher::{dispatcher, register, start, stop};
use crate::support::events_ring::{close_current_slot, current_slot, events_in};
use crate::support::journal::Journal;
use crate::support::publishing::publish_n;
use crate::support::wait::{SOON, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ring_turns_and_truncates_a_slot_past_the_retention() {
    let db = db().await;
    let pool = db.pool();
    let journal = Journal::new();
    let handle = start(
        dispatcher(pool)
            .event_retention(Some(Duration::from_secs(3)))
            .maintenance_interval(Duration::from_millis(100))
            .subscribe(Subscription::raw("ring.sub", ["ring.*"], journal.handler())),
    )
    .await;
    let first = current_slot(pool).await;
    publish_n(pool, "ring.ok", 5).await;
    assert_eq!(events_in(pool, first).await, 5);
    wait_until("the five delivered", SOON, || async { journal.len() == 5 }).await;
    // A slot per half second (a sixth of the retention); the first one is truncated once
    // it closed more than three seconds ago.
    wait_until("the first slot truncated", SOON, || async {
        events_in(pool, first).await == 0
    })
    .await;
    stop(pool, handle).await;
    assert!(
        count(pool, "SELECT max(generation) FROM pgbus.events_ring").await >= 6,
        "the ring turned"
    );
    assert_eq!(count(pool, "SELECT count(*) FROM pgbus.events").await, 0);
    assert_eq!(journal.len(), 5, "each delivered once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survivors_move_forward_and_stay_deliverable_and_visible() {
    let db = db().await;
    let pool = db.pool();
    let journal = Journal::new();
    let handler = journal.handler_with(|d| async move {
        match d.event.data["fail"].as_bool() {
            Some(true) => Err(HandlerError::permanent("marked to fail")),
            _ => Ok(()),
        }
    });
    let builder = dispatcher(pool)
        .retain_done(true)
        .done_retention(Duration::from_secs(3600))
        .event_retention(Some(Duration::from_secs(3600)))
        .maintenance_interval(Duration::from_millis(100))
        .subscribe(Subscription::raw("ring.sub", ["ring.*"], handler));
    register(pool, &[("ring.sub", &["ring.*"])]).await;
    let publisher = Publisher::new("ring-test").expect("publisher");
    let mut conn = pool.acquire().await.expect("a connection");
    let done = NewEvent::raw("ring.done", json!({ "fail": false }));
    let dead = NewEvent::raw("ring.dead", json!({ "fail": true }));
    // Not due for a while: pending in pgbus.deliveries when its slot is truncated.
    let later = NewEvent::raw("ring.later", json!({ "later": true }))
        .deliver_at(Utc::now() + chrono::Duration::seconds(4));
    let gone = NewEvent::raw("nobody.listens", json!({}));
    let ids: Vec<Uuid> = [&done, &dead, &later, &gone]
        .iter()
        .map(|e| e.id())
        .collect();
    for e in [done, dead, later, gone] {
        publisher.publish(&mut conn, e).await.expect("publishing");
    }
    drop(conn);
    let first = current_slot(pool).await;
    assert_eq!(events_in(pool, first).await, 4);

    let handle = start(builder).await;
    wait_until("the done and the dead letter", SOON, || async {
        journal.len() == 2
            && count(
                pool,
                "SELECT count(*) FROM pgbus.deliveries WHERE state >= 2",
            )
            .await
                == 2
    })
    .await;
    // The first slot closed two hours ago: past the retention of an hour.
    close_current_slot(pool, 7200.0).await;
    wait_until("the first slot truncated", SOON, || async {
        events_in(pool, first).await == 0
    })
    .await;
    let now = current_slot(pool).await;
    assert_ne!(now, first);
    assert_eq!(
        count(pool, "SELECT count(*) FROM pgbus.events").await,
        3,
        "the three survivors moved forward; the event nobody refers to is gone"
    );
    assert_eq!(
        count(
            pool,
            &format!("SELECT count(*) FROM pgbus.deliveries WHERE event_slot = {first}")
        )
        .await,
        0,
        "no row refers to the truncated slot"
    );

    wait_until("the delivery that was not due yet", SOON, || async {
        journal.len() == 3
    })
    .await;
    stop(pool, handle).await;
    let later_call = journal
        .calls()
        .into_iter()
        .find(|c| c.data["later"] == json!(true))
        .expect("the later event delivered");
    assert_eq!(later_call.attempt, 1);

    let admin = Admin::new(pool.clone());
    let letters = admin
        .dead_letters(&DeadLetterFilter::new(), 10, None)
        .await
        .expect("the dead letters");
    assert_eq!(letters.items.len(), 1);
    assert_eq!(letters.items[0].event_id, ids[1]);
    assert_eq!(letters.items[0].event_type.as_deref(), Some("ring.dead"));
    let done_id: i64 =
        sqlx::query_scalar("SELECT id FROM pgbus.deliveries WHERE event_id = $1 AND state = 2")
            .bind(ids[0])
            .fetch_one(pool)
            .await
            .expect("the retained done row");
    let detail = admin.delivery(done_id).await.expect("the done delivery");
    let event = detail.event.expect("its event, moved forward");
    assert_eq!(event.id, ids[0]);
}

#[tokio::test]
async fn an_event_id_is_unique_within_its_slot_and_a_dedupe_key_across_the_ring() {
    let db = db().await;
    let pool = db.pool();
    let publisher = Publisher::new("ring-ids").expect("publisher");
    let mut conn = pool.acquire().await.expect("a connection");
    let id = Uuid::now_v7();
    let with_id = || NewEvent::raw("ring.id", json!({})).with_id(id);
    publisher
        .publish(&mut conn, with_id())
        .await
        .expect("the first");
    assert!(
        publisher.publish(&mut conn, with_id()).await.is_err(),
        "the same id in the same slot is refused"
    );
    let keyed = || NewEvent::raw("ring.key", json!({})).dedupe_key("k-1");
    let original = match publisher.publish(&mut conn, keyed()).await.expect("keyed") {
        PublishOutcome::Published { id, .. } => id,
        other => panic!("expected a new event, got {other:?}"),
    };

    close_current_slot(pool, 0.0).await;
    // Documented (NewEvent::with_id): once publishing moved to another slot, the id is free
    // there; a dedupe key is not, in any slot.
    publisher
        .publish(&mut conn, with_id())
        .await
        .expect("the same id in another slot");
    assert_eq!(
        count(
            pool,
            "SELECT count(DISTINCT slot) FROM pgbus.events WHERE type = 'ring.id'"
        )
        .await,
        2
    );
    assert_eq!(
        publisher
            .publish(&mut conn, keyed())
            .await
            .expect("keyed again"),
        PublishOutcome::Duplicate { id: original }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_naming_a_stale_slot_still_gets_its_event() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("ring.sub", &["ring.*"])]).await;
    let publisher = Publisher::new("ring-stale").expect("publisher");
    let mut conn = pool.acquire().await.expect("a connection");
    let soon = Utc::now() + chrono::Duration::milliseconds(200);
    let event = NewEvent::raw("ring.stale", json!({ "n": 7 })).deliver_at(soon);
    let id = event.id();
    publisher
        .publish(&mut conn, event)
        .await
        .expect("publishing");
    drop(conn);
    // As a row copied from memory while the ring moved its event forward would be: it names
    // a slot that does not hold the event.
    let stale = (current_slot(pool).await + 3) % 8;
    sqlx::query("UPDATE pgbus.deliveries SET event_slot = $1")
        .bind(stale)
        .execute(pool)
        .await
        .expect("naming a stale slot");
    let journal = Journal::new();
    let handle = start(dispatcher(pool).subscribe(Subscription::raw(
        "ring.sub",
        ["ring.*"],
        journal.handler(),
    )))
    .await;
    wait_until("the delivery", SOON, || async { journal.len() == 1 }).await;
    stop(pool, handle).await;
    let call = journal.calls().remove(0);
    assert_eq!(call.event_id, id);
    assert_eq!(
        call.data,
        json!({ "n": 7 }),
        "the event found in its own slot"
    );
    assert_eq!(
        count(pool, "SELECT count(*) FROM pgbus.deliveries").await,
        0,
        "delivered, not dead"
    );
}
