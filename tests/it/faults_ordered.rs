//! Ordered subscriptions under `kill -9`: 1,000 keys × 50 events published interleaved from
//! several transactions at once, two dispatcher processes, one killed mid-run and replaced.
//! Every key is handled in publish order (a killed in-flight delivery runs again before the
//! key's next one), no two calls of one key overlap in time, nothing is lost.

use std::collections::HashMap;
use std::time::Duration;

use crate::ordered::publish_rounds;
use crate::support::database::{count, db};
use crate::support::env::size;
use crate::support::fleet::Fleet;
use crate::support::order_log::{Call, calls_by_key, create_order_log, handled};
use crate::support::wait::wait_until;
use crate::support::worker::{Mode, WorkerConfig};

/// The database clock now, in microseconds since the epoch.
async fn db_now(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT (extract(epoch FROM clock_timestamp()) * 1e6)::int8")
        .fetch_one(pool)
        .await
        .expect("the database clock")
}

/// Checks one key's calls (in start order) against its publish order `0..per_key`; `killed`
/// maps the pids of killed workers to when they were killed.
fn check_key(key: &str, calls: &[Call], per_key: i64, killed: &HashMap<i32, i64>) {
    for pair in calls.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        match a.end {
            Some(end) => assert!(
                b.start >= end,
                "key {key}: seq {} started before seq {} ended: {calls:?}",
                b.seq,
                a.seq
            ),
            None => {
                // Cut short: its worker was killed (or its handler failed). It runs again
                // before the key's next delivery, and only after its worker is gone.
                assert_eq!(
                    b.seq, a.seq,
                    "key {key}: an unfinished call was not retried next: {calls:?}"
                );
                if let Some(&at) = killed.get(&a.pid) {
                    assert!(
                        b.start >= at,
                        "key {key}: ran again while its worker lived: {calls:?}"
                    );
                }
            }
        }
    }
    assert!(
        calls.last().is_some_and(|c| c.end.is_some()),
        "key {key}: its last call did not finish: {calls:?}"
    );
    let mut seqs: Vec<i64> = calls.iter().map(|c| c.seq).collect();
    seqs.dedup();
    let expected: Vec<i64> = (0..per_key).collect();
    assert_eq!(
        seqs, expected,
        "key {key}: handled order differs from publish order: {calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_keys_keep_their_order_when_a_worker_is_killed() {
    let db = db().await;
    let pool = db.pool().clone();
    create_order_log(&pool).await;
    let (keys, per_key) = size((1_000, 50), (2_000, 100));
    let total = (keys * per_key) as i64;
    let config = WorkerConfig {
        batch_size: 50,
        ..WorkerConfig::new(db.url(), Mode::Ordered, &["fifo"], "fifo.*")
    };
    let mut fleet = Fleet::start(&pool, config, 2).await;

    let publisher = {
        let pool = pool.clone();
        tokio::spawn(async move { publish_rounds(&pool, keys, per_key as i64, 4).await })
    };
    wait_until(
        "a third of the deliveries to be handled",
        Duration::from_secs(300),
        || async { handled(&pool).await >= total / 3 },
    )
    .await;
    let mut killed = HashMap::new();
    let at = db_now(&pool).await;
    let pid = fleet.kill(0).await;
    killed.insert(pid as i32, at);
    fleet.spawn();
    publisher.await.expect("publishing");

    wait_until(
        "every delivery to be handled",
        Duration::from_secs(300),
        || async {
            handled(&pool).await == total
                && count(&pool, "SELECT count(*) FROM pgbus.deliveries").await == 0
        },
    )
    .await;
    fleet.kill_all().await;

    let by_key = calls_by_key(&pool).await;
    assert_eq!(by_key.len(), keys, "every key was handled");
    for (key, calls) in &by_key {
        check_key(key, calls, per_key as i64, &killed);
    }
    let cut_short = by_key
        .values()
        .flatten()
        .filter(|c| c.end.is_none())
        .count();
    let runs = by_key.values().map(Vec::len).sum::<usize>();
    eprintln!(
        "faults_ordered: {total} deliveries, {runs} handler calls, {cut_short} cut short by the kill"
    );
}
