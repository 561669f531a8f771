//! Graceful shutdown: stop claiming, let handlers finish within the deadline, write their
//! outcomes, release whatever did not finish, so nothing stays `running`.

use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Shared;
use super::complete::{self, Completion, Kind, Msg};
use crate::error::Result;

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
    shared.stop.cancel();
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
        shared.abandon.cancel();
        shared.tasks.wait().await;
    }

    let (done_tx, done_rx) = oneshot::channel();
    if shared.outcomes.send(Msg::Finish(done_tx)).is_ok() {
        let _ = done_rx.await;
    }
    let _ = completer.await;

    let release: Vec<Completion> = shared
        .held()
        .iter()
        .map(|(id, h)| {
            // An interrupted attempt counts like any other: the last one ends the delivery
            // (else it would run more than max_attempts times).
            let (kind, error) = if !h.started {
                (Kind::ReleaseUnstarted, None)
            } else if h.attempt >= h.max_attempts {
                (
                    Kind::Dead,
                    Some(format!(
                        "gave up after {} attempts: interrupted by dispatcher shutdown",
                        h.attempt
                    )),
                )
            } else {
                (
                    Kind::ReleaseStarted,
                    Some("interrupted by dispatcher shutdown".to_owned()),
                )
            };
            Completion {
                id: *id,
                lease: h.lease,
                kind,
                delay_secs: 0.0,
                error,
            }
        })
        .collect();
    let released = release.iter().filter(|c| c.kind != Kind::Dead).count();
    let result = if release.is_empty() {
        Ok(())
    } else {
        match shared.pool.acquire().await {
            Ok(mut conn) => complete::write(&mut conn, &release).await.map(|_| ()),
            Err(e) => Err(e),
        }
        .map_err(Into::into)
    };
    shared.forget(release.iter().map(|c| c.id));
    shared.finished.cancel();
    background.wait().await;
    tracing::info!(released, finished_in_time, "pgbus: dispatcher stopped");
    result.map(|()| ShutdownReport {
        finished_in_time,
        released,
    })
}
