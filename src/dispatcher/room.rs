//! Room: how much each claim may take. A dispatcher holds (queued, running, or finished with
//! the outcome not yet written) plus reserves (for claims in flight) at most `concurrency +
//! 2 × batch_size` deliveries per subscription: room for two claims in flight at once, while
//! a completer that falls behind holds claims back instead of letting `running` rows pile up.

use std::sync::atomic::Ordering::Relaxed;

use super::claim::Want;
use super::shared::Shared;

/// How many deliveries one subscription may claim now: a batch whenever at least a batch of
/// room is free, else nothing.
pub(crate) fn room(
    concurrency: usize,
    batch: usize,
    held: usize,
    reserved: usize,
) -> Option<usize> {
    let cap = concurrency + 2 * batch;
    let free = cap.saturating_sub(held + reserved);
    (free >= batch).then_some(batch)
}

/// Room reserved for one claim: what it asks for counts against each subscription's room
/// until its rows are held, so two claimers never claim past it together.
#[derive(Debug)]
pub(crate) struct Reservation<'a> {
    shared: &'a Shared,
    pub(crate) wants: Vec<Want>,
}

impl<'a> Reservation<'a> {
    /// Reserves room for a claim, or `None` when no subscription has enough room.
    pub(crate) fn take(shared: &'a Shared) -> Option<Self> {
        let _gate = shared.claim_gate.lock().unwrap_or_else(|e| e.into_inner());
        let batch = shared.config.batch_size;
        let wants: Vec<Want> = (shared.subs.iter().enumerate())
            .filter_map(|(i, s)| {
                let held = s.outstanding.load(Relaxed);
                let reserved = s.reserved.load(Relaxed);
                let limit = room(s.sub.concurrency, batch, held, reserved)?;
                Some(Want { sub: i, limit })
            })
            .collect();
        if wants.is_empty() {
            return None;
        }
        for w in &wants {
            shared.subs[w.sub].reserved.fetch_add(w.limit, Relaxed);
        }
        Some(Reservation { shared, wants })
    }

    /// One delivery per subscription, for crash suspects (claimed only when nothing is
    /// held or reserved, so it needs no reservation).
    pub(crate) fn one_each(shared: &Shared) -> Vec<Want> {
        (0..shared.subs.len())
            .map(|sub| Want { sub, limit: 1 })
            .collect()
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        for w in &self.wants {
            self.shared.subs[w.sub].reserved.fetch_sub(w.limit, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::room;

    #[test]
    fn a_batch_whenever_a_batch_fits() {
        // concurrency 32, batch 500: cap 1,032.
        assert_eq!(room(32, 500, 0, 0), Some(500));
        assert_eq!(
            room(32, 500, 0, 500),
            Some(500),
            "a second claim in flight fits"
        );
        assert_eq!(room(32, 500, 32, 500), Some(500));
        assert_eq!(room(32, 500, 33, 500), None, "less than a batch left");
        assert_eq!(room(32, 500, 532, 500), None);
        assert_eq!(
            room(32, 500, 2_000, 0),
            None,
            "over the cap: nothing, no underflow"
        );
        assert_eq!(room(1, 1, 2, 0), Some(1));
        assert_eq!(room(1, 1, 3, 0), None);
    }
}
