//! The `pgbus` binary run for real against a throwaway PostgreSQL (the test support's
//! cluster, or `DATABASE_URL`): every command, its output, its exit code, and every `--json`
//! output parsed.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use pgbus::{Delivery, HandlerError, NewEvent, Publisher, RawHandler, Subscription};
use pgbus_testing::TestDatabase;
use serde_json::{Value, json};
use sqlx::PgPool;

const BIN: &str = env!("CARGO_BIN_EXE_pgbus");

/// What one run of the binary did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Stdout parsed as JSON.
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }

    fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs `pgbus args...` on `url` (none: no URL at all), with `stdin`.
async fn pgbus_with(url: Option<&str>, args: &[&str], stdin: &str) -> Run {
    let mut cmd = assert_cmd::Command::new(BIN);
    cmd.env_remove("DATABASE_URL")
        .args(args)
        .write_stdin(stdin.to_owned());
    if let Some(url) = url {
        cmd.arg("--database-url").arg(url);
    }
    let out = tokio::task::spawn_blocking(move || cmd.timeout(Duration::from_secs(60)).output())
        .await
        .unwrap()
        .expect("running pgbus");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn pgbus(db: &TestDatabase, args: &[&str]) -> Run {
    pgbus_with(Some(db.url()), args, "").await
}

async fn database() -> TestDatabase {
    TestDatabase::create().await.expect("a test database")
}

/// Polls `f` every 20 ms until it is true, for at most 20 s.
async fn wait_until<F: AsyncFnMut() -> bool>(what: &str, mut f: F) {
    let started = Instant::now();
    while !f().await {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// A handler that always gives up.
struct Declines;

#[pgbus::async_trait]
impl RawHandler for Declines {
    async fn handle(&self, _: &Delivery) -> Result<(), HandlerError> {
        Err(HandlerError::permanent("card declined"))
    }
}

/// Registers `name` on `pattern` (a dispatcher started and stopped).
async fn register(pool: &PgPool, name: &str, pattern: &str) {
    let handle = pgbus::Dispatcher::builder(pool.clone())
        .subscribe(Subscription::raw(name, [pattern], Declines))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    handle.shutdown().await.unwrap();
}

async fn publish(pool: &PgPool, event: NewEvent) -> uuid::Uuid {
    let mut conn = pool.acquire().await.unwrap();
    Publisher::new("tests")
        .unwrap()
        .publish(&mut conn, event)
        .await
        .unwrap()
        .id()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_usage_and_connection_errors() {
    let help = pgbus_with(None, &["--help"], "").await.ok();
    for text in [
        "Exit codes",
        "pgbus dead retry 42",
        "health",
        "tail",
        "replay",
    ] {
        assert!(
            help.stdout.contains(text),
            "--help lacks {text:?}: {}",
            help.stdout
        );
    }
    let dead_help = pgbus_with(None, &["dead", "retry", "--help"], "")
        .await
        .ok();
    assert!(dead_help.stdout.contains("--keep-attempts"));
    let no_command = pgbus_with(None, &[], "").await;
    assert_eq!(no_command.code, 2);
    let no_url = pgbus_with(None, &["status"], "").await;
    assert_eq!(no_url.code, 2);
    assert!(no_url.stderr.contains("DATABASE_URL"), "{}", no_url.stderr);
    let nowhere = "postgres://nobody@127.0.0.1:1/none";
    let refused = pgbus_with(Some(nowhere), &["status"], "").await;
    assert_eq!(refused.code, 2);
    assert_eq!(
        refused.stderr.lines().count(),
        1,
        "one line: {}",
        refused.stderr
    );
    assert!(refused.stderr.starts_with("pgbus: cannot connect"));
    // A probe on a database it cannot reach: unhealthy, exit code 1.
    let probe = pgbus_with(Some(nowhere), &["health", "--json"], "").await;
    assert_eq!(probe.code, 1);
    assert_eq!(
        probe.json()["problems"][0]["problem"],
        "database_unreachable"
    );
}

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
    let human = pgbus(&db, &["dead", "show", &id.to_string()])
        .await
        .ok()
        .stdout;
    assert!(
        human.contains("failures (last 1)") && human.contains("billing.charge"),
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
