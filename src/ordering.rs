//! Per-key ordering: what an ordered subscription does with a key whose delivery went dead.

/// What an [ordered](crate::Subscription::ordered) subscription does with the later
/// deliveries of a key whose delivery is dead.
///
/// See the README's "Ordering" section. Either way, a dead delivery holds back nothing but
/// its own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DeadKeyPolicy {
    /// The key stays blocked until the dead delivery is retried
    /// ([`Admin::retry_dead`](crate::Admin)) or discarded: its later deliveries wait, so
    /// they never run out of order. The default: order is a promise. Blocked keys are listed
    /// by [`Admin::blocked_keys`](crate::Admin::blocked_keys).
    #[default]
    Block,
    /// The key moves on: the dead delivery stays a dead letter, and the key's next delivery
    /// runs. A dead letter retried later runs after the deliveries that passed it.
    MoveOn,
}

impl DeadKeyPolicy {
    /// Whether a dead delivery blocks its key (`pgbus.subscriptions.dead_blocks_key`).
    pub(crate) fn blocks(self) -> bool {
        self == DeadKeyPolicy::Block
    }
}
