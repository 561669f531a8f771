//! What the completer is sent: targets (a delivery, the lease it is fenced by, the transition
//! decided for it) and the message that ends it.

use std::time::Duration;

use tokio::sync::oneshot;

use super::batch::LogOrigin;
use crate::state::Transition;

/// One outcome to write: a delivery, the lease it is fenced by, and its target.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) id: i64,
    /// The lease id of the claim it came from: written only while that claim holds it.
    pub(crate) lease: i64,
    /// Index of its subscription in `Shared::subs`.
    pub(crate) sub: usize,
    /// Its batch, for a row of the delivery log.
    pub(crate) log: Option<LogOrigin>,
    pub(crate) transition: Transition,
    /// Whether a transactional handler's transaction settled it already.
    pub(crate) settled: Settled,
    /// How long its handler ran, when one did (the failure history's duration).
    pub(crate) duration: Option<Duration>,
}

/// Whether a delivery's outcome was settled by a transactional handler's own transaction
/// (`src/dispatcher/tx.rs`), in which case the completer writes nothing for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Not by a transaction: the completer writes the target.
    No,
    /// Done, committed with the handler's writes. A log row still counts as done for its
    /// batch (whose closing the completer writes as for any done row).
    Committed,
    /// The completion's fence failed (the delivery was taken over) and the handler's writes
    /// were rolled back: nothing to write, reported as lost.
    Lost,
}

impl Target {
    /// Whether the completer has nothing to write for it: settled by a transaction, and not
    /// a done row its open batch still waits for.
    pub(crate) fn needs_no_write(&self, batch_open: bool) -> bool {
        match self.settled {
            Settled::No => false,
            Settled::Committed => !batch_open,
            Settled::Lost => true,
        }
    }

    /// The handler's duration in seconds, as the completer's statements take it.
    pub(crate) fn duration_secs(&self) -> Option<f64> {
        self.duration.map(|d| d.as_secs_f64())
    }
}

/// Messages to the completer task.
#[derive(Debug)]
pub(crate) enum Msg {
    Complete(Target),
    /// Write everything sent before (retrying while the database is unreachable), then
    /// `last` in one attempt, reply with that attempt's result, and stop.
    Finish {
        last: Vec<Target>,
        reply: oneshot::Sender<sqlx::Result<()>>,
    },
    /// Detach the batches open for longer than a third of their lease (sent by the lease
    /// task): their rows without an outcome get leases of their own.
    Detach,
}

/// The distinct lease ids of a set of targets (a handful: one per claim they came from).
pub(crate) fn lease_ids(leases: impl Iterator<Item = i64>) -> Vec<i64> {
    let mut ids: Vec<i64> = leases.collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}
