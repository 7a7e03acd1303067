//! Writing a backup into a new data dir (`keyledger admin restore`): the ledger's events as
//! stored, with the indexes, the Merkle tree and the saved state built from them, and a marker
//! ([`RESTORE_MARKER`]) that the first start reads to found a new cluster on it.
//!
//! There is no Raft state in the dir: the node started on it founds a new cluster as a new data
//! dir does (a fresh cluster secret and signing key), and before anyone may join it snapshots
//! its state and drops its log (`keyledger_cluster`), so a joining node receives the restored
//! ledger by snapshot, never the new cluster's log on top of an empty ledger.

use std::io::Read;
use std::path::Path;

use keyledger_model::merkle::{Frontier, TreeHash};
use keyledger_model::{ChainHead, LedgerEntry, State};

use crate::backup::BackupReader;
use crate::merkle_store::{move_to_current_layout, LedgerBatch};
use crate::replay::check_link;
use crate::{open_db, saved_state, LedgerError};

/// In a restored data dir until its first start has made it the seed of a new cluster: the
/// node id it was restored for, and the backup's head.
pub const RESTORE_MARKER: &str = "restored-from-backup";
/// Events per sled batch (as a snapshot install writes them: sled's memory grows with a batch).
const RESTORE_BATCH: usize = 128;

/// What a restore wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub events: u64,
    pub head: ChainHead,
    pub merkle_root: TreeHash,
}

/// Refuses a `dir` that exists and holds anything (a restore never mixes with other data).
pub fn check_empty_dir(dir: &Path) -> Result<(), LedgerError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(_) => {
                Err(LedgerError::OutOfRange(format!("{} is not empty: restore only into a new dir", dir.display())))
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LedgerError::Backup(format!("cannot read {}: {e}", dir.display()))),
    }
}

/// Writes the backup `reader` reads into the new data dir `dir` for node `node_id`, handing each
/// event to `each` (the caller's own checks) before it is written. `dir` must not exist or be
/// empty; on any failure what was written is removed again, so `dir` is left as it was found.
pub fn restore_into<R: Read>(
    dir: &Path,
    node_id: u64,
    reader: BackupReader<R>,
    each: impl FnMut(&LedgerEntry) -> Result<(), String>,
) -> Result<Restored, LedgerError> {
    check_empty_dir(dir)?;
    let existed = dir.exists();
    if !existed {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let written = write(dir, node_id, reader, each);
    if written.is_err() {
        let cleaned = if existed { remove_children(dir) } else { std::fs::remove_dir_all(dir) };
        if let Err(e) = cleaned {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a failed restore's files");
        }
    }
    written
}

fn remove_children(dir: &Path) -> std::io::Result<()> {
    for item in std::fs::read_dir(dir)? {
        let path = item?.path();
        if path.is_dir() {
            std::fs::remove_dir_all(path)?;
        } else {
            std::fs::remove_file(path)?;
        }
    }
    Ok(())
}

fn write<R: Read>(
    dir: &Path,
    node_id: u64,
    mut reader: BackupReader<R>,
    mut each: impl FnMut(&LedgerEntry) -> Result<(), String>,
) -> Result<Restored, LedgerError> {
    let header = reader.header().clone();
    let db = open_db(dir)?;
    let tree = db.open_tree("ledger")?;
    // Marked as a new data dir's tree is when its node first opens it.
    let mut layout = sled::Batch::default();
    move_to_current_layout(&tree, &mut layout)?;
    tree.apply_batch(layout)?;
    let mut state = State::new();
    let mut batch = LedgerBatch::continuing_stored(&tree, Frontier::new())?;
    let mut in_batch = 0;
    while let Some(entry) = reader.next_entry()? {
        check_link(&state, &entry)?;
        each(&entry).map_err(LedgerError::Backup)?;
        state.evolve(&entry);
        batch.put(&entry)?;
        in_batch += 1;
        if in_batch == RESTORE_BATCH {
            let (full, growth) = batch.finish();
            tree.apply_batch(full)?;
            batch = LedgerBatch::continuing_stored(&tree, growth.frontier)?;
            in_batch = 0;
        }
    }
    let (last, growth) = batch.finish();
    tree.apply_batch(last)?;
    let merkle_root = growth.frontier.root();
    if state.head() != header.head || merkle_root != header.merkle_root {
        return Err(LedgerError::Backup("the events do not end at the head and Merkle root the header names".into()));
    }
    db.flush()?;
    // The first start then decodes the state instead of replaying every event.
    let saved = saved_state::path_in(dir);
    let temporary = saved_state::write_temporary(&saved, &state)?;
    saved_state::commit(&temporary, &saved)?;
    let marker = format!("node_id={node_id}\nevents={}\nhead={}\n", header.events, header.head.hash.to_hex());
    std::fs::write(dir.join(RESTORE_MARKER), marker)?;
    std::fs::File::open(dir)?.sync_all()?;
    drop(tree);
    drop(db);
    Ok(Restored { events: header.events, head: header.head, merkle_root })
}

/// The node id a restored data dir was restored for, if `dir` holds a restore not yet started.
pub fn restored_for(dir: &Path) -> Result<Option<u64>, LedgerError> {
    let text = match std::fs::read_to_string(dir.join(RESTORE_MARKER)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let node_id = text.lines().find_map(|line| line.strip_prefix("node_id=")).and_then(|id| id.parse().ok());
    node_id.map(Some).ok_or_else(|| LedgerError::Backup(format!("{RESTORE_MARKER} names no node id")))
}
