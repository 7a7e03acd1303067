//! keyledger's storage: the Raft log (segment files), the state machine on sled, the
//! hash-chained ledger, and the in-memory projections built from it.
//!
//! Main types: [`TypeConfig`] (openraft's types for keyledger: a [`Proposal`] in, an
//! [`Outcome`] out), [`LogStore`] (the Raft log), [`StateMachine`] (apply + snapshots) and
//! [`Ledger`] (the stored events and the shared [`keyledger_model::State`] readers use).
//!
//! Design decision: the Raft log is disposable (compacted after snapshots), the ledger is not.
//! Snapshots therefore carry the entire ledger, never a summary of it, so every node —
//! including one that joined long after compaction — can export the complete history.

// openraft's `StorageError` is what its storage traits return, large or not.
#![allow(clippy::result_large_err)]

pub mod backup;
pub mod codec;
pub mod data_format;
mod error;
mod event_blocks;
#[doc(hidden)]
pub mod fuzzing;
mod indexes;
mod ledger;
mod log_migration;
mod log_store;
mod merkle_store;
mod offline;
mod pending;
mod records;
mod replay;
pub mod restore;
pub mod saved_state;
mod snapshot;
mod state_machine;
mod wal;

use std::path::Path;
use std::sync::Arc;

pub use error::LedgerError;
pub use keyledger_model::{Outcome, Proposal};
pub use ledger::Ledger;
pub use log_store::{LogReader, LogStore};
pub use offline::{open_ledger, rebuild, Rebuilt};
pub use pending::PENDING_AGE;
pub use snapshot::SnapshotFile;
pub use state_machine::{SnapshotBuilder, StateMachine};

/// Node ids are integers; the first node of a cluster is 1.
pub type NodeId = u64;
/// A node is reached at an HTTP address.
pub type Node = openraft::BasicNode;

/// What one Raft log entry carries: the proposals the leader gathered while earlier writes were
/// in flight, applied in order exactly as if each had an entry of its own. Batching spreads
/// Raft's per-entry cost (task hand-offs, an append, a replication message) over many writes;
/// the writes of one entry share its log index.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Proposals(pub Vec<Proposal>);

impl From<Proposal> for Proposals {
    fn from(proposal: Proposal) -> Proposals {
        Proposals(vec![proposal])
    }
}

openraft::declare_raft_types!(
    /// openraft's types for keyledger: a batch of proposals in, one outcome per proposal out.
    pub TypeConfig:
        D = Proposals,
        R = Vec<Outcome>,
        NodeId = NodeId,
        Node = Node,
        SnapshotData = SnapshotFile,
);

/// Everything one node stores, opened from its data dir.
pub struct Storage {
    pub log_store: LogStore,
    pub state_machine: StateMachine,
    pub ledger: Ledger,
}

/// How a node's storage is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageOptions {
    /// Bytes of ledger pages sled keeps in memory. sled's own default is 1 GiB, which a
    /// node with a large ledger fills: bounded, a node's memory is the state plus this.
    pub cache_bytes: u64,
}

impl StorageOptions {
    /// Reads of the ledger (histories, exports, proofs) are served from the OS page cache
    /// beyond this; writes and the state in memory do not depend on it.
    pub const DEFAULT_CACHE_BYTES: u64 = 128 << 20;
}

impl Default for StorageOptions {
    fn default() -> StorageOptions {
        StorageOptions { cache_bytes: StorageOptions::DEFAULT_CACHE_BYTES }
    }
}

impl Storage {
    /// Opens (or creates) the sled database in `dir` and rebuilds the in-memory state.
    pub fn open(dir: &Path) -> Result<Storage, LedgerError> {
        Storage::open_with(dir, StorageOptions::default())
    }

    /// [`Storage::open`] with `options`.
    pub fn open_with(dir: &Path, options: StorageOptions) -> Result<Storage, LedgerError> {
        let db = open_db_with(dir, options)?;
        // Before the ledger is read: an interrupted snapshot install leaves it half-written.
        let snapshots = dir.join(snapshot::DIR);
        state_machine::recover(&db, &snapshots)?;
        let ledger = Ledger::open_saving(&db, saved_state::path_in(dir))?;
        let state_machine = StateMachine::open(ledger.clone(), &snapshots)?;
        let flushed = ledger.clone();
        let flush_state: log_store::FlushState = Arc::new(move || flushed.persist().map_err(std::io::Error::other));
        let log_store = LogStore::open(dir, &db, flush_state).map_err(LedgerError::RaftLog)?;
        Ok(Storage { log_store, state_machine, ledger })
    }
}

/// The sled database of the data dir `dir`. A running node holds it locked; a handle this
/// process just dropped may hold the lock a moment longer (sled's flusher thread), so a lock
/// that is taken is retried briefly.
fn open_db(dir: &Path) -> Result<sled::Db, LedgerError> {
    open_db_with(dir, StorageOptions::default())
}

fn open_db_with(dir: &Path, options: StorageOptions) -> Result<sled::Db, LedgerError> {
    data_format::refuse_later(dir)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        match sled::Config::new().path(dir.join("db")).cache_capacity(options.cache_bytes).open() {
            // sled reports a taken lock as an `Other` error with this text.
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                if std::time::Instant::now() >= deadline {
                    return Err(sled::Error::Io(e).into());
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            opened => {
                let db = opened?;
                // Before anything reads the ledger: older versions stored one key per event.
                event_blocks::move_legacy_events(&db)?;
                data_format::stamp(dir)?;
                return Ok(db);
            }
        }
    }
}
