//! What the admin shows of the dispatchers' work without a write of its own per claim or
//! completion (migration 0012): the handler's duration of each failed attempt in the failure
//! history, and when each subscription was last claimed (admin and `pgbus status`).

use std::time::Duration;

use chrono::Utc;
use pgbus::{Admin, HandlerError, NewEvent, Subscription};
use serde_json::json;

use crate::support::database::{count, db};
use crate::support::deliveries::delivery_count_in;
use crate::support::dispatcher::{dispatcher, quick_retry, register, start, stop};
use crate::support::journal::Journal;
use crate::support::publishing::publish_events;
use crate::support::ring::turn;
use crate::support::states::{DEAD, DONE};
use crate::support::wait::{SOON, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failure_history_has_each_failed_attempts_handler_duration() {
    let db = db().await;
    let pool = db.pool();
    let admin = Admin::new(pool.clone());
    let journal = Journal::new();
    // Attempt n sleeps 100 ms * n, then fails; the third attempt fails for good.
    let handler = journal.handler_with(|d| async move {
        tokio::time::sleep(Duration::from_millis(100) * d.attempt).await;
        Err(HandlerError::retry(format!("slow failure {}", d.attempt)))
    });
    let handle = start(
        dispatcher(pool).subscribe(
            Subscription::raw("reports.render", ["report.*"], handler)
                .retry(quick_retry().max_attempts(3)),
        ),
    )
    .await;
    // One from the delivery log (its first outcome inserts the row), one a row of
    // pgbus.deliveries from the start (scheduled a moment ahead).
    let soon = Utc::now() + chrono::Duration::milliseconds(50);
    publish_events(
        pool,
        &[
            NewEvent::raw("report.requested", json!({ "n": 1 })),
            NewEvent::raw("report.requested", json!({ "n": 2 })).deliver_at(soon),
        ],
    )
    .await;
    wait_until("both dead", SOON, || async {
        delivery_count_in(pool, &[DEAD]).await == 2
    })
    .await;
    stop(pool, handle).await;

    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM pgbus.deliveries ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    for id in ids {
        let shown = admin.delivery(id).await.expect("show");
        let attempts: Vec<i32> = shown.failures.iter().map(|f| f.attempt).collect();
        assert_eq!(attempts, [1, 2, 3], "delivery {id}");
        for f in &shown.failures {
            let slept = Duration::from_millis(100) * f.attempt as u32;
            let took = f
                .duration
                .unwrap_or_else(|| panic!("delivery {id} attempt {}: no duration", f.attempt));
            assert!(
                took >= slept && took < slept + Duration::from_secs(2),
                "delivery {id} attempt {}: {took:?} for a handler that slept {slept:?}",
                f.attempt
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_claimed_at_comes_from_the_claims_and_outlives_them() {
    let db = db().await;
    let pool = db.pool();
    let admin = Admin::new(pool.clone());
    register(
        pool,
        &[("mail.send", &["mail.*"]), ("mail.idle", &["never.*"])],
    )
    .await;
    let never = admin.subscription("mail.send").await.unwrap();
    assert_eq!(never.last_claimed_at, None, "registered, never claimed");

    let journal = Journal::new();
    let before = Utc::now();
    let handle = start(
        dispatcher(pool)
            .subscribe(Subscription::raw(
                "mail.send",
                ["mail.*"],
                journal.handler(),
            ))
            .subscribe(Subscription::raw(
                "mail.idle",
                ["never.*"],
                journal.handler(),
            ))
            .retain_done(true)
            .maintenance_interval(Duration::from_millis(100)),
    )
    .await;
    // A log batch, and a row of pgbus.deliveries (scheduled a moment ahead).
    let soon = Utc::now() + chrono::Duration::milliseconds(50);
    publish_events(
        pool,
        &[
            NewEvent::raw("mail.queued", json!({})),
            NewEvent::raw("mail.queued", json!({})).deliver_at(soon),
        ],
    )
    .await;
    wait_until("both done", SOON, || async {
        delivery_count_in(pool, &[DONE]).await == 2
    })
    .await;
    stop(pool, handle).await;
    let after = Utc::now();

    let info = admin.subscription("mail.send").await.unwrap();
    let at = info.last_claimed_at.expect("claimed");
    assert!(before <= at && at <= after, "{before} <= {at} <= {after}");
    assert_eq!(
        admin
            .subscription("mail.idle")
            .await
            .unwrap()
            .last_claimed_at,
        None,
        "served but never claimed: nothing to claim"
    );

    // The rings turn: the lane's cursor is copied forward (n = 0) and its batch goes with
    // the truncated partition; the deliveries are gone too. The time stays, unwritten.
    turn(pool, 4).await;
    sqlx::query("DELETE FROM pgbus.claims WHERE n > 0")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM pgbus.deliveries")
        .execute(pool)
        .await
        .unwrap();
    let copies = count(
        pool,
        "SELECT count(*) FROM pgbus.claims WHERE subscription = 'mail.send' AND n = 0",
    )
    .await;
    assert!(copies >= 1, "the lane's cursor was copied forward");
    let kept = admin.subscription("mail.send").await.unwrap();
    assert_eq!(kept.last_claimed_at, Some(at));
    let written = sqlx::query_scalar::<_, Option<chrono::DateTime<Utc>>>(
        "SELECT last_claimed_at FROM pgbus.subscriptions WHERE name = 'mail.send'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(written, None, "no write to pgbus.subscriptions for it");

    // The deliveries' own claim time counts while a row is unfinished (a retry).
    let newer = at + chrono::Duration::seconds(30);
    sqlx::query(
        "INSERT INTO pgbus.deliveries (event_id, subscription, state, claimed_at)
         SELECT id, 'mail.send', 0, $1 FROM pgbus.events LIMIT 1",
    )
    .bind(newer)
    .execute(pool)
    .await
    .unwrap();
    let retried = admin.subscription("mail.send").await.unwrap();
    assert_eq!(retried.last_claimed_at, Some(newer));
}
