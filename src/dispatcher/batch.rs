//! Batches of the delivery log this dispatcher holds: one `pgbus.claims` row each, whose
//! lease covers all its rows. A batch stays open until every row's outcome is written (the
//! write that completes it also closes it), or until it is detached for taking too long.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use uuid::Uuid;

/// Where a held log row came from: its batch, and what a row of `pgbus.deliveries` for it
/// needs should its outcome be anything but done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogOrigin {
    /// The `pgbus.claims` id of its batch.
    pub(crate) batch: i64,
    pub(crate) event_id: Uuid,
    pub(crate) priority: i16,
    pub(crate) key: Option<String>,
    /// Its publishing transaction: with the id, its position in its lane.
    pub(crate) txid: i64,
    /// The events ring slot of its event (migration 0014).
    pub(crate) event_slot: i16,
    /// Its publish order when it is a keyed row of an ordered subscription (migration 0017):
    /// a row of `pgbus.deliveries` for it is ordered, behind its key's older deliveries.
    pub(crate) seq: Option<i64>,
}

/// How many leading rows of a batch must have their outcome before the batch is shrunk to
/// the rest (one more write to its `pgbus.claims` row, so that a takeover runs fewer again).
const SHRINK_STEP: usize = 32;

/// One open batch.
#[derive(Debug)]
struct Batch {
    lease: i64,
    /// Index of the subscription in `Shared::subs`.
    sub: usize,
    /// Its rows whose outcome is not written yet.
    rows: HashSet<i64>,
    /// Its rows in the order of its lane, (id, txid).
    order: Vec<(i64, i64)>,
    /// How many of `order` the batch's row in `pgbus.claims` no longer covers.
    skipped: usize,
    opened: Instant,
}

/// What a write of outcomes does to the batches: see [`Batches::plan`].
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The batches it completes, to close.
    pub(crate) closing: Vec<i64>,
    /// The open batches to shrink.
    pub(crate) shrink: Vec<Shrink>,
}

/// A batch shrunk to the rows after `(txid, id)`: every row up to it has its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shrink {
    pub(crate) batch: i64,
    pub(crate) txid: i64,
    pub(crate) id: i64,
    /// How many leading rows that is.
    skipped: usize,
}

/// A batch to detach: its id, lease, subscription and the rows still without an outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Straggling {
    pub(crate) batch: i64,
    pub(crate) lease: i64,
    pub(crate) sub: usize,
    pub(crate) rows: Vec<i64>,
}

/// The open batches, by `pgbus.claims` id.
#[derive(Debug, Default)]
pub(crate) struct Batches(Mutex<HashMap<i64, Batch>>);

impl Batches {
    fn lock(&self) -> MutexGuard<'_, HashMap<i64, Batch>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a batch just claimed, before any of its rows can report: its rows as
    /// (id, txid), in any order.
    pub(crate) fn open(&self, batch: i64, lease: i64, sub: usize, rows: Vec<(i64, i64)>) {
        let mut order = rows;
        order.sort_unstable_by_key(|&(id, txid)| (txid, id));
        self.lock().insert(
            batch,
            Batch {
                lease,
                sub,
                rows: order.iter().map(|r| r.0).collect(),
                order,
                skipped: 0,
                opened: Instant::now(),
            },
        );
    }

    /// Whether a batch is held and open: its rows' outcomes go through its lease.
    pub(crate) fn is_open(&self, batch: i64) -> bool {
        self.lock().contains_key(&batch)
    }

    /// What writing the outcomes of `rows` (batch, row) does to their batches: those it
    /// completes (every row of theirs not written yet is among them) are closed; open ones
    /// whose leading rows then all have their outcome, by at least [`SHRINK_STEP`] rows more
    /// than their `pgbus.claims` row knows, are shrunk to start after them.
    pub(crate) fn plan(&self, rows: &[(i64, i64)]) -> Plan {
        let mut writing: HashMap<i64, HashSet<i64>> = HashMap::new();
        for &(batch, row) in rows {
            writing.entry(batch).or_default().insert(row);
        }
        let open = self.lock();
        let mut plan = Plan::default();
        for (&batch, ids) in &writing {
            let Some(b) = open.get(&batch) else { continue };
            if b.rows.is_subset(ids) {
                plan.closing.push(batch);
                continue;
            }
            let done = |id: &i64| !b.rows.contains(id) || ids.contains(id);
            let skipped = b.skipped
                + (b.order[b.skipped..].iter())
                    .take_while(|(id, _)| done(id))
                    .count();
            if skipped >= b.skipped + SHRINK_STEP {
                let (id, txid) = b.order[skipped - 1];
                plan.shrink.push(Shrink {
                    batch,
                    txid,
                    id,
                    skipped,
                });
            }
        }
        plan.closing.sort_unstable();
        plan.shrink.sort_unstable_by_key(|s| s.batch);
        plan
    }

    /// After a write: the rows of the batches still held have their outcome, `shrunk` ones
    /// start where they were shrunk to; the batches no longer held, and those completed, are
    /// forgotten.
    pub(crate) fn written(&self, rows: &[(i64, i64)], held: &[i64], shrunk: &[Shrink]) {
        let mut open = self.lock();
        for s in shrunk {
            if let Some(b) = open.get_mut(&s.batch) {
                b.skipped = b.skipped.max(s.skipped);
            }
        }
        for &(batch, row) in rows {
            if !held.contains(&batch) {
                open.remove(&batch);
                continue;
            }
            if let Some(b) = open.get_mut(&batch) {
                b.rows.remove(&row);
                if b.rows.is_empty() {
                    open.remove(&batch);
                }
            }
        }
    }

    /// The batches open for `age(subscription index)` or longer, with their rows still
    /// without an outcome.
    pub(crate) fn older_than(
        &self,
        age: impl Fn(usize) -> Duration,
        now: Instant,
    ) -> Vec<Straggling> {
        let mut old: Vec<Straggling> = (self.lock().iter())
            .filter(|(_, b)| now.duration_since(b.opened) >= age(b.sub))
            .map(|(&batch, b)| {
                let mut rows: Vec<i64> = b.rows.iter().copied().collect();
                rows.sort_unstable();
                Straggling {
                    batch,
                    lease: b.lease,
                    sub: b.sub,
                    rows,
                }
            })
            .collect();
        old.sort_unstable_by_key(|s| s.batch);
        old
    }

    /// Forgets batches that were detached or taken back: their rows are written per row
    /// from now on.
    pub(crate) fn forget(&self, batches: &[i64]) {
        let mut open = self.lock();
        for b in batches {
            open.remove(b);
        }
    }

    /// Whether any batch is open.
    pub(crate) fn any(&self) -> bool {
        !self.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_shrinks_to_the_rows_after_its_done_prefix_in_lane_order() {
        let batches = Batches::default();
        // 40 rows of txid 7 and 40 of txid 3, given out of order: lane order is txid 3 first.
        let rows: Vec<(i64, i64)> = (100..140)
            .map(|id| (id, 7))
            .chain((0..40).map(|id| (id, 3)))
            .collect();
        batches.open(1, 10, 0, rows);
        let first: Vec<(i64, i64)> = (0..40).map(|id| (1, id)).collect();
        assert!(
            batches.plan(&first[..20]).shrink.is_empty(),
            "fewer than a step"
        );
        let with_gap: Vec<(i64, i64)> = first
            .iter()
            .copied()
            .chain((101..140).map(|id| (1, id)))
            .collect();
        assert_eq!(
            batches.plan(&with_gap).shrink,
            [Shrink {
                batch: 1,
                txid: 3,
                id: 39,
                skipped: 40
            }],
            "row 100 has no outcome: the batch starts after (3, 39)"
        );
        let all: Vec<(i64, i64)> = with_gap.iter().copied().chain([(1, 100)]).collect();
        assert_eq!(
            batches.plan(&all),
            Plan {
                closing: vec![1],
                shrink: vec![]
            },
            "a batch completed is closed, not shrunk"
        );
        let shrunk = batches.plan(&with_gap).shrink;
        batches.written(&with_gap, &[1], &shrunk);
        assert!(batches.plan(&[]).shrink.is_empty(), "nothing more is done");
        assert_eq!(batches.plan(&[(1, 100)]).closing, [1]);
    }

    #[test]
    fn a_batch_completes_when_its_last_rows_are_written() {
        let batches = Batches::default();
        batches.open(1, 10, 0, vec![(5, 1), (6, 1), (7, 1)]);
        batches.open(2, 10, 0, vec![(8, 1)]);
        assert_eq!(batches.plan(&[(1, 5), (1, 6)]).closing, Vec::<i64>::new());
        assert_eq!(
            batches.plan(&[(1, 5), (1, 6), (1, 7), (2, 8)]).closing,
            [1, 2]
        );
        batches.written(&[(1, 5), (1, 6)], &[1], &[]);
        assert!(batches.is_open(1));
        assert_eq!(batches.plan(&[(1, 7)]).closing, [1]);
        batches.written(&[(1, 7)], &[1], &[]);
        assert!(!batches.is_open(1), "every row written: closed");
        assert!(batches.is_open(2));
    }

    #[test]
    fn a_batch_no_longer_held_is_forgotten_and_stragglers_are_listed() {
        let batches = Batches::default();
        batches.open(1, 10, 3, vec![(5, 1), (6, 1)]);
        batches.open(2, 11, 3, vec![(9, 1)]);
        batches.written(&[(2, 9)], &[], &[]);
        assert!(!batches.is_open(2), "its lease was lost");
        let later = Instant::now() + Duration::from_secs(5);
        assert_eq!(
            batches.older_than(|_| Duration::from_secs(1), later),
            [Straggling {
                batch: 1,
                lease: 10,
                sub: 3,
                rows: vec![5, 6]
            }]
        );
        assert!(
            batches
                .older_than(|_| Duration::from_secs(60), later)
                .is_empty()
        );
        batches.forget(&[1]);
        assert!(!batches.any());
    }
}
