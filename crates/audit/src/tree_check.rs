//! Recomputing the ledger's Merkle tree while reading a full export, to check each checkpoint.
//!
//! A checkpoint at seq C states the root of the first S events, S < C and C - 1 - S at most
//! [`MAX_CHECKPOINT_LAG`]. By the time it is read the tree has grown past S, so the reader keeps
//! a window: the chain hashes of the last `MAX_CHECKPOINT_LAG` + [`SNAPSHOT_EVERY`] events and
//! the tree's right edge every [`SNAPSHOT_EVERY`] events. The root at S is a snapshot plus at
//! most `SNAPSHOT_EVERY - 1` replayed leaves: memory stays flat and the cost per checkpoint small.

use std::collections::VecDeque;

use keyledger_model::checkpoint::MAX_CHECKPOINT_LAG;
use keyledger_model::merkle::{Frontier, TreeHash};
use keyledger_model::ChainHash;

const SNAPSHOT_EVERY: u64 = 256;

pub(crate) struct TreeCheck {
    frontier: Frontier,
    /// Chain hashes and leaf hashes of events `first_kept..=frontier.size()`.
    hashes: VecDeque<(ChainHash, TreeHash)>,
    first_kept: u64,
    /// The right edge at sizes that are multiples of `SNAPSHOT_EVERY`, oldest first.
    snapshots: VecDeque<Frontier>,
}

impl TreeCheck {
    pub(crate) fn new() -> TreeCheck {
        TreeCheck { frontier: Frontier::new(), hashes: VecDeque::new(), first_kept: 1, snapshots: VecDeque::new() }
    }

    /// Events so far.
    pub(crate) fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// Adds the next event (seq `size() + 1`) by its chain hash and its leaf hash
    /// (`merkle::leaf_hash` of the chain hash, computed by the caller, off this thread).
    pub(crate) fn push(&mut self, hash: ChainHash, leaf: TreeHash) {
        self.frontier.push(leaf, |_, _, _| {});
        self.hashes.push_back((hash, leaf));
        let size = self.frontier.size();
        if size.is_multiple_of(SNAPSHOT_EVERY) {
            self.snapshots.push_back(self.frontier.clone());
        }
        let keep = MAX_CHECKPOINT_LAG + 2 * SNAPSHOT_EVERY;
        while self.hashes.len() as u64 > keep {
            self.hashes.pop_front();
            self.first_kept += 1;
        }
        while self.snapshots.front().is_some_and(|s| s.size() + SNAPSHOT_EVERY < self.first_kept) {
            self.snapshots.pop_front();
        }
    }

    /// The root of the first `size` events and the chain hash of event `size`, if still in
    /// the window.
    pub(crate) fn statement_at(&self, size: u64) -> Option<(TreeHash, ChainHash)> {
        if size == 0 || size > self.size() || size < self.first_kept {
            return None;
        }
        let (head, _) = self.hashes[(size - self.first_kept) as usize];
        if size == self.size() {
            return Some((self.frontier.root(), head));
        }
        let base = self.snapshots.iter().rev().find(|s| s.size() <= size).cloned();
        let mut tree = match base {
            Some(snapshot) if snapshot.size() + 1 >= self.first_kept => snapshot,
            None if self.first_kept == 1 => Frontier::new(),
            _ => return None,
        };
        for seq in tree.size() + 1..=size {
            let (_, leaf) = self.hashes[(seq - self.first_kept) as usize];
            tree.push(leaf, |_, _, _| {});
        }
        Some((tree.root(), head))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyledger_model::merkle::{self, MemoryTree};

    fn hash(i: u64) -> ChainHash {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&i.to_le_bytes());
        ChainHash(bytes)
    }

    #[test]
    fn statements_match_the_whole_tree_within_the_window() {
        let mut check = TreeCheck::new();
        let mut reference = MemoryTree::new();
        for i in 1..=2000u64 {
            check.push(hash(i), merkle::leaf_hash(&hash(i).0));
            reference.push(merkle::leaf_hash(&hash(i).0));
            // A checkpoint may look back; try a few distances, now and then (debug SHA3 is slow).
            for back in [0, 1, 255, 256, 257, 1000] {
                if back < i && i % 37 == 0 {
                    let size = i - back;
                    let expected = (merkle::root(&reference, size).unwrap(), hash(size));
                    assert_eq!(check.statement_at(size), Some(expected), "size {size} at {i}");
                }
            }
        }
        assert_eq!(check.statement_at(0), None);
        assert_eq!(check.statement_at(2001), None);
    }

    #[test]
    fn the_window_is_bounded() {
        let mut check = TreeCheck::new();
        let total = MAX_CHECKPOINT_LAG + 10 * SNAPSHOT_EVERY;
        for i in 1..=total {
            check.push(hash(i), merkle::leaf_hash(&hash(i).0));
        }
        assert!(check.hashes.len() as u64 <= MAX_CHECKPOINT_LAG + 2 * SNAPSHOT_EVERY);
        assert!(check.snapshots.len() as u64 <= MAX_CHECKPOINT_LAG / SNAPSHOT_EVERY + 3);
        assert!(check.statement_at(total - MAX_CHECKPOINT_LAG).is_some(), "as far back as a checkpoint may look");
        assert_eq!(check.statement_at(1), None, "long gone");
    }
}
