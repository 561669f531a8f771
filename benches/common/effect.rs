//! Handlers that write one row per delivery into `bench_effects`: a plain one (autocommit on
//! its pool) and a transactional one (`pgbus::RawTxHandler`, in the delivery's transaction),
//! for the cost of exactly-once effects beside the plain write.

use std::sync::Arc;

use pgbus::{Delivery, HandlerError, RawHandler, RawTxHandler};
use sqlx::{PgPool, Postgres, Transaction};

use super::{Counter, Res};

const INSERT: &str = "INSERT INTO bench_effects (delivery_id, event_id) VALUES ($1, $2)";

/// Creates `bench_effects` in the database of `pool`.
pub async fn create_effects(pool: &PgPool) -> Res<()> {
    sqlx::query(
        "CREATE TABLE bench_effects (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            delivery_id bigint NOT NULL,
            event_id    uuid   NOT NULL
        )",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Inserts one row per delivery in autocommit on `pool` (at least once).
#[derive(Debug, Clone)]
pub struct InsertEffect(pub Arc<Counter>, pub PgPool);

#[async_trait::async_trait]
impl RawHandler for InsertEffect {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        sqlx::query(INSERT)
            .bind(delivery.id)
            .bind(delivery.event.id)
            .execute(&self.1)
            .await?;
        self.0.hit();
        Ok(())
    }
}

/// Inserts one row per delivery in the delivery's transaction (exactly once).
#[derive(Debug, Clone)]
pub struct TxInsertEffect(pub Arc<Counter>);

#[async_trait::async_trait]
impl RawTxHandler for TxInsertEffect {
    async fn handle(
        &self,
        delivery: &Delivery,
        tx: &mut Transaction<'static, Postgres>,
    ) -> Result<(), HandlerError> {
        sqlx::query(INSERT)
            .bind(delivery.id)
            .bind(delivery.event.id)
            .execute(&mut **tx)
            .await?;
        self.0.hit();
        Ok(())
    }
}
