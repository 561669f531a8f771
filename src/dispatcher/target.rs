//! What the completer is sent: targets (a delivery, the lease it is fenced by, the transition
//! decided for it) and the message that ends it.

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
