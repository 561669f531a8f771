//! [`Server`]: where test databases are created, `DATABASE_URL` or the shared cluster.

use std::sync::OnceLock;

#[cfg(unix)]
use crate::Cluster;
use crate::TestingError;
use crate::database_url::{database_url_from_env, with_database};

/// The server test databases are created on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Server {
    /// The [shared cluster](crate::shared_cluster).
    #[cfg(unix)]
    Local(&'static Cluster),
    /// The server of `DATABASE_URL`.
    External(&'static str),
}

/// `DATABASE_URL` as read once per process.
static EXTERNAL_URL: OnceLock<Option<String>> = OnceLock::new();

impl Server {
    /// The server of `DATABASE_URL` if set, else the shared cluster (started on first use);
    /// without Unix, [`TestingError::DatabaseUrlRequired`].
    pub(crate) async fn get() -> Result<Server, TestingError> {
        match EXTERNAL_URL.get_or_init(database_url_from_env) {
            Some(url) => Ok(Server::External(url)),
            #[cfg(unix)]
            None => Ok(Server::Local(crate::shared_cluster().await?)),
            #[cfg(not(unix))]
            None => Err(TestingError::DatabaseUrlRequired),
        }
    }

    /// A URL to run `CREATE DATABASE` and `DROP DATABASE` from.
    pub(crate) fn admin_url(self) -> String {
        match self {
            #[cfg(unix)]
            Server::Local(cluster) => cluster.url("postgres"),
            Server::External(url) => url.to_owned(),
        }
    }

    /// The URL of `database` on this server.
    pub(crate) fn database_url(self, database: &str) -> String {
        match self {
            #[cfg(unix)]
            Server::Local(cluster) => cluster.url(database),
            Server::External(url) => with_database(url, database),
        }
    }
}
