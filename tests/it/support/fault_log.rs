//! The `fault_log` table: fault-test handlers record each call in it, in autocommit,
//! before returning `Ok` (one row per handler call that got that far), so that a test can
//! count lost and repeated deliveries even across killed processes and server restarts.

use async_trait::async_trait;
use pgbus::{Delivery, HandlerError, RawHandler, RawTxHandler};
use sqlx::PgPool;
use uuid::Uuid;

/// Creates `fault_log` in the database of `pool`.
pub async fn create_fault_log(pool: &PgPool) {
    sqlx::query(
        "CREATE TABLE fault_log (
            id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            event_id     uuid   NOT NULL,
            subscription text   NOT NULL,
            delivery_id  bigint NOT NULL,
            attempt      int    NOT NULL,
            pid          int    NOT NULL,
            at           timestamptz NOT NULL DEFAULT clock_timestamp()
        )",
    )
    .execute(pool)
    .await
    .expect("creating fault_log");
}

/// Records one handler call in `fault_log`.
pub async fn record(pool: &PgPool, delivery: &Delivery, pid: u32) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO fault_log (event_id, subscription, delivery_id, attempt, pid)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(delivery.event.id)
    .bind(&*delivery.subscription)
    .bind(delivery.id)
    .bind(delivery.attempt as i32)
    .bind(pid as i32)
    .execute(pool)
    .await
    .map(|_| ())
}

/// A transactional handler that records the call in `fault_log` inside the delivery's
/// transaction, then succeeds: the row commits with the delivery's completion.
pub struct TxRecorder;

#[async_trait]
impl RawTxHandler for TxRecorder {
    async fn handle(
        &self,
        delivery: &Delivery,
        tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    ) -> Result<(), HandlerError> {
        sqlx::query(
            "INSERT INTO fault_log (event_id, subscription, delivery_id, attempt, pid)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(delivery.event.id)
        .bind(&*delivery.subscription)
        .bind(delivery.id)
        .bind(delivery.attempt as i32)
        .bind(std::process::id() as i32)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

/// A handler that records the call in `fault_log` (on its own pool), then succeeds.
pub struct Recorder(pub PgPool);

#[async_trait]
impl RawHandler for Recorder {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        record(&self.0, delivery, std::process::id()).await?;
        Ok(())
    }
}

/// One row of `fault_log`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LogRow {
    pub event_id: Uuid,
    pub subscription: String,
    pub delivery_id: i64,
    pub attempt: i32,
    pub pid: i32,
}

/// Every `fault_log` row, in insertion order.
pub async fn log_rows(pool: &PgPool) -> Vec<LogRow> {
    sqlx::query_as(
        "SELECT event_id, subscription, delivery_id, attempt, pid FROM fault_log ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .expect("reading fault_log")
}

/// How many (event, subscription) pairs of the given events, for the given subscriptions,
/// have no `fault_log` row: deliveries lost.
pub async fn lost_pairs(pool: &PgPool, events: &[Uuid], subscriptions: &[&str]) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM unnest($1::uuid[]) AS e(id) CROSS JOIN unnest($2::text[]) AS s(name)
         WHERE NOT EXISTS (SELECT 1 FROM fault_log l
                           WHERE l.event_id = e.id AND l.subscription = s.name)",
    )
    .bind(events)
    .bind(subscriptions)
    .fetch_one(pool)
    .await
    .expect("counting lost deliveries")
}

/// Where up to five lost (event, subscription) pairs are, for a failing test's message: their
/// rows in the delivery log (slot, txid, id), in `pgbus.deliveries` (id, state), and the
/// batches of their lane whose window holds them.
pub async fn lost_report(pool: &PgPool, events: &[Uuid], subscriptions: &[&str]) -> String {
    type Found = (Uuid, String, Option<String>, Option<String>, Option<String>);
    let rows: Vec<Found> = sqlx::query_as(
        "WITH lost AS (
             SELECT e.id, s.name FROM unnest($1::uuid[]) AS e(id)
             CROSS JOIN unnest($2::text[]) AS s(name)
             WHERE NOT EXISTS (SELECT 1 FROM fault_log l
                               WHERE l.event_id = e.id AND l.subscription = s.name)
             LIMIT 5)
         SELECT l.id, l.name,
                (SELECT string_agg(format('slot %s txid %s id %s', q.slot, q.txid, q.id), '; ')
                 FROM pgbus.delivery_log q WHERE q.event_id = l.id AND q.subscription = l.name),
                (SELECT string_agg(format('id %s state %s', d.id, d.state), '; ')
                 FROM pgbus.deliveries d WHERE d.event_id = l.id AND d.subscription = l.name),
                (SELECT string_agg(format('batch %s (%s,%s]..(%s,%s] n %s closed %s taken back %s',
                                          c.id, c.from_txid, c.from_id, c.last_txid, c.last_id,
                                          c.n, c.closed_at IS NOT NULL, c.taken_back), '; ')
                 FROM pgbus.claims c CROSS JOIN LATERAL pgbus.claim_rows(c) r
                 WHERE c.subscription = l.name AND r.event_id = l.id)
         FROM lost l",
    )
    .bind(events)
    .bind(subscriptions)
    .fetch_all(pool)
    .await
    .expect("locating lost deliveries");
    rows.iter()
        .map(|(e, s, log, d, b)| {
            format!(
                "{e} {s}: log [{}], deliveries [{}], batches [{}]",
                log.as_deref().unwrap_or(""),
                d.as_deref().unwrap_or(""),
                b.as_deref().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
