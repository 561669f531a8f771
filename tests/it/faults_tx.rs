//! Killed workers with a transactional handler: dispatcher *processes* are `kill -9`ed while
//! events are published and drained. The transactional handler's writes commit with the
//! deliveries' completions, so it writes exactly one row per delivery; a plain handler of the
//! same events, in the same processes, runs some deliveries again.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use crate::support::database::db;
use crate::support::deliveries::{delivery_count_not_in, state_counts};
use crate::support::env::size;
use crate::support::fault_log::{create_fault_log, log_rows, lost_pairs};
use crate::support::fleet::Fleet;
use crate::support::publishing::publish_paced;
use crate::support::rng::Rng;
use crate::support::states::DONE;
use crate::support::wait::wait_until;
use crate::support::worker::{Mode, WorkerConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_leave_exactly_one_effect_per_transactional_delivery() {
    let total = size(8_000, 50_000);
    let publish_for = size(Duration::from_secs(10), Duration::from_secs(40));
    let started = Instant::now();
    let db = db().await;
    let pool = db.pool().clone();
    create_fault_log(&pool).await;
    let subscriptions = ["tx-kill", "plain-kill"];
    let config = WorkerConfig::new(db.url(), Mode::TxRecord, &subscriptions, "fault.*");
    let mut fleet = Fleet::start(&pool, config, 3).await;

    let publisher = tokio::spawn(publish_paced(pool.clone(), total, publish_for));
    let mut rng = Rng::from_time();
    let seed = rng.seed();
    let mut kills = 0usize;
    // Kill while publishing, and for a few seconds of the backlog after.
    let mut kill_until: Option<Instant> = None;
    loop {
        match kill_until {
            None if publisher.is_finished() => {
                kill_until = Some(Instant::now() + Duration::from_secs(size(4, 15)));
            }
            Some(until) if Instant::now() >= until => break,
            _ => {}
        }
        fleet.kill_random(&mut rng, (200, 600)).await;
        kills += 1;
    }
    let published = publisher.await.expect("the publisher task");
    assert_eq!(published.len(), total);
    wait_until(
        "every delivery to be done",
        Duration::from_secs(size(240, 900)),
        || async { delivery_count_not_in(&pool, &[DONE]).await == 0 },
    )
    .await;
    assert_eq!(
        fleet.reap(),
        0,
        "a worker exited by itself: {:?}",
        fleet.exited
    );
    fleet.kill_all().await;

    let lost = lost_pairs(&pool, &published, &subscriptions).await;
    assert_eq!(lost, 0, "deliveries lost: {:?}", state_counts(&pool).await);
    let mut runs: HashMap<(Uuid, String), usize> = HashMap::new();
    for r in log_rows(&pool).await {
        *runs.entry((r.event_id, r.subscription)).or_default() += 1;
    }
    let rows_of = |sub: &str| -> (usize, usize) {
        let of_sub: Vec<usize> = (runs.iter())
            .filter(|((_, s), _)| s == sub)
            .map(|(_, &n)| n)
            .collect();
        (of_sub.iter().sum(), of_sub.iter().map(|n| n - 1).sum())
    };
    let (tx_rows, tx_duplicates) = rows_of("tx-kill");
    let (plain_rows, plain_duplicates) = rows_of("plain-kill");
    println!(
        "faults/tx-killed-workers: {total} events x 2 subscriptions; {} workers started, \
         {kills} killed (-9), seed {seed}; transactional handler: {tx_rows} rows, \
         {tx_duplicates} duplicates; plain handler: {plain_rows} rows, {plain_duplicates} \
         duplicates; {:.1} s in all",
        fleet.spawned(),
        started.elapsed().as_secs_f64()
    );
    assert!(kills > 0);
    assert_eq!(tx_rows, total, "the transactional handler's rows");
    assert_eq!(tx_duplicates, 0, "the transactional handler ran twice");
    assert_eq!(
        plain_rows - plain_duplicates,
        total,
        "the plain handler's deliveries"
    );
    assert!(
        plain_duplicates > 0,
        "the plain handler ran nothing twice: the kills did not hit a delivery in flight"
    );
}
