//! The ring of `pgbus.claims`: partitions that publishing has left are truncated once no
//! batch in them is open and every lane's cursor was copied out of them, and a lane whose
//! cursor moved reads on from where it was, never twice.

use pgbus::Subscription;

use crate::support::database::{count, db};
use crate::support::dispatcher::{dispatcher, start, stop};
use crate::support::journal::Journal;
use crate::support::publishing::publish_n;
use crate::support::ring::{step, turn};
use crate::support::wait::{SOON, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_are_truncated_and_every_lane_keeps_its_cursor() {
    let db = db().await;
    let pool = db.pool();
    let (busy, quiet) = (Journal::new(), Journal::new());
    let serve = |busy: &Journal, quiet: &Journal| {
        dispatcher(pool)
            .batch_size(5)
            .subscribe(Subscription::raw("busy", ["job.*"], busy.handler()))
            .subscribe(Subscription::raw("quiet", ["job.*"], quiet.handler()))
    };
    let handle = start(serve(&busy, &quiet)).await;
    let mut ids = publish_n(pool, "job.run", 40).await;
    wait_until("both subscriptions to read every event", SOON, || async {
        busy.len() == 40 && quiet.len() == 40
    })
    .await;
    stop(pool, handle).await;
    let batches = count(pool, "SELECT count(*) FROM pgbus.claims").await;
    assert!(batches >= 16, "batches of at most 5 rows, got {batches}");

    // The ring turns: every partition but the current one loses its rows, the cursors (one
    // per lane) being copied forward first. Nothing here is older than a minute, so only
    // truncation can have removed the rows.
    turn(pool, 8).await;
    assert_eq!(
        count(pool, "SELECT count(*) FROM pgbus.claims").await,
        2,
        "one cursor per lane is left"
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM pgbus.claims WHERE slot <> pgbus.log_slot()"
        )
        .await,
        0,
        "the cursors are in the current slot's partition"
    );
    assert_eq!(
        count(pool, "SELECT count(*) FROM pgbus.delivery_log").await,
        0
    );

    // Read on from the copied cursors: the new events once each, nothing of the old ones.
    let handle = start(serve(&busy, &quiet)).await;
    ids.extend(publish_n(pool, "job.run", 10).await);
    wait_until(
        "both subscriptions to read the new events",
        SOON,
        || async { busy.len() == 50 && quiet.len() == 50 },
    )
    .await;
    stop(pool, handle).await;
    ids.sort();
    assert_eq!(busy.sorted_event_ids(), ids, "busy: every event once");
    assert_eq!(quiet.sorted_event_ids(), ids, "quiet: every event once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_batch_keeps_its_partition() {
    let db = db().await;
    let pool = db.pool();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let journal = Journal::new();
    let handle = start(
        dispatcher(pool).subscribe(Subscription::raw("held", ["job.*"], {
            let gate = gate.clone();
            journal.handler_with(move |_| {
                let gate = gate.clone();
                async move {
                    gate.acquire().await.expect("gate").forget();
                    Ok(())
                }
            })
        })),
    )
    .await;
    publish_n(pool, "job.run", 3).await;
    wait_until("the batch to be claimed", SOON, || async {
        count(
            pool,
            "SELECT count(*) FROM pgbus.claims WHERE closed_at IS NULL",
        )
        .await
            == 1
    })
    .await;
    let slot: i16 = sqlx::query_scalar("SELECT slot FROM pgbus.claims WHERE closed_at IS NULL")
        .fetch_one(pool)
        .await
        .expect("open batch");
    for _ in 0..6 {
        step(pool).await;
    }
    assert_eq!(
        count(
            pool,
            &format!("SELECT count(*) FROM pgbus.claims_{slot} WHERE closed_at IS NULL")
        )
        .await,
        1,
        "the open batch is still there"
    );
    gate.add_permits(3);
    wait_until("the batch to be written", SOON, || async {
        journal.len() == 3 && count(pool, "SELECT count(*) FROM pgbus.all_deliveries").await == 0
    })
    .await;
    stop(pool, handle).await;
    turn(pool, 4).await;
    assert_eq!(
        count(pool, "SELECT count(*) FROM pgbus.claims").await,
        1,
        "closed, the batch's partition goes; its lane's cursor stays"
    );
}
