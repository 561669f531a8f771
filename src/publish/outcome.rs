//! What publishing one event did.

use uuid::Uuid;

/// What happened to one published event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublishOutcome {
    /// The event was written with one delivery per matching subscription.
    Published {
        /// The event id.
        id: Uuid,
        /// How many deliveries (matching subscriptions) were created.
        deliveries: u32,
    },
    /// An event with the same dedupe key exists; nothing was written.
    Duplicate {
        /// The id of the event that holds the dedupe key.
        id: Uuid,
    },
}

impl PublishOutcome {
    /// The id of the event (for a duplicate, the original event's id).
    pub fn id(&self) -> Uuid {
        match *self {
            PublishOutcome::Published { id, .. } | PublishOutcome::Duplicate { id } => id,
        }
    }

    /// Whether the event was a duplicate.
    pub fn is_duplicate(&self) -> bool {
        matches!(self, PublishOutcome::Duplicate { .. })
    }
}
