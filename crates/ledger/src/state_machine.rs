//! The openraft state machine: applies committed proposals in log order.
//!
//! Per batch of committed entries: the in-memory [`State`] decides and evolves under its
//! write lock, the new ledger entries and `last_applied`/membership go to sled in one atomic
//! batch, then one flush. A snapshot is the whole ledger plus that bookkeeping, so a node that
//! joins after log compaction still ends with the identical, complete history.

use std::io::Cursor;

use keyledger_model::idempotency::{Record, RecordKey, Table};
use keyledger_model::merkle::Frontier;
use keyledger_model::{ChainHead, Command, LedgerEntry, Outcome, Proposal, RejectCode, Rejection, State};
use openraft::storage::RaftStateMachine;
use openraft::{
    Entry, EntryPayload, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::ledger::{check_link, remove_derived, Ledger, LedgerError, EVENT_PREFIX};
use crate::merkle_store::LedgerBatch;
use crate::{Node, NodeId, Proposals, TypeConfig};

const APPLIED: &[u8] = b"m:applied";
const MEMBERSHIP: &[u8] = b"m:membership";
const SNAPSHOT: &[u8] = b"m:snapshot";
/// Prefix of the idempotency records in the ledger tree (beside `e` events and `m:` meta).
const IDEMPOTENCY_PREFIX: u8 = b'i';

/// What a snapshot carries besides openraft's meta: the whole ledger, and the table of
/// idempotent requests (state-machine state that is not ledger history).
#[derive(Serialize, Deserialize)]
struct SnapshotPayload {
    head: ChainHead,
    entries: Vec<LedgerEntry>,
    idempotency: Vec<(RecordKey, Record)>,
}

/// The last snapshot we built or installed: its meta and the ledger head it covers.
/// The data itself is re-read from the (append-only) ledger on demand.
#[derive(Clone, Serialize, Deserialize)]
struct SnapshotRecord {
    meta: SnapshotMeta<NodeId, Node>,
    head_seq: u64,
    /// The idempotency table as of the snapshot (it changes, unlike the ledger prefix).
    idempotency: Vec<(RecordKey, Record)>,
}

pub struct StateMachine {
    ledger: Ledger,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, Node>,
    snapshot: Option<SnapshotRecord>,
    idempotency: Table,
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(&e).into()
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(&e).into()
}

impl StateMachine {
    /// Opens the state machine over `ledger`, restoring `last_applied` and membership.
    pub fn open(ledger: Ledger) -> Result<StateMachine, LedgerError> {
        let tree = ledger.tree();
        let get = |key: &[u8]| -> Result<Option<sled::IVec>, LedgerError> { Ok(tree.get(key)?) };
        let last_applied = get(APPLIED)?.map(|b| codec::decode(&b)).transpose()?.flatten();
        let membership = get(MEMBERSHIP)?.map(|b| codec::decode(&b)).transpose()?.unwrap_or_default();
        let snapshot = get(SNAPSHOT)?.map(|b| codec::decode(&b)).transpose()?;
        let mut records = Vec::new();
        for item in tree.scan_prefix([IDEMPOTENCY_PREFIX]) {
            let (key, value) = item?;
            records.push((codec::decode(&key[1..])?, codec::decode(&value)?));
        }
        let idempotency = Table::from_records(records);
        Ok(StateMachine { ledger, last_applied, membership, snapshot, idempotency })
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
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

/// The snapshot bytes for the ledger up to `head_seq`. The ledger is append-only, so events
/// `1..=head_seq` are the same whenever they are read.
fn snapshot_data(
    ledger: &Ledger,
    head_seq: u64,
    idempotency: Vec<(RecordKey, Record)>,
) -> Result<Vec<u8>, StorageError<NodeId>> {
    let entries = ledger.entries(1, head_seq).collect::<Result<Vec<_>, _>>().map_err(read_err)?;
    let head = entries.last().map_or(ChainHead::EMPTY, |e| ChainHead { seq: e.event.seq, hash: e.event.hash });
    codec::encode(&SnapshotPayload { head, entries, idempotency }).map_err(read_err)
}

/// Where one idempotency record is stored: `i` + its encoded key.
fn idempotency_key(key: &RecordKey) -> Result<Vec<u8>, StorageError<NodeId>> {
    let mut out = vec![IDEMPOTENCY_PREFIX];
    out.extend(codec::encode(key).map_err(write_err)?);
    Ok(out)
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
        let mut batch = LedgerBatch::continuing(&self.ledger);
        let mut outcomes = Vec::new();
        let mut membership_changed = false;
        {
            let StateMachine { ledger, last_applied, membership, idempotency, .. } = &mut *self;
            let mut state = ledger.state_mut();
            for entry in entries {
                *last_applied = Some(entry.log_id);
                let entry_outcomes = match entry.payload {
                    EntryPayload::Blank => vec![Outcome::Internal],
                    EntryPayload::Membership(change) => {
                        *membership = StoredMembership::new(Some(entry.log_id), change);
                        membership_changed = true;
                        vec![Outcome::Internal]
                    }
                    EntryPayload::Normal(Proposals(proposals)) => {
                        let mut entry_outcomes = Vec::with_capacity(proposals.len());
                        for proposal in &proposals {
                            let index = entry.log_id.index;
                            let outcome = apply_proposal(ledger, idempotency, &mut state, &mut batch, proposal, index)?;
                            entry_outcomes.push(outcome);
                        }
                        entry_outcomes
                    }
                };
                outcomes.push(entry_outcomes);
            }
        }
        let (mut batch, growth) = batch.finish();
        batch.insert(APPLIED, codec::encode(&self.last_applied).map_err(write_err)?);
        if membership_changed {
            batch.insert(MEMBERSHIP, codec::encode(&self.membership).map_err(write_err)?);
        }
        self.ledger.tree().apply_batch(batch).map_err(write_err)?;
        self.ledger.grow_tree(growth);
        // No flush here: these entries are already durable in the Raft log. A crash before
        // sled's next flush leaves the ledger and `last_applied` at an earlier batch (one sled
        // batch is atomic), and openraft applies the same entries again — deterministically, to
        // the same bytes. The log is purged only behind a snapshot, which is flushed first.
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
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let signature = meta.signature();
        let snapshot_err =
            |e: LedgerError| StorageError::from(StorageIOError::read_snapshot(Some(signature.clone()), &e));
        let payload: SnapshotPayload =
            codec::decode(snapshot.get_ref()).map_err(|e| snapshot_err(LedgerError::Codec(e)))?;
        // Check the whole chain before touching anything: a damaged transfer is refused.
        let mut state = State::new();
        for entry in &payload.entries {
            check_link(&state, entry).map_err(snapshot_err)?;
            state.evolve(entry);
        }
        if state.head() != payload.head {
            let e = LedgerError::Damaged { seq: payload.head.seq, why: "snapshot head mismatch".into() };
            return Err(snapshot_err(e));
        }

        let tree = self.ledger.tree();
        let mut batch = LedgerBatch::new(Frontier::new());
        remove_derived(tree, batch.sled_batch()).map_err(write_err)?;
        for prefix in [EVENT_PREFIX, IDEMPOTENCY_PREFIX] {
            for item in tree.scan_prefix([prefix]) {
                batch.sled_batch().remove(item.map_err(write_err)?.0);
            }
        }
        // Removals first, then the snapshot's entries: a batch applies in order.
        for entry in &payload.entries {
            batch.put(entry).map_err(write_err)?;
        }
        let (mut batch, growth) = batch.finish();
        for (key, record) in &payload.idempotency {
            batch.insert(idempotency_key(key)?, codec::encode(record).map_err(write_err)?);
        }
        let record =
            SnapshotRecord { meta: meta.clone(), head_seq: payload.head.seq, idempotency: payload.idempotency.clone() };
        batch.insert(APPLIED, codec::encode(&meta.last_log_id).map_err(write_err)?);
        batch.insert(MEMBERSHIP, codec::encode(&meta.last_membership).map_err(write_err)?);
        batch.insert(SNAPSHOT, codec::encode(&record).map_err(write_err)?);
        tree.apply_batch(batch).map_err(write_err)?;
        self.ledger.db().flush_async().await.map_err(write_err)?;

        self.ledger.replace_state(state);
        self.ledger.replace_tree(growth);
        self.idempotency = Table::from_records(payload.idempotency);
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.snapshot = Some(record);
        tracing::info!(snapshot = %meta.snapshot_id, ledger_seq = payload.head.seq, "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        // Snapshots written by a builder are recorded in sled; pick up the latest.
        if let Some(bytes) = self.ledger.tree().get(SNAPSHOT).map_err(read_err)? {
            self.snapshot = Some(codec::decode(&bytes).map_err(read_err)?);
        }
        let Some(record) = self.snapshot.clone() else {
            return Ok(None);
        };
        let data = snapshot_data(&self.ledger, record.head_seq, record.idempotency.clone())?;
        Ok(Some(Snapshot { meta: record.meta, snapshot: Box::new(Cursor::new(data)) }))
    }
}

/// Builds a snapshot of the moment it was created at, while applies go on.
pub struct SnapshotBuilder {
    ledger: Ledger,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, Node>,
    head_seq: u64,
    idempotency: Vec<(RecordKey, Record)>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let snapshot_id = match self.last_applied {
            Some(log_id) => format!("{}-{}-{}", log_id.leader_id, log_id.index, self.head_seq),
            None => format!("empty-{}", self.head_seq),
        };
        let meta =
            SnapshotMeta { last_log_id: self.last_applied, last_membership: self.membership.clone(), snapshot_id };
        let record =
            SnapshotRecord { meta: meta.clone(), head_seq: self.head_seq, idempotency: self.idempotency.clone() };
        let data = snapshot_data(&self.ledger, self.head_seq, self.idempotency.clone())?;
        let tree = self.ledger.tree();
        tree.insert(SNAPSHOT, codec::encode(&record).map_err(write_err)?).map_err(write_err)?;
        self.ledger.db().flush_async().await.map_err(write_err)?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}
