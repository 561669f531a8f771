//! The admin API on subscriptions: counts, lag and serving dispatchers; pause and resume
//! across dispatchers and restarts; removal; bad names refused without writing.

use pgbus::{Admin, Error, NewEvent, Subscription};
use serde_json::json;

use crate::support::database::{count, db, table_counts};
use crate::support::dispatcher::{dispatcher, register, start, stop};
use crate::support::journal::Journal;
use crate::support::publishing::{publish_n, publish_n_as_rows, publish_one};
use crate::support::wait::{SOON, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_shows_patterns_counts_lag_and_the_dispatchers_serving_each() {
    let db = db().await;
    let pool = db.pool();
    let admin = Admin::new(pool.clone());
    // "reports.idle" is registered but served by no running dispatcher.
    register(pool, &[("reports.idle", &["report.*"])]).await;
    let journal = Journal::new();
    let handle = start(dispatcher(pool).subscribe(Subscription::raw(
        "listings.live",
        ["property.created"],
        journal.handler(),
    )))
    .await;
    publish_n(pool, "report.ready", 3).await;
    publish_n(pool, "property.created", 2).await;
    wait_until(
        "the live subscription to handle its 2 events",
        SOON,
        || async { journal.len() == 2 },
    )
    .await;

    let subs = admin.subscriptions().await.expect("list");
    let names: Vec<&str> = subs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["listings.live", "reports.idle"]);
    let (live, idle) = (&subs[0], &subs[1]);
    let id = count(pool, "SELECT id::int8 FROM pgbus.dispatchers").await as i32;
    assert_eq!(live.patterns, ["property.created"]);
    assert_eq!(live.state, "active");
    assert_eq!(live.dispatchers, [id]);
    assert_eq!((live.counts.pending, live.counts.dead), (0, 0));
    assert_eq!(live.lag, None);
    assert_eq!(idle.patterns, ["report.*"]);
    assert!(idle.dispatchers.is_empty());
    assert_eq!((idle.counts.pending, idle.counts.due), (3, 3));
    assert!(idle.lag.is_some(), "{idle:?}");
    assert!(idle.counts.oldest_due.is_some());

    let one = admin.subscription("reports.idle").await.expect("one");
    assert_eq!(one.counts.pending, 3);
    stop(pool, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_holds_across_dispatchers_and_restarts_and_resume_delivers() {
    let db = db().await;
    let pool = db.pool();
    let admin = Admin::new(pool.clone());
    let paused = Journal::new();
    let canary = Journal::new();
    let build = || {
        dispatcher(pool)
            .subscribe(Subscription::raw("mail.send", ["mail.*"], paused.handler()))
            .subscribe(Subscription::raw("canary", ["canary.*"], canary.handler()))
    };
    let first = start(build()).await;
    let second = start(build()).await;
    assert!(admin.pause("mail.send").await.expect("pause"));
    assert!(
        !admin.pause("mail.send").await.expect("pause again"),
        "already paused"
    );
    let paused_at = admin.subscription("mail.send").await.unwrap().paused_at;
    assert!(paused_at.is_some());

    publish_n(pool, "mail.welcome", 5).await;
    // The canary shows that both dispatchers went on claiming meanwhile.
    publish_n(pool, "canary.tick", 4).await;
    wait_until("the canary deliveries", SOON, || async {
        canary.len() == 4
    })
    .await;
    assert_eq!(paused.len(), 0, "a paused subscription was claimed");

    // A restart registers the subscription again: the pause stays.
    stop(pool, first).await;
    stop(pool, second).await;
    let handle = start(build()).await;
    let info = admin.subscription("mail.send").await.unwrap();
    assert_eq!((info.state, info.paused_at), ("paused", paused_at));
    publish_one(pool, NewEvent::raw("canary.tick", json!({}))).await;
    wait_until("the canary after the restart", SOON, || async {
        canary.len() == 5
    })
    .await;
    assert_eq!(paused.len(), 0);
    assert_eq!(
        admin
            .subscription("mail.send")
            .await
            .unwrap()
            .counts
            .pending,
        5
    );

    assert!(admin.resume("mail.send").await.expect("resume"));
    assert!(!admin.resume("mail.send").await.expect("resume again"));
    wait_until("the paused deliveries after resume", SOON, || async {
        paused.len() == 5
    })
    .await;
    stop(pool, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_deletes_the_subscription_and_its_deliveries_except_running_ones() {
    let db = db().await;
    let pool = db.pool();
    let admin = Admin::new(pool.clone());
    register(pool, &[("old.audit", &["audit.*"]), ("kept", &["audit.*"])]).await;
    // Four deliveries each as rows of pgbus.deliveries, two each in the delivery log.
    publish_n_as_rows(pool, "audit.entry", 4).await;
    publish_n(pool, "audit.entry", 2).await;
    // One delivery as a claim leaves it (running under a lease), one dead.
    sqlx::query(
        "UPDATE pgbus.deliveries SET state = 1, lease_id = 77, run_at = now() + interval '1 h'
         WHERE id = (SELECT min(id) FROM pgbus.deliveries WHERE subscription = 'old.audit')",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE pgbus.deliveries SET state = 3, finished_at = now(), last_error = 'x'
         WHERE id = (SELECT max(id) FROM pgbus.deliveries WHERE subscription = 'old.audit')",
    )
    .execute(pool)
    .await
    .unwrap();

    let removed = admin
        .remove_subscription("old.audit")
        .await
        .expect("remove");
    assert_eq!(
        (removed.pending, removed.dead, removed.done, removed.running),
        (2 + 2, 1, 0, 1)
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM pgbus.subscriptions WHERE name = 'old.audit'"
        )
        .await,
        0
    );
    // The running row is untouched, the other subscription's rows too.
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM pgbus.deliveries
             WHERE subscription = 'old.audit' AND state = 1 AND lease_id = 77"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM pgbus.all_deliveries WHERE subscription = 'kept'"
        )
        .await,
        4 + 2
    );
    // Publishing no longer fans out to it.
    publish_one(pool, NewEvent::raw("audit.entry", json!({}))).await;
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM pgbus.deliveries WHERE subscription = 'old.audit'"
        )
        .await,
        1
    );
    assert!(matches!(
        admin.remove_subscription("old.audit").await,
        Err(Error::UnknownSubscription(name)) if name == "old.audit"
    ));
    // Registered again under the same name, it starts from now: the log rows it had when it
    // was removed are not delivered to it.
    sqlx::query(
        "INSERT INTO pgbus.subscriptions (name, patterns, like_patterns)
         VALUES ('old.audit', '{audit.*}', '{audit.%}')",
    )
    .execute(pool)
    .await
    .unwrap();
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM pgbus.all_deliveries WHERE subscription = 'old.audit'"
        )
        .await,
        1,
        "only the running row"
    );
}

#[tokio::test]
async fn unknown_and_invalid_names_are_refused_and_write_nothing() {
    let db = db().await;
    let pool = db.pool();
    let admin = Admin::new(pool.clone());
    register(pool, &[("real", &["x.*"])]).await;
    publish_n(pool, "x.y", 2).await;
    let before = table_counts(pool).await;
    for result in [
        admin.pause("ghost").await,
        admin.resume("ghost").await,
        admin.remove_subscription("ghost").await.map(|_| true),
        admin.subscription("ghost").await.map(|_| true),
    ] {
        assert!(
            matches!(&result, Err(Error::UnknownSubscription(n)) if n == "ghost"),
            "{result:?}"
        );
    }
    assert!(matches!(
        admin.pause("no spaces").await,
        Err(Error::InvalidSubscriptionName { .. })
    ));
    assert_eq!(table_counts(pool).await, before);
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM pgbus.subscriptions WHERE paused_at IS NOT NULL"
        )
        .await,
        0
    );
}
