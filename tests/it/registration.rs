//! Subscription registration across versions of a service: the dispatcher started last wins,
//! every change of patterns is logged, and the running versions share the deliveries.

use std::io::Write;
use std::sync::{Arc, Mutex};

use pgbus::{NewEvent, Subscription};
use sqlx::PgPool;
use tracing_subscriber::fmt::MakeWriter;

use crate::support::database::{count, db};
use crate::support::dispatcher::{dispatcher, start, stop};
use crate::support::journal::Journal;
use crate::support::publishing::publish_events;
use crate::support::wait::{SOON, wait_until};

const NAME: &str = "listings.on-property";

/// What the dispatcher logged while it started, on this thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// Starts a dispatcher of "version" `patterns` of the service; returns it and its log.
async fn start_version(
    pool: &PgPool,
    patterns: &[&str],
    journal: &Journal,
) -> (pgbus::DispatcherHandle, String) {
    let log = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // Registration runs inside `start`, on this (current-thread) test runtime.
    let handle = {
        let _default = tracing::subscriber::set_default(subscriber);
        start(dispatcher(pool).subscribe(Subscription::raw(
            NAME,
            patterns.iter().copied(),
            journal.handler(),
        )))
        .await
    };
    (handle, log.text())
}

async fn stored_patterns(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT patterns FROM pgbus.subscriptions WHERE name = $1")
        .bind(NAME)
        .fetch_one(pool)
        .await
        .expect("the subscription row")
}

#[tokio::test]
async fn the_dispatcher_started_last_wins_logs_the_change_and_versions_share_the_work() {
    let db = db().await;
    let pool = db.pool();
    let (old_journal, new_journal) = (Journal::new(), Journal::new());

    let (old, log) = start_version(pool, &["property.created"], &old_journal).await;
    assert!(log.contains("subscription registered"), "{log}");
    assert_eq!(stored_patterns(pool).await, ["property.created"]);

    // A rolling deploy: the new version widens the patterns while the old one runs.
    let (new, log) = start_version(pool, &["property.*"], &new_journal).await;
    assert!(log.contains("WARN"), "{log}");
    assert!(log.contains("subscription patterns changed"), "{log}");
    assert!(
        log.contains(r#"previous=["property.created"]"#) && log.contains(r#"["property.*"]"#),
        "{log}"
    );
    assert_eq!(stored_patterns(pool).await, ["property.*"]);

    // Deliveries follow the stored patterns, and both versions' handlers take them.
    let events: Vec<NewEvent> = (0..40)
        .map(|i| {
            let kind = if i % 2 == 0 { "created" } else { "photo.added" };
            NewEvent::raw(format!("property.{kind}"), serde_json::json!({ "i": i }))
        })
        .collect();
    publish_events(pool, &events).await;
    let handled = || old_journal.calls().len() + new_journal.calls().len();
    // Handled, then written: the outcomes commit a moment after the handlers return.
    wait_until(
        "both versions handled and wrote all 40 events",
        SOON,
        || async {
            handled() >= 40 && count(pool, "SELECT count(*) FROM pgbus.all_deliveries").await == 0
        },
    )
    .await;
    assert_eq!(handled(), 40, "each event handled once");

    // Registering the same patterns again changes and logs nothing.
    let (again, log) = start_version(pool, &["property.*"], &new_journal).await;
    assert!(!log.contains("patterns changed"), "{log}");
    stop(pool, again).await;

    // The old version restarting (a rollback, or a crash loop) takes them back: logged.
    stop(pool, old).await;
    let (old, log) = start_version(pool, &["property.created"], &old_journal).await;
    assert!(
        log.contains("subscription patterns changed") && log.contains(r#"previous=["property.*"]"#),
        "{log}"
    );
    assert_eq!(stored_patterns(pool).await, ["property.created"]);
    stop(pool, old).await;
    stop(pool, new).await;
}
