//! Stuck lanes: a paused subscription's unread rows keep the delivery log's ring from turning
//! until they are moved to `pgbus.deliveries`; then the ring turns, and once resumed the
//! subscription gets every event once, the moved ones and those published after the move.

use pgbus::Subscription;
use sqlx::PgPool;

use crate::support::database::{count, db};
use crate::support::dispatcher::{dispatcher, register, start, stop};
use crate::support::journal::Journal;
use crate::support::publishing::publish_n;
use crate::support::ring::step;
use crate::support::wait::{SOON, wait_until};

/// Evacuates lanes idle for `idle` (the ring due to turn at once).
async fn evacuate(pool: &PgPool, idle: &str) -> i64 {
    sqlx::query_scalar("SELECT pgbus.log_evacuate('0 s', $1::text::interval)")
        .bind(idle)
        .fetch_one(pool)
        .await
        .expect("evacuating stuck lanes")
}

async fn log_rows(pool: &PgPool) -> i64 {
    count(pool, "SELECT count(*) FROM pgbus.delivery_log").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_lane_is_moved_out_of_the_log_and_gets_every_event_once() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("live", &["job.*"]), ("paused", &["job.*"])]).await;
    sqlx::query("UPDATE pgbus.subscriptions SET paused_at = now() WHERE name = 'paused'")
        .execute(pool)
        .await
        .expect("pause");
    let live = Journal::new();
    let serve = |live: &Journal| {
        dispatcher(pool).subscribe(Subscription::raw("live", ["job.*"], live.handler()))
    };
    let handle = start(serve(&live)).await;
    let mut ids = publish_n(pool, "job.run", 20).await;
    wait_until("live to read every event", SOON, || async {
        live.len() == 20
    })
    .await;
    // `paused` read nothing: its rows keep their slot, and the ring stops turning.
    for _ in 0..6 {
        step(pool).await;
    }
    assert_eq!(
        log_rows(pool).await,
        40,
        "the slot holding paused's rows is kept"
    );
    stop(pool, handle).await;

    // Not idle long enough: nothing moves.
    assert_eq!(evacuate(pool, "1 hour").await, 0);
    // Idle: paused's unread rows move to pgbus.deliveries; live's lane, which claimed a
    // moment ago (its lease is not over), is left alone.
    assert_eq!(evacuate(pool, "0 s").await, 20);
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM pgbus.claims WHERE subscription = 'paused'
             AND (n > 0 OR claimed_at IS NOT NULL)"
        )
        .await,
        0,
        "the moved cursor of a lane never claimed is no claim (no claimed_at)"
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM pgbus.deliveries WHERE subscription = 'paused' AND state = 0"
        )
        .await,
        20
    );
    for _ in 0..4 {
        step(pool).await;
    }
    assert_eq!(log_rows(pool).await, 0, "the ring turns again");
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM pgbus.all_deliveries WHERE subscription = 'paused'"
        )
        .await,
        20,
        "each moved delivery is counted once"
    );

    // Published after the move: read from the log, after the moved rows' cut.
    ids.extend(publish_n(pool, "job.run", 5).await);
    sqlx::query("UPDATE pgbus.subscriptions SET paused_at = NULL WHERE name = 'paused'")
        .execute(pool)
        .await
        .expect("resume");
    let paused = Journal::new();
    let handle =
        start(serve(&live).subscribe(Subscription::raw("paused", ["job.*"], paused.handler())))
            .await;
    wait_until("paused to read every event", SOON, || async {
        paused.len() == 25 && live.len() == 25
    })
    .await;
    stop(pool, handle).await;
    ids.sort();
    assert_eq!(paused.sorted_event_ids(), ids, "every event once");
    assert_eq!(live.sorted_event_ids(), ids);
    assert_eq!(
        count(pool, "SELECT count(*) FROM pgbus.all_deliveries").await,
        0
    );
}
