//! The signed-webhook inbox on PostgreSQL: a verified webhook is stored once (a retry is a
//! duplicate with the original id), every refusal stores nothing; and webhooks signed by the
//! official `stripe` package, posted over HTTP to the `webhook_inbox` example's endpoint.

use std::time::{SystemTime, UNIX_EPOCH};

use pgbus::PublishOutcome;
use pgbus::inbox::{Inbox, WebhookError, hmac_sha256_hex, stripe_signature_header};
use serde_json::Value;

use crate::support::database::{db, table_counts};
use crate::support::tools::{node, run_async, script};

#[allow(dead_code, unreachable_pub)]
#[path = "../../examples/webhook_inbox.rs"]
mod example;

const SECRET: &str = "whsec_test_secret";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn refusal(result: pgbus::Result<PublishOutcome>) -> WebhookError {
    match result {
        Err(pgbus::Error::Webhook(e)) => e,
        other => panic!("not a refusal: {other:?}"),
    }
}

/// (type, dedupe key, priority, source header, id header) of every stored event.
async fn stored(pool: &sqlx::PgPool) -> Vec<(String, String, i16, String, String)> {
    sqlx::query_as(
        "SELECT type, dedupe_key, priority, headers->>'pgbus-source', headers->>'pgbus-id'
         FROM pgbus.events ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_is_stored_once_and_refusals_store_nothing() {
    let db = db().await;
    let pool = db.pool();
    let inbox = example::stripe_inbox(SECRET).unwrap();
    let body = br#"{"id":"evt_1","type":"payment_intent.succeeded","data":{"object":{}}}"#;
    let header = |body: &[u8], at| {
        [(
            "stripe-signature",
            stripe_signature_header(SECRET.as_bytes(), body, at),
        )]
    };
    let mut conn = pool.acquire().await.unwrap();

    // Refusals, each before anything is written.
    let e = refusal(inbox.receive(&mut conn, &[("x", "y")], body).await);
    assert_eq!(
        e,
        WebhookError::MissingHeader {
            name: "Stripe-Signature".into()
        }
    );
    let e = refusal(
        inbox
            .receive(&mut conn, &[("Stripe-Signature", "t=1")], body)
            .await,
    );
    assert!(matches!(e, WebhookError::MalformedHeader { .. }), "{e}");
    let e = refusal(inbox.receive(&mut conn, &header(b"{}", now()), body).await);
    assert_eq!(e, WebhookError::SignatureMismatch);
    let e = refusal(
        inbox
            .receive(&mut conn, &header(body, now() - 301), body)
            .await,
    );
    assert!(
        matches!(e, WebhookError::TimestampOutsideTolerance { .. }),
        "{e}"
    );
    let e = refusal(
        inbox
            .receive(&mut conn, &header(b"[1]", now()), b"[1]")
            .await,
    );
    assert!(matches!(e, WebhookError::BodyNotJson(_)), "{e}");
    let no_id = br#"{"type":"a.b"}"#;
    let e = refusal(inbox.receive(&mut conn, &header(no_id, now()), no_id).await);
    assert!(
        matches!(
            e,
            WebhookError::MissingField {
                what: "event id",
                ..
            }
        ),
        "{e}"
    );
    let big = vec![b' '; 1024 * 1024 + 1];
    let e = refusal(inbox.receive(&mut conn, &header(&big, now()), &big).await);
    assert!(matches!(e, WebhookError::BodyTooLarge { .. }), "{e}");
    let odd_type = br#"{"id":"evt_9","type":"has space"}"#;
    let e = inbox
        .receive(&mut conn, &header(odd_type, now()), odd_type)
        .await
        .unwrap_err();
    assert!(
        matches!(e, pgbus::Error::InvalidEventType { .. }) && e.is_invalid_input(),
        "{e}"
    );
    assert_eq!(table_counts(pool).await, (0, 0, 0));

    // Stored once, in a transaction; the provider's retry is a duplicate of the original.
    let mut tx = pool.begin().await.unwrap();
    let first = inbox
        .receive(&mut tx, &header(body, now()), body)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let PublishOutcome::Published { id, .. } = first else {
        panic!("{first:?}")
    };
    let again = inbox
        .receive(&mut conn, &header(body, now()), body)
        .await
        .unwrap();
    assert_eq!(again, PublishOutcome::Duplicate { id });
    assert_eq!(
        stored(pool).await,
        [(
            "stripe.payment_intent.succeeded".into(),
            "stripe:evt_1".into(),
            -10,
            "stripe".into(),
            "evt_1".into()
        )]
    );

    // A rolled-back receive stores nothing, and the id stays free.
    let other = br#"{"id":"evt_2","type":"charge.refunded"}"#;
    let mut tx = pool.begin().await.unwrap();
    inbox
        .receive(&mut tx, &header(other, now()), other)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(stored(pool).await.len(), 1);

    // GitHub's scheme: the id and type in headers.
    let github = Inbox::github("gh-secret")
        .build(pgbus::Publisher::new("ci").unwrap())
        .unwrap();
    let push = br#"{"ref":"refs/heads/main"}"#;
    let signature = format!("sha256={}", hmac_sha256_hex(b"gh-secret", push));
    let headers = vec![
        ("X-Hub-Signature-256", signature.as_str()),
        ("X-GitHub-Event", "push"),
        ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
    ];
    let outcome = github.receive(&mut conn, &headers, push).await.unwrap();
    assert!(!outcome.is_duplicate());
    let e = refusal(github.receive(&mut conn, &headers[..2], push).await);
    assert!(
        matches!(
            e,
            WebhookError::MissingField {
                what: "event id",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        stored(pool).await[1].1,
        "github:72d3162e-cc78-11e3-81ab-4c9367dc0958"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripes_own_signatures_posted_to_the_example_endpoint() {
    let Some(mut node) = node() else { return };
    let db = db().await;
    let pool = db.pool().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{}", listener.local_addr().unwrap(), example::PATH);
    let app = example::router(pool.clone(), example::stripe_inbox(SECRET).unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    node.arg(script("stripe_webhooks.js")).arg(&url).arg(SECRET);
    let out = run_async(node, String::new()).await;
    server.abort();
    let results: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let status = |case: &str| -> (u64, String) {
        let r = results
            .iter()
            .find(|r| r["case"] == case)
            .unwrap_or_else(|| panic!("no {case}: {out}"));
        (
            r["status"].as_u64().unwrap(),
            r["text"].as_str().unwrap().to_owned(),
        )
    };
    assert_eq!(status("valid").0, 200, "{out}");
    let (code, text) = status("retry of the same event");
    assert_eq!(code, 200);
    assert!(text.starts_with("already stored as"), "{text}");
    assert_eq!(status("another event").0, 200);
    for (case, why) in [
        ("tampered body", "no signature matches"),
        ("wrong secret", "no signature matches"),
        ("replay (timestamp 10 minutes old)", "tolerance"),
        ("missing header", "is missing"),
        ("malformed header", "malformed"),
        ("not JSON", "not a JSON object"),
        ("too large", "exceeds the limit"),
    ] {
        let (code, text) = status(case);
        assert_eq!(code, 400, "{case}: {text}");
        assert!(text.contains(why), "{case}: {text}");
    }
    let events = stored(&pool).await;
    let keys: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(keys, ["stripe:evt_test_1", "stripe:evt_test_2"]);
    assert_eq!(events[0].0, "stripe.checkout.session.completed");
}
