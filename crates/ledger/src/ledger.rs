//! The ledger: every accepted event, forever, in tree `ledger` in blocks of consecutive events
//! ([`crate::event_blocks`]), next to the state machine's own bookkeeping (`m:` keys) so one
//! sled batch moves both.
//!
//! [`Ledger`] is also the read side the API uses: the in-memory [`State`] (verification
//! index + admin read model) behind a `RwLock`, and ranged reads of stored events. The
//! layouts of its records are in `records.rs`, how applies stage them in `pending.rs`, and how
//! the state is rebuilt from them in `replay.rs`.

use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use keyledger_model::merkle::{self, Frontier, TreeHash};
use keyledger_model::{AccountId, KeyId, LedgerEntry, State, StateReader};

use crate::event_blocks;
use crate::indexes::{stored_account_tail, AccountRun};
use crate::merkle_store::{open_tree, StoredNodes, TreeGrowth, UpperLevels};
use crate::pending::{write_staged, Pending};
use crate::records::{account_index_key, decode_key_record, decode_run, KEY_INDEX_PREFIX};
use crate::replay::rebuild_state;
use crate::LedgerError;

/// Shared handle to the ledger tree and the state built from it.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    tree: sled::Tree,
    state: Arc<RwLock<State>>,
    /// The right edge of the stored Merkle tree; only applies and installs move it.
    frontier: Mutex<Frontier>,
    /// The upper levels of the stored tree, in memory.
    upper: RwLock<UpperLevels>,
    /// The account-index run the last stored event ends; moved with `frontier`.
    account_tail: Mutex<Option<AccountRun>>,
    /// Applied entries not yet written to sled (see [`Pending`]).
    pending: Mutex<Option<Pending>>,
    /// Where a running node saves its state (`saved_state.rs`); offline tools save nothing.
    saving: Option<Saving>,
    /// Taken by a writer before it asks for `state`'s write lock, and held by a long reader (a
    /// save) for as long as it reads: so a writer waits here, where readers do not see it.
    writer_gate: Mutex<()>,
}

/// Where a running node saves its state, and where this start found it.
///
/// Saved when a snapshot is built (at most once per [`Ledger::SAVE_INTERVAL`]) and when the node
/// stops. A save streams the whole state to a file under the state's read lock (about a second
/// at a million keys). Applies wait for it at `Inner::writer_gate`, not at the lock itself: a
/// writer waiting at std's `RwLock` lets no new reader in, so every verification would queue
/// behind it (measured as wrk timeouts on all 64 connections).
struct Saving {
    path: std::path::PathBuf,
    /// The position of the saved state this start began from (0: it replayed every event).
    loaded_at: u64,
    /// Held while a save runs: one at a time (they share the temporary file).
    running: Mutex<()>,
    /// When this run last saved.
    last_saved: Mutex<Option<Instant>>,
}

impl Ledger {
    /// Opens the ledger tree and rebuilds the state from every stored event, each one checked
    /// (what offline tools and audits want).
    pub fn open(db: &sled::Db) -> Result<Ledger, LedgerError> {
        let tree = db.open_tree("ledger")?;
        let state = rebuild_state(&tree, State::new(), |_| {})?;
        Ledger::with_state(db, tree, state, None)
    }

    /// A running node's ledger: the state saved at `saved` (if the ledger can continue it)
    /// with the events after it replayed, else rebuilt from every event; saved there again
    /// when the node stops ([`Ledger::save_state`]).
    pub fn open_saving(db: &sled::Db, saved: std::path::PathBuf) -> Result<Ledger, LedgerError> {
        let tree = db.open_tree("ledger")?;
        let started = Instant::now();
        let loaded = match crate::saved_state::load(&saved, &tree) {
            Ok(loaded) => loaded,
            Err(why) => {
                tracing::warn!(file = %saved.display(), why, "not starting from the saved state; replaying the whole ledger");
                None
            }
        };
        let from = loaded.as_ref().map_or(0, |s| s.head().seq);
        let state = rebuild_state(&tree, loaded.unwrap_or_default(), |_| {})?;
        tracing::info!(
            saved_at = from,
            replayed = state.head().seq - from,
            ms = started.elapsed().as_millis() as u64,
            "state loaded"
        );
        let saving = Saving { path: saved, loaded_at: from, running: Mutex::new(()), last_saved: Mutex::new(None) };
        Ledger::with_state(db, tree, state, Some(saving))
    }

    fn with_state(
        db: &sled::Db,
        tree: sled::Tree,
        state: State,
        saving: Option<Saving>,
    ) -> Result<Ledger, LedgerError> {
        let frontier = open_tree(db, &tree, state.head().seq)?;
        let upper = RwLock::new(UpperLevels::load(&tree)?);
        let account_tail = Mutex::new(stored_account_tail(&tree, state.head().seq)?);
        let frontier = Mutex::new(frontier);
        let pending = Mutex::new(None);
        let inner = Inner {
            db: db.clone(),
            tree,
            state: Arc::new(RwLock::new(state)),
            frontier,
            upper,
            account_tail,
            pending,
            saving,
            writer_gate: Mutex::new(()),
        };
        Ok(Ledger { inner: Arc::new(inner) })
    }

    /// The ledger position of the saved state this start began from, if it began from one.
    pub fn started_from_saved_state(&self) -> Option<u64> {
        self.inner.saving.as_ref().map(|s| s.loaded_at).filter(|at| *at > 0)
    }

    /// Makes the ledger durable ([`Ledger::persist`]) and saves the state beside it (a running
    /// node's; offline tools save nothing): the state is streamed to a file under its read lock,
    /// then the ledger is made durable up to it, then the file replaces the last one.
    pub fn save_state(&self) -> Result<(), LedgerError> {
        let Some(saving) = &self.inner.saving else { return self.persist() };
        let _one_at_a_time = saving.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let temporary = {
            let _writers_wait = self.inner.writer_gate.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            crate::saved_state::write_temporary(&saving.path, &self.state())?
        };
        self.persist()?;
        crate::saved_state::commit(&temporary, &saving.path)?;
        *saving.last_saved.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now());
        Ok(())
    }

    /// How long a running node goes at least between two saves of its state while it serves:
    /// each save costs a core for about a second at a million keys and holds writes back.
    pub const SAVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

    /// Saves the state unless this run saved it less than [`Ledger::SAVE_INTERVAL`] ago (or the
    /// ledger saves nothing); returns whether it saved.
    pub fn save_state_if_due(&self) -> Result<bool, LedgerError> {
        let Some(saving) = &self.inner.saving else { return Ok(false) };
        let last = *saving.last_saved.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if last.is_some_and(|at| at.elapsed() < Ledger::SAVE_INTERVAL) {
            return Ok(false);
        }
        self.save_state()?;
        Ok(true)
    }

    /// The right edge of the Merkle tree, to continue it in a batch.
    pub(crate) fn frontier(&self) -> Frontier {
        self.inner.frontier.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// After a batch is applied: the nodes it completed are cached, then its right edge becomes
    /// the stored one (so no reader sees a size whose upper nodes are not cached yet).
    pub(crate) fn grow_tree(&self, growth: TreeGrowth) {
        self.inner.upper.write().unwrap_or_else(|poisoned| poisoned.into_inner()).extend(&growth.upper);
        *self.inner.account_tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = growth.account_tail;
        *self.inner.frontier.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = growth.frontier;
    }

    /// After a snapshot install wrote the tree in many batches: its upper levels, and the
    /// account run its last event ends, read again.
    pub(crate) fn reload_tree(&self, frontier: Frontier) -> Result<(), LedgerError> {
        let upper = UpperLevels::load(&self.inner.tree)?;
        let account_tail = stored_account_tail(&self.inner.tree, frontier.size())?;
        *self.inner.upper.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = upper;
        *self.inner.account_tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = account_tail;
        *self.inner.frontier.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = frontier;
        Ok(())
    }

    /// Tree nodes: the upper levels from memory, the rest from sled.
    fn nodes(&self) -> Result<CachedNodes<'_>, LedgerError> {
        let stored = StoredNodes(self.read_tree()?);
        Ok(CachedNodes { upper: self.inner.upper.read().unwrap_or_else(|poisoned| poisoned.into_inner()), stored })
    }

    /// How many events the stored Merkle tree (and so the stored ledger) holds.
    pub fn stored_size(&self) -> u64 {
        self.frontier().size()
    }

    /// RFC 6962 root of the first `size` events.
    pub fn merkle_root(&self, size: u64) -> Result<TreeHash, LedgerError> {
        self.check_size(size)?;
        merkle::root(&self.nodes()?, size)
    }

    /// Audit path of the event at `seq` in the tree of the first `size` events.
    pub fn inclusion_proof(&self, seq: u64, size: u64) -> Result<Vec<TreeHash>, LedgerError> {
        self.check_size(size)?;
        if seq == 0 || seq > size {
            return Err(LedgerError::OutOfRange(format!("seq {seq} is not among the first {size} events")));
        }
        Ok(merkle::inclusion_proof(&self.nodes()?, seq - 1, size)?)
    }

    /// Proof that the tree of `new_size` events extends the tree of `old_size`.
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<TreeHash>, LedgerError> {
        self.check_size(new_size)?;
        Ok(merkle::consistency_proof(&self.nodes()?, old_size, new_size)?)
    }

    fn check_size(&self, size: u64) -> Result<(), LedgerError> {
        let stored = self.frontier().size();
        if size > stored {
            return Err(LedgerError::OutOfRange(format!("the ledger holds {stored} events, not {size}")));
        }
        Ok(())
    }

    /// The stored event at `seq`, if there is one.
    pub fn entry(&self, seq: u64) -> Result<Option<LedgerEntry>, LedgerError> {
        event_blocks::get(self.read_tree()?, seq)
    }

    /// The current state, for reads. Hold the guard briefly: apply waits for it.
    pub fn state(&self) -> RwLockReadGuard<'_, State> {
        // A poisoned lock means an apply panicked mid-way; the state may be half-changed,
        // but the process is going down through openraft's fatal path anyway.
        self.inner.state.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Read access to the state for verification, which needs nothing else of the ledger.
    pub fn state_reader(&self) -> StateReader {
        StateReader::new(self.inner.state.clone())
    }

    pub(crate) fn state_mut(&self) -> RwLockWriteGuard<'_, State> {
        let _gate = self.inner.writer_gate.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.inner.state.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn replace_state(&self, state: State) {
        *self.state_mut() = state;
    }

    /// The ledger tree as written so far: without what applies have staged (only the apply
    /// path, which holds the staged batch, and code that runs before any apply use this).
    pub(crate) fn tree(&self) -> &sled::Tree {
        &self.inner.tree
    }

    /// The ledger tree with everything applied so far written to it, for reading.
    pub(crate) fn read_tree(&self) -> Result<&sled::Tree, LedgerError> {
        self.write_pending()?;
        Ok(&self.inner.tree)
    }

    /// The staged batch; an apply holds it throughout (taken after the state's write lock, and
    /// nothing takes the state lock while holding this one).
    pub(crate) fn pending(&self) -> MutexGuard<'_, Option<Pending>> {
        self.inner.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes what applies have staged to sled (not flushed).
    pub fn write_pending(&self) -> Result<(), LedgerError> {
        write_staged(&self.inner.tree, &mut self.pending())
    }

    /// Writes what is staged and flushes sled: before the Raft log forgets entries, and when a
    /// node stops (offline tools read only the ledger, never the Raft log).
    pub fn persist(&self) -> Result<(), LedgerError> {
        self.write_pending()?;
        self.inner.db.flush()?;
        Ok(())
    }

    pub(crate) fn db(&self) -> &sled::Db {
        &self.inner.db
    }

    /// Every stored event about `key` (for a rotation, both keys), oldest first.
    pub fn key_history(&self, key: &KeyId) -> impl Iterator<Item = Result<LedgerEntry, LedgerError>> + '_ {
        let mut prefix = vec![KEY_INDEX_PREFIX];
        prefix.extend(key.to_bytes());
        let (written, tree) = self.tree_for_iterating();
        written.chain(tree.scan_prefix(prefix).flat_map(move |record| {
            let seqs = record.map_err(LedgerError::from).and_then(|(key, value)| decode_key_record(&key, &value));
            let events: Box<dyn Iterator<Item = Result<LedgerEntry, LedgerError>>> = match seqs {
                Ok(seqs) => Box::new(seqs.into_iter().map(move |seq| self.indexed_entry(seq, "key"))),
                Err(e) => Box::new(std::iter::once(Err(e))),
            };
            events
        }))
    }

    /// For the readers that return iterators: the tree after writing what is staged, and the
    /// error of that write as the iterator's first item if it failed.
    fn tree_for_iterating(&self) -> (impl Iterator<Item = Result<LedgerEntry, LedgerError>>, &sled::Tree) {
        (self.write_pending().err().map(Err).into_iter(), &self.inner.tree)
    }

    /// Stored events of `account` with `seq` in `from..=to`, oldest first, read through the
    /// account index (other accounts' events are never read).
    pub fn account_entries(
        &self,
        account: &AccountId,
        from: u64,
        to: u64,
    ) -> impl Iterator<Item = Result<LedgerEntry, LedgerError>> + '_ {
        let (written, tree) = self.tree_for_iterating();
        // The run that holds `from` starts at or before it; the others start inside the range.
        let mut runs: Vec<sled::Result<(sled::IVec, sled::IVec)>> = Vec::new();
        if from <= to {
            runs.extend(tree.range(account_index_key(account, 0)..=account_index_key(account, from)).next_back());
        }
        let later =
            (from < to).then(|| tree.range(account_index_key(account, from + 1)..=account_index_key(account, to)));
        written.chain(runs.into_iter().chain(later.into_iter().flatten()).flat_map(move |record| {
            let run = record.map_err(LedgerError::from).and_then(|(key, value)| decode_run(&key, &value));
            let events: Box<dyn Iterator<Item = Result<LedgerEntry, LedgerError>>> = match run {
                Ok((first, last)) if last >= from && first <= to => {
                    let (low, high) = (first.max(from), last.min(to));
                    Box::new(self.entries(low, high).enumerate().map(move |(i, entry)| match entry {
                        Ok(entry) if entry.event.seq == low + i as u64 => Ok(entry),
                        Ok(_) => Err(LedgerError::Damaged {
                            seq: low + i as u64,
                            why: "the account index names an event that is not stored".into(),
                        }),
                        Err(e) => Err(e),
                    }))
                }
                Ok(_) => Box::new(std::iter::empty()),
                Err(e) => Box::new(std::iter::once(Err(e))),
            };
            events
        }))
    }

    /// The run of the account of the last stored event, which the next event may continue.
    pub(crate) fn account_tail(&self) -> Option<AccountRun> {
        self.inner.account_tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// The event at `seq`, which the `index` names.
    fn indexed_entry(&self, seq: u64, index: &str) -> Result<LedgerEntry, LedgerError> {
        // Only called by readers that have written what was staged.
        event_blocks::get(&self.inner.tree, seq)?.ok_or_else(|| LedgerError::Damaged {
            seq,
            why: format!("the {index} index names an event that is not stored"),
        })
    }

    /// Stored events with `seq` in `from..=to`, oldest first.
    pub fn entries(&self, from: u64, to: u64) -> impl Iterator<Item = Result<LedgerEntry, LedgerError>> + '_ {
        let (written, tree) = self.tree_for_iterating();
        written.chain(event_blocks::entries(tree, from, to))
    }
}

/// Upper levels from memory, the rest from sled.
struct CachedNodes<'a> {
    upper: RwLockReadGuard<'a, UpperLevels>,
    stored: StoredNodes<'a>,
}

impl merkle::NodeSource for CachedNodes<'_> {
    type Error = LedgerError;

    fn node(&self, level: u32, index: u64) -> Result<TreeHash, LedgerError> {
        match self.upper.get(level, index) {
            Some(hash) => Ok(hash),
            None => self.stored.node(level, index),
        }
    }
}
