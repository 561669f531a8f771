//! The connection a dispatcher task (claimers, completer, lease extension) keeps across
//! statements: no pool round trip or pre-acquire ping per claim or completion, asynchronous
//! commit, and plans that stay on the indexes and are made once.
//!
//! The connection is opened through the pool (its options and hooks) and then detached from
//! it: it never goes back into the pool, so its session setting cannot leak into the
//! application's transactions. It is closed after an error and opened again on next use.
//!
//! `synchronous_commit = off` for this bookkeeping only: a claim, outcome or lease write
//! lost in a server crash leaves the delivery pending or running with an expiring lease, so
//! it runs again — at-least-once holds. Publishing keeps the application's setting.
//!
//! `enable_seqscan = off`, because every statement on these connections finds its rows
//! through an index by design, and the statistics of a queue table mislead the planner: an
//! ANALYZE taken while the queue held a few dozen rows made `id = ANY(batch)` a sequential
//! scan that tested every row of the table against the whole batch. Once a backlog built up
//! (tens of thousands of rows, as many dead ones), each claim and each outcome write took
//! hundreds of milliseconds, and throughput fell from thousands to about 1,300 deliveries/s
//! for seconds at a time, until the next ANALYZE.
//!
//! `jit = off`, because of the setting above: a statement that has no index to use (the
//! presence reaper's update of `pgbus.deliveries` by owner, a rare path) keeps its sequential
//! scan at the disabled cost of 10^10, far past `jit_above_cost`, and PostgreSQL compiled it
//! with LLVM on every execution: 0.5-1.1 s for one reap, measured, on statements that take a
//! fraction of a millisecond to run.
//!
//! `plan_cache_mode = force_generic_plan`, because the statements here run over the rings'
//! partitions, where PostgreSQL's default kept planning each execution afresh: measured
//! side by side at 200 events/s, the statements that run once a second (taking back expired
//! batches, the claim from `pgbus.deliveries`, the look for crash suspects) spent 0.2-1.2 ms
//! each planning at every execution, on a machine where the claim of a fresh event takes
//! 0.35 ms; with generic plans their planning is done once per connection (binds of
//! 0.01-0.1 ms after the first).
//!
//! Behind a transaction-mode pooler (`pooler.rs`) the session setting is not made: each
//! [`run`](KeptConnection::run) is a transaction of its own with the settings `SET LOCAL`.

use sqlx::{Executor, PgConnection, PgPool};

use crate::sql;

#[derive(Debug)]
pub(crate) struct KeptConnection {
    pool: PgPool,
    conn: Option<PgConnection>,
    /// Whether the pool goes through a transaction-mode pooler.
    pooled: bool,
}

impl KeptConnection {
    pub(crate) fn new(pool: PgPool) -> Self {
        let pooled = super::pooler::is_marked(&pool);
        KeptConnection {
            pool,
            conn: None,
            pooled,
        }
    }

    /// The kept connection, opened if there is none.
    pub(crate) async fn get(&mut self) -> sqlx::Result<&mut PgConnection> {
        if self.conn.is_none() {
            let mut conn = self.pool.acquire().await?.detach();
            if !self.pooled {
                conn.execute(sql::SESSION_SETUP).await?;
            }
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("set above"))
    }

    /// Gives the connection up after an error (it may be broken: server restart,
    /// terminated backend); it is closed when dropped.
    pub(crate) fn discard(&mut self) {
        self.conn = None;
    }

    /// Runs `f` on the kept connection (in a transaction of its own behind a
    /// transaction-mode pooler); on error, discards it.
    pub(crate) async fn run<T, F>(&mut self, f: F) -> sqlx::Result<T>
    where
        F: AsyncFnOnce(&mut PgConnection) -> sqlx::Result<T>,
    {
        let pooled = self.pooled;
        let result = match self.get().await {
            Ok(conn) if pooled => super::pooler::run_in_transaction(conn, f).await,
            Ok(conn) => f(conn).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.discard();
        }
        result
    }
}
