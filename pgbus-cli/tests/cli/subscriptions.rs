//! `migrate`, `status`, `subscriptions list|pause|resume|blocked|remove`.

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
    assert!(status[1]["last_claimed_at"].is_null(), "never claimed");
    let table = pgbus(&db, &["status"]).await.ok().stdout;
    assert!(
        table.contains("billing.charge") && table.contains("invoice.*"),
        "{table}"
    );
    assert!(table.contains("last claimed"), "{table}");
    // As a dispatcher's maintenance records it.
    sqlx::query(
        "UPDATE pgbus.subscriptions SET last_claimed_at = now() - interval '2 hours 5 minutes'
         WHERE name = 'billing.charge'",
    )
    .execute(pool)
    .await
    .unwrap();
    let status = pgbus(&db, &["status", "--json"]).await.ok().json();
    assert!(status[1]["last_claimed_at"].is_string(), "{status}");
    assert!(status[0]["last_claimed_at"].is_null());
    let table = pgbus(&db, &["status"]).await.ok().stdout;
    assert!(table.contains("2h 5m ago"), "{table}");
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

/// Fails the first event of key `bad` for good, handles the rest.
struct FailFirstBad;

#[pgbus::async_trait]
impl RawHandler for FailFirstBad {
    async fn handle(&self, d: &Delivery) -> Result<(), HandlerError> {
        if d.event.key.as_deref() == Some("bad") && d.event.data["n"] == 0 {
            return Err(HandlerError::permanent("cannot parse"));
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_keys_of_an_ordered_subscription() {
    let db = database().await;
    let pool = db.pool();
    let dispatcher = pgbus::Dispatcher::builder(pool.clone())
        .poll_interval(Duration::from_millis(50))
        .subscribe(Subscription::raw("deals.pipeline", ["deal.*"], FailFirstBad).ordered())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    for n in 0..3 {
        publish(
            pool,
            NewEvent::raw("deal.moved", json!({ "n": n })).key("bad"),
        )
        .await;
    }
    publish(
        pool,
        NewEvent::raw("deal.moved", json!({ "n": 0 })).key("good"),
    )
    .await;
    wait_until("the bad key to be blocked by its dead letter", async || {
        let listed = pgbus(
            &db,
            &["subscriptions", "blocked", "deals.pipeline", "--json"],
        )
        .await
        .ok()
        .json();
        listed.as_array().is_some_and(|a| a.len() == 1)
    })
    .await;
    dispatcher.shutdown().await.unwrap();

    let listed = pgbus(
        &db,
        &["subscriptions", "blocked", "deals.pipeline", "--json"],
    )
    .await
    .ok()
    .json();
    assert_eq!(listed[0]["key"], "bad");
    assert_eq!(listed[0]["blocked_by"], "dead");
    assert_eq!(listed[0]["waiting"], 2);
    assert!(
        listed[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot parse")
    );
    let table = pgbus(&db, &["subscriptions", "blocked", "deals.pipeline"])
        .await
        .ok()
        .stdout;
    assert!(table.contains("bad") && table.contains("dead"), "{table}");
    let ghost = pgbus(&db, &["subscriptions", "blocked", "ghost"]).await;
    assert_eq!(ghost.code, 1);
    assert_eq!(ghost.stderr.trim(), "pgbus: unknown subscription \"ghost\"");
}
