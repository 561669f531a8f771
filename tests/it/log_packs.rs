//! The delivery log's packs (migration 0019): a publish statement writes one row per lane and
//! 256 events, its deliveries in publish order under consecutive ids; claims that stop inside
//! a pack go on from there, and every delivery runs once.

use pgbus::{NewEvent, Subscription};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::database::{count, db};
use crate::support::dispatcher::{dispatcher, register, start, stop};
use crate::support::journal::Journal;
use crate::support::publishing::{publish_events, publish_n, publish_one};
use crate::support::wait::{SOON, wait_until};

/// The packs of one subscription: (priority, first id, deliveries), in the log's order.
async fn packs(pool: &PgPool, sub: &str) -> Vec<(i16, i64, i32)> {
    sqlx::query_as(
        "SELECT priority, id, cardinality(event_ids) FROM pgbus.log_packs
         WHERE subscription = $1 ORDER BY priority, txid, id",
    )
    .bind(sub)
    .fetch_all(pool)
    .await
    .expect("reading the packs")
}

/// The log's deliveries of one subscription and priority, in the lane's order: (id, event).
async fn lane(pool: &PgPool, sub: &str, priority: i16) -> Vec<(i64, Uuid)> {
    sqlx::query_as(
        "SELECT id, event_id FROM pgbus.delivery_log
         WHERE subscription = $1 AND priority = $2 ORDER BY txid, id",
    )
    .bind(sub)
    .bind(priority)
    .fetch_all(pool)
    .await
    .expect("reading the lane")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_packed_per_lane_in_publish_order_under_consecutive_ids() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("packs", &["pack.*"])]).await;
    // 600 events at priority 0, then 10 alternating between priorities 1 and 2.
    let mut events: Vec<NewEvent> = (0..600)
        .map(|i| NewEvent::raw("pack.a", json!({ "i": i })))
        .collect();
    events.extend((0..10).map(|i| NewEvent::raw("pack.b", json!({ "j": i })).priority(1 + i % 2)));
    publish_events(pool, &events).await;

    let found = packs(pool, "packs").await;
    let shape: Vec<(i16, i32)> = found.iter().map(|&(p, _, n)| (p, n)).collect();
    assert_eq!(shape, [(0, 256), (0, 256), (0, 88), (1, 5), (2, 5)]);
    // Packs are 256 ids apart at least, so that no two share an id.
    let mut starts: Vec<i64> = found.iter().map(|&(_, id, _)| id).collect();
    starts.sort();
    assert!(
        starts.windows(2).all(|w| w[1] - w[0] >= 256),
        "packs closer than 256 ids: {starts:?}"
    );
    for priority in [0, 1, 2] {
        let rows = lane(pool, "packs", priority).await;
        let expected: Vec<Uuid> = (events.iter())
            .enumerate()
            .filter(|(i, _)| match priority {
                0 => *i < 600,
                p => *i >= 600 && (1 + (*i as i16 - 600) % 2) == p,
            })
            .map(|(_, e)| e.id())
            .collect();
        let got: Vec<Uuid> = rows.iter().map(|&(_, e)| e).collect();
        assert_eq!(got, expected, "lane {priority}: the publish order");
        assert!(
            rows.windows(2).all(|w| w[0].0 < w[1].0),
            "lane {priority}: ids rise along the lane"
        );
    }
    // Within a pack, ids are consecutive from the pack's id.
    let first = lane(pool, "packs", 0).await;
    assert_eq!(first[0].0, found[0].1);
    assert_eq!(first[255].0, found[0].1 + 255);
    assert_eq!(first[256].0, found[1].1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_that_stop_inside_a_pack_go_on_from_there() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("inside", &["inside.*"])]).await;
    let published = publish_n(pool, "inside.event", 600).await;
    // Claims of 100 from the SQL function itself: each one but the first starts inside a
    // pack, some end in the next one.
    let mut claimed: Vec<(i64, Uuid)> = Vec::new();
    for _ in 0..7 {
        let batch: Vec<(i64, Uuid)> = sqlx::query_as(
            "SELECT id, event_id FROM pgbus.claim_log('inside', 100, 30, 0, pg_current_snapshot())",
        )
        .fetch_all(pool)
        .await
        .expect("claiming");
        assert!(batch.len() <= 100);
        claimed.extend(batch);
    }
    let events: Vec<Uuid> = claimed.iter().map(|&(_, e)| e).collect();
    assert_eq!(events, published, "each delivery once, in publish order");
    assert!(
        claimed.windows(2).all(|w| w[0].0 < w[1].0),
        "ids rise from claim to claim"
    );
    assert_eq!(
        count(
            pool,
            "SELECT coalesce(sum(n), 0)::int8 FROM pgbus.claims WHERE subscription = 'inside'"
        )
        .await,
        600
    );
}

/// Claims of one delivery each, from a window of packs of one: the pack at the position
/// holds nothing more to claim and must not take the claim's place (before it was left
/// out, the second claim found nothing and the window's third delivery was never read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_of_one_read_every_pack_of_one_in_their_window() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("ones", &["ones.*"])]).await;
    let mut published = Vec::new();
    for i in 0..3 {
        published.push(publish_one(pool, NewEvent::raw("ones.event", json!({ "i": i }))).await);
    }
    let mut claimed = Vec::new();
    for _ in 0..4 {
        let batch: Vec<Uuid> = sqlx::query_scalar(
            "SELECT event_id FROM pgbus.claim_log('ones', 1, 30, 0, pg_current_snapshot())",
        )
        .fetch_all(pool)
        .await
        .expect("claiming");
        claimed.extend(batch);
    }
    assert_eq!(claimed, published, "each delivery once, in publish order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_with_small_batches_runs_every_packed_delivery_once() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("small", &["small.*"])]).await;
    let mut published = Vec::new();
    for _ in 0..3 {
        published.extend(publish_n(pool, "small.event", 700).await);
    }
    let journal = Journal::new();
    let handle = start(dispatcher(pool).batch_size(90).subscribe(Subscription::raw(
        "small",
        ["small.*"],
        journal.handler(),
    )))
    .await;
    wait_until("2,100 deliveries", SOON, || async { journal.len() >= 2100 }).await;
    stop(pool, handle).await;
    published.sort();
    assert_eq!(journal.sorted_event_ids(), published, "each delivery once");
}

/// The same through a dispatcher: one delivery per claim, each published alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_delivery_per_claim_with_done_rows_retained_runs_each_publish() {
    let db = db().await;
    let pool = db.pool();
    let journal = Journal::new();
    let handle = start(
        dispatcher(pool)
            .retain_done(true)
            .batch_size(1)
            .subscribe(Subscription::raw("one", ["one.*"], journal.handler()).concurrency(1)),
    )
    .await;
    for n in 1..=4 {
        publish_one(pool, NewEvent::raw("one.event", json!({ "n": n }))).await;
        wait_until("the event just published", SOON, || async {
            journal.len() == n
        })
        .await;
    }
    stop(pool, handle).await;
}

/// Claims of lanes around lane 0 (migration 0025 reads lane 0 without looking for it): lanes
/// below 0 first, then 0, then those above, each in publish order; a lane 0 without rows
/// writes no batch, and a claim that finds nothing writes none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_read_the_lanes_around_lane_zero_in_priority_order() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("lanes", &["lanes.*"])]).await;
    async fn claim(pool: &PgPool) -> Vec<(i16, Uuid)> {
        sqlx::query_as(
            "SELECT priority, event_id FROM pgbus.claim_log('lanes', 100, 30, 0, pg_current_snapshot())",
        )
        .fetch_all(pool)
        .await
        .expect("claiming")
    }
    /// Publishes one event per priority, each alone; returns (priority, event) in the order
    /// a claim takes them: by priority, then publish order.
    async fn publish_in_lanes(pool: &PgPool, priorities: &[i16]) -> Vec<(i16, Uuid)> {
        let mut published = Vec::new();
        for (i, &p) in priorities.iter().enumerate() {
            let event = NewEvent::raw("lanes.event", json!({ "i": i })).priority(p);
            published.push((p, publish_one(pool, event).await));
        }
        published.sort_by_key(|&(p, _)| p);
        published
    }
    async fn batches(pool: &PgPool, priority: i16) -> i64 {
        let sql = format!(
            "SELECT count(*) FROM pgbus.claims WHERE subscription = 'lanes' AND priority = {priority}"
        );
        count(pool, &sql).await
    }
    // No lane 0: lanes 1 and 3, interleaved.
    let want = publish_in_lanes(pool, &[3, 1, 3, 1]).await;
    assert_eq!(
        claim(pool).await,
        want,
        "lane 1, then lane 3, each in publish order"
    );
    assert_eq!(batches(pool, 0).await, 0, "no batch for an empty lane 0");
    assert_eq!((batches(pool, 1).await, batches(pool, 3).await), (1, 1));
    assert_eq!(claim(pool).await, [], "nothing left");
    assert_eq!(
        count(pool, "SELECT count(*) FROM pgbus.claims").await,
        2,
        "nothing written"
    );

    // Lanes 2, 0 and -2: below 0 first.
    let want = publish_in_lanes(pool, &[2, 0, -2, 0, 2, -2]).await;
    assert_eq!(
        claim(pool).await,
        want,
        "lanes -2, 0 and 2, each in publish order"
    );
    assert_eq!(
        (
            batches(pool, -2).await,
            batches(pool, 0).await,
            batches(pool, 2).await
        ),
        (1, 1, 1)
    );
}
