//! `pgbus.publish` refuses exactly what the Rust publisher refuses, with the SQLSTATE of the
//! Rust error's kind and the message it displays, and accepts what it accepts.

use std::collections::BTreeMap;

use pgbus::{Error, Publisher};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::support::database::{db, table_counts};
use crate::support::dispatcher::register;
use crate::support::sql_publish::Input;

const SOURCE: &str = "parity";

/// `depth` nested arrays around a number.
fn nested(depth: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..depth {
        v = Value::Array(vec![v]);
    }
    v
}

fn with_type(t: &str) -> Input {
    Input::new(t, json!({}))
}

fn with_header(name: &str, value: &str) -> Input {
    let mut i = with_type("ok.event");
    i.headers = BTreeMap::from([(name.to_owned(), value.to_owned())]);
    i
}

/// The SQLSTATE `pgbus.publish` raises for the kind of `e`.
fn sqlstate_of(e: &Error) -> &'static str {
    match e {
        Error::InvalidEventType { .. } => "PB001",
        Error::InvalidField { .. } => "PB002",
        Error::InvalidPayload(_) => "PB003",
        Error::PayloadTooLarge { .. } => "PB004",
        other => panic!("not a validation error: {other:?}"),
    }
}

/// Publishes `input` both ways, each in a transaction rolled back; both must refuse it with
/// the same kind and message.
async fn both_refuse(conn: &mut PgConnection, publisher: &Publisher, input: &Input) {
    let mut tx = conn.begin().await.expect("begin");
    let rust = input
        .publish_rust(&mut tx, publisher)
        .await
        .expect_err(&format!("Rust accepted {input:?}"));
    let sql = input
        .publish_sql(&mut tx, SOURCE)
        .await
        .expect_err(&format!("SQL accepted {input:?}"));
    tx.rollback().await.expect("rollback");
    let db = sql.as_database_error().expect("a database error");
    assert_eq!(
        db.code().as_deref(),
        Some(sqlstate_of(&rust)),
        "{input:?}: {sql}"
    );
    assert_eq!(db.message(), rust.to_string(), "{input:?}");
}

async fn both_accept(conn: &mut PgConnection, publisher: &Publisher, input: &Input) {
    let mut tx = conn.begin().await.expect("begin");
    input
        .publish_rust(&mut tx, publisher)
        .await
        .unwrap_or_else(|e| panic!("Rust refused {input:?}: {e}"));
    input
        .publish_sql(&mut tx, SOURCE)
        .await
        .unwrap_or_else(|e| panic!("SQL refused {input:?}: {e}"));
    tx.rollback().await.expect("rollback");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_and_rust_refuse_and_accept_the_same_inputs() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("all", &["*"])]).await;
    let publisher = Publisher::new(SOURCE).expect("publisher");
    let mut conn = pool.acquire().await.expect("conn");
    let before = table_counts(pool).await;

    let long_type = "a".repeat(201);
    for t in [
        "",
        &long_type,
        "property created",
        "property.*",
        "*",
        ".property",
        "property.",
        "property..created",
        "a b..c",
        "é",
        "a%",
    ] {
        both_refuse(&mut conn, &publisher, &with_type(t)).await;
    }
    let long = "x".repeat(1025);
    for field in ["subject", "key", "dedupe_key"] {
        for bad in ["", long.as_str()] {
            let mut i = with_type("ok.event");
            let v = Some(bad.to_owned());
            match field {
                "subject" => i.subject = v,
                "key" => i.key = v,
                _ => i.dedupe_key = v,
            }
            both_refuse(&mut conn, &publisher, &i).await;
        }
    }
    for (name, value) in [
        ("", "v"),
        (long.as_str(), "v"),
        ("h", long.as_str()),
        ("pgbus-version", "0"),
        ("pgbus-version", "01"),
        ("pgbus-version", "x"),
        ("pgbus-version", "4294967296"),
        ("pgbus-time", "yesterday"),
        ("pgbus-time", "2024-13-01T10:00:00Z"),
        ("pgbus-source", ""),
        ("pgbus-id", ""),
    ] {
        both_refuse(&mut conn, &publisher, &with_header(name, value)).await;
    }
    both_refuse(&mut conn, &publisher, &Input::new("ok.event", nested(65))).await;

    for t in ["a_b-c.D9", "property.created", &"a".repeat(200)] {
        both_accept(&mut conn, &publisher, &with_type(t)).await;
    }
    for (name, value) in [
        ("pgbus-version", "4294967295"),
        ("pgbus-time", "2024-05-01T10:00:00.5+02:00"),
        ("pgbus-time", "2024-05-01t10:00:00z"),
        ("correlation_id", ""),
        ("h", &"v".repeat(1024)),
    ] {
        both_accept(&mut conn, &publisher, &with_header(name, value)).await;
    }
    both_accept(&mut conn, &publisher, &Input::new("ok.event", nested(64))).await;
    assert_eq!(
        table_counts(pool).await,
        before,
        "a rolled-back check wrote rows"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payload_limit_counts_compact_json_on_both_paths() {
    let db = db().await;
    let pool = db.pool();
    let publisher = Publisher::builder()
        .source(SOURCE)
        .max_payload_bytes(11)
        .build()
        .expect("publisher");
    let mut conn = pool.acquire().await.expect("conn");
    sqlx::query("SET pgbus.max_payload_bytes = 11")
        .execute(&mut *conn)
        .await
        .expect("set the limit");
    // Compact: {"ab":[1,2]} is 12 bytes, {"a":[1,2]} 11, {"a": "é"} 10 (é is two bytes).
    both_refuse(
        &mut conn,
        &publisher,
        &Input::new("ok.event", json!({"ab": [1, 2]})),
    )
    .await;
    both_refuse(
        &mut conn,
        &publisher,
        &Input::new("ok.event", json!({"a": [1, 2], "b": {}})),
    )
    .await;
    both_accept(
        &mut conn,
        &publisher,
        &Input::new("ok.event", json!({"a": [1, 2]})),
    )
    .await;
    both_accept(
        &mut conn,
        &publisher,
        &Input::new("ok.event", json!({"a": "é"})),
    )
    .await;
    // Escapes count as serde_json writes them: "a\n\"b\u0001" is 14 bytes.
    both_refuse(
        &mut conn,
        &publisher,
        &Input::new("ok.event", json!("a\n\"b\u{1}")),
    )
    .await;
    sqlx::query("RESET pgbus.max_payload_bytes")
        .execute(&mut *conn)
        .await
        .expect("reset");
}

/// A NUL character: Rust refuses it with its own errors; PostgreSQL refuses it before
/// `pgbus.publish` runs (text cannot hold it, jsonb refuses `\u0000`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_character_is_refused_on_both_paths() {
    let db = db().await;
    let pool = db.pool();
    let publisher = Publisher::new(SOURCE).expect("publisher");
    let mut conn = pool.acquire().await.expect("conn");
    let mut in_subject = with_type("ok.event");
    in_subject.subject = Some("a\0b".into());
    let in_data = Input::new("ok.event", json!({"a": "x\u{0}"}));
    let in_header = with_header("h", "a\0");
    for input in [in_subject, in_data, in_header] {
        let rust = input
            .publish_rust(&mut conn, &publisher)
            .await
            .expect_err("Rust accepted a NUL");
        assert!(rust.is_invalid_input(), "{rust:?}");
        let sql = input
            .publish_sql(&mut conn, SOURCE)
            .await
            .expect_err("SQL accepted a NUL");
        let code = sql
            .as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.into_owned());
        assert!(
            matches!(code.as_deref(), Some("22021" | "22P05" | "54000")),
            "{input:?}: {sql}"
        );
    }
    assert_eq!(table_counts(pool).await.0, 0);
}
