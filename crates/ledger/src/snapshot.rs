//! Snapshots: the whole ledger streamed, never held in memory. A node that sends one reads it
//! straight from its ledger ([`SnapshotFile`]'s ledger stream: nothing is copied when a snapshot
//! is built); a node that receives one writes it to a file, checks it and installs it from there.
//!
//! The format is [`MAGIC`], then frames of `u32 LE length ++ bytes`: a [`Header`] (the chain head
//! and the number of idempotency records), each idempotency record, then every ledger entry from
//! seq 1 in the bytes the ledger stores it as (`codec`). Those frames are exactly the records of
//! the ledger's event blocks, so the stream is the blocks' bytes, the last one cut at the head.
//! Received files live in `snapshots/` of the data dir: `recv-*.tmp` while being received,
//! `snapshot-*.bin` once complete and being installed (the `m:installing` marker names it); none
//! is kept after its install.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use keyledger_model::idempotency::{Record, RecordKey};
use keyledger_model::{ChainHead, LedgerEntry, State};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

use crate::codec;
use crate::event_blocks::{self, BLOCK_EVENTS};
use crate::replay::check_link;
use crate::LedgerError;

/// The snapshot directory inside a data dir.
pub(crate) const DIR: &str = "snapshots";

const MAGIC: &[u8; 8] = b"KLSNAP01";
const RECEIVING: &str = "recv";
/// No frame we write comes near this; a larger length means a damaged file, refused before
/// anything is allocated for it.
const MAX_FRAME: usize = 64 * 1024 * 1024;
/// Read buffer of a file being checked or installed.
const IO_BUFFER: usize = 1024 * 1024;

/// openraft's `SnapshotData`: a snapshot file and where it is (one being received, so an install
/// can keep it for a restart that must finish the install), or a snapshot streamed from the
/// ledger (what a node sends).
#[derive(Debug)]
pub struct SnapshotFile {
    source: Source,
}

#[derive(Debug)]
enum Source {
    File { file: tokio::fs::File, path: PathBuf },
    Ledger(LedgerStream),
}

impl SnapshotFile {
    /// A new, empty file to receive a snapshot into.
    pub(crate) async fn create_receiving(dir: &Path) -> std::io::Result<SnapshotFile> {
        let path = temp_path(dir, RECEIVING);
        let file = tokio::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path).await?;
        Ok(SnapshotFile { source: Source::File { file, path } })
    }

    /// A complete snapshot file, for reading.
    pub async fn open(path: impl Into<PathBuf>) -> std::io::Result<SnapshotFile> {
        let path = path.into();
        Ok(SnapshotFile { source: Source::File { file: tokio::fs::File::open(&path).await?, path } })
    }

    /// The snapshot of the ledger's first `head_seq` events with `idempotency`, streamed from
    /// the ledger as it is read (blocking: it reads where each event block starts).
    pub(crate) fn from_ledger(
        tree: &sled::Tree,
        head_seq: u64,
        idempotency: &[(RecordKey, Record)],
    ) -> Result<SnapshotFile, LedgerError> {
        Ok(SnapshotFile { source: Source::Ledger(LedgerStream::new(tree, head_seq, idempotency)?) })
    }

    /// Where the file is; none for a snapshot streamed from the ledger.
    pub fn path(&self) -> Option<&Path> {
        match &self.source {
            Source::File { path, .. } => Some(path),
            Source::Ledger(_) => None,
        }
    }

    /// Everything written so far, on disk.
    pub(crate) async fn sync(&mut self) -> std::io::Result<()> {
        match &mut self.source {
            Source::File { file, .. } => file.sync_all().await,
            Source::Ledger(_) => Ok(()),
        }
    }
}

fn read_only() -> std::io::Error {
    std::io::Error::other("a snapshot streamed from the ledger cannot be written")
}

impl AsyncRead for SnapshotFile {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().source {
            Source::File { file, .. } => Pin::new(file).poll_read(cx, buf),
            Source::Ledger(stream) => {
                // Reads come from sled on the calling thread, and a sender asks for 4 MiB at a
                // time without yielding in between: let the node's other tasks run every so often.
                if stream.since_yield >= YIELD_EVERY {
                    stream.since_yield = 0;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Ready(stream.read(buf))
            }
        }
    }
}

/// Bytes a ledger stream serves between two yields to the runtime.
const YIELD_EVERY: usize = 512 * 1024;

impl AsyncWrite for SnapshotFile {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match &mut self.get_mut().source {
            Source::File { file, .. } => Pin::new(file).poll_write(cx, buf),
            Source::Ledger(_) => Poll::Ready(Err(read_only())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().source {
            Source::File { file, .. } => Pin::new(file).poll_flush(cx),
            Source::Ledger(_) => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().source {
            Source::File { file, .. } => Pin::new(file).poll_shutdown(cx),
            Source::Ledger(_) => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncSeek for SnapshotFile {
    fn start_seek(self: Pin<&mut Self>, position: std::io::SeekFrom) -> std::io::Result<()> {
        match &mut self.get_mut().source {
            Source::File { file, .. } => Pin::new(file).start_seek(position),
            Source::Ledger(stream) => stream.seek(position),
        }
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<u64>> {
        match &mut self.get_mut().source {
            Source::File { file, .. } => Pin::new(file).poll_complete(cx),
            Source::Ledger(stream) => Poll::Ready(Ok(stream.position)),
        }
    }
}

/// A snapshot read straight from the ledger: the frames before the events, built in memory
/// (they are small), then the event blocks' bytes as stored, the last block cut at the head.
/// Blocks are read from sled one at a time as the reader gets to them; events up to the head
/// never change (the ledger is append-only, and later events only lengthen the last block).
struct LedgerStream {
    tree: sled::Tree,
    head_seq: u64,
    preamble: Vec<u8>,
    /// Where block `i`'s bytes start in the stream (`block_starts[n]` is the stream's length).
    block_starts: Vec<u64>,
    position: u64,
    /// The block read last, to serve the next read from.
    current: Option<(usize, sled::IVec)>,
    /// Bytes served since the stream last yielded.
    since_yield: usize,
}

impl std::fmt::Debug for LedgerStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerStream").field("head_seq", &self.head_seq).field("position", &self.position).finish()
    }
}

impl LedgerStream {
    fn new(tree: &sled::Tree, head_seq: u64, idempotency: &[(RecordKey, Record)]) -> Result<LedgerStream, LedgerError> {
        let head = match head_seq {
            0 => ChainHead::EMPTY,
            seq => {
                let entry = event_blocks::get(tree, seq)?.ok_or_else(|| LedgerError::Damaged {
                    seq,
                    why: "the snapshot's last event is not stored".into(),
                })?;
                ChainHead { seq, hash: entry.event.hash }
            }
        };
        let mut preamble = MAGIC.to_vec();
        push_frame(&mut preamble, &codec::encode(&Header { head, idempotency_records: idempotency.len() as u64 })?)?;
        for (key, record) in idempotency {
            push_frame(&mut preamble, &codec::encode(&(key, record))?)?;
        }
        let mut block_starts = vec![preamble.len() as u64];
        for block in event_blocks::blocks(tree, 1, head_seq) {
            let (number, bytes) = block?;
            let expected = block_starts.len() as u64 - 1;
            if number != expected {
                return Err(LedgerError::Damaged {
                    seq: expected * BLOCK_EVENTS + 1,
                    why: "sequence gap in the stored ledger".into(),
                });
            }
            let len = event_blocks::bytes_through(number, &bytes, head_seq)?;
            block_starts.push(block_starts[block_starts.len() - 1] + len as u64);
        }
        if head_seq > 0 && block_starts.len() as u64 - 1 != event_blocks::block_of(head_seq) + 1 {
            return Err(LedgerError::Damaged { seq: head_seq, why: "the stored ledger ends early".into() });
        }
        let tree = tree.clone();
        Ok(LedgerStream { tree, head_seq, preamble, block_starts, position: 0, current: None, since_yield: 0 })
    }

    fn len(&self) -> u64 {
        self.block_starts[self.block_starts.len() - 1]
    }

    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<()> {
        let target = match to {
            std::io::SeekFrom::Start(at) => Some(at),
            std::io::SeekFrom::End(by) => self.len().checked_add_signed(by),
            std::io::SeekFrom::Current(by) => self.position.checked_add_signed(by),
        };
        self.position =
            target.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(())
    }

    /// Fills `buf` from the current position, as far as the stream goes and until it is due
    /// to yield.
    fn read(&mut self, buf: &mut ReadBuf<'_>) -> std::io::Result<()> {
        while buf.remaining() > 0 && self.position < self.len() && self.since_yield < YIELD_EVERY {
            let at = self.position;
            let preamble = self.preamble.len() as u64;
            let taken = if at < preamble {
                let from = &self.preamble[at as usize..];
                let n = from.len().min(buf.remaining());
                buf.put_slice(&from[..n]);
                n
            } else {
                let block = self.block_starts.partition_point(|&start| start <= at) - 1;
                let (start, end) = (self.block_starts[block], self.block_starts[block + 1]);
                let bytes = self.block(block, (end - start) as usize)?;
                let from = &bytes[(at - start) as usize..(end - start) as usize];
                let n = from.len().min(buf.remaining());
                buf.put_slice(&from[..n]);
                n
            };
            self.position += taken as u64;
            self.since_yield += taken;
        }
        Ok(())
    }

    /// The stored bytes of block `block`, of which the first `len` are this snapshot's.
    fn block(&mut self, block: usize, len: usize) -> std::io::Result<sled::IVec> {
        if let Some((number, bytes)) = &self.current {
            if *number == block {
                return Ok(bytes.clone());
            }
        }
        let bytes = self.tree.get(event_blocks::block_key(block as u64)).map_err(std::io::Error::other)?;
        match bytes {
            Some(bytes) if bytes.len() >= len => {
                self.current = Some((block, bytes.clone()));
                Ok(bytes)
            }
            _ => Err(std::io::Error::other(format!("the ledger no longer holds block {block} of this snapshot"))),
        }
    }
}

fn push_frame(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), LedgerError> {
    let len = u32::try_from(bytes.len()).map_err(|_| damaged("a snapshot frame over 4 GiB"))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// The first frame of a file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Header {
    pub(crate) head: ChainHead,
    pub(crate) idempotency_records: u64,
}

/// A name no other file in the dir has: names are never reused, so a rename never replaces a
/// file someone is reading.
fn unique() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{nanos:x}-{:x}-{:x}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

fn temp_path(dir: &Path, kind: &str) -> PathBuf {
    dir.join(format!("{kind}-{}.tmp", unique()))
}

/// Is `path` a file this node is receiving a snapshot into (and so may take over)?
pub(crate) fn is_receiving(dir: &Path, path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    path.parent() == Some(dir) && name.starts_with(RECEIVING) && name.ends_with(".tmp")
}

/// Removes the files of receives that were abandoned: openraft receives one snapshot at a
/// time, so when a new one begins, an older file will never be completed.
pub(crate) fn remove_abandoned_receives(dir: &Path) -> std::io::Result<()> {
    for item in std::fs::read_dir(dir)? {
        let path = item?.path();
        if is_receiving(dir, &path) {
            std::fs::remove_file(path)?;
        }
    }
    Ok(())
}

/// Gives the complete file `temp` its final name (atomically, the directory synced); the name.
pub(crate) fn publish(dir: &Path, temp: &Path, snapshot_id: &str) -> std::io::Result<String> {
    let id: String =
        snapshot_id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).take(64).collect();
    let name = format!("snapshot-{id}-{}.bin", unique());
    std::fs::rename(temp, dir.join(&name))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(name)
}

/// Removes every file in `dir` but those named in `keep`; files still being written only if
/// `with_temp` (at open, when nothing is writing).
pub(crate) fn remove_others(dir: &Path, keep: &[&str], with_temp: bool) -> std::io::Result<()> {
    for item in std::fs::read_dir(dir)? {
        let item = item?;
        let name = item.file_name();
        let name = name.to_string_lossy();
        let temp = name.ends_with(".tmp");
        if keep.contains(&name.as_ref()) || (temp && !with_temp) {
            continue;
        }
        std::fs::remove_file(item.path())?;
    }
    Ok(())
}

fn damaged(why: impl Into<String>) -> LedgerError {
    LedgerError::Snapshot(why.into())
}

/// Reads a snapshot file front to back: idempotency records first, then the entries.
pub(crate) struct Reader<R: Read = BufReader<std::fs::File>> {
    input: R,
    frame: Vec<u8>,
    header: Header,
    idempotency_left: u64,
    /// The seq of the next entry frame (entries are in order from 1; the check pass proves it).
    next_seq: u64,
}

impl Reader {
    pub(crate) fn open(path: &Path) -> Result<Reader, LedgerError> {
        Reader::new(BufReader::with_capacity(IO_BUFFER, std::fs::File::open(path)?))
    }
}

impl<R: Read> Reader<R> {
    /// Reads the magic and the header from `input`.
    pub(crate) fn new(mut input: R) -> Result<Reader<R>, LedgerError> {
        let mut magic = [0u8; 8];
        input.read_exact(&mut magic).map_err(|_| damaged("too short to be a snapshot file"))?;
        if &magic != MAGIC {
            return Err(damaged("not a keyledger snapshot file"));
        }
        let mut reader = Reader {
            input,
            frame: Vec::new(),
            header: Header { head: ChainHead::EMPTY, idempotency_records: 0 },
            idempotency_left: 0,
            next_seq: 1,
        };
        if !reader.read_frame()? {
            return Err(damaged("no header"));
        }
        reader.header = codec::decode(&reader.frame)?;
        reader.idempotency_left = reader.header.idempotency_records;
        Ok(reader)
    }

    pub(crate) fn header(&self) -> &Header {
        &self.header
    }

    /// Reads the next frame into `self.frame`; false at the end of the file.
    fn read_frame(&mut self) -> Result<bool, LedgerError> {
        let mut len = [0u8; 4];
        let mut filled = 0;
        while filled < len.len() {
            match self.input.read(&mut len[filled..]) {
                Ok(0) if filled == 0 => return Ok(false),
                Ok(0) => return Err(damaged("cut off inside a frame length")),
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_FRAME {
            return Err(damaged(format!("a frame of {len} bytes")));
        }
        // Grown as bytes arrive, not sized by the length a damaged file claims.
        self.frame.clear();
        let read = (&mut self.input).take(len as u64).read_to_end(&mut self.frame)?;
        if read < len {
            return Err(damaged("cut off inside a frame"));
        }
        Ok(true)
    }

    /// The next idempotency record, or `None` once all are read.
    pub(crate) fn idempotency(&mut self) -> Result<Option<(RecordKey, Record)>, LedgerError> {
        if self.idempotency_left == 0 {
            return Ok(None);
        }
        if !self.read_frame()? {
            return Err(damaged("ends inside the idempotency records"));
        }
        self.idempotency_left -= 1;
        Ok(Some(codec::decode(&self.frame)?))
    }

    /// The next entry's seq and stored bytes (after any unread idempotency records), or `None`
    /// at the end.
    pub(crate) fn entry_bytes(&mut self) -> Result<Option<(u64, &[u8])>, LedgerError> {
        while self.idempotency()?.is_some() {}
        if !self.read_frame()? {
            return Ok(None);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        Ok(Some((seq, &self.frame)))
    }
}

/// What the check pass over a received file found.
pub(crate) struct Checked {
    pub(crate) head: ChainHead,
    pub(crate) state: State,
    pub(crate) idempotency: Vec<(RecordKey, Record)>,
    /// Does the snapshot's ledger continue `local` (so the stored events can stay)?
    pub(crate) extends_local: bool,
}

/// Reads the whole file and checks every entry against the chain, building the state it ends
/// in; refuses a file whose chain breaks or whose end is not the head its header names.
pub(crate) fn check(path: &Path, local: ChainHead) -> Result<Checked, LedgerError> {
    check_from(Reader::open(path)?, local)
}

/// [`check`] over any reader (the fuzz target feeds it bytes).
pub(crate) fn check_from<R: Read>(mut reader: Reader<R>, local: ChainHead) -> Result<Checked, LedgerError> {
    let mut idempotency = Vec::new();
    while let Some(record) = reader.idempotency()? {
        idempotency.push(record);
    }
    let mut state = State::new();
    let mut extends_local = local.seq == 0;
    while let Some((seq, bytes)) = reader.entry_bytes()? {
        let entry: LedgerEntry = codec::decode(bytes)?;
        if entry.event.seq != seq {
            return Err(LedgerError::Damaged { seq, why: "snapshot entries out of order".into() });
        }
        check_link(&state, &entry)?;
        state.evolve(&entry);
        if seq == local.seq {
            extends_local = entry.event.hash == local.hash;
        }
    }
    let head = reader.header().head;
    if state.head() != head {
        return Err(damaged(format!("the chain ends at seq {}, the header says {}", state.head().seq, head.seq)));
    }
    Ok(Checked { head, state, idempotency, extends_local })
}
