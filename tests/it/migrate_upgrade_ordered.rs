//! Upgrading a version-16 schema (the last whose ordered subscriptions kept their keyed
//! deliveries out of the delivery log, migration 0017) that holds ordered deliveries as a
//! version-16 dispatcher leaves them (waiting, retrying, taken by a dispatcher that crashed):
//! after `migrate`, what is published goes to the log, and every key still runs one delivery
//! at a time in publish order, its older deliveries first.

use crate::ordered::{Spans, failing, keyed, seqs_of};
use crate::support::database::{count, empty_db};
use crate::support::deliveries::delivery_count_in;
use crate::support::dispatcher::{dispatcher, start, stop};
use crate::support::old_schema::schema_at;
use crate::support::publishing::publish_events;
use crate::support::states::{PENDING, RUNNING};
use crate::support::wait::{SOON, wait_until};

const KEYS: [&str; 3] = ["a", "b", "c"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_16_schema_with_ordered_deliveries_upgrades_to_ordered_claims_of_the_log() {
    let db = empty_db().await;
    let pool = db.pool();
    schema_at(pool, 16).await;
    sqlx::query(
        "INSERT INTO pgbus.subscriptions (name, patterns, like_patterns, ordered)
         VALUES ('fifo', ARRAY['fifo.*'], ARRAY['fifo.%'], true)",
    )
    .execute(pool)
    .await
    .expect("the subscription");
    // Positions 0..3 of every key through version 16's SQL publish: rows of pgbus.deliveries.
    for seq in 0..3_i64 {
        for key in KEYS {
            sqlx::query(
                "SELECT pgbus.publish('fifo.step', jsonb_build_object('k', $1::text, 'seq', $2::int8),
                                      'v16', key => $1)",
            )
            .bind(key)
            .bind(seq)
            .execute(pool)
            .await
            .expect("a version-16 publish");
        }
    }
    // Key b's head failed once and is due again shortly; key c's head was claimed by a
    // version-16 dispatcher that crashed: its lease has expired.
    sqlx::query(
        "UPDATE pgbus.deliveries d
         SET attempts = 1, run_at = now() + interval '300 milliseconds',
             last_error = 'failed in version 16'
         WHERE d.seq = (SELECT min(x.seq) FROM pgbus.deliveries x WHERE x.key = 'b')",
    )
    .execute(pool)
    .await
    .expect("a retrying head");
    sqlx::query(
        "UPDATE pgbus.deliveries d
         SET state = 1, attempts = 1, lease_id = 12345, run_at = now() - interval '1 second'
         WHERE d.seq = (SELECT min(x.seq) FROM pgbus.deliveries x WHERE x.key = 'c')",
    )
    .execute(pool)
    .await
    .expect("a crashed head");
    assert_eq!(
        count(pool, "SELECT count(*) FROM pgbus.deliveries WHERE ordered").await,
        9
    );
    assert_eq!(
        count(pool, "SELECT count(*) FROM pgbus.delivery_log").await,
        0
    );

    pgbus::migrate(pool).await.expect("migrate from version 16");
    assert_eq!(
        count(pool, "SELECT max(version) FROM pgbus.schema_migrations").await,
        25
    );
    // Positions 3..6 of every key, published from Rust after the upgrade: the log, with seq.
    let later: Vec<_> = (3..6_i64)
        .flat_map(|seq| KEYS.map(|k| keyed(k, seq)))
        .collect();
    publish_events(pool, &later).await;
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM pgbus.delivery_log WHERE seq IS NOT NULL"
        )
        .await,
        9,
        "deliveries published after the upgrade go to the log"
    );

    let spans = Spans::default();
    let handle = start(dispatcher(pool).subscribe(failing("fifo", &spans, |_, _, _| None))).await;
    wait_until("every key to be handled to its end", SOON, || async {
        KEYS.iter().all(|k| seqs_of(&spans, k).len() >= 6)
    })
    .await;
    wait_until("no delivery left unfinished", SOON, || async {
        delivery_count_in(pool, &[PENDING, RUNNING]).await == 0
    })
    .await;
    stop(pool, handle).await;
    for key in KEYS {
        assert_eq!(seqs_of(&spans, key), [0, 1, 2, 3, 4, 5], "key {key}");
    }
}
