//! `replay`, `redeliver`, `events` and `tail`.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_redeliver_and_event_history() {
    let db = database().await;
    let pool = db.pool();
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            publish(
                pool,
                NewEvent::raw("deal.updated", json!({ "i": i })).subject("deal/7"),
            )
            .await,
        );
    }
    publish(pool, NewEvent::raw("deal.closed_won", json!({}))).await;
    register(pool, "crm.sync", "deal.*").await;

    assert_eq!(
        pgbus(&db, &["replay", "--subscription", "crm.sync"])
            .await
            .code,
        2
    );
    let replayed = pgbus(
        &db,
        &["replay", "-s", "crm.sync", "--subject", "deal/7", "--json"],
    )
    .await
    .ok()
    .json();
    assert_eq!(
        (replayed["examined"].as_u64(), replayed["created"].as_u64()),
        (Some(4), Some(4))
    );
    let all = pgbus(
        &db,
        &["replay", "-s", "crm.sync", "--all", "--batch-size", "2"],
    )
    .await
    .ok();
    assert!(
        all.stdout
            .contains("5 events examined in 3 batches, 1 deliveries created"),
        "{}",
        all.stdout
    );
    assert_eq!(
        count(pool, "SELECT count(*) FROM pgbus.deliveries").await,
        5
    );
    let unknown = pgbus(&db, &["replay", "-s", "ghost", "--all"]).await;
    assert_eq!(unknown.code, 1);

    let queued = pgbus(&db, &["redeliver", &ids[0].to_string(), "-s", "crm.sync"])
        .await
        .ok();
    assert!(
        queued.stdout.contains("is pending already"),
        "{}",
        queued.stdout
    );

    let history = pgbus(&db, &["events", "--subject", "deal/7", "--json"])
        .await
        .ok()
        .json();
    let got: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        ids.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    assert_eq!(history["events"][0]["deliveries"][0]["state"], "pending");
    let by_type = pgbus(
        &db,
        &["events", "--type", "deal.closed_won", "--since", "1h"],
    )
    .await
    .ok()
    .stdout;
    assert!(
        by_type.contains("deal.closed_won") && by_type.contains("crm.sync: pending"),
        "{by_type}"
    );
    assert_eq!(pgbus(&db, &["events", "--type", "bad..type"]).await.code, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_follows_new_events_live() {
    let db = database().await;
    let pool = db.pool().clone();
    let mut child = std::process::Command::new(BIN)
        .args([
            "tail",
            "--json",
            "--count",
            "3",
            "--type",
            "tick.*",
            "--database-url",
            db.url(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map(|l| l.unwrap())
            .collect::<Vec<_>>()
    });
    // Publish until tail has seen three (it only shows events published after it started).
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "tail did not stop"
        );
        publish(&pool, NewEvent::raw("other.noise", json!({}))).await;
        publish(
            &pool,
            NewEvent::raw(
                "tick.tock",
                json!({ "at": started.elapsed().as_millis() as u64 }),
            ),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(child.wait().unwrap().success());
    let lines = reader.join().unwrap();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for line in lines {
        let event: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(event["type"], "tick.tock");
    }
}
