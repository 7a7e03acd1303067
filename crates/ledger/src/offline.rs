//! Offline tools' access to a data dir no node is running on (a stopped node's, or a copy):
//! opening its ledger for replay and audits, and rebuilding everything derived from its events.
//! Neither ever creates a database, and neither finishes what a node left half-done.

use std::path::Path;

use keyledger_model::merkle::{Frontier, TreeHash};
use keyledger_model::State;

use crate::ledger::Ledger;
use crate::merkle_store::LedgerBatch;
use crate::records::remove_derived;
use crate::replay::rebuild_state;
use crate::{open_db, state_machine, LedgerError};

/// The ledger of a data dir that no node is running on (a stopped node's, or a copy), for
/// offline replay and audits. Fails if the dir holds no database.
pub fn open_ledger(dir: &Path) -> Result<Ledger, LedgerError> {
    Ledger::open(&open_existing_db(dir)?)
}

/// Rebuilds everything derived from the events of a stopped node's data dir — the per-key and
/// per-account indexes and the Merkle tree — after checking the whole chain. One atomic batch.
pub fn rebuild(dir: &Path) -> Result<Rebuilt, LedgerError> {
    rebuild_derived(&open_existing_db(dir)?)
}

/// The database of a data dir that must already hold one (offline tools never create one).
fn open_existing_db(dir: &Path) -> Result<sled::Db, LedgerError> {
    if !dir.join("db").is_dir() {
        return Err(LedgerError::OutOfRange(format!("{} holds no keyledger database", dir.display())));
    }
    let db = open_db(dir)?;
    // Half-written until the node finishes it; offline tools change nothing themselves.
    if state_machine::install_pending(&db)? {
        return Err(LedgerError::OutOfRange(format!(
            "{} holds an interrupted snapshot install: start the node once to finish it",
            dir.display()
        )));
    }
    Ok(db)
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
fn rebuild_derived(db: &sled::Db) -> Result<Rebuilt, LedgerError> {
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
