//! Lease expiry: deliveries claimed by a worker that vanished are taken back, run alone,
//! and delivered; or dead when the lost attempt was their last.

use std::time::Duration;

use pgbus::Subscription;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::database::db;
use crate::support::deliveries::{deliveries, delivery_count, delivery_count_in};
use crate::support::dispatcher::{dispatcher, quick_retry, register, shutdown, start, stop};
use crate::support::journal::Journal;
use crate::support::publishing::{publish_events, publish_n, publish_n_as_rows};
use crate::support::states::{DEAD, DONE, RUNNING};
use crate::support::wait::{SOON, wait_until};

/// What a claim by a worker that then died leaves behind: running, attempt counted,
/// lease already expired.
async fn crash_claim(pool: &PgPool, extra_attempts: i32, event_ids: &[Uuid]) {
    let n = sqlx::query(
        "UPDATE pgbus.deliveries
         SET state = $1, attempts = attempts + 1 + $2, run_at = now() - interval '1 second'
         WHERE event_id = ANY($3)",
    )
    .bind(RUNNING)
    .bind(extra_attempts)
    .bind(event_ids)
    .execute(pool)
    .await
    .expect("simulating a crashed claim")
    .rows_affected();
    assert_eq!(n as usize, event_ids.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_leases_are_taken_back_and_delivered_one_at_a_time() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("jobs", &["job.*"])]).await;
    let crashed = publish_n_as_rows(pool, "job.run", 3).await;
    crash_claim(pool, 0, &crashed).await;

    let journal = Journal::new();
    let handle = start(
        dispatcher(pool).retain_done(true).subscribe(
            Subscription::raw(
                "jobs",
                ["job.*"],
                journal.handler_with(|_| async {
                    // Long enough for overlapping runs to show.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(())
                }),
            )
            .concurrency(8)
            .lease(Duration::from_secs(1))
            .retry(quick_retry().max_attempts(5)),
        ),
    )
    .await;
    wait_until(
        "the three taken-back deliveries to be done",
        SOON,
        || async { delivery_count_in(pool, &[DONE]).await == 3 },
    )
    .await;
    stop(pool, handle).await;

    let calls = journal.calls();
    let mut want = crashed.clone();
    want.sort();
    assert_eq!(
        journal.sorted_event_ids(),
        want,
        "each crashed delivery runs exactly once"
    );
    assert!(
        calls.iter().all(|c| c.attempt == 2),
        "the lost attempt counts: {calls:?}"
    );
    assert_eq!(
        journal.most_running(),
        1,
        "crash suspects must run alone, one at a time"
    );
    for row in deliveries(pool).await {
        assert_eq!((row.state, row.attempts), (DONE, 2), "{row:?}");
        let error = row.last_error.as_deref().unwrap_or_default();
        assert!(
            error.starts_with("lease expired during attempt 1 of 5"),
            "{row:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_on_the_last_attempt_is_dead_and_its_neighbours_are_delivered() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("jobs", &["job.*"])]).await;
    let ids = publish_n_as_rows(pool, "job.run", 3).await;
    // The first used its last attempt (2 of 2) when its worker died; the others their first.
    crash_claim(pool, 1, &ids[..1]).await;
    crash_claim(pool, 0, &ids[1..]).await;

    let journal = Journal::new();
    let handle = start(
        dispatcher(pool).retain_done(true).subscribe(
            Subscription::raw("jobs", ["job.*"], journal.handler())
                .lease(Duration::from_secs(1))
                .retry(quick_retry().max_attempts(2)),
        ),
    )
    .await;
    wait_until("one dead, two done", SOON, || async {
        delivery_count_in(pool, &[DEAD]).await == 1 && delivery_count_in(pool, &[DONE]).await == 2
    })
    .await;
    stop(pool, handle).await;

    let mut want = ids[1..].to_vec();
    want.sort();
    assert_eq!(
        journal.sorted_event_ids(),
        want,
        "the dead one must not run, the others once each"
    );
    for row in deliveries(pool).await {
        if row.event_id == ids[0] {
            assert_eq!((row.state, row.attempts), (DEAD, 2), "{row:?}");
            assert!(row.finished_at.is_some());
            let error = row.last_error.as_deref().unwrap_or_default();
            assert!(
                error.starts_with("lease expired during attempt 2 of 2"),
                "{row:?}"
            );
        } else {
            assert_eq!((row.state, row.attempts), (DONE, 2), "{row:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handler_keeps_its_lease() {
    let db = db().await;
    let pool = db.pool();
    let journal = Journal::new();
    let handle = start(
        dispatcher(pool).subscribe(
            Subscription::raw(
                "slow",
                ["job.*"],
                journal.handler_with(|_| async {
                    // Three lease lengths.
                    tokio::time::sleep(Duration::from_millis(3_000)).await;
                    Ok(())
                }),
            )
            .lease(Duration::from_secs(1)),
        ),
    )
    .await;
    publish_n(pool, "job.run", 1).await;
    wait_until("the delivery to be done", SOON, || async {
        delivery_count(pool).await == 0
    })
    .await;
    stop(pool, handle).await;
    let calls = journal.calls();
    assert_eq!(
        calls.len(),
        1,
        "a live, slow handler lost its lease: {calls:?}"
    );
    assert_eq!(calls[0].attempt, 1);
}

/// An outcome is written only under the lease it was claimed with: once another claim holds
/// the delivery (another lease id, attempt counted again), neither a success (delete) nor a
/// failure (retry update) of the first holder touches the row. Here for rows of
/// `pgbus.deliveries`, each under a lease of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_is_not_written_under_a_lease_taken_over_by_another_claim() {
    lost_lease_case(Leased::Rows).await;
}

/// The same for rows of the delivery log, under their batch's lease: once the batch was taken
/// back and its rows claimed by another worker, the first holder writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_is_not_written_under_a_batch_lease_taken_over() {
    lost_lease_case(Leased::Batch).await;
}

/// Where the deliveries of [`lost_lease_case`] live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leased {
    Rows,
    Batch,
}

async fn lost_lease_case(leased: Leased) {
    let db = db().await;
    let pool = db.pool();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let journal = Journal::new();
    let handle = start(
        dispatcher(pool).subscribe(
            Subscription::raw("jobs", ["job.*"], {
                let gate = gate.clone();
                journal.handler_with(move |d| {
                    let gate = gate.clone();
                    async move {
                        gate.acquire().await.expect("gate").forget();
                        if d.event.data["i"] == 0 {
                            Ok(())
                        } else {
                            Err(pgbus::HandlerError::retry("fails"))
                        }
                    }
                })
            })
            .retry(quick_retry())
            // Long enough that a slow machine never detaches the batch (a third of the
            // lease) before the simulated takeover below.
            .lease(std::time::Duration::from_secs(300)),
        ),
    )
    .await;
    match leased {
        Leased::Rows => {
            let soon = chrono::Utc::now() + chrono::Duration::milliseconds(100);
            let events: Vec<pgbus::NewEvent> = (0..2)
                .map(|i| {
                    pgbus::NewEvent::raw("job.run", serde_json::json!({ "i": i })).deliver_at(soon)
                })
                .collect();
            publish_events(pool, &events).await;
        }
        Leased::Batch => {
            publish_n(pool, "job.run", 2).await;
        }
    }
    wait_until("both handlers to start", SOON, || async {
        journal.len() == 2
    })
    .await;
    assert_eq!(
        delivery_count_in(pool, &[RUNNING]).await,
        2,
        "{:#?}",
        deliveries(pool).await
    );
    match leased {
        // What another worker's claim after a lost lease leaves: running, its own lease id.
        Leased::Rows => sqlx::query(
            "UPDATE pgbus.deliveries SET lease_id = -1, attempts = attempts + 1,
                    run_at = now() + interval '1 hour'",
        ),
        // The batch taken back (its rows now rows of pgbus.deliveries), then claimed again.
        Leased::Batch => sqlx::query(
            "WITH b AS (UPDATE pgbus.claims c SET closed_at = now(), taken_back = true
                        WHERE c.closed_at IS NULL RETURNING c.*)
             INSERT INTO pgbus.deliveries (id, event_id, subscription, state, priority, run_at,
                                           attempts, lease_id)
             OVERRIDING SYSTEM VALUE
             SELECT r.id, r.event_id, b.subscription, 1, b.priority, now() + interval '1 hour',
                    2, -1
             FROM b CROSS JOIN LATERAL pgbus.claim_rows(b::pgbus.claims) r",
        ),
    }
    .execute(pool)
    .await
    .expect("simulating a takeover");
    gate.add_permits(2);
    wait_until("both outcomes to be handled", SOON, || async {
        handle.in_flight() == 0
    })
    .await;
    let rows = deliveries(pool).await;
    assert_eq!(rows.len(), 2, "a stale success deleted the row: {rows:#?}");
    for row in &rows {
        assert_eq!((row.state, row.attempts), (RUNNING, 2), "{row:?}");
        assert_eq!(row.last_error, None, "a stale failure was written: {row:?}");
    }
    let leases: Vec<i64> = sqlx::query_scalar("SELECT lease_id FROM pgbus.deliveries")
        .fetch_all(pool)
        .await
        .expect("lease ids");
    assert_eq!(leases, vec![-1, -1]);
    let report = shutdown(handle).await;
    assert_eq!(report.released, 0);
}
