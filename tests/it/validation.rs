//! Bad input: every invalid argument returns a typed error and writes nothing.

use std::collections::HashMap;
use std::time::Duration;

use pgbus::{
    Error, Event, MAX_SUBSCRIPTION_NAME_LEN, MAX_TEXT_LEN, MAX_TYPE_LEN, NewEvent, PublishOutcome,
    Publisher, RetryPolicy, Subscription,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::database::{db, table_counts};
use crate::support::dispatcher::{dispatcher, register};
use crate::support::journal::Journal;

fn publisher() -> Publisher {
    Publisher::new("validation-tests").expect("publisher")
}

/// `depth` nested arrays around a number.
fn nested(depth: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..depth {
        v = Value::Array(vec![v]);
    }
    v
}

/// Publishes `event` alone and in a batch behind a valid one; both must fail with an
/// error `check` accepts and write nothing.
async fn refused(pool: &PgPool, p: &Publisher, event: NewEvent, check: impl Fn(&Error) -> bool) {
    let before = table_counts(pool).await;
    let mut conn = pool.acquire().await.expect("conn");
    let what = format!("{event:?}");
    let err = p
        .publish(&mut conn, event.clone())
        .await
        .expect_err(&format!("publish accepted {what}"));
    assert!(check(&err), "wrong error for {what}: {err:?}");
    let err = p
        .publish_all(&mut conn, &[NewEvent::raw("ok.event", json!({})), event])
        .await
        .expect_err(&format!("publish_all accepted {what}"));
    assert!(
        check(&err),
        "wrong error from publish_all for {what}: {err:?}"
    );
    assert_eq!(table_counts(pool).await, before, "{what} wrote rows");
}

async fn accepted(pool: &PgPool, p: &Publisher, event: NewEvent) {
    let what = format!("{event:?}");
    let outcome = p
        .publish(&mut pool.acquire().await.expect("conn"), event)
        .await
        .unwrap_or_else(|e| panic!("{what} refused: {e}"));
    assert!(
        matches!(outcome, PublishOutcome::Published { deliveries: 1, .. }),
        "{outcome:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_event_type_names_are_refused() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("all", &["*"])]).await;
    let p = publisher();
    let too_long = "a".repeat(MAX_TYPE_LEN + 1);
    for bad in [
        "",
        too_long.as_str(),
        "property created",
        "property.*",
        "*",
        ".property",
        "property.",
        "property..created",
        "propiedad.creación",
        "property%",
        "property/created",
        "a\0b",
    ] {
        refused(
            pool,
            &p,
            NewEvent::raw(bad, json!({})),
            |e| matches!(e, Error::InvalidEventType { type_name, .. } if type_name == bad),
        )
        .await;
    }
    // The limits themselves are fine.
    accepted(pool, &p, NewEvent::raw("a".repeat(MAX_TYPE_LEN), json!({}))).await;
    accepted(pool, &p, NewEvent::raw("A-b_9.c", json!({}))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_text_fields_are_refused() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("all", &["*"])]).await;
    let p = publisher();
    let long = "x".repeat(MAX_TEXT_LEN + 1);
    let max = "x".repeat(MAX_TEXT_LEN);
    let base = || NewEvent::raw("thing.happened", json!({}));
    let cases: Vec<(&str, NewEvent)> = vec![
        ("subject", base().subject("a\0b")),
        ("subject", base().subject(long.clone())),
        ("subject", base().subject("")),
        ("key", base().key("k\0")),
        ("key", base().key(long.clone())),
        ("dedupe_key", base().dedupe_key("\0")),
        ("dedupe_key", base().dedupe_key(long.clone())),
        ("header name", base().header("a\0", "v")),
        ("header name", base().header(long.clone(), "v")),
        ("header name", base().header("", "v")),
        ("header value", base().header("h", "v\0")),
        ("header value", base().header("h", long.clone())),
    ];
    for (field, event) in cases {
        refused(
            pool,
            &p,
            event,
            |e| matches!(e, Error::InvalidField { field: f, .. } if *f == field),
        )
        .await;
    }
    accepted(
        pool,
        &p,
        base()
            .subject(max.clone())
            .key(max.clone())
            .dedupe_key(max.clone())
            .header(max.clone(), max.clone()),
    )
    .await;

    // A publisher's source is checked when it is built.
    for bad in ["", "a\0b", long.as_str()] {
        let err = Publisher::new(bad).expect_err("bad source accepted");
        assert!(
            matches!(
                err,
                Error::InvalidField {
                    field: "source",
                    ..
                }
            ),
            "{err:?}"
        );
    }
    let err = Publisher::builder()
        .max_payload_bytes(1)
        .build()
        .expect_err("payload limit of 1 accepted");
    assert!(
        matches!(
            err,
            Error::Config {
                field: "max_payload_bytes",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_payloads_are_refused() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("all", &["*"])]).await;
    let p = Publisher::builder()
        .source("validation-tests")
        .max_payload_bytes(100)
        .build()
        .expect("publisher");

    // {"s":"<n x>"} is n + 8 bytes.
    let sized = |n: usize| json!({ "s": "x".repeat(n) });
    for (n, want_size) in [(93, 101), (5000, 5008)] {
        refused(pool, &p, NewEvent::raw("big.one", sized(n)), |e| {
            matches!(
                e,
                Error::PayloadTooLarge {
                    size,
                    limit: 100
                } if *size == want_size
            )
        })
        .await;
    }
    accepted(pool, &p, NewEvent::raw("big.one", sized(92))).await;

    let p = publisher();
    for bad in [
        json!({"s": "nul \0 inside"}),
        json!(["a", ["b", {"deep": "\0"}]]),
        json!({"key\0": 1}),
        json!("\0"),
        nested(65),
        json!({ "a": nested(64) }),
    ] {
        refused(pool, &p, NewEvent::raw("bad.payload", bad), |e| {
            matches!(e, Error::InvalidPayload(_))
        })
        .await;
    }
    accepted(pool, &p, NewEvent::raw("deep.payload", nested(64))).await;
}

/// A typed event whose payload cannot be serialized to JSON: map keys must be strings.
#[derive(Serialize, Deserialize)]
struct Grid {
    cells: HashMap<(i32, i32), String>,
}

impl Event for Grid {
    const TYPE: &'static str = "grid.updated";
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_event_that_fails_to_serialize_is_a_typed_error() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("all", &["*"])]).await;
    let before = table_counts(pool).await;
    let grid = Grid {
        cells: HashMap::from([((1, 2), "x".to_owned())]),
    };
    let err = publisher()
        .publish(&mut pool.acquire().await.expect("conn"), &grid)
        .await
        .expect_err("unserializable payload accepted");
    assert!(
        matches!(&err, Error::Serialize { type_name, .. } if type_name == "grid.updated"),
        "{err:?}"
    );
    let err = NewEvent::from_event(&grid).expect_err("from_event accepted it");
    assert!(matches!(err, Error::Serialize { .. }), "{err:?}");
    assert_eq!(table_counts(pool).await, before);

    // An empty map serializes fine.
    let empty = Grid {
        cells: HashMap::new(),
    };
    let outcome = publisher()
        .publish(&mut pool.acquire().await.expect("conn"), &empty)
        .await
        .expect("empty grid");
    assert!(matches!(
        outcome,
        PublishOutcome::Published { deliveries: 1, .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_subscriptions_and_dispatcher_settings_are_refused() {
    let db = db().await;
    let pool = db.pool();
    let before = table_counts(pool).await;
    let sub = |name: &str, patterns: &[&str]| {
        Subscription::raw(name, patterns.iter().copied(), Journal::new().handler())
    };
    let ok = || sub("ok", &["*"]);
    let build = |builder: pgbus::DispatcherBuilder| builder.build().expect_err("accepted");

    // Subscription names.
    let long_name = "s".repeat(MAX_SUBSCRIPTION_NAME_LEN + 1);
    for bad in ["", "has space", "a/b", "ñ", "a\0", long_name.as_str()] {
        let err = build(dispatcher(pool).subscribe(sub(bad, &["*"])));
        assert!(
            matches!(&err, Error::InvalidSubscriptionName { name, .. } if name == bad),
            "{bad:?}: {err:?}"
        );
    }
    assert!(
        dispatcher(pool)
            .subscribe(sub(&"s".repeat(MAX_SUBSCRIPTION_NAME_LEN), &["*"]))
            .subscribe(sub("svc.on-x_y:1", &["*"]))
            .build()
            .is_ok()
    );

    // Patterns.
    let bad_patterns: [&[&str]; 8] = [
        &[],
        &[""],
        &["a..b"],
        &["a.*x"],
        &["a b"],
        &["ok.*", "bad%"],
        &["**"],
        &[".*"],
    ];
    for bad in bad_patterns {
        let err = build(dispatcher(pool).subscribe(sub("s", bad)));
        assert!(
            matches!(err, Error::InvalidEventType { .. }),
            "{bad:?}: {err:?}"
        );
    }

    // Subscription settings, then dispatcher settings: each refused naming its field.
    let cases: Vec<(pgbus::DispatcherBuilder, &str)> = vec![
        (
            dispatcher(pool).subscribe(ok().concurrency(0)),
            "concurrency",
        ),
        (
            dispatcher(pool).subscribe(ok().handler_timeout(Duration::ZERO)),
            "handler_timeout",
        ),
        (
            dispatcher(pool).subscribe(ok().lease(Duration::from_millis(999))),
            "lease",
        ),
        (
            dispatcher(pool).subscribe(ok().retry(RetryPolicy::default().max_attempts(0))),
            "retry.max_attempts",
        ),
        (
            dispatcher(pool).subscribe(ok().retry(RetryPolicy::default().jitter(1.5))),
            "retry.jitter",
        ),
        (
            dispatcher(pool).subscribe(ok().retry(RetryPolicy::default().jitter(-0.1))),
            "retry.jitter",
        ),
        (
            dispatcher(pool).subscribe(
                ok().retry(
                    RetryPolicy::default()
                        .base_delay(Duration::from_secs(2))
                        .max_delay(Duration::from_secs(1)),
                ),
            ),
            "retry.max_delay",
        ),
        (dispatcher(pool).subscribe(ok()).batch_size(0), "batch_size"),
        (
            dispatcher(pool).subscribe(ok()).batch_size(10_001),
            "batch_size",
        ),
        (
            dispatcher(pool)
                .subscribe(ok())
                .poll_interval(Duration::ZERO),
            "poll_interval",
        ),
        (
            dispatcher(pool).subscribe(ok()).complete_batch(0),
            "complete_batch",
        ),
        (dispatcher(pool), "subscriptions"),
    ];
    for (builder, want) in cases {
        let err = build(builder);
        assert!(
            matches!(&err, Error::Config { field, .. } if *field == want),
            "expected Config error on {want}, got {err:?}"
        );
    }

    // Two subscriptions with one name.
    let err = build(
        dispatcher(pool)
            .subscribe(sub("twice", &["a.*"]))
            .subscribe(sub("other", &["*"]))
            .subscribe(sub("twice", &["b.*"])),
    );
    assert!(
        matches!(&err, Error::DuplicateSubscription(name) if name == "twice"),
        "{err:?}"
    );

    // None of it touched the database.
    assert_eq!(table_counts(pool).await, before);
}
