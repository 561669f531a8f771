//! Transactional handlers taken over: a delivery whose lease passed to another claim cannot
//! be completed by its old holder (its effect is rolled back), and a batch taken back never
//! runs its rows that committed again.

use std::sync::Arc;
use std::time::Duration;

use pgbus::{NewEvent, Subscription};
use serde_json::json;
use sqlx::PgPool;
use tokio::sync::Semaphore;

use crate::support::database::{count, db};
use crate::support::deliveries::delivery_count_not_in;
use crate::support::dispatcher::{dispatcher, quick_retry, register, start, stop};
use crate::support::publishing::{publish_events, publish_one};
use crate::support::states::DONE;
use crate::support::wait::{SOON, wait_until};
use crate::tx_handlers::{Effect, create_effects, effects};

/// Holds attempt 1 after its write, takes the delivery over under its feet with `steal`
/// (an expired lease, as a frozen worker's), waits until a claim took it back, then lets
/// attempt 1 go on: its completion must fail and take its write with it; the next attempt
/// writes the one effect.
async fn taken_over_attempt_cannot_complete(
    pool: &PgPool,
    event: fn() -> NewEvent,
    steal: &'static str,
    taken: &'static str,
) {
    create_effects(pool).await;
    let (entered, release) = (Arc::new(Semaphore::new(0)), Arc::new(Semaphore::new(0)));
    let handler = Effect {
        hold: Some((entered.clone(), release.clone())),
        ..Effect::default()
    };
    register(pool, &[("tx-stolen", &["tx.tick"])]).await;
    let handle = start(
        dispatcher(pool)
            .maintenance_interval(Duration::from_millis(200))
            .subscribe(
                Subscription::raw_tx("tx-stolen", ["tx.tick"], handler)
                    .lease(Duration::from_secs(30))
                    .retry(quick_retry()),
            ),
    )
    .await;
    publish_one(pool, event()).await;
    tokio::time::timeout(SOON, entered.acquire())
        .await
        .expect("attempt 1 to write its effect in time")
        .expect("entered gate")
        .forget();
    let stolen = sqlx::query(steal)
        .execute(pool)
        .await
        .expect("expiring the lease");
    assert_eq!(stolen.rows_affected(), 1, "{steal}");
    wait_until("a claim to take the delivery back", SOON, || async {
        count(pool, taken).await == 1
    })
    .await;
    release.add_permits(1);
    wait_until("the delivery done", SOON, || async {
        delivery_count_not_in(pool, &[DONE]).await == 0
            && count(pool, "SELECT count(*) FROM effects").await >= 1
    })
    .await;
    stop(pool, handle).await;
    let written = effects(pool).await;
    assert_eq!(written.len(), 1, "one effect: {written:?}");
    assert_eq!(written[0].1, 2, "the taken-over attempt 1 was rolled back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_taken_over_cannot_complete_and_its_effect_is_rolled_back() {
    let db = db().await;
    // Scheduled: a row of pgbus.deliveries with a lease of its own (made just before it is
    // published, so that it is still in the future then).
    let event = || {
        NewEvent::raw("tx.tick", json!({}))
            .deliver_at(chrono::Utc::now() + chrono::Duration::milliseconds(500))
    };
    taken_over_attempt_cannot_complete(
        db.pool(),
        event,
        "UPDATE pgbus.deliveries SET run_at = now() - interval '1 second' WHERE state = 1",
        "SELECT count(*) FROM pgbus.deliveries WHERE state = 0 AND solo",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_row_taken_over_cannot_complete_and_its_effect_is_rolled_back() {
    let db = db().await;
    // Due now: a row of the delivery log, in a batch whose lease is the claims row's.
    taken_over_attempt_cannot_complete(
        db.pool(),
        || NewEvent::raw("tx.tick", json!({})),
        "UPDATE pgbus.claims SET lease_until = now() - interval '1 second' WHERE closed_at IS NULL",
        "SELECT count(*) FROM pgbus.deliveries WHERE state = 0 AND solo",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_taken_back_never_runs_its_committed_rows_again() {
    let db = db().await;
    let pool = db.pool();
    create_effects(pool).await;
    let (entered, release) = (Arc::new(Semaphore::new(0)), Arc::new(Semaphore::new(0)));
    let handler = Effect {
        hold: Some((entered.clone(), release.clone())),
        only_marked: true,
        ..Effect::default()
    };
    register(pool, &[("tx-batch", &["tx.tick"])]).await;
    let done = NewEvent::raw("tx.tick", json!({}));
    let held = NewEvent::raw("tx.tick", json!({ "hold": true }));
    let (done_id, held_id) = (done.id(), held.id());
    // One transaction: both rows of the log, claimed in one batch.
    publish_events(pool, &[done, held]).await;
    let handle = start(
        dispatcher(pool)
            .maintenance_interval(Duration::from_millis(200))
            .subscribe(
                Subscription::raw_tx("tx-batch", ["tx.tick"], handler)
                    .lease(Duration::from_secs(30))
                    .retry(quick_retry()),
            ),
    )
    .await;
    tokio::time::timeout(SOON, entered.acquire())
        .await
        .expect("the held row's attempt 1 to write its effect in time")
        .expect("entered gate")
        .forget();
    let state_of = |event: uuid::Uuid| async move {
        sqlx::query_scalar::<_, Option<Vec<i16>>>(
            "SELECT array_agg(state ORDER BY state) FROM pgbus.all_deliveries WHERE event_id = $1",
        )
        .bind(event)
        .fetch_one(pool)
        .await
        .expect("the deliveries of an event")
        .unwrap_or_default()
    };
    wait_until(
        "the first row committed while its batch is open",
        SOON,
        || async { state_of(done_id).await == [2] },
    )
    .await;
    assert_eq!(
        state_of(held_id).await,
        [1],
        "the held row runs in the open batch"
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM pgbus.claims WHERE closed_at IS NULL"
        )
        .await,
        1
    );
    assert_eq!(
        count(pool, "SELECT count(*) FROM pgbus.log_unfinished()").await,
        1,
        "only the held row is unfinished"
    );

    // Taken back (its lease expired, as a frozen worker's): the sweep moves only the held row.
    sqlx::query(
        "UPDATE pgbus.claims SET lease_until = now() - interval '1 second' WHERE closed_at IS NULL",
    )
    .execute(pool)
    .await
    .expect("expiring the batch");
    wait_until("the held row taken back", SOON, || async {
        count(
            pool,
            "SELECT count(*) FROM pgbus.deliveries WHERE state = 0 AND solo",
        )
        .await
            == 1
    })
    .await;
    // Done, or its marker already deleted now that its batch is closed: never run again.
    let after = state_of(done_id).await;
    assert!(
        after == [2] || after.is_empty(),
        "the committed row: {after:?}"
    );
    release.add_permits(1);
    wait_until("every delivery done", SOON, || async {
        delivery_count_not_in(pool, &[DONE]).await == 0
            && count(pool, "SELECT count(*) FROM effects").await == 2
    })
    .await;
    stop(pool, handle).await;
    let by_event: Vec<(uuid::Uuid, i32)> =
        sqlx::query_as("SELECT event_id, attempt FROM effects ORDER BY attempt")
            .fetch_all(pool)
            .await
            .expect("reading effects");
    assert_eq!(by_event, [(done_id, 1), (held_id, 2)]);
}
