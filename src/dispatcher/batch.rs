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
}

/// One open batch.
#[derive(Debug)]
struct Batch {
    lease: i64,
    /// Index of the subscription in `Shared::subs`.
    sub: usize,
    /// Its rows whose outcome is not written yet.
    rows: HashSet<i64>,
    opened: Instant,
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

    /// Records a batch just claimed, before any of its rows can report.
    pub(crate) fn open(&self, batch: i64, lease: i64, sub: usize, rows: impl Iterator<Item = i64>) {
        self.lock().insert(
            batch,
            Batch {
                lease,
                sub,
                rows: rows.collect(),
                opened: Instant::now(),
            },
        );
    }

    /// Whether a batch is held and open: its rows' outcomes go through its lease.
    pub(crate) fn is_open(&self, batch: i64) -> bool {
        self.lock().contains_key(&batch)
    }

    /// The batches that writing the outcomes of `rows` (batch, row) would complete: every
    /// row of theirs not written yet is among them.
    pub(crate) fn completed_by(&self, rows: &[(i64, i64)]) -> Vec<i64> {
        let mut writing: HashMap<i64, HashSet<i64>> = HashMap::new();
        for &(batch, row) in rows {
            writing.entry(batch).or_default().insert(row);
        }
        let open = self.lock();
        let mut done: Vec<i64> = (writing.into_iter())
            .filter(|(batch, ids)| open.get(batch).is_some_and(|b| b.rows.is_subset(ids)))
            .map(|(batch, _)| batch)
            .collect();
        done.sort_unstable();
        done
    }

    /// After a write: the rows of the batches still held have their outcome; the batches no
    /// longer held, and those completed, are forgotten.
    pub(crate) fn written(&self, rows: &[(i64, i64)], held: &[i64]) {
        let mut open = self.lock();
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
    fn a_batch_completes_when_its_last_rows_are_written() {
        let batches = Batches::default();
        batches.open(1, 10, 0, [5, 6, 7].into_iter());
        batches.open(2, 10, 0, [8].into_iter());
        assert_eq!(batches.completed_by(&[(1, 5), (1, 6)]), Vec::<i64>::new());
        assert_eq!(
            batches.completed_by(&[(1, 5), (1, 6), (1, 7), (2, 8)]),
            [1, 2]
        );
        batches.written(&[(1, 5), (1, 6)], &[1]);
        assert!(batches.is_open(1));
        assert_eq!(batches.completed_by(&[(1, 7)]), [1]);
        batches.written(&[(1, 7)], &[1]);
        assert!(!batches.is_open(1), "every row written: closed");
        assert!(batches.is_open(2));
    }

    #[test]
    fn a_batch_no_longer_held_is_forgotten_and_stragglers_are_listed() {
        let batches = Batches::default();
        batches.open(1, 10, 3, [5, 6].into_iter());
        batches.open(2, 11, 3, [9].into_iter());
        batches.written(&[(2, 9)], &[]);
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
