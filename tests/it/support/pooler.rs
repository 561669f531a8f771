//! A PgBouncer in transaction mode in front of the shared test cluster, and pools through it
//! configured as the README's "Behind a connection pooler" says.

use std::time::Duration;

use pgbus_testing::{PgBouncer, TestDatabase, TestingError};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// A PgBouncer in front of the cluster of `db`; `None` (after one line, or a failure under
/// `CI=true`) when PgBouncer is not installed.
pub async fn bouncer(db: &TestDatabase) -> Option<PgBouncer> {
    let cluster = db
        .cluster()
        .expect("the pooler tests run on the local cluster");
    match PgBouncer::start(cluster).await {
        Ok(b) => Some(b),
        Err(TestingError::PgBouncerNotFound) => {
            super::tools::missing("pgbouncer (apt-get install pgbouncer)");
            None
        }
        Err(e) => panic!("starting PgBouncer: {e}"),
    }
}

/// A pool of `db` through `bouncer`, with nothing special: sqlx's defaults.
pub fn pooled(bouncer: &PgBouncer, db: &TestDatabase) -> PgPool {
    PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy(&bouncer.url(db.name()))
        .expect("a lazy pool")
}
