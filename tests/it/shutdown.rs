//! Graceful shutdown: running handlers finish, queued deliveries are given back
//! uncounted, handlers past the deadline are interrupted; nothing stays running.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pgbus::Subscription;
use tokio::time::Instant;

use crate::support::database::db;
use crate::support::deliveries::{deliveries, delivery_count, delivery_count_in};
use crate::support::dispatcher::{dispatcher, start, stop};
use crate::support::journal::Journal;
use crate::support::publishing::publish_n;
use crate::support::states::{PENDING, RUNNING};
use crate::support::wait::{SOON, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_running_handlers_and_gives_back_queued_ones() {
    let db = db().await;
    let pool = db.pool();
    let journal = Journal::new();
    let finished: Arc<Mutex<Vec<i64>>> = Arc::default();
    let finished_in_handler = finished.clone();
    let handle = start(
        dispatcher(pool)
            .shutdown_timeout(Duration::from_secs(10))
            .subscribe(
                Subscription::raw(
                    "slow",
                    ["task.*"],
                    journal.handler_with(move |d| {
                        let finished = finished_in_handler.clone();
                        async move {
                            tokio::time::sleep(Duration::from_millis(700)).await;
                            finished.lock().unwrap().push(d.id);
                            Ok(())
                        }
                    }),
                )
                .concurrency(2),
            ),
    )
    .await;
    publish_n(pool, "task.created", 6).await;
    wait_until("two handlers running and all six claimed", SOON, || async {
        journal.len() == 2 && delivery_count_in(pool, &[RUNNING]).await == 6
    })
    .await;
    assert_eq!(
        handle.in_flight(),
        6,
        "claimed deliveries held by the dispatcher"
    );

    let report = stop(pool, handle).await;
    assert!(report.finished_in_time, "{report:?}");
    assert_eq!(report.released, 4, "{report:?}");

    // The two running handlers finished: their deliveries are gone.
    assert_eq!(
        journal.len(),
        2,
        "a queued delivery started during shutdown"
    );
    let ran: HashSet<i64> = journal.calls().iter().map(|c| c.delivery_id).collect();
    let done: HashSet<i64> = finished.lock().unwrap().iter().copied().collect();
    assert_eq!(done, ran, "running handlers were not let finish");
    let rows = deliveries(pool).await;
    assert_eq!(rows.len(), 4, "{rows:#?}");
    for row in &rows {
        assert!(
            !ran.contains(&row.id),
            "a finished delivery is still there: {row:?}"
        );
        // Queued, never started: pending, attempt not counted, no error.
        assert_eq!((row.state, row.attempts), (PENDING, 0), "{row:?}");
        assert_eq!(row.last_error, None);
    }
    assert_eq!(delivery_count_in(pool, &[RUNNING]).await, 0);

    // A new dispatcher picks the given-back ones up as first attempts.
    let again = Journal::new();
    let handle =
        start(dispatcher(pool).subscribe(Subscription::raw("slow", ["task.*"], again.handler())))
            .await;
    wait_until("the released deliveries to be delivered", SOON, || async {
        delivery_count(pool).await == 0
    })
    .await;
    stop(pool, handle).await;
    assert_eq!(again.len(), 4);
    assert!(
        again.calls().iter().all(|c| c.attempt == 1),
        "{:?}",
        again.calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_deadline_interrupts_handlers_and_counts_their_attempt() {
    let db = db().await;
    let pool = db.pool();
    let journal = Journal::new();
    let completed = Arc::new(AtomicBool::new(false));
    let completed_in_handler = completed.clone();
    let handle = start(
        dispatcher(pool)
            .shutdown_timeout(Duration::from_millis(300))
            .subscribe(
                Subscription::raw(
                    "stubborn",
                    ["task.*"],
                    journal.handler_with(move |_| {
                        let completed = completed_in_handler.clone();
                        async move {
                            // Ignores the shutdown.
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            completed.store(true, Ordering::SeqCst);
                            Ok(())
                        }
                    }),
                )
                .concurrency(1),
            ),
    )
    .await;
    let ids = publish_n(pool, "task.created", 2).await;
    wait_until("one handler running, both claimed", SOON, || async {
        journal.len() == 1 && delivery_count_in(pool, &[RUNNING]).await == 2
    })
    .await;
    let running = journal.calls()[0].delivery_id;

    let started = Instant::now();
    let report = stop(pool, handle).await;
    let took = started.elapsed();
    assert!(!report.finished_in_time, "{report:?}");
    assert_eq!(report.released, 2, "{report:?}");
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
    assert!(!completed.load(Ordering::SeqCst));

    let rows = deliveries(pool).await;
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| ids.contains(&r.event_id)));
    for row in rows {
        assert_ne!(row.state, RUNNING);
        if row.id == running {
            // Interrupted: its attempt counts.
            assert_eq!((row.state, row.attempts), (PENDING, 1), "{row:?}");
            assert_eq!(
                row.last_error.as_deref(),
                Some("interrupted by dispatcher shutdown")
            );
        } else {
            // Queued: given back uncounted.
            assert_eq!((row.state, row.attempts), (PENDING, 0), "{row:?}");
            assert_eq!(row.last_error, None);
        }
    }
    assert_eq!(journal.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_token_stops_the_dispatcher() {
    let db = db().await;
    let pool = db.pool();
    let journal = Journal::new();
    let handle =
        start(dispatcher(pool).subscribe(Subscription::raw("t", ["task.*"], journal.handler())))
            .await;
    publish_n(pool, "task.created", 3).await;
    wait_until("three deliveries", SOON, || async { journal.len() == 3 }).await;
    let token = handle.token();
    token.cancel();
    let report = tokio::time::timeout(Duration::from_secs(10), handle.stopped())
        .await
        .expect("stopped() did not return")
        .expect("shutdown");
    assert!(report.finished_in_time);
    assert_eq!(delivery_count_in(pool, &[RUNNING]).await, 0);

    // Stopped means stopped: a new event stays pending.
    publish_n(pool, "task.created", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(journal.len(), 3, "a stopped dispatcher handled an event");
    let rows = deliveries(pool).await;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].state, rows[0].attempts), (PENDING, 0));
}
