//! Online backups: a point-in-time copy of a live node's ledger in one file, and the reader
//! that checks such a file (`keyledger admin backup` writes it, `keyledger admin restore`
//! reads it; `restore.rs` turns it into a data dir).
//!
//! File layout (format [`FORMAT_VERSION`]):
//!
//! ```text
//! "KLBACKUP"  u16 LE format version
//! frame: header   codec(BackupHeader): events N, head, Merkle root of 1..=N, time, source node
//! frame × N       each event 1..=N exactly as the ledger stores it (codec(LedgerEntry))
//! frame: trailer  codec(Trailer): N again and the SHA3-256 of every byte before this frame
//! end of file
//! ```
//!
//! A frame is a `u32 LE` length and that many bytes. The version sits before anything is
//! decoded, so a file of another version is named as such instead of failing to decode. The
//! trailer's digest catches a cut or a changed byte anywhere; the chain hashes and the Merkle
//! root (checked by the reader's caller, see `keyledger_audit::verify::EventCheck`) catch a file
//! rewritten consistently. A backup holds no secret: events carry digests, never keys, and
//! the cluster secret and the nodes' signing seeds live outside the ledger.
//!
//! Not in a backup: the idempotency table (its records name Raft log indexes of the old
//! cluster, and it forgets everything after 24 hours) and the Raft membership (a restore
//! founds a new cluster).

use std::io::Read;

use keyledger_model::merkle::TreeHash;
use keyledger_model::{ChainHead, LedgerEntry, Timestamp};
use serde::{Deserialize, Serialize};
use sha3::{Digest, Sha3_256};

use crate::codec;
use crate::event_blocks;
use crate::ledger::Ledger;
use crate::replay::check_content;
use crate::LedgerError;

const MAGIC: &[u8; 8] = b"KLBACKUP";
/// The format this version writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// The name in every header, so a file says what it is when decoded by hand.
pub const FORMAT_NAME: &str = "keyledger-backup";
/// No frame we write comes near this (an event is a few KiB at most); a larger length means a
/// damaged file, refused before anything is allocated for it.
const MAX_FRAME: usize = 16 * 1024 * 1024;
/// Events read from the ledger per chunk of a backup stream.
const CHUNK_EVENTS: u64 = 1024;

/// The first frame: what the file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupHeader {
    pub format: String,
    pub version: u16,
    /// Events 1..=`events` are in the file.
    pub events: u64,
    /// The last event's seq and chain hash.
    pub head: ChainHead,
    /// RFC 6962 root of the events 1..=`events`.
    pub merkle_root: TreeHash,
    /// When the node began the backup (its clock).
    pub created_at: Timestamp,
    /// The node it was taken from.
    pub source_node: u64,
}

/// The last frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Trailer {
    events: u64,
    sha3_256: [u8; 32],
}

fn invalid(why: impl Into<String>) -> LedgerError {
    LedgerError::Backup(why.into())
}

fn push_frame(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), LedgerError> {
    let len = u32::try_from(bytes.len()).ok().filter(|len| *len as usize <= MAX_FRAME);
    let len = len.ok_or_else(|| invalid(format!("a record of {} bytes", bytes.len())))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// A backup being produced from a live ledger, chunk by chunk ([`BackupStream::next_chunk`],
/// blocking: it reads sled). Events up to the head it was started at never change (the ledger
/// is append-only), so writes may go on meanwhile and the file is still one moment's.
pub struct BackupStream {
    ledger: Ledger,
    header: BackupHeader,
    /// The next event to send; `None` before the header went out.
    next_seq: Option<u64>,
    digest: Sha3_256,
    done: bool,
}

impl BackupStream {
    /// A backup of everything `ledger` holds now, stamped `created_at` by `source_node`.
    pub fn start(ledger: &Ledger, created_at: Timestamp, source_node: u64) -> Result<BackupStream, LedgerError> {
        // Under the state's read lock, the stored tree and the state end at the same event.
        let head = ledger.state().head();
        let merkle_root = ledger.merkle_root(head.seq)?;
        let header = BackupHeader {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            events: head.seq,
            head,
            merkle_root,
            created_at,
            source_node,
        };
        Ok(BackupStream { ledger: ledger.clone(), header, next_seq: None, digest: Sha3_256::new(), done: false })
    }

    pub fn header(&self) -> &BackupHeader {
        &self.header
    }

    /// The next bytes of the file, or `None` after the trailer.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, LedgerError> {
        if self.done {
            return Ok(None);
        }
        let mut chunk = Vec::new();
        match self.next_seq {
            None => {
                chunk.extend_from_slice(MAGIC);
                chunk.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
                push_frame(&mut chunk, &codec::encode(&self.header)?)?;
                self.next_seq = Some(1);
            }
            Some(from) if from <= self.header.events => {
                let to = self.header.events.min(from + CHUNK_EVENTS - 1);
                let mut expected = from;
                for block in event_blocks::blocks(self.ledger.read_tree()?, from, to) {
                    let (number, bytes) = block?;
                    for record in event_blocks::records(number, &bytes) {
                        let (seq, record) = record?;
                        if (from..=to).contains(&seq) {
                            push_frame(&mut chunk, record)?;
                            expected = seq + 1;
                        }
                    }
                }
                if expected != to + 1 {
                    return Err(LedgerError::Damaged { seq: expected, why: "missing from the stored ledger".into() });
                }
                self.next_seq = Some(to + 1);
            }
            Some(_) => {
                self.digest.update(&chunk);
                let digest = std::mem::take(&mut self.digest).finalize().into();
                push_frame(&mut chunk, &codec::encode(&Trailer { events: self.header.events, sha3_256: digest })?)?;
                self.done = true;
                return Ok(Some(chunk));
            }
        }
        self.digest.update(&chunk);
        Ok(Some(chunk))
    }
}

/// Passes reads through, hashing every byte.
struct Hashing<R> {
    inner: R,
    digest: Sha3_256,
    read: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digest.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// Reads a backup file front to back: the header at [`BackupReader::open`], then each event,
/// decoded and checked on its own (its hashes against its content, its key digest against its
/// commitment, its seq), then the trailer. Chains, the Merkle root and checkpoints are the
/// caller's to follow (they need every event before).
pub struct BackupReader<R: Read> {
    input: Hashing<R>,
    header: BackupHeader,
    next_seq: u64,
    frame: Vec<u8>,
    finished: bool,
}

impl<R: Read> BackupReader<R> {
    /// Reads and checks the magic, the version and the header.
    pub fn open(input: R) -> Result<BackupReader<R>, LedgerError> {
        let mut input = Hashing { inner: input, digest: Sha3_256::new(), read: 0 };
        let mut start = [0u8; 10];
        read_exact(&mut input, &mut start, "too short to be a keyledger backup")?;
        if &start[..8] != MAGIC {
            return Err(invalid("not a keyledger backup file"));
        }
        let version = u16::from_le_bytes([start[8], start[9]]);
        if version != FORMAT_VERSION {
            return Err(invalid(format!(
                "a backup of format version {version}; this keyledger reads version {FORMAT_VERSION} only"
            )));
        }
        let mut reader = BackupReader {
            input,
            header: BackupHeader {
                format: String::new(),
                version,
                events: 0,
                head: ChainHead::EMPTY,
                merkle_root: TreeHash([0; 32]),
                created_at: Timestamp(0),
                source_node: 0,
            },
            next_seq: 1,
            frame: Vec::new(),
            finished: false,
        };
        reader.read_frame("the header")?;
        let header: BackupHeader = codec::decode(&reader.frame).map_err(|e| invalid(format!("the header: {e}")))?;
        if header.format != FORMAT_NAME || header.version != FORMAT_VERSION || header.head.seq != header.events {
            return Err(invalid("the header does not describe a keyledger backup of this version"));
        }
        reader.header = header;
        Ok(reader)
    }

    pub fn header(&self) -> &BackupHeader {
        &self.header
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.input.read
    }

    /// The next event, checked on its own; `None` once all were read and the trailer and the
    /// end of the file check out.
    pub fn next_entry(&mut self) -> Result<Option<LedgerEntry>, LedgerError> {
        if self.finished {
            return Ok(None);
        }
        if self.next_seq > self.header.events {
            self.finish()?;
            return Ok(None);
        }
        let seq = self.next_seq;
        self.read_frame(&format!("event {seq}"))?;
        let entry = event_blocks::decode_at(seq, &self.frame).map_err(|e| invalid(format!("event {seq}: {e}")))?;
        check_content(&entry).map_err(|e| invalid(e.to_string()))?;
        self.next_seq += 1;
        Ok(Some(entry))
    }

    /// The trailer: the count and the digest of everything before it, then nothing more.
    fn finish(&mut self) -> Result<(), LedgerError> {
        let digest: [u8; 32] = self.input.digest.clone().finalize().into();
        self.read_frame("the trailer")?;
        let trailer: Trailer = codec::decode(&self.frame).map_err(|e| invalid(format!("the trailer: {e}")))?;
        if trailer.events != self.header.events {
            return Err(invalid("the trailer and the header disagree on the number of events"));
        }
        if trailer.sha3_256 != digest {
            return Err(invalid("the checksum does not match: the file was changed or damaged"));
        }
        let mut more = [0u8; 1];
        if read_some(&mut self.input, &mut more)? != 0 {
            return Err(invalid("bytes after the trailer"));
        }
        self.finished = true;
        Ok(())
    }

    /// Reads the next frame into `self.frame`; `what` names it in errors.
    fn read_frame(&mut self, what: &str) -> Result<(), LedgerError> {
        let mut len = [0u8; 4];
        read_exact(&mut self.input, &mut len, &format!("cut off before {what}: the file is truncated"))?;
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_FRAME {
            return Err(invalid(format!("{what} claims {len} bytes: the file is damaged")));
        }
        // Grown as bytes arrive, not sized by the length a damaged file claims.
        self.frame.clear();
        let read = (&mut self.input).take(len as u64).read_to_end(&mut self.frame)?;
        if read < len {
            return Err(invalid(format!("cut off inside {what}: the file is truncated")));
        }
        Ok(())
    }
}

fn read_some(input: &mut impl Read, buf: &mut [u8]) -> Result<usize, LedgerError> {
    loop {
        match input.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
}

fn read_exact(input: &mut impl Read, buf: &mut [u8], short: &str) -> Result<(), LedgerError> {
    let mut filled = 0;
    while filled < buf.len() {
        match read_some(input, &mut buf[filled..])? {
            0 => return Err(invalid(short)),
            n => filled += n,
        }
    }
    Ok(())
}
