//! The Raft log on sled: tree `raft_log` (big-endian index → entry) and tree `raft_meta`
//! (vote, committed, last purged).
//!
//! Durability rule: nothing is reported to openraft as stored until a flush returned. A vote or
//! an entry that only sat in sled's page cache could be lost in a crash after the node promised
//! it, which is how a cluster double-votes or loses acknowledged writes.
//!
//! Appends are group-committed: `append` writes its batch and hands openraft's callback to one
//! flusher thread, which takes every callback waiting, flushes once (a flush covers every write
//! before it), and completes them in order. openraft goes on replicating meanwhile, and under
//! load many appends share one fsync.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::mpsc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, LogId, LogState, RaftLogReader, StorageError, StorageIOError, Vote};

use crate::codec;
use crate::{NodeId, TypeConfig};

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";

/// The Raft log store. Cheap to clone: clones share the same sled trees.
#[derive(Clone)]
pub struct LogStore {
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
    flusher: mpsc::Sender<LogFlushed<TypeConfig>>,
}

impl LogStore {
    pub fn open(db: &sled::Db) -> Result<LogStore, sled::Error> {
        let (flusher, waiting) = mpsc::channel();
        let flushed_db = db.clone();
        std::thread::Builder::new()
            .name("raft-log-flush".into())
            .spawn(move || group_commit(&flushed_db, &waiting))
            .map_err(sled::Error::Io)?;
        Ok(LogStore { db: db.clone(), log: db.open_tree("raft_log")?, meta: db.open_tree("raft_meta")?, flusher })
    }

    fn read_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError<NodeId>> {
        let bytes = self.meta.get(key).map_err(|e| StorageIOError::read(&e))?;
        bytes.map(|b| codec::decode(&b).map_err(|e| StorageIOError::read(&e).into())).transpose()
    }

    async fn write_meta<T: serde::Serialize>(&self, key: &[u8], value: &T) -> Result<(), StorageError<NodeId>> {
        let bytes = codec::encode(value).map_err(|e| StorageIOError::write(&e))?;
        self.meta.insert(key, bytes).map_err(|e| StorageIOError::write(&e))?;
        self.flush().await
    }

    async fn flush(&self) -> Result<(), StorageError<NodeId>> {
        self.db.flush_async().await.map_err(|e| StorageIOError::write(&e))?;
        Ok(())
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        match self.log.last().map_err(|e| StorageIOError::read_logs(&e))? {
            None => Ok(None),
            Some((_, bytes)) => {
                let entry: Entry<TypeConfig> = codec::decode(&bytes).map_err(|e| StorageIOError::read_logs(&e))?;
                Ok(Some(entry.log_id))
            }
        }
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let start = match range.start_bound() {
            Bound::Included(&i) => Bound::Included(index_key(i)),
            Bound::Excluded(&i) => Bound::Excluded(index_key(i)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => Bound::Included(index_key(i)),
            Bound::Excluded(&i) => Bound::Excluded(index_key(i)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let mut entries = Vec::new();
        for item in self.log.range::<[u8; 8], _>((start, end)) {
            let (_, bytes) = item.map_err(|e| StorageIOError::read_logs(&e))?;
            entries.push(codec::decode(&bytes).map_err(|e| StorageIOError::read_logs(&e))?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let last_purged_log_id: Option<LogId<NodeId>> = self.read_meta(LAST_PURGED)?;
        let last_log_id = self.last_entry_log_id()?.or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write_meta(VOTE, vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        self.read_meta(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError<NodeId>> {
        // Not flushed: openraft awaits this in its core loop on every commit, so a flush here
        // would put an fsync in series with every write. The value is only a hint for restart
        // (re-apply up to it); it reaches disk with the next log flush, and sled recovers a
        // prefix of its writes, so a saved `committed` never points past entries it has.
        let bytes = codec::encode(&committed).map_err(|e| StorageIOError::write(&e))?;
        self.meta.insert(COMMITTED, bytes).map_err(|e| StorageIOError::write(&e))?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.read_meta::<Option<LogId<NodeId>>>(COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut batch = sled::Batch::default();
        for entry in entries {
            let bytes = codec::encode(&entry).map_err(|e| StorageIOError::write_logs(&e))?;
            batch.insert(&index_key(entry.log_id.index), bytes);
        }
        self.log.apply_batch(batch).map_err(|e| StorageIOError::write_logs(&e))?;
        // Entries are readable now; they are durable once the flusher's next flush returns.
        if let Err(mpsc::SendError(callback)) = self.flusher.send(callback) {
            // The flusher is gone (it never is while the store lives): flush here instead.
            let flushed = self.db.flush_async().await.map(|_| ()).map_err(std::io::Error::other);
            callback.log_io_completed(flushed);
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        // Remove every entry at or after `log_id.index` (a conflicting suffix).
        let mut batch = sled::Batch::default();
        for item in self.log.range(index_key(log_id.index)..) {
            let (key, _) = item.map_err(|e| StorageIOError::write_logs(&e))?;
            batch.remove(key);
        }
        self.log.apply_batch(batch).map_err(|e| StorageIOError::write_logs(&e))?;
        self.flush().await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        // Record the purge point first: if we crash half-way, the log state stays consistent.
        self.write_meta(LAST_PURGED, &log_id).await?;
        let mut batch = sled::Batch::default();
        for item in self.log.range(..=index_key(log_id.index)) {
            let (key, _) = item.map_err(|e| StorageIOError::write_logs(&e))?;
            batch.remove(key);
        }
        self.log.apply_batch(batch).map_err(|e| StorageIOError::write_logs(&e))?;
        self.flush().await
    }
}

/// The flusher thread: waits for callbacks, flushes once for all that are waiting, completes
/// them in the order their appends came. Ends when every `LogStore` clone is dropped.
fn group_commit(db: &sled::Db, waiting: &mpsc::Receiver<LogFlushed<TypeConfig>>) {
    while let Ok(first) = waiting.recv() {
        let mut callbacks = vec![first];
        callbacks.extend(waiting.try_iter());
        let flushed = db.flush().map(|_| ());
        for callback in callbacks {
            callback.log_io_completed(flushed.as_ref().map(|_| ()).map_err(|e| std::io::Error::other(e.to_string())));
        }
    }
}
