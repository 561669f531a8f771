//! The fetch loop: claims work while there is room and work, sleeps (woken early by
//! publishes, notifications and freed slots) when there is none. Work comes from the
//! delivery log on every claim, and from `pgbus.deliveries` (retries, deliver_at, taken-back
//! leases) once every poll interval, on demand, and on every claim while that table has a
//! backlog. While a backlog lasts (the last claim came back full), a second claimer on its
//! own connection keeps a second claim in flight, so the database is claiming one batch while
//! the other is being dispatched. Crash suspects (deliveries whose previous lease expired)
//! run alone: they pause ordinary claims until nothing else is in flight, then run one at a
//! time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::backoff::Backoff;
use super::claim::{self, ClaimedRow, Want};
use super::claim_ordered::{Cursors, claim_ordered};
use super::connection::KeptConnection;
use super::dispatch::{dispatch, give_back};
use super::room::Reservation;
use super::shared::Shared;

/// Extra fetches after a wake-up, with doubling pauses from 1 ms (255 ms in all): the
/// in-process wake comes before its publish commits, and publishes inside a publisher's
/// NOTIFY debounce window send none of their own, so a transaction that commits up to a
/// quarter of a second after its publish is found within half that time, not at the poll
/// interval. The last steps are sparse: an idle dispatcher claims eight times after a
/// wake-up, and an empty claim writes nothing.
const LINGER_STEPS: u32 = 8;

/// One claimer: its connection, its backoff, and the subscriptions' names and leases.
struct Claimer<'a> {
    shared: &'a Arc<Shared>,
    conn: KeptConnection,
    backoff: Backoff,
    subs: Vec<(&'a str, f64)>,
    /// When `pgbus.deliveries` is claimed from next; `None` for a claimer that leaves it to
    /// the primary one.
    next_side: Option<Instant>,
    /// The last claim from `pgbus.deliveries` came back full: claim from it every time.
    side_backlog: bool,
    /// Which subscriptions are ordered (by position): their keyed deliveries are claimed by
    /// `claim_ordered` on every claim.
    ordered: Vec<bool>,
    cursors: Cursors,
}

impl<'a> Claimer<'a> {
    fn new(shared: &'a Arc<Shared>, primary: bool) -> Self {
        Claimer {
            shared,
            conn: KeptConnection::new(shared.pool.clone()),
            backoff: Backoff::new(),
            subs: (shared.subs.iter())
                .map(|s| (&*s.name, s.sub.lease.as_secs_f64()))
                .collect(),
            next_side: primary.then(Instant::now),
            side_backlog: false,
            ordered: shared.subs.iter().map(|s| s.sub.ordered).collect(),
            cursors: Cursors::new(shared.subs.len()),
        }
    }

    /// The wants of the ordered subscriptions among `wants`.
    fn ordered_wants(&self, wants: &[Want]) -> Vec<Want> {
        (wants.iter().filter(|w| self.ordered[w.sub]).copied()).collect()
    }

    /// Whether this claim also takes from `pgbus.deliveries`.
    fn side_due(&mut self) -> bool {
        let asked = self.shared.signals.side_claim.swap(false, Relaxed);
        self.next_side
            .is_some_and(|at| self.side_backlog || asked || Instant::now() >= at)
    }

    /// Claims ordinary work into the reserved room and dispatches it: the heads of ordered
    /// subscriptions' keys, then from `pgbus.deliveries` when that is due, then from the
    /// delivery log into what is left. Returns whether any subscription got all it asked
    /// for or leases were taken back (claim again at once), and records the backlog.
    async fn claim_batch(&mut self, reserved: Reservation<'_>) -> sqlx::Result<bool> {
        let side = self.side_due();
        let (subs, owner) = (&self.subs, self.shared.owner);
        let mut got = vec![0usize; self.shared.subs.len()];
        let mut took_back = 0usize;
        // Both claimers take ordered heads, each walking from its own cursor (measured:
        // leaving them to the primary alone drained slower).
        let ordered = self.ordered_wants(&reserved.wants);
        if !ordered.is_empty() {
            let cursors = &mut self.cursors;
            let rows = (self.conn)
                .run(async |c| claim_ordered(c, subs, &ordered, cursors, false, owner).await)
                .await?;
            for row in rows {
                took_back += usize::from(row.taken_back);
                got[row.sub] += 1;
                dispatch(self.shared, row, false);
            }
        }
        if side {
            let wants = left(&reserved.wants, &got);
            let before = got.clone();
            let mut side_took_back = 0usize;
            let rows = (self.conn)
                .run(async |c| claim::claim(c, subs, &wants, false, owner).await)
                .await?;
            for row in rows {
                side_took_back += usize::from(row.taken_back);
                got[row.sub] += 1;
                dispatch(self.shared, row, false);
            }
            took_back += side_took_back;
            self.side_backlog =
                side_took_back > 0 || (wants.iter()).any(|w| got[w.sub] - before[w.sub] >= w.limit);
            self.next_side = Some(Instant::now() + self.shared.config.poll_interval);
        }
        let wants = left(&reserved.wants, &got);
        if !wants.is_empty() {
            let rows = (self.conn)
                .run(async |c| claim::claim_log(c, subs, &wants, owner).await)
                .await?;
            open_batches(self.shared, &rows);
            for row in rows {
                got[row.sub] += 1;
                dispatch(self.shared, row, false);
            }
        }
        let full = reserved.wants.iter().any(|w| got[w.sub] >= w.limit);
        drop(reserved);
        if took_back > 0 {
            tracing::warn!(
                count = took_back,
                "pgbus: took back deliveries whose lease expired; they will run alone"
            );
        }
        self.shared.signals.set_backlog(full);
        Ok(full || took_back > 0)
    }

    /// Claims at most one crash suspect per subscription and runs one of them; the others
    /// go back uncounted. Returns whether one was started.
    async fn claim_suspect(&mut self) -> sqlx::Result<bool> {
        let wants = Reservation::one_each(self.shared);
        let ordered = self.ordered_wants(&wants);
        let (subs, owner) = (&self.subs, self.shared.owner);
        let mut rows = (self.conn)
            .run(async |c| claim::claim(c, subs, &wants, true, owner).await)
            .await?;
        if !ordered.is_empty() {
            // Ordered suspects go through the ordered claim (a suspect runs only as its
            // key's head), from the first key: a suspect is rare, and found wherever it is.
            let mut cursors = Cursors::new(self.shared.subs.len());
            let cursors = &mut cursors;
            rows.extend(
                (self.conn)
                    .run(async |c| claim_ordered(c, subs, &ordered, cursors, true, owner).await)
                    .await?,
            );
        }
        let mut started = false;
        for row in rows {
            if row.taken_back || !started {
                started |= !row.taken_back;
                dispatch(self.shared, row, true);
            } else {
                give_back(self.shared, &row, true);
            }
        }
        Ok(started)
    }

    async fn failed(&mut self, e: &sqlx::Error) {
        let retry_in = self.backoff.failed();
        tracing::warn!(error = %e, ?retry_in, "pgbus: claiming failed; retrying");
        tokio::select! {
            _ = tokio::time::sleep(retry_in) => {}
            _ = self.shared.signals.stop.cancelled() => {}
        }
    }

    fn succeeded(&mut self) {
        if self.backoff.succeeded() {
            tracing::info!("pgbus: database reachable again; claiming resumed");
        }
    }
}

pub(crate) async fn run(shared: Arc<Shared>) {
    let backlog = tokio::spawn(run_backlog(shared.clone()));
    run_primary(&shared).await;
    shared.signals.backlog_wake.notify_one();
    let _ = backlog.await;
}

/// The claimer that always runs: ordinary claims, crash suspects, lingering after wake-ups.
async fn run_primary(shared: &Arc<Shared>) {
    let signals = &shared.signals;
    let mut claimer = Claimer::new(shared, true);
    let mut linger = LINGER_STEPS;
    let mut next_solo_check = Instant::now();

    while !signals.stop.is_cancelled() {
        // Due suspects are looked for every poll interval, and at once when new ones were
        // written.
        if signals.look_for_suspects.swap(false, Relaxed) || Instant::now() >= next_solo_check {
            next_solo_check = Instant::now() + shared.config.poll_interval;
            let names: Vec<&str> = claimer.subs.iter().map(|s| s.0).collect();
            match claimer
                .conn
                .run(async |c| claim::solo_due(c, &names).await)
                .await
            {
                Ok(due) => signals.solo_pending.store(due, Relaxed),
                Err(e) => {
                    claimer.failed(&e).await;
                    continue;
                }
            }
        }
        if signals.solo_pending.load(Relaxed) {
            // Alone: nothing else queued or running. Outcomes still being written do not
            // count (their handlers have returned), so the write of one suspect's outcome
            // and the claim of the next overlap.
            if shared.any_unreported() || shared.claiming() {
                wait_for_room(shared).await;
                continue;
            }
            match claimer.claim_suspect().await {
                Ok(started) => {
                    claimer.succeeded();
                    if !started {
                        signals.solo_pending.store(false, Relaxed);
                    }
                }
                Err(e) => claimer.failed(&e).await,
            }
            continue;
        }

        let Some(reserved) = Reservation::take(shared) else {
            wait_for_room(shared).await;
            continue;
        };
        match claimer.claim_batch(reserved).await {
            Ok(full) => {
                claimer.succeeded();
                if full {
                    linger = 0;
                    continue;
                }
                if linger < LINGER_STEPS {
                    let pause = Duration::from_millis(1 << linger);
                    linger += 1;
                    wait(shared, None, pause).await;
                    continue;
                }
                if wait(shared, None, shared.config.poll_interval).await {
                    linger = 0;
                }
            }
            Err(e) => claimer.failed(&e).await,
        }
    }
}

/// The second claimer: idle until a claim comes back full, then claims alongside the
/// primary while the backlog lasts (and crash suspects are not waiting to run alone).
async fn run_backlog(shared: Arc<Shared>) {
    let mut claimer = Claimer::new(&shared, false);
    while !shared.signals.stop.is_cancelled() {
        if !shared.signals.backlog_claims() {
            wait_backlog(&shared).await;
            continue;
        }
        let Some(reserved) = Reservation::take(&shared) else {
            wait_backlog(&shared).await;
            continue;
        };
        match claimer.claim_batch(reserved).await {
            Ok(_) => claimer.succeeded(),
            Err(e) => claimer.failed(&e).await,
        }
    }
}

/// What is left of `wants` after `got` rows were claimed per subscription.
fn left(wants: &[Want], got: &[usize]) -> Vec<Want> {
    (wants.iter())
        .filter(|w| got[w.sub] < w.limit)
        .map(|w| Want {
            sub: w.sub,
            limit: w.limit - got[w.sub],
        })
        .collect()
}

/// Records the batches of claimed log rows as held, before any of their rows can report.
fn open_batches(shared: &Shared, rows: &[ClaimedRow]) {
    // Per batch: its lease, its subscription, its rows as (id, txid).
    type Rows = Vec<(i64, i64)>;
    let mut batches: BTreeMap<i64, (i64, usize, Rows)> = BTreeMap::new();
    for row in rows {
        if let Some(log) = &row.log {
            let b = batches
                .entry(log.batch)
                .or_insert_with(|| (row.lease_id, row.sub, Vec::new()));
            b.2.push((row.id, log.txid));
        }
    }
    for (batch, (lease, sub, rows)) in batches {
        shared.batches.open(batch, lease, sub, rows);
    }
}

/// The second claimer's sleep: until a backlog begins or room is freed (it leaves the
/// wake-ups of publishes and notifications to the primary, which lingers on them).
async fn wait_backlog(shared: &Shared) {
    let signals = &shared.signals;
    tokio::select! {
        _ = signals.backlog_wake.notified() => {}
        _ = tokio::time::sleep(shared.config.poll_interval) => {}
        _ = signals.stop.cancelled() => {}
    }
}

/// Waits until a held delivery is written back (or a wake-up, or the poll interval).
async fn wait_for_room(shared: &Shared) {
    let freed = &shared.signals.slot_freed;
    wait(shared, Some(freed), shared.config.poll_interval).await;
}

/// Sleeps up to `timeout`, waking early on a wake-up (and on `extra`). Returns whether
/// it was woken rather than timed out.
async fn wait(shared: &Shared, extra: Option<&tokio::sync::Notify>, timeout: Duration) -> bool {
    let extra = async {
        match extra {
            Some(n) => n.notified().await,
            None => std::future::pending().await,
        }
    };
    let signals = &shared.signals;
    tokio::select! {
        _ = signals.wake.notified() => true,
        _ = extra => true,
        _ = tokio::time::sleep(timeout) => false,
        _ = signals.stop.cancelled() => true,
    }
}
