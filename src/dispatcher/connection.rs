//! A pool connection kept by one dispatcher task across statements: no pool round trip (or
//! pre-acquire ping) per claim or completion; dropped and re-acquired after an error.

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};

#[derive(Debug)]
pub(crate) struct KeptConnection {
    pool: PgPool,
    conn: Option<PoolConnection<Postgres>>,
}

impl KeptConnection {
    pub(crate) fn new(pool: PgPool) -> Self {
        KeptConnection { pool, conn: None }
    }

    /// The kept connection, acquired from the pool if there is none.
    pub(crate) async fn get(&mut self) -> sqlx::Result<&mut PgConnection> {
        if self.conn.is_none() {
            self.conn = Some(self.pool.acquire().await?);
        }
        Ok(self.conn.as_mut().expect("set above"))
    }

    /// Gives the connection up after an error: it is closed rather than returned to the
    /// pool, since it may be broken (server restart, terminated backend).
    pub(crate) fn discard(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(conn.detach());
        }
    }

    /// Runs `f` on the kept connection; on error, discards it.
    pub(crate) async fn run<T, F>(&mut self, f: F) -> sqlx::Result<T>
    where
        F: AsyncFnOnce(&mut PgConnection) -> sqlx::Result<T>,
    {
        let result = match self.get().await {
            Ok(conn) => f(conn).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.discard();
        }
        result
    }
}
