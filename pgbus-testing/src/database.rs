//! [`TestDatabase`]: a fresh database of its own for one test.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

#[cfg(unix)]
use crate::Cluster;
use crate::TestingError;
use crate::admin::{create_database, drop_database};
use crate::server::Server;
use crate::unique_name::unique_name;

/// How long dropping a database from `Drop` may take.
const DROP_TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh database of its own for one test, with a connection pool to it.
///
/// With `DATABASE_URL` set (see [`database_url_from_env`](crate::database_url_from_env)), it
/// is created and migrated on that server and dropped (`WITH (FORCE)`) when the
/// `TestDatabase` is dropped. Without it, on Unix, it is a copy of a migrated template
/// database on the [shared cluster](crate::shared_cluster); dropping it drops the database
/// in the background (the whole cluster goes away with the process anyway). On other
/// platforms `DATABASE_URL` is required ([`TestingError::DatabaseUrlRequired`]).
///
/// ```no_run
/// # async fn demo() -> Result<(), pgbus_testing::TestingError> {
/// let db = pgbus_testing::TestDatabase::create().await?;
/// let events: i64 = sqlx::query_scalar("SELECT count(*) FROM pgbus.events")
///     .fetch_one(db.pool())
///     .await?;
/// assert_eq!(events, 0);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct TestDatabase {
    pool: PgPool,
    url: String,
    name: String,
    server: Server,
    /// Cleared once the database has been dropped explicitly.
    drop_on_drop: bool,
}

impl TestDatabase {
    /// Creates a fresh, migrated database.
    ///
    /// # Errors
    ///
    /// What failed while providing the server, creating or migrating the database.
    pub async fn create() -> Result<TestDatabase, TestingError> {
        let server = Server::get().await?;
        match server {
            #[cfg(unix)]
            Server::Local(_) => {
                let template = crate::template::template(server).await?;
                Self::create_on(server, Some(template)).await
            }
            Server::External(_) => {
                let db = Self::create_on(server, None).await?;
                pgbus::migrate(&db.pool).await?;
                Ok(db)
            }
        }
    }

    /// Creates a fresh database without the pgbus schema, for tests of the migration itself.
    ///
    /// # Errors
    ///
    /// What failed while providing the server or creating the database.
    pub async fn create_empty() -> Result<TestDatabase, TestingError> {
        Self::create_on(Server::get().await?, None).await
    }

    async fn create_on(server: Server, template: Option<&str>) -> Result<Self, TestingError> {
        let name = unique_name("pgbus_test");
        create_database(server, &name, template).await?;
        let url = server.database_url(&name);
        let db = TestDatabase {
            pool: PgPoolOptions::new()
                .max_connections(20)
                .acquire_timeout(Duration::from_secs(10))
                .connect_lazy(&url)?,
            url,
            name,
            server,
            drop_on_drop: true,
        };
        // Fail here, not in the test, if it cannot be connected to (dropping `db` cleans up).
        db.pool.acquire().await?;
        tracing::debug!(database = %db.name, "test database created");
        Ok(db)
    }

    /// A pool of up to 20 connections to the database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The connection URL of the database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cluster the database lives on; `None` when `DATABASE_URL` is used. Unix only.
    #[cfg(unix)]
    pub fn cluster(&self) -> Option<&'static Cluster> {
        match self.server {
            Server::Local(cluster) => Some(cluster),
            Server::External(_) => None,
        }
    }

    /// Closes the pool and drops the database now, reporting failure.
    ///
    /// # Errors
    ///
    /// What failed while dropping the database.
    pub async fn drop_database(mut self) -> Result<(), TestingError> {
        self.drop_on_drop = false;
        self.pool.close().await;
        drop_database(&self.server.admin_url(), &self.name).await
    }
}

impl Drop for TestDatabase {
    /// Drops the database from a thread of its own (a `Drop` cannot await). With
    /// `DATABASE_URL` it waits for that, so nothing is left on the server; on the local
    /// cluster it does not.
    fn drop(&mut self) {
        if !self.drop_on_drop {
            return;
        }
        let admin_url = self.server.admin_url();
        let name = self.name.clone();
        let dropper = std::thread::Builder::new()
            .name("pgbus-drop-test-db".to_owned())
            .spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                runtime.block_on(async {
                    let dropped =
                        tokio::time::timeout(DROP_TIMEOUT, drop_database(&admin_url, &name)).await;
                    if !matches!(dropped, Ok(Ok(()))) {
                        tracing::debug!(database = %name, "dropping test database failed");
                    }
                });
            });
        if let (Server::External(_), Ok(dropper)) = (self.server, dropper) {
            let _ = dropper.join();
        }
    }
}
