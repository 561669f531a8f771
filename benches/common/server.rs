//! The server the benches run on: a throwaway durable cluster or `DATABASE_URL`, and fresh
//! migrated databases on it.

use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use pgbus_testing::{Cluster, ClusterOptions};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor};

use super::{Res, statements_enabled};

/// A throwaway durable cluster, or the server in `DATABASE_URL`.
pub struct Server {
    cluster: Option<Cluster>,
    base: PgConnectOptions,
    /// The database to connect to for CREATE/DROP DATABASE.
    admin_db: String,
    created: Mutex<Vec<String>>,
}

impl Server {
    pub async fn start() -> Res<Server> {
        match pgbus_testing::database_url_from_env() {
            Some(url) => {
                let base = PgConnectOptions::from_str(&url)?.disable_statement_logging();
                let admin_db = base.get_database().unwrap_or("postgres").to_owned();
                eprintln!(
                    "using the server in DATABASE_URL; benches create and drop databases \
                     named pgbus_bench_* on it"
                );
                Ok(Server {
                    cluster: None,
                    base,
                    admin_db,
                    created: Mutex::new(Vec::new()),
                })
            }
            None => {
                eprintln!("starting a throwaway PostgreSQL (ClusterOptions::durable()) ...");
                let mut opts = ClusterOptions::durable();
                if statements_enabled() {
                    opts.extra_settings.push((
                        "shared_preload_libraries".to_owned(),
                        "pg_stat_statements".to_owned(),
                    ));
                }
                let cluster = Cluster::start(opts).await?;
                let base = PgConnectOptions::from_str(&cluster.url("postgres"))?
                    .disable_statement_logging();
                eprintln!(
                    "  {} on port {}",
                    cluster.settings_summary(),
                    cluster.port()
                );
                Ok(Server {
                    cluster: Some(cluster),
                    base,
                    admin_db: "postgres".to_owned(),
                    created: Mutex::new(Vec::new()),
                })
            }
        }
    }

    pub fn is_throwaway(&self) -> bool {
        self.cluster.is_some()
    }

    pub fn options(&self, db: &str) -> PgConnectOptions {
        self.base.clone().database(db)
    }

    pub fn url(&self, db: &str) -> String {
        match &self.cluster {
            Some(c) => c.url(db),
            None => self.options(db).to_url_lossy().to_string(),
        }
    }

    pub async fn admin(&self) -> Res<PgConnection> {
        Ok(PgConnection::connect_with(&self.options(&self.admin_db)).await?)
    }

    /// Drops (if present) and creates database `name`, migrates pgbus into it.
    pub async fn fresh_db(&self, name: &str) -> Res<()> {
        assert!(
            name.starts_with("pgbus_bench"),
            "only pgbus_bench* databases"
        );
        let mut admin = self.admin().await?;
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await?;
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await?;
        admin.close().await?;
        {
            let mut created = self.created.lock().unwrap();
            if !created.iter().any(|n| n == name) {
                created.push(name.to_owned());
            }
        }
        let pool = self.pool(name, 2).await?;
        pgbus::migrate(&pool).await?;
        pool.close().await;
        Ok(())
    }

    pub async fn pool(&self, db: &str, max: u32) -> Res<PgPool> {
        Ok(PgPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(self.options(db))
            .await?)
    }

    pub async fn connect(&self, db: &str) -> Res<PgConnection> {
        Ok(PgConnection::connect_with(&self.options(db)).await?)
    }

    /// `n` connections to `db`.
    pub async fn connections(&self, db: &str, n: usize) -> Res<Vec<PgConnection>> {
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n {
            conns.push(self.connect(db).await?);
        }
        Ok(conns)
    }

    /// The harness's settle step, as in the peers harness: `VACUUM ANALYZE` + `CHECKPOINT`.
    pub async fn settle(&self, db: &str) -> Res<()> {
        let mut c = self.connect(db).await?;
        c.execute("VACUUM ANALYZE").await?;
        c.execute("CHECKPOINT").await?;
        c.close().await?;
        Ok(())
    }

    /// Drops the databases this process created (on a DATABASE_URL server) and stops the
    /// throwaway cluster.
    pub async fn finish(self) -> Res<()> {
        let names = self.created.lock().unwrap().clone();
        if let Ok(mut admin) = self.admin().await {
            for n in names {
                let _ = admin
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {n} WITH (FORCE)"
                    )))
                    .await;
            }
            let _ = admin.close().await;
        }
        if let Some(c) = self.cluster {
            c.stop_fast().await?;
        }
        Ok(())
    }
}
