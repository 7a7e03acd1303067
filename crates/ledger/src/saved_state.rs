//! The state saved beside the ledger (`<data-dir>/state.bin`), so that a restart decodes it and
//! replays only the events after it, instead of checking and replaying the whole ledger.
//!
//! File: the magic `KLSTATE` and a format byte, the body's length and CRC-32, then the body —
//! `codec`'s version byte and the bincode of `keyledger_model::saved::SavedStateRef`. It is
//! written to a temporary file, synced and renamed, so a crash leaves the old file or the new.
//! It is trusted only if its checksum holds and the stored ledger has, at the saved position,
//! the event with the saved hash (so it is this ledger's state, and the ledger still holds
//! everything it covers); otherwise the node starts the slow way, from the whole ledger.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use keyledger_model::saved::SavedState;
use keyledger_model::State;

use crate::codec::{self, CodecError};
use crate::event_blocks;
use crate::LedgerError;

/// The file in the data dir.
pub const FILE: &str = "state.bin";
const MAGIC: &[u8; 8] = b"KLSTATE\x01";
const HEADER: usize = MAGIC.len() + 8 + 4;

/// Where the state of the data dir `dir` is saved.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// A writer that counts and checksums what passes through it.
struct Summing<W> {
    inner: W,
    len: u64,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for Summing<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(bytes)?;
        self.crc.update(&bytes[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `state`'s saved form to a temporary file next to `path`, streamed (no copy of the
/// state in memory); returns the file. The caller holds the state's lock only for this, and
/// [`commit`]s the file once the ledger is durable up to the state's head.
pub(crate) fn write_temporary(path: &Path, state: &State) -> Result<PathBuf, LedgerError> {
    let temporary = path.with_extension("tmp");
    let mut file = File::create(&temporary)?;
    file.write_all(&[0; HEADER])?;
    let (len, crc) = {
        let mut body =
            Summing { inner: BufWriter::with_capacity(1 << 20, &mut file), len: 0, crc: crc32fast::Hasher::new() };
        body.write_all(&[codec::RECORD_VERSION])?;
        bincode::serde::encode_into_std_write(state.to_saved(), &mut body, bincode::config::standard())
            .map_err(|e| CodecError(e.to_string()))?;
        body.flush()?;
        (body.len, body.crc.clone().finalize())
    };
    let mut header = Vec::with_capacity(HEADER);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&len.to_le_bytes());
    header.extend_from_slice(&crc.to_le_bytes());
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&header)?;
    Ok(temporary)
}

/// Makes a written temporary file the saved state: synced, renamed over the old one, and the
/// directory synced.
pub(crate) fn commit(temporary: &Path, path: &Path) -> Result<(), LedgerError> {
    File::open(temporary)?.sync_all()?;
    std::fs::rename(temporary, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The saved state at `path` if there is one this ledger can continue from; why not otherwise
/// (`Ok(None)` when there is no file at all).
pub(crate) fn load(path: &Path, tree: &sled::Tree) -> Result<Option<State>, String> {
    // Read whole (sized from the file's length): the checksum is checked before decoding.
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    if bytes.len() < HEADER || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a saved state of this format".into());
    }
    let len = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes"));
    let body = &bytes[HEADER..];
    if body.len() as u64 != len || crc32fast::hash(body) != crc {
        return Err("its checksum does not match (a torn or damaged file)".into());
    }
    // Checked above, and written by this node: decoded without the limit on peers' bytes.
    let saved: SavedState = match body.split_first() {
        Some((&codec::RECORD_VERSION, rest)) => {
            bincode::serde::decode_from_slice(rest, bincode::config::standard())
                .map_err(|e| format!("it does not decode: {e}"))?
                .0
        }
        _ => return Err("unknown record version".into()),
    };
    drop(bytes);
    let head = saved.head();
    let stored = event_blocks::get(tree, head.seq).map_err(|e| format!("reading the ledger: {e}"))?;
    let matches = match stored {
        None => head.seq == 0,
        Some(entry) => entry.event.hash == head.hash,
    };
    if !matches {
        return Err(format!("the ledger holds no event {} with its hash", head.seq));
    }
    Ok(Some(State::from_saved(saved)))
}
