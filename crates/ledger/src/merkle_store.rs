//! The ledger's Merkle tree (RFC 6962 over every event's chain hash), stored beside the events
//! under `t` + level + big-endian index: one 32-byte node per complete subtree of
//! [`STORED_FROM_LEVEL`] levels or more, written in the same sled batch as the event that
//! completes it. Smaller subtrees are hashed again from their (at most 8) events when asked for.
//! Roots and proofs for any size are then a few point reads, never a pass over the events.

use std::collections::HashMap;

use keyledger_model::merkle::{self, Frontier, NodeSource, TreeHash};
use keyledger_model::{ChainHash, LedgerEntry};

use crate::codec;
use crate::event_blocks::{self, BlockWriter};
use crate::indexes::{put_indexes, AccountRun, IndexTails};
use crate::ledger::Ledger;
use crate::LedgerError;

pub(crate) const TREE_PREFIX: u8 = b't';

/// Nodes below this level are not stored. Storing every node cost two sled inserts per event
/// (sled splits a leaf every 16 keys, so each insert is dear), and was most of what applying an
/// event cost; from level 4 it is one insert per 8 events, and a proof re-hashes at most 15
/// events for its lowest siblings.
pub(crate) const STORED_FROM_LEVEL: u32 = 4;

/// Marks a ledger whose tree follows this layout, written when a data dir is first opened.
/// Every later batch (apply, snapshot install, rebuild) keeps the layout. A data dir without it
/// was written by an older version; opening it moves it to this layout once.
pub(crate) const TREE_LAYOUT: &[u8] = b"m:tree-layout";
const TREE_LAYOUT_VERSION: &[u8] = &[2];

pub(crate) fn node_key(level: u32, index: u64) -> [u8; 10] {
    let mut key = [TREE_PREFIX; 10];
    // Levels stay below 64 (a tree of u64 leaves); one byte keeps every level's range apart.
    key[1] = level as u8;
    key[2..].copy_from_slice(&index.to_be_bytes());
    key
}

/// The leaf of the event at `seq` is its chain hash, at index `seq - 1`.
pub(crate) fn leaf_of(hash: &ChainHash) -> TreeHash {
    merkle::leaf_hash(&hash.0)
}

/// Is this data dir's tree in the current layout? Not when it has no marker: it was written
/// before layouts were marked, and is moved to this one. A marker this version does not know (a
/// newer version's layout) is refused: taking it for an older layout would "move" nodes this
/// version cannot read.
pub(crate) fn has_current_layout(tree: &sled::Tree) -> Result<bool, LedgerError> {
    match tree.get(TREE_LAYOUT)? {
        None => Ok(false),
        Some(layout) if layout.as_ref() == TREE_LAYOUT_VERSION => Ok(true),
        Some(layout) => Err(LedgerError::Damaged {
            seq: 0,
            why: format!("the Merkle tree is stored in layout {:?}, which this version does not know", layout.as_ref()),
        }),
    }
}

/// Into `batch`: removes the nodes an older layout stored below [`STORED_FROM_LEVEL`], and
/// marks the tree as in the current layout.
pub(crate) fn move_to_current_layout(tree: &sled::Tree, batch: &mut sled::Batch) -> Result<(), LedgerError> {
    for level in 0..STORED_FROM_LEVEL {
        for item in tree.range(node_key(level, 0)..=node_key(level, u64::MAX)) {
            batch.remove(item?.0);
        }
    }
    batch.insert(TREE_LAYOUT, TREE_LAYOUT_VERSION);
    Ok(())
}

/// Nodes at this level and above (subtrees of 256 events and more) are also kept in memory:
/// 2 per 256 events (under 300 KB per million), and a proof then reads at most the few
/// nodes below from sled.
pub(crate) const CACHED_FROM_LEVEL: u32 = 8;

/// The in-memory copy of the upper levels: `levels[l - CACHED_FROM_LEVEL][index]`.
#[derive(Debug, Default)]
pub(crate) struct UpperLevels {
    levels: Vec<Vec<TreeHash>>,
}

impl UpperLevels {
    /// Reads the upper levels of the stored tree.
    pub(crate) fn load(tree: &sled::Tree) -> Result<UpperLevels, LedgerError> {
        let mut upper = UpperLevels::default();
        for level in CACHED_FROM_LEVEL..64 {
            let mut nodes = Vec::new();
            for item in tree.range(node_key(level, 0)..=node_key(level, u64::MAX)) {
                let (_, value) = item?;
                nodes.push(TreeHash(value.as_ref().try_into().map_err(|_| LedgerError::Damaged {
                    seq: 0,
                    why: format!("a Merkle node at level {level} is not 32 bytes"),
                })?));
            }
            if nodes.is_empty() {
                break;
            }
            upper.levels.push(nodes);
        }
        Ok(upper)
    }

    pub(crate) fn get(&self, level: u32, index: u64) -> Option<TreeHash> {
        let nodes = self.levels.get(level.checked_sub(CACHED_FROM_LEVEL)? as usize)?;
        nodes.get(usize::try_from(index).ok()?).copied()
    }

    /// Adds nodes completed by an applied batch, in the order they were completed.
    pub(crate) fn extend(&mut self, nodes: &[(u32, u64, TreeHash)]) {
        for &(level, index, hash) in nodes {
            let at = (level - CACHED_FROM_LEVEL) as usize;
            if self.levels.len() <= at {
                self.levels.resize_with(at + 1, Vec::new);
            }
            // Nodes complete left to right, so each is the next of its level.
            if self.levels[at].len() as u64 == index {
                self.levels[at].push(hash);
            }
        }
    }
}

/// Stored nodes, read from sled; nodes below [`STORED_FROM_LEVEL`] hashed from their events.
pub(crate) struct StoredNodes<'a>(pub(crate) &'a sled::Tree);

impl NodeSource for StoredNodes<'_> {
    type Error = LedgerError;

    fn node(&self, level: u32, index: u64) -> Result<TreeHash, LedgerError> {
        if level < STORED_FROM_LEVEL {
            return self.hashed_from_events(level, index);
        }
        let bytes = self.0.get(node_key(level, index))?.ok_or_else(|| LedgerError::Damaged {
            seq: (index << level) + 1,
            why: format!("Merkle node {level}/{index} is not stored"),
        })?;
        let hash: [u8; 32] = bytes.as_ref().try_into().map_err(|_| LedgerError::Damaged {
            seq: (index << level) + 1,
            why: "Merkle node is not 32 bytes".into(),
        })?;
        Ok(TreeHash(hash))
    }
}

impl StoredNodes<'_> {
    /// The perfect subtree of `2^level` events starting at leaf `index << level`.
    fn hashed_from_events(&self, level: u32, index: u64) -> Result<TreeHash, LedgerError> {
        let first = (index << level) + 1;
        let last = (index + 1) << level;
        let mut hashes = Vec::with_capacity(1 << level);
        for entry in event_blocks::entries(self.0, first, last) {
            hashes.push(leaf_of(&entry?.event.hash));
        }
        if hashes.len() as u64 != last - first + 1 {
            return Err(LedgerError::Damaged {
                seq: first,
                why: format!("events {first}..={last} for Merkle node {level}/{index} are not all stored"),
            });
        }
        while hashes.len() > 1 {
            hashes = hashes.chunks(2).map(|pair| merkle::node_hash(&pair[0], &pair[1])).collect();
        }
        Ok(hashes[0])
    }
}

/// The number of leaves of a tree stored in the older layout (every level): one past the last
/// level-0 node.
pub(crate) fn legacy_stored_size(tree: &sled::Tree) -> Result<u64, LedgerError> {
    let leaves = node_key(0, 0)..=node_key(0, u64::MAX);
    Ok(match tree.range(leaves).next_back() {
        Some(item) => {
            let (key, _) = item?;
            let mut index = [0u8; 8];
            index.copy_from_slice(&key[2..]);
            u64::from_be_bytes(index) + 1
        }
        None => 0,
    })
}

/// Ledger entries on their way into one sled batch: events (in blocks), their index records and the
/// Merkle nodes they complete. Nodes not yet written are kept here too, so a checkpoint can be
/// checked against events applied earlier in the same batch.
pub(crate) struct LedgerBatch {
    batch: sled::Batch,
    events: BlockWriter,
    frontier: Frontier,
    unwritten: HashMap<(u32, u64), TreeHash>,
    upper: Vec<(u32, u64, TreeHash)>,
    /// What the next event's index records continue.
    tails: IndexTails,
}

/// How an applied batch grew the tree: its new right edge and the upper-level nodes it
/// completed; and the account-index run its last event ends.
pub(crate) struct TreeGrowth {
    pub(crate) frontier: Frontier,
    pub(crate) upper: Vec<(u32, u64, TreeHash)>,
    pub(crate) account_tail: Option<AccountRun>,
}

impl LedgerBatch {
    /// A batch that continues a tree whose right edge is `frontier`, writing indexes (and
    /// events, if any) from scratch: a ledger built from its first event.
    pub(crate) fn new(frontier: Frontier) -> LedgerBatch {
        LedgerBatch {
            batch: sled::Batch::default(),
            events: BlockWriter::new(None),
            frontier,
            unwritten: HashMap::new(),
            upper: Vec::new(),
            tails: IndexTails::fresh(),
        }
    }

    /// A batch that continues everything `ledger` has stored.
    pub(crate) fn continuing(ledger: &Ledger) -> LedgerBatch {
        LedgerBatch {
            events: BlockWriter::new(Some(ledger.tree().clone())),
            tails: IndexTails::continuing(ledger),
            ..LedgerBatch::new(ledger.frontier())
        }
    }

    /// A batch that continues what `tree` stores, up to `frontier`'s size (a snapshot install
    /// writing in many batches).
    pub(crate) fn continuing_stored(tree: &sled::Tree, frontier: Frontier) -> Result<LedgerBatch, LedgerError> {
        let tails = IndexTails::continuing_stored(tree, frontier.size())?;
        Ok(LedgerBatch { events: BlockWriter::new(Some(tree.clone())), tails, ..LedgerBatch::new(frontier) })
    }

    pub(crate) fn put(&mut self, entry: &LedgerEntry) -> Result<(), LedgerError> {
        let encode = |out: &mut Vec<u8>| Ok(codec::encode_into(entry, out)?);
        self.events.put_with(&mut self.batch, entry.event.seq, encode)?;
        self.put_derived(entry)
    }

    /// The index records and Merkle nodes of an event that is stored already.
    pub(crate) fn put_derived(&mut self, entry: &LedgerEntry) -> Result<(), LedgerError> {
        put_indexes(&mut self.batch, &mut self.tails, entry)?;
        self.put_tree_only(entry);
        Ok(())
    }

    /// Only the Merkle nodes `entry` completes (the event itself is stored already).
    pub(crate) fn put_tree_only(&mut self, entry: &LedgerEntry) {
        let (batch, unwritten, upper) = (&mut self.batch, &mut self.unwritten, &mut self.upper);
        self.frontier.push(leaf_of(&entry.event.hash), |level, index, hash| {
            // Every node is kept for the batch's own checks; only the upper ones are stored.
            if level >= STORED_FROM_LEVEL {
                batch.insert(&node_key(level, index), &hash.0);
            }
            unwritten.insert((level, index), hash);
            if level >= CACHED_FROM_LEVEL {
                upper.push((level, index, hash));
            }
        });
    }

    /// Other writes that must land atomically with the entries.
    pub(crate) fn sled_batch(&mut self) -> &mut sled::Batch {
        &mut self.batch
    }

    /// A copy of the sled batch as it stands, with the open event block as far as it is filled
    /// (the batch goes on staging).
    pub(crate) fn sealed_batch(&mut self) -> sled::Batch {
        self.events.seal(&mut self.batch);
        self.batch.clone()
    }

    /// How the tree has grown so far (the batch goes on staging): its right edge, the upper
    /// nodes completed since the last call, and the account run the last event ends.
    pub(crate) fn growth(&mut self) -> TreeGrowth {
        TreeGrowth {
            frontier: self.frontier.clone(),
            upper: std::mem::take(&mut self.upper),
            account_tail: self.tails.account.clone(),
        }
    }

    /// Is `(root, head)` the tree root and last chain hash of the first `size` events?
    pub(crate) fn tree_matches(
        &self,
        tree: &sled::Tree,
        size: u64,
        root: &TreeHash,
        head: &ChainHash,
    ) -> Result<bool, LedgerError> {
        if size == 0 || size > self.frontier.size() {
            return Ok(false);
        }
        let nodes = Overlay { unwritten: &self.unwritten, stored: StoredNodes(tree) };
        Ok(nodes.node(0, size - 1)? == leaf_of(head) && merkle::root(&nodes, size)? == *root)
    }

    /// The sled batch to apply, and how the tree grows once it is applied.
    pub(crate) fn finish(mut self) -> (sled::Batch, TreeGrowth) {
        self.events.seal(&mut self.batch);
        (self.batch, TreeGrowth { frontier: self.frontier, upper: self.upper, account_tail: self.tails.account })
    }
}

/// Nodes of this batch first, then the stored ones.
struct Overlay<'a> {
    unwritten: &'a HashMap<(u32, u64), TreeHash>,
    stored: StoredNodes<'a>,
}

impl NodeSource for Overlay<'_> {
    type Error = LedgerError;

    fn node(&self, level: u32, index: u64) -> Result<TreeHash, LedgerError> {
        match self.unwritten.get(&(level, index)) {
            Some(hash) => Ok(*hash),
            None => self.stored.node(level, index),
        }
    }
}

/// The Merkle tree's right edge for a ledger of `head_seq` events. Every batch writes events and
/// tree together, so a data dir in the current layout has a tree of exactly `head_seq` leaves.
/// An older data dir — written before the tree existed, or storing every level of it — gets its
/// missing nodes built from the stored events and its low levels removed, once.
pub(crate) fn open_tree(db: &sled::Db, tree: &sled::Tree, head_seq: u64) -> Result<Frontier, LedgerError> {
    if has_current_layout(tree)? {
        return Frontier::from_source(&StoredNodes(tree), head_seq);
    }
    let stored = legacy_stored_size(tree)?;
    if stored > head_seq {
        return Err(LedgerError::Damaged {
            seq: stored,
            why: "the Merkle tree has more leaves than the ledger".into(),
        });
    }
    let frontier = Frontier::from_source(&StoredNodes(tree), stored)?;
    let mut batch = LedgerBatch::new(frontier);
    move_to_current_layout(tree, batch.sled_batch())?;
    for entry in event_blocks::entries(tree, stored + 1, head_seq) {
        batch.put_tree_only(&entry?);
    }
    let (batch, growth) = batch.finish();
    tree.apply_batch(batch)?;
    db.flush()?;
    tracing::info!(from = stored, to = head_seq, "moved the Merkle tree to the current layout");
    Ok(growth.frontier)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> sled::Tree {
        sled::Config::new().temporary(true).open().unwrap().open_tree("ledger").unwrap()
    }

    #[test]
    fn a_tree_layout_this_version_does_not_know_is_refused_not_taken_for_an_older_one() {
        let tree = tree();
        assert!(!has_current_layout(&tree).unwrap(), "no marker: an older data dir, moved on open");
        tree.insert(TREE_LAYOUT, TREE_LAYOUT_VERSION).unwrap();
        assert!(has_current_layout(&tree).unwrap());
        tree.insert(TREE_LAYOUT, &[3u8][..]).unwrap();
        let error = has_current_layout(&tree).expect_err("layout 3 is not known here");
        assert!(error.to_string().contains("does not know"), "{error}");
    }

    #[test]
    fn a_stored_node_of_another_width_is_refused_not_misread() {
        let tree = tree();
        // A node as a layout with a version byte before the hash would store it.
        let mut versioned = vec![1u8];
        versioned.extend([7u8; 32]);
        tree.insert(node_key(STORED_FROM_LEVEL, 0), versioned).unwrap();
        let error = StoredNodes(&tree).node(STORED_FROM_LEVEL, 0).expect_err("33 bytes are no node");
        assert!(error.to_string().contains("not 32 bytes"), "{error}");
        tree.insert(node_key(STORED_FROM_LEVEL, 0), &[7u8; 32][..]).unwrap();
        assert_eq!(StoredNodes(&tree).node(STORED_FROM_LEVEL, 0).unwrap(), TreeHash([7u8; 32]));
    }
}
