//! Under load: a graceful shutdown with 100 handlers in flight, and a dispatcher and 20
//! publishers starving one small pool.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pgbus::{Delivery, Dispatcher, HandlerError, NewEvent, Publisher, RawHandler, Subscription};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use tokio::time::Instant;
use uuid::Uuid;

use crate::support::database::db;
use crate::support::deliveries::{deliveries, delivery_count, delivery_count_in};
use crate::support::dispatcher::{dispatcher, fault_retry, shutdown, start};
use crate::support::fault_log::{Recorder, create_fault_log, lost_pairs};
use crate::support::publishing::publish_events;
use crate::support::states::{DONE, PENDING};
use crate::support::wait::wait_until;

/// Even-numbered events finish in 300 ms, odd ones take a minute.
struct HalfSlow {
    running: Arc<AtomicUsize>,
    calls: Arc<Mutex<Vec<(i64, u32)>>>,
}

#[async_trait]
impl RawHandler for HalfSlow {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        self.calls
            .lock()
            .unwrap()
            .push((delivery.id, delivery.attempt));
        self.running.fetch_add(1, Ordering::SeqCst);
        let n = delivery.event.data["n"].as_u64().unwrap_or(0);
        let takes = if n.is_multiple_of(2) {
            Duration::from_millis(300)
        } else {
            Duration::from_secs(60)
        };
        tokio::time::sleep(takes).await;
        Ok(())
    }
}

struct Quick(Arc<Mutex<Vec<(i64, u32)>>>);

#[async_trait]
impl RawHandler for Quick {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        self.0.lock().unwrap().push((delivery.id, delivery.attempt));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_100_handlers_in_flight_releases_the_unfinished() {
    const N: usize = 100;
    let db = db().await;
    let pool = db.pool();
    let running = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(Mutex::new(Vec::new()));
    let handle = start(
        dispatcher(pool)
            .shutdown_timeout(Duration::from_secs(1))
            .retain_done(true)
            .subscribe(
                Subscription::raw(
                    "busy",
                    ["fault.*"],
                    HalfSlow {
                        running: running.clone(),
                        calls: calls.clone(),
                    },
                )
                .concurrency(N),
            ),
    )
    .await;
    let events: Vec<NewEvent> = (0..N)
        .map(|n| NewEvent::raw("fault.busy", json!({ "n": n })))
        .collect();
    publish_events(pool, &events).await;
    wait_until(
        "100 handlers in flight",
        Duration::from_secs(30),
        || async { running.load(Ordering::SeqCst) == N },
    )
    .await;

    let began = Instant::now();
    let report = shutdown(handle).await;
    let took = began.elapsed();
    assert!(!report.finished_in_time, "{report:?}");
    assert_eq!(report.released, N / 2, "{report:?}");
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");

    let after = deliveries(pool).await;
    let done = after.iter().filter(|r| r.state == DONE).count();
    let released: Vec<_> = after.iter().filter(|r| r.state == PENDING).collect();
    assert_eq!(done, N / 2, "those finishing within the deadline are done");
    assert_eq!(
        released.len(),
        N / 2,
        "the rest are pending again: {after:#?}"
    );
    assert!(
        after.iter().all(|r| r.state == DONE || r.state == PENDING),
        "none left running: {after:#?}"
    );
    for r in &released {
        assert_eq!(r.attempts, 1, "the interrupted attempt counts: {r:?}");
        assert_eq!(
            r.last_error.as_deref(),
            Some("interrupted by dispatcher shutdown")
        );
    }

    // A new dispatcher finishes them.
    let second = Arc::new(Mutex::new(Vec::new()));
    let handle =
        start(dispatcher(pool).retain_done(true).subscribe(
            Subscription::raw("busy", ["fault.*"], Quick(second.clone())).concurrency(N),
        ))
        .await;
    wait_until(
        "the new dispatcher to finish them",
        Duration::from_secs(30),
        || async { delivery_count_in(pool, &[DONE]).await == N as i64 },
    )
    .await;
    let report = shutdown(handle).await;
    assert_eq!(report.released, 0);
    let second = second.lock().unwrap().clone();
    let released_ids: HashSet<i64> = released.iter().map(|r| r.id).collect();
    assert_eq!(second.len(), N / 2, "only the released ones ran again");
    assert!(
        second
            .iter()
            .all(|(id, attempt)| released_ids.contains(id) && *attempt == 2)
    );
    println!(
        "faults/shutdown-under-load: {N} handlers in flight, deadline 1 s: {done} done, {} \
         released (attempt counted), shutdown took {:.2} s, a new dispatcher finished them",
        released.len(),
        took.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatcher_and_20_publishers_on_a_4_connection_pool_make_progress() {
    const PUBLISHERS: usize = 20;
    const EACH: usize = 50;
    let db = db().await;
    create_fault_log(db.pool()).await;
    // One small pool for everything: LISTEN, claims, completions, lease extensions, the
    // handlers' own writes and the publishers' transactions.
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(30))
        .connect(db.url())
        .await
        .expect("small pool");
    let handle = start(
        Dispatcher::builder(pool.clone())
            .poll_interval(Duration::from_millis(100))
            .subscribe(
                Subscription::raw("starved", ["fault.*"], Recorder(pool.clone()))
                    .concurrency(16)
                    .retry(fault_retry()),
            ),
    )
    .await;

    let began = Instant::now();
    let publisher = Publisher::new("faults.starved").expect("publisher");
    let tasks: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let pool = pool.clone();
            let publisher = publisher.clone();
            tokio::spawn(async move {
                let mut ids = Vec::with_capacity(EACH);
                let mut slowest = Duration::ZERO;
                for n in 0..EACH {
                    let began = Instant::now();
                    let event = NewEvent::raw("fault.starved", json!({ "p": p, "n": n }));
                    let mut tx = pool.begin().await?;
                    // A little work of the caller's own inside the transaction.
                    sqlx::query("SELECT pg_sleep(0.001)")
                        .execute(&mut *tx)
                        .await?;
                    ids.push(publisher.publish(&mut tx, event).await?.id());
                    tx.commit().await?;
                    slowest = slowest.max(began.elapsed());
                }
                Ok::<(Vec<Uuid>, Duration), pgbus::Error>((ids, slowest))
            })
        })
        .collect();
    let mut published = Vec::new();
    let mut slowest = Duration::ZERO;
    for t in tasks {
        let (ids, slowest_here) = tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("a publisher stalled for 60 s")
            .expect("publisher task")
            .expect("publishing on the shared small pool");
        published.extend(ids);
        slowest = slowest.max(slowest_here);
    }
    let published_in = began.elapsed();
    wait_until(
        "every event to be delivered",
        Duration::from_secs(60),
        || async { delivery_count(&pool).await == 0 },
    )
    .await;
    let delivered_in = began.elapsed();
    let report = shutdown(handle).await;
    assert_eq!(report.released, 0);
    assert_eq!(published.len(), PUBLISHERS * EACH);
    assert_eq!(lost_pairs(&pool, &published, &["starved"]).await, 0);
    println!(
        "faults/pool-starvation: 1 dispatcher (concurrency 16) + {PUBLISHERS} publishers on a \
         4-connection pool: {} events published in {:.1} s (slowest publish transaction \
         {:.2} s), all delivered in {:.1} s",
        published.len(),
        published_in.as_secs_f64(),
        slowest.as_secs_f64(),
        delivered_in.as_secs_f64()
    );
}
