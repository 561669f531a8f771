//! A killed dispatcher's leases are taken back as soon as it is known to be gone, not when
//! they expire; a live one, however slow, keeps them.

use std::time::Duration;

use pgbus::Subscription;
use sqlx::PgPool;
use tokio::time::Instant;

use crate::support::database::{count, db};
use crate::support::deliveries::{delivery_count, delivery_count_in};
use crate::support::dispatcher::{dispatcher, shutdown, start, stop};
use crate::support::fault_log::{Recorder, create_fault_log};
use crate::support::fleet::Fleet;
use crate::support::publishing::publish_n;
use crate::support::states::RUNNING;
use crate::support::wait::{SOON, wait_until};
use crate::support::worker::{Mode, WorkerConfig};

const HELD: usize = 500;
const LEASE: Duration = Duration::from_secs(30);

/// One worker process whose handlers never return, so it holds what it claims (a batch of
/// `batch`) until it is killed.
async fn holding_worker(pool: &PgPool, url: &str, subscription: &str, batch: usize) -> Fleet {
    let config = WorkerConfig {
        lease: LEASE,
        concurrency: 4,
        batch_size: batch,
        ..WorkerConfig::new(url, Mode::Hold, &[subscription], "fault.*")
    };
    Fleet::start(pool, config, 1).await
}

async fn running(pool: &PgPool) -> i64 {
    delivery_count_in(pool, &[RUNNING]).await
}

#[tokio::test]
async fn a_killed_dispatchers_deliveries_run_again_long_before_their_lease_expires() {
    let db = db().await;
    let pool = db.pool();
    create_fault_log(pool).await;
    let mut fleet = holding_worker(pool, db.url(), "takeover", HELD).await;
    publish_n(pool, "fault.tick", HELD).await;
    wait_until("the worker to hold all deliveries", SOON, || async {
        running(pool).await == HELD as i64
    })
    .await;

    fleet.kill(0).await;
    let killed = Instant::now();
    let rescuer = start(dispatcher(pool).subscribe(
        Subscription::raw("takeover", ["fault.*"], Recorder(pool.clone())).lease(LEASE),
    ))
    .await;
    wait_until(
        "the killed worker's deliveries to run again",
        LEASE / 3,
        || async { delivery_count(pool).await == 0 },
    )
    .await;
    let took = killed.elapsed();
    println!(
        "faults/takeover: {HELD} deliveries held by a killed worker all ran again {:.2} s after \
         the kill (lease {} s)",
        took.as_secs_f64(),
        LEASE.as_secs()
    );
    assert_eq!(
        count(pool, "SELECT count(DISTINCT delivery_id) FROM fault_log").await,
        HELD as i64,
        "every held delivery handled"
    );
    assert_eq!(
        count(pool, "SELECT count(*) FROM pgbus.dispatchers").await,
        1,
        "the dead dispatcher is unregistered, the rescuer is not"
    );
    stop(pool, rescuer).await;
    assert_eq!(
        count(pool, "SELECT count(*) FROM pgbus.dispatchers").await,
        0
    );
}

#[tokio::test]
async fn a_live_dispatcher_keeps_its_leases_while_another_looks_for_dead_ones() {
    let db = db().await;
    let pool = db.pool();
    create_fault_log(pool).await;
    let mut fleet = holding_worker(pool, db.url(), "held", 50).await;
    publish_n(pool, "fault.tick", 50).await;
    wait_until("the worker to hold all deliveries", SOON, || async {
        running(pool).await == 50
    })
    .await;
    let watcher = start(
        dispatcher(pool)
            .subscribe(Subscription::raw("held", ["fault.*"], Recorder(pool.clone())).lease(LEASE)),
    )
    .await;
    // Several grace periods of reaping: the live worker's leases stay where they are.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert_eq!(running(pool).await, 50, "a live dispatcher lost a lease");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count(pool, "SELECT count(*) FROM fault_log").await, 0);
    // The worker still runs (and holds its rows): stop the watcher without the helper's
    // check that nothing is left running.
    shutdown(watcher).await;
    fleet.kill_all().await;
}
