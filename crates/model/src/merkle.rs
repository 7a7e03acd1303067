//! An RFC 6962 / RFC 9162 Merkle tree over SHA3-256: roots, inclusion and consistency proofs.
//!
//! The tree is append-only and is never held whole: a [`Frontier`] (one hash per set bit of the
//! size) grows it and reports every completed perfect-subtree node, the caller stores those, and
//! roots and proofs are computed from O(log n) stored nodes through a [`NodeSource`]. Leaf and
//! interior hashes are domain-separated (0x00 / 0x01 prefixes) so a leaf can never pose as a
//! node. Verification is total: malformed proofs and sizes yield `false`, never a panic.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha3::{Digest, Sha3_256};

/// A Merkle tree hash (32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TreeHash(pub [u8; 32]);

impl TreeHash {
    /// Lowercase hex, the form proofs and roots take outside the process.
    pub fn to_hex(&self) -> String {
        crate::hex::encode(&self.0)
    }

    /// Parses exactly 64 hex digits (either case); `None` for anything else.
    pub fn from_hex(s: &str) -> Option<TreeHash> {
        crate::hex::decode(&s.to_ascii_lowercase()).map(TreeHash)
    }
}

impl fmt::Display for TreeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for TreeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TreeHash({})", &self.to_hex()[..12])
    }
}

/// RFC 6962 leaf hash: SHA3-256(0x00 || data).
pub fn leaf_hash(data: &[u8]) -> TreeHash {
    let mut h = Sha3_256::new();
    h.update([0x00]);
    h.update(data);
    TreeHash(h.finalize().into())
}

/// RFC 6962 interior node: SHA3-256(0x01 || left || right).
pub fn node_hash(left: &TreeHash, right: &TreeHash) -> TreeHash {
    let mut h = Sha3_256::new();
    h.update([0x01]);
    h.update(left.0);
    h.update(right.0);
    TreeHash(h.finalize().into())
}

/// Root of the empty tree: SHA3-256 of the empty string.
pub fn empty_root() -> TreeHash {
    TreeHash(Sha3_256::digest([]).into())
}

/// Where stored nodes come from: the hash of the *perfect* subtree at `level` (0 = leaves)
/// and `index` (position among the nodes of that level), i.e. covering leaves
/// [index << level, (index + 1) << level). Only nodes of complete subtrees are ever asked for.
pub trait NodeSource {
    type Error;
    fn node(&self, level: u32, index: u64) -> Result<TreeHash, Self::Error>;
}

/// Why a proof could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError<E> {
    /// The request names leaves or sizes the tree cannot have (index >= size, old > new).
    #[error("{0}")]
    OutOfRange(String),
    /// The node source failed.
    #[error("reading a tree node: {0}")]
    Source(#[source] E),
}

/// The largest power of two strictly below `n`: RFC 6962's split point `k`. Requires `n >= 2`.
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// MTH(D[start:end]) from stored nodes: one node per set bit of the length, folded right to
/// left. `start` must be a multiple of the largest power of two in the length, which holds for
/// every range the RFC recursion produces, so each piece is a perfect aligned subtree.
fn subtree_hash<S: NodeSource>(source: &S, start: u64, end: u64) -> Result<TreeHash, S::Error> {
    debug_assert!(start < end);
    let len = end - start;
    debug_assert!(start.trailing_zeros() >= 63 - len.leading_zeros(), "unaligned range {start}..{end}");
    let mut pos = end;
    let mut acc: Option<TreeHash> = None;
    let mut bits = len;
    while bits != 0 {
        let level = bits.trailing_zeros();
        bits &= bits - 1;
        pos -= 1 << level;
        let h = source.node(level, pos >> level)?;
        acc = Some(match acc {
            None => h,
            Some(right) => node_hash(&h, &right),
        });
    }
    Ok(acc.unwrap_or_else(empty_root))
}

/// MTH of the first `size` leaves (RFC 6962 §2.1), from O(log size) stored nodes.
pub fn root<S: NodeSource>(source: &S, size: u64) -> Result<TreeHash, S::Error> {
    if size == 0 {
        return Ok(empty_root());
    }
    subtree_hash(source, 0, size)
}

/// RFC 9162 §2.1.3.1 inclusion proof (audit path) of leaf `index` in the tree of `size` leaves,
/// bottom-up. Walks down from the root; only the first left turn out of a non-perfect range
/// needs a composite sibling, so it reads O(log size) nodes.
pub fn inclusion_proof<S: NodeSource>(
    source: &S,
    index: u64,
    size: u64,
) -> Result<Vec<TreeHash>, ProofError<S::Error>> {
    if index >= size {
        return Err(ProofError::OutOfRange(format!("leaf {index} is not in a tree of {size} leaves")));
    }
    let (mut start, mut end) = (0, size);
    let mut path = Vec::with_capacity(64);
    while end - start > 1 {
        let mid = start + split(end - start);
        if index < mid {
            path.push(subtree_hash(source, mid, end).map_err(ProofError::Source)?);
            end = mid;
        } else {
            path.push(subtree_hash(source, start, mid).map_err(ProofError::Source)?);
            start = mid;
        }
    }
    path.reverse();
    Ok(path)
}

/// RFC 9162 §2.1.4.1 consistency proof between sizes old <= new, bottom-up. Empty when
/// `old_size` is 0 or equal to `new_size`: there is nothing to prove.
pub fn consistency_proof<S: NodeSource>(
    source: &S,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<TreeHash>, ProofError<S::Error>> {
    if old_size > new_size {
        return Err(ProofError::OutOfRange(format!(
            "a tree of {old_size} leaves is not a prefix of one of {new_size}"
        )));
    }
    if old_size == 0 || old_size == new_size {
        return Ok(Vec::new());
    }
    // SUBPROOF(m, D[start:end], whole) with m = old_size - start; start < old_size <= end holds
    // throughout, so the loop ends with old_size == end.
    let (mut start, mut end) = (0, new_size);
    let mut whole = true;
    let mut path = Vec::with_capacity(64);
    while old_size != end {
        let mid = start + split(end - start);
        if old_size <= mid {
            path.push(subtree_hash(source, mid, end).map_err(ProofError::Source)?);
            end = mid;
        } else {
            path.push(subtree_hash(source, start, mid).map_err(ProofError::Source)?);
            start = mid;
            whole = false;
        }
    }
    if !whole {
        path.push(subtree_hash(source, start, end).map_err(ProofError::Source)?);
    }
    path.reverse();
    Ok(path)
}

/// RFC 9162 §2.1.3.2 verification. true iff the proof is valid.
pub fn verify_inclusion(leaf: &TreeHash, index: u64, size: u64, proof: &[TreeHash], root: &TreeHash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == *root
}

/// RFC 9162 §2.1.4.2 verification. true iff the proof is valid.
///
/// Outside the RFC's 0 < old < new: equal sizes need an empty proof and equal roots; old size 0
/// needs an empty proof and `old_root` the empty root (any tree extends the empty one).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &TreeHash,
    new_root: &TreeHash,
    proof: &[TreeHash],
) -> bool {
    if old_size > new_size {
        return false;
    }
    if old_size == 0 {
        return proof.is_empty() && *old_root == empty_root() && (new_size != 0 || *new_root == empty_root());
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    if proof.is_empty() {
        return false;
    }
    // A power-of-two old tree is a node of the new one: the proof omits it, the verifier
    // supplies it as the first element.
    let (first, rest) = if old_size.is_power_of_two() { (old_root, proof) } else { (&proof[0], &proof[1..]) };
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && fr == *old_root && sr == *new_root
}

/// The right edge of a growing tree: one perfect-subtree root per set bit of `size`
/// (O(log n) memory). Appending reports every perfect subtree node it completes so a caller
/// can store them (level 0 = the leaf itself).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// (level, hash) of each perfect subtree on the right edge, highest level (leftmost) first.
    stack: Vec<(u32, TreeHash)>,
}

impl Frontier {
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// Rebuilds the frontier of a stored tree of `size` leaves (after a restart), reading one
    /// node per set bit of `size`.
    pub fn from_source<S: NodeSource>(source: &S, size: u64) -> Result<Frontier, S::Error> {
        let mut stack = Vec::with_capacity(size.count_ones() as usize);
        let mut start = 0u64;
        for level in (0..64u32).rev() {
            if size & (1 << level) != 0 {
                stack.push((level, source.node(level, start >> level)?));
                start += 1 << level;
            }
        }
        Ok(Frontier { size, stack })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash; calls `completed(level, index, hash)` for the leaf (level 0) and for
    /// each parent it completes, bottom up.
    ///
    /// Panics if the tree already holds `u64::MAX` leaves (not reachable in practice).
    pub fn push(&mut self, leaf: TreeHash, mut completed: impl FnMut(u32, u64, TreeHash)) {
        let new_size = self.size.checked_add(1).expect("Merkle tree size overflow");
        let mut index = self.size;
        let mut level = 0u32;
        let mut hash = leaf;
        completed(level, index, hash);
        while let Some(&(top_level, left)) = self.stack.last() {
            if top_level != level {
                break;
            }
            self.stack.pop();
            hash = node_hash(&left, &hash);
            level += 1;
            index >>= 1;
            completed(level, index, hash);
        }
        self.stack.push((level, hash));
        self.size = new_size;
    }

    /// MTH of all leaves so far (empty_root() when empty).
    pub fn root(&self) -> TreeHash {
        let mut nodes = self.stack.iter().rev();
        let Some(&(_, mut acc)) = nodes.next() else {
            return empty_root();
        };
        for (_, left) in nodes {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

/// Every perfect-subtree node of a tree, in memory: for tests, benches and offline tools.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryTree {
    /// `levels[l][i]` is the node at level `l`, index `i`.
    levels: Vec<Vec<TreeHash>>,
}

impl MemoryTree {
    pub fn new() -> MemoryTree {
        MemoryTree::default()
    }

    /// Appends a leaf hash and every node it completes.
    pub fn push(&mut self, leaf: TreeHash) {
        let mut level = 0;
        let mut hash = leaf;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let nodes = &mut self.levels[level];
            nodes.push(hash);
            if nodes.len() % 2 == 1 {
                return;
            }
            hash = node_hash(&nodes[nodes.len() - 2], &hash);
            level += 1;
        }
    }

    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |leaves| leaves.len() as u64)
    }
}

impl NodeSource for MemoryTree {
    type Error = std::convert::Infallible;

    /// Panics if the node is not complete yet: asking for it is a caller bug.
    fn node(&self, level: u32, index: u64) -> Result<TreeHash, Self::Error> {
        let found = self.levels.get(level as usize).and_then(|nodes| nodes.get(usize::try_from(index).ok()?));
        match found {
            Some(h) => Ok(*h),
            None => panic!("MemoryTree holds no node at level {level}, index {index} (size {})", self.size()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        let h = leaf_hash(b"x");
        assert_eq!(TreeHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(TreeHash::from_hex(&h.to_hex().to_uppercase()), Some(h));
        assert_eq!(TreeHash::from_hex(&h.to_hex()[..62]), None);
        assert_eq!(TreeHash::from_hex(&format!("{}0", h.to_hex())), None);
        assert_eq!(TreeHash::from_hex(&format!("g{}", &h.to_hex()[1..])), None);
        assert_eq!(TreeHash::from_hex(&format!("é{}", &h.to_hex()[2..])), None);
        assert_eq!(format!("{h}"), h.to_hex());
        assert_eq!(format!("{h:?}"), format!("TreeHash({})", &h.to_hex()[..12]));
    }

    #[test]
    fn split_is_the_largest_power_of_two_below() {
        assert_eq!(split(2), 1);
        assert_eq!(split(3), 2);
        assert_eq!(split(4), 2);
        assert_eq!(split(5), 4);
        assert_eq!(split(1 << 40), 1 << 39);
        assert_eq!(split((1 << 40) + 1), 1 << 40);
        assert_eq!(split(u64::MAX), 1 << 63);
    }

    #[test]
    fn domain_separation() {
        // The empty tree, a leaf over no data and a node are three different hashes.
        let e = empty_root();
        assert_ne!(e, leaf_hash(b""));
        assert_ne!(node_hash(&e, &e), leaf_hash(&[e.0, e.0].concat()));
    }
}
