//! `publish` and the dead-letter workflow: `dead list|show|retry|discard`.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_then_the_dead_letter_workflow() {
    let db = database().await;
    let pool = db.pool();
    let handle = pgbus::Dispatcher::builder(pool.clone())
        .subscribe(Subscription::raw("billing.charge", ["invoice.*"], Declines))
        .poll_interval(Duration::from_millis(50))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let published = pgbus(
        &db,
        &[
            "publish",
            "--type",
            "invoice.paid",
            "--subject",
            "invoice/1",
            "-H",
            "trace=abc",
            "--json",
            r#"{"n": 1}"#,
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(published["deliveries"], 1);
    let from_stdin = pgbus_with(
        Some(db.url()),
        &["publish", "--type", "invoice.sent", "--dedupe-key", "k1"],
        r#"{"n": 2}"#,
    )
    .await
    .ok();
    assert!(
        from_stdin.stdout.starts_with("published event"),
        "{}",
        from_stdin.stdout
    );
    let again = pgbus_with(
        Some(db.url()),
        &["publish", "--type", "invoice.sent", "--dedupe-key", "k1"],
        "{}",
    )
    .await
    .ok();
    assert!(again.stdout.starts_with("duplicate of event"));
    let bad = pgbus_with(
        Some(db.url()),
        &["publish", "--type", "invoice.sent"],
        "not json",
    )
    .await;
    assert_eq!(bad.code, 2);
    wait_until("2 dead letters", async || {
        count(
            pool,
            "SELECT count(*) FROM pgbus.deliveries WHERE state = 3",
        )
        .await
            == 2
    })
    .await;
    handle.shutdown().await.unwrap();

    let page = pgbus(&db, &["dead", "list", "--json"]).await.ok().json();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["subscription"], "billing.charge");
    let id = items[0]["id"].as_i64().unwrap();
    let table = pgbus(&db, &["dead", "list", "--type", "invoice.paid"])
        .await
        .ok()
        .stdout;
    assert!(
        table.contains("permanent failure: card declined") && !table.contains("invoice.sent"),
        "{table}"
    );
    let paged = pgbus(&db, &["dead", "list", "--limit", "1"])
        .await
        .ok()
        .stdout;
    let cursor = paged
        .lines()
        .last()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    let second = pgbus(
        &db,
        &[
            "dead", "list", "--limit", "1", "--before", &cursor, "--json",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(second["items"][0]["id"].as_i64(), items[1]["id"].as_i64());

    let shown = pgbus(&db, &["dead", "show", &id.to_string(), "--json"])
        .await
        .ok()
        .json();
    assert_eq!(shown["state"], "dead");
    assert_eq!(
        shown["failures"][0]["error"],
        "permanent failure: card declined"
    );
    assert!(shown["event"]["data"].is_object());
    assert!(
        shown["failures"][0]["duration_seconds"].as_f64().unwrap() >= 0.0,
        "the handler's duration: {shown}"
    );
    let human = pgbus(&db, &["dead", "show", &id.to_string()])
        .await
        .ok()
        .stdout;
    assert!(
        human.contains("failures (last 1)")
            && human.contains("billing.charge")
            && human.contains("took"),
        "{human}"
    );

    assert_eq!(
        pgbus(&db, &["dead", "retry"]).await.code,
        2,
        "retry needs ids, a filter or --all"
    );
    let missing = pgbus(&db, &["dead", "retry", "999999"]).await;
    assert_eq!(
        (missing.code, missing.stderr.trim()),
        (1, "pgbus: no delivery 999999")
    );
    pgbus(&db, &["dead", "retry", &id.to_string(), "--keep-attempts"])
        .await
        .ok();
    let not_dead = pgbus(&db, &["dead", "retry", &id.to_string()]).await;
    assert_eq!(not_dead.code, 1);
    assert!(
        not_dead.stderr.contains("is pending, not dead"),
        "{}",
        not_dead.stderr
    );
    let discarded = pgbus(&db, &["dead", "discard", "--all", "--yes"])
        .await
        .ok();
    assert_eq!(discarded.stdout.trim(), "discarded 1 dead letters");
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM pgbus.deliveries WHERE state = 3"
        )
        .await,
        0
    );
}
