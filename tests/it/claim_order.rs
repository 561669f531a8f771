//! The order of a claim's sources (src/dispatcher/claimer.rs): a claim that answers a
//! wake-up (here the dispatcher's start, whose first claim answers it) reads the delivery
//! log before `pgbus.deliveries`, so a fresh event is dispatched first; when the log filled
//! the room, the next claim takes from `pgbus.deliveries` first, so that a backlog of fresh
//! events does not keep due rows waiting behind it.

use chrono::Utc;
use pgbus::{NewEvent, Subscription};
use serde_json::json;

use crate::support::database::{count, db};
use crate::support::dispatcher::{dispatcher, register, start, stop};
use crate::support::journal::Journal;
use crate::support::publishing::{publish_events, publish_one};
use crate::support::wait::{SOON, wait_until};

const FRESH: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_woken_claim_reads_the_log_first_and_due_rows_get_the_next_room() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("orders", &["order.*"])]).await;
    // A row of pgbus.deliveries (a deliver_at still ahead when published), due by the time
    // the dispatcher starts.
    let due = NewEvent::raw("order.due", json!({}))
        .deliver_at(Utc::now() + chrono::Duration::milliseconds(200));
    publish_one(pool, due).await;
    let fresh: Vec<NewEvent> = (0..FRESH)
        .map(|i| NewEvent::raw("order.fresh", json!({ "i": i })))
        .collect();
    publish_events(pool, &fresh).await;
    wait_until("the scheduled row to be due", SOON, || async {
        count(
            pool,
            "SELECT count(*) FROM pgbus.deliveries WHERE run_at <= now()",
        )
        .await
            == 1
    })
    .await;

    // One at a time, one per claim: room for three (concurrency + 2 × batch), so the log
    // alone could fill it for as long as its backlog lasts.
    let journal = Journal::new();
    let handle = start(
        dispatcher(pool)
            .batch_size(1)
            .subscribe(Subscription::raw("orders", ["order.*"], journal.handler()).concurrency(1)),
    )
    .await;
    wait_until("every event handled", SOON, || async {
        journal.len() == FRESH + 1
    })
    .await;
    stop(pool, handle).await;

    let types: Vec<String> = journal.calls().into_iter().map(|c| c.event_type).collect();
    assert_eq!(
        types[0], "order.fresh",
        "the first claim reads the log: {types:?}"
    );
    let at = types
        .iter()
        .position(|t| t == "order.due")
        .expect("the due row ran");
    // The primary claimer's second claim takes it; the second claimer, claiming from the
    // log alongside, may dispatch one fresh event before it.
    assert!(
        (1..=2).contains(&at),
        "the due row runs in the room after the first claim, not after the backlog: {types:?}"
    );
}
