//! Graceful shutdown: stop claiming, let handlers finish within the deadline, write their
//! outcomes, release whatever did not finish, so nothing stays `running`.

use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::shared::{ClaimKey, Shared};
use super::target::{Msg, Target};
use crate::error::Result;
use crate::state::{Cause, DeliveryState};

/// What a shutdown did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Whether every started handler finished before the deadline.
    pub finished_in_time: bool,
    /// Deliveries given back as pending: queued ones that never started (attempt not
    /// counted) and, after the deadline, interrupted ones (attempt counted). An interrupted
    /// last attempt (`max_attempts` reached) makes the delivery dead, as a lost lease does;
    /// it is not counted here.
    pub released: usize,
}

/// Waits for the shutdown token, then runs the shutdown.
pub(crate) async fn supervise(
    shared: Arc<Shared>,
    token: CancellationToken,
    fetcher: JoinHandle<()>,
    completer: JoinHandle<()>,
    background: TaskTracker,
) -> Result<ShutdownReport> {
    token.cancelled().await;
    tracing::info!("pgbus: dispatcher shutting down");
    let signals = &shared.signals;
    signals.stop.cancel();
    let _ = fetcher.await;

    shared.tasks.close();
    let deadline = shared.config.shutdown_timeout;
    let finished_in_time = tokio::time::timeout(deadline, shared.tasks.wait())
        .await
        .is_ok();
    if !finished_in_time {
        tracing::warn!(
            ?deadline,
            "pgbus: shutdown deadline passed; interrupting handlers"
        );
        signals.abandon.cancel();
        shared.tasks.wait().await;
    }

    // What is still held and unreported never started, or was interrupted.
    let unfinished: Vec<(ClaimKey, bool)> = (shared.held().iter())
        .filter(|(_, h)| !h.reported)
        .map(|(key, h)| (*key, h.started))
        .collect();
    let last: Vec<Target> = unfinished
        .into_iter()
        .filter_map(|(key, started)| {
            let cause = if started {
                Cause::Interrupted
            } else {
                Cause::Unstarted
            };
            shared.decide(key, cause)
        })
        .collect();
    let released = (last.iter())
        .filter(|t| t.transition.state == DeliveryState::Pending)
        .count();
    let (reply, written) = oneshot::channel();
    let result = match shared.outcomes.send(Msg::Finish { last, reply }) {
        Ok(()) => written.await.unwrap_or(Ok(())),
        Err(_) => Ok(()),
    };
    let _ = completer.await;
    signals.finished.cancel();
    background.wait().await;
    tracing::info!(released, finished_in_time, "pgbus: dispatcher stopped");
    result.map_err(Into::into).map(|()| ShutdownReport {
        finished_in_time,
        released,
    })
}
