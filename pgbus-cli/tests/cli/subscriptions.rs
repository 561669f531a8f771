//! `migrate`, `status`, `subscriptions list|pause|resume|remove`.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_status_pause_resume_and_remove() {
    let db = TestDatabase::create_empty().await.unwrap();
    let unmigrated = pgbus(&db, &["health", "--json"]).await;
    assert_eq!(unmigrated.code, 1);
    assert_eq!(unmigrated.json()["problems"][0]["problem"], "schema_behind");
    assert!(
        pgbus(&db, &["migrate"])
            .await
            .ok()
            .stdout
            .contains("up to date")
    );
    let pool = db.pool();
    register(pool, "billing.charge", "invoice.*").await;
    register(pool, "audit.all", "*.*").await;
    publish(pool, NewEvent::raw("invoice.paid", json!({}))).await;

    let status = pgbus(&db, &["status", "--json"]).await.ok().json();
    let names: Vec<&str> = status
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["audit.all", "billing.charge"]);
    assert_eq!(status[1]["counts"]["pending"], 1);
    assert_eq!(status[1]["state"], "active");
    assert!(status[1]["lag_seconds"].is_number());
    let table = pgbus(&db, &["status"]).await.ok().stdout;
    assert!(
        table.contains("billing.charge") && table.contains("invoice.*"),
        "{table}"
    );
    let list = pgbus(&db, &["subscriptions", "list", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(list.as_array().unwrap().len(), 2);

    assert!(
        pgbus(&db, &["subscriptions", "pause", "billing.charge"])
            .await
            .ok()
            .stdout
            .contains("paused")
    );
    let paused = pgbus(&db, &["status", "--json"]).await.ok().json();
    assert_eq!(paused[1]["state"], "paused");
    pgbus(&db, &["subscriptions", "resume", "billing.charge"])
        .await
        .ok();
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM pgbus.subscriptions WHERE paused_at IS NOT NULL"
        )
        .await,
        0
    );
    let ghost = pgbus(&db, &["subscriptions", "pause", "ghost"]).await;
    assert_eq!(ghost.code, 1);
    assert_eq!(ghost.stderr.trim(), "pgbus: unknown subscription \"ghost\"");

    // Destructive: refused without --yes when stdin is not a terminal.
    let unconfirmed = pgbus(&db, &["subscriptions", "remove", "billing.charge"]).await;
    assert_eq!(unconfirmed.code, 2);
    assert!(unconfirmed.stderr.contains("--yes"));
    assert_eq!(
        count(pool, "SELECT count(*) FROM pgbus.subscriptions").await,
        2
    );
    let removed = pgbus(&db, &["subscriptions", "remove", "billing.charge", "--yes"])
        .await
        .ok();
    assert!(removed.stdout.contains("1 pending"), "{}", removed.stdout);
    assert_eq!(
        count(pool, "SELECT count(*) FROM pgbus.subscriptions").await,
        1
    );
}
