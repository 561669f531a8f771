//! Killed workers: dispatcher *processes* are `kill -9`ed while events are published, and a
//! delivery that aborts its process ends dead without taking its neighbours with it.

use std::collections::HashMap;
use std::time::Duration;

use pgbus::NewEvent;
use serde_json::json;
use tokio::time::Instant;
use uuid::Uuid;

use crate::support::database::{count, db};
use crate::support::deliveries::{
    deliveries, delivery_count, delivery_count_in, delivery_count_not_in, state_counts,
};
use crate::support::env::size;
use crate::support::fault_log::{LogRow, create_fault_log, log_rows, lost_pairs, lost_report};
use crate::support::fleet::Fleet;
use crate::support::publishing::{publish_events, publish_paced};
use crate::support::rng::Rng;
use crate::support::states::DEAD;
use crate::support::wait::wait_until;
use crate::support::worker::{Mode, WorkerConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_lose_no_delivery() {
    let total = size(20_000, 100_000);
    let publish_for = size(Duration::from_secs(12), Duration::from_secs(60));
    let started = Instant::now();
    let db = db().await;
    let pool = db.pool().clone();
    create_fault_log(&pool).await;
    let subscriptions = ["kill-a", "kill-b", "kill-c"];
    let config = WorkerConfig::new(db.url(), Mode::Record, &subscriptions, "fault.*");
    let mut fleet = Fleet::start(&pool, config, 3).await;

    let publisher = tokio::spawn(publish_paced(pool.clone(), total, publish_for));
    let mut rng = Rng::from_time();
    let seed = rng.seed();
    let mut kills = 0usize;
    // Kill while publishing, and while the workers work through the backlog until only a
    // few hundred deliveries are open (for at most 15 s more: on a busy machine the workers
    // may be slow, and every kill slows them more).
    let mut kill_until: Option<Instant> = None;
    loop {
        match kill_until {
            None if publisher.is_finished() => {
                kill_until = Some(Instant::now() + Duration::from_secs(size(15, 60)));
            }
            Some(until) if Instant::now() >= until => break,
            _ => {}
        }
        if kill_until.is_some() && delivery_count(&pool).await < 300 {
            break;
        }
        fleet.kill_random(&mut rng, (200, 600)).await;
        kills += 1;
    }
    let published = publisher.await.expect("the publisher task");
    assert_eq!(published.len(), total);
    let killing_ended = Instant::now();
    let backlog = delivery_count(&pool).await;
    let suspects = count(&pool, "SELECT count(*) FROM pgbus.deliveries WHERE solo").await;

    wait_until(
        "every delivery to be done (deliveries table empty)",
        Duration::from_secs(size(240, 900)),
        || async { delivery_count(&pool).await == 0 },
    )
    .await;
    let drained_in = killing_ended.elapsed();
    assert_eq!(
        fleet.reap(),
        0,
        "a worker exited by itself: {:?}",
        fleet.exited
    );
    fleet.kill_all().await;

    // Every published (event, subscription) pair handled at least once.
    assert_eq!(
        count(&pool, "SELECT count(*) FROM pgbus.events").await,
        total as i64
    );
    let lost = lost_pairs(&pool, &published, &subscriptions).await;
    let left = deliveries(&pool).await;
    assert!(
        left.is_empty(),
        "deliveries left: {:?}",
        state_counts(&pool).await
    );

    // Duplicates: a pair handled more than once. Each run but the last of a pair must come
    // from a worker that was killed (a live worker writes its outcome, so nothing runs
    // again), each run of a pair must be of the same delivery, with a new attempt number.
    let log = log_rows(&pool).await;
    let mut by_pair: HashMap<(Uuid, &str), Vec<&LogRow>> = HashMap::new();
    for r in &log {
        by_pair
            .entry((r.event_id, r.subscription.as_str()))
            .or_default()
            .push(r);
    }
    let mut duplicates = 0usize;
    let mut unexplained = Vec::new();
    for runs in by_pair.values() {
        duplicates += runs.len() - 1;
        for pair in runs.windows(2) {
            let (earlier, later) = (pair[0], pair[1]);
            if !fleet.killed.contains(&(earlier.pid as u32))
                || earlier.delivery_id != later.delivery_id
                || later.attempt <= earlier.attempt
            {
                unexplained.push((earlier.clone(), later.clone()));
            }
        }
    }
    let pairs = total * subscriptions.len();
    println!(
        "faults/killed-workers: {total} events x {} subscriptions = {pairs} deliveries; \
         {} workers started, {kills} killed (-9), seed {seed}; lost {lost}; \
         duplicates {duplicates} ({} handler runs); when the kills stopped {backlog} \
         deliveries were open ({suspects} crash suspects), drained in {:.1} s; {:.1} s in all",
        subscriptions.len(),
        fleet.spawned(),
        log.len(),
        drained_in.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    if lost > 0 {
        panic!(
            "{lost} deliveries lost:\n{}",
            lost_report(&pool, &published, &subscriptions).await
        );
    }
    assert_eq!(by_pair.len(), pairs, "handled pairs");
    assert!(
        unexplained.is_empty(),
        "{} duplicate runs not explained by a killed worker, e.g. {:?}",
        unexplained.len(),
        &unexplained[..unexplained.len().min(5)]
    );
    assert!(kills > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_delivery_ends_dead_and_its_neighbours_are_delivered() {
    const MAX_ATTEMPTS: u32 = 3;
    const NEIGHBOURS: usize = 40;
    let db = db().await;
    let pool = db.pool().clone();
    create_fault_log(&pool).await;
    let config = WorkerConfig {
        lease: Duration::from_secs(1),
        concurrency: 4,
        batch_size: 20,
        max_attempts: MAX_ATTEMPTS,
        poll_interval: Duration::from_millis(100),
        ..WorkerConfig::new(db.url(), Mode::Poison, &["poison-a"], "fault.*")
    };
    let mut fleet = Fleet::start(&pool, config, 2).await;

    // The poison event first (smaller priority), so it is claimed with neighbours beside it.
    let mut events = vec![NewEvent::raw("fault.poison", json!({ "poison": true })).priority(-1)];
    events.extend((0..NEIGHBOURS).map(|n| NewEvent::raw("fault.tick", json!({ "n": n }))));
    let poison_id = events[0].id();
    let neighbours: Vec<Uuid> = events[1..].iter().map(NewEvent::id).collect();
    publish_events(&pool, &events).await;

    // Restart workers as they die, until the poison is dead and everything else delivered.
    let mut crashes = 0usize;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let died = fleet.reap();
        crashes += died;
        fleet.spawn_n(died);
        let open = delivery_count_not_in(&pool, &[DEAD]).await;
        let dead = delivery_count_in(&pool, &[DEAD]).await;
        if open == 0 && dead >= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "poison test did not settle in 90 s: {crashes} crashes, rows {:?}",
            deliveries(&pool).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fleet.kill_all().await;

    let left = deliveries(&pool).await;
    assert_eq!(left.len(), 1, "only the poison delivery is left: {left:#?}");
    let poison = &left[0];
    assert_eq!(poison.event_id, poison_id);
    assert_eq!(poison.state, DEAD, "{poison:?}");
    assert_eq!(poison.attempts, MAX_ATTEMPTS as i32, "{poison:?}");
    let error = poison.last_error.as_deref().unwrap_or_default();
    assert!(
        error.starts_with(&format!(
            "lease expired during attempt {MAX_ATTEMPTS} of {MAX_ATTEMPTS}"
        )),
        "{error}"
    );
    assert_eq!(
        crashes, MAX_ATTEMPTS as usize,
        "each poison attempt kills one worker, and nothing else does"
    );
    assert_eq!(lost_pairs(&pool, &neighbours, &["poison-a"]).await, 0);
    let log = log_rows(&pool).await;
    let retried_alone = log.iter().filter(|r| r.attempt > 1).count();
    println!(
        "faults/poison: 1 poison delivery dead after {MAX_ATTEMPTS} attempts ({crashes} worker \
         crashes); {NEIGHBOURS} neighbours delivered, {retried_alone} of them retried after a \
         crash beside the poison; {} handler runs",
        log.len()
    );
}
