//! Failures: retry with backoff, max attempts, permanent errors, retry_after, panics,
//! timeouts and payloads that do not deserialize.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pgbus::{
    Delivery, Event, Handler, HandlerError, NewEvent, Publisher, RawHandler, RetryPolicy,
    Subscription,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::db;
use crate::util::{
    Call, DEAD, DONE, Journal, PENDING, SOON, count, dispatcher, only_delivery, quick_retry, start,
    stop, wait_until,
};

async fn publish(pool: &PgPool, event_type: &str) -> Uuid {
    let event = NewEvent::raw(event_type, json!({"n": 1}));
    let id = event.id();
    Publisher::new("retry-tests")
        .expect("publisher")
        .publish(&mut pool.acquire().await.expect("conn"), event)
        .await
        .expect("publish");
    id
}

/// Starts a dispatcher (done rows retained) with one subscription `sub` to `work.*`,
/// publishes one event and waits until its delivery is done or dead.
async fn run_one(pool: &PgPool, sub: Subscription) -> crate::util::DeliveryRow {
    let name = sub.name().to_owned();
    let handle = start(dispatcher(pool).retain_done(true).subscribe(sub)).await;
    publish(pool, "work.item").await;
    wait_until("the delivery to be done or dead", SOON, || async {
        count(
            pool,
            "SELECT count(*) FROM pgbus.deliveries WHERE state IN (2, 3)",
        )
        .await
            == 1
    })
    .await;
    stop(pool, handle).await;
    only_delivery(pool, &name).await
}

fn attempts(calls: &[Call]) -> Vec<u32> {
    calls.iter().map(|c| c.attempt).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_with_backoff_then_success() {
    let db = db().await;
    let pool = db.pool();
    let base = Duration::from_millis(400);
    let jitter = 0.25;
    let journal = Journal::new();
    let sub = Subscription::raw(
        "flaky",
        ["work.*"],
        journal.handler_with(|d| async move {
            if d.attempt < 3 {
                Err(HandlerError::retry(format!(
                    "boom at attempt {}",
                    d.attempt
                )))
            } else {
                Ok(())
            }
        }),
    )
    .retry(
        RetryPolicy::default()
            .max_attempts(5)
            .base_delay(base)
            .max_delay(Duration::from_secs(5))
            .jitter(jitter),
    );
    let handle = start(dispatcher(pool).retain_done(true).subscribe(sub)).await;
    publish(pool, "work.item").await;

    // Between the attempts the delivery is pending, its attempt counted, its error kept,
    // and due no later than base_delay * (1 + jitter) from now.
    wait_until("the first failure to be written", SOON, || async {
        let rows = crate::util::deliveries(pool).await;
        rows.len() == 1
            && rows[0].state == PENDING
            && rows[0].attempts == 1
            && rows[0].last_error.as_deref() == Some("boom at attempt 1")
    })
    .await;
    let due_in: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM run_at - now())::float8 FROM pgbus.deliveries",
    )
    .fetch_one(pool)
    .await
    .expect("run_at");
    assert!(
        due_in <= base.as_secs_f64() * (1.0 + jitter) + 0.01,
        "due in {due_in} s"
    );

    wait_until("the third attempt to succeed", SOON, || async {
        count(
            pool,
            "SELECT count(*) FROM pgbus.deliveries WHERE state = 2",
        )
        .await
            == 1
    })
    .await;
    stop(pool, handle).await;

    let calls = journal.calls();
    assert_eq!(attempts(&calls), vec![1, 2, 3]);
    for (i, pair) in calls.windows(2).enumerate() {
        let gap = pair[1].at - pair[0].at;
        let backoff = base * 2u32.pow(i as u32);
        let earliest = backoff.mul_f64(1.0 - jitter);
        assert!(
            gap >= earliest,
            "attempt {} started {gap:?} after attempt {}, before the backoff ({earliest:?} at least)",
            i + 2,
            i + 1
        );
        assert!(
            gap < backoff.mul_f64(1.0 + jitter) + Duration::from_secs(2),
            "attempt {} started {gap:?} after the previous one",
            i + 2
        );
    }
    let row = only_delivery(pool, "flaky").await;
    assert_eq!((row.state, row.attempts), (DONE, 3), "{row:?}");
    assert_eq!(row.last_error.as_deref(), Some("boom at attempt 2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_attempts_then_dead_with_the_last_error() {
    let db = db().await;
    let pool = db.pool();
    let journal = Journal::new();
    let row = run_one(
        pool,
        Subscription::raw(
            "hopeless",
            ["work.*"],
            journal.handler_with(|d| async move {
                Err(HandlerError::retry(format!("nope #{}", d.attempt)))
            }),
        )
        .retry(quick_retry().max_attempts(3)),
    )
    .await;
    assert_eq!((row.state, row.attempts), (DEAD, 3), "{row:?}");
    assert_eq!(
        row.last_error.as_deref(),
        Some("gave up after 3 attempts: nope #3")
    );
    assert!(row.finished_at.is_some());
    assert_eq!(attempts(&journal.calls()), vec![1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_std_error_returned_with_question_mark_is_retried() {
    let db = db().await;
    let pool = db.pool();
    let journal = Journal::new();
    let row = run_one(
        pool,
        Subscription::raw(
            "parses",
            ["work.*"],
            journal.handler_with(|d| async move {
                if d.attempt == 1 {
                    let _: i32 = "not a number".parse()?;
                }
                Ok(())
            }),
        )
        .retry(quick_retry()),
    )
    .await;
    assert_eq!((row.state, row.attempts), (DONE, 2), "{row:?}");
    assert_eq!(
        row.last_error.as_deref(),
        Some("invalid digit found in string")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_error_is_dead_at_once() {
    let db = db().await;
    let pool = db.pool();
    let journal = Journal::new();
    let row = run_one(
        pool,
        Subscription::raw(
            "strict",
            ["work.*"],
            journal.handler_with(|_| async { Err(HandlerError::permanent("invalid card")) }),
        )
        .retry(quick_retry().max_attempts(10)),
    )
    .await;
    assert_eq!((row.state, row.attempts), (DEAD, 1), "{row:?}");
    assert_eq!(
        row.last_error.as_deref(),
        Some("permanent failure: invalid card")
    );
    assert!(row.finished_at.is_some());
    assert_eq!(journal.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_overrides_the_backoff() {
    let db = db().await;
    let pool = db.pool();
    let later = Journal::new();
    let sooner = Journal::new();
    let wait = Duration::from_millis(700);
    let handle = start(
        dispatcher(pool)
            .retain_done(true)
            // Backoff 20 ms, but the handler asks for 700 ms.
            .subscribe(
                Subscription::raw(
                    "later",
                    ["work.*"],
                    later.handler_with(move |d| async move {
                        if d.attempt == 1 {
                            Err(HandlerError::retry_after("rate limited", wait))
                        } else {
                            Ok(())
                        }
                    }),
                )
                .retry(quick_retry()),
            )
            // Backoff 60 s, but the handler asks for 50 ms.
            .subscribe(
                Subscription::raw(
                    "sooner",
                    ["work.*"],
                    sooner.handler_with(|d| async move {
                        if d.attempt == 1 {
                            Err(HandlerError::retry_after(
                                "try again shortly",
                                Duration::from_millis(50),
                            ))
                        } else {
                            Ok(())
                        }
                    }),
                )
                .retry(
                    RetryPolicy::default()
                        .base_delay(Duration::from_secs(60))
                        .max_delay(Duration::from_secs(60))
                        .jitter(0.0),
                ),
            ),
    )
    .await;
    publish(pool, "work.item").await;
    wait_until("both deliveries done", SOON, || async {
        count(
            pool,
            "SELECT count(*) FROM pgbus.deliveries WHERE state = 2",
        )
        .await
            == 2
    })
    .await;
    stop(pool, handle).await;

    let calls = later.calls();
    assert_eq!(attempts(&calls), vec![1, 2]);
    let gap = calls[1].at - calls[0].at;
    assert!(
        gap >= wait,
        "retry_after({wait:?}) but retried after {gap:?}"
    );
    let calls = sooner.calls();
    assert_eq!(attempts(&calls), vec![1, 2]);
    let gap = calls[1].at - calls[0].at;
    assert!(
        gap < Duration::from_secs(10),
        "retry_after(50 ms) but retried after {gap:?}"
    );
    let row = only_delivery(pool, "later").await;
    assert_eq!((row.state, row.attempts), (DONE, 2));
    assert_eq!(row.last_error.as_deref(), Some("rate limited"));
    let row = only_delivery(pool, "sooner").await;
    assert_eq!((row.state, row.attempts), (DONE, 2));
    assert_eq!(row.last_error.as_deref(), Some("try again shortly"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_retried_then_succeeds() {
    let db = db().await;
    let pool = db.pool();
    let journal = Journal::new();
    let row = run_one(
        pool,
        Subscription::raw(
            "panicky",
            ["work.*"],
            journal.handler_with(|d| async move {
                if d.attempt == 1 {
                    panic!("kaboom on attempt {}", d.attempt);
                }
                Ok(())
            }),
        )
        .retry(quick_retry()),
    )
    .await;
    assert_eq!((row.state, row.attempts), (DONE, 2), "{row:?}");
    assert_eq!(
        row.last_error.as_deref(),
        Some("handler panicked: kaboom on attempt 1")
    );
    assert_eq!(attempts(&journal.calls()), vec![1, 2]);
}

/// Sets its flag when dropped: shows that an abandoned handler future was dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_times_out_is_abandoned_and_retried() {
    let db = db().await;
    let pool = db.pool();
    let journal = Journal::new();
    let dropped = Arc::new(AtomicBool::new(false));
    let finished_sleeping = Arc::new(AtomicBool::new(false));
    let (d2, f2) = (dropped.clone(), finished_sleeping.clone());
    let row = run_one(
        pool,
        Subscription::raw(
            "slow",
            ["work.*"],
            journal.handler_with(move |d| {
                let (dropped, finished) = (d2.clone(), f2.clone());
                async move {
                    if d.attempt == 1 {
                        let _flag = DropFlag(dropped);
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        finished.store(true, Ordering::SeqCst);
                    }
                    Ok(())
                }
            }),
        )
        .handler_timeout(Duration::from_millis(200))
        .retry(quick_retry()),
    )
    .await;
    assert_eq!((row.state, row.attempts), (DONE, 2), "{row:?}");
    assert_eq!(
        row.last_error.as_deref(),
        Some("handler timed out after 200ms")
    );
    let calls = journal.calls();
    assert_eq!(attempts(&calls), vec![1, 2]);
    let gap = calls[1].at - calls[0].at;
    assert!(
        gap >= Duration::from_millis(200) && gap < Duration::from_secs(10),
        "second attempt {gap:?} after the first"
    );
    assert!(
        dropped.load(Ordering::SeqCst),
        "the timed-out handler was not dropped"
    );
    assert!(!finished_sleeping.load(Ordering::SeqCst));
}

#[derive(Debug, Serialize, Deserialize)]
struct Listing {
    id: i64,
    title: String,
}

impl Event for Listing {
    const TYPE: &'static str = "listing.created";
}

struct Listings(Arc<Mutex<Vec<i64>>>);

#[async_trait]
impl Handler<Listing> for Listings {
    async fn handle(&self, event: Listing, _delivery: &Delivery) -> Result<(), HandlerError> {
        self.0.lock().unwrap().push(event.id);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_payload_that_does_not_deserialize_is_dead_at_once() {
    let db = db().await;
    let pool = db.pool();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handle = start(dispatcher(pool).subscribe(
        Subscription::to::<Listing, _>("listings", Listings(seen.clone())).retry(quick_retry()),
    ))
    .await;
    let p = Publisher::new("t").expect("publisher");
    let mut conn = pool.acquire().await.expect("conn");
    let good = Listing {
        id: 7,
        title: "Casa".into(),
    };
    p.publish(&mut conn, &good).await.expect("publish good");
    let bad = NewEvent::raw(Listing::TYPE, json!({"id": "seven", "title": "Casa"}));
    let bad_id = bad.id();
    p.publish(&mut conn, bad).await.expect("publish bad");
    drop(conn);

    wait_until("the bad delivery dead, the good one done", SOON, || async {
        count(
            pool,
            "SELECT count(*) FROM pgbus.deliveries WHERE state = 3",
        )
        .await
            == 1
            && count(pool, "SELECT count(*) FROM pgbus.deliveries").await == 1
    })
    .await;
    stop(pool, handle).await;

    let row = only_delivery(pool, "listings").await;
    assert_eq!(row.event_id, bad_id);
    assert_eq!((row.state, row.attempts), (DEAD, 1), "{row:?}");
    let error = row.last_error.expect("last_error");
    let prefix = format!("cannot deserialize event {bad_id} of type \"listing.created\" as ");
    assert!(error.starts_with(&prefix), "{error}");
    assert!(
        error.contains(std::any::type_name::<Listing>()),
        "error does not name the Rust type: {error}"
    );
    assert!(error.contains("invalid type"), "{error}");
    assert_eq!(
        *seen.lock().unwrap(),
        vec![7],
        "only the good event reached the handler"
    );
}

/// A raw handler that is a plain struct, not a closure, also works.
struct AlwaysOk;

#[async_trait]
impl RawHandler for AlwaysOk {
    async fn handle(&self, _delivery: &Delivery) -> Result<(), HandlerError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_policy_deletes_done_rows() {
    let db = db().await;
    let pool = db.pool();
    let handle =
        start(dispatcher(pool).subscribe(Subscription::raw("plain", ["*"], AlwaysOk))).await;
    for _ in 0..5 {
        publish(pool, "work.item").await;
    }
    wait_until("the queue to drain", SOON, || async {
        count(pool, "SELECT count(*) FROM pgbus.deliveries").await == 0
    })
    .await;
    stop(pool, handle).await;
    assert_eq!(count(pool, "SELECT count(*) FROM pgbus.events").await, 5);
}
