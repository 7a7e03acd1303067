//! An append-only file of checksummed records, in segments: what the Raft log is stored in.
//!
//! A record is `[payload length: u32 LE][crc32 of kind ++ payload: u32 LE][kind: u8][payload]`.
//! Segments are files named `<seq>.wal` (20 digits, so names sort in order) in one directory.
//!
//! Each segment is created at its full size before anything is written to it. A file that grows
//! makes every `fdatasync` commit its new size to the filesystem journal as well: 0.22 ms per
//! sync here against 0.13 ms for writes inside the file's length (docs/benchmarks.md).
//!
//! Reading a segment stops at the first record that is not whole and intact (a zero length is
//! the unwritten rest of the file). Records are only ever acknowledged after a sync that covers
//! them, so whatever follows a torn record was never acknowledged either.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes in front of every payload.
pub(crate) const HEADER: usize = 9;
const SUFFIX: &str = ".wal";

/// Appends `kind` and `payload` as one record to `out`.
pub(crate) fn frame(kind: u8, payload: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a log record over 4 GiB"))?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[kind]);
    crc.update(payload);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
    Ok(())
}

/// The path of segment `seq` in `dir`.
pub(crate) fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}{SUFFIX}"))
}

/// The segments in `dir`, oldest first.
pub(crate) fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut seqs = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        if let Some(seq) = name.to_str().and_then(|n| n.strip_suffix(SUFFIX)).and_then(|n| n.parse().ok()) {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// Creates segment `seq` with room for `size` bytes and makes the file itself durable (its
/// length and its name in `dir`), so later syncs of it only need to write data.
pub(crate) fn create_segment(dir: &Path, seq: u64, size: u64) -> io::Result<File> {
    let file = OpenOptions::new().read(true).write(true).create_new(true).open(segment_path(dir, seq))?;
    file.set_len(size)?;
    file.sync_all()?;
    sync_dir(dir)?;
    Ok(file)
}

/// Makes the names in `dir` durable (a created, renamed or removed file).
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Opens segment `seq` for reading records back and writing more.
pub(crate) fn open_segment(dir: &Path, seq: u64) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open(segment_path(dir, seq))
}

/// Makes `file` end at `end` followed by unwritten space up to `size`, durably, so that a record
/// written at `end` is never followed by stale bytes from before a crash.
pub(crate) fn reset_tail(file: &File, end: u64, size: u64) -> io::Result<()> {
    file.set_len(end)?;
    file.set_len(size)?;
    file.sync_all()
}

/// Calls `each(offset of the payload, kind, payload)` for every intact record of `file` in order,
/// stops at the first one that is not (or at the end of the file), and returns where that is.
pub(crate) fn read_records<E: From<io::Error>>(
    file: &File,
    mut each: impl FnMut(u64, u8, &[u8]) -> Result<(), E>,
) -> Result<u64, E> {
    let size = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(1 << 20, ReadAt { file, position: 0 });
    let mut offset = 0u64;
    let mut payload = Vec::new();
    loop {
        let mut header = [0u8; HEADER];
        if offset + HEADER as u64 > size || reader.read_exact(&mut header).is_err() {
            return Ok(offset);
        }
        let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as u64;
        let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        let kind = header[8];
        // A zero length is unwritten space; a length past the end is a torn or stale header.
        if len == 0 || offset + HEADER as u64 + len > size {
            return Ok(offset);
        }
        payload.resize(len as usize, 0);
        if reader.read_exact(&mut payload).is_err() {
            return Ok(offset);
        }
        let mut check = crc32fast::Hasher::new();
        check.update(&[kind]);
        check.update(&payload);
        if check.finalize() != crc {
            return Ok(offset);
        }
        each(offset + HEADER as u64, kind, &payload)?;
        offset += HEADER as u64 + len;
    }
}

/// Reads `file` from the start by position, leaving the handle's own cursor alone (the same
/// handle is shared with writers and readers that use positions too).
struct ReadAt<'a> {
    file: &'a File,
    position: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.file.read_at(buf, self.position)?;
        self.position += read as u64;
        Ok(read)
    }
}

/// Reads the payload of `len` bytes at `offset` (as [`read_records`] reported it).
pub(crate) fn read_payload(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut payload = vec![0u8; len];
    file.read_exact_at(&mut payload, offset)?;
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records_of(file: &File) -> Vec<(u64, u8, Vec<u8>)> {
        let mut out = Vec::new();
        let end = read_records::<io::Error>(file, |offset, kind, payload| {
            out.push((offset, kind, payload.to_vec()));
            Ok(())
        })
        .expect("read");
        let last = out.last().map_or(0, |(offset, _, payload)| offset + payload.len() as u64);
        assert_eq!(end, last, "the end is just after the last intact record");
        out
    }

    fn written(dir: &Path, records: &[(u8, &[u8])]) -> File {
        let file = create_segment(dir, 7, 4096).expect("create");
        let mut bytes = Vec::new();
        for (kind, payload) in records {
            frame(*kind, payload, &mut bytes).expect("frame");
        }
        file.write_all_at(&bytes, 0).expect("write");
        file
    }

    #[test]
    fn records_read_back_in_order_and_stop_at_unwritten_space() {
        let dir = tempfile::tempdir().expect("dir");
        let file = written(dir.path(), &[(1, b"first"), (2, b"second record")]);
        let records = records_of(&file);
        assert_eq!(
            records,
            vec![(HEADER as u64, 1, b"first".to_vec()), (2 * HEADER as u64 + 5, 2, b"second record".to_vec())]
        );
        assert_eq!(read_payload(&file, records[1].0, 13).expect("payload"), b"second record");
        assert_eq!(list_segments(dir.path()).expect("list"), vec![7]);
        assert_eq!(file.metadata().expect("meta").len(), 4096, "created at its full size");
    }

    #[test]
    fn a_damaged_record_ends_the_segment() {
        let dir = tempfile::tempdir().expect("dir");
        let file = written(dir.path(), &[(1, b"kept"), (1, b"damaged"), (1, b"after")]);
        // One flipped payload byte in the second record.
        file.write_all_at(b"X", (2 * HEADER + 4 + 2) as u64).expect("damage");
        assert_eq!(records_of(&file).len(), 1);
    }

    #[test]
    fn a_record_cut_short_ends_the_segment() {
        let dir = tempfile::tempdir().expect("dir");
        let file = written(dir.path(), &[(1, b"kept"), (1, b"cut short")]);
        file.set_len((2 * HEADER + 4 + 3) as u64).expect("cut");
        assert_eq!(records_of(&file).len(), 1);
        // A header claiming more bytes than the file holds.
        file.set_len((HEADER + 4 + 6) as u64).expect("cut");
        assert_eq!(records_of(&file).len(), 1);
    }

    #[test]
    fn a_reset_tail_leaves_no_stale_record_behind_the_end() {
        let dir = tempfile::tempdir().expect("dir");
        let file = written(dir.path(), &[(1, b"kept"), (1, b"stale but intact")]);
        reset_tail(&file, (HEADER + 4) as u64, 4096).expect("reset");
        assert_eq!(records_of(&file).len(), 1);
        assert_eq!(file.metadata().expect("meta").len(), 4096);
        // A shorter record written at the end is followed by unwritten space, not the old one.
        let mut bytes = Vec::new();
        frame(3, b"new", &mut bytes).expect("frame");
        file.write_all_at(&bytes, (HEADER + 4) as u64).expect("write");
        assert_eq!(records_of(&file).iter().map(|r| r.1).collect::<Vec<_>>(), vec![1, 3]);
    }
}
