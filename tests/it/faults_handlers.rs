//! Hung and slow handlers: a handler slower than its lease keeps the lease and runs once; a
//! handler that never returns is timed out, retried and counted; a dispatcher that lost its
//! lease (connection cut, lease expired) cannot overwrite the new owner's outcome.

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pgbus::{
    Delivery, Dispatcher, DispatcherBuilder, DispatcherHandle, HandlerError, NewEvent, Publisher,
    RawHandler, RetryPolicy, Subscription,
};
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::{Notify, mpsc};

use crate::faults_support::{DEAD, DONE, RUNNING, row, rows, scalar, wait_until};
use crate::support::db;

const SOON: Duration = Duration::from_secs(30);

async fn publish(pool: &PgPool, events: &[NewEvent]) {
    Publisher::new("faults.handlers")
        .expect("publisher")
        .publish_all(&mut pool.acquire().await.expect("conn"), events)
        .await
        .expect("publish");
}

fn dispatcher(pool: &PgPool) -> DispatcherBuilder {
    Dispatcher::builder(pool.clone())
        .poll_interval(Duration::from_millis(50))
        .shutdown_timeout(Duration::from_secs(5))
}

async fn start(builder: DispatcherBuilder) -> DispatcherHandle {
    builder
        .build()
        .expect("dispatcher settings")
        .start()
        .await
        .expect("start")
}

async fn stop(pool: &PgPool, handle: DispatcherHandle) {
    tokio::time::timeout(Duration::from_secs(30), handle.shutdown())
        .await
        .expect("shutdown within 30 s")
        .expect("shutdown");
    assert_eq!(
        scalar(
            pool,
            "SELECT count(*) FROM pgbus.deliveries WHERE state = 1"
        )
        .await,
        0
    );
}

/// Handler calls: (delivery id, attempt, which dispatcher).
type Calls = Arc<Mutex<Vec<(i64, u32, &'static str)>>>;

struct Slow {
    name: &'static str,
    calls: Calls,
    takes: Duration,
}

#[async_trait]
impl RawHandler for Slow {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        self.calls
            .lock()
            .unwrap()
            .push((delivery.id, delivery.attempt, self.name));
        tokio::time::sleep(self.takes).await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_slower_than_its_lease_keeps_it_and_runs_once() {
    let db = db().await;
    let pool = db.pool();
    let calls: Calls = Arc::default();
    let sub = |name| {
        Subscription::raw(
            "slow",
            ["fault.*"],
            Slow {
                name,
                calls: calls.clone(),
                takes: Duration::from_millis(3500),
            },
        )
        .lease(Duration::from_secs(1))
        .handler_timeout(Duration::from_secs(20))
    };
    // Two dispatchers compete for the subscription: either would take over a lease that
    // expired.
    let a = start(dispatcher(pool).retain_done(true).subscribe(sub("a"))).await;
    let b = start(dispatcher(pool).retain_done(true).subscribe(sub("b"))).await;
    let events: Vec<NewEvent> = (0..4)
        .map(|n| NewEvent::raw("fault.slow", json!({ "n": n })))
        .collect();
    publish(pool, &events).await;
    wait_until("the slow deliveries to finish", SOON, || async {
        scalar(
            pool,
            "SELECT count(*) FROM pgbus.deliveries WHERE state = 2",
        )
        .await
            == 4
    })
    .await;
    stop(pool, a).await;
    stop(pool, b).await;

    let calls = calls.lock().unwrap().clone();
    assert_eq!(
        calls.len(),
        4,
        "each slow delivery runs exactly once: {calls:?}"
    );
    assert!(calls.iter().all(|c| c.1 == 1), "{calls:?}");
    for r in rows(pool).await {
        assert_eq!((r.state, r.attempts, r.solo), (DONE, 1, false), "{r:?}");
        assert_eq!(r.last_error, None, "{r:?}");
    }
}

/// Counts handler futures dropped before they finished (aborted on timeout).
struct AbandonGuard(Arc<AtomicUsize>, bool);

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

struct Hangs {
    abandoned: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
}

#[async_trait]
impl RawHandler for Hangs {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut guard = AbandonGuard(self.abandoned.clone(), false);
        if delivery.event.data["always"] == true || delivery.attempt == 1 {
            std::future::pending::<()>().await;
        }
        guard.1 = true;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_that_never_returns_is_timed_out_retried_and_counted() {
    let db = db().await;
    let pool = db.pool();
    let abandoned = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let handle = start(
        dispatcher(pool).retain_done(true).subscribe(
            Subscription::raw(
                "hung",
                ["fault.*"],
                Hangs {
                    abandoned: abandoned.clone(),
                    calls: calls.clone(),
                },
            )
            .handler_timeout(Duration::from_millis(500))
            .retry(
                RetryPolicy::default()
                    .max_attempts(3)
                    .base_delay(Duration::from_millis(50))
                    .max_delay(Duration::from_millis(100)),
            ),
        ),
    )
    .await;
    let once = NewEvent::raw("fault.hang", json!({ "always": false }));
    let always = NewEvent::raw("fault.hang", json!({ "always": true }));
    let (once_id, always_id) = (once.id(), always.id());
    publish(pool, &[once, always]).await;
    wait_until("both deliveries to finish", SOON, || async {
        scalar(
            pool,
            "SELECT count(*) FROM pgbus.deliveries WHERE state IN (2, 3)",
        )
        .await
            == 2
    })
    .await;
    stop(pool, handle).await;

    let all = rows(pool).await;
    let once = all.iter().find(|r| r.event_id == once_id).expect("row");
    let always = all.iter().find(|r| r.event_id == always_id).expect("row");
    assert_eq!((once.state, once.attempts), (DONE, 2), "{once:?}");
    assert_eq!(
        once.last_error.as_deref(),
        Some("handler timed out after 500ms")
    );
    assert_eq!((always.state, always.attempts), (DEAD, 3), "{always:?}");
    assert_eq!(
        always.last_error.as_deref(),
        Some("gave up after 3 attempts: handler timed out after 500ms")
    );
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    // The timed-out calls were dropped, not left running in the background.
    assert_eq!(abandoned.load(Ordering::SeqCst), 4);
}

/// Reports each call's attempt, waits for its gate, then returns its outcome.
struct Gated {
    started: mpsc::UnboundedSender<(i64, u32)>,
    gate: Arc<Notify>,
    outcome: fn() -> Result<(), HandlerError>,
}

#[async_trait]
impl RawHandler for Gated {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let _ = self.started.send((delivery.id, delivery.attempt));
        self.gate.notified().await;
        (self.outcome)()
    }
}

fn named_pool(url: &str, application_name: &str) -> PgPool {
    let options = PgConnectOptions::from_str(url)
        .expect("url")
        .application_name(application_name);
    PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy_with(options)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatcher_that_lost_its_lease_cannot_overwrite_the_new_owner() {
    let db = db().await;
    let pool = db.pool();
    let lease = Duration::from_secs(30);

    // A takes the delivery; its handler waits until we let it return Ok (which, written,
    // would delete the row).
    let (a_started, mut a_calls) = mpsc::unbounded_channel();
    let a_gate = Arc::new(Notify::new());
    let a_pool = named_pool(db.url(), "pgbus-faults-a");
    let a = start(
        dispatcher(&a_pool).subscribe(
            Subscription::raw(
                "cut",
                ["fault.*"],
                Gated {
                    started: a_started,
                    gate: a_gate.clone(),
                    outcome: || Ok(()),
                },
            )
            .lease(lease),
        ),
    )
    .await;
    publish(pool, &[NewEvent::raw("fault.cut", json!({}))]).await;
    let (id, attempt) = tokio::time::timeout(SOON, a_calls.recv())
        .await
        .expect("A's handler starts")
        .expect("call");
    assert_eq!(attempt, 1);

    // Mid-delivery, A's database connections are cut and its lease runs out.
    let cut: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                              WHERE application_name = 'pgbus-faults-a') t",
    )
    .fetch_one(pool)
    .await
    .expect("terminating A's connections");
    assert!(cut >= 1, "A had no connection to cut");
    sqlx::query("UPDATE pgbus.deliveries SET run_at = now() - interval '1 second' WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .expect("expiring A's lease");

    // B takes the delivery over (attempt 2) and holds it.
    let (b_started, mut b_calls) = mpsc::unbounded_channel();
    let b_gate = Arc::new(Notify::new());
    let b_pool = named_pool(db.url(), "pgbus-faults-b");
    let b = start(
        dispatcher(&b_pool).subscribe(
            Subscription::raw(
                "cut",
                ["fault.*"],
                Gated {
                    started: b_started,
                    gate: b_gate.clone(),
                    outcome: || Err(HandlerError::permanent("the second owner's outcome")),
                },
            )
            .lease(lease),
        ),
    )
    .await;
    let (b_id, b_attempt) = tokio::time::timeout(SOON, b_calls.recv())
        .await
        .expect("B's handler starts")
        .expect("call");
    assert_eq!((b_id, b_attempt), (id, 2));
    let held = row(pool, id).await.expect("row");
    assert_eq!((held.state, held.attempts), (RUNNING, 2), "{held:?}");
    assert!(
        held.last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("lease expired during attempt 1 of 25")),
        "{held:?}"
    );

    // A's handler returns Ok now; its outcome must not touch B's row.
    a_gate.notify_one();
    wait_until("A to give up its outcome", SOON, || async {
        a.in_flight() == 0
    })
    .await;
    let after_a = row(pool, id).await.expect("A's late Done deleted B's row");
    assert_eq!(
        (after_a.state, after_a.attempts),
        (RUNNING, 2),
        "{after_a:?}"
    );

    // B's outcome is the one that counts.
    b_gate.notify_one();
    wait_until("B's outcome to be written", SOON, || async {
        row(pool, id).await.is_some_and(|r| r.state == DEAD)
    })
    .await;
    stop(pool, a).await;
    stop(pool, b).await;
    let end = row(pool, id).await.expect("row");
    assert_eq!((end.state, end.attempts), (DEAD, 2), "{end:?}");
    assert_eq!(
        end.last_error.as_deref(),
        Some("permanent failure: the second owner's outcome")
    );
    // A never ran it again.
    assert!(a_calls.try_recv().is_err());
}
