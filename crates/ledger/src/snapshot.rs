//! Snapshot files: the whole ledger streamed to and from disk, so building, sending, receiving
//! and installing a snapshot never holds the ledger in memory.
//!
//! A file is [`MAGIC`], then frames of `u32 LE length ++ bytes`: a [`Header`] (the chain head
//! and the number of idempotency records), each idempotency record, then every ledger entry from
//! seq 1 in the bytes sled stores it as (`codec`). The files live in `snapshots/` of the data
//! dir: `snapshot-*.bin` are complete (the one `m:snapshot-file` names is current), `build-*.tmp`
//! and `recv-*.tmp` are being written (left over after a crash, removed at open).

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use keyledger_model::idempotency::{Record, RecordKey};
use keyledger_model::{ChainHead, LedgerEntry, State};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

use crate::codec;
use crate::event_blocks;
use crate::ledger::{check_link, LedgerError};

/// The snapshot directory inside a data dir.
pub(crate) const DIR: &str = "snapshots";

const MAGIC: &[u8; 8] = b"KLSNAP01";
const BUILDING: &str = "build";
const RECEIVING: &str = "recv";
/// No frame we write comes near this; a larger length means a damaged file, refused before
/// anything is allocated for it.
const MAX_FRAME: usize = 64 * 1024 * 1024;
/// Write buffer of a file being built, and read buffer of one being checked or installed.
const IO_BUFFER: usize = 1024 * 1024;

/// openraft's `SnapshotData`: an open snapshot file and where it is, so an install can keep the
/// received file (for a restart that must finish the install) instead of copying it.
#[derive(Debug)]
pub struct SnapshotFile {
    file: tokio::fs::File,
    path: PathBuf,
}

impl SnapshotFile {
    /// A new, empty file to receive a snapshot into.
    pub(crate) async fn create_receiving(dir: &Path) -> std::io::Result<SnapshotFile> {
        let path = temp_path(dir, RECEIVING);
        let file = tokio::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path).await?;
        Ok(SnapshotFile { file, path })
    }

    /// A complete snapshot file, for reading.
    pub async fn open(path: impl Into<PathBuf>) -> std::io::Result<SnapshotFile> {
        let path = path.into();
        Ok(SnapshotFile { file: tokio::fs::File::open(&path).await?, path })
    }

    /// A file opened already (under the lock that keeps it from being removed meanwhile).
    pub(crate) fn from_std(file: std::fs::File, path: PathBuf) -> SnapshotFile {
        SnapshotFile { file: tokio::fs::File::from_std(file), path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Everything written so far, on disk.
    pub(crate) async fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync_all().await
    }
}

impl AsyncRead for SnapshotFile {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().file).poll_read(cx, buf)
    }
}

impl AsyncWrite for SnapshotFile {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().file).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().file).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().file).poll_shutdown(cx)
    }
}

impl AsyncSeek for SnapshotFile {
    fn start_seek(self: Pin<&mut Self>, position: std::io::SeekFrom) -> std::io::Result<()> {
        Pin::new(&mut self.get_mut().file).start_seek(position)
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<u64>> {
        Pin::new(&mut self.get_mut().file).poll_complete(cx)
    }
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

/// A copy of `source` (someone else's snapshot file) as a receiving file in `dir`, on disk.
pub(crate) fn copy_in(dir: &Path, source: &Path) -> std::io::Result<PathBuf> {
    let path = temp_path(dir, RECEIVING);
    std::fs::copy(source, &path)?;
    std::fs::File::open(&path)?.sync_all()?;
    Ok(path)
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

/// Writes the ledger's events `1..=head_seq` and `idempotency` to a new file in `dir`, synced
/// to disk; its path. Events are copied as stored, one at a time.
pub(crate) fn write(
    tree: &sled::Tree,
    dir: &Path,
    head_seq: u64,
    idempotency: &[(RecordKey, Record)],
) -> Result<PathBuf, LedgerError> {
    let path = temp_path(dir, BUILDING);
    match write_to(tree, &path, head_seq, idempotency) {
        Ok(()) => Ok(path),
        Err(e) => {
            // Best effort: a leftover temp file is removed at the next open anyway.
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
    }
}

fn write_to(
    tree: &sled::Tree,
    path: &Path,
    head_seq: u64,
    idempotency: &[(RecordKey, Record)],
) -> Result<(), LedgerError> {
    let head = match head_seq {
        0 => ChainHead::EMPTY,
        seq => {
            let entry = event_blocks::get(tree, seq)?
                .ok_or_else(|| LedgerError::Damaged { seq, why: "the snapshot's last event is not stored".into() })?;
            ChainHead { seq, hash: entry.event.hash }
        }
    };
    let file = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
    let mut out = BufWriter::with_capacity(IO_BUFFER, file);
    out.write_all(MAGIC)?;
    let header = Header { head, idempotency_records: idempotency.len() as u64 };
    write_frame(&mut out, &codec::encode(&header)?)?;
    for (key, record) in idempotency {
        write_frame(&mut out, &codec::encode(&(key, record))?)?;
    }
    let mut next = 1;
    event_blocks::for_each_raw(tree, 1, head_seq, |seq, bytes| {
        if seq != next {
            return Err(LedgerError::Damaged { seq: next, why: "sequence gap in the stored ledger".into() });
        }
        write_frame(&mut out, bytes)?;
        next += 1;
        Ok(())
    })?;
    if next != head_seq + 1 {
        return Err(LedgerError::Damaged { seq: next, why: "the stored ledger ends early".into() });
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(())
}

fn write_frame(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| std::io::Error::other("snapshot frame over 4 GiB"))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(bytes)
}

fn damaged(why: impl Into<String>) -> LedgerError {
    LedgerError::Snapshot(why.into())
}

/// Reads a snapshot file front to back: idempotency records first, then the entries.
pub(crate) struct Reader {
    input: BufReader<std::fs::File>,
    frame: Vec<u8>,
    header: Header,
    idempotency_left: u64,
    /// The seq of the next entry frame (entries are in order from 1; the check pass proves it).
    next_seq: u64,
}

impl Reader {
    pub(crate) fn open(path: &Path) -> Result<Reader, LedgerError> {
        let mut input = BufReader::with_capacity(IO_BUFFER, std::fs::File::open(path)?);
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
        self.frame.resize(len, 0);
        self.input.read_exact(&mut self.frame).map_err(|_| damaged("cut off inside a frame"))?;
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
    let mut reader = Reader::open(path)?;
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
