//! The admin API's health, dispatchers and retention: live and gone dispatchers (by their
//! presence lock), lag and unserved subscriptions, a missing schema, an unreachable
//! database; reaping a gone dispatcher; pruning on demand in bounded batches.

use std::time::Duration;

use pgbus::admin::{HealthOptions, Problem, Retention};
use pgbus::{Admin, Error, Subscription};

use crate::support::database::{count, db, empty_db, lazy_pool};
use crate::support::deliveries::delivery_count_in;
use crate::support::dispatcher::{dispatcher, register, start, stop};
use crate::support::journal::Journal;
use crate::support::publishing::{publish_n, publish_n_as_rows};
use crate::support::states::DONE;
use crate::support::wait::{SOON, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_sees_live_dispatchers_lag_and_unserved_subscriptions() {
    let db = db().await;
    let pool = db.pool();
    let admin = Admin::new(pool.clone());
    let health = admin.health(&HealthOptions::default()).await;
    assert!(health.healthy, "{health:?}");
    assert_eq!(health.schema_version, health.known_schema_version);

    register(pool, &[("reports.build", &["report.*"])]).await;
    publish_n(pool, "report.requested", 2).await;
    let strict = HealthOptions::default().max_lag(Duration::ZERO);
    let health = admin.health(&strict).await;
    assert!(!health.healthy);
    assert!(
        health.problems.contains(&Problem::Unserved {
            subscription: "reports.build".into(),
            due: 2
        }),
        "{:?}",
        health.problems
    );
    assert!(health.problems.iter().any(
        |p| matches!(p, Problem::Lagging { subscription, .. } if subscription == "reports.build")
    ));
    // Paused, it is not judged.
    admin.pause("reports.build").await.unwrap();
    assert!(admin.health(&strict).await.healthy);
    admin.resume("reports.build").await.unwrap();

    // Served and drained: healthy, the dispatcher listed alive with its subscription.
    let journal = Journal::new();
    let handle = start(dispatcher(pool).subscribe(Subscription::raw(
        "reports.build",
        ["report.*"],
        journal.handler(),
    )))
    .await;
    wait_until("the reports to be built", SOON, || async {
        journal.len() == 2
    })
    .await;
    let health = admin.health(&strict).await;
    assert!(health.healthy, "{health:?}");
    assert_eq!(health.dispatchers.len(), 1);
    let d = &health.dispatchers[0];
    assert!(d.alive);
    assert_eq!(d.pid, std::process::id() as i32);
    assert_eq!(d.subscriptions, ["reports.build"]);
    stop(pool, handle).await;
    assert!(
        admin.dispatchers().await.unwrap().is_empty(),
        "a clean stop unregisters"
    );
}

#[tokio::test]
async fn a_gone_dispatcher_is_reported_stale_and_reaped_with_its_leases() {
    let db = db().await;
    let pool = db.pool();
    let admin = Admin::new(pool.clone());
    register(pool, &[("work", &["work.*"])]).await;
    publish_n_as_rows(pool, "work.item", 1).await;
    // A dispatcher that registered, claimed, and was killed: its row stays, nobody holds
    // its presence lock, its lease runs for another hour.
    sqlx::query("INSERT INTO pgbus.dispatchers (id, host, pid) VALUES (4242, 'gone-host', 1)")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE pgbus.deliveries
         SET state = 1, lease_id = 9, owner = 4242, run_at = now() + interval '1 h'",
    )
    .execute(pool)
    .await
    .unwrap();
    let health = admin.health(&HealthOptions::default()).await;
    assert!(!health.healthy);
    assert!(health.problems.contains(&Problem::StaleDispatcher {
        id: 4242,
        host: "gone-host".into(),
        pid: 1
    }));
    assert!(!health.dispatchers[0].alive);

    let reaped = admin.reap_gone_dispatchers().await.unwrap();
    assert_eq!(reaped.len(), 1);
    assert_eq!((reaped[0].id, reaped[0].leases_expired), (4242, 1));
    assert_eq!(
        count(pool, "SELECT count(*) FROM pgbus.dispatchers").await,
        0
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM pgbus.deliveries WHERE run_at <= now()"
        )
        .await,
        1,
        "the lease expired, for the next claim to take back"
    );
}

#[tokio::test]
async fn health_reports_a_missing_schema_and_an_unreachable_database() {
    let empty = empty_db().await;
    let health = Admin::new(empty.pool().clone())
        .health(&HealthOptions::default())
        .await;
    assert!(!health.healthy);
    assert_eq!(
        health.problems,
        [Problem::SchemaBehind {
            found: 0,
            known: health.known_schema_version
        }]
    );

    let nowhere = lazy_pool(
        "postgres://nobody@127.0.0.1:1/none",
        1,
        Duration::from_secs(1),
    );
    let health = Admin::new(nowhere).health(&HealthOptions::default()).await;
    assert!(!health.healthy);
    assert!(matches!(
        health.problems.as_slice(),
        [Problem::DatabaseUnreachable { .. }]
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_on_demand_deletes_what_retention_allows_in_batches() {
    let db = db().await;
    let pool = db.pool();
    let admin = Admin::new(pool.clone());
    let journal = Journal::new();
    let handle = start(
        dispatcher(pool)
            .retain_done(true)
            .subscribe(Subscription::raw(
                "done.keeper",
                ["old.*"],
                journal.handler(),
            )),
    )
    .await;
    publish_n(pool, "old.thing", 5).await;
    wait_until("5 done", SOON, || async {
        delivery_count_in(pool, &[DONE]).await == 5
    })
    .await;
    stop(pool, handle).await;
    // Three unsubscribed events, and everything two days old; one more event is recent.
    publish_n(pool, "nobody.listens", 3).await;
    sqlx::query("UPDATE pgbus.events SET created_at = now() - interval '2 days'")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("UPDATE pgbus.deliveries SET finished_at = now() - interval '2 days'")
        .execute(pool)
        .await
        .unwrap();
    publish_n(pool, "nobody.listens", 1).await;

    assert!(matches!(
        admin.prune(&Retention::new().batch_size(0)).await,
        Err(Error::OutOfRange { .. })
    ));
    let day = Duration::from_secs(86_400);
    let events_only = admin
        .prune(&Retention::new().events_older_than(day))
        .await
        .unwrap();
    assert_eq!(
        (events_only.events, events_only.deliveries),
        (3, 0),
        "events with deliveries stay"
    );

    let mut calls = 0;
    let report = admin
        .prune_with_progress(
            &Retention::new()
                .done_older_than(day)
                .events_older_than(day)
                .batch_size(2),
            |_| calls += 1,
        )
        .await
        .unwrap();
    assert_eq!((report.deliveries, report.events), (5, 5));
    assert_eq!(report.batches, 6, "3 + 3 batches of at most 2");
    assert_eq!(calls, 6);
    assert_eq!(
        count(pool, "SELECT count(*) FROM pgbus.deliveries").await,
        0
    );
    assert_eq!(
        count(pool, "SELECT count(*) FROM pgbus.events").await,
        1,
        "the recent one"
    );
}
