//! `health`, `dispatchers` and `prune`.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_dispatchers_and_prune() {
    let db = database().await;
    let pool = db.pool();
    let healthy = pgbus(&db, &["health", "--json"]).await.ok().json();
    assert_eq!(healthy["healthy"], true);
    assert!(
        pgbus(&db, &["health"])
            .await
            .ok()
            .stdout
            .starts_with("healthy")
    );
    register(pool, "reports.build", "report.*").await;
    publish(pool, NewEvent::raw("report.asked", json!({}))).await;
    let sick = pgbus(&db, &["health", "--max-lag", "0s"]).await;
    assert_eq!(sick.code, 1);
    assert!(
        sick.stdout.contains("no live dispatcher serves it"),
        "{}",
        sick.stdout
    );

    let none = pgbus(&db, &["dispatchers", "--json"]).await.ok().json();
    assert_eq!(none, json!([]));
    let handle = pgbus::Dispatcher::builder(pool.clone())
        .subscribe(Subscription::raw("reports.build", ["report.*"], Declines))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let live = pgbus(&db, &["dispatchers", "--json"]).await.ok().json();
    assert_eq!(live[0]["alive"], true);
    assert_eq!(live[0]["subscriptions"], json!(["reports.build"]));
    assert!(
        pgbus(&db, &["dispatchers"])
            .await
            .ok()
            .stdout
            .contains("reports.build")
    );
    handle.shutdown().await.unwrap();
    let reaped = pgbus(&db, &["dispatchers", "--reap", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(reaped, json!([]));

    // The delivery is dead; an event nobody subscribes to can go.
    publish(pool, NewEvent::raw("nobody.listens", json!({}))).await;
    assert_eq!(
        pgbus(&db, &["prune", "--events-older-than", "0s"])
            .await
            .code,
        2,
        "needs --yes"
    );
    assert_eq!(
        pgbus(&db, &["prune", "--yes"]).await.code,
        2,
        "needs a retention"
    );
    let pruned = pgbus(
        &db,
        &[
            "prune",
            "--events-older-than",
            "0s",
            "--done-older-than",
            "0s",
            "--yes",
            "--json",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(pruned["events"], 1);
    assert_eq!(
        count(pool, "SELECT count(*) FROM pgbus.events").await,
        1,
        "the dead one's event stays"
    );
}
