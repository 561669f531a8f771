//! The migrated template database that test databases on the shared cluster copy.

use sqlx::postgres::PgPoolOptions;

use crate::TestingError;
use crate::admin::{create_database, execute};
use crate::server::Server;
use crate::unique_name::unique_name;

/// The migrated template database on the shared cluster, created once per process.
static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();

/// The name of the template database on `server`, created and migrated on first use. A
/// failure is retried by the next call.
pub(crate) async fn template(server: Server) -> Result<&'static str, TestingError> {
    let name = TEMPLATE
        .get_or_try_init(|| async move {
            let name = unique_name("pgbus_tpl");
            create_database(server, &name, None).await?;
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect(&server.database_url(&name))
                .await?;
            let migrated = pgbus::migrate(&pool).await;
            pool.close().await;
            migrated?;
            // No session may be connected to a template while it is copied.
            let sql = format!(r#"ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false"#);
            execute(&server.admin_url(), sql).await?;
            tracing::debug!(template = %name, "pgbus test template database migrated");
            Ok::<_, TestingError>(name)
        })
        .await?;
    Ok(name)
}
