//! Stored events, in blocks: `b` + big-endian block number → the entries of up to
//! [`BLOCK_EVENTS`] consecutive events, each a little-endian `u32` length and the entry as
//! `codec` encodes it. Block `n` holds the events from seq `n * BLOCK_EVENTS + 1` on, so a
//! record's seq is its position and the bytes of a block are a function of the events alone.
//!
//! Why blocks: sled's cost is per insert (a page delta, a node copy, a leaf split every 16
//! keys), and one insert per event was the largest part of sled's share of an apply
//! (docs/benchmarks.md). A batch now inserts a block once per 32 events, and once more for the
//! block it leaves open. Reading one event reads its block and skips the records before it
//! without decoding them.

use keyledger_model::LedgerEntry;

use crate::codec;
use crate::LedgerError;

pub(crate) const BLOCK_PREFIX: u8 = b'b';

/// Events per block: a block of renames is about 8 KB.
pub(crate) const BLOCK_EVENTS: u64 = 32;

/// Events were stored one per key (`e` + big-endian seq) before blocks; a data dir written so
/// is moved into blocks when it is opened ([`move_legacy_events`]).
pub(crate) const LEGACY_EVENT_PREFIX: u8 = b'e';

/// Legacy events moved per sled batch.
const MOVE_BATCH: usize = 4096;
/// A move logs its progress about every this many events.
const PROGRESS_EVERY: u64 = 1 << 20;

pub(crate) fn block_of(seq: u64) -> u64 {
    seq.saturating_sub(1) / BLOCK_EVENTS
}

fn first_seq(block: u64) -> u64 {
    block * BLOCK_EVENTS + 1
}

pub(crate) fn block_key(block: u64) -> [u8; 9] {
    let mut key = [BLOCK_PREFIX; 9];
    key[1..].copy_from_slice(&block.to_be_bytes());
    key
}

fn block_number(key: &[u8]) -> Result<u64, LedgerError> {
    match key {
        [BLOCK_PREFIX, number @ ..] if number.len() == 8 => Ok(u64::from_be_bytes(number.try_into().expect("8 bytes"))),
        _ => Err(LedgerError::Damaged { seq: 0, why: "an event block's key is malformed".into() }),
    }
}

/// The records of the block `block`: each event's seq and where its bytes are.
pub(crate) fn records(block: u64, bytes: &[u8]) -> Records<'_> {
    Records { bytes, at: 0, next_seq: first_seq(block), last_seq: first_seq(block) + BLOCK_EVENTS - 1 }
}

pub(crate) struct Records<'a> {
    bytes: &'a [u8],
    at: usize,
    next_seq: u64,
    last_seq: u64,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<(u64, &'a [u8]), LedgerError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.bytes[self.at..];
        if rest.is_empty() {
            return None;
        }
        let seq = self.next_seq;
        let damaged = |why: &str| LedgerError::Damaged { seq, why: why.to_string() };
        let record = if seq > self.last_seq {
            Err(damaged("an event block holds more events than a block can"))
        } else if rest.len() < 4 {
            Err(damaged("an event block ends inside a record's length"))
        } else {
            let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
            match rest.get(4..4 + len) {
                Some(record) => {
                    self.at += 4 + len;
                    self.next_seq += 1;
                    Ok((seq, record))
                }
                None => Err(damaged("an event block ends inside a record")),
            }
        };
        if record.is_err() {
            // Nothing after a damaged record can be trusted.
            self.at = self.bytes.len();
        }
        Some(record)
    }
}

/// The entry whose stored bytes are `bytes`, which must be the event at `seq`.
pub(crate) fn decode_at(seq: u64, bytes: &[u8]) -> Result<LedgerEntry, LedgerError> {
    let entry: LedgerEntry = codec::decode(bytes)?;
    if entry.event.seq != seq {
        return Err(LedgerError::Damaged {
            seq,
            why: format!("the event stored at seq {seq} says it is {}", entry.event.seq),
        });
    }
    Ok(entry)
}

/// How many of the bytes of block `block` hold its events up to `seq` (all of them for a block
/// that ends before `seq`). Records are framed as snapshots frame events, so this is also how
/// much of the block a snapshot of the first `seq` events carries.
pub(crate) fn bytes_through(block: u64, bytes: &[u8], seq: u64) -> Result<usize, LedgerError> {
    if block_of(seq) > block {
        return Ok(bytes.len());
    }
    let mut len = 0;
    for record in records(block, bytes) {
        let (at, record) = record?;
        if at > seq {
            break;
        }
        len = record.as_ptr() as usize - bytes.as_ptr() as usize + record.len();
    }
    Ok(len)
}

/// The stored event at `seq`, if there is one.
pub(crate) fn get(tree: &sled::Tree, seq: u64) -> Result<Option<LedgerEntry>, LedgerError> {
    if seq == 0 {
        return Ok(None);
    }
    let block = block_of(seq);
    let Some(bytes) = tree.get(block_key(block))? else {
        return Ok(None);
    };
    for record in records(block, &bytes) {
        let (at, record) = record?;
        if at == seq {
            return decode_at(seq, record).map(Some);
        }
    }
    Ok(None)
}

/// The stored blocks that hold events of `from..=to`, in order, with their numbers.
pub(crate) fn blocks(
    tree: &sled::Tree,
    from: u64,
    to: u64,
) -> impl Iterator<Item = Result<(u64, sled::IVec), LedgerError>> + '_ {
    let range = (from <= to && to > 0).then(|| tree.range(block_key(block_of(from.max(1)))..=block_key(block_of(to))));
    range.into_iter().flatten().map(|item| {
        let (key, bytes) = item?;
        Ok((block_number(&key)?, bytes))
    })
}

/// The stored events of `from..=to`, decoded, oldest first.
pub(crate) fn entries(
    tree: &sled::Tree,
    from: u64,
    to: u64,
) -> impl Iterator<Item = Result<LedgerEntry, LedgerError>> + '_ {
    blocks(tree, from, to).flat_map(move |block| {
        let decoded: Vec<Result<LedgerEntry, LedgerError>> = match block {
            Ok((number, bytes)) => records(number, &bytes)
                .filter(|record| record.as_ref().map_or(true, |(seq, _)| (from..=to).contains(seq)))
                .map(|record| record.and_then(|(seq, bytes)| decode_at(seq, bytes)))
                .collect(),
            Err(e) => vec![Err(e)],
        };
        decoded
    })
}

/// The last stored event, if any.
pub(crate) fn last(tree: &sled::Tree) -> Result<Option<LedgerEntry>, LedgerError> {
    let Some(item) = tree.scan_prefix([BLOCK_PREFIX]).next_back() else {
        return Ok(None);
    };
    let (key, bytes) = item?;
    let mut last = None;
    for record in records(block_number(&key)?, &bytes) {
        last = Some(record?);
    }
    last.map(|(seq, record)| decode_at(seq, record)).transpose()
}

/// Writes events into blocks: complete blocks go into the batch as they fill, and the block the
/// last event leaves open is kept here until [`BlockWriter::seal`] puts it in as far as it is
/// filled. A writer continuing a stored ledger reads the stored part of its first block.
pub(crate) struct BlockWriter {
    open: Option<OpenBlock>,
    stored: Option<sled::Tree>,
}

struct OpenBlock {
    block: u64,
    events: u64,
    bytes: Vec<u8>,
}

impl BlockWriter {
    /// A writer whose first event starts a block, or continues the one `stored` holds.
    pub(crate) fn new(stored: Option<sled::Tree>) -> BlockWriter {
        BlockWriter { open: None, stored }
    }

    /// Adds the event at `seq`, whose entry `codec` encoded as `encoded`. Events come in seq
    /// order without gaps.
    pub(crate) fn put(&mut self, batch: &mut sled::Batch, seq: u64, encoded: &[u8]) -> Result<(), LedgerError> {
        self.put_with(batch, seq, |out| {
            out.extend_from_slice(encoded);
            Ok(())
        })
    }

    /// Adds the event at `seq`, encoded by `encode` straight into the block (no copy of its
    /// own). On an error nothing is added.
    pub(crate) fn put_with(
        &mut self,
        batch: &mut sled::Batch,
        seq: u64,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        let block = block_of(seq);
        if self.open.as_ref().is_some_and(|open| open.block != block) {
            return Err(LedgerError::Damaged { seq, why: "events are not written in order".into() });
        }
        let open = match &mut self.open {
            Some(open) => open,
            None => self.open.insert(self.stored_part(block)?),
        };
        if first_seq(block) + open.events != seq {
            return Err(LedgerError::Damaged {
                seq,
                why: format!("the ledger's next event is {}", first_seq(block) + open.events),
            });
        }
        let start = open.bytes.len();
        open.bytes.extend_from_slice(&[0; 4]);
        let written = encode(&mut open.bytes).and_then(|()| {
            u32::try_from(open.bytes.len() - start - 4)
                .map_err(|_| LedgerError::Damaged { seq, why: "an event over 4 GiB".into() })
        });
        let len = match written {
            Ok(len) => len,
            Err(e) => {
                open.bytes.truncate(start);
                return Err(e);
            }
        };
        open.bytes[start..start + 4].copy_from_slice(&len.to_le_bytes());
        open.events += 1;
        if open.events == BLOCK_EVENTS {
            let full = self.open.take().expect("just filled");
            batch.insert(&block_key(full.block), full.bytes);
        }
        Ok(())
    }

    /// Puts the open block, as far as it is filled, into `batch`; it stays open for more.
    pub(crate) fn seal(&self, batch: &mut sled::Batch) {
        if let Some(open) = &self.open {
            batch.insert(&block_key(open.block), open.bytes.as_slice());
        }
    }

    /// What is stored of `block`, to continue it.
    fn stored_part(&self, block: u64) -> Result<OpenBlock, LedgerError> {
        let stored = match &self.stored {
            Some(tree) => tree.get(block_key(block))?,
            None => None,
        };
        let Some(bytes) = stored else {
            return Ok(OpenBlock { block, events: 0, bytes: Vec::with_capacity(8 * 1024) });
        };
        let mut events = 0;
        for record in records(block, &bytes) {
            record?;
            events += 1;
        }
        Ok(OpenBlock { block, events, bytes: bytes.to_vec() })
    }
}

/// Moves events an older version stored one per key into blocks, a bounded batch at a time.
/// Each batch writes the blocks of the events it moves and removes their keys, atomically, so a
/// crash leaves blocks for a prefix of the ledger and single keys for the rest, and the next
/// open goes on from there.
pub(crate) fn move_legacy_events(db: &sled::Db) -> Result<(), LedgerError> {
    let tree = db.open_tree("ledger")?;
    let mut moved = 0u64;
    loop {
        let mut batch = sled::Batch::default();
        let mut writer = BlockWriter::new(Some(tree.clone()));
        let mut in_batch = 0;
        for item in tree.scan_prefix([LEGACY_EVENT_PREFIX]).take(MOVE_BATCH) {
            let (key, value) = item?;
            let seq = match key.as_ref() {
                [LEGACY_EVENT_PREFIX, seq @ ..] if seq.len() == 8 => {
                    u64::from_be_bytes(seq.try_into().expect("8 bytes"))
                }
                _ => return Err(LedgerError::Damaged { seq: 0, why: "a stored event's key is malformed".into() }),
            };
            writer.put(&mut batch, seq, &value)?;
            batch.remove(key);
            in_batch += 1;
        }
        if in_batch == 0 {
            break;
        }
        writer.seal(&mut batch);
        tree.apply_batch(batch)?;
        moved += in_batch as u64;
        // A large ledger takes a while (about 13 s per million events): say that it moves.
        if moved % PROGRESS_EVERY < in_batch as u64 {
            tracing::info!(events = moved, "moving the stored events into blocks");
        }
    }
    if moved > 0 {
        db.flush()?;
        tracing::info!(events = moved, "moved the stored events into blocks");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_tree() -> (sled::Db, sled::Tree) {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("ledger").unwrap();
        (db, tree)
    }

    fn event_bytes(seq: u64) -> Vec<u8> {
        // Of varied lengths, so record boundaries move.
        vec![seq as u8; 1 + (seq as usize * 7) % 50]
    }

    /// Writes `seqs` in batches of the given sizes, each batch sealed and applied.
    fn write(tree: &sled::Tree, seqs: std::ops::RangeInclusive<u64>, batch_sizes: &[usize]) {
        let seqs: Vec<u64> = seqs.collect();
        let mut at = 0;
        for (i, &size) in batch_sizes.iter().cycle().enumerate() {
            if at >= seqs.len() {
                break;
            }
            let mut batch = sled::Batch::default();
            let mut writer = BlockWriter::new(Some(tree.clone()));
            for &seq in &seqs[at..(at + size).min(seqs.len())] {
                writer.put(&mut batch, seq, &event_bytes(seq)).unwrap();
            }
            at += size;
            // Sealing twice, as a retried write does, changes nothing.
            writer.seal(&mut batch);
            if i % 2 == 0 {
                writer.seal(&mut batch);
            }
            tree.apply_batch(batch).unwrap();
        }
    }

    /// Every stored event's bytes with its seq, for the events of `from..=to` that are stored, in
    /// order: `each` is called for each.
    fn for_each_raw(
        tree: &sled::Tree,
        from: u64,
        to: u64,
        mut each: impl FnMut(u64, &[u8]) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        for block in blocks(tree, from, to) {
            let (number, bytes) = block?;
            for record in records(number, &bytes) {
                let (seq, record) = record?;
                if (from..=to).contains(&seq) {
                    each(seq, record)?;
                }
            }
        }
        Ok(())
    }

    fn raw(tree: &sled::Tree, from: u64, to: u64) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        for_each_raw(tree, from, to, |seq, bytes| {
            out.push((seq, bytes.to_vec()));
            Ok(())
        })
        .unwrap();
        out
    }

    fn stored(tree: &sled::Tree) -> Vec<(Vec<u8>, Vec<u8>)> {
        tree.iter().map(|item| item.unwrap()).map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
    }

    #[test]
    fn events_read_back_by_seq_and_range_across_block_edges() {
        let (_db, tree) = temp_tree();
        write(&tree, 1..=100, &[1, 5, 31, 32, 33]);
        let all = raw(&tree, 1, 100);
        assert_eq!(all.len(), 100);
        for (i, (seq, bytes)) in all.iter().enumerate() {
            assert_eq!(*seq, i as u64 + 1);
            assert_eq!(*bytes, event_bytes(*seq));
        }
        for (from, to) in [(1, 1), (32, 33), (33, 64), (31, 97), (64, 65), (100, 100), (90, 200), (101, 200)] {
            let expected: Vec<u64> = (from..=to.min(100)).collect();
            let got: Vec<u64> = raw(&tree, from, to).into_iter().map(|(seq, _)| seq).collect();
            assert_eq!(got, expected, "{from}..={to}");
        }
        assert!(raw(&tree, 5, 4).is_empty());
        assert!(raw(&tree, 0, 0).is_empty());
    }

    #[test]
    fn the_stored_blocks_do_not_depend_on_how_events_were_batched() {
        let (_db, one) = temp_tree();
        let (_db2, other) = temp_tree();
        write(&one, 1..=150, &[150]);
        write(&other, 1..=150, &[1, 2, 3, 7, 32, 64]);
        assert_eq!(stored(&one), stored(&other));
        assert_eq!(stored(&one).len(), 5, "blocks of 32, 32, 32, 32 and 22 events");
    }

    #[test]
    fn a_writer_refuses_an_event_out_of_order() {
        let (_db, tree) = temp_tree();
        write(&tree, 1..=10, &[10]);
        let mut batch = sled::Batch::default();
        let mut writer = BlockWriter::new(Some(tree.clone()));
        assert!(writer.put(&mut batch, 12, b"x").is_err(), "a gap");
        let mut writer = BlockWriter::new(Some(tree.clone()));
        assert!(writer.put(&mut batch, 10, b"x").is_err(), "a repeat");
        let mut writer = BlockWriter::new(Some(tree.clone()));
        writer.put(&mut batch, 11, b"x").unwrap();
        assert!(writer.put(&mut batch, 40, b"x").is_err(), "a jump to another block");
    }

    #[test]
    fn an_event_that_fails_to_encode_adds_nothing() {
        let (_db, tree) = temp_tree();
        write(&tree, 1..=3, &[3]);
        let mut batch = sled::Batch::default();
        let mut writer = BlockWriter::new(Some(tree.clone()));
        let failed = writer.put_with(&mut batch, 4, |out| {
            out.extend_from_slice(b"half");
            Err(LedgerError::Damaged { seq: 4, why: "encoding failed".into() })
        });
        assert!(failed.is_err());
        writer.put(&mut batch, 4, &event_bytes(4)).unwrap();
        writer.seal(&mut batch);
        tree.apply_batch(batch).unwrap();
        assert_eq!(raw(&tree, 1, 4), (1..=4).map(|seq| (seq, event_bytes(seq))).collect::<Vec<_>>());
    }

    #[test]
    fn a_damaged_block_is_an_error_not_a_panic() {
        let (_db, tree) = temp_tree();
        write(&tree, 1..=20, &[20]);
        let whole = tree.get(block_key(0)).unwrap().unwrap();
        for cut in [1, 3, 5, whole.len() - 1] {
            tree.insert(block_key(0), &whole[..cut]).unwrap();
            let mut seen = 0;
            let result = for_each_raw(&tree, 1, 20, |_, _| {
                seen += 1;
                Ok(())
            });
            assert!(result.is_err(), "cut at {cut}");
            assert!(seen < 20);
            let mut batch = sled::Batch::default();
            assert!(BlockWriter::new(Some(tree.clone())).put(&mut batch, 21, b"x").is_err());
        }
        // More records than a block holds.
        let mut overfull = Vec::new();
        for _ in 0..=BLOCK_EVENTS {
            overfull.extend(1u32.to_le_bytes());
            overfull.push(0);
        }
        tree.insert(block_key(0), overfull).unwrap();
        assert!(for_each_raw(&tree, 1, 40, |_, _| Ok(())).is_err());
    }

    #[test]
    fn legacy_events_move_into_the_same_blocks_even_when_interrupted() {
        let (_db, written) = temp_tree();
        write(&written, 1..=5000, &[300]);
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("ledger").unwrap();
        // As an interrupted move leaves it: blocks for 1..=70 (the last one open), single keys
        // for the rest.
        write(&tree, 1..=70, &[70]);
        for seq in 71..=5000u64 {
            let mut key = vec![LEGACY_EVENT_PREFIX];
            key.extend(seq.to_be_bytes());
            tree.insert(key, event_bytes(seq)).unwrap();
        }
        move_legacy_events(&db).unwrap();
        assert_eq!(stored(&tree), stored(&written));
        // A second open finds nothing to move.
        move_legacy_events(&db).unwrap();
        assert_eq!(stored(&tree), stored(&written));
    }
}
