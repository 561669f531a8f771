//! The admin API's guards on dead letters: the failure history keeps the last ten attempts,
//! running deliveries are never retried or discarded, bad filters and limits are refused
//! without writing.

use std::time::Duration;

use chrono::Utc;
use pgbus::admin::{DeadLetterFilter, RetryMode, TimeRange};
use pgbus::{Admin, DeliveryState, Error, HandlerError, NewEvent, Subscription};
use serde_json::json;

use crate::admin_dead_letters::{SUB, publish_invoice_rows};
use crate::support::database::{count, db, table_counts};
use crate::support::deliveries::delivery_count_in;
use crate::support::dispatcher::{dispatcher, quick_retry, start, stop};
use crate::support::journal::Journal;
use crate::support::publishing::publish_events;
use crate::support::states::DEAD;
use crate::support::wait::{SOON, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failure_history_keeps_the_last_ten_attempts() {
    let db = db().await;
    let pool = db.pool();
    let journal = Journal::new();
    let sub = Subscription::raw(
        "flaky",
        ["work.*"],
        journal.handler_with(|d| async move {
            Err::<(), _>(HandlerError::retry(format!("failure {}", d.attempt)))
        }),
    )
    .retry(
        quick_retry()
            .max_attempts(12)
            .max_delay(Duration::from_millis(50)),
    );
    let handle = start(dispatcher(pool).subscribe(sub)).await;
    publish_events(pool, &[NewEvent::raw("work.item", json!({}))]).await;
    wait_until("the delivery to die", SOON, || async {
        delivery_count_in(pool, &[DEAD]).await == 1
    })
    .await;
    stop(pool, handle).await;
    let id = count(pool, "SELECT id FROM pgbus.deliveries").await;
    let shown = Admin::new(pool.clone()).delivery(id).await.unwrap();
    let attempts: Vec<i32> = shown.failures.iter().map(|f| f.attempt).collect();
    assert_eq!(attempts, (3..=12).collect::<Vec<_>>());
    assert_eq!(shown.failures[0].error, "failure 3");
    assert_eq!(
        shown.failures[9].error,
        "gave up after 12 attempts: failure 12"
    );
    assert!(
        shown.failures.iter().all(|f| f.duration.is_some()),
        "each with its duration"
    );
}

#[tokio::test]
async fn a_running_delivery_is_never_retried_or_discarded() {
    let db = db().await;
    let pool = db.pool();
    let admin = Admin::new(pool.clone());
    crate::support::dispatcher::register(pool, &[(SUB, &["invoice.*"])]).await;
    publish_invoice_rows(pool).await;
    sqlx::query(
        "UPDATE pgbus.deliveries SET state = 1, lease_id = 5, run_at = now() + interval '1 h'",
    )
    .execute(pool)
    .await
    .unwrap();
    let everything = DeadLetterFilter::new();
    assert_eq!(
        admin
            .retry_dead_letters(&everything, RetryMode::ResetAttempts)
            .await
            .unwrap(),
        0
    );
    assert_eq!(admin.discard_dead_letters(&everything).await.unwrap(), 0);
    let id = count(pool, "SELECT min(id) FROM pgbus.deliveries").await;
    assert!(matches!(
        admin.retry_dead_letter(id, RetryMode::ResetAttempts).await,
        Err(Error::NotDead {
            state: DeliveryState::Running,
            ..
        })
    ));
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM pgbus.deliveries WHERE state = 1 AND lease_id = 5"
        )
        .await,
        5
    );
}

#[tokio::test]
async fn bad_filters_and_limits_are_refused_before_anything_is_written() {
    let db = db().await;
    let pool = db.pool();
    let admin = Admin::new(pool.clone());
    let before = table_counts(pool).await;
    let now = Utc::now();
    let inverted = DeadLetterFilter::new().finished(TimeRange::between(now, now));
    assert!(matches!(
        admin.dead_letters(&inverted, 10, None).await,
        Err(Error::InvalidTimeRange { .. })
    ));
    assert!(matches!(
        admin
            .retry_dead_letters(&inverted, RetryMode::ResetAttempts)
            .await,
        Err(Error::InvalidTimeRange { .. })
    ));
    assert!(matches!(
        admin.discard_dead_letters(&inverted).await,
        Err(Error::InvalidTimeRange { .. })
    ));
    for limit in [0, 1001] {
        assert!(matches!(
            admin
                .dead_letters(&DeadLetterFilter::new(), limit, None)
                .await,
            Err(Error::OutOfRange { field: "limit", .. })
        ));
    }
    let ghost = DeadLetterFilter::new().subscription("ghost");
    assert!(matches!(
        admin.discard_dead_letters(&ghost).await,
        Err(Error::UnknownSubscription(_))
    ));
    let bad_type = DeadLetterFilter::new().event_type("a..b");
    assert!(matches!(
        admin
            .retry_dead_letters(&bad_type, RetryMode::KeepAttempts)
            .await,
        Err(Error::InvalidEventType { .. })
    ));
    assert_eq!(table_counts(pool).await, before);
}
