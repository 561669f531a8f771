//! Throwaway PostgreSQL for tests, examples and benchmarks.
//!
//! [`TestDatabase::create`] gives each test its own freshly migrated database. Without
//! `DATABASE_URL` it lives on a [`Cluster`] started once per process from the local PostgreSQL
//! server binaries (`pg_config --bindir` or `/usr/lib/postgresql/*/bin`); with `DATABASE_URL`
//! set, databases are created on that server instead.
//!
//! Nothing is left behind when the process ends, however it ends: every cluster has a small
//! guardian process (`sh`) blocked reading a pipe whose write end only this process holds. When
//! the process exits — normally, by panic or by `SIGKILL` — the pipe closes and the guardian
//! stops the server (`pg_ctl stop -m immediate`) and deletes its temporary directory. This also
//! covers the shared cluster, which lives in a static and is therefore never dropped.
//!
//! As root, `initdb` and `postgres` refuse to run, so they (and the guardian) run as the
//! `postgres` OS user.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pgbus_testing::TestingError> {
//! let db = pgbus_testing::TestDatabase::create().await?;
//! sqlx::query("SELECT count(*) FROM pgbus.events").execute(db.pool()).await?;
//! # Ok(())
//! # }
//! ```

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, Executor};
use tokio::time::Instant;

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

/// What can go wrong while providing a test server or database.
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

    /// [`Cluster::start_again`] was called while the server runs.
    #[error("PostgreSQL on port {port} is already running")]
    AlreadyRunning {
        /// The cluster's port.
        port: u16,
    },

    /// [`Cluster::kill9`] was called while the server is not running.
    #[error("PostgreSQL on port {port} is not running")]
    NotRunning {
        /// The cluster's port.
        port: u16,
    },

    /// A statement or connection to the test server failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),

    /// Migrating a test database failed.
    #[error("migrating the test database failed: {0}")]
    Migrate(#[from] pgbus::Error),
}

impl TestingError {
    fn io(action: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let action = action.into();
        move |source| TestingError::Io { action, source }
    }
}

/// Server settings for a [`Cluster`].
///
/// The default favours speed (no fsync, asynchronous commit): right for tests, whose data
/// need not survive an OS crash. [`ClusterOptions::durable`] is for benchmarks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOptions {
    /// `fsync` (and `full_page_writes`, which is set to the same value).
    pub fsync: bool,
    /// `synchronous_commit`.
    pub synchronous_commit: bool,
    /// `shared_buffers`, e.g. `"128MB"`.
    pub shared_buffers: String,
    /// `max_connections`.
    pub max_connections: u32,
    /// Further `-c name=value` server settings.
    pub extra_settings: Vec<(String, String)>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            fsync: false,
            synchronous_commit: false,
            shared_buffers: "128MB".to_owned(),
            max_connections: 200,
            extra_settings: Vec::new(),
        }
    }
}

impl ClusterOptions {
    /// Settings for benchmarks: `fsync` and `synchronous_commit` on, 512MB shared buffers.
    pub fn durable() -> Self {
        ClusterOptions {
            fsync: true,
            synchronous_commit: true,
            shared_buffers: "512MB".to_owned(),
            ..ClusterOptions::default()
        }
    }
}

/// Where the PostgreSQL binaries are and whom to run them as.
#[derive(Debug, Clone)]
struct Binaries {
    dir: PathBuf,
    /// `(uid, gid)` of the `postgres` user when we are root.
    run_as: Option<(u32, u32)>,
}

impl Binaries {
    async fn find() -> Result<Self, TestingError> {
        let mut searched = Vec::new();
        let mut dir = None;
        if let Ok(out) = tokio::process::Command::new("pg_config")
            .arg("--bindir")
            .output()
            .await
        {
            let candidate = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if out.status.success() && candidate.join("initdb").is_file() {
                dir = Some(candidate);
            } else {
                searched.push(candidate.display().to_string());
            }
        }
        if dir.is_none() {
            dir = highest_debian_bindir();
            searched.push("/usr/lib/postgresql/*/bin".to_owned());
        }
        let dir = dir.ok_or_else(|| TestingError::BinariesNotFound {
            searched: searched.join(", "),
        })?;
        let run_as = if running_as_root() {
            Some(postgres_user().ok_or(TestingError::NoPostgresUser)?)
        } else {
            None
        };
        Ok(Binaries { dir, run_as })
    }

    fn path(&self, tool: &str) -> PathBuf {
        self.dir.join(tool)
    }

    /// A command for `tool` that runs as the right user in `cwd`.
    fn command(&self, tool: &str, cwd: &Path) -> std::process::Command {
        let mut cmd = std::process::Command::new(self.path(tool));
        cmd.current_dir(cwd).stdin(Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    /// Runs `tool` to completion, failing with its output if it fails.
    async fn run(&self, tool: &str, cwd: &Path, args: &[&str]) -> Result<(), TestingError> {
        let mut cmd = self.command(tool, cwd);
        cmd.args(args);
        let line = format!("{} {}", self.path(tool).display(), args.join(" "));
        let out = tokio::process::Command::from(cmd)
            .output()
            .await
            .map_err(TestingError::io(format!("running {line}")))?;
        if out.status.success() {
            return Ok(());
        }
        Err(TestingError::Command {
            command: line,
            status: out.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }
}

/// The highest-versioned `/usr/lib/postgresql/<version>/bin` that has `initdb`.
fn highest_debian_bindir() -> Option<PathBuf> {
    fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: Vec<u32> = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<_>>()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max()
        .map(|(_, bin)| bin)
}

fn running_as_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `(uid, gid)` of the `postgres` user from `/etc/passwd`.
fn postgres_user() -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != "postgres" {
            return None;
        }
        let _password = fields.next()?;
        Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
    })
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// A name no other process or earlier call used: prefix, pid, counter and random bits.
fn unique_name(prefix: &str) -> String {
    let random = uuid::Uuid::now_v7().simple().to_string();
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::Relaxed),
        &random[24..]
    )
}

/// Creates the cluster's temporary directory. A non-durable cluster goes to `/dev/shm` when
/// that is a tmpfs of at least 1 GiB: `initdb` and `CREATE DATABASE` run several times
/// faster there, and with `fsync` off the data would not survive an OS crash anyway. Otherwise,
/// and for durable (benchmark) clusters, it goes under [`std::env::temp_dir`].
fn create_cluster_dir(opts: &ClusterOptions) -> Result<PathBuf, TestingError> {
    let name = unique_name("pgbus-pg");
    if !opts.fsync && shm_is_roomy() {
        let dir = Path::new("/dev/shm").join(&name);
        if fs::create_dir(&dir).is_ok() {
            return Ok(dir);
        }
    }
    let dir = std::env::temp_dir().join(name);
    fs::create_dir(&dir).map_err(TestingError::io(format!("creating {}", dir.display())))?;
    Ok(dir)
}

/// Whether `/dev/shm` is a tmpfs of at least 1 GiB (containers often give it only 64 MiB).
fn shm_is_roomy() -> bool {
    let Ok(mounts) = fs::read_to_string("/proc/mounts") else {
        return false;
    };
    mounts.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, "/dev/shm", "tmpfs", options, ..] = fields[..] else {
            return false;
        };
        // The kernel shows `size=<N>k` unless it is the default, half the RAM.
        let size = options.split(',').find_map(|o| o.strip_prefix("size="));
        size.is_none_or(|size| {
            let kib = size.strip_suffix('k').and_then(|n| n.parse::<u64>().ok());
            kib.is_some_and(|kib| kib >= 1 << 20)
        })
    })
}

fn free_port() -> Result<u16, TestingError> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(TestingError::io("finding a free port"))?;
    let port = listener
        .local_addr()
        .map_err(TestingError::io("finding a free port"))?
        .port();
    Ok(port)
}

fn on_off(setting: bool) -> &'static str {
    if setting { "on" } else { "off" }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One local PostgreSQL server in a temporary directory, started from the local binaries.
///
/// Dropping it stops the server (immediate shutdown) and removes the directory; so does the
/// end of the process, even when it is killed or the cluster is never dropped (see the
/// [module documentation](self)).
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
    /// The running postmaster, our child process (so it can be killed and reaped).
    postmaster: Mutex<Option<Child>>,
    /// `sh` blocked on a pipe from us; cleans up once the pipe closes.
    guardian: Mutex<Option<Child>>,
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
        let dir = create_cluster_dir(&opts)?;
        // From here on, dropping `cluster` (or, once the guardian runs, the process ending)
        // cleans up.
        let mut cluster = Cluster {
            data: dir.join("data"),
            log: dir.join("postgres.log"),
            port: 0,
            opts,
            version: String::new(),
            postmaster: Mutex::new(None),
            guardian: Mutex::new(None),
            bin,
            dir,
        };
        if let Some((uid, gid)) = cluster.bin.run_as {
            std::os::unix::fs::chown(&cluster.dir, Some(uid), Some(gid)).map_err(
                TestingError::io(format!("chown of {}", cluster.dir.display())),
            )?;
        }
        let guardian = spawn_guardian(&cluster.bin, &cluster.dir)
            .map_err(TestingError::io("starting the guardian process"))?;
        *lock(&cluster.guardian) = Some(guardian);

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
        format!(
            "PostgreSQL {}, fsync={}, synchronous_commit={}, shared_buffers={}",
            self.version,
            on_off(self.opts.fsync),
            on_off(self.opts.synchronous_commit),
            self.opts.shared_buffers
        )
    }

    /// The process id of the running postmaster, `None` while the server is down.
    pub fn postmaster_pid(&self) -> Option<u32> {
        let mut postmaster = lock(&self.postmaster);
        let child = postmaster.as_mut()?;
        match child.try_wait() {
            Ok(None) => Some(child.id()),
            _ => None,
        }
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
        {
            let mut postmaster = lock(&self.postmaster);
            let child = postmaster
                .as_mut()
                .ok_or(TestingError::NotRunning { port: self.port })?;
            if child.try_wait().ok().flatten().is_some() {
                return Err(TestingError::NotRunning { port: self.port });
            }
            child
                .kill()
                .map_err(TestingError::io("sending SIGKILL to the postmaster"))?;
            tracing::debug!(port = self.port, pid = child.id(), "postmaster killed");
        }
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
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(TestingError::io(format!("opening {}", self.log.display())))?;
        let log_err = log
            .try_clone()
            .map_err(TestingError::io("duplicating the log file handle"))?;
        let o = &self.opts;
        let mut settings = vec![
            "listen_addresses=127.0.0.1".to_owned(),
            format!("fsync={}", on_off(o.fsync)),
            format!("full_page_writes={}", on_off(o.fsync)),
            format!("synchronous_commit={}", on_off(o.synchronous_commit)),
            format!("shared_buffers={}", o.shared_buffers),
            format!("max_connections={}", o.max_connections),
        ];
        settings.extend(o.extra_settings.iter().map(|(k, v)| format!("{k}={v}")));

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
        for setting in &settings {
            cmd.arg("-c").arg(setting);
        }
        let child = cmd.spawn().map_err(TestingError::io("starting postgres"))?;
        *lock(&self.postmaster) = Some(child);
        Ok(())
    }

    /// Polls (bounded) until a real query succeeds; returns the server version.
    async fn wait_ready(&self) -> Result<String, TestingError> {
        let started = Instant::now();
        let url = self.url("postgres");
        let mut last_error = String::from("nothing listening yet");
        loop {
            let exited = lock(&self.postmaster)
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            if let Some(status) = exited {
                return Err(TestingError::ServerExited {
                    port: self.port,
                    status: status.to_string(),
                    log_tail: self.log_tail(),
                });
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                match tokio::time::timeout(SERVER_TIMEOUT, server_version(&url)).await {
                    Ok(Ok(version)) => return Ok(version),
                    Ok(Err(e)) => last_error = e.to_string(),
                    Err(_) => last_error = "connecting timed out".to_owned(),
                }
            }
            if started.elapsed() >= SERVER_TIMEOUT {
                return Err(TestingError::NotReady {
                    port: self.port,
                    waited: started.elapsed(),
                    last_error,
                    log_tail: self.log_tail(),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Polls (bounded) until nothing is left of the server that would keep it from starting
    /// again.
    async fn wait_stopped(&self) -> Result<(), TestingError> {
        let started = Instant::now();
        let shmem = shmem_id(&self.data);
        loop {
            let Some(remaining) = self.leftover(shmem).await else {
                return Ok(());
            };
            if started.elapsed() >= SERVER_TIMEOUT {
                return Err(TestingError::StopTimeout {
                    port: self.port,
                    waited: started.elapsed(),
                    remaining,
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// What is left of the server, if anything: the postmaster not yet exited (it is reaped
    /// once it has), its port still accepting, or processes still attached to its shared
    /// memory segment `shmem`.
    async fn leftover(&self, shmem: Option<u64>) -> Option<String> {
        {
            let mut postmaster = lock(&self.postmaster);
            match postmaster.as_mut().map(Child::try_wait) {
                Some(Ok(None)) => return Some("the postmaster is running".to_owned()),
                Some(Err(e)) => return Some(format!("the postmaster cannot be waited for: {e}")),
                Some(Ok(Some(_))) | None => *postmaster = None,
            }
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_ok()
        {
            return Some(format!("port {} still accepts connections", self.port));
        }
        let attached = shmem.and_then(shmem_attached).unwrap_or(0);
        (attached > 0).then(|| format!("{attached} processes still attached to shared memory"))
    }

    fn log_tail(&self) -> String {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut postmaster = lock(&self.postmaster);
        // Reap an exited postmaster first, so `pg_ctl stop` does not signal a zombie and
        // wait for it.
        if let Some(Ok(Some(_))) = postmaster.as_mut().map(Child::try_wait) {
            *postmaster = None;
        }
        // Closing the pipe lets the guardian stop the server and remove the directory.
        if let Some(mut guardian) = lock(&self.guardian).take() {
            drop(guardian.stdin.take());
            let _ = guardian.wait();
        }
        if let Some(mut child) = postmaster.take() {
            let deadline = std::time::Instant::now() + SERVER_TIMEOUT;
            while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(POLL_INTERVAL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
        tracing::debug!(port = self.port, "test PostgreSQL removed");
    }
}

/// Starts the process that stops the server and removes `dir` once our end of its stdin pipe
/// closes, i.e. when the cluster is dropped or this process exits in any way. It runs in its
/// own process group and ignores INT/TERM/HUP, so a Ctrl-C aimed at the tests does not kill it
/// before it has cleaned up. Removal is retried: an `initdb` still running when the process
/// died keeps writing files until it notices its directory is gone.
fn spawn_guardian(bin: &Binaries, dir: &Path) -> io::Result<Child> {
    const SCRIPT: &str = r#"trap '' INT TERM HUP
cat >/dev/null
"$1" stop -D "$2" -m immediate -w -t 30 >/dev/null 2>&1
for _ in 1 2 3 4 5 6 7 8 9 10; do
    rm -rf "$3" 2>/dev/null
    [ -e "$3" ] || exit 0
    sleep 1
done"#;
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(SCRIPT)
        .arg("pgbus-pg-guardian")
        .arg(bin.path("pg_ctl"))
        .arg(dir.join("data"))
        .arg(dir)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    if let Some((uid, gid)) = bin.run_as {
        cmd.uid(uid).gid(gid);
    }
    cmd.spawn()
}

/// The id of the System V shared memory segment recorded in `postmaster.pid` (line 7:
/// key and id). PostgreSQL refuses to start while processes are attached to it.
fn shmem_id(data: &Path) -> Option<u64> {
    let pid_file = fs::read_to_string(data.join("postmaster.pid")).ok()?;
    pid_file
        .lines()
        .nth(6)?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// How many processes are attached to a shared memory segment (`None` if it is gone or
/// this is not Linux).
fn shmem_attached(id: u64) -> Option<u64> {
    let table = fs::read_to_string("/proc/sysvipc/shm").ok()?;
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.get(1)?.parse::<u64>().ok()? == id).then(|| cols.get(6)?.parse().ok())?
    })
}

async fn server_version(url: &str) -> Result<String, sqlx::Error> {
    let mut conn = PgConnection::connect(url).await?;
    let version: String = sqlx::query_scalar("SELECT current_setting('server_version')")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    // "15.18 (Debian 15.18-0+deb12u1)" -> "15.18"
    Ok(version
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned())
}

static SHARED_CLUSTER: tokio::sync::OnceCell<Cluster> = tokio::sync::OnceCell::const_new();

/// The process's shared cluster with default options, started on first use.
///
/// It is never dropped; its guardian stops it and removes its directory when the process
/// exits. Don't stop or kill it: other tests use it. Fault tests start their own
/// [`Cluster`].
///
/// # Errors
///
/// As [`Cluster::start`]. A failed start is retried by the next call.
pub async fn shared_cluster() -> Result<&'static Cluster, TestingError> {
    SHARED_CLUSTER
        .get_or_try_init(|| Cluster::start(ClusterOptions::default()))
        .await
}

/// `DATABASE_URL` if it is set and not empty.
pub fn database_url_from_env() -> Option<String> {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// The server test databases are created on.
#[derive(Debug, Clone, Copy)]
enum Server {
    Local(&'static Cluster),
    External(&'static str),
}

static EXTERNAL_URL: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

impl Server {
    async fn get() -> Result<Server, TestingError> {
        match EXTERNAL_URL.get_or_init(database_url_from_env) {
            Some(url) => Ok(Server::External(url)),
            None => Ok(Server::Local(shared_cluster().await?)),
        }
    }

    /// A URL to run `CREATE DATABASE` and `DROP DATABASE` from.
    fn admin_url(self) -> String {
        match self {
            Server::Local(cluster) => cluster.url("postgres"),
            Server::External(url) => url.to_owned(),
        }
    }

    fn database_url(self, database: &str) -> String {
        match self {
            Server::Local(cluster) => cluster.url(database),
            Server::External(url) => with_database(url, database),
        }
    }
}

/// `url` with its database (the path) replaced, the query string kept.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    let mut out = format!("{}/{database}", &base[..path]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// Serialises `CREATE DATABASE` in this process: two concurrent copies of one template fail
/// with "source database is being accessed by other users".
static CREATE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The migrated template database on the shared cluster, created once per process.
static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();

async fn template(server: Server) -> Result<&'static str, TestingError> {
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
            let mut admin = PgConnection::connect(&server.admin_url()).await?;
            admin
                .execute(AssertSqlSafe(format!(
                    r#"ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false"#
                )))
                .await?;
            admin.close().await?;
            tracing::debug!(template = %name, "pgbus test template database migrated");
            Ok::<_, TestingError>(name)
        })
        .await?;
    Ok(name)
}

/// A fresh database of its own for one test, with a connection pool to it.
///
/// Without `DATABASE_URL` it is a copy of a migrated template database on the
/// [shared cluster](shared_cluster); dropping it drops the database in the background (the
/// whole cluster goes away with the process anyway). With `DATABASE_URL`, it is created and
/// migrated on that server and dropped (`WITH (FORCE)`) when the `TestDatabase` is dropped.
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
            Server::Local(_) => {
                let template = template(server).await?;
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

    /// The cluster the database lives on; `None` when `DATABASE_URL` is used.
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
                        tokio::time::timeout(SERVER_TIMEOUT, drop_database(&admin_url, &name))
                            .await;
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

/// `CREATE DATABASE`, one at a time in this process.
async fn create_database(
    server: Server,
    name: &str,
    template: Option<&str>,
) -> Result<(), TestingError> {
    let sql = match template {
        Some(template) => format!(r#"CREATE DATABASE "{name}" TEMPLATE "{template}""#),
        None => format!(r#"CREATE DATABASE "{name}""#),
    };
    let _serialised = CREATE_LOCK.lock().await;
    let mut admin = PgConnection::connect(&server.admin_url()).await?;
    admin.execute(AssertSqlSafe(sql)).await?;
    admin.close().await?;
    Ok(())
}

async fn drop_database(admin_url: &str, name: &str) -> Result<(), TestingError> {
    let mut admin = PgConnection::connect(admin_url).await?;
    admin
        .execute(AssertSqlSafe(format!(
            r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
        )))
        .await?;
    admin.close().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_database_replaces_only_the_path() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/app?sslmode=disable", "t1"),
            "postgres://u:p@h:5432/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "t1"), "postgres://h/t1");
        assert_eq!(
            with_database("postgresql://h:1/", "t1"),
            "postgresql://h:1/t1"
        );
    }

    #[test]
    fn futures_are_send() {
        fn send<T: Send>(_: T) {}
        fn cluster_futures(cluster: &Cluster) {
            send(cluster.stop_fast());
            send(cluster.kill9());
            send(cluster.start_again());
        }
        let _ = cluster_futures as fn(&Cluster);
        send(Cluster::start(ClusterOptions::default()));
        send(shared_cluster());
        send(TestDatabase::create_empty());
        send(TestDatabase::create());
        fn migrate_future(pool: &sqlx::PgPool) {
            send(pgbus::migrate(pool));
        }
        let _ = migrate_future as fn(&sqlx::PgPool);
    }

    #[test]
    fn unique_names_differ_and_fit_an_identifier() {
        let (a, b) = (unique_name("pgbus_test"), unique_name("pgbus_test"));
        assert_ne!(a, b);
        assert!(a.len() < 63, "{a}");
    }
}
