//! Behind a real PgBouncer in transaction mode (1.18 on Debian 12, which keeps no prepared
//! statement across transactions): migrate, publish from Rust and SQL, and a dispatcher that
//! dispatches, retries, dead-letters and shuts down — polling only, and with a session pool
//! for LISTEN and presence.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use pgbus::{HandlerError, NewEvent, Publisher, Subscription};
use serde_json::json;
use sqlx::PgPool;

use crate::support::database::{count, db, empty_db};
use crate::support::deliveries::delivery_count_in;
use crate::support::dispatcher::{dispatcher, quick_retry, shutdown, start};
use crate::support::journal::Journal;
use crate::support::pooler::{bouncer, pooled};
use crate::support::states::{DEAD, RUNNING};
use crate::support::wait::{SOON, wait_until};

fn pooled_publisher() -> Publisher {
    Publisher::builder()
        .source("pooled")
        .transaction_pooler(true)
        .build()
        .expect("publisher")
}

/// Publishes `n` events of `event_type` from 4 tasks at once, each in its own transaction.
async fn publish_concurrently(pool: &PgPool, event_type: &str, n: usize) {
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let (pool, event_type) = (pool.clone(), event_type.to_owned());
            tokio::spawn(async move {
                let publisher = pooled_publisher();
                for i in (t..n).step_by(4) {
                    let mut tx = pool.begin().await.expect("begin");
                    publisher
                        .publish(&mut tx, NewEvent::raw(event_type.clone(), json!({"i": i})))
                        .await
                        .expect("publish through the pooler");
                    tx.commit().await.expect("commit");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("a publishing task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_and_publish_through_pgbouncer() {
    let db = empty_db().await;
    let Some(bouncer) = bouncer(&db).await else {
        return;
    };
    let pool = pooled(&bouncer, &db);
    pgbus::migrate(&pool)
        .await
        .expect("migrate through the pooler");
    pgbus::migrate(&pool)
        .await
        .expect("migrate again through the pooler");
    publish_concurrently(&pool, "pooled.event", 100).await;
    // From SQL through the pooler: one unnamed statement in a transaction.
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("SELECT pgbus.publish('pooled.sql', '{}', 'sql', dedupe_key => 'once')")
        .persistent(false)
        .execute(&mut *tx)
        .await
        .expect("SQL publish through the pooler");
    tx.commit().await.expect("commit");
    assert_eq!(
        count(db.pool(), "SELECT count(*) FROM pgbus.events").await,
        101
    );
}

/// A dispatcher through the pooler with three subscriptions: one that succeeds, one that
/// fails its first attempt, one that gives up at once.
async fn dispatch_retry_dead_shutdown(session: bool) {
    let db = db().await;
    let Some(bouncer) = bouncer(&db).await else {
        return;
    };
    let pool = pooled(&bouncer, &db);
    let (ok, flaky, poison) = (Journal::new(), Journal::new(), Journal::new());
    let failures = Arc::new(AtomicU32::new(0));
    let failed = failures.clone();
    let mut builder = dispatcher(&pool)
        .transaction_pooler(true)
        .subscribe(Subscription::raw("ok", ["job.*"], ok.handler()))
        .subscribe(
            Subscription::raw(
                "flaky",
                ["job.*"],
                flaky.handler_with(move |d| {
                    let failed = failed.clone();
                    async move {
                        if d.attempt == 1 {
                            failed.fetch_add(1, Ordering::SeqCst);
                            return Err(HandlerError::from(std::io::Error::other("first try")));
                        }
                        Ok(())
                    }
                }),
            )
            .retry(quick_retry()),
        )
        .subscribe(Subscription::raw(
            "poison",
            ["job.poison"],
            poison.handler_with(|_| async { Err(HandlerError::permanent("never")) }),
        ));
    if session {
        builder = builder.session_pool(db.pool().clone());
    }
    let handle = start(builder).await;
    let presence = count(db.pool(), "SELECT count(*) FROM pgbus.dispatchers").await;
    assert_eq!(
        presence,
        i64::from(session),
        "presence only with a session pool"
    );
    publish_concurrently(&pool, "job.created", 40).await;
    publish_concurrently(&pool, "job.poison", 2).await;
    wait_until("every delivery handled", SOON, || async {
        ok.len() == 42 && flaky.len() == 84 && poison.len() == 2
    })
    .await;
    assert_eq!(failures.load(Ordering::SeqCst), 42);
    wait_until("the poison deliveries dead", SOON, || async {
        delivery_count_in(db.pool(), &[DEAD]).await == 2
    })
    .await;
    let report = shutdown(handle).await;
    assert!(report.finished_in_time, "{report:?}");
    assert_eq!(delivery_count_in(db.pool(), &[RUNNING]).await, 0);
    assert_eq!(
        count(
            db.pool(),
            "SELECT count(*) FROM pgbus.all_deliveries WHERE state <> 3"
        )
        .await,
        0,
        "only the dead letters are left"
    );
    assert_eq!(
        count(db.pool(), "SELECT count(*) FROM pgbus.dispatchers").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_polling_through_pgbouncer_dispatches_retries_and_dead_letters() {
    dispatch_retry_dead_shutdown(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_with_a_session_pool_dispatches_through_pgbouncer() {
    dispatch_retry_dead_shutdown(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_without_a_session_pool_is_refused_behind_a_pooler() {
    let db = db().await;
    let err = dispatcher(db.pool())
        .transaction_pooler(true)
        .listen(true)
        .subscribe(Subscription::raw("s", ["*"], Journal::new().handler()))
        .build()
        .expect_err("LISTEN through a transaction pooler");
    assert!(
        matches!(
            err,
            pgbus::Error::Config {
                field: "listen",
                ..
            }
        ),
        "{err:?}"
    );
    let err = dispatcher(db.pool())
        .session_pool(db.pool().clone())
        .subscribe(Subscription::raw("s", ["*"], Journal::new().handler()))
        .build()
        .expect_err("a session pool to the same endpoint");
    assert!(
        matches!(
            err,
            pgbus::Error::Config {
                field: "session_pool",
                ..
            }
        ),
        "{err:?}"
    );
}
