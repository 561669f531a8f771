//! [`PgBouncer`]: a throwaway PgBouncer in transaction mode in front of a [`Cluster`], to
//! test what runs behind a transaction-mode connection pooler.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port::free_port;
use crate::unique_name::unique_name;
use crate::{Cluster, TestingError, os_user};

/// How long PgBouncer may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Keeps PgBouncer (`$1`, config `$2`) running until our end of the pipe on its standard
/// input closes — when the [`PgBouncer`] is dropped or this process ends, however it ends.
const SCRIPT: &str = r#"trap '' INT TERM HUP
"$1" "$2" </dev/null &
pid=$!
cat >/dev/null
kill "$pid" 2>/dev/null
wait "$pid""#;

/// A PgBouncer with `pool_mode = transaction` in front of a [`Cluster`], on a free port of
/// 127.0.0.1, in a temporary directory; trusts every connection, forwards every database.
/// Unix only. As root it runs as the `postgres` OS user (PgBouncer refuses to run as root).
///
/// It sets `ignore_startup_parameters = extra_float_digits`, which sqlx sends and PgBouncer
/// 1.18 refuses otherwise. Dropping it stops PgBouncer and removes the directory; so does the
/// end of the test process.
///
/// ```no_run
/// use pgbus_testing::{ClusterOptions, Cluster, PgBouncer};
///
/// # async fn demo() -> Result<(), pgbus_testing::TestingError> {
/// let cluster = Cluster::start(ClusterOptions::default()).await?;
/// let bouncer = PgBouncer::start(&cluster).await?;
/// let pool = sqlx::PgPool::connect(&bouncer.url("postgres")).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct PgBouncer {
    dir: PathBuf,
    port: u16,
    child: Child,
}

impl PgBouncer {
    /// Starts PgBouncer in front of `cluster`.
    ///
    /// # Errors
    ///
    /// [`TestingError::PgBouncerNotFound`] when there is no `pgbouncer` binary (on Debian:
    /// `apt-get install pgbouncer`), [`TestingError::NoPostgresUser`] as root without a
    /// `postgres` user, otherwise what failed while starting it.
    pub async fn start(cluster: &Cluster) -> Result<PgBouncer, TestingError> {
        let binary = find_binary().ok_or(TestingError::PgBouncerNotFound)?;
        let run_as = os_user::server_user()?;
        let dir = std::env::temp_dir().join(unique_name("pgbus-pgbouncer"));
        fs::create_dir(&dir).map_err(TestingError::io(format!("creating {}", dir.display())))?;
        let port = free_port()?;
        let config = dir.join("pgbouncer.ini");
        let write = |path: &Path, text: String| {
            fs::write(path, text).map_err(TestingError::io(format!("writing {}", path.display())))
        };
        write(&dir.join("users.txt"), "\"postgres\" \"\"\n".to_owned())?;
        write(&config, ini(&dir, port, cluster.port()))?;
        if let Some((uid, gid)) = run_as {
            for path in [dir.clone(), config.clone(), dir.join("users.txt")] {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                    .map_err(TestingError::io(format!("chown of {}", path.display())))?;
            }
        }
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(SCRIPT)
            .arg("pgbus-pgbouncer")
            .arg(&binary)
            .arg(&config)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        if let Some((uid, gid)) = run_as {
            cmd.uid(uid).gid(gid);
        }
        let child = cmd
            .spawn()
            .map_err(TestingError::io("starting pgbouncer"))?;
        let mut bouncer = PgBouncer { dir, port, child };
        bouncer.wait_ready().await?;
        tracing::debug!(port, "test PgBouncer started");
        Ok(bouncer)
    }

    /// The TCP port PgBouncer listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for `database` through PgBouncer, as the superuser `postgres`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    async fn wait_ready(&mut self) -> Result<(), TestingError> {
        let started = Instant::now();
        loop {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return Ok(());
            }
            let exited = self.child.try_wait().ok().flatten();
            if exited.is_some() || started.elapsed() > START_TIMEOUT {
                let log = fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default();
                return Err(TestingError::PgBouncerNotReady {
                    port: self.port,
                    log_tail: log.lines().rev().take(20).collect::<Vec<_>>().join("\n"),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The configuration: transaction pooling, every database of the cluster, trust.
fn ini(dir: &Path, port: u16, server_port: u16) -> String {
    format!(
        "[databases]\n\
         * = host=127.0.0.1 port={server_port}\n\
         [pgbouncer]\n\
         listen_addr = 127.0.0.1\n\
         listen_port = {port}\n\
         unix_socket_dir =\n\
         auth_type = trust\n\
         auth_file = {dir}/users.txt\n\
         pool_mode = transaction\n\
         default_pool_size = 20\n\
         max_client_conn = 500\n\
         ignore_startup_parameters = extra_float_digits\n\
         logfile = {dir}/pgbouncer.log\n",
        dir = dir.display()
    )
}

/// `pgbouncer` on the `PATH`, else where Debian installs it.
fn find_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir| dir.join("pgbouncer"))
        .find(|p| p.is_file())
}
