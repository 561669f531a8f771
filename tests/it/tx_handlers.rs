//! Transactional handlers: the handler's writes and the delivery's completion commit in one
//! transaction, so an effect is written exactly once; failures roll it back. Takeovers are in
//! `tx_handlers_takeover`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pgbus::{Delivery, HandlerError, NewEvent, RawTxHandler, Subscription};
use serde_json::json;
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::Semaphore;

use crate::support::database::{count, db};
use crate::support::deliveries::delivery_count_not_in;
use crate::support::dispatcher::{dispatcher, quick_retry, register, start, stop};
use crate::support::publishing::{publish_events, publish_one};
use crate::support::states::DONE;
use crate::support::wait::{SOON, wait_until};

/// The handlers' effects: one row per committed handler run.
pub async fn create_effects(pool: &PgPool) {
    sqlx::query(
        "CREATE TABLE effects (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            delivery_id bigint NOT NULL,
            event_id    uuid   NOT NULL,
            attempt     int    NOT NULL
        )",
    )
    .execute(pool)
    .await
    .expect("creating effects");
}

/// Inserts one row of `effects` in the delivery's transaction. Fails (after writing) the
/// attempts listed in `fail`; holds attempt 1 after writing until `release` has a permit,
/// with `entered` given a permit when it gets there (with `only_marked`, only for events
/// whose data has `"hold": true`).
#[derive(Clone, Default)]
pub struct Effect {
    pub fail: Vec<u32>,
    pub hold: Option<(Arc<Semaphore>, Arc<Semaphore>)>,
    pub only_marked: bool,
}

#[async_trait]
impl RawTxHandler for Effect {
    async fn handle(
        &self,
        delivery: &Delivery,
        tx: &mut Transaction<'static, Postgres>,
    ) -> Result<(), HandlerError> {
        sqlx::query("INSERT INTO effects (delivery_id, event_id, attempt) VALUES ($1, $2, $3)")
            .bind(delivery.id)
            .bind(delivery.event.id)
            .bind(delivery.attempt as i32)
            .execute(&mut **tx)
            .await?;
        let marked = delivery.event.data["hold"] == true;
        if let (Some((entered, release)), 1, true) =
            (&self.hold, delivery.attempt, marked || !self.only_marked)
        {
            entered.add_permits(1);
            release.acquire().await.expect("release gate").forget();
        }
        if self.fail.contains(&delivery.attempt) {
            return Err(HandlerError::retry("failing after writing"));
        }
        Ok(())
    }
}

pub async fn effects(pool: &PgPool) -> Vec<(i64, i32)> {
    sqlx::query_as("SELECT delivery_id, attempt FROM effects ORDER BY id")
        .fetch_all(pool)
        .await
        .expect("reading effects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn effects_and_completions_commit_together_and_markers_are_pruned() {
    let db = db().await;
    let pool = db.pool();
    create_effects(pool).await;
    const N: usize = 200;
    register(pool, &[("tx-effects", &["tx.tick"])]).await;
    let events: Vec<NewEvent> = (0..N)
        .map(|n| NewEvent::raw("tx.tick", json!({ "n": n })))
        .collect();
    publish_events(pool, &events).await;
    let handle = start(
        dispatcher(pool)
            .batch_size(50)
            .maintenance_interval(Duration::from_millis(200))
            .subscribe(Subscription::raw_tx(
                "tx-effects",
                ["tx.tick"],
                Effect::default(),
            )),
    )
    .await;
    wait_until("every delivery done", SOON, || async {
        delivery_count_not_in(pool, &[DONE]).await == 0
            && count(pool, "SELECT count(*) FROM effects").await == N as i64
    })
    .await;
    // The done markers of the log rows go once their batches are closed.
    wait_until("the done markers pruned", SOON, || async {
        count(pool, "SELECT count(*) FROM pgbus.deliveries").await == 0
    })
    .await;
    stop(pool, handle).await;
    let written = effects(pool).await;
    assert_eq!(written.len(), N, "one effect per delivery");
    assert_eq!(
        count(pool, "SELECT count(DISTINCT event_id) FROM effects").await,
        N as i64
    );
    assert!(written.iter().all(|&(_, attempt)| attempt == 1));
    assert_eq!(
        count(pool, "SELECT count(*) FROM pgbus.all_deliveries").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_done_rows_of_a_transactional_handler_are_done_rows() {
    let db = db().await;
    let pool = db.pool();
    create_effects(pool).await;
    register(pool, &[("tx-kept", &["tx.tick"])]).await;
    let events: Vec<NewEvent> = (0..20)
        .map(|n| NewEvent::raw("tx.tick", json!({ "n": n })))
        .collect();
    publish_events(pool, &events).await;
    let handle = start(
        dispatcher(pool)
            .retain_done(true)
            .maintenance_interval(Duration::from_millis(200))
            .subscribe(Subscription::raw_tx(
                "tx-kept",
                ["tx.tick"],
                Effect::default(),
            )),
    )
    .await;
    wait_until("20 done rows", SOON, || async {
        count(
            pool,
            "SELECT count(*) FROM pgbus.deliveries WHERE state = 2 AND finished_at IS NOT NULL
                AND tx_batch IS NULL",
        )
        .await
            == 20
    })
    .await;
    stop(pool, handle).await;
    assert_eq!(count(pool, "SELECT count(*) FROM effects").await, 20);
    assert_eq!(
        count(pool, "SELECT count(*) FROM pgbus.all_deliveries").await,
        20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_error_rolls_back_its_writes_and_the_delivery_retries() {
    let db = db().await;
    let pool = db.pool();
    create_effects(pool).await;
    let handler = Effect {
        fail: vec![1, 2],
        ..Effect::default()
    };
    let handle = start(
        dispatcher(pool)
            .subscribe(Subscription::raw_tx("tx-flaky", ["tx.tick"], handler).retry(quick_retry())),
    )
    .await;
    let id = publish_one(pool, NewEvent::raw("tx.tick", json!({}))).await;
    wait_until("the delivery done on its third attempt", SOON, || async {
        count(pool, "SELECT count(*) FROM effects").await == 1
            && delivery_count_not_in(pool, &[DONE]).await == 0
    })
    .await;
    stop(pool, handle).await;
    let written = effects(pool).await;
    assert_eq!(
        written.len(),
        1,
        "the failed attempts' writes were rolled back"
    );
    assert_eq!(written[0].1, 3, "written by the attempt that succeeded");
    let event: uuid::Uuid = sqlx::query_scalar("SELECT event_id FROM effects")
        .fetch_one(pool)
        .await
        .expect("the effect's event");
    assert_eq!(event, id);
}
