//! The delivery log: rows committed out of order are all read, exactly once; a slot is
//! truncated only once every lane read it and no open batch holds its rows, never under a
//! publisher still writing to it; a batch that stays open too long is detached into rows
//! with leases of their own.

use std::time::Duration;

use pgbus::{NewEvent, Publisher, Subscription};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::database::{count, db};
use crate::support::dispatcher::{dispatcher, register, start, stop};
use crate::support::journal::Journal;
use crate::support::publishing::{publish_n, publish_one};
use crate::support::wait::{SOON, wait_until};

fn publisher() -> Publisher {
    Publisher::new("log-tests").expect("publisher")
}

/// One step of the ring with a zero period: truncates what it may, then switches slot.
async fn rotate(pool: &PgPool) -> Vec<i16> {
    sqlx::query_scalar("SELECT pgbus.log_rotate('0 s', '50 ms')")
        .fetch_one(pool)
        .await
        .expect("rotating the delivery log")
}

/// Rows physically in the delivery log, read or not.
async fn log_rows(pool: &PgPool) -> i64 {
    count(pool, "SELECT count(*) FROM pgbus.delivery_log").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_that_commits_late_is_delivered_and_nothing_twice() {
    let db = db().await;
    let pool = db.pool();
    let journal = Journal::new();
    let handle =
        start(dispatcher(pool).subscribe(Subscription::raw("late", ["late.*"], journal.handler())))
            .await;
    // A publisher whose transaction stays open while later ones commit and are delivered.
    let mut slow = pool.begin().await.expect("begin");
    let late = NewEvent::raw("late.event", json!({"i": "late"}));
    let late_id = late.id();
    publisher().publish(&mut slow, late).await.expect("publish");
    let mut early = Vec::new();
    for i in 0..5 {
        early.push(publish_one(pool, NewEvent::raw("late.event", json!({ "i": i }))).await);
    }
    wait_until("the five committed events", SOON, || async {
        journal.len() == 5
    })
    .await;
    assert!(
        !journal.sorted_event_ids().contains(&late_id),
        "an uncommitted event was delivered"
    );
    slow.commit().await.expect("commit");
    wait_until("the late event", SOON, || async { journal.len() == 6 }).await;
    // And nothing more, however often the dispatcher claims meanwhile.
    for i in 5..10 {
        early.push(publish_one(pool, NewEvent::raw("late.event", json!({ "i": i }))).await);
    }
    wait_until("the last five", SOON, || async { journal.len() == 11 }).await;
    stop(pool, handle).await;
    let mut expected: Vec<Uuid> = early.into_iter().chain([late_id]).collect();
    expected.sort();
    assert_eq!(
        journal.sorted_event_ids(),
        expected,
        "each event exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_is_truncated_only_once_every_lane_read_it() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("fast", &["job.*"]), ("slow", &["job.*"])]).await;
    let fast = Journal::new();
    let handle =
        start(dispatcher(pool).subscribe(Subscription::raw("fast", ["job.*"], fast.handler())))
            .await;
    let ids = publish_n(pool, "job.run", 50).await;
    wait_until("fast to read every event", SOON, || async {
        fast.len() == 50
    })
    .await;
    // `slow` has no dispatcher: its lane is unread, so however often the ring turns, no
    // slot holding its rows is truncated.
    for _ in 0..6 {
        rotate(pool).await;
    }
    assert_eq!(log_rows(pool).await, 100, "both lanes' rows are kept");
    stop(pool, handle).await;

    let slow = Journal::new();
    let handle =
        start(dispatcher(pool).subscribe(Subscription::raw("slow", ["job.*"], slow.handler())))
            .await;
    wait_until("slow to read every event", SOON, || async {
        slow.len() == 50
    })
    .await;
    stop(pool, handle).await;
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(slow.sorted_event_ids(), expected);
    // Read by both: the slots go, whatever the ring's position.
    for _ in 0..5 {
        rotate(pool).await;
    }
    assert_eq!(log_rows(pool).await, 0, "every slot truncated once read");
    assert_eq!(
        count(pool, "SELECT count(*) FROM pgbus.all_deliveries").await,
        0
    );
}

/// Claims up to `n` rows of the lane `jobs` in a batch of its own, left open.
async fn claim_open_batch(pool: &PgPool, n: i32) -> i64 {
    count(
        pool,
        &format!("SELECT count(*) FROM pgbus.claim_log('jobs', {n}, 30, 0, pg_current_snapshot())"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_is_kept_while_an_open_batch_holds_its_rows() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("jobs", &["job.*"])]).await;
    // One pack of 30 rows, then 5 packs of one.
    let events = (0..30).map(|i| NewEvent::raw("job.run", json!({ "i": i })));
    let mut conn = pool.acquire().await.expect("connection");
    publisher()
        .publish_all(&mut conn, events)
        .await
        .expect("publish 30 at once");
    drop(conn);
    publish_n(pool, "job.run", 5).await;
    // Every row read, in two batches: the first ends inside the pack and is closed; the
    // second, still open, holds the pack's last 20 rows and the 5 others.
    assert_eq!(claim_open_batch(pool, 10).await, 10);
    sqlx::query("UPDATE pgbus.claims SET closed_at = now() WHERE closed_at IS NULL")
        .execute(pool)
        .await
        .expect("closing the first batch");
    assert_eq!(claim_open_batch(pool, 100).await, 25);
    for _ in 0..6 {
        rotate(pool).await;
    }
    assert_eq!(log_rows(pool).await, 35, "the open batch's slot is kept");
    sqlx::query("UPDATE pgbus.claims SET closed_at = now() WHERE closed_at IS NULL")
        .execute(pool)
        .await
        .expect("closing the second batch");
    for _ in 0..5 {
        rotate(pool).await;
    }
    assert_eq!(log_rows(pool).await, 0, "read and closed: truncated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_still_writing_to_a_slot_keeps_it_from_truncation() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("jobs", &["job.*"])]).await;
    // A REPEATABLE READ publisher: it read the ring (the current slot) before the switches.
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await
        .expect("repeatable read");
    let first = NewEvent::raw("job.run", json!({"i": "first"}));
    let first_id = first.id();
    publisher().publish(&mut tx, first).await.expect("publish");
    // The ring turns all the way round while it is open; its slot cannot be locked.
    for _ in 0..8 {
        rotate(pool).await;
    }
    // Its snapshot still shows the old ring: it writes to the same slot again.
    let second = NewEvent::raw("job.run", json!({"i": "second"}));
    let second_id = second.id();
    publisher().publish(&mut tx, second).await.expect("publish");
    tx.commit().await.expect("commit");
    for _ in 0..4 {
        rotate(pool).await;
    }
    assert_eq!(
        log_rows(pool).await,
        2,
        "nothing of the late publisher was truncated"
    );

    let journal = Journal::new();
    let handle =
        start(dispatcher(pool).subscribe(Subscription::raw("jobs", ["job.*"], journal.handler())))
            .await;
    wait_until("both events", SOON, || async { journal.len() == 2 }).await;
    stop(pool, handle).await;
    let mut expected = vec![first_id, second_id];
    expected.sort();
    assert_eq!(journal.sorted_event_ids(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_open_for_a_third_of_its_lease_is_detached() {
    let db = db().await;
    let pool = db.pool();
    let lease = Duration::from_secs(1);
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let journal = Journal::new();
    let handle = start(
        dispatcher(pool).subscribe(
            Subscription::raw("jobs", ["job.*"], {
                let gate = gate.clone();
                journal.handler_with(move |d| {
                    let gate = gate.clone();
                    async move {
                        if d.event.data["i"] == 0 {
                            gate.acquire().await.expect("gate").forget();
                        }
                        Ok(())
                    }
                })
            })
            .concurrency(4)
            .lease(lease),
        ),
    )
    .await;
    let ids = publish_n(pool, "job.run", 3).await;
    wait_until("the fast two to finish", SOON, || async {
        journal.len() == 3
    })
    .await;
    // Within about a third of the lease, the batch is closed and the slow delivery, alone,
    // runs under a lease of its own: a running row of pgbus.deliveries, extended while it
    // runs (its lease stays in the future for several lease lengths).
    wait_until("the batch to be detached", SOON, || async {
        count(
            pool,
            "SELECT count(*) FROM pgbus.claims WHERE closed_at IS NULL",
        )
        .await
            == 0
    })
    .await;
    let detached = |sql: &'static str| async move { count(pool, sql).await };
    assert_eq!(
        detached("SELECT count(*) FROM pgbus.deliveries WHERE state = 1 AND lease_id IS NOT NULL")
            .await,
        1
    );
    tokio::time::sleep(lease * 3).await;
    assert_eq!(
        detached("SELECT count(*) FROM pgbus.deliveries WHERE state = 1 AND run_at > now()").await,
        1,
        "the detached delivery's lease is extended"
    );
    gate.add_permits(1);
    wait_until("the slow delivery to be written", SOON, || async {
        count(pool, "SELECT count(*) FROM pgbus.all_deliveries").await == 0
    })
    .await;
    stop(pool, handle).await;
    assert_eq!(journal.len(), 3, "each ran once");
    let mut expected = ids;
    expected.sort();
    assert_eq!(journal.sorted_event_ids(), expected);
}
