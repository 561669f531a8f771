//! [`NatsServer`]: a throwaway `nats-server` with JetStream.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::process::{BrokerDir, file_len, find_binary, kill_group, spawn_group, wait_ready};
use crate::TestingError;
use crate::free_port::free_port;

const READY: &str = "Server is ready";
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A throwaway NATS server with JetStream (file storage), on a free loopback port, its
/// store in a temporary directory.
///
/// [`kill9`](Self::kill9) and [`start_again`](Self::start_again) crash and restart it on the
/// same port and store. Dropping it (or the test process ending) kills it and removes the
/// directory.
///
/// ```no_run
/// # async fn demo() -> Result<(), pgbus_testing::TestingError> {
/// let mut nats = pgbus_testing::NatsServer::start().await?;
/// println!("{}", nats.url());
/// nats.kill9();
/// nats.start_again().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    dir: BrokerDir,
    child: Option<Child>,
}

impl NatsServer {
    /// Whether `nats-server` is installed (in `PATH` or `/usr/sbin`).
    pub fn is_installed() -> bool {
        binary().is_ok()
    }

    /// Starts a server and waits until it is ready.
    ///
    /// # Errors
    ///
    /// [`TestingError::BrokerNotFound`] without `nats-server`;
    /// [`TestingError::BrokerNotReady`] when it does not start.
    pub async fn start() -> Result<NatsServer, TestingError> {
        let binary = binary()?;
        let port = free_port()?;
        let dir = BrokerDir::create("pgbus-nats")?;
        let mut server = NatsServer {
            binary,
            port,
            dir,
            child: None,
        };
        server.start_again().await?;
        Ok(server)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server process runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills the server with `SIGKILL` (no clean shutdown: JetStream recovers its store when
    /// started again). Does nothing if it is not running.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
    }

    /// Starts the server again, on the same port and store, and waits until it is ready
    /// (a no-op if it runs).
    ///
    /// # Errors
    ///
    /// [`TestingError::BrokerNotReady`] when it does not start.
    pub async fn start_again(&mut self) -> Result<(), TestingError> {
        if self.is_running() {
            return Ok(());
        }
        let log = self.dir.path.join("nats.log");
        let from = file_len(&log);
        let mut cmd = Command::new(&self.binary);
        cmd.arg("-js")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .arg("-sd")
            .arg(self.dir.path.join("store"))
            .arg("-l")
            .arg(&log)
            .args(["--server_name", "pgbus-test"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = spawn_group(cmd, "nats-server")?;
        self.dir.set_groups(&[child.id()])?;
        let ready = wait_ready(
            "nats-server",
            self.port,
            &mut child,
            &log,
            from,
            READY,
            START_TIMEOUT,
        )
        .await;
        self.child = Some(child);
        if ready.is_err() {
            self.kill9();
        }
        ready
    }

    /// Stops the server and removes its directory.
    pub fn stop(mut self) {
        self.kill9();
        self.dir.release();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn binary() -> Result<PathBuf, TestingError> {
    find_binary(
        "nats-server",
        "nats-server",
        &[
            "nats-server",
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
        ],
    )
}
