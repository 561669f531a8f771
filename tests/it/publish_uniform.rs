//! A batch of one kind (one event type, one priority, no `deliver_at`): `publish_plain.sql`
//! cuts the ids into packs of 256 for each subscription instead of building them from one
//! row per delivery, except for an ordered subscription's keyed deliveries (they need a seq
//! each and go to lane 0). The packs must be the ones the per-row path writes.

use pgbus::{NewEvent, Subscription};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::database::{count, db};
use crate::support::dispatcher::{dispatcher, start, stop};
use crate::support::journal::Journal;
use crate::support::publishing::publish_events;
use crate::support::wait::{SOON, wait_until};

/// The log's rows of one lane, in its order: (event, key, seq).
async fn lane(pool: &PgPool, sub: &str, priority: i16) -> Vec<(Uuid, Option<String>, Option<i64>)> {
    sqlx::query_as(
        "SELECT event_id, key, seq FROM pgbus.delivery_log
         WHERE subscription = $1 AND priority = $2 ORDER BY txid, id",
    )
    .bind(sub)
    .bind(priority)
    .fetch_all(pool)
    .await
    .expect("reading the lane")
}

/// The sizes of one subscription's packs, per lane, in the log's order.
async fn pack_sizes(pool: &PgPool, sub: &str) -> Vec<(i16, i32)> {
    sqlx::query_as(
        "SELECT priority, cardinality(event_ids) FROM pgbus.log_packs
         WHERE subscription = $1 ORDER BY priority, txid, id",
    )
    .bind(sub)
    .fetch_all(pool)
    .await
    .expect("reading the packs")
}

/// The key of the `i`th event of [`batch`]: every third has one.
fn key_of(i: usize) -> Option<String> {
    i.is_multiple_of(3).then(|| format!("k{}", i % 7))
}

/// 600 events of one type at priority 2, keyed by [`key_of`], none with headers.
fn batch() -> Vec<NewEvent> {
    (0..600)
        .map(|i| {
            let e = NewEvent::raw("kind.a", json!({ "i": i })).priority(2);
            match key_of(i) {
                Some(k) => e.key(k),
                None => e,
            }
        })
        .collect()
}

/// Registers two plain subscriptions and an ordered one, all for `kind.*`; returns their
/// journals.
async fn subscribe(pool: &PgPool) -> [Journal; 3] {
    let journals = [Journal::new(), Journal::new(), Journal::new()];
    stop(pool, start(builder(pool, &journals)).await).await;
    journals
}

fn builder(pool: &PgPool, j: &[Journal; 3]) -> pgbus::DispatcherBuilder {
    dispatcher(pool)
        .subscribe(Subscription::raw("first", ["kind.*"], j[0].handler()))
        .subscribe(Subscription::raw("second", ["kind.*"], j[1].handler()))
        .subscribe(Subscription::raw("ord", ["kind.*"], j[2].handler()).ordered())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uniform_batch_is_cut_into_packs_in_publish_order_for_each_subscription() {
    let db = db().await;
    let pool = db.pool();
    subscribe(pool).await;
    let events = batch();
    publish_events(pool, &events).await;

    let all: Vec<(Uuid, Option<String>, Option<i64>)> = (events.iter().enumerate())
        .map(|(i, e)| (e.id(), key_of(i), None))
        .collect();
    for sub in ["first", "second"] {
        assert_eq!(
            pack_sizes(pool, sub).await,
            [(2, 256), (2, 256), (2, 88)],
            "{sub}: packs of 256 at the batch's priority"
        );
        assert_eq!(
            lane(pool, sub, 2).await,
            all,
            "{sub}: every event, keys, publish order"
        );
    }
    // The ordered subscription: keyed deliveries in lane 0 with rising seqs, the others in
    // the batch's lane, each in publish order.
    let keyed = lane(pool, "ord", 0).await;
    let expected: Vec<Uuid> = (all.iter().filter(|r| r.1.is_some()))
        .map(|r| r.0)
        .collect();
    assert_eq!(
        keyed.iter().map(|r| r.0).collect::<Vec<_>>(),
        expected,
        "ord: keyed deliveries in lane 0, publish order"
    );
    assert!(
        keyed.windows(2).all(|w| w[0].2.unwrap() < w[1].2.unwrap()),
        "ord: seqs rise in publish order"
    );
    let rest: Vec<_> = (all.iter()).filter(|r| r.1.is_none()).cloned().collect();
    assert_eq!(
        lane(pool, "ord", 2).await,
        rest,
        "ord: unkeyed deliveries in lane 2"
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM pgbus.events WHERE headers = '{}'"
        )
        .await,
        600,
        "events without headers are stored with {{}}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uniform_batch_runs_once_for_each_subscription() {
    let db = db().await;
    let pool = db.pool();
    subscribe(pool).await;
    let mut published: Vec<Uuid> = Vec::new();
    for _ in 0..2 {
        let events = batch();
        publish_events(pool, &events).await;
        published.extend(events.iter().map(NewEvent::id));
    }
    published.sort();
    let journals = [Journal::new(), Journal::new(), Journal::new()];
    let handle = start(builder(pool, &journals)).await;
    wait_until("1,200 deliveries to each subscription", SOON, || async {
        journals.iter().all(|j| j.len() >= 1200)
    })
    .await;
    stop(pool, handle).await;
    for j in &journals {
        assert_eq!(j.sorted_event_ids(), published, "each event once");
    }
}
