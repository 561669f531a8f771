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

use crate::support::database::{count, db};
use crate::support::deliveries::{
    DeliveryRow, deliveries, delivery_count, delivery_count_in, only_delivery,
};
use crate::support::dispatcher::{dispatcher, quick_retry, start, stop};
use crate::support::journal::Journal;
use crate::support::publishing::publish_one;
use crate::support::states::{DEAD, DONE, PENDING, State};
use crate::support::wait::{SOON, wait_until};

/// The event these tests publish.
fn work_item() -> NewEvent {
    NewEvent::raw("work.item", json!({"n": 1}))
}

/// Starts a dispatcher (done rows retained) with one subscription `sub` to `work.*`,
/// publishes one event and waits until its delivery is done or dead.
async fn run_one(pool: &PgPool, sub: Subscription) -> DeliveryRow {
    let name = sub.name().to_owned();
    let handle = start(dispatcher(pool).retain_done(true).subscribe(sub)).await;
    publish_one(pool, work_item()).await;
    wait_until("the delivery to be done or dead", SOON, || async {
        delivery_count_in(pool, &[DONE, DEAD]).await == 1
    })
    .await;
    stop(pool, handle).await;
    only_delivery(pool, &name).await
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
    publish_one(pool, work_item()).await;

    // Between the attempts the delivery is pending, its attempt counted, its error kept,
    // and due no later than base_delay * (1 + jitter) from now.
    wait_until("the first failure to be written", SOON, || async {
        let rows = deliveries(pool).await;
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
        delivery_count_in(pool, &[DONE]).await == 1
    })
    .await;
    stop(pool, handle).await;

    assert_eq!(journal.attempts(), vec![1, 2, 3]);
    let calls = journal.calls();
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

/// A delivery run to its end by one subscription: what the handler returns on each
/// attempt, and the retry policy, decide the final row.
struct EndCase {
    /// The case, and the subscription's name.
    name: &'static str,
    /// The handler's outcome on attempt n (called inside the handler future, so a panic
    /// is a panicking handler).
    outcome: fn(u32) -> Result<(), HandlerError>,
    policy: RetryPolicy,
    /// The final state and attempts; the handler ran attempts 1 to `attempts`.
    state: State,
    attempts: i32,
    last_error: &'static str,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_ends_as_its_handler_outcomes_and_retry_policy_say() {
    let cases = [
        // max attempts, then dead with the last error
        EndCase {
            name: "hopeless",
            outcome: |attempt| Err(HandlerError::retry(format!("nope #{attempt}"))),
            policy: quick_retry().max_attempts(3),
            state: DEAD,
            attempts: 3,
            last_error: "gave up after 3 attempts: nope #3",
        },
        // a std error returned with `?` is retried
        EndCase {
            name: "parses",
            outcome: |attempt| {
                if attempt == 1 {
                    let _: i32 = "not a number".parse()?;
                }
                Ok(())
            },
            policy: quick_retry(),
            state: DONE,
            attempts: 2,
            last_error: "invalid digit found in string",
        },
        // a permanent error is dead at once
        EndCase {
            name: "strict",
            outcome: |_| Err(HandlerError::permanent("invalid card")),
            policy: quick_retry().max_attempts(10),
            state: DEAD,
            attempts: 1,
            last_error: "permanent failure: invalid card",
        },
        // a panicking handler is retried, then succeeds
        EndCase {
            name: "panicky",
            outcome: |attempt| {
                if attempt == 1 {
                    panic!("kaboom on attempt {attempt}");
                }
                Ok(())
            },
            policy: quick_retry(),
            state: DONE,
            attempts: 2,
            last_error: "handler panicked: kaboom on attempt 1",
        },
    ];
    for case in cases {
        let name = case.name;
        let db = db().await;
        let pool = db.pool();
        let journal = Journal::new();
        let outcome = case.outcome;
        let sub = Subscription::raw(
            name,
            ["work.*"],
            journal.handler_with(move |d| async move { outcome(d.attempt) }),
        )
        .retry(case.policy);
        let row = run_one(pool, sub).await;
        assert_eq!(
            (row.state, row.attempts),
            (case.state, case.attempts),
            "{name}: {row:?}"
        );
        assert_eq!(
            row.last_error.as_deref(),
            Some(case.last_error),
            "{name}: {row:?}"
        );
        assert!(row.finished_at.is_some(), "{name}: {row:?}");
        let want: Vec<u32> = (1..=case.attempts as u32).collect();
        assert_eq!(journal.attempts(), want, "{name}: attempts run");
    }
}

/// A subscription whose handler asks, on attempt 1, to be retried after `retry_after`.
struct RetryAfterCase {
    /// The subscription.
    name: &'static str,
    message: &'static str,
    retry_after: Duration,
    /// Its backoff, which `retry_after` overrides.
    policy: RetryPolicy,
    /// Where the time between attempts 1 and 2 must fall.
    gap: std::ops::Range<Duration>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_overrides_the_backoff() {
    let cases = [
        // Backoff 20 ms, but the handler asks for 700 ms.
        RetryAfterCase {
            name: "later",
            message: "rate limited",
            retry_after: Duration::from_millis(700),
            policy: quick_retry(),
            gap: Duration::from_millis(700)..Duration::MAX,
        },
        // Backoff 60 s, but the handler asks for 50 ms.
        RetryAfterCase {
            name: "sooner",
            message: "try again shortly",
            retry_after: Duration::from_millis(50),
            policy: RetryPolicy::default()
                .base_delay(Duration::from_secs(60))
                .max_delay(Duration::from_secs(60))
                .jitter(0.0),
            gap: Duration::ZERO..Duration::from_secs(10),
        },
    ];
    let db = db().await;
    let pool = db.pool();
    let mut builder = dispatcher(pool).retain_done(true);
    let mut journals = Vec::new();
    for case in &cases {
        let journal = Journal::new();
        let (message, wait) = (case.message, case.retry_after);
        builder = builder.subscribe(
            Subscription::raw(
                case.name,
                ["work.*"],
                journal.handler_with(move |d| async move {
                    if d.attempt == 1 {
                        Err(HandlerError::retry_after(message, wait))
                    } else {
                        Ok(())
                    }
                }),
            )
            .retry(case.policy),
        );
        journals.push(journal);
    }
    let handle = start(builder).await;
    publish_one(pool, work_item()).await;
    wait_until("every delivery done", SOON, || async {
        delivery_count_in(pool, &[DONE]).await == cases.len() as i64
    })
    .await;
    stop(pool, handle).await;

    for (case, journal) in cases.iter().zip(&journals) {
        let name = case.name;
        assert_eq!(journal.attempts(), vec![1, 2], "{name}");
        let calls = journal.calls();
        let gap = calls[1].at - calls[0].at;
        assert!(
            case.gap.contains(&gap),
            "{name}: retry_after({:?}) but retried after {gap:?}, outside {:?}",
            case.retry_after,
            case.gap
        );
        let row = only_delivery(pool, name).await;
        assert_eq!((row.state, row.attempts), (DONE, 2), "{name}: {row:?}");
        assert_eq!(row.last_error.as_deref(), Some(case.message), "{name}");
    }
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
    assert_eq!(journal.attempts(), vec![1, 2]);
    let calls = journal.calls();
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
        delivery_count_in(pool, &[DEAD]).await == 1 && delivery_count(pool).await == 1
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
        publish_one(pool, work_item()).await;
    }
    wait_until("the queue to drain", SOON, || async {
        delivery_count(pool).await == 0
    })
    .await;
    stop(pool, handle).await;
    assert_eq!(count(pool, "SELECT count(*) FROM pgbus.events").await, 5);
}
