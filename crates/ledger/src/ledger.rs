//! The ledger: every accepted event, forever, in tree `ledger` in blocks of consecutive events
//! ([`crate::event_blocks`]), next to the state machine's own bookkeeping (`m:` keys) so one
//! sled batch moves both.
//!
//! [`Ledger`] is also the read side the API uses: the in-memory [`State`] (verification
//! index + admin read model) behind a `RwLock`, and ranged reads of stored events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use keyledger_model::merkle::{self, Frontier, ProofError, TreeHash};
use keyledger_model::{AccountId, KeyId, LedgerEntry, State};

use crate::codec::CodecError;
use crate::event_blocks;
use crate::merkle_store::{
    has_current_layout, legacy_stored_size, move_to_current_layout, LedgerBatch, StoredNodes, TreeGrowth, UpperLevels,
    TREE_PREFIX,
};

/// Prefix of the per-key index: `k` + key id + big-endian seq of the record's first event →
/// the big-endian seqs of up to [`KEY_RECORD_EVENTS`] of that key's events, so a key's history
/// is a range scan rather than a scan of the whole ledger. (A record with an empty value, as
/// older versions wrote one per event, names only its first.) A key's next event rewrites its
/// last record in place while there is room: a new record would cost a sled insert.
pub(crate) const KEY_INDEX_PREFIX: u8 = b'k';

/// Events one key-index record names at most (a 512-byte value).
pub(crate) const KEY_RECORD_EVENTS: usize = 64;

/// The seqs a key-index record names.
fn decode_key_record(key: &[u8], value: &[u8]) -> Result<Vec<u64>, LedgerError> {
    let seq_at = |bytes: &[u8]| u64::from_be_bytes(bytes.try_into().expect("8 bytes"));
    if key.len() != 25 || !value.len().is_multiple_of(8) {
        return Err(LedgerError::Damaged { seq: 0, why: "a key index record is malformed".into() });
    }
    if value.is_empty() {
        return Ok(vec![seq_at(&key[17..])]);
    }
    Ok(value.chunks_exact(8).map(seq_at).collect())
}

/// The last index record of a key: its key's first seq, and every seq it names.
#[derive(Debug, Clone)]
pub(crate) struct KeyRecord {
    first: u64,
    seqs: Vec<u64>,
}

/// What the index records of a batch's events continue: the account run the event before ends,
/// and each key's last record. Records this batch wrote are kept here; earlier ones are read
/// from `stored` (none when the batch builds a ledger's indexes from its first event).
pub(crate) struct IndexTails {
    pub(crate) account: Option<AccountRun>,
    keys: HashMap<KeyId, KeyRecord>,
    stored: Option<sled::Tree>,
}

impl IndexTails {
    /// Indexes built from the first event.
    pub(crate) fn fresh() -> IndexTails {
        IndexTails { account: None, keys: HashMap::new(), stored: None }
    }

    /// Continuing the stored indexes of `ledger`.
    pub(crate) fn continuing(ledger: &Ledger) -> IndexTails {
        IndexTails { account: ledger.account_tail(), keys: HashMap::new(), stored: Some(ledger.tree().clone()) }
    }

    /// Continuing the indexes stored in `tree` for its first `head_seq` events. Every writer
    /// continues what is stored, so the records are a function of the events alone: a node that
    /// applied the log and one that installed a snapshot in other batches store the same.
    pub(crate) fn continuing_stored(tree: &sled::Tree, head_seq: u64) -> Result<IndexTails, LedgerError> {
        let account = stored_account_tail(tree, head_seq)?;
        Ok(IndexTails { account, keys: HashMap::new(), stored: Some(tree.clone()) })
    }

    fn key_record(&mut self, key: &KeyId) -> Result<Option<&mut KeyRecord>, LedgerError> {
        if !self.keys.contains_key(key) {
            let Some(tree) = &self.stored else { return Ok(None) };
            let Some(last) = tree.range(key_index_key(key, 0)..=key_index_key(key, u64::MAX)).next_back() else {
                return Ok(None);
            };
            let (record_key, value) = last?;
            let seqs = decode_key_record(&record_key, &value)?;
            self.keys.insert(*key, KeyRecord { first: seqs[0], seqs });
        }
        Ok(self.keys.get_mut(key))
    }

    /// Names `seq` in `key`'s last record, or in a new one when that is full.
    fn put_key_event(&mut self, batch: &mut sled::Batch, key: &KeyId, seq: u64) -> Result<(), LedgerError> {
        let record = match self.key_record(key)? {
            Some(record) if record.seqs.len() < KEY_RECORD_EVENTS => {
                record.seqs.push(seq);
                record.clone()
            }
            _ => {
                let record = KeyRecord { first: seq, seqs: vec![seq] };
                self.keys.insert(*key, record.clone());
                record
            }
        };
        let value: Vec<u8> = record.seqs.iter().flat_map(|s| s.to_be_bytes()).collect();
        batch.insert(&key_index_key(key, record.first), value);
        Ok(())
    }
}

pub(crate) fn key_index_key(key: &KeyId, seq: u64) -> [u8; 25] {
    let mut out = [KEY_INDEX_PREFIX; 25];
    out[1..17].copy_from_slice(&key.to_bytes());
    out[17..].copy_from_slice(&seq.to_be_bytes());
    out
}

/// Prefix of the per-account index: `a` + account name + `0` + big-endian seq of the first
/// event of a run of that account's consecutive events → big-endian seq of the run's last event
/// (a record with an empty value, as older versions wrote one per event, is a run of one). An
/// account's trail is then read without the others', in ranged reads. Runs, not one record per
/// event: most events continue the run before them, and extending it rewrites one record where
/// a new record would cost a sled insert (and a leaf split every 16).
pub(crate) const ACCOUNT_INDEX_PREFIX: u8 = b'a';

fn account_index_key(account: &AccountId, seq: u64) -> Vec<u8> {
    let mut out = account_index_prefix(account);
    out.extend(seq.to_be_bytes());
    out
}

/// Account names are `a-z0-9-`, so the `0` byte ends the name unambiguously.
fn account_index_prefix(account: &AccountId) -> Vec<u8> {
    let mut out = vec![ACCOUNT_INDEX_PREFIX];
    out.extend(account.as_str().as_bytes());
    out.push(0);
    out
}

/// A run of one account's consecutive events, `first..=last`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccountRun {
    pub(crate) account: AccountId,
    pub(crate) first: u64,
    pub(crate) last: u64,
}

/// The run an account index record describes.
fn decode_run(key: &[u8], value: &[u8]) -> Result<(u64, u64), LedgerError> {
    let seq_at = |bytes: &[u8]| -> Option<u64> { Some(u64::from_be_bytes(bytes.try_into().ok()?)) };
    let damaged = || LedgerError::Damaged { seq: 0, why: "an account index record is malformed".into() };
    let first = key.len().checked_sub(8).and_then(|at| seq_at(&key[at..])).ok_or_else(damaged)?;
    let last = if value.is_empty() { first } else { seq_at(value).ok_or_else(damaged)? };
    if last < first {
        return Err(damaged());
    }
    Ok((first, last))
}

/// Writes the index records of an event: its account's run — continuing the run of the event
/// before it when that is the same account's — and its key's (both keys', for a rotation).
pub(crate) fn put_indexes(
    batch: &mut sled::Batch,
    tails: &mut IndexTails,
    entry: &LedgerEntry,
) -> Result<(), LedgerError> {
    let (account, seq) = (&entry.event.account, entry.event.seq);
    let tail = &mut tails.account;
    match tail {
        Some(run) if run.account == *account && run.last + 1 == seq => run.last = seq,
        _ => *tail = Some(AccountRun { account: account.clone(), first: seq, last: seq }),
    }
    if let Some(run) = tail {
        batch.insert(account_index_key(&run.account, run.first), &run.last.to_be_bytes());
    }
    if let Some(key) = entry.event.body.key() {
        tails.put_key_event(batch, &key, seq)?;
    }
    if let keyledger_model::EventBody::KeyRotated { replacement, .. } = &entry.event.body {
        tails.put_key_event(batch, replacement, seq)?;
    }
    Ok(())
}

/// Shared handle to the ledger tree and the state built from it.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    tree: sled::Tree,
    state: RwLock<State>,
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

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("storage: {0}")]
    Storage(#[from] sled::Error),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("the stored ledger is damaged at seq {seq}: {why}")]
    Damaged { seq: u64, why: String },
    #[error("{0}")]
    OutOfRange(String),
    #[error("snapshot file: {0}")]
    Io(#[from] std::io::Error),
    #[error("the snapshot is damaged: {0}")]
    Snapshot(String),
    #[error("raft log: {0}")]
    RaftLog(std::io::Error),
}

impl From<ProofError<LedgerError>> for LedgerError {
    fn from(e: ProofError<LedgerError>) -> LedgerError {
        match e {
            ProofError::OutOfRange(why) => LedgerError::OutOfRange(why),
            ProofError::Source(e) => e,
        }
    }
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
            state: RwLock::new(state),
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

/// The account-index run that ends at the last stored event (`head_seq`), if any.
pub(crate) fn stored_account_tail(tree: &sled::Tree, head_seq: u64) -> Result<Option<AccountRun>, LedgerError> {
    let Some(entry) = event_blocks::get(tree, head_seq)? else {
        return Ok(None);
    };
    let account = entry.event.account;
    let record = tree.range(account_index_key(&account, 0)..=account_index_key(&account, head_seq)).next_back();
    let Some(record) = record else {
        return Ok(None);
    };
    let (key, value) = record?;
    let (first, last) = decode_run(&key, &value)?;
    // An index that does not reach the last event (written before the index existed) is not
    // continued; the next event starts a run of its own.
    Ok((last == head_seq).then_some(AccountRun { account, first, last }))
}

/// The Merkle tree's right edge for a ledger of `head_seq` events. Every batch writes events and
/// tree together, so a data dir in the current layout has a tree of exactly `head_seq` leaves.
/// An older data dir — written before the tree existed, or storing every level of it — gets its
/// missing nodes built from the stored events and its low levels removed, once.
fn open_tree(db: &sled::Db, tree: &sled::Tree, head_seq: u64) -> Result<Frontier, LedgerError> {
    if has_current_layout(tree)? {
        return Frontier::from_source(&StoredNodes(tree), head_seq);
    }
    let stored = legacy_stored_size(tree)?;
    if stored > head_seq {
        return Err(LedgerError::Damaged {
            seq: stored,
            why: "the Merkle tree has more leaves than the ledger".into(),
        });
    }
    let frontier = Frontier::from_source(&StoredNodes(tree), stored)?;
    let mut batch = LedgerBatch::new(frontier);
    move_to_current_layout(tree, batch.sled_batch())?;
    for entry in event_blocks::entries(tree, stored + 1, head_seq) {
        batch.put_tree_only(&entry?);
    }
    let (batch, growth) = batch.finish();
    tree.apply_batch(batch)?;
    db.flush()?;
    tracing::info!(from = stored, to = head_seq, "moved the Merkle tree to the current layout");
    Ok(growth.frontier)
}

/// What `rebuild` found and wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuilt {
    pub events: u64,
    pub head: keyledger_model::ChainHead,
    pub merkle_root: TreeHash,
    pub state: State,
}

/// Checks every stored event against the chain, then replaces the indexes and the Merkle tree
/// with ones built from the events alone.
pub(crate) fn rebuild_derived(db: &sled::Db) -> Result<Rebuilt, LedgerError> {
    let tree = db.open_tree("ledger")?;
    let mut batch = LedgerBatch::new(Frontier::new());
    remove_derived(&tree, batch.sled_batch())?;
    let mut failed = None;
    let state = rebuild_state(&tree, State::new(), |entry| {
        if let Err(e) = batch.put_derived(entry) {
            failed.get_or_insert(e);
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    let (batch, growth) = batch.finish();
    tree.apply_batch(batch)?;
    db.flush()?;
    let frontier = growth.frontier;
    Ok(Rebuilt { events: frontier.size(), head: state.head(), merkle_root: frontier.root(), state })
}

/// Removes everything derived from the events (indexes, Merkle nodes) into `batch`.
pub(crate) fn remove_derived(tree: &sled::Tree, batch: &mut sled::Batch) -> Result<(), LedgerError> {
    for prefix in [KEY_INDEX_PREFIX, ACCOUNT_INDEX_PREFIX, TREE_PREFIX] {
        for item in tree.scan_prefix([prefix]) {
            batch.remove(item?.0);
        }
    }
    Ok(())
}

/// Events decoded and content-checked per step of the start-up rebuild.
const REBUILD_CHUNK: usize = 4096;

/// The state built from every stored event after `state`'s head (all of them for a new state),
/// each checked: decoding and recomputing hashes (the
/// bulk of the work) run on a second thread while this one reads the next chunk of blocks from
/// sled, and the chain links, `evolve` and `each` follow in order.
fn rebuild_state(
    tree: &sled::Tree,
    mut state: State,
    mut each: impl FnMut(&LedgerEntry),
) -> Result<State, LedgerError> {
    let from = state.head().seq + 1;
    let blocks_per_chunk = REBUILD_CHUNK / event_blocks::BLOCK_EVENTS as usize;
    std::thread::scope(|scope| {
        let mut checking: Option<std::thread::ScopedJoinHandle<'_, Result<Vec<LedgerEntry>, LedgerError>>> = None;
        let mut absorb = |state: &mut State, checked: Result<Vec<LedgerEntry>, LedgerError>| {
            // The first block may begin before `from` (a saved state ends anywhere).
            for entry in checked?.into_iter().filter(|e| e.event.seq >= from) {
                check_position(state, &entry)?;
                state.evolve(&entry);
                each(&entry);
            }
            Ok::<(), LedgerError>(())
        };
        let mut chunk = Vec::with_capacity(blocks_per_chunk);
        let mut blocks = event_blocks::blocks(tree, from, u64::MAX);
        loop {
            let block = blocks.next().transpose()?;
            let done = block.is_none();
            chunk.extend(block);
            if chunk.len() < blocks_per_chunk && !done {
                continue;
            }
            let raw = std::mem::replace(&mut chunk, Vec::with_capacity(blocks_per_chunk));
            let next = scope.spawn(move || decode_checked(&raw));
            if let Some(previous) = checking.replace(next) {
                absorb(&mut state, previous.join().expect("checking events does not panic"))?;
            }
            if done {
                let last = checking.take().expect("just spawned");
                absorb(&mut state, last.join().expect("checking events does not panic"))?;
                return Ok(state);
            }
        }
    })
}

/// The entries of stored blocks, decoded, each one's content matching its hashes and its key
/// digest.
fn decode_checked(blocks: &[(u64, sled::IVec)]) -> Result<Vec<LedgerEntry>, LedgerError> {
    let mut entries = Vec::with_capacity(blocks.len() * event_blocks::BLOCK_EVENTS as usize);
    for (number, bytes) in blocks {
        for record in event_blocks::records(*number, bytes) {
            let (seq, record) = record?;
            let entry = event_blocks::decode_at(seq, record)?;
            check_content(&entry)?;
            entries.push(entry);
        }
    }
    Ok(entries)
}

/// Refuses an entry that does not continue the chain the state has reached.
pub(crate) fn check_link(state: &State, entry: &LedgerEntry) -> Result<(), LedgerError> {
    check_position(state, entry)?;
    check_content(entry)
}

/// Does `entry` come next on both chains?
fn check_position(state: &State, entry: &LedgerEntry) -> Result<(), LedgerError> {
    let head = state.head();
    let event = &entry.event;
    let damaged = |why: &str| LedgerError::Damaged { seq: event.seq, why: why.to_string() };
    if event.seq != head.seq + 1 {
        return Err(damaged("sequence gap"));
    }
    if event.prev_hash != head.hash || event.account_prev_hash != state.account_head(&event.account).hash {
        return Err(damaged("chain link broken"));
    }
    Ok(())
}

/// Do `entry`'s hashes match its content, and its key or code digest its commitment?
fn check_content(entry: &LedgerEntry) -> Result<(), LedgerError> {
    let event = &entry.event;
    let damaged = |why: &str| LedgerError::Damaged { seq: event.seq, why: why.to_string() };
    if !event.hashes_are_valid() {
        return Err(damaged("hash does not match content"));
    }
    let commitment = entry.digest.map(|d| d.commitment());
    match &event.body {
        keyledger_model::EventBody::KeyCreated { digest_commitment, .. } if commitment != Some(*digest_commitment) => {
            return Err(damaged("key digest does not match its commitment"));
        }
        keyledger_model::EventBody::EnrollmentIssued { code_commitment, .. }
            if commitment != Some(*code_commitment) =>
        {
            return Err(damaged("enrollment code digest does not match its commitment"));
        }
        _ => {}
    }
    Ok(())
}
