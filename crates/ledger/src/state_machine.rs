//! The openraft state machine: applies committed proposals in log order.
//!
//! Per batch of committed entries: the in-memory [`State`] decides and evolves under its
//! write lock, and the new ledger entries and `last_applied`/membership are staged for sled,
//! which gets them in one atomic batch per many applies (see `Pending` in `pending.rs`). A snapshot is the whole ledger plus that bookkeeping, so a node that
//! joins after log compaction still ends with the identical, complete history.
//!
//! Snapshots are files (`snapshot.rs`), streamed from and into sled in bounded batches. An
//! install spans many batches, so it is made crash-safe by a marker (`m:installing`, naming
//! the kept file) written and flushed before the first change and removed in the last batch:
//! [`recover`] finishes a marked install before the ledger is opened.
//!
//! Over 600 lines on purpose: it is the one implementation of openraft's `RaftStateMachine`
//! and `RaftSnapshotBuilder`, whose apply, build and install paths share the private steps
//! below; the snapshot's format is in `snapshot.rs`, the staged batch in `pending.rs`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use keyledger_model::idempotency::{Record, RecordKey, Table};
use keyledger_model::merkle::Frontier;
use keyledger_model::{ChainHead, Command, LedgerEntry, Outcome, Proposal, RejectCode, Rejection, State};
use openraft::storage::RaftStateMachine;
use openraft::{
    Entry, EntryPayload, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::event_blocks::{self, BLOCK_PREFIX, LEGACY_EVENT_PREFIX};
use crate::ledger::Ledger;
use crate::merkle_store::{LedgerBatch, StoredNodes, TREE_PREFIX};
use crate::pending::{write_staged, Pending};
use crate::records::{ACCOUNT_INDEX_PREFIX, KEY_INDEX_PREFIX};
use crate::snapshot::{self, SnapshotFile};
use crate::LedgerError;
use crate::{Node, NodeId, Proposals, TypeConfig};

const APPLIED: &[u8] = b"m:applied";
const MEMBERSHIP: &[u8] = b"m:membership";
const SNAPSHOT: &[u8] = b"m:snapshot";
/// Where older versions named the file of the snapshot `m:snapshot` describes; snapshots are
/// streamed from the ledger now, and the key is removed when the next one is recorded.
const SNAPSHOT_FILE: &[u8] = b"m:snapshot-file";
/// Present while a snapshot install is under way: an [`Installing`].
const INSTALLING: &[u8] = b"m:installing";
/// Prefix of the idempotency records in the ledger tree (beside `b` event blocks and `m:` meta).
const IDEMPOTENCY_PREFIX: u8 = b'i';
/// Entries (or removals) per sled batch while installing. Small on purpose: sled clones a leaf
/// per insert and frees the clones only after the batch, so memory grows with the batch size
/// (1M events installed: 1.1 GB peak with 128, 12 GB with 4096) and time does not improve.
const INSTALL_BATCH: usize = 128;

/// The last snapshot we built or installed: its meta and the ledger head it covers.
#[derive(Clone, Serialize, Deserialize)]
struct SnapshotRecord {
    meta: SnapshotMeta<NodeId, Node>,
    head_seq: u64,
    /// The idempotency table as of the snapshot (it changes, unlike the ledger prefix), kept
    /// so the snapshot can be streamed at any later time.
    idempotency: Vec<(RecordKey, Record)>,
}

/// An install under way, for finishing it after a crash: the checked file it installs from,
/// and what the last batch records.
#[derive(Clone, Serialize, Deserialize)]
struct Installing {
    file: String,
    /// The stored ledger is not a prefix of the snapshot's: remove it all first. Once removed,
    /// the marker says `false`, so a crash after that does not remove again.
    replace_all: bool,
    record: SnapshotRecord,
}

pub struct StateMachine {
    ledger: Ledger,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, Node>,
    snapshot: Option<SnapshotRecord>,
    idempotency: Table,
    /// The `snapshots/` dir of the data dir.
    dir: PathBuf,
    /// Held while recording a snapshot or removing snapshot files (builds run beside installs).
    files: Arc<Mutex<()>>,
    /// Test hook: the next installs stop (as a crash would) after this many sled batches.
    interrupt_after: Option<usize>,
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(&e).into()
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(&e).into()
}

fn snapshot_read_err(meta: &SnapshotMeta<NodeId, Node>, e: LedgerError) -> StorageError<NodeId> {
    StorageIOError::read_snapshot(Some(meta.signature()), &e).into()
}

fn snapshot_write_err(meta: &SnapshotMeta<NodeId, Node>, e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_snapshot(Some(meta.signature()), &e).into()
}

fn join_err(e: tokio::task::JoinError) -> StorageError<NodeId> {
    write_err(std::io::Error::other(e.to_string()))
}

fn lock(files: &Mutex<()>) -> std::sync::MutexGuard<'_, ()> {
    files.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl StateMachine {
    /// Opens the state machine over `ledger`, restoring `last_applied` and membership;
    /// snapshot files live in `dir` (see [`recover`], which must have run on it).
    pub fn open(ledger: Ledger, dir: &Path) -> Result<StateMachine, LedgerError> {
        let tree = ledger.tree();
        let get = |key: &[u8]| -> Result<Option<sled::IVec>, LedgerError> { Ok(tree.get(key)?) };
        let last_applied = get(APPLIED)?.map(|b| codec::decode(&b)).transpose()?.flatten();
        let membership = get(MEMBERSHIP)?.map(|b| codec::decode(&b)).transpose()?.unwrap_or_default();
        let snapshot = recorded_snapshot(tree)?;
        let mut records = Vec::new();
        for item in tree.scan_prefix([IDEMPOTENCY_PREFIX]) {
            let (key, value) = item?;
            records.push((codec::decode(&key[1..])?, codec::decode(&value)?));
        }
        let idempotency = Table::from_records(records);
        Ok(StateMachine {
            ledger,
            last_applied,
            membership,
            snapshot,
            idempotency,
            dir: dir.to_path_buf(),
            files: Arc::new(Mutex::new(())),
            interrupt_after: None,
        })
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Test hook: installs stop with an error after `batches` sled batches, leaving what a
    /// crash at that point leaves. Reopen the storage to see it finished.
    #[doc(hidden)]
    pub fn interrupt_installs_after(&mut self, batches: usize) {
        self.interrupt_after = Some(batches);
    }
}

/// A checkpoint whose root or head is not the ledger's at its size is refused here, where the
/// Merkle tree is; the model judges the rest (signer, signature, order).
fn refuse_checkpoint(
    ledger: &Ledger,
    batch: &LedgerBatch,
    command: &Command,
) -> Result<Option<Rejection>, LedgerError> {
    let command = match command {
        Command::Idempotent { command, .. } => command.as_ref(),
        other => other,
    };
    let Command::Checkpoint(checkpoint) = command else {
        return Ok(None);
    };
    if batch.tree_matches(ledger.tree(), checkpoint.tree_size, &checkpoint.root, &checkpoint.head)? {
        return Ok(None);
    }
    Ok(Some(Rejection::new(
        RejectCode::InvalidArgument,
        format!("the root or head is not the ledger's at size {}", checkpoint.tree_size),
    )))
}

/// Applies one proposal of the log entry at `index`, staging its writes in `batch`.
fn apply_proposal(
    ledger: &Ledger,
    idempotency: &mut Table,
    state: &mut State,
    batch: &mut LedgerBatch,
    proposal: &Proposal,
    index: u64,
) -> Result<Outcome, StorageError<NodeId>> {
    if let Some(refused) = refuse_checkpoint(ledger, batch, &proposal.command).map_err(write_err)? {
        return Ok(Outcome::Rejected(refused));
    }
    let (outcome, new_entries, change) = idempotency.execute(state, proposal, index);
    for new in &new_entries {
        batch.put(new).map_err(write_err)?;
    }
    for key in &change.removed {
        batch.sled_batch().remove(idempotency_key(key)?);
    }
    if let Some((key, record)) = &change.inserted {
        let record = codec::encode(record).map_err(write_err)?;
        batch.sled_batch().insert(idempotency_key(key)?, record);
    }
    Ok(outcome)
}

/// Run on a data dir before its ledger is opened: finishes a snapshot install a crash
/// interrupted (the stored ledger may be half-written until then), and removes every snapshot
/// file (a received one is needed only until its install is finished).
pub(crate) fn recover(db: &sled::Db, dir: &Path) -> Result<(), LedgerError> {
    std::fs::create_dir_all(dir)?;
    let tree = db.open_tree("ledger")?;
    if let Some(bytes) = tree.get(INSTALLING)? {
        let marker: Installing = codec::decode(&bytes)?;
        tracing::warn!(snapshot = %marker.record.meta.snapshot_id, "finishing an interrupted snapshot install");
        write_from_file(&tree, &dir.join(&marker.file), marker, None)?;
        db.flush()?;
    }
    // Snapshots are streamed from the ledger; a received file is kept only until its install
    // is finished.
    snapshot::remove_others(dir, &[], true)?;
    Ok(())
}

/// Does the data dir hold an install that [`recover`] has not finished yet?
pub(crate) fn install_pending(db: &sled::Db) -> Result<bool, LedgerError> {
    Ok(db.open_tree("ledger")?.contains_key(INSTALLING)?)
}

/// Where one idempotency record is stored: `i` + its encoded key.
fn stored_record_key(key: &RecordKey) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![IDEMPOTENCY_PREFIX];
    out.extend(codec::encode(key)?);
    Ok(out)
}

/// The last stored event's seq and hash.
fn stored_head(tree: &sled::Tree) -> Result<ChainHead, LedgerError> {
    Ok(match event_blocks::last(tree)? {
        None => ChainHead::EMPTY,
        Some(entry) => ChainHead { seq: entry.event.seq, hash: entry.event.hash },
    })
}

/// Counts sled batches for the test hook that interrupts installs.
struct Batches {
    applied: usize,
    stop_after: Option<usize>,
}

impl Batches {
    fn apply(&mut self, tree: &sled::Tree, batch: sled::Batch) -> Result<(), LedgerError> {
        if self.stop_after.is_some_and(|stop| self.applied >= stop) {
            return Err(LedgerError::Snapshot("install interrupted by the test hook".into()));
        }
        tree.apply_batch(batch)?;
        self.applied += 1;
        Ok(())
    }
}

/// Removes every record under `prefixes`, a bounded batch at a time.
fn remove_prefixes(tree: &sled::Tree, prefixes: &[u8], batches: &mut Batches) -> Result<(), LedgerError> {
    for &prefix in prefixes {
        loop {
            let mut batch = sled::Batch::default();
            let mut removed = 0;
            for item in tree.scan_prefix([prefix]).take(INSTALL_BATCH) {
                batch.remove(item?.0);
                removed += 1;
            }
            if removed == 0 {
                break;
            }
            batches.apply(tree, batch)?;
        }
    }
    Ok(())
}

/// Writes the checked snapshot file `path` into the ledger tree as `marker` says, in bounded
/// batches; the last one records the snapshot and removes the marker. Redoing it after a crash
/// at any point ends the same: events already written are a prefix of the file's and are kept,
/// everything else is written again. Returns the tree's new right edge.
fn write_from_file(
    tree: &sled::Tree,
    path: &Path,
    mut marker: Installing,
    stop_after: Option<usize>,
) -> Result<Frontier, LedgerError> {
    let mut batches = Batches { applied: 0, stop_after };
    if marker.replace_all {
        let derived = [KEY_INDEX_PREFIX, ACCOUNT_INDEX_PREFIX, TREE_PREFIX];
        remove_prefixes(tree, &[&[BLOCK_PREFIX, LEGACY_EVENT_PREFIX][..], &derived].concat(), &mut batches)?;
        marker.replace_all = false;
        tree.insert(INSTALLING, codec::encode(&marker)?)?;
    }
    remove_prefixes(tree, &[IDEMPOTENCY_PREFIX], &mut batches)?;
    // Every batch writes events and the tree nodes they complete together, so the tree of the
    // kept events is whole.
    let kept = stored_head(tree)?;
    let mut reader = snapshot::Reader::open(path)?;
    if reader.header().head.seq < kept.seq {
        return Err(LedgerError::Damaged {
            seq: kept.seq,
            why: "the stored ledger is longer than the snapshot".into(),
        });
    }
    let mut batch = sled::Batch::default();
    let mut in_batch = 0;
    while let Some((key, record)) = reader.idempotency()? {
        batch.insert(stored_record_key(&key)?, codec::encode(&record)?);
        in_batch += 1;
        if in_batch == INSTALL_BATCH {
            batches.apply(tree, std::mem::take(&mut batch))?;
            in_batch = 0;
        }
    }
    batches.apply(tree, batch)?;

    let mut batch = LedgerBatch::continuing_stored(tree, Frontier::from_source(&StoredNodes(tree), kept.seq)?)?;
    let mut in_batch = 0;
    while let Some((seq, bytes)) = reader.entry_bytes()? {
        if seq < kept.seq {
            continue;
        }
        let entry: LedgerEntry = codec::decode(bytes)?;
        if seq == kept.seq {
            if entry.event.hash != kept.hash {
                return Err(LedgerError::Damaged {
                    seq,
                    why: "the stored ledger is not a prefix of the snapshot".into(),
                });
            }
            continue;
        }
        batch.put(&entry)?;
        in_batch += 1;
        if in_batch == INSTALL_BATCH {
            let (full, growth) = batch.finish();
            batches.apply(tree, full)?;
            batch = LedgerBatch::continuing_stored(tree, growth.frontier)?;
            in_batch = 0;
        }
    }
    let (mut last, growth) = batch.finish();
    let record = &marker.record;
    last.insert(APPLIED, codec::encode(&record.meta.last_log_id)?);
    last.insert(MEMBERSHIP, codec::encode(&record.meta.last_membership)?);
    last.insert(SNAPSHOT, codec::encode(record)?);
    last.remove(SNAPSHOT_FILE);
    last.remove(INSTALLING);
    batches.apply(tree, last)?;
    Ok(growth.frontier)
}

/// What an install leaves for memory.
struct Installed {
    state: State,
    frontier: Frontier,
    record: SnapshotRecord,
}

/// The blocking part of an install: check the received file, keep it, mark the install, write
/// it, record it. Nothing is changed unless the whole file checks out.
fn install_file(
    ledger: &Ledger,
    dir: &Path,
    files: &Mutex<()>,
    received: &Path,
    meta: &SnapshotMeta<NodeId, Node>,
    stop_after: Option<usize>,
) -> Result<Installed, LedgerError> {
    // Received into our dir (`install_snapshot` sees to it), so ours to keep.
    let temp = received.to_path_buf();
    let tree = ledger.tree();
    let started = std::time::Instant::now();
    let checked = match snapshot::check(&temp, stored_head(tree)?) {
        Ok(checked) => checked,
        Err(e) => {
            // Refused: nothing was changed, and the file is of no use.
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
    };
    let _files = lock(files);
    let file = snapshot::publish(dir, &temp, &meta.snapshot_id)?;
    let record = SnapshotRecord { meta: meta.clone(), head_seq: checked.head.seq, idempotency: checked.idempotency };
    let marker = Installing { file: file.clone(), replace_all: !checked.extends_local, record: record.clone() };
    // On disk before the first change: from here on, a restart finishes the install.
    tree.insert(INSTALLING, codec::encode(&marker)?)?;
    ledger.db().flush()?;
    let checked_in = started.elapsed();
    let kept = if marker.replace_all { 0 } else { stored_head(tree)?.seq };
    let frontier = write_from_file(tree, &dir.join(&file), marker, stop_after)?;
    ledger.db().flush()?;
    tracing::info!(
        snapshot = %meta.snapshot_id,
        kept,
        written = checked.head.seq - kept,
        check_ms = checked_in.as_millis() as u64,
        write_ms = (started.elapsed() - checked_in).as_millis() as u64,
        "wrote snapshot into the ledger"
    );
    // Installed: the ledger holds it now, and snapshots are streamed from there.
    if let Err(e) = snapshot::remove_others(dir, &[], false) {
        tracing::warn!(error = %e, "cannot remove snapshot files");
    }
    Ok(Installed { state: checked.state, frontier, record })
}

/// Records `record` as the current snapshot, durably (the log is purged behind it once it is
/// reported), unless an install recorded a newer one meanwhile. Nothing is copied: a snapshot
/// is streamed from the ledger when a node needs one. Blocking.
fn record_snapshot(ledger: &Ledger, dir: &Path, files: &Mutex<()>, record: &SnapshotRecord) -> Result<(), LedgerError> {
    let _files = lock(files);
    let tree = ledger.read_tree()?;
    if recorded_snapshot(tree)?.is_some_and(|c| c.meta.last_log_id > record.meta.last_log_id) {
        return Ok(());
    }
    let mut batch = sled::Batch::default();
    batch.insert(SNAPSHOT, codec::encode(record)?);
    // Older versions kept each snapshot as a file and named it here.
    batch.remove(SNAPSHOT_FILE);
    tree.apply_batch(batch)?;
    ledger.db().flush()?;
    tracing::info!(snapshot = %record.meta.snapshot_id, ledger_seq = record.head_seq, "recorded snapshot");
    if let Err(e) = snapshot::remove_others(dir, &[], false) {
        tracing::warn!(error = %e, "cannot remove old snapshot files");
    }
    Ok(())
}

/// The snapshot recorded last (by a build or an install).
fn recorded_snapshot(tree: &sled::Tree) -> Result<Option<SnapshotRecord>, LedgerError> {
    Ok(tree.get(SNAPSHOT)?.map(|b| codec::decode(&b)).transpose()?)
}

/// The snapshot `record` describes, streamed from the ledger (blocking: it reads where each
/// event block starts, and writes what applies staged so the stream finds it in sled).
fn stream_snapshot(ledger: &Ledger, record: SnapshotRecord) -> Result<Snapshot<TypeConfig>, LedgerError> {
    let data = SnapshotFile::from_ledger(ledger.read_tree()?, record.head_seq, &record.idempotency)?;
    Ok(Snapshot { meta: record.meta, snapshot: Box::new(data) })
}

/// Where one idempotency record is stored: `i` + its encoded key.
fn idempotency_key(key: &RecordKey) -> Result<Vec<u8>, StorageError<NodeId>> {
    stored_record_key(key).map_err(write_err)
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, Node>), StorageError<NodeId>> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<Outcome>>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let StateMachine { ledger, last_applied, membership, idempotency, .. } = &mut *self;
        let mut outcomes = Vec::new();
        for entry in entries {
            // The state is locked per entry, not per apply: a verification waits behind one
            // entry's events at most (a use report is one small entry), never a run of them.
            // Lock order: the state, then the staged batch (a reader holding the state may write
            // the staged batch; nothing takes the state while holding the batch).
            let mut state = ledger.state_mut();
            let mut pending = ledger.pending();
            let staged = pending.get_or_insert_with(|| Pending::new(LedgerBatch::continuing(ledger)));
            let head_before = state.head().seq;
            let log_id = entry.log_id;
            let apply_entry = || -> Result<Vec<Outcome>, StorageError<NodeId>> {
                let entry_outcomes = match entry.payload {
                    EntryPayload::Blank => vec![Outcome::Internal],
                    EntryPayload::Membership(change) => {
                        *membership = StoredMembership::new(Some(log_id), change);
                        let encoded = codec::encode(&*membership).map_err(write_err)?;
                        staged.batch.sled_batch().insert(MEMBERSHIP, encoded);
                        vec![Outcome::Internal]
                    }
                    EntryPayload::Normal(Proposals(proposals)) => {
                        let mut entry_outcomes = Vec::with_capacity(proposals.len());
                        for proposal in &proposals {
                            let batch = &mut staged.batch;
                            let outcome =
                                apply_proposal(ledger, idempotency, &mut state, batch, proposal, log_id.index)?;
                            entry_outcomes.push(outcome);
                        }
                        entry_outcomes
                    }
                };
                // A staged batch always ends at an entry's end, with that entry as `last_applied`,
                // whoever writes it: never half an entry.
                *last_applied = Some(log_id);
                staged.batch.sled_batch().insert(APPLIED, codec::encode(&*last_applied).map_err(write_err)?);
                Ok(entry_outcomes)
            };
            match apply_entry() {
                Ok(entry_outcomes) => outcomes.push(entry_outcomes),
                Err(e) => {
                    // Half an apply must never be written; openraft stops this node on the error,
                    // and a restart applies again from the last written batch.
                    *pending = None;
                    return Err(e);
                }
            }
            staged.staged((state.head().seq - head_before) as usize);
            ledger.grow_tree(staged.batch.growth());
            // Everything in memory is updated: verifications on other threads need not wait for
            // the write below (milliseconds of sled inserts).
            drop(state);
            if staged.due() {
                write_staged(ledger.tree(), &mut pending).map_err(write_err)?;
            }
        }
        // No flush: these entries are durable in the Raft log. A crash before sled's next
        // flush, or before a staged batch is written, leaves the ledger and `last_applied` at an
        // earlier batch (one sled batch is atomic), and openraft applies the same entries again —
        // deterministically, to the same bytes. The log is purged only after the staged batch
        // is written and sled flushed (`LogStore::purge`).
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        // Captured between applies, so meta and ledger head describe the same moment.
        SnapshotBuilder {
            ledger: self.ledger.clone(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            head_seq: self.ledger.state().head().seq,
            idempotency: self.idempotency.records().map(|(k, r)| (k.clone(), r.clone())).collect(),
            dir: self.dir.clone(),
            files: self.files.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotFile>, StorageError<NodeId>> {
        // A transfer cut off and started again would otherwise leave a whole file behind.
        snapshot::remove_abandoned_receives(&self.dir).map_err(write_err)?;
        // Chunks go straight to disk.
        Ok(Box::new(SnapshotFile::create_receiving(&self.dir).await.map_err(write_err)?))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Node>,
        mut snapshot: Box<SnapshotFile>,
    ) -> Result<(), StorageError<NodeId>> {
        snapshot.sync().await.map_err(|e| snapshot_write_err(meta, e))?;
        // The install writes sled directly, over whatever applies staged before it.
        self.ledger.write_pending().map_err(write_err)?;
        let received = match snapshot.path() {
            Some(path) if snapshot::is_receiving(&self.dir, path) => path.to_path_buf(),
            // Anything else — another node's snapshot streamed from its ledger (openraft's
            // storage suite hands the leader's over), or a file elsewhere — is received into a
            // file of ours first, as a transfer would.
            _ => {
                let mut file = SnapshotFile::create_receiving(&self.dir).await.map_err(write_err)?;
                tokio::io::AsyncSeekExt::seek(&mut *snapshot, std::io::SeekFrom::Start(0))
                    .await
                    .map_err(|e| snapshot_read_err(meta, e.into()))?;
                tokio::io::copy(&mut *snapshot, &mut file).await.map_err(|e| snapshot_write_err(meta, e))?;
                file.sync().await.map_err(|e| snapshot_write_err(meta, e))?;
                file.path().expect("a receiving file has a path").to_path_buf()
            }
        };
        drop(snapshot);
        let (ledger, dir, files, owned_meta) =
            (self.ledger.clone(), self.dir.clone(), self.files.clone(), meta.clone());
        let stop_after = self.interrupt_after;
        // Reading and writing the whole ledger: off the async threads.
        let installed = tokio::task::spawn_blocking(move || {
            install_file(&ledger, &dir, &files, &received, &owned_meta, stop_after)
        })
        .await
        .map_err(join_err)?
        .map_err(|e| snapshot_read_err(meta, e))?;

        let head_seq = installed.record.head_seq;
        self.ledger.replace_state(installed.state);
        self.ledger.reload_tree(installed.frontier).map_err(read_err)?;
        self.idempotency = Table::from_records(installed.record.idempotency.iter().cloned());
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.snapshot = Some(installed.record);
        tracing::info!(snapshot = %meta.snapshot_id, ledger_seq = head_seq, "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        // Snapshots a builder made are recorded in sled; pick up the latest.
        let recorded = recorded_snapshot(self.ledger.tree()).map_err(read_err)?;
        if recorded.is_some() {
            self.snapshot = recorded;
        }
        let Some(record) = self.snapshot.clone() else {
            return Ok(None);
        };
        let ledger = self.ledger.clone();
        let snapshot = tokio::task::spawn_blocking(move || stream_snapshot(&ledger, record)).await.map_err(join_err)?;
        Ok(Some(snapshot.map_err(read_err)?))
    }
}

/// Builds a snapshot of the moment it was created at, while applies go on.
pub struct SnapshotBuilder {
    ledger: Ledger,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, Node>,
    head_seq: u64,
    idempotency: Vec<(RecordKey, Record)>,
    dir: PathBuf,
    files: Arc<Mutex<()>>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let snapshot_id = match self.last_applied {
            Some(log_id) => format!("{}-{}-{}", log_id.leader_id, log_id.index, self.head_seq),
            None => format!("empty-{}", self.head_seq),
        };
        let meta =
            SnapshotMeta { last_log_id: self.last_applied, last_membership: self.membership.clone(), snapshot_id };
        let record = SnapshotRecord { meta, head_seq: self.head_seq, idempotency: self.idempotency.clone() };
        // The ledger is append-only, so its events `1..=head_seq` stay the ones of that moment:
        // recording the snapshot is all a build does, and it is streamed from the ledger.
        let (ledger, dir, files) = (self.ledger.clone(), self.dir.clone(), self.files.clone());
        let saver = ledger.clone();
        let snapshot = tokio::task::spawn_blocking(move || {
            record_snapshot(&ledger, &dir, &files, &record)?;
            stream_snapshot(&ledger, record)
        })
        .await
        .map_err(join_err)?;
        // The state is saved with a snapshot too (not only at shutdown), so that a start after a
        // crash replays the events since the last snapshot rather than the whole ledger. Apart
        // from the build: it takes a second at a million keys and the build need not wait.
        tokio::task::spawn_blocking(move || match saver.save_state_if_due() {
            Ok(true) => tracing::info!(seq = saver.state().head().seq, "state saved"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot save the state; a restart replays more of the ledger"),
        });
        snapshot.map_err(write_err)
    }
}
