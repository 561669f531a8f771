//! [`TestingError`]: what can go wrong while providing a test server or database.

use std::io;
use std::time::Duration;

/// What can go wrong while providing a test server or database.
///
/// Every variant exists on every platform; the ones about the throwaway cluster are only
/// returned on Unix, [`TestingError::DatabaseUrlRequired`] only elsewhere.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestingError {
    /// No PostgreSQL server binaries were found.
    #[error(
        "PostgreSQL server binaries (initdb, postgres, pg_ctl) not found; looked in: {searched}. \
         Install the `postgresql` package (e.g. `apt-get install postgresql`) or set \
         DATABASE_URL to a server where tests may create databases"
    )]
    BinariesNotFound {
        /// The directories that were searched.
        searched: String,
    },

    /// Running as root, but there is no `postgres` OS user to run the server as.
    #[error(
        "running as root, but /etc/passwd has no `postgres` user to run the server as \
         (initdb and postgres refuse to run as root); install the `postgresql` package, \
         which creates it, or set DATABASE_URL"
    )]
    NoPostgresUser,

    /// `DATABASE_URL` is not set on a platform without the throwaway cluster (which needs
    /// Unix).
    #[error(
        "DATABASE_URL is not set; the throwaway PostgreSQL cluster is only available on Unix, \
         so on this platform set DATABASE_URL to a server where tests may create databases"
    )]
    DatabaseUrlRequired,

    /// A file system operation or process spawn failed.
    #[error("{action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A PostgreSQL tool (`initdb`, `pg_ctl`, ...) exited unsuccessfully.
    #[error("`{command}` failed ({status}):\n{output}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed.
        output: String,
    },

    /// The server exited while starting.
    #[error("PostgreSQL on port {port} exited while starting ({status}); log tail:\n{log_tail}")]
    ServerExited {
        /// The port it was started on.
        port: u16,
        /// Its exit status.
        status: String,
        /// The end of its log file.
        log_tail: String,
    },

    /// The server did not accept connections in time.
    #[error(
        "PostgreSQL on port {port} did not accept connections within {waited:?} \
         (last error: {last_error}); log tail:\n{log_tail}"
    )]
    NotReady {
        /// The port it was started on.
        port: u16,
        /// How long was waited.
        waited: Duration,
        /// The last connection error seen.
        last_error: String,
        /// The end of its log file.
        log_tail: String,
    },

    /// The server (or one of its processes) did not go away in time.
    #[error("PostgreSQL on port {port} did not stop within {waited:?}: {remaining}")]
    StopTimeout {
        /// The port it was started on.
        port: u16,
        /// How long was waited.
        waited: Duration,
        /// What was still there.
        remaining: String,
    },

    /// [`Cluster::start_again`](crate::Cluster::start_again) was called while the server runs.
    #[error("PostgreSQL on port {port} is already running")]
    AlreadyRunning {
        /// The cluster's port.
        port: u16,
    },

    /// [`Cluster::kill9`](crate::Cluster::kill9) was called while the server is not running.
    #[error("PostgreSQL on port {port} is not running")]
    NotRunning {
        /// The cluster's port.
        port: u16,
    },

    /// No `pgbouncer` binary was found (on the `PATH`, `/usr/sbin`, `/usr/local/sbin`).
    #[error("pgbouncer not found; install it (e.g. `apt-get install pgbouncer`)")]
    PgBouncerNotFound,

    /// PgBouncer exited or did not accept connections in time.
    #[error("PgBouncer on port {port} did not start; log tail:\n{log_tail}")]
    PgBouncerNotReady {
        /// The port it was started on.
        port: u16,
        /// The end of its log file.
        log_tail: String,
    },

    /// A broker's server binary (`nats-server`, `rabbitmq-server`, `epmd`) was not found.
    #[error(
        "{binary} not found; looked in: {searched}. Install the `{package}` package (e.g. `apt-get install {package}`)"
    )]
    BrokerNotFound {
        /// The binary.
        binary: &'static str,
        /// Where it was looked for.
        searched: String,
        /// The Debian package that has it.
        package: &'static str,
    },

    /// A broker did not start: it exited, or did not say it was ready in time.
    #[error("{broker} on port {port} did not start: {reason}; log tail:\n{log_tail}")]
    BrokerNotReady {
        /// `nats-server` or `rabbitmq-server`.
        broker: &'static str,
        /// The port it was started on.
        port: u16,
        /// What happened.
        reason: String,
        /// The end of its log.
        log_tail: String,
    },

    /// A statement or connection to the test server failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),

    /// Migrating a test database failed.
    #[error("migrating the test database failed: {0}")]
    Migrate(#[from] pgbus::Error),
}

impl TestingError {
    /// A `map_err` adapter: an [`io::Error`] while doing `action`.
    #[cfg(unix)]
    pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let action = action.into();
        move |source| TestingError::Io { action, source }
    }
}
