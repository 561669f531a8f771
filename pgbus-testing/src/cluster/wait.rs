//! Waiting for a [`Cluster`]'s server to accept connections, or to be gone.

use std::fs;

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tokio::time::Instant;

use super::{Cluster, LOG_TAIL_LINES, POLL_INTERVAL, SERVER_TIMEOUT};
use crate::{TestingError, shared_memory};

impl Cluster {
    /// Polls (bounded) until a real query succeeds; returns the server version.
    pub(super) async fn wait_ready(&self) -> Result<String, TestingError> {
        let started = Instant::now();
        let url = self.url("postgres");
        let mut last_error = String::from("nothing listening yet");
        loop {
            if let Some(status) = self.postmaster.exit_status() {
                return Err(TestingError::ServerExited {
                    port: self.port,
                    status: status.to_string(),
                    log_tail: self.log_tail(),
                });
            }
            if self.port_accepts().await {
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
    pub(super) async fn wait_stopped(&self) -> Result<(), TestingError> {
        let started = Instant::now();
        let shmem = shared_memory::segment_id(&self.data);
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
        if let Err(running) = self.postmaster.reap() {
            return Some(running);
        }
        if self.port_accepts().await {
            return Some(format!("port {} still accepts connections", self.port));
        }
        let attached = shmem.and_then(shared_memory::attached).unwrap_or(0);
        (attached > 0).then(|| format!("{attached} processes still attached to shared memory"))
    }

    async fn port_accepts(&self) -> bool {
        tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_ok()
    }

    fn log_tail(&self) -> String {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }
}

/// The server's version, e.g. `15.18`, from a query over a new connection to `url`.
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
