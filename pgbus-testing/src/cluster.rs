//! [`Cluster`]: one throwaway PostgreSQL server in a temporary directory.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use crate::binaries::Binaries;
use crate::free_port::free_port;
use crate::guardian::Guardian;
use crate::postmaster::Postmaster;
use crate::{ClusterOptions, TestingError, cluster_dir};

mod wait;

/// How long starting or stopping a server may take before giving up.
const SERVER_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two checks while waiting for a server.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Attempts at starting a new cluster, each on a fresh port (another process may take the
/// free port found between our probe and the server's bind).
const START_ATTEMPTS: u32 = 3;
/// `initdb` flags besides the data directory: no passwords, superuser `postgres`.
const INITDB_FLAGS: [&str; 5] = [
    "--auth=trust",
    "--username=postgres",
    "--encoding=UTF8",
    "--locale=C",
    "--no-sync",
];
/// Lines of the server log quoted in errors.
const LOG_TAIL_LINES: usize = 30;

/// One local PostgreSQL server in a temporary directory, started from the local binaries
/// (`pg_config --bindir` or the highest `/usr/lib/postgresql/*/bin`). Unix only.
///
/// The server listens on 127.0.0.1 on a free port, trusts every connection and has the
/// superuser `postgres`. As root, the server runs as the `postgres` OS user (`initdb` and
/// `postgres` refuse to run as root).
///
/// Dropping it stops the server (immediate shutdown) and removes the directory; so does the
/// end of the process, even when it is killed or the cluster is never dropped: a guardian
/// process cleans up once this process is gone.
///
/// ```no_run
/// use pgbus_testing::{Cluster, ClusterOptions};
///
/// # async fn demo() -> Result<(), pgbus_testing::TestingError> {
/// let cluster = Cluster::start(ClusterOptions::default()).await?;
/// let pool = sqlx::PgPool::connect(&cluster.url("postgres")).await?;
/// cluster.kill9().await?; // a crash
/// cluster.start_again().await?; // crash recovery; the pool reconnects
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Cluster {
    bin: Binaries,
    /// The temporary directory: data directory, socket and log.
    dir: PathBuf,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    opts: ClusterOptions,
    version: String,
    postmaster: Postmaster,
    /// Stops the server and removes `dir` once released or this process is gone.
    guardian: Option<Guardian>,
}

impl Cluster {
    /// Initialises a new cluster in a temporary directory and starts it on a free port.
    ///
    /// # Errors
    ///
    /// [`TestingError::BinariesNotFound`] and [`TestingError::NoPostgresUser`] when the server
    /// cannot be run here; otherwise what failed while initialising or starting it.
    pub async fn start(opts: ClusterOptions) -> Result<Cluster, TestingError> {
        let bin = Binaries::find().await?;
        let dir = cluster_dir::create(&opts)?;
        // From here on, dropping `cluster` (or, once the guardian runs, the process ending)
        // cleans up.
        let mut cluster = Cluster {
            data: dir.join("data"),
            log: dir.join("postgres.log"),
            port: 0,
            opts,
            version: String::new(),
            postmaster: Postmaster::default(),
            guardian: None,
            bin,
            dir,
        };
        if let Some((uid, gid)) = cluster.bin.run_as {
            std::os::unix::fs::chown(&cluster.dir, Some(uid), Some(gid)).map_err(
                TestingError::io(format!("chown of {}", cluster.dir.display())),
            )?;
        }
        cluster.guardian = Some(
            Guardian::spawn(&cluster.bin, &cluster.dir)
                .map_err(TestingError::io("starting the guardian process"))?,
        );

        let data = format!("--pgdata={}", cluster.data.display());
        let initdb: Vec<&str> = [data.as_str()].into_iter().chain(INITDB_FLAGS).collect();
        cluster.bin.run("initdb", &cluster.dir, &initdb).await?;

        let mut attempt = 1;
        loop {
            cluster.port = free_port()?;
            cluster.spawn_postmaster()?;
            match cluster.wait_ready().await {
                Ok(version) => {
                    cluster.version = version;
                    tracing::debug!(
                        port = cluster.port,
                        dir = %cluster.dir.display(),
                        settings = %cluster.settings_summary(),
                        "test PostgreSQL started"
                    );
                    return Ok(cluster);
                }
                Err(TestingError::ServerExited { log_tail, .. })
                    if attempt < START_ATTEMPTS && log_tail.contains("could not bind") =>
                {
                    tracing::debug!(port = cluster.port, "port taken, retrying on another");
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The path of a PostgreSQL program next to the server's (e.g. `psql`), which may not be
    /// installed.
    pub fn tool_path(&self, tool: &str) -> PathBuf {
        self.bin.path(tool)
    }

    /// The TCP port the server listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for `database` as the superuser `postgres` (no password).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Server version and the main settings, for benchmark reports, e.g.
    /// `PostgreSQL 15.18, fsync=on, synchronous_commit=on, shared_buffers=512MB`.
    pub fn settings_summary(&self) -> String {
        format!("PostgreSQL {}, {}", self.version, self.opts.summary())
    }

    /// The process id of the running postmaster, `None` while the server is down.
    pub fn postmaster_pid(&self) -> Option<u32> {
        self.postmaster.pid()
    }

    /// Stops the server with a fast shutdown (`pg_ctl stop -m fast`) and waits until it is gone.
    ///
    /// # Errors
    ///
    /// [`TestingError::Command`] if `pg_ctl` fails (e.g. the server is not running),
    /// [`TestingError::StopTimeout`] if the server does not go away in time.
    pub async fn stop_fast(&self) -> Result<(), TestingError> {
        let data = self.data.display().to_string();
        let timeout = SERVER_TIMEOUT.as_secs().to_string();
        self.bin
            .run(
                "pg_ctl",
                &self.dir,
                &["stop", "-D", &data, "-m", "fast", "-w", "-t", &timeout],
            )
            .await?;
        self.wait_stopped().await
    }

    /// Kills the postmaster with `SIGKILL`, like a crash, and waits until the server is gone:
    /// the postmaster reaped, its port closed and every server process detached from its
    /// shared memory (the other server processes exit by themselves when the postmaster dies).
    /// [`Cluster::start_again`] then starts it with crash recovery.
    ///
    /// # Errors
    ///
    /// [`TestingError::NotRunning`] if the server is down, [`TestingError::StopTimeout`] if it
    /// does not go away in time.
    pub async fn kill9(&self) -> Result<(), TestingError> {
        let pid = self
            .postmaster
            .kill()
            .map_err(TestingError::io("sending SIGKILL to the postmaster"))?
            .ok_or(TestingError::NotRunning { port: self.port })?;
        tracing::debug!(port = self.port, pid, "postmaster killed");
        self.wait_stopped().await
    }

    /// Starts the server again on the same data directory and port after
    /// [`Cluster::stop_fast`] or [`Cluster::kill9`], and waits until it accepts connections.
    ///
    /// # Errors
    ///
    /// [`TestingError::AlreadyRunning`] if it runs, otherwise what failed while starting it.
    pub async fn start_again(&self) -> Result<(), TestingError> {
        if self.postmaster_pid().is_some() {
            return Err(TestingError::AlreadyRunning { port: self.port });
        }
        self.wait_stopped().await?;
        self.spawn_postmaster()?;
        self.wait_ready().await?;
        tracing::debug!(port = self.port, "test PostgreSQL started again");
        Ok(())
    }

    /// Starts `postgres` as our child, in its own process group (terminal signals meant for
    /// the test process don't reach it), stdin from /dev/null (it must not hold the guardian's
    /// pipe: ours is close-on-exec anyway) and output appended to the log file.
    fn spawn_postmaster(&self) -> Result<(), TestingError> {
        use std::os::unix::process::CommandExt;

        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(TestingError::io(format!("opening {}", self.log.display())))?;
        let log_err = log
            .try_clone()
            .map_err(TestingError::io("duplicating the log file handle"))?;
        let mut cmd = self.bin.command("postgres", &self.dir);
        cmd.arg("-D")
            .arg(&self.data)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&self.dir)
            .stdout(log)
            .stderr(log_err)
            .process_group(0);
        for setting in self.opts.server_settings() {
            cmd.arg("-c").arg(setting);
        }
        let child = cmd.spawn().map_err(TestingError::io("starting postgres"))?;
        self.postmaster.set(child);
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Releasing the guardian makes it stop the server and remove the directory.
        let guardian = self.guardian.take();
        self.postmaster.stop_with(
            || guardian.map_or((), Guardian::release),
            SERVER_TIMEOUT,
            POLL_INTERVAL,
        );
        let _ = fs::remove_dir_all(&self.dir);
        tracing::debug!(port = self.port, "test PostgreSQL removed");
    }
}
