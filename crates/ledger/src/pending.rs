//! Applied entries staged for sled: the one batch applies go on filling, and when it is
//! written.

use std::time::{Duration, Instant};

use crate::merkle_store::LedgerBatch;
use crate::LedgerError;

/// What applies have staged for sled and not written yet, as one batch.
///
/// Why: every sled batch seals and writes sled's I/O buffer on sled's thread pool, which wakes
/// all seven of its threads; one batch per applied entry was the largest cost of a write
/// (docs/benchmarks.md). Applies therefore go on staging into one batch, written when it is
/// big or old enough ([`Pending::due`]) and before anything reads sled ([`Ledger::read_tree`]).
/// The entries are durable in the Raft log meanwhile; a crash loses only the staged batch, and
/// openraft applies those entries again from `last_applied` (written in the same batch) to the
/// same bytes. The log is purged only after this batch is written and sled flushed.
pub(crate) struct Pending {
    pub(crate) batch: LedgerBatch,
    events: usize,
    started: Instant,
}

/// A staged batch is written once it holds this many events,
const PENDING_EVENTS: usize = 4096;
/// or once it is this old when an apply ends. (A reader that follows new events waits this
/// long between reads, so it does not make every apply write its batch alone.)
pub const PENDING_AGE: Duration = Duration::from_millis(50);

impl Pending {
    pub(crate) fn new(batch: LedgerBatch) -> Pending {
        Pending { batch, events: 0, started: Instant::now() }
    }

    pub(crate) fn staged(&mut self, events: usize) {
        self.events += events;
    }

    pub(crate) fn due(&self) -> bool {
        self.events >= PENDING_EVENTS || self.started.elapsed() >= PENDING_AGE
    }
}

/// Writes the staged batch of `pending`, if any. On failure it stays staged (nothing of it was
/// written: a sled batch is atomic).
pub(crate) fn write_staged(tree: &sled::Tree, pending: &mut Option<Pending>) -> Result<(), LedgerError> {
    if let Some(staged) = pending.as_mut() {
        tree.apply_batch(staged.batch.sealed_batch())?;
        *pending = None;
    }
    Ok(())
}
