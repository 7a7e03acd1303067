//! The Raft log: one append-only record stream in segment files (`wal.rs`) under
//! `<data-dir>/raft-log/`, with an in-memory index of where each entry lies.
//!
//! Why not sled, where the ledger lives: every write went through sled's page cache and its
//! pool of I/O threads on the way to a sync, and at 64 clients those threads' hand-offs were a
//! third of a node's CPU (docs/benchmarks.md). Here an append is one `pwrite` and its share of
//! one `fdatasync`.
//!
//! Everything openraft stores is a record in the same stream — entries, the vote, `committed`,
//! truncations and purges — so they reach disk in the order they were made, and replaying the
//! records rebuilds the log. A new segment starts with the current vote, `committed` and purge
//! point, so older segments can be deleted once every entry in them is purged.
//!
//! Durability rule: nothing is reported to openraft as stored until an `fdatasync` covering it
//! returned. Appends are group-committed: `append` writes its records and hands openraft's
//! callback to one sync thread, which takes every callback waiting, syncs once, and completes
//! them in order; openraft replicates meanwhile (entries are readable as soon as `append`
//! returns, from a cache of the newest entries or from the file).
//!
//! The state machine (the ledger, in sled) is not flushed when it applies. Before a purge removes
//! entries, sled is flushed, so a restart can always re-apply from the log whatever the ledger
//! had not yet written.
//!
//! Reading the segments back at open is in `log_store/replay.rs`, the tests in `log_store/tests.rs`.

mod replay;

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Debug;
use std::fs::File;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, LogId, LogState, RaftLogReader, StorageError, StorageIOError, Vote};
use tokio::sync::oneshot;

use crate::codec;
use crate::wal;
use crate::{NodeId, TypeConfig};
use replay::{Replay, Tail};

/// The directory of the log, inside a data dir.
pub(crate) const DIR: &str = "raft-log";

/// What a record of the log holds.
pub(crate) mod record_kind {
    /// An entry: its payload is the encoded `Entry`.
    pub(crate) const ENTRY: u8 = 1;
    pub(crate) const VOTE: u8 = 2;
    pub(crate) const COMMITTED: u8 = 3;
    pub(crate) const PURGED: u8 = 4;
    /// Entries from this index on are gone.
    pub(crate) const TRUNCATED: u8 = 5;
}
use record_kind::{COMMITTED, ENTRY, PURGED, TRUNCATED, VOTE};

/// Sizes that tests make small.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// A segment's size; a batch larger than this gets a segment of its own size.
    pub(crate) segment_size: u64,
    /// The newest entries are kept decoded in memory up to this many encoded bytes, so
    /// replication and apply rarely read the file.
    pub(crate) cache_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { segment_size: 64 << 20, cache_bytes: 32 << 20 }
    }
}

/// The Raft log store, owned by openraft's core (every write goes through `&mut self`).
pub struct LogStore {
    dir: PathBuf,
    limits: Limits,
    shared: Arc<Shared>,
    active: Active,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    /// `committed` changed since it was last written (it is written with the next append).
    committed_unwritten: bool,
    /// The highest entry index written to each segment, to know when a segment is all purged.
    segment_last: BTreeMap<u64, u64>,
    syncer: mpsc::Sender<SyncJob>,
    /// Makes everything the state machine applied durable; run before a purge.
    flush_state: FlushState,
}

/// Makes the state machine's applied state durable (blocking).
pub(crate) type FlushState = Arc<dyn Fn() -> io::Result<()> + Send + Sync>;

/// The segment being written.
struct Active {
    seq: u64,
    file: Arc<File>,
    /// Where the next record goes.
    offset: u64,
    size: u64,
}

/// What readers share with the writer.
struct Shared {
    index: Mutex<Index>,
}

/// Where every entry is, and the newest entries themselves.
struct Index {
    /// The index of `locations[0]` (one past the purge point when the log is empty).
    first: u64,
    locations: VecDeque<Location>,
    purged: Option<LogId<NodeId>>,
    segments: BTreeMap<u64, Arc<File>>,
    /// The newest `cache.len()` entries, ending at the last one.
    cache: VecDeque<Entry<TypeConfig>>,
    cache_bytes: usize,
}

#[derive(Debug, Clone, Copy)]
struct Location {
    log_id: LogId<NodeId>,
    segment: u64,
    /// Where the encoded entry starts in its segment, and its length.
    offset: u64,
    len: u32,
}

impl Index {
    fn end(&self) -> u64 {
        self.first + self.locations.len() as u64
    }

    fn last_log_id(&self) -> Option<LogId<NodeId>> {
        self.locations.back().map(|l| l.log_id).or(self.purged)
    }

    /// Adds `location` at the end (after removing any entries it replaces), and `entry` to the
    /// cache of newest entries, whose encoded size stays within `cache_budget`.
    fn push(&mut self, location: Location, entry: Option<Entry<TypeConfig>>, cache_budget: usize) {
        self.truncate(location.log_id.index);
        if self.locations.is_empty() {
            self.first = location.log_id.index;
        }
        self.locations.push_back(location);
        match entry {
            Some(entry) => {
                self.cache.push_back(entry);
                self.cache_bytes += location.len as usize;
                // Drop the oldest cached entries past the budget (the newest always stays).
                while self.cache.len() > 1 && self.cache_bytes > cache_budget {
                    self.cache.pop_front();
                    let evicted = self.locations[self.locations.len() - self.cache.len() - 1];
                    self.cache_bytes -= evicted.len as usize;
                }
            }
            None => self.clear_cache(),
        }
    }

    fn clear_cache(&mut self) {
        self.cache.clear();
        self.cache_bytes = 0;
    }

    /// Removes every entry at or after `index`.
    fn truncate(&mut self, index: u64) {
        while self.end() > index.max(self.first) {
            let removed = self.locations.pop_back().expect("not empty");
            if self.cache.pop_back().is_some() {
                self.cache_bytes -= removed.len as usize;
            }
        }
    }

    /// Removes every entry up to and including `log_id`.
    fn purge(&mut self, log_id: LogId<NodeId>) {
        while self.first <= log_id.index && !self.locations.is_empty() {
            let removed = self.locations.pop_front().expect("not empty");
            self.first += 1;
            if self.cache.len() > self.locations.len() {
                self.cache.pop_front();
                self.cache_bytes -= removed.len as usize;
            }
        }
        if self.locations.is_empty() {
            self.first = self.first.max(log_id.index + 1);
        }
        self.purged = Some(log_id);
    }
}

/// A reader of the log; readers and the writer share the index.
#[derive(Clone)]
pub struct LogReader {
    shared: Arc<Shared>,
}

impl LogReader {
    /// Encoded bytes of the entries from index `first` on: what a restart reads, and what a
    /// follower that has everything before `first` would be sent.
    pub fn bytes_from(&self, first: u64) -> u64 {
        let log = self.shared.lock();
        let skip = first.saturating_sub(log.first).min(log.locations.len() as u64) as usize;
        log.locations.iter().skip(skip).map(|l| u64::from(l.len)).sum()
    }

    /// The highest index whose purge leaves at most `keep_bytes` of the newest entries (and
    /// always the last one), or `None` if the whole log fits already.
    pub fn purge_point(&self, keep_bytes: u64) -> Option<u64> {
        let log = self.shared.lock();
        let mut kept = 0u64;
        for (i, location) in log.locations.iter().enumerate().rev() {
            kept += u64::from(location.len);
            if kept > keep_bytes && i + 1 < log.locations.len() {
                return Some(location.log_id.index);
            }
        }
        None
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl LogStore {
    /// Opens the log in `data_dir`, moving an older node's log out of `state_db` (the ledger's
    /// database) first. `flush_state` makes the applied state durable before a purge.
    pub(crate) fn open(data_dir: &Path, state_db: &sled::Db, flush_state: FlushState) -> io::Result<LogStore> {
        LogStore::open_with(data_dir, state_db, flush_state, Limits::default())
    }

    pub(crate) fn open_with(
        data_dir: &Path,
        state_db: &sled::Db,
        flush_state: FlushState,
        limits: Limits,
    ) -> io::Result<LogStore> {
        let dir = data_dir.join(DIR);
        crate::log_migration::from_sled(state_db, &dir, limits.segment_size)?;
        let replayed = Replay::run(&dir)?;
        let (syncer, jobs) = mpsc::channel();
        std::thread::Builder::new().name("raft-log-sync".into()).spawn(move || sync_loop(&jobs))?;
        let shared = Arc::new(Shared { index: Mutex::new(replayed.index) });
        // Writing goes on after the newest segment's last intact record; whatever follows it was
        // never acknowledged, and is wiped so that it can never be read as a record again.
        let active = match replayed.tail {
            Some(Tail { seq, end, size }) => {
                let file = shared.lock().segments.get(&seq).cloned().expect("replayed segments are open");
                let size = size.max(limits.segment_size);
                wal::reset_tail(&file, end, size)?;
                Active { seq, file, offset: end, size }
            }
            None => {
                let file = Arc::new(wal::create_segment(&dir, 1, limits.segment_size)?);
                shared.lock().segments.insert(1, file.clone());
                Active { seq: 1, file, offset: 0, size: limits.segment_size }
            }
        };
        let mut segment_last = replayed.segment_last;
        segment_last.entry(active.seq).or_insert(0);
        let mut store = LogStore {
            dir,
            limits,
            shared,
            active,
            vote: replayed.vote,
            committed: replayed.committed,
            committed_unwritten: false,
            segment_last,
            syncer,
            flush_state,
        };
        store.remove_purged_segments()?;
        Ok(store)
    }

    /// A reader that stays valid after openraft takes the store.
    pub fn reader(&self) -> LogReader {
        LogReader { shared: self.shared.clone() }
    }

    /// The records that restate the log's state at the start of a segment.
    fn segment_header(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        if let Some(vote) = &self.vote {
            wal::frame(VOTE, &encode(vote)?, &mut out)?;
        }
        if self.committed.is_some() {
            wal::frame(COMMITTED, &encode(&self.committed)?, &mut out)?;
        }
        if let Some(purged) = self.shared.lock().purged {
            wal::frame(PURGED, &encode(&purged)?, &mut out)?;
        }
        Ok(out)
    }

    /// Writes `records` (whole records) at the end of the log and says where they start.
    fn write(&mut self, records: &[u8]) -> io::Result<(u64, u64)> {
        if self.active.offset + records.len() as u64 > self.active.size {
            self.roll(records.len() as u64)?;
        }
        let start = self.active.offset;
        self.active.file.write_all_at(records, start)?;
        self.active.offset += records.len() as u64;
        Ok((self.active.seq, start))
    }

    /// Starts a new segment with room for at least `needed` more bytes.
    fn roll(&mut self, needed: u64) -> io::Result<()> {
        // Syncs only ever cover the active segment, so the old one is made durable now.
        self.active.file.sync_data()?;
        let header = self.segment_header()?;
        let seq = self.active.seq + 1;
        let size = self.limits.segment_size.max(header.len() as u64 + needed);
        let file = Arc::new(wal::create_segment(&self.dir, seq, size)?);
        file.write_all_at(&header, 0)?;
        self.shared.lock().segments.insert(seq, file.clone());
        self.segment_last.insert(seq, 0);
        self.active = Active { seq, file, offset: header.len() as u64, size };
        Ok(())
    }

    /// Writes `entries` (and a changed `committed`) at the end of the log and makes them
    /// readable; they are durable after the next sync.
    fn write_entries(&mut self, entries: impl IntoIterator<Item = Entry<TypeConfig>>) -> io::Result<()> {
        let mut records = Vec::new();
        if std::mem::take(&mut self.committed_unwritten) {
            wal::frame(COMMITTED, &encode(&self.committed)?, &mut records)?;
        }
        let mut appended = Vec::new();
        for entry in entries {
            let payload = encode(&entry)?;
            let at = records.len() + wal::HEADER;
            wal::frame(ENTRY, &payload, &mut records)?;
            appended.push((entry, at as u64, payload.len() as u32));
        }
        let (segment, start) = self.write(&records)?;
        {
            let mut index = self.shared.lock();
            for (entry, at, len) in appended {
                let location = Location { log_id: entry.log_id, segment, offset: start + at, len };
                let last = self.segment_last.entry(segment).or_default();
                *last = (*last).max(entry.log_id.index);
                index.push(location, Some(entry), self.limits.cache_bytes);
            }
        }
        Ok(())
    }

    /// Writes one record and waits until it is durable.
    async fn write_durably(&mut self, kind: u8, payload: &[u8]) -> io::Result<()> {
        let mut records = Vec::new();
        wal::frame(kind, payload, &mut records)?;
        self.write(&records)?;
        self.synced().await
    }

    /// Waits for a sync of everything written so far.
    async fn synced(&self) -> io::Result<()> {
        let (done, synced) = oneshot::channel();
        self.syncer
            .send(SyncJob { file: self.active.file.clone(), done: Done::Waiter(done) })
            .map_err(|_| io::Error::other("the log's sync thread has stopped"))?;
        synced.await.map_err(|_| io::Error::other("the log's sync thread has stopped"))?
    }

    /// Deletes the oldest segments while every entry they hold is purged (never the active one).
    fn remove_purged_segments(&mut self) -> io::Result<()> {
        let Some(purged) = self.shared.lock().purged else { return Ok(()) };
        let mut removed = false;
        while let Some((&seq, &last)) = self.segment_last.first_key_value() {
            if seq == self.active.seq || last > purged.index {
                break;
            }
            self.segment_last.remove(&seq);
            self.shared.lock().segments.remove(&seq);
            std::fs::remove_file(wal::segment_path(&self.dir, seq))?;
            removed = true;
        }
        if removed {
            wal::sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

fn encode<T: serde::Serialize>(value: &T) -> io::Result<Vec<u8>> {
    codec::encode(value).map_err(io::Error::other)
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    codec::decode(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// A sync the sync thread owes someone.
struct SyncJob {
    file: Arc<File>,
    done: Done,
}

enum Done {
    Appended(LogFlushed<TypeConfig>),
    Waiter(oneshot::Sender<io::Result<()>>),
}

/// The sync thread: takes every job waiting, syncs each file they name once, completes them in
/// the order they came. Ends when the store is dropped.
fn sync_loop(jobs: &mpsc::Receiver<SyncJob>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        batch.extend(jobs.try_iter());
        let mut synced: Vec<*const File> = Vec::new();
        let mut result: Result<(), String> = Ok(());
        for job in &batch {
            let file = Arc::as_ptr(&job.file);
            if !synced.contains(&file) {
                synced.push(file);
                if let Err(e) = job.file.sync_data() {
                    result = Err(e.to_string());
                }
            }
        }
        for job in batch {
            let outcome = result.clone().map_err(io::Error::other);
            match job.done {
                Done::Appended(callback) => callback.log_io_completed(outcome),
                Done::Waiter(waiter) => {
                    let _ = waiter.send(outcome);
                }
            }
        }
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        read_entries(&self.shared, range).map_err(|e| StorageIOError::read_logs(&e).into())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        read_entries(&self.shared, range).map_err(|e| StorageIOError::read_logs(&e).into())
    }
}

/// The entries of `range` that the log holds: the cached ones cloned, older ones read from their
/// segments outside the lock.
fn read_entries(shared: &Shared, range: impl RangeBounds<u64>) -> io::Result<Vec<Entry<TypeConfig>>> {
    let (on_disk, cached) = {
        let index = shared.lock();
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        }
        .max(index.first);
        let end = match range.end_bound() {
            Bound::Included(&i) => i.saturating_add(1),
            Bound::Excluded(&i) => i,
            Bound::Unbounded => u64::MAX,
        }
        .min(index.end());
        if start >= end {
            return Ok(Vec::new());
        }
        let cache_start = index.end() - index.cache.len() as u64;
        let mut on_disk = Vec::new();
        for i in start..end.min(cache_start) {
            let location = index.locations[(i - index.first) as usize];
            let file = index.segments.get(&location.segment).cloned().ok_or_else(|| {
                io::Error::other(format!("entry {i} is in segment {}, which is gone", location.segment))
            })?;
            on_disk.push((file, location));
        }
        let cached: Vec<Entry<TypeConfig>> =
            (start.max(cache_start)..end).map(|i| index.cache[(i - cache_start) as usize].clone()).collect();
        (on_disk, cached)
    };
    let mut entries = Vec::with_capacity(on_disk.len() + cached.len());
    for (file, location) in on_disk {
        entries.push(decode(&wal::read_payload(&file, location.offset, location.len as usize)?)?);
    }
    entries.extend(cached);
    Ok(entries)
}

fn write_err(e: io::Error) -> StorageError<NodeId> {
    StorageIOError::write_logs(&e).into()
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let index = self.shared.lock();
        Ok(LogState { last_purged_log_id: index.purged, last_log_id: index.last_log_id() })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        self.reader()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let payload = encode(vote).map_err(|e| StorageError::from(StorageIOError::write_vote(&e)))?;
        self.write_durably(VOTE, &payload).await.map_err(|e| StorageError::from(StorageIOError::write_vote(&e)))?;
        self.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError<NodeId>> {
        // Written with the next append, not synced on its own: openraft awaits this in its core
        // loop on every commit. It is only a hint for a restart (re-apply up to it), and records
        // reach disk in order, so a stored `committed` never points past entries the log has.
        self.committed = committed;
        self.committed_unwritten = true;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        self.write_entries(entries).map_err(write_err)?;
        // Readable now; durable once the sync thread's next sync returns.
        let job = SyncJob { file: self.active.file.clone(), done: Done::Appended(callback) };
        if let Err(mpsc::SendError(job)) = self.syncer.send(job) {
            // The sync thread is gone (it never is while the store lives): sync here instead.
            let Done::Appended(callback) = job.done else { unreachable!("sent an append") };
            callback.log_io_completed(job.file.sync_data());
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write_durably(TRUNCATED, &encode(&log_id.index).map_err(write_err)?).await.map_err(write_err)?;
        self.shared.lock().truncate(log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        // The ledger applied these entries without writing or flushing them; they must be on
        // disk before the log can no longer replay them.
        let flush_state = self.flush_state.clone();
        tokio::task::spawn_blocking(move || flush_state())
            .await
            .map_err(|e| write_err(io::Error::other(e)))?
            .map_err(write_err)?;
        self.write_durably(PURGED, &encode(&log_id).map_err(write_err)?).await.map_err(write_err)?;
        self.shared.lock().purge(log_id);
        self.remove_purged_segments().map_err(write_err)
    }
}

#[cfg(test)]
mod tests;
