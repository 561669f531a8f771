//! [`RabbitMqServer`]: a throwaway RabbitMQ node and its own `epmd`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::process::{BrokerDir, file_len, find_binary, kill_group, spawn_group, wait_ready};
use crate::TestingError;
use crate::free_port::free_port;

const READY: &str = "Server startup complete";
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// A throwaway RabbitMQ node on free loopback ports (AMQP, Erlang distribution, and an
/// `epmd` of its own, so it clashes with no other node on the machine), no plugins, its
/// database and log in a temporary directory. The user `guest` (password `guest`) may
/// connect, from the loopback only.
///
/// [`kill9`](Self::kill9) and [`start_again`](Self::start_again) crash and restart the node
/// on the same ports and database. Dropping it (or the test process ending) kills it and
/// its `epmd` and removes the directory.
///
/// ```no_run
/// # async fn demo() -> Result<(), pgbus_testing::TestingError> {
/// let mut rabbit = pgbus_testing::RabbitMqServer::start().await?;
/// println!("{}", rabbit.url());
/// rabbit.kill9();
/// rabbit.start_again().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct RabbitMqServer {
    server: PathBuf,
    port: u16,
    dist_port: u16,
    epmd_port: u16,
    dir: BrokerDir,
    epmd: Child,
    node: Option<Child>,
}

impl RabbitMqServer {
    /// Whether `rabbitmq-server` and `epmd` are installed.
    pub fn is_installed() -> bool {
        server_binary().is_ok() && epmd_binary().is_ok()
    }

    /// Starts a node and waits until it accepts AMQP connections (several seconds).
    ///
    /// # Errors
    ///
    /// [`TestingError::BrokerNotFound`] without `rabbitmq-server` or `epmd`;
    /// [`TestingError::BrokerNotReady`] when it does not start.
    pub async fn start() -> Result<RabbitMqServer, TestingError> {
        let server = server_binary()?;
        let epmd_binary = epmd_binary()?;
        let (port, dist_port, epmd_port) = (free_port()?, free_port()?, free_port()?);
        let dir = BrokerDir::create("pgbus-rabbitmq")?;
        for sub in ["home", "mnesia", "log"] {
            let p = dir.path.join(sub);
            std::fs::create_dir(&p)
                .map_err(TestingError::io(format!("creating {}", p.display())))?;
        }
        let write = |name: &str, text: String| {
            let p = dir.path.join(name);
            std::fs::write(&p, text).map_err(TestingError::io(format!("writing {}", p.display())))
        };
        write("enabled_plugins", "[].\n".to_owned())?;
        write(
            "rabbitmq.conf",
            format!("listeners.tcp.default = 127.0.0.1:{port}\nlog.console = false\n"),
        )?;
        let mut cmd = Command::new(epmd_binary);
        cmd.args(["-port", &epmd_port.to_string(), "-address", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let epmd = spawn_group(cmd, "epmd")?;
        dir.set_groups(&[epmd.id()])?;
        let mut rabbit = RabbitMqServer {
            server,
            port,
            dist_port,
            epmd_port,
            dir,
            epmd,
            node: None,
        };
        rabbit.start_again().await?;
        Ok(rabbit)
    }

    /// `amqp://guest:guest@127.0.0.1:<port>/%2f` (the default virtual host).
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// The AMQP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the node's processes run.
    pub fn is_running(&mut self) -> bool {
        self.node
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills the node (its whole process group) with `SIGKILL`. Its `epmd` stays. Does
    /// nothing if it is not running.
    pub fn kill9(&mut self) {
        if let Some(mut node) = self.node.take() {
            kill_group(&mut node);
        }
    }

    /// Starts the node again, on the same ports and database, and waits until it is
    /// ready (a no-op if it runs).
    ///
    /// # Errors
    ///
    /// [`TestingError::BrokerNotReady`] when it does not start.
    pub async fn start_again(&mut self) -> Result<(), TestingError> {
        if self.is_running() {
            return Ok(());
        }
        let d = &self.dir.path;
        let log = d.join("log/rabbit.log");
        let from = file_len(&log);
        let mut cmd = Command::new(&self.server);
        cmd.current_dir(d)
            .env("HOME", d.join("home"))
            .env("RABBITMQ_NODENAME", format!("pgbus{}@localhost", self.port))
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_BASE", d)
            .env("RABBITMQ_CONF_ENV_FILE", d.join("rabbitmq-env.conf"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", d.join("advanced.config"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_LOGS", &log)
            .env("RABBITMQ_PID_FILE", d.join("rabbit.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut node = spawn_group(cmd, "rabbitmq-server")?;
        self.dir.set_groups(&[node.id(), self.epmd.id()])?;
        let ready = wait_ready(
            "rabbitmq-server",
            self.port,
            &mut node,
            &log,
            from,
            READY,
            START_TIMEOUT,
        )
        .await;
        self.node = Some(node);
        if ready.is_err() {
            self.kill9();
        }
        ready
    }

    /// Stops the node and its `epmd` and removes the directory.
    pub fn stop(mut self) {
        self.kill9();
        kill_group(&mut self.epmd);
        self.dir.release();
    }
}

impl Drop for RabbitMqServer {
    fn drop(&mut self) {
        self.kill9();
        kill_group(&mut self.epmd);
    }
}

fn server_binary() -> Result<PathBuf, TestingError> {
    // Debian's /usr/sbin/rabbitmq-server switches to the `rabbitmq` user and its own
    // directories; the script it wraps takes our environment as it is.
    find_binary(
        "rabbitmq-server",
        "rabbitmq-server",
        &["/usr/lib/rabbitmq/bin/rabbitmq-server", "rabbitmq-server"],
    )
}

fn epmd_binary() -> Result<PathBuf, TestingError> {
    find_binary(
        "epmd",
        "erlang-base",
        &["epmd", "/usr/bin/epmd", "/usr/lib/erlang/bin/epmd"],
    )
}
