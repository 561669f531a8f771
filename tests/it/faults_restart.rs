//! Database restart: the PostgreSQL server is stopped (fast shutdown, or `kill -9` of the
//! postmaster) and started again while events are published and dispatched. Publishes
//! during the outage fail with an error to the caller, never silently; dispatchers
//! reconnect by themselves; every committed event is delivered.
//!
//! Each test starts a server of its own (the shared one must not be restarted), so they
//! are skipped when `DATABASE_URL` points at an external server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pgbus::{DispatcherHandle, NewEvent, Publisher, Subscription};
use pgbus_testing::{Cluster, ClusterOptions, database_url_from_env};
use serde_json::json;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use tokio::sync::Mutex;
use tokio::time::Instant;
use uuid::Uuid;

use crate::support::database::{count, lazy_pool, try_count};
use crate::support::deliveries::state_counts;
use crate::support::dispatcher::{dispatcher, fault_retry, start};
use crate::support::env::size;
use crate::support::fault_log::{Recorder, create_fault_log, log_rows, lost_pairs};
use crate::support::wait::wait_until;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restart {
    /// `pg_ctl stop -m fast`, then start.
    Fast,
    /// SIGKILL to the postmaster, then start (crash recovery).
    Kill9,
}

const SUBSCRIPTIONS: [&str; 2] = ["restart-a", "restart-b"];

async fn start_dispatcher(url: &str) -> DispatcherHandle {
    let handler_pool = lazy_pool(url, 4, Duration::from_secs(2));
    let mut builder = dispatcher(&lazy_pool(url, 4, Duration::from_secs(2)))
        .poll_interval(Duration::from_millis(200));
    for name in SUBSCRIPTIONS {
        builder = builder.subscribe(
            Subscription::raw(name, ["fault.*"], Recorder(handler_pool.clone()))
                .lease(Duration::from_secs(2))
                .concurrency(8)
                .retry(fault_retry()),
        );
    }
    start(builder).await
}

/// What the publishers saw.
#[derive(Debug, Default)]
struct Published {
    /// Events of publishes that returned `Ok` (the transaction committed).
    ok: Vec<Uuid>,
    /// Events of publishes that returned an error (they may or may not have committed).
    failed: Vec<Uuid>,
    /// Publish calls (transactions) that returned an error.
    errors: usize,
    /// Publish calls that returned an error while the server was down.
    errors_while_down: usize,
}

/// Publishes batches of 10 events, each batch in its own transaction, until `stop`.
async fn publish_loop(
    pool: PgPool,
    stop: Arc<AtomicBool>,
    down: Arc<AtomicBool>,
    out: Arc<Mutex<Published>>,
) {
    let publisher = Publisher::new("faults.restart").expect("publisher");
    while !stop.load(Ordering::Relaxed) {
        let events: Vec<NewEvent> = (0..10)
            .map(|n| NewEvent::raw("fault.restart", json!({ "n": n })))
            .collect();
        let ids: Vec<Uuid> = events.iter().map(NewEvent::id).collect();
        let result = async {
            let mut tx = pool.begin().await?;
            publisher.publish_all(&mut tx, &events).await?;
            tx.commit().await?;
            Ok::<(), pgbus::Error>(())
        }
        .await;
        let mut out = out.lock().await;
        match result {
            Ok(()) => out.ok.extend(ids),
            Err(_) => {
                out.errors += 1;
                if down.load(Ordering::Relaxed) {
                    out.errors_while_down += 1;
                }
                out.failed.extend(ids);
            }
        }
        drop(out);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn restart_while_publishing_and_dispatching(kind: Restart) {
    if database_url_from_env().is_some() {
        println!(
            "faults/db-restart ({kind:?}): skipped: it restarts a server of its own, and \
             DATABASE_URL is set"
        );
        return;
    }
    let started = Instant::now();
    // Commits must survive a crash of the server (not of the machine): synchronous commit.
    let cluster = Cluster::start(ClusterOptions {
        synchronous_commit: true,
        ..ClusterOptions::default()
    })
    .await
    .expect("starting a server of our own");
    {
        let mut admin = PgConnection::connect(&cluster.url("postgres"))
            .await
            .expect("admin connection");
        admin
            .execute("CREATE DATABASE faults")
            .await
            .expect("create database");
        admin.close().await.expect("close");
    }
    let url = cluster.url("faults");
    // Publishers give up on a connection after 500 ms, well within each outage, so
    // publishes during an outage fail (rather than wait for the server to come back).
    let pool = lazy_pool(&url, 6, Duration::from_millis(500));
    pgbus::migrate(&pool).await.expect("migrate");
    create_fault_log(&pool).await;
    let dispatchers = vec![start_dispatcher(&url).await, start_dispatcher(&url).await];

    let stop = Arc::new(AtomicBool::new(false));
    let down = Arc::new(AtomicBool::new(false));
    let published = Arc::new(Mutex::new(Published::default()));
    let publishers: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(publish_loop(
                pool.clone(),
                stop.clone(),
                down.clone(),
                published.clone(),
            ))
        })
        .collect();

    let restarts = size(2, 6);
    let run = Duration::from_millis(1500);
    let outage = Duration::from_millis(1500);
    let mut errors_before = 0;
    for restart in 1..=restarts {
        tokio::time::sleep(run).await;
        let ok_before = published.lock().await.ok.len();
        assert!(
            ok_before > 0,
            "nothing was published before restart {restart}"
        );
        down.store(true, Ordering::Relaxed);
        match kind {
            Restart::Fast => cluster.stop_fast().await.expect("stop -m fast"),
            Restart::Kill9 => cluster.kill9().await.expect("kill -9 the postmaster"),
        }
        tokio::time::sleep(outage).await;
        cluster.start_again().await.expect("start again");
        down.store(false, Ordering::Relaxed);
        let errors = published.lock().await.errors_while_down;
        assert!(
            errors > errors_before,
            "no publish failed while the server was down (restart {restart})"
        );
        errors_before = errors;
    }
    tokio::time::sleep(run).await;
    stop.store(true, Ordering::Relaxed);
    for p in publishers {
        p.await.expect("publisher task");
    }
    let published = std::mem::take(&mut *published.lock().await);

    // Every committed event, whether its publish returned Ok or an error, is delivered to
    // both subscriptions, and nothing stays open.
    wait_until(
        "every committed event to be delivered",
        Duration::from_secs(90),
        || async { try_count(&pool, "SELECT count(*) FROM pgbus.all_deliveries").await == Some(0) },
    )
    .await;
    let committed: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM pgbus.events")
        .fetch_all(&pool)
        .await
        .expect("reading events");
    let committed_set: std::collections::HashSet<Uuid> = committed.iter().copied().collect();
    let ok_missing = published
        .ok
        .iter()
        .filter(|id| !committed_set.contains(id))
        .count();
    let failed_but_committed = published
        .failed
        .iter()
        .filter(|id| committed_set.contains(id))
        .count();
    let lost_ok = lost_pairs(&pool, &published.ok, &SUBSCRIPTIONS).await;
    let lost_committed = lost_pairs(&pool, &committed, &SUBSCRIPTIONS).await;
    let log = log_rows(&pool).await;
    let pairs = committed.len() * SUBSCRIPTIONS.len();
    let duplicates = log.len() as i64
        - count(
            &pool,
            "SELECT count(*) FROM (SELECT DISTINCT event_id, subscription FROM fault_log) p",
        )
        .await;
    let mut reports = Vec::new();
    for d in dispatchers {
        reports.push(
            d.shutdown()
                .await
                .expect("clean shutdown after the restarts"),
        );
    }
    let left = state_counts(&pool).await;
    pool.close().await;
    println!(
        "faults/db-restart ({}): {restarts} restarts while publishing and dispatching; \
         {} events committed and delivered to {} subscriptions ({pairs} deliveries); \
         {} publishes returned Ok, {} returned an error ({} of their events committed anyway \
         and were delivered too); lost {}; duplicates {duplicates}; {:.1} s",
        match kind {
            Restart::Fast => "fast shutdown",
            Restart::Kill9 => "kill -9",
        },
        committed.len(),
        SUBSCRIPTIONS.len(),
        published.ok.len() / 10,
        published.errors,
        failed_but_committed,
        lost_ok.max(lost_committed),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        ok_missing, 0,
        "events whose publish returned Ok are missing"
    );
    assert_eq!(
        lost_ok, 0,
        "events whose publish returned Ok were not delivered"
    );
    assert_eq!(lost_committed, 0, "committed events were not delivered");
    assert!(left.is_empty(), "deliveries left: {left:?}");
    assert!(reports.iter().all(|r| r.released == 0), "{reports:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_fast_shutdown_and_restart_loses_nothing() {
    restart_while_publishing_and_dispatching(Restart::Fast).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_kill9_and_restart_loses_nothing() {
    restart_while_publishing_and_dispatching(Restart::Kill9).await;
}
