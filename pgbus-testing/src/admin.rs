//! `CREATE DATABASE` and `DROP DATABASE` over a connection of their own.

use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection, Executor};

use crate::TestingError;
use crate::server::Server;

/// Serialises `CREATE DATABASE` in this process: two concurrent copies of one template fail
/// with "source database is being accessed by other users".
static CREATE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `CREATE DATABASE`, a copy of `template` if given, one at a time in this process.
pub(crate) async fn create_database(
    server: Server,
    name: &str,
    template: Option<&str>,
) -> Result<(), TestingError> {
    let sql = match template {
        Some(template) => format!(r#"CREATE DATABASE "{name}" TEMPLATE "{template}""#),
        None => format!(r#"CREATE DATABASE "{name}""#),
    };
    let _serialised = CREATE_LOCK.lock().await;
    execute(&server.admin_url(), sql).await
}

/// `DROP DATABASE ... WITH (FORCE)`, disconnecting whoever is still connected.
pub(crate) async fn drop_database(admin_url: &str, name: &str) -> Result<(), TestingError> {
    let sql = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
    execute(admin_url, sql).await
}

/// Runs one statement over a new connection to `url`. The names in `sql` are ours
/// ([`unique_name`](crate::unique_name::unique_name)), quoted.
pub(crate) async fn execute(url: &str, sql: String) -> Result<(), TestingError> {
    let mut admin = PgConnection::connect(url).await?;
    admin.execute(AssertSqlSafe(sql)).await?;
    admin.close().await?;
    Ok(())
}
