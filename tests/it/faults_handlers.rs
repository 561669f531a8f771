//! Hung and slow handlers: a handler slower than its lease keeps the lease and runs once; a
//! handler that never returns is timed out, retried and counted; a dispatcher that lost its
//! lease (connection cut, lease expired) cannot overwrite the new owner's outcome.

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pgbus::{
    Delivery, DispatcherHandle, HandlerError, NewEvent, RawHandler, RetryPolicy, Subscription,
};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::{Notify, mpsc};

use crate::support::database::db;
use crate::support::deliveries::{deliveries, delivery, delivery_count_in};
use crate::support::dispatcher::{dispatcher, start, stop};
use crate::support::publishing::publish_events;
use crate::support::states::{DEAD, DONE, RUNNING};
use crate::support::wait::wait_until;

/// Longer than `support::wait::SOON`: these handlers are slow on purpose.
const SOON: Duration = Duration::from_secs(30);

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
    publish_events(pool, &events).await;
    wait_until("the slow deliveries to finish", SOON, || async {
        delivery_count_in(pool, &[DONE]).await == 4
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
    for r in deliveries(pool).await {
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
    publish_events(pool, &[once, always]).await;
    wait_until("both deliveries to finish", SOON, || async {
        delivery_count_in(pool, &[DONE, DEAD]).await == 2
    })
    .await;
    stop(pool, handle).await;

    let all = deliveries(pool).await;
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

/// A dispatcher of one `Gated` subscription "cut" (lease 30 s) on a pool of its own whose
/// connections carry `application_name`; returns it, the receiver of its handler's calls,
/// and the gate its handler waits for.
async fn start_gated(
    url: &str,
    application_name: &str,
    outcome: fn() -> Result<(), HandlerError>,
) -> (
    DispatcherHandle,
    mpsc::UnboundedReceiver<(i64, u32)>,
    Arc<Notify>,
) {
    let options = PgConnectOptions::from_str(url)
        .expect("url")
        .application_name(application_name);
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy_with(options);
    let (started, calls) = mpsc::unbounded_channel();
    let gate = Arc::new(Notify::new());
    let handler = Gated {
        started,
        gate: gate.clone(),
        outcome,
    };
    let handle =
        start(dispatcher(&pool).subscribe(
            Subscription::raw("cut", ["fault.*"], handler).lease(Duration::from_secs(30)),
        ))
        .await;
    (handle, calls, gate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatcher_that_lost_its_lease_cannot_overwrite_the_new_owner() {
    let db = db().await;
    let pool = db.pool();

    // A takes the delivery; its handler waits until we let it return Ok (which, written,
    // would delete the row).
    let (a, mut a_calls, a_gate) = start_gated(db.url(), "pgbus-faults-a", || Ok(())).await;
    publish_events(pool, &[NewEvent::raw("fault.cut", json!({}))]).await;
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
    // A first attempt runs under the lease of its batch of the delivery log.
    sqlx::query(
        "UPDATE pgbus.claims c SET lease_until = now() - interval '1 second'
         WHERE c.closed_at IS NULL
           AND EXISTS (SELECT 1 FROM pgbus.claim_rows(c) r WHERE r.id = $1)",
    )
    .bind(id)
    .execute(pool)
    .await
    .expect("expiring A's lease");

    // B takes the delivery over (attempt 2) and holds it.
    let (b, mut b_calls, b_gate) = start_gated(db.url(), "pgbus-faults-b", || {
        Err(HandlerError::permanent("the second owner's outcome"))
    })
    .await;
    let (b_id, b_attempt) = tokio::time::timeout(SOON, b_calls.recv())
        .await
        .expect("B's handler starts")
        .expect("call");
    assert_eq!((b_id, b_attempt), (id, 2));
    let held = delivery(pool, id).await.expect("row");
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
    let after_a = delivery(pool, id)
        .await
        .expect("A's late Done deleted B's row");
    assert_eq!(
        (after_a.state, after_a.attempts),
        (RUNNING, 2),
        "{after_a:?}"
    );

    // B's outcome is the one that counts.
    b_gate.notify_one();
    wait_until("B's outcome to be written", SOON, || async {
        delivery(pool, id).await.is_some_and(|r| r.state == DEAD)
    })
    .await;
    stop(pool, a).await;
    stop(pool, b).await;
    let end = delivery(pool, id).await.expect("row");
    assert_eq!((end.state, end.attempts), (DEAD, 2), "{end:?}");
    assert_eq!(
        end.last_error.as_deref(),
        Some("permanent failure: the second owner's outcome")
    );
    // A never ran it again.
    assert!(a_calls.try_recv().is_err());
}
