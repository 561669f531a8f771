//! The handle of a running dispatcher: its shutdown token, its in-flight count, and the wait
//! for its end.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::shared::Shared;
use super::shutdown::ShutdownReport;
use crate::error::{Error, Result};

/// A running dispatcher. Stop it with [`shutdown`](Self::shutdown), or by cancelling its
/// [`token`](Self::token) and awaiting [`stopped`](Self::stopped). Dropping the handle
/// does not stop the dispatcher.
#[derive(Debug)]
pub struct DispatcherHandle {
    pub(super) token: CancellationToken,
    pub(super) supervisor: Option<tokio::task::JoinHandle<Result<ShutdownReport>>>,
    pub(super) shared: Arc<Shared>,
}

impl DispatcherHandle {
    /// A token that starts a graceful shutdown when cancelled (e.g. from a signal handler).
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// How many deliveries this dispatcher holds right now (queued locally or running).
    pub fn in_flight(&self) -> usize {
        self.shared.held().len()
    }

    /// Graceful shutdown: stop claiming, let running handlers finish within the
    /// configured shutdown timeout, write their outcomes, release what did not finish.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] if the unfinished deliveries could not be released (their leases
    /// then expire and other dispatchers take them over).
    pub async fn shutdown(mut self) -> Result<ShutdownReport> {
        self.token.cancel();
        self.wait().await
    }

    /// Waits until the dispatcher has stopped (after its token was cancelled).
    ///
    /// # Errors
    ///
    /// As [`shutdown`](Self::shutdown).
    pub async fn stopped(mut self) -> Result<ShutdownReport> {
        self.wait().await
    }

    async fn wait(&mut self) -> Result<ShutdownReport> {
        match self.supervisor.take() {
            Some(join) => join.await.map_err(|e| {
                Error::Internal(format!("the dispatcher's supervisor task failed: {e}"))
            })?,
            None => Ok(ShutdownReport::default()),
        }
    }
}
