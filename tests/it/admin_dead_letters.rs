//! The admin API on dead letters: listing (filters, pages, newest first), showing one with
//! its failure history, retrying (attempts reset or kept) and discarding.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::Utc;
use pgbus::admin::{DeadLetterFilter, RetryMode, TimeRange};
use pgbus::{Admin, DeliveryState, Error, HandlerError, NewEvent, Subscription};
use serde_json::json;
use sqlx::PgPool;

use crate::support::database::{count, db};
use crate::support::deliveries::{delivery, delivery_count_in};
use crate::support::dispatcher::{dispatcher, quick_retry, start, stop};
use crate::support::journal::Journal;
use crate::support::publishing::publish_events;
use crate::support::states::{DEAD, DONE};
use crate::support::wait::{SOON, wait_until};

pub(crate) const SUB: &str = "billing.charge";

/// Publishes 3 `invoice.paid` and 2 `invoice.sent` events (subjects `invoice/0..4`).
pub(crate) async fn publish_invoices(pool: &PgPool) {
    publish_events(pool, &invoices()).await;
}

/// The events of [`publish_invoices`], their deliveries rows of `pgbus.deliveries` (due in an
/// hour) instead of the delivery log, for tests that write a row's state themselves.
pub(crate) async fn publish_invoice_rows(pool: &PgPool) {
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let events: Vec<NewEvent> = invoices()
        .into_iter()
        .map(|e| e.deliver_at(later))
        .collect();
    publish_events(pool, &events).await;
}

fn invoices() -> Vec<NewEvent> {
    (0..5)
        .map(|i| {
            let t = if i < 3 {
                "invoice.paid"
            } else {
                "invoice.sent"
            };
            NewEvent::raw(t, json!({ "invoice": i })).subject(format!("invoice/{i}"))
        })
        .collect()
}

/// A subscription to `invoice.*` whose handler fails twice with the same message, then
/// permanently, until `fixed` is set; then it succeeds.
fn billing(journal: &Journal, fixed: Arc<AtomicBool>) -> Subscription {
    let handler = journal.handler_with(move |d| {
        let fixed = fixed.load(Ordering::SeqCst);
        async move {
            match d.attempt {
                _ if fixed => Ok(()),
                1 | 2 => Err(HandlerError::retry("the payment gateway timed out")),
                n => Err(HandlerError::permanent(format!(
                    "card declined at attempt {n}"
                ))),
            }
        }
    });
    Subscription::raw(SUB, ["invoice.*"], handler).retry(quick_retry().max_attempts(5))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_by_filter_and_page_and_shown_with_their_failures() {
    let db = db().await;
    let pool = db.pool();
    let admin = Admin::new(pool.clone());
    let journal = Journal::new();
    let handle = start(dispatcher(pool).subscribe(billing(&journal, Arc::default()))).await;
    publish_invoices(pool).await;
    wait_until("5 dead letters", SOON, || async {
        delivery_count_in(pool, &[DEAD]).await == 5
    })
    .await;
    stop(pool, handle).await;

    let all = admin
        .dead_letters(&DeadLetterFilter::new(), 100, None)
        .await
        .expect("list");
    assert_eq!(all.items.len(), 5);
    assert_eq!(all.next, None);
    let order: Vec<_> = all.items.iter().map(|d| (d.finished_at, d.id)).collect();
    let mut newest_first = order.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(order, newest_first, "newest first");
    let first = &all.items[0];
    assert_eq!(first.subscription, SUB);
    assert_eq!(first.attempts, 3);
    assert!(
        first
            .last_error
            .as_deref()
            .unwrap()
            .contains("card declined at attempt 3"),
        "{first:?}"
    );

    // Filters.
    let sent = DeadLetterFilter::new().event_type("invoice.sent");
    let sent_page = admin.dead_letters(&sent, 100, None).await.unwrap();
    assert_eq!(sent_page.items.len(), 2);
    assert!(
        sent_page
            .items
            .iter()
            .all(|d| d.event_type.as_deref() == Some("invoice.sent"))
    );
    let by_error = DeadLetterFilter::new().error_contains("CARD DECLINED");
    assert_eq!(
        admin
            .dead_letters(&by_error, 100, None)
            .await
            .unwrap()
            .items
            .len(),
        5
    );
    let nothing = DeadLetterFilter::new().error_contains("no such text");
    assert!(
        admin
            .dead_letters(&nothing, 100, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let future =
        DeadLetterFilter::new().finished(TimeRange::since(Utc::now() + chrono::Duration::hours(1)));
    assert!(
        admin
            .dead_letters(&future, 100, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let by_sub = DeadLetterFilter::new()
        .subscription(SUB)
        .event_type("invoice.*");
    assert_eq!(
        admin
            .dead_letters(&by_sub, 100, None)
            .await
            .unwrap()
            .items
            .len(),
        5
    );

    // Pages of 2: 2, 2, 1, every one once, in the same order.
    let mut seen = Vec::new();
    let mut before = None;
    let mut pages = 0;
    loop {
        let page = admin
            .dead_letters(&DeadLetterFilter::new(), 2, before)
            .await
            .unwrap();
        pages += 1;
        seen.extend(page.items.iter().map(|d| d.id));
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, all.items.iter().map(|d| d.id).collect::<Vec<_>>());

    // One in full: its event and its three failures, the repeated message twice.
    let shown = admin.delivery(first.id).await.expect("show");
    assert_eq!(shown.state, DeliveryState::Dead);
    let event = shown.event.as_ref().expect("its event");
    assert_eq!(event.id, first.event_id);
    assert_eq!(event.subject, first.subject);
    assert!(event.data.get("invoice").is_some());
    let failures: Vec<(i32, &str)> = shown
        .failures
        .iter()
        .map(|f| (f.attempt, f.error.as_str()))
        .collect();
    assert_eq!(
        failures,
        [
            (1, "the payment gateway timed out"),
            (2, "the payment gateway timed out"),
            (3, "permanent failure: card declined at attempt 3"),
        ]
    );
    assert!(
        shown
            .failures
            .windows(2)
            .all(|w| w[0].failed_at <= w[1].failed_at)
    );
    assert!(matches!(
        admin.delivery(-1).await,
        Err(Error::UnknownDelivery(-1))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_retried_with_attempts_reset_or_kept_and_discarded() {
    let db = db().await;
    let pool = db.pool();
    let admin = Admin::new(pool.clone());
    let journal = Journal::new();
    let fixed = Arc::new(AtomicBool::new(false));
    let handle = start(
        dispatcher(pool)
            .retain_done(true)
            .subscribe(billing(&journal, fixed.clone())),
    )
    .await;
    publish_invoices(pool).await;
    wait_until("5 dead letters", SOON, || async {
        delivery_count_in(pool, &[DEAD]).await == 5
    })
    .await;
    let paid = DeadLetterFilter::new().event_type("invoice.paid");
    let page = admin.dead_letters(&paid, 10, None).await.unwrap();
    let ids: Vec<i64> = page.items.iter().map(|d| d.id).collect();
    fixed.store(true, Ordering::SeqCst);

    // One, attempts reset: it runs as attempt 1.
    admin
        .retry_dead_letter(ids[0], RetryMode::ResetAttempts)
        .await
        .expect("retry one");
    wait_until("the retried delivery to be done", SOON, || async {
        delivery(pool, ids[0])
            .await
            .is_some_and(|r| r.state == DONE)
    })
    .await;
    assert_eq!(delivery(pool, ids[0]).await.unwrap().attempts, 1);

    // The invoice.sent ones by filter, attempts kept: each runs as attempt 4.
    let sent = DeadLetterFilter::new().event_type("invoice.sent");
    assert_eq!(
        admin
            .retry_dead_letters(&sent, RetryMode::KeepAttempts)
            .await
            .unwrap(),
        2
    );
    wait_until(
        "the two invoice.sent deliveries to be done",
        SOON,
        || async { delivery_count_in(pool, &[DONE]).await == 3 },
    )
    .await;
    stop(pool, handle).await;
    let kept: Vec<i64> = sqlx::query_scalar(
        "SELECT d.attempts::int8 FROM pgbus.deliveries d JOIN pgbus.events e ON e.id = d.event_id
         WHERE e.type = 'invoice.sent'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(kept, [4, 4]);

    // A done delivery is not dead: refused, unchanged.
    let refused = admin
        .retry_dead_letter(ids[0], RetryMode::ResetAttempts)
        .await;
    assert!(
        matches!(refused, Err(Error::NotDead { id, state: DeliveryState::Done }) if id == ids[0]),
        "{refused:?}"
    );
    assert!(matches!(
        admin.discard_dead_letter(ids[0]).await,
        Err(Error::NotDead { .. })
    ));
    assert!(matches!(
        admin
            .retry_dead_letter(123_456, RetryMode::KeepAttempts)
            .await,
        Err(Error::UnknownDelivery(123_456))
    ));

    // Discard one, then the rest by filter; their failure history goes with them.
    let dead: Vec<i64> = admin
        .dead_letters(&DeadLetterFilter::new(), 10, None)
        .await
        .unwrap()
        .items
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(dead.len(), 2);
    admin.discard_dead_letter(dead[0]).await.expect("discard");
    assert!(delivery(pool, dead[0]).await.is_none());
    assert_eq!(
        admin
            .discard_dead_letters(&DeadLetterFilter::new().subscription(SUB))
            .await
            .unwrap(),
        1
    );
    assert_eq!(delivery_count_in(pool, &[DEAD]).await, 0);
    let orphans = count(
        pool,
        "SELECT count(*) FROM pgbus.delivery_failures f
         WHERE NOT EXISTS (SELECT 1 FROM pgbus.deliveries d WHERE d.id = f.delivery_id)",
    )
    .await;
    assert_eq!(orphans, 0, "failure history outlived its delivery");
    // Done rows keep theirs.
    assert!(!admin.delivery(ids[0]).await.unwrap().failures.is_empty());
}
