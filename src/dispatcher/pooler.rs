//! Running behind a transaction-mode connection pooler (PgBouncer, Supavisor, RDS Proxy):
//! consecutive transactions of one client connection may run on different server
//! connections, so nothing may outlive a transaction on the server — no session setting, no
//! session-level advisory lock, no LISTEN, and no prepared statement (PgBouncer before 1.21
//! does not track them: a statement prepared by one client may be executed by another).
//!
//! A dispatcher built with `transaction_pooler(true)` records its pool's endpoint (host,
//! port, socket) here. A [kept connection](super::connection::KeptConnection) to such an
//! endpoint runs each unit of work in a transaction of its own ([`run_in_transaction`]): the
//! server connection is pinned for exactly that long, its statements are prepared inside it
//! and closed before it commits, and its settings are `SET LOCAL`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use sqlx::postgres::{PgArguments, PgQueryResult};
use sqlx::{Connection, Executor, PgConnection, PgPool, Postgres};

use crate::sql;

/// Where a pool connects: host, port and Unix socket.
type Endpoint = (String, u16, Option<PathBuf>);

/// The endpoints known to be transaction-mode poolers, process-wide: a fact about an
/// address, shared by every pool that connects there.
static POOLERS: Mutex<Option<HashSet<Endpoint>>> = Mutex::new(None);

fn endpoint(pool: &PgPool) -> Endpoint {
    let options = pool.connect_options();
    (
        options.get_host().to_owned(),
        options.get_port(),
        options.get_socket().cloned(),
    )
}

/// Records that `pool` connects through a transaction-mode pooler.
pub(crate) fn mark(pool: &PgPool) {
    let mut poolers = POOLERS.lock().unwrap_or_else(PoisonError::into_inner);
    poolers
        .get_or_insert_with(HashSet::new)
        .insert(endpoint(pool));
}

/// Whether `pool` connects through an endpoint marked as a transaction-mode pooler.
pub(crate) fn is_marked(pool: &PgPool) -> bool {
    let poolers = POOLERS.lock().unwrap_or_else(PoisonError::into_inner);
    poolers
        .as_ref()
        .is_some_and(|p| p.contains(&endpoint(pool)))
}

/// Whether two pools connect to the same endpoint.
pub(crate) fn same_endpoint(a: &PgPool, b: &PgPool) -> bool {
    endpoint(a) == endpoint(b)
}

/// Runs `f` in a transaction of its own on `conn`: the kept connection's settings as
/// `SET LOCAL`, and no prepared statement left on the server or in the connection's cache
/// when it ends. On error the transaction is rolled back (the caller discards `conn`).
pub(crate) async fn run_in_transaction<T, F>(conn: &mut PgConnection, f: F) -> sqlx::Result<T>
where
    F: AsyncFnOnce(&mut PgConnection) -> sqlx::Result<T>,
{
    let mut tx = conn.begin().await?;
    // Statements another client left on this server connection could collide with ours.
    (&mut *tx).execute(sql::POOLED_SETUP).await?;
    let out = f(&mut tx).await?;
    tx.clear_cached_statements().await?;
    tx.commit().await?;
    Ok(out)
}

/// Executes one statement on `pool`, in a transaction of its own when `pooled`.
pub(crate) async fn execute(
    pool: &PgPool,
    pooled: bool,
    query: sqlx::query::Query<'_, Postgres, PgArguments>,
) -> sqlx::Result<PgQueryResult> {
    if !pooled {
        return query.execute(pool).await;
    }
    let mut conn = pool.acquire().await?;
    run_in_transaction(&mut conn, async |c| query.execute(c).await).await
}
