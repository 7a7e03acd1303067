//! Moving a data dir's Raft log out of sled, where nodes before the file-based log kept it
//! (trees `raft_log`: big-endian index → entry, and `raft_meta`: vote, committed, last purged),
//! into `raft-log/`. Done once, on open, before the log is read.
//!
//! Crash-safe: the new log is written and synced in `raft-log.moving/` and renamed into place;
//! only then are the old trees dropped. An interrupted move starts over; a move that finished
//! but crashed before the drop drops them on the next open.

use std::io;
use std::path::Path;

use crate::wal;

const OLD_LOG: &str = "raft_log";
const OLD_META: &str = "raft_meta";

/// The records of the old layout are stored exactly as the file log's payloads are (one
/// [`crate::codec`] record each), so they are copied as they are.
pub(crate) fn from_sled(db: &sled::Db, dir: &Path, segment_size: u64) -> io::Result<()> {
    if dir.is_dir() {
        return drop_old_trees(db);
    }
    let parent = dir.parent().ok_or_else(|| io::Error::other("the raft log dir has no parent"))?;
    let moving = dir.with_extension("moving");
    if moving.exists() {
        std::fs::remove_dir_all(&moving)?;
    }
    std::fs::create_dir_all(&moving)?;
    let records = old_records(db)?;
    if !records.is_empty() {
        let size = segment_size.max(records.len() as u64);
        let segment = wal::create_segment(&moving, 1, size)?;
        std::os::unix::fs::FileExt::write_all_at(&segment, &records, 0)?;
        segment.sync_data()?;
        tracing::info!(bytes = records.len(), "moved the raft log out of sled");
    }
    wal::sync_dir(&moving)?;
    std::fs::rename(&moving, dir)?;
    wal::sync_dir(parent)?;
    drop_old_trees(db)
}

fn sled_err(e: sled::Error) -> io::Error {
    io::Error::other(e)
}

fn has_tree(db: &sled::Db, name: &str) -> bool {
    db.tree_names().iter().any(|n| n.as_ref() == name.as_bytes())
}

/// The old log as records of the file log: its state first, then every entry in order.
fn old_records(db: &sled::Db) -> io::Result<Vec<u8>> {
    use crate::log_store::record_kind::{COMMITTED, ENTRY, PURGED, VOTE};
    let mut out = Vec::new();
    if has_tree(db, OLD_META) {
        let meta = db.open_tree(OLD_META).map_err(sled_err)?;
        for (key, kind) in [(&b"vote"[..], VOTE), (b"committed", COMMITTED), (b"last_purged", PURGED)] {
            if let Some(value) = meta.get(key).map_err(sled_err)? {
                wal::frame(kind, &value, &mut out)?;
            }
        }
    }
    if has_tree(db, OLD_LOG) {
        for item in db.open_tree(OLD_LOG).map_err(sled_err)?.iter() {
            let (_, entry) = item.map_err(sled_err)?;
            wal::frame(ENTRY, &entry, &mut out)?;
        }
    }
    Ok(out)
}

fn drop_old_trees(db: &sled::Db) -> io::Result<()> {
    let mut dropped = false;
    for name in [OLD_LOG, OLD_META] {
        if has_tree(db, name) {
            dropped |= db.drop_tree(name).map_err(sled_err)?;
        }
    }
    if dropped {
        db.flush().map_err(sled_err)?;
    }
    Ok(())
}
