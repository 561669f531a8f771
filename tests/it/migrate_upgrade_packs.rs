//! Upgrading a version-18 schema (the last whose delivery log held a row per delivery,
//! migration 0019) that holds log rows not read yet, a batch claimed by a dispatcher that
//! crashed, and an ordered subscription's keyed rows: after `migrate`, every delivery runs
//! once, the old rows first in their lanes, and new deliveries get ids past the old ones.

use pgbus::Subscription;
use uuid::Uuid;

use crate::support::database::{count, empty_db};
use crate::support::dispatcher::{dispatcher, start, stop};
use crate::support::journal::Journal;
use crate::support::old_schema::schema_at;
use crate::support::publishing::publish_n;
use crate::support::wait::{SOON, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_18_log_with_rows_in_flight_upgrades_to_packs() {
    let db = empty_db().await;
    let pool = db.pool();
    schema_at(pool, 18).await;
    sqlx::query(
        "INSERT INTO pgbus.subscriptions (name, patterns, like_patterns, ordered)
         VALUES ('plain', ARRAY['up.*'], ARRAY['up.%'], false),
                ('fifo', ARRAY['up.*'], ARRAY['up.%'], true)",
    )
    .execute(pool)
    .await
    .expect("the subscriptions");
    // Ten events through version 18's SQL publish, keyed by two keys: rows of the log for
    // both subscriptions (the ordered one's with their seq).
    let mut old: Vec<Uuid> = Vec::new();
    for i in 0..10 {
        old.push(
            sqlx::query_scalar(
                "SELECT pgbus.publish('up.old', jsonb_build_object('i', $1::int), 'v18',
                                      key => 'k' || ($1::int % 2))",
            )
            .bind(i)
            .fetch_one(pool)
            .await
            .expect("a version-18 publish"),
        );
    }
    // A dispatcher of version 18 claimed the first four of `plain` and crashed: an open batch
    // whose lease has expired.
    let claimed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pgbus.claim_log('plain', 4, -1, 99, pg_current_snapshot())",
    )
    .fetch_one(pool)
    .await
    .expect("a version-18 claim");
    assert_eq!(claimed, 4);
    let old_max: i64 = count(pool, "SELECT max(id) FROM pgbus.delivery_log").await;

    pgbus::migrate(pool).await.expect("migrate from version 18");
    assert_eq!(
        count(pool, "SELECT count(*) FROM pgbus.log_packs").await,
        20,
        "each old row a pack of one"
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM pgbus.delivery_log WHERE subscription = 'fifo' AND seq IS NOT NULL"
        )
        .await,
        10,
        "the ordered rows keep their seq"
    );
    let new = publish_n(pool, "up.new", 300).await;
    assert!(
        count(
            pool,
            "SELECT min(id) FROM pgbus.log_packs WHERE cardinality(event_ids) > 1"
        )
        .await
            > old_max,
        "new ids past the old ones"
    );

    let (plain, fifo) = (Journal::new(), Journal::new());
    let handle = start(
        dispatcher(pool)
            .subscribe(Subscription::raw("plain", ["up.*"], plain.handler()))
            .subscribe(Subscription::raw("fifo", ["up.*"], fifo.handler()).ordered()),
    )
    .await;
    wait_until("every delivery of both subscriptions", SOON, || async {
        plain.len() >= 310 && fifo.len() >= 310
    })
    .await;
    stop(pool, handle).await;
    let mut all: Vec<Uuid> = old.iter().chain(&new).copied().collect();
    all.sort();
    assert_eq!(plain.sorted_event_ids(), all, "plain: each delivery once");
    assert_eq!(fifo.sorted_event_ids(), all, "fifo: each delivery once");
}
