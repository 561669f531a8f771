//! Health: the database, the schema, the dispatchers (alive by their presence lock, no
//! heartbeat written) and the subscriptions' lag; cleaning up dispatchers that are gone.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Admin;
use crate::dispatcher::PRESENCE_NAMESPACE;
use crate::error::Result;
use crate::sql;

/// A dispatcher's lock must be free this long (seen free at both ends) for it to count as
/// gone, as the dispatchers themselves judge it.
const GRACE: Duration = Duration::from_millis(500);

/// A dispatcher registered in `pgbus.dispatchers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct DispatcherInfo {
    /// Its id (`pgbus.deliveries.owner` of what it claimed).
    pub id: i32,
    /// Its host name.
    pub host: String,
    /// Its process id.
    pub pid: i32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Whether it holds its presence lock: its process and connection are alive. A
    /// dispatcher found not alive is removed by the others within about a second; with no
    /// other dispatcher running, by [`Admin::reap_gone_dispatchers`].
    pub alive: bool,
    /// The subscriptions it serves.
    pub subscriptions: Vec<String>,
}

/// What [`Admin::health`] checks against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthOptions {
    max_lag: Duration,
}

impl Default for HealthOptions {
    fn default() -> Self {
        HealthOptions {
            max_lag: Duration::from_secs(300),
        }
    }
}

impl HealthOptions {
    /// A subscription whose oldest due delivery waits longer than this is a problem
    /// (default 5 minutes). Paused subscriptions are not judged.
    pub fn max_lag(mut self, lag: Duration) -> Self {
        self.max_lag = lag;
        self
    }
}

/// Something [`Admin::health`] found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Problem {
    /// The database could not be queried.
    DatabaseUnreachable {
        /// What failed.
        error: String,
    },
    /// The schema is older than this pgbus (run `migrate`), or missing (version 0).
    SchemaBehind {
        /// The version applied.
        found: i64,
        /// The version this pgbus migrates to.
        known: i64,
    },
    /// The schema was migrated by a newer pgbus.
    SchemaAhead {
        /// The version applied.
        found: i64,
        /// The version this pgbus knows.
        known: i64,
    },
    /// A registered dispatcher whose presence lock was free twice, half a second apart:
    /// its process or connection is gone (its leases are not taken back until it is reaped).
    StaleDispatcher {
        /// Its id.
        id: i32,
        /// Its host.
        host: String,
        /// Its process id.
        pid: i32,
    },
    /// An active subscription's oldest due delivery has waited longer than the threshold.
    Lagging {
        /// The subscription.
        subscription: String,
        /// How long, in whole seconds.
        lag_seconds: u64,
    },
    /// An active subscription has due deliveries and no live dispatcher serves it.
    Unserved {
        /// The subscription.
        subscription: String,
        /// Its due deliveries.
        due: i64,
    },
}

/// What [`Admin::health`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// No problem found.
    pub healthy: bool,
    /// The schema version applied (0: none, or the database was not reached).
    pub schema_version: i64,
    /// The schema version this pgbus migrates to.
    pub known_schema_version: i64,
    /// The registered dispatchers.
    pub dispatchers: Vec<DispatcherInfo>,
    /// Everything found wrong.
    pub problems: Vec<Problem>,
}

/// A dispatcher [`Admin::reap_gone_dispatchers`] removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReapedDispatcher {
    /// Its id.
    pub id: i32,
    /// Its host.
    pub host: String,
    /// Its process id.
    pub pid: i32,
    /// The leases it held, expired so that the next claim takes them back.
    pub leases_expired: i64,
}

impl Admin {
    /// The registered dispatchers, each with whether it is alive (one look at its presence
    /// lock, which writes nothing) and the subscriptions it serves.
    ///
    /// # Errors
    ///
    /// [`Error::Database`](crate::Error::Database).
    pub async fn dispatchers(&self) -> Result<Vec<DispatcherInfo>> {
        Ok(sqlx::query_as(sql::ADMIN_DISPATCHERS)
            .bind(PRESENCE_NAMESPACE)
            .fetch_all(&self.pool)
            .await?)
    }

    /// The registered dispatchers, and those of them that are gone: not alive at two looks
    /// half a second apart (the second look only when the first found one).
    async fn gone_dispatchers(&self) -> Result<(Vec<DispatcherInfo>, Vec<DispatcherInfo>)> {
        let first = self.dispatchers().await?;
        if first.iter().all(|d| d.alive) {
            return Ok((first, Vec::new()));
        }
        tokio::time::sleep(GRACE).await;
        let second = self.dispatchers().await?;
        let gone = second
            .iter()
            .filter(|d| !d.alive && first.iter().any(|f| f.id == d.id && !f.alive))
            .cloned()
            .collect();
        Ok((second, gone))
    }

    /// Checks the database, the schema version, the dispatchers and every active
    /// subscription's lag. Never fails: a database that cannot be reached is a
    /// [`Problem::DatabaseUnreachable`]. Takes half a second more when a dispatcher looks
    /// gone (it is looked at again).
    pub async fn health(&self, options: &HealthOptions) -> Health {
        let known = crate::migrate::known_version();
        let mut health = Health {
            healthy: false,
            schema_version: 0,
            known_schema_version: known,
            dispatchers: Vec::new(),
            problems: Vec::new(),
        };
        if let Err(e) = self.check(options, &mut health).await {
            health.problems.push(Problem::DatabaseUnreachable {
                error: e.to_string(),
            });
        }
        health.healthy = health.problems.is_empty();
        health
    }

    async fn check(&self, options: &HealthOptions, health: &mut Health) -> Result<()> {
        let known = health.known_schema_version;
        let found: i64 = match sqlx::query_scalar(sql::MIGRATE_APPLIED)
            .fetch_one(&self.pool)
            .await
        {
            Ok(v) => v,
            // No pgbus.schema_migrations (or no pgbus schema): never migrated.
            Err(e) if is_undefined_table(&e) => 0,
            Err(e) => return Err(e.into()),
        };
        health.schema_version = found;
        if found < known {
            health.problems.push(Problem::SchemaBehind { found, known });
            return Ok(());
        }
        if found > known {
            health.problems.push(Problem::SchemaAhead { found, known });
        }
        let (dispatchers, gone) = self.gone_dispatchers().await?;
        health.dispatchers = dispatchers;
        for d in gone {
            health.problems.push(Problem::StaleDispatcher {
                id: d.id,
                host: d.host,
                pid: d.pid,
            });
        }
        for sub in self.subscriptions().await? {
            if sub.is_paused() {
                continue;
            }
            if let Some(lag) = sub.lag.filter(|lag| *lag > options.max_lag) {
                health.problems.push(Problem::Lagging {
                    subscription: sub.name.clone(),
                    lag_seconds: lag.as_secs(),
                });
            }
            if sub.counts.due > 0 && sub.dispatchers.is_empty() {
                health.problems.push(Problem::Unserved {
                    subscription: sub.name,
                    due: sub.counts.due,
                });
            }
        }
        Ok(())
    }

    /// Removes the dispatchers that are gone (not alive at two looks half a second apart)
    /// and expires their leases, so that the next claim takes their deliveries back: what
    /// running dispatchers do by themselves, for when none is running. Uses the dispatchers'
    /// own statement, which reaps only a dispatcher whose presence lock is free.
    ///
    /// # Errors
    ///
    /// [`Error::Database`](crate::Error::Database).
    pub async fn reap_gone_dispatchers(&self) -> Result<Vec<ReapedDispatcher>> {
        let (_, gone) = self.gone_dispatchers().await?;
        let mut reaped = Vec::new();
        for d in gone {
            let leases: i64 = sqlx::query_scalar(sql::REAP_DISPATCHER)
                .bind(PRESENCE_NAMESPACE)
                .bind(d.id)
                .fetch_one(&self.pool)
                .await?;
            reaped.push(ReapedDispatcher {
                id: d.id,
                host: d.host,
                pid: d.pid,
                leases_expired: leases,
            });
        }
        Ok(reaped)
    }
}

fn is_undefined_table(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "42P01" || c == "3F000")
}
