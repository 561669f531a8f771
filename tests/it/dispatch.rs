//! Dispatching: fan-out with independent outcomes, retained done rows, two dispatchers
//! sharing one subscription.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pgbus::{HandlerError, NewEvent, PublishOutcome, Publisher, Subscription};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;

use crate::support::database::{count, db};
use crate::support::deliveries::{deliveries, delivery_count, delivery_count_in, only_delivery};
use crate::support::dispatcher::{dispatcher, quick_retry, register, start, stop};
use crate::support::journal::Journal;
use crate::support::publishing::{publish_events, publish_n, publish_one};
use crate::support::states::{DEAD, DONE, RUNNING};
use crate::support::wait::{SOON, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_outcomes_are_independent_per_subscription() {
    let db = db().await;
    let pool = db.pool();
    let ok = Journal::new();
    let flaky = Journal::new();
    let broken = Journal::new();
    let handle = start(
        dispatcher(pool)
            .retain_done(true)
            .subscribe(Subscription::raw("ok", ["order.placed"], ok.handler()).retry(quick_retry()))
            .subscribe(
                Subscription::raw(
                    "flaky",
                    ["order.placed"],
                    flaky.handler_with(|d| async move {
                        if d.attempt == 1 {
                            Err(HandlerError::retry("flaky is down"))
                        } else {
                            Ok(())
                        }
                    }),
                )
                .retry(quick_retry()),
            )
            .subscribe(
                Subscription::raw(
                    "broken",
                    ["order.placed"],
                    broken.handler_with(|_| async {
                        Err(HandlerError::permanent("cannot handle orders"))
                    }),
                )
                .retry(quick_retry()),
            ),
    )
    .await;

    let event = NewEvent::raw("order.placed", json!({"order": 1}));
    let outcome = Publisher::new("orders")
        .expect("publisher")
        .publish(&mut pool.acquire().await.expect("conn"), event)
        .await
        .expect("publish");
    assert!(
        matches!(outcome, PublishOutcome::Published { deliveries: 3, .. }),
        "{outcome:?}"
    );

    wait_until("all three deliveries to finish", SOON, || async {
        delivery_count_in(pool, &[DONE, DEAD]).await == 3
    })
    .await;
    stop(pool, handle).await;

    let ok_row = only_delivery(pool, "ok").await;
    assert_eq!((ok_row.state, ok_row.attempts), (DONE, 1), "{ok_row:?}");
    assert_eq!(ok_row.last_error, None);
    assert_eq!(
        ok.len(),
        1,
        "the successful handler ran again: {:?}",
        ok.calls()
    );

    let flaky_row = only_delivery(pool, "flaky").await;
    assert_eq!(
        (flaky_row.state, flaky_row.attempts),
        (DONE, 2),
        "{flaky_row:?}"
    );
    assert_eq!(flaky_row.last_error.as_deref(), Some("flaky is down"));
    assert_eq!(flaky.attempts(), vec![1, 2]);

    let broken_row = only_delivery(pool, "broken").await;
    assert_eq!(
        (broken_row.state, broken_row.attempts),
        (DEAD, 1),
        "{broken_row:?}"
    );
    assert_eq!(
        broken_row.last_error.as_deref(),
        Some("permanent failure: cannot handle orders")
    );
    assert!(broken_row.finished_at.is_some());
    assert_eq!(broken.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_done_keeps_done_rows_in_state_done() {
    let db = db().await;
    let pool = db.pool();
    let journal = Journal::new();
    let handle = start(
        dispatcher(pool)
            .retain_done(true)
            .subscribe(Subscription::raw("keep", ["*"], journal.handler())),
    )
    .await;
    let events: Vec<NewEvent> = (0..20)
        .map(|i| NewEvent::raw("thing.done", json!({ "i": i })))
        .collect();
    publish_events(pool, &events).await;
    wait_until("20 done rows", SOON, || async {
        delivery_count_in(pool, &[DONE]).await == 20
    })
    .await;
    stop(pool, handle).await;
    let rows = deliveries(pool).await;
    assert_eq!(rows.len(), 20);
    for row in &rows {
        assert_eq!((row.state, row.attempts), (DONE, 1), "{row:?}");
        assert!(row.finished_at.is_some(), "{row:?}");
        assert_eq!(row.last_error, None);
    }
    assert_eq!(journal.len(), 20);
    assert_eq!(count(pool, "SELECT count(*) FROM pgbus.events").await, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dispatchers_on_one_database_deliver_each_delivery_exactly_once() {
    const EVENTS: usize = 2_000;
    let db = db().await;
    let pool = db.pool();
    let handled: Arc<Mutex<HashMap<i64, u32>>> = Arc::default();
    let per_dispatcher: [Arc<Mutex<usize>>; 2] = Default::default();

    let mut handles = Vec::new();
    let mut pools = Vec::new();
    for (n, mine) in per_dispatcher.iter().enumerate() {
        let own_pool = PgPoolOptions::new()
            .max_connections(5)
            .connect(db.url())
            .await
            .expect("separate pool");
        let handled = handled.clone();
        let mine = mine.clone();
        let journal = Journal::new();
        let handler = journal.handler_with(move |d| {
            let handled = handled.clone();
            let mine = mine.clone();
            async move {
                *handled.lock().unwrap().entry(d.id).or_default() += 1;
                *mine.lock().unwrap() += 1;
                // Slow enough that one dispatcher alone could not drain the queue before
                // the other joins in.
                tokio::time::sleep(Duration::from_millis(2)).await;
                Ok(())
            }
        });
        let handle = start(
            dispatcher(&own_pool)
                .batch_size(100)
                .subscribe(Subscription::raw("shared", ["job.*"], handler).concurrency(8)),
        )
        .await;
        handles.push((n, handle));
        pools.push(own_pool);
    }

    let publisher = Publisher::new("jobs").expect("publisher");
    let mut conn = pool.acquire().await.expect("conn");
    for chunk in 0..EVENTS / 500 {
        let events: Vec<NewEvent> = (0..500)
            .map(|i| NewEvent::raw("job.run", json!({ "n": chunk * 500 + i })))
            .collect();
        let outcomes = publisher
            .publish_all(&mut conn, &events)
            .await
            .expect("publish");
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, PublishOutcome::Published { deliveries: 1, .. }))
        );
    }
    drop(conn);

    wait_until(
        "every delivery handled and the queue empty",
        Duration::from_secs(90),
        || async {
            let done = handled.lock().unwrap().len();
            done == EVENTS && delivery_count(pool).await == 0
        },
    )
    .await;
    for (n, handle) in handles {
        let report = stop(pool, handle).await;
        assert_eq!(report.released, 0, "dispatcher {n}: {report:?}");
    }
    for own_pool in pools {
        own_pool.close().await;
    }

    let handled = handled.lock().unwrap().clone();
    let twice: Vec<(&i64, &u32)> = handled.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "handled more than once: {twice:?}");
    assert_eq!(handled.len(), EVENTS);
    let counts: Vec<usize> = per_dispatcher.iter().map(|c| *c.lock().unwrap()).collect();
    assert_eq!(counts.iter().sum::<usize>(), EVENTS);
    assert!(
        counts.iter().all(|&c| c > 0),
        "one dispatcher did all the work: {counts:?}"
    );
    assert_eq!(delivery_count(pool).await, 0);
    assert_eq!(
        count(pool, "SELECT count(*) FROM pgbus.events").await,
        EVENTS as i64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smaller_priority_runs_first() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("ordered", &["job.*"])]).await;
    // Published before the dispatcher starts, so that one claim sees them all.
    let priorities: [i16; 12] = [5, -3, 0, 7, -3, 2, 0, 9, -8, 1, 5, 0];
    let events: Vec<NewEvent> = priorities
        .iter()
        .enumerate()
        .map(|(i, p)| NewEvent::raw("job.run", json!({ "i": i })).priority(*p))
        .collect();
    publish_events(pool, &events).await;

    let journal = Journal::new();
    let handle = start(
        dispatcher(pool)
            .subscribe(Subscription::raw("ordered", ["job.*"], journal.handler()).concurrency(1)),
    )
    .await;
    wait_until("all delivered", SOON, || async {
        journal.len() == priorities.len()
    })
    .await;
    stop(pool, handle).await;

    let order: Vec<usize> = journal
        .calls()
        .iter()
        .map(|c| c.data["i"].as_u64().expect("i") as usize)
        .collect();
    let mut want: Vec<usize> = (0..priorities.len()).collect();
    // Priority first, then publish order (run_at, id).
    want.sort_by_key(|&i| (priorities[i], i));
    assert_eq!(
        order.iter().map(|&i| priorities[i]).collect::<Vec<_>>(),
        want.iter().map(|&i| priorities[i]).collect::<Vec<_>>(),
        "priorities in handling order"
    );
    assert_eq!(order, want, "events in handling order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_at_delays_the_first_attempt() {
    let db = db().await;
    let pool = db.pool();
    let journal = Journal::new();
    let handle =
        start(dispatcher(pool).subscribe(Subscription::raw("later", ["job.*"], journal.handler())))
            .await;
    let delay = Duration::from_millis(800);
    let published = tokio::time::Instant::now();
    let at = chrono::Utc::now() + chrono::Duration::from_std(delay).expect("delay");
    publish_one(pool, NewEvent::raw("job.later", json!({})).deliver_at(at)).await;
    wait_until("the delayed delivery", SOON, || async {
        journal.len() == 1
    })
    .await;
    stop(pool, handle).await;
    let waited = journal.calls()[0].at - published;
    assert!(
        waited >= delay - Duration::from_millis(20),
        "delivered {waited:?} after publishing, deliver_at was {delay:?} ahead"
    );
}

/// A backlog is claimed by two claimers at once, yet a dispatcher never holds more than
/// `concurrency + 2 × batch_size` deliveries of a subscription, in memory or as running
/// rows, keeps only a few batches of the delivery log open, and every delivery runs exactly
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_never_puts_more_than_the_cap_in_flight() {
    const EVENTS: usize = 3_000;
    const CONCURRENCY: usize = 4;
    const BATCH: usize = 100;
    const CAP: usize = CONCURRENCY + 2 * BATCH;
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("backlog", &["job.*"])]).await;
    publish_n(pool, "job.run", EVENTS).await;

    let journal = Journal::new();
    let handle = start(
        dispatcher(pool).batch_size(BATCH).subscribe(
            Subscription::raw(
                "backlog",
                ["job.*"],
                journal.handler_with(|_| async {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                    Ok(())
                }),
            )
            .concurrency(CONCURRENCY),
        ),
    )
    .await;
    let mut most_held = 0;
    let mut most_running = 0;
    let mut most_batches = 0;
    let deadline = tokio::time::Instant::now() + SOON;
    while journal.len() < EVENTS {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {EVENTS} delivered within {SOON:?}",
            journal.len()
        );
        most_held = most_held.max(handle.in_flight());
        let (rows, batches): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM pgbus.deliveries WHERE state = $1),
                    (SELECT count(*) FROM pgbus.claims WHERE closed_at IS NULL)",
        )
        .bind(RUNNING)
        .fetch_one(pool)
        .await
        .expect("counting leases");
        most_running = most_running.max(rows as usize);
        most_batches = most_batches.max(batches as usize);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stop(pool, handle).await;
    assert!(most_held <= CAP, "held {most_held} > {CAP}");
    assert!(most_running <= CAP, "{most_running} running rows > {CAP}");
    // Every open batch of the delivery log has a held row without a written outcome, and
    // rows start in claim order: the batches a cap's worth of held rows spans (3 here), plus
    // slack for outcomes that wait for the completer.
    let most_open = 2 * (CAP.div_ceil(BATCH));
    assert!(
        most_batches <= most_open,
        "{most_batches} open batches > {most_open}"
    );
    assert!(
        most_held > BATCH,
        "the backlog never filled more than one batch of room ({most_held})"
    );
    let mut seen: Vec<u64> = journal
        .calls()
        .iter()
        .map(|c| c.data["i"].as_u64().expect("i"))
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), EVENTS, "some delivery ran twice or never");
    assert_eq!(journal.len(), EVENTS);
}
