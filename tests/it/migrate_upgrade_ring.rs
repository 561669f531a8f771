//! Upgrading a version-13 schema (the last before the events ring, migrations 0014 and 0015)
//! that holds events and deliveries in every state: after `migrate`, the old table is the
//! ring's slot 0, every event is still there and every delivery finishes as it would have.

use pgbus::admin::DeadLetterFilter;
use pgbus::{Admin, Subscription};
use sqlx::PgPool;

use crate::support::database::{count, empty_db};
use crate::support::deliveries::delivery_count_in;
use crate::support::dispatcher::{dispatcher, quick_retry, start, stop};
use crate::support::journal::Journal;
use crate::support::old_schema::schema_at;
use crate::support::states::{DEAD, DONE, PENDING, RUNNING, State};
use crate::support::wait::{SOON, wait_until};

/// One event of type `up.<name>` and its row of `pgbus.deliveries` in `state`, as a
/// version-13 dispatcher left it.
async fn delivery(pool: &PgPool, name: &str, state: State, attempts: i32, run_at_ms: i64) {
    sqlx::query(
        "WITH e AS (
             INSERT INTO pgbus.events (id, type, source, data)
             VALUES (pgbus.uuid_v7(), 'up.' || $1, 'v13', jsonb_build_object('name', $1))
             RETURNING id)
         INSERT INTO pgbus.deliveries (event_id, subscription, state, attempts, run_at,
                                       lease_id, last_error, finished_at)
         SELECT e.id, 'upgrade', $2, $3, now() + $4 * interval '1 millisecond',
                CASE WHEN $2 = 1 THEN 12345 END,
                CASE WHEN $3 > 1 THEN 'failed in version 13' END,
                CASE WHEN $2 >= 2 THEN now() END
         FROM e",
    )
    .bind(name)
    .bind(state)
    .bind(attempts)
    .bind(run_at_ms)
    .execute(pool)
    .await
    .expect("a version-13 delivery");
}

#[tokio::test]
async fn a_version_13_schema_with_events_in_every_state_upgrades_to_the_events_ring() {
    let db = empty_db().await;
    let pool = db.pool();
    schema_at(pool, 13).await;
    sqlx::query(
        "INSERT INTO pgbus.subscriptions (name, patterns, like_patterns)
         VALUES ('upgrade', ARRAY['up.*'], ARRAY['up.%'])",
    )
    .execute(pool)
    .await
    .expect("the subscription");
    // Due now, through the version-13 SQL publish: a row of the delivery log, not read yet.
    sqlx::query("SELECT pgbus.publish('up.log', '{\"name\": \"log\"}', 'v13')")
        .execute(pool)
        .await
        .expect("a version-13 publish");
    delivery(pool, "pending", PENDING, 0, 0).await;
    // Claimed by a version-13 dispatcher that crashed: its lease has expired.
    delivery(pool, "running", RUNNING, 1, -1_000).await;
    // Failed twice, due again shortly.
    delivery(pool, "retrying", PENDING, 2, 300).await;
    delivery(pool, "dead", DEAD, 5, 0).await;
    delivery(pool, "done", DONE, 1, 0).await;

    pgbus::migrate(pool).await.expect("migrate from version 13");
    assert_eq!(
        count(pool, "SELECT max(version) FROM pgbus.schema_migrations").await,
        25
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'pgbus.events'::regclass"
        )
        .await,
        8,
        "eight slots"
    );
    assert_eq!(
        count(pool, "SELECT count(*) FROM pgbus.events_0").await,
        6,
        "the old table is slot 0, with every event"
    );
    assert_eq!(
        count(pool, "SELECT count(*) FROM pgbus.events WHERE slot <> 0").await,
        0
    );
    assert_eq!(
        count(
            pool,
            "SELECT (SELECT count(*) FROM pgbus.deliveries WHERE event_slot = 0)
                  + (SELECT count(*) FROM pgbus.delivery_log WHERE event_slot = 0)"
        )
        .await,
        6,
        "every row refers to slot 0"
    );

    let journal = Journal::new();
    let handle =
        start(dispatcher(pool).retain_done(true).subscribe(
            Subscription::raw("upgrade", ["up.*"], journal.handler()).retry(quick_retry()),
        ))
        .await;
    // Published after the upgrade: into the ring's current slot.
    sqlx::query("SELECT pgbus.publish('up.after', '{\"name\": \"after\"}', 'v15')")
        .execute(pool)
        .await
        .expect("a publish after the upgrade");
    wait_until("every live delivery to finish", SOON, || async {
        journal.len() >= 5 && delivery_count_in(pool, &[PENDING, RUNNING]).await == 0
    })
    .await;
    stop(pool, handle).await;

    assert_eq!(
        journal.sorted_names_and_attempts(),
        [
            ("after".to_owned(), 1),
            ("log".to_owned(), 1),
            ("pending".to_owned(), 1),
            ("retrying".to_owned(), 3),
            // The lost attempt 1 counted; taken back and run as attempt 2.
            ("running".to_owned(), 2),
        ]
    );
    assert_eq!(
        delivery_count_in(pool, &[DEAD]).await,
        1,
        "a dead letter stays dead"
    );
    let dead = Admin::new(pool.clone())
        .dead_letters(&DeadLetterFilter::new(), 10, None)
        .await
        .expect("the dead letters");
    assert_eq!(dead.items.len(), 1);
    assert_eq!(
        dead.items[0].event_type.as_deref(),
        Some("up.dead"),
        "the dead letter's event is found in slot 0"
    );
}
