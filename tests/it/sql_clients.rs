//! Publishing from clients that are not Rust: `psql` (the client next to the test server's
//! binaries) and Python's psycopg, through `pgbus.publish` and the row-change trigger; the
//! events reach Rust handlers with the envelope the SQL gave them.

use std::process::Command;

use pgbus::Subscription;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::database::db;
use crate::support::dispatcher::{dispatcher, start, stop};
use crate::support::journal::{Call, Journal};
use crate::support::tools::{missing, python_psycopg, run, script};
use crate::support::wait::{SOON, wait_until};

/// The business table of the examples, with the trigger.
async fn property_table(pool: &PgPool) {
    sqlx::raw_sql(
        "CREATE TABLE property (id bigint PRIMARY KEY, title text NOT NULL);
         CREATE TRIGGER property_events AFTER INSERT OR UPDATE OR DELETE ON property
             FOR EACH ROW EXECUTE FUNCTION pgbus.publish_row_change('property');",
    )
    .execute(pool)
    .await
    .expect("the property table");
}

fn by_type<'a>(calls: &'a [Call], t: &str) -> &'a Call {
    calls
        .iter()
        .find(|c| c.event_type == t)
        .unwrap_or_else(|| panic!("no {t} in {calls:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_publishes_through_the_trigger_and_the_function() {
    let db = db().await;
    let pool = db.pool();
    let psql = db.cluster().expect("local cluster").tool_path("psql");
    if !psql.is_file() {
        missing("psql (next to the PostgreSQL server binaries)");
        return;
    }
    property_table(pool).await;
    let journal = Journal::new();
    let handle = start(dispatcher(pool).subscribe(Subscription::raw(
        "everything",
        ["property.*", "listing.*"],
        journal.handler(),
    )))
    .await;
    let mut cmd = Command::new(psql);
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db.url()]);
    run(
        cmd,
        "BEGIN;
         INSERT INTO property (id, title) VALUES (42, 'Sunny flat');
         UPDATE property SET title = 'Sunny flat' WHERE id = 42; -- changes nothing
         UPDATE property SET title = 'Sunny flat, terrace' WHERE id = 42;
         COMMIT;
         DELETE FROM property WHERE id = 42;
         SELECT pgbus.publish('listing.priced', '{\"property_id\": 42, \"price_eur\": 900}',
                              'psql', subject => 'property/42', priority => 1::smallint,
                              headers => '{\"pgbus-version\": \"2\"}');",
    );
    wait_until("four events handled", SOON, || async { journal.len() == 4 }).await;
    let calls = journal.calls();
    let created = by_type(&calls, "property.created");
    assert_eq!(
        created.data,
        json!({"new": {"id": 42, "title": "Sunny flat"}, "old": null})
    );
    assert_eq!(created.subject.as_deref(), Some("property/42"));
    assert_eq!(created.key.as_deref(), Some("property/42"));
    assert_eq!(created.source, "public.property");
    assert_eq!(
        created.headers.get("table").map(String::as_str),
        Some("public.property")
    );
    let updated = by_type(&calls, "property.updated");
    assert_eq!(updated.data["old"]["title"], "Sunny flat");
    assert_eq!(updated.data["new"]["title"], "Sunny flat, terrace");
    let deleted = by_type(&calls, "property.deleted");
    assert_eq!(
        deleted.data,
        json!({"new": null, "old": {"id": 42, "title": "Sunny flat, terrace"}})
    );
    let priced = by_type(&calls, "listing.priced");
    assert_eq!(priced.source, "psql");
    assert_eq!(priced.data, json!({"property_id": 42, "price_eur": 900}));
    assert_eq!(
        priced.headers.get("pgbus-version").map(String::as_str),
        Some("2")
    );
    stop(pool, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_publishes_through_the_trigger_and_the_function() {
    let Some(python) = python_psycopg() else {
        return;
    };
    let db = db().await;
    let pool = db.pool();
    property_table(pool).await;
    let journal = Journal::new();
    let handle = start(dispatcher(pool).subscribe(Subscription::raw(
        "everything",
        ["property.*", "listing.*"],
        journal.handler(),
    )))
    .await;
    let mut cmd = Command::new(python);
    cmd.arg(script("psycopg_publish.py")).arg(db.url());
    let out: Value = serde_json::from_str(&run(cmd, "")).expect("the script's JSON");
    wait_until("two events handled", SOON, || async { journal.len() == 2 }).await;
    let calls = journal.calls();
    let priced = by_type(&calls, "listing.priced");
    assert_eq!(
        priced.event_id.to_string(),
        out["id"].as_str().expect("an id")
    );
    assert_eq!(priced.source, "python-service");
    assert_eq!(priced.subject.as_deref(), Some("property/7"));
    assert_eq!(
        priced.headers.get("correlation_id").map(String::as_str),
        Some("py-1")
    );
    assert_eq!(priced.data, json!({"property_id": 7, "price_eur": 1200}));
    let created = by_type(&calls, "property.created");
    assert_eq!(
        created.data["new"],
        json!({"id": 7, "title": "From Python"})
    );
    stop(pool, handle).await;
}
