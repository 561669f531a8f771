//! Wake-ups of an idle dispatcher (poll interval 10 s): by NOTIFY from another connection,
//! and by a publish in the same process.
//!
//! The in-process wake-up is process-global: any test publishing in this test binary wakes
//! every dispatcher in it. So each check runs in a child process of its own (this binary,
//! filtered to one `#[ignore]`d test) where nothing else publishes, and first shows that
//! the dispatcher really is idle: a row inserted without any wake-up stays undelivered.

use std::time::Duration;

use pgbus::{DispatcherHandle, NewEvent, Publisher, Subscription};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::time::Instant;
use uuid::Uuid;

use crate::support::database::{count, db};
use crate::support::dispatcher::{dispatcher, start, stop};
use crate::support::journal::Journal;
use crate::support::process::rerun_test;
use crate::support::wait::wait_until;

const DB_URL_ENV: &str = "PGBUS_WAKE_TEST_DATABASE_URL";
/// Printed by a child test that ran its checks (rather than returning early).
const RAN_MARKER: &str = "pgbus-wake-check-ran";
const POLL: Duration = Duration::from_secs(10);
/// How soon a woken dispatcher must have started the handler.
const PROMPT: Duration = Duration::from_secs(1);

/// Runs the ignored test `name` of this binary in a child process against `url`.
async fn run_isolated(name: &str, url: &str) {
    let child = rerun_test(name).env(DB_URL_ENV, url).output();
    let out = tokio::time::timeout(Duration::from_secs(120), child)
        .await
        .unwrap_or_else(|_| panic!("{name} did not finish within 120 s"))
        .expect("running the child test process");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success()
            && stdout.contains("test result: ok. 1 passed")
            && stdout.contains(RAN_MARKER),
        "isolated test {name} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
}

/// The database the parent test made, or `None` when run directly.
async fn child_pool() -> Option<PgPool> {
    let url = std::env::var(DB_URL_ENV).ok()?;
    Some(
        PgPoolOptions::new()
            .max_connections(5)
            .connect(&url)
            .await
            .expect("connecting to the parent's database"),
    )
}

async fn start_idle(pool: &PgPool, journal: &Journal, listen: bool) -> DispatcherHandle {
    let handle = start(
        dispatcher(pool)
            .poll_interval(POLL)
            .listen(listen)
            .subscribe(Subscription::raw("waker", ["wake.*"], journal.handler())),
    )
    .await;
    if listen {
        wait_until(
            "the dispatcher's LISTEN",
            Duration::from_secs(10),
            || async {
                count(
                    pool,
                    "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
                )
                .await
                    == 1
            },
        )
        .await;
    }
    // Let the start-up fetches (and the one after LISTEN connects) run out: the dispatcher
    // lingers 255 ms after each wake-up. This only makes the idleness check below
    // meaningful; it does not make anything pass.
    tokio::time::sleep(Duration::from_millis(800)).await;
    handle
}

/// Writes an event and its delivery (a pack of one in the delivery log) with plain SQL: no
/// NOTIFY, no in-process wake-up.
async fn insert_raw(conn: &mut PgConnection) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "WITH e AS (INSERT INTO pgbus.events (id, type, source, data)
                    VALUES ($1, 'wake.raw', 'raw-sql', '{}') RETURNING id)
         INSERT INTO pgbus.log_packs (slot, subscription, priority, event_ids)
         SELECT (SELECT slot FROM pgbus.log_ring ORDER BY generation DESC LIMIT 1), 'waker', 0,
                ARRAY[id]
         FROM e",
    )
    .bind(id)
    .execute(&mut *conn)
    .await
    .expect("raw insert");
    id
}

/// Shows the dispatcher is idle: a row written without a wake-up is not picked up.
async fn assert_idle(journal: &Journal, conn: &mut PgConnection) -> Uuid {
    let unannounced = insert_raw(conn).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        journal.len(),
        0,
        "the dispatcher (poll interval {POLL:?}) took a row without being woken, so this \
         test cannot tell a wake-up from polling"
    );
    unannounced
}

/// Waits until `event` was handled and returns how long after `since` that was.
async fn handled_after(journal: &Journal, event: Uuid, since: Instant) -> Duration {
    wait_until(
        "the woken dispatcher to handle the event",
        POLL * 2,
        || async { journal.calls().iter().any(|c| c.event_id == event) },
    )
    .await;
    let call = journal
        .calls()
        .into_iter()
        .find(|c| c.event_id == event)
        .expect("call");
    call.at - since
}

/// The check every isolated test makes: start an idle dispatcher (listening or not), show
/// it is idle, then `wake` it (given the child's pool and a separate connection; it returns
/// the event it published and when it was committed) and require that event handled within
/// [`PROMPT`], and the row written without a wake-up handled too. `what` names the wake-up.
async fn check_wake_up<F>(what: &str, listen: bool, wake: F)
where
    F: AsyncFnOnce(&PgPool, &mut PgConnection) -> (Uuid, Instant),
{
    let Some(pool) = child_pool().await else {
        eprintln!("{DB_URL_ENV} not set: nothing to do outside the parent test");
        return;
    };
    let journal = Journal::new();
    let handle = start_idle(&pool, &journal, listen).await;
    let mut other = PgConnection::connect(&std::env::var(DB_URL_ENV).unwrap())
        .await
        .expect("separate connection");
    let unannounced = assert_idle(&journal, &mut other).await;

    let (event, committed) = wake(&pool, &mut other).await;
    let latency = handled_after(&journal, event, committed).await;
    assert!(
        latency < PROMPT,
        "{what}: the event was handled only {latency:?} after its commit"
    );
    println!("{RAN_MARKER}: {what} wake-up after {latency:?}");
    handled_after(&journal, unannounced, committed).await;
    stop(&pool, handle).await;
    other.close().await.ok();
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_from_another_connection_wakes_an_idle_dispatcher() {
    let db = db().await;
    run_isolated("wake::isolated_notify_wake", db.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run in a child process by notify_from_another_connection_wakes_an_idle_dispatcher"]
async fn isolated_notify_wake() {
    check_wake_up("NOTIFY", true, async |_, other| {
        let mut tx = other.begin().await.expect("begin");
        let announced = insert_raw(&mut tx).await;
        sqlx::query("NOTIFY pgbus")
            .execute(&mut *tx)
            .await
            .expect("NOTIFY");
        let committed = Instant::now();
        tx.commit().await.expect("commit");
        (announced, committed)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_in_the_same_process_wakes_an_idle_dispatcher() {
    let db = db().await;
    run_isolated("wake::isolated_local_wake", db.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run in a child process by a_publish_in_the_same_process_wakes_an_idle_dispatcher"]
async fn isolated_local_wake() {
    // No LISTEN and no NOTIFY: only the in-process wake-up can be at work.
    check_wake_up("local", false, async |pool, _| {
        let publisher = Publisher::builder()
            .source("local")
            .notify(false)
            .build()
            .expect("publisher");
        let event = NewEvent::raw("wake.local", json!({}));
        let id = event.id();
        let mut conn = pool.acquire().await.expect("conn");
        let published = Instant::now();
        publisher.publish(&mut conn, event).await.expect("publish");
        (id, published)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_that_commits_later_still_wakes_an_idle_dispatcher() {
    let db = db().await;
    run_isolated("wake::isolated_late_commit_wake", db.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run in a child process by a_transaction_that_commits_later_still_wakes_an_idle_dispatcher"]
async fn isolated_late_commit_wake() {
    // The usual case: publish inside the service's transaction, which goes on with its own
    // work and commits well after the publish statement (and its in-process wake-up).
    check_wake_up(
        "late-commit (200 ms after the publish)",
        true,
        async |pool, _| {
            let publisher = Publisher::new("late").expect("publisher");
            let event = NewEvent::raw("wake.late", json!({}));
            let id = event.id();
            let mut tx = pool.begin().await.expect("begin");
            publisher.publish(&mut tx, event).await.expect("publish");
            tokio::time::sleep(Duration::from_millis(200)).await;
            let committed = Instant::now();
            tx.commit().await.expect("commit");
            (id, committed)
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debounced_publish_that_commits_later_is_found_before_the_poll() {
    let db = db().await;
    run_isolated("wake::isolated_debounced_late_commit", db.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run in a child process by a_debounced_publish_that_commits_later_is_found_before_the_poll"]
async fn isolated_debounced_late_commit() {
    // A publish inside another's NOTIFY debounce window sends no NOTIFY of its own: it is
    // found by the dispatcher's lingering after its wake-up, here 150 ms after it (the
    // linger lasts a quarter of a second; it lasted 31 ms, and this event waited for the
    // poll interval).
    check_wake_up(
        "debounced late-commit (150 ms after the publish)",
        true,
        async |pool, _| {
            let publisher = Publisher::builder()
                .source("debounced")
                .notify_debounce(Duration::from_secs(3600))
                .build()
                .expect("publisher");
            let first = NewEvent::raw("wake.first", json!({}));
            let mut conn = pool.acquire().await.expect("conn");
            publisher.publish(&mut conn, first).await.expect("publish");
            drop(conn);
            let event = NewEvent::raw("wake.debounced", json!({}));
            let id = event.id();
            let mut tx = pool.begin().await.expect("begin");
            publisher.publish(&mut tx, event).await.expect("publish");
            tokio::time::sleep(Duration::from_millis(150)).await;
            let committed = Instant::now();
            tx.commit().await.expect("commit");
            (id, committed)
        },
    )
    .await;
}
