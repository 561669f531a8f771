//! The claim of the delivery log (migration 0020): a window without late transactions is read
//! with one range of the lane's index, one with them through the union of version 19; a claim
//! that finds nothing stays read-only; a paused subscription is skipped by the function; the
//! claim returns its events (migration 0023).

use pgbus::{NewEvent, Publisher};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::database::{count, db};
use crate::support::dispatcher::register;
use crate::support::publishing::{publish_n, publish_one};

/// One claim of at most `n` deliveries of `sub`, from the SQL function itself; the events'
/// ids in claim order.
async fn claim(pool: &PgPool, sub: &str, n: i32) -> Vec<Uuid> {
    sqlx::query_scalar("SELECT event_id FROM pgbus.claim_log($1, $2, 30, 0, pg_current_snapshot())")
        .bind(sub)
        .bind(n)
        .fetch_all(pool)
        .await
        .expect("claiming")
}

/// Claims of `n` until one finds nothing; every event claimed, in claim order.
async fn claim_all(pool: &PgPool, sub: &str, n: i32) -> Vec<Uuid> {
    let mut all = Vec::new();
    loop {
        let batch = claim(pool, sub, n).await;
        if batch.is_empty() {
            return all;
        }
        assert!(
            batch.len() <= n as usize,
            "a claim took more than it asked for"
        );
        all.extend(batch);
    }
}

/// A transaction open across a window (its txid in the window's start snapshot, committed by
/// its end) is read by the union; the claims before and after it, which stop inside the
/// packs of one transaction, by the single range. Every delivery once, each transaction's in
/// publish order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_with_and_without_late_transactions_read_every_delivery_once() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("paths", &["paths.*"])]).await;
    let publisher = Publisher::new("paths-tests").expect("publisher");

    // A: 300 events in a transaction that stays open.
    let late: Vec<NewEvent> = (0..300)
        .map(|i| NewEvent::raw("paths.late", json!({ "i": i })))
        .collect();
    let mut open = pool.begin().await.expect("begin");
    publisher
        .publish_all(&mut open, &late)
        .await
        .expect("publish A");
    // B: 300 committed after A began. Claims of 70 read B only, stopping inside its packs;
    // the last one ends the window while A is still in progress.
    let early = publish_n(pool, "paths.early", 300).await;
    let first = claim_all(pool, "paths", 70).await;
    assert_eq!(first, early, "B once, in publish order, without A");

    // A commits, C after it: the next window holds A as a late transaction, then C.
    open.commit().await.expect("commit A");
    let after = publish_n(pool, "paths.after", 300).await;
    let second = claim_all(pool, "paths", 70).await;
    let mut expected: Vec<Uuid> = late.iter().map(NewEvent::id).collect();
    expected.extend(&after);
    assert_eq!(
        second, expected,
        "A, then C, each once and in publish order"
    );
    assert_eq!(
        count(
            pool,
            "SELECT coalesce(sum(n), 0)::int8 FROM pgbus.claims WHERE subscription = 'paths'"
        )
        .await,
        900
    );
}

/// A claim that finds nothing writes nothing and takes no transaction id (an idle
/// dispatcher's polls would otherwise consume them); one that takes deliveries is leased
/// under its transaction's id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_that_finds_nothing_takes_no_transaction_id() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("idle", &["idle.*"])]).await;
    publish_one(pool, NewEvent::raw("idle.event", json!({}))).await;

    let mut tx = pool.begin().await.expect("begin");
    let leases: Vec<i64> = sqlx::query_scalar(
        "SELECT lease_id FROM pgbus.claim_log('idle', 10, 30, 0, pg_current_snapshot())",
    )
    .fetch_all(&mut *tx)
    .await
    .expect("claiming");
    let own: i64 = sqlx::query_scalar("SELECT pg_current_xact_id()::text::int8")
        .fetch_one(&mut *tx)
        .await
        .expect("the transaction's id");
    assert_eq!(
        leases,
        [own],
        "one delivery, leased under the claim's transaction id"
    );
    tx.commit().await.expect("commit");

    let mut tx = pool.begin().await.expect("begin");
    let nothing: Vec<i64> = sqlx::query_scalar(
        "SELECT lease_id FROM pgbus.claim_log('idle', 10, 30, 0, pg_current_snapshot())",
    )
    .fetch_all(&mut *tx)
    .await
    .expect("claiming");
    assert!(nothing.is_empty());
    let assigned: Option<String> =
        sqlx::query_scalar("SELECT pg_current_xact_id_if_assigned()::text")
            .fetch_one(&mut *tx)
            .await
            .expect("reading the transaction's id");
    assert_eq!(assigned, None, "the empty claim took a transaction id");
    tx.rollback().await.expect("rollback");
}

/// A paused subscription's lane is not read, even by a direct call of the function; it is
/// read again once resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_subscription_is_skipped_by_the_claim_itself() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("held", &["held.*"])]).await;
    let published = publish_n(pool, "held.event", 3).await;
    sqlx::query("UPDATE pgbus.subscriptions SET paused_at = now() WHERE name = 'held'")
        .execute(pool)
        .await
        .expect("pausing");
    assert!(
        claim(pool, "held", 10).await.is_empty(),
        "a paused lane was read"
    );
    sqlx::query("UPDATE pgbus.subscriptions SET paused_at = NULL WHERE name = 'held'")
        .execute(pool)
        .await
        .expect("resuming");
    assert_eq!(claim(pool, "held", 10).await, published);
}

/// The log's claim returns each lane's events after its deliveries, as rows of their own (no
/// delivery id), each read from its slot's partition of `pgbus.events`, also when a batch
/// spans two slots of the events ring (migration 0023); the function of version 22,
/// `pgbus.claim_log`, returns only the deliveries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_returns_its_events_from_every_slot_of_its_batch() {
    let db = db().await;
    let pool = db.pool();
    register(pool, &[("evs", &["evs.*"])]).await;
    let mut published = publish_n(pool, "evs.first", 2).await;
    // Publishing moves to the next slot of the events ring, as its rotation does.
    sqlx::query(
        "INSERT INTO pgbus.events_ring (generation, slot)
         SELECT generation + 1, (slot + 1) % 8 FROM pgbus.events_ring
         ORDER BY generation DESC LIMIT 1",
    )
    .execute(pool)
    .await
    .expect("turning the events ring");
    published.extend(publish_n(pool, "evs.second", 2).await);

    let rows: Vec<(Option<i64>, Uuid, Option<String>, i16)> = sqlx::query_as(
        "SELECT id, event_id, event_type, event_slot
         FROM pgbus.claim_log_batch('evs', 10, 30, 0, pg_current_snapshot())",
    )
    .fetch_all(pool)
    .await
    .expect("claiming");
    let deliveries: Vec<(Uuid, i16)> = rows
        .iter()
        .take_while(|r| r.0.is_some())
        .map(|r| (r.1, r.3))
        .collect();
    assert_eq!(
        deliveries.iter().map(|d| d.0).collect::<Vec<_>>(),
        published,
        "the deliveries first, in publish order"
    );
    assert_ne!(deliveries[0].1, deliveries[3].1, "two slots of the ring");
    let mut events: Vec<(Uuid, i16, String)> = rows[deliveries.len()..]
        .iter()
        .map(|r| {
            assert!(r.0.is_none(), "an event row has no delivery id");
            (r.1, r.3, r.2.clone().expect("the event's type"))
        })
        .collect();
    events.sort();
    let mut expected: Vec<(Uuid, i16, String)> = deliveries
        .iter()
        .enumerate()
        .map(|(i, d)| (d.0, d.1, ["evs.first", "evs.second"][i / 2].to_owned()))
        .collect();
    expected.sort();
    assert_eq!(events, expected, "each event once, from its own slot");

    let later = publish_n(pool, "evs.third", 3).await;
    assert_eq!(
        claim(pool, "evs", 10).await,
        later,
        "version 22's function: the deliveries only"
    );
}
