//! The Merkle tree against a reference written straight from the recursive definitions of
//! RFC 6962 §2.1 (MTH, PATH, PROOF) over the list of leaf data, hashing with `sha3` directly,
//! plus the RFC's own worked example: roots, proofs and the nodes the frontier reports must all
//! match, proofs must verify, and every tampered proof must be rejected.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};

use keyledger_model::merkle::{
    consistency_proof, empty_root, inclusion_proof, leaf_hash, node_hash, root, verify_consistency, verify_inclusion,
    Frontier, MemoryTree, NodeSource, ProofError, TreeHash,
};
use proptest::prelude::*;
use sha3::{Digest, Sha3_256};

// ---------------------------------------------------------------------------------------------
// The reference: RFC 6962 §2.1, one function per definition, over D[a:b] as ranges of `data`.

fn sha3(parts: &[&[u8]]) -> TreeHash {
    let mut h = Sha3_256::new();
    for p in parts {
        h.update(p);
    }
    TreeHash(h.finalize().into())
}

/// The largest power of two smaller than `n` (n > 1), by counting up as the RFC states it.
fn k_below(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

struct Reference {
    data: Vec<Vec<u8>>,
    /// MTH(D[a:b]) by (a, b): the definitions recompute the same subtrees over and over.
    memo: RefCell<HashMap<(usize, usize), TreeHash>>,
}

impl Reference {
    fn new(data: Vec<Vec<u8>>) -> Reference {
        Reference { data, memo: RefCell::new(HashMap::new()) }
    }

    /// MTH({}) = HASH(); MTH({d0}) = HASH(0x00 || d0);
    /// MTH(D[n]) = HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n])).
    fn mth(&self, a: usize, b: usize) -> TreeHash {
        if let Some(h) = self.memo.borrow().get(&(a, b)) {
            return *h;
        }
        let h = match b - a {
            0 => sha3(&[]),
            1 => sha3(&[&[0x00], &self.data[a]]),
            n => {
                let k = k_below(n);
                sha3(&[&[0x01], &self.mth(a, a + k).0, &self.mth(a + k, b).0])
            }
        };
        self.memo.borrow_mut().insert((a, b), h);
        h
    }

    /// PATH(m, D[a:b]).
    fn path(&self, m: usize, a: usize, b: usize) -> Vec<TreeHash> {
        let n = b - a;
        if n == 1 {
            return Vec::new();
        }
        let k = k_below(n);
        if m < k {
            let mut p = self.path(m, a, a + k);
            p.push(self.mth(a + k, b));
            p
        } else {
            let mut p = self.path(m - k, a + k, b);
            p.push(self.mth(a, a + k));
            p
        }
    }

    /// PROOF(m, D[n]) = SUBPROOF(m, D[n], true); for m = 0, which the RFC leaves undefined,
    /// empty (the empty tree is a prefix of every tree).
    fn proof(&self, m: usize, n: usize) -> Vec<TreeHash> {
        if m == 0 {
            return Vec::new();
        }
        self.subproof(m, 0, n, true)
    }

    /// SUBPROOF(m, D[a:b], b_flag).
    fn subproof(&self, m: usize, a: usize, b: usize, whole: bool) -> Vec<TreeHash> {
        let n = b - a;
        if m == n {
            return if whole { Vec::new() } else { vec![self.mth(a, b)] };
        }
        let k = k_below(n);
        if m <= k {
            let mut p = self.subproof(m, a, a + k, whole);
            p.push(self.mth(a + k, b));
            p
        } else {
            let mut p = self.subproof(m - k, a + k, b, false);
            p.push(self.mth(a, a + k));
            p
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures.

/// Distinct leaf data, varied by `seed` so that proptest explores different hashes.
fn data(seed: u64, n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("{seed:x}/leaf {i}").into_bytes()).collect()
}

struct Fixture {
    reference: Reference,
    leaves: Vec<TreeHash>,
    tree: MemoryTree,
}

impl Fixture {
    fn new(seed: u64, n: usize) -> Fixture {
        let d = data(seed, n);
        let leaves: Vec<TreeHash> = d.iter().map(|x| leaf_hash(x)).collect();
        let mut tree = MemoryTree::new();
        for l in &leaves {
            tree.push(*l);
        }
        Fixture { reference: Reference::new(d), leaves, tree }
    }

    fn root(&self, size: u64) -> TreeHash {
        root(&self.tree, size).unwrap_or_else(|e| match e {})
    }

    fn inclusion(&self, index: u64, size: u64) -> Vec<TreeHash> {
        inclusion_proof(&self.tree, index, size).expect("index < size")
    }

    fn consistency(&self, old: u64, new: u64) -> Vec<TreeHash> {
        consistency_proof(&self.tree, old, new).expect("old <= new")
    }
}

fn flip(h: &TreeHash, bit: usize) -> TreeHash {
    let mut out = *h;
    out.0[(bit / 8) % 32] ^= 1 << (bit % 8);
    out
}

// ---------------------------------------------------------------------------------------------
// The checks, shared by the property tests and the edge-case tests.

/// Every prefix: MemoryTree root == Frontier root == reference MTH, the frontier reports exactly
/// the nodes MemoryTree holds, and a frontier rebuilt from stored nodes equals the live one.
fn check_roots_and_frontier(seed: u64, n: usize) {
    let d = data(seed, n);
    let reference = Reference::new(d.clone());
    let mut tree = MemoryTree::new();
    let mut frontier = Frontier::new();
    let mut reported = BTreeSet::new();
    let mut snapshots = vec![frontier.clone()];
    assert_eq!(frontier.root(), reference.mth(0, 0));
    for (i, x) in d.iter().enumerate() {
        let leaf = leaf_hash(x);
        tree.push(leaf);
        let mut this_push = Vec::new();
        frontier.push(leaf, |level, index, hash| this_push.push((level, index, hash.0)));
        // Leaf first, then each completed parent one level up, all on the path of leaf i.
        assert_eq!(this_push[0], (0, i as u64, leaf.0));
        for (step, &(level, index, _)) in this_push.iter().enumerate() {
            assert_eq!((level, index), (step as u32, (i as u64) >> step));
        }
        assert_eq!(this_push.len() as u32, (i as u64 + 1).trailing_zeros() + 1);
        for node in this_push {
            assert!(reported.insert(node), "node {node:?} reported twice");
        }
        let size = i as u64 + 1;
        assert_eq!(frontier.size(), size);
        assert_eq!(tree.size(), size);
        let expected = reference.mth(0, i + 1);
        assert_eq!(frontier.root(), expected, "frontier root, size {size}");
        assert_eq!(root(&tree, size).unwrap_or_else(|e| match e {}), expected, "stored root, size {size}");
        snapshots.push(frontier.clone());
    }
    // Older roots from the grown tree, and the frontier rebuilt at every size.
    for (size, snapshot) in snapshots.iter().enumerate() {
        assert_eq!(root(&tree, size as u64).unwrap_or_else(|e| match e {}), reference.mth(0, size));
        assert_eq!(&Frontier::from_source(&tree, size as u64).unwrap_or_else(|e| match e {}), snapshot);
    }
    // Reported nodes == the nodes MemoryTree holds, each checked against the reference MTH of
    // the leaves it covers.
    let mut held = BTreeSet::new();
    for level in 0..64u32 {
        let width = (n as u64) >> level;
        if width == 0 {
            break;
        }
        for index in 0..width {
            let hash = tree.node(level, index).unwrap_or_else(|e| match e {});
            let (a, b) = ((index << level) as usize, ((index + 1) << level) as usize);
            assert_eq!(hash, reference.mth(a, b), "node ({level}, {index})");
            held.insert((level, index, hash.0));
        }
    }
    assert_eq!(reported, held);
}

/// Inclusion proof of `index` in the tree of `size`: equals PATH and verifies.
fn check_inclusion(f: &Fixture, index: u64, size: u64) -> Vec<TreeHash> {
    let (i, n) = (index as usize, size as usize);
    let proof = f.inclusion(index, size);
    assert_eq!(proof, f.reference.path(i, 0, n), "PATH({i}, D[{n}])");
    assert!(verify_inclusion(&f.leaves[i], index, size, &proof, &f.root(size)), "valid proof ({i}, {n}) rejected");
    proof
}

/// Every tampering with a genuine inclusion proof is rejected, unless it happens to produce
/// another genuine statement.
fn check_inclusion_tampering(f: &Fixture, index: u64, size: u64, bit: usize) {
    let (i, n) = (index as usize, size as usize);
    let proof = check_inclusion(f, index, size);
    let leaf = f.leaves[i];
    let good_root = f.root(size);

    // Any flipped bit in any element.
    for at in 0..proof.len() {
        let mut bad = proof.clone();
        bad[at] = flip(&bad[at], bit + at);
        assert!(!verify_inclusion(&leaf, index, size, &bad, &good_root), "flipped element {at} of ({i}, {n})");
    }
    // A flipped leaf or root.
    assert!(!verify_inclusion(&flip(&leaf, bit), index, size, &proof, &good_root));
    assert!(!verify_inclusion(&leaf, index, size, &proof, &flip(&good_root, bit)));
    // Truncated (either end) and extended (either end, with a plausible hash).
    if !proof.is_empty() {
        assert!(!verify_inclusion(&leaf, index, size, &proof[1..], &good_root));
        assert!(!verify_inclusion(&leaf, index, size, &proof[..proof.len() - 1], &good_root));
    }
    let filler = if proof.is_empty() { leaf } else { proof[0] };
    let mut longer = proof.clone();
    longer.push(filler);
    assert!(!verify_inclusion(&leaf, index, size, &longer, &good_root));
    let mut longer = vec![filler];
    longer.extend_from_slice(&proof);
    assert!(!verify_inclusion(&leaf, index, size, &longer, &good_root));

    // Another index (with its own leaf) or another size (with its own root): accepted only if
    // this proof is the genuine one for that statement.
    for other in [index.wrapping_sub(1), index + 1, index ^ 1, size - 1 - index] {
        if other < size && other != index {
            let genuine = f.reference.path(other as usize, 0, n);
            assert_eq!(
                verify_inclusion(&f.leaves[other as usize], other, size, &proof, &good_root),
                proof == genuine,
                "proof of ({i}, {n}) at index {other}"
            );
            // The right leaf at the wrong index never verifies (leaves are distinct).
            assert!(!verify_inclusion(&leaf, other, size, &proof, &good_root), "({i}, {n}) at index {other}");
        }
    }
    for other in [size - 1, size + 1, size * 2, size.next_power_of_two()] {
        if other > index && other != size && other <= f.tree.size() {
            let genuine = f.reference.path(i, 0, other as usize);
            let other_root = f.root(other);
            assert_eq!(verify_inclusion(&leaf, index, other, &proof, &other_root), proof == genuine);
            // With the original root, another size is rejected whenever its proofs have another
            // length. (RFC proofs alone do not bind the size: the signed tree head does.)
            if genuine.len() != proof.len() {
                assert!(!verify_inclusion(&leaf, index, other, &proof, &good_root), "({i}, {n}) as size {other}");
            }
        }
    }
    // Out of range.
    assert!(!verify_inclusion(&leaf, size, size, &proof, &good_root));
    assert!(!verify_inclusion(&leaf, index, 0, &proof, &good_root));
}

/// Consistency proof from `old` to `new`: equals PROOF and verifies.
fn check_consistency(f: &Fixture, old: u64, new: u64) -> Vec<TreeHash> {
    let (m, n) = (old as usize, new as usize);
    let proof = f.consistency(old, new);
    assert_eq!(proof, f.reference.proof(m, n), "PROOF({m}, D[{n}])");
    assert!(verify_consistency(old, new, &f.root(old), &f.root(new), &proof), "valid proof ({m}, {n}) rejected");
    proof
}

/// Every tampering with a genuine consistency proof is rejected, unless it happens to produce
/// another genuine statement.
fn check_consistency_tampering(f: &Fixture, old: u64, new: u64, bit: usize) {
    let (m, n) = (old as usize, new as usize);
    let proof = check_consistency(f, old, new);
    let (old_root, new_root) = (f.root(old), f.root(new));

    for at in 0..proof.len() {
        let mut bad = proof.clone();
        bad[at] = flip(&bad[at], bit + at);
        assert!(!verify_consistency(old, new, &old_root, &new_root, &bad), "flipped element {at} of ({m}, {n})");
    }
    assert!(!verify_consistency(old, new, &flip(&old_root, bit), &new_root, &proof));
    // From the empty tree to a larger one there is nothing to check the new root against (from
    // the empty tree to itself, the new root must be the empty root).
    assert_eq!(verify_consistency(old, new, &old_root, &flip(&new_root, bit), &proof), old == 0 && new != 0);
    if old != new {
        assert!(!verify_consistency(old, new, &new_root, &old_root, &proof), "swapped roots ({m}, {n})");
        assert!(!verify_consistency(new, old, &new_root, &old_root, &proof), "swapped sizes ({m}, {n})");
    }
    if !proof.is_empty() {
        assert!(!verify_consistency(old, new, &old_root, &new_root, &proof[1..]));
        assert!(!verify_consistency(old, new, &old_root, &new_root, &proof[..proof.len() - 1]));
    }
    let filler = proof.first().copied().unwrap_or(old_root);
    let mut longer = proof.clone();
    longer.push(filler);
    assert!(!verify_consistency(old, new, &old_root, &new_root, &longer), "extended ({m}, {n})");
    let mut longer = vec![filler];
    longer.extend_from_slice(&proof);
    assert!(!verify_consistency(old, new, &old_root, &new_root, &longer), "extended at front ({m}, {n})");

    // Other sizes, each with its own genuine root: accepted only if this is the genuine proof.
    let max = f.tree.size();
    for (o, w) in [
        (old.wrapping_sub(1), new),
        (old + 1, new),
        (old, new.wrapping_sub(1)),
        (old, new + 1),
        (old / 2, new),
        (old, new * 2),
    ] {
        if (o, w) != (old, new) && o <= w && w <= max {
            let genuine = f.reference.proof(o as usize, w as usize);
            assert_eq!(
                verify_consistency(o, w, &f.root(o), &f.root(w), &proof),
                proof == genuine,
                "proof of ({m}, {n}) as ({o}, {w})"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hash primitives and the RFC's worked example.

#[test]
fn hash_primitives_match_sha3_with_domain_prefixes() {
    // SHA3-256("") from FIPS 202.
    assert_eq!(empty_root().to_hex(), "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a");
    assert_eq!(leaf_hash(b"abc"), sha3(&[&[0x00], b"abc"]));
    let (l, r) = (leaf_hash(b"l"), leaf_hash(b"r"));
    assert_eq!(node_hash(&l, &r), sha3(&[&[0x01], &l.0, &r.0]));
    assert_ne!(node_hash(&l, &r), node_hash(&r, &l));
}

#[test]
fn rfc6962_worked_example_of_seven_leaves() {
    // RFC 6962 §2.1.3: leaves a..f, d6; g = (a,b), h = (c,d), i = (e,f), j = d6, k = (g,h), l = (i,j).
    let f = Fixture::new(7, 7);
    let [a, b, c, d, e, ff, d6] = [0, 1, 2, 3, 4, 5, 6].map(|i| f.leaves[i]);
    let (g, h, i, j) = (node_hash(&a, &b), node_hash(&c, &d), node_hash(&e, &ff), d6);
    let (k, l) = (node_hash(&g, &h), node_hash(&i, &j));
    assert_eq!(f.root(7), node_hash(&k, &l));
    assert_eq!(f.root(3), node_hash(&g, &c));
    assert_eq!(f.root(4), k);
    assert_eq!(f.root(6), node_hash(&k, &i));

    assert_eq!(f.inclusion(0, 7), vec![b, h, l]);
    assert_eq!(f.inclusion(3, 7), vec![c, g, l]);
    assert_eq!(f.inclusion(4, 7), vec![ff, j, k]);
    assert_eq!(f.inclusion(6, 7), vec![i, k]);

    assert_eq!(f.consistency(3, 7), vec![c, d, g, l]);
    assert_eq!(f.consistency(4, 7), vec![l]);
    assert_eq!(f.consistency(6, 7), vec![i, j, k]);
    for (old, new) in [(3, 7), (4, 7), (6, 7)] {
        assert!(verify_consistency(old, new, &f.root(old), &f.root(new), &f.consistency(old, new)));
    }
}

// ---------------------------------------------------------------------------------------------
// Edge cases, exhaustively: size 1, powers of two and their neighbours.

const EDGE_SIZES: [u64; 23] =
    [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257];

/// Positions worth tampering with in a tree of `size`: all of a small tree; the ends, the
/// neighbours of the root's split and a spread of others in a larger one (hashing is slow in
/// debug builds).
fn tamper_positions(size: u64) -> Vec<u64> {
    if size <= 33 {
        return (0..size).collect();
    }
    let k = size.next_power_of_two() / 2;
    let mut at: Vec<u64> = [0, 1, 2, k - 2, k - 1, k, k + 1, size - 3, size - 2, size - 1]
        .into_iter()
        .chain((0..size).step_by(17))
        .filter(|&i| i < size)
        .collect();
    at.sort_unstable();
    at.dedup();
    at
}

#[test]
fn edge_sizes_roots_and_frontier() {
    for n in [0, 1, 2, 3, 4, 5, 8, 9, 16, 17, 31, 32, 33, 64, 65, 257] {
        check_roots_and_frontier(n, n as usize);
    }
}

#[test]
fn edge_sizes_every_inclusion_proof() {
    let f = Fixture::new(1, 300);
    for size in EDGE_SIZES {
        for index in 0..size {
            check_inclusion(&f, index, size);
        }
        for index in tamper_positions(size) {
            check_inclusion_tampering(&f, index, size, (index * 7 + size) as usize);
        }
    }
}

#[test]
fn edge_sizes_every_consistency_proof() {
    let f = Fixture::new(2, 300);
    for new in EDGE_SIZES {
        for old in 0..=new {
            check_consistency(&f, old, new);
        }
        for old in tamper_positions(new + 1) {
            check_consistency_tampering(&f, old, new, (old * 5 + new) as usize);
        }
    }
}

#[test]
fn equal_sizes_and_old_size_zero() {
    let f = Fixture::new(3, 20);
    for n in 0..=20 {
        assert_eq!(f.consistency(n, n), Vec::<TreeHash>::new());
        assert_eq!(f.consistency(0, n), Vec::<TreeHash>::new());
        let r = f.root(n);
        assert!(verify_consistency(n, n, &r, &r, &[]));
        assert!(!verify_consistency(n, n, &r, &r, &[r]), "non-empty proof for equal sizes");
        assert!(verify_consistency(0, n, &empty_root(), &r, &[]));
        assert!(!verify_consistency(0, n, &empty_root(), &r, &[r]), "non-empty proof from size 0");
        if n > 0 {
            // The empty tree has one root; a size-n root does not pass for it.
            assert!(!verify_consistency(0, n, &r, &r, &[]));
            assert!(!verify_consistency(n, n, &r, &f.root(n - 1), &[]));
        }
    }
    assert!(!verify_consistency(0, 0, &empty_root(), &leaf_hash(b""), &[]));
}

#[test]
fn verification_rejects_out_of_range_and_overflowing_sizes() {
    let h = leaf_hash(b"x");
    let long: Vec<TreeHash> = (0..70u8).map(|i| leaf_hash(&[i])).collect();
    for len in [0, 1, 63, 64, 65, 70] {
        let proof = &long[..len];
        assert!(!verify_inclusion(&h, 0, 0, proof, &h));
        assert!(!verify_inclusion(&h, 5, 5, proof, &h));
        assert!(!verify_inclusion(&h, u64::MAX, u64::MAX, proof, &h));
        assert!(!verify_inclusion(&h, u64::MAX - 1, u64::MAX, proof, &h));
        assert!(!verify_inclusion(&h, 0, u64::MAX, proof, &h));
        assert!(!verify_inclusion(&h, 1 << 63, u64::MAX, proof, &h));
        assert!(!verify_consistency(6, 5, &h, &h, proof));
        assert!(!verify_consistency(u64::MAX, u64::MAX - 1, &h, &h, proof));
        assert!(!verify_consistency(u64::MAX - 1, u64::MAX, &h, &h, proof));
        assert!(!verify_consistency(1, u64::MAX, &h, &h, proof));
        assert!(!verify_consistency(1 << 63, u64::MAX, &h, &h, proof));
        assert!(!verify_consistency(1, 1 << 63, &h, &h, proof));
    }
    // A single-leaf tree: the leaf is the root, with an empty path.
    assert!(verify_inclusion(&h, 0, 1, &[], &h));
    assert!(!verify_inclusion(&h, 0, 1, &[h], &h));
    assert!(!verify_inclusion(&h, 1, 1, &[], &h));
}

#[test]
fn proof_generation_rejects_out_of_range_requests() {
    let f = Fixture::new(4, 10);
    for (index, size) in [(0, 0), (10, 10), (11, 10), (u64::MAX, 3)] {
        assert!(matches!(inclusion_proof(&f.tree, index, size), Err(ProofError::OutOfRange(_))), "{index} {size}");
    }
    for (old, new) in [(1, 0), (11, 10), (u64::MAX, 10)] {
        let err = consistency_proof(&f.tree, old, new).expect_err("old > new");
        assert!(matches!(err, ProofError::OutOfRange(_)));
        assert!(err.to_string().contains(&old.to_string()), "{err}");
    }
}

// ---------------------------------------------------------------------------------------------
// Node sources other than MemoryTree: errors propagate, and proofs read O(log^2 n) nodes.

#[derive(Debug, PartialEq, Eq)]
struct DiskError(String);

impl std::fmt::Display for DiskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DiskError {}

/// Counts reads, and fails on the read numbered `fail_at`.
struct Counting<'a> {
    tree: &'a MemoryTree,
    reads: Cell<u64>,
    fail_at: Option<u64>,
}

impl NodeSource for Counting<'_> {
    type Error = DiskError;
    fn node(&self, level: u32, index: u64) -> Result<TreeHash, DiskError> {
        let n = self.reads.get();
        self.reads.set(n + 1);
        if self.fail_at == Some(n) {
            return Err(DiskError(format!("disk on fire at ({level}, {index})")));
        }
        // Only complete subtrees of the stored tree may be asked for.
        assert!(((index + 1) << level) <= self.tree.size(), "asked for incomplete node ({level}, {index})");
        self.tree.node(level, index).map_err(|e| match e {})
    }
}

#[test]
fn source_errors_propagate() {
    let f = Fixture::new(5, 100);
    let failing = Counting { tree: &f.tree, reads: Cell::new(0), fail_at: Some(1) };
    assert_eq!(root(&failing, 100), Err(DiskError("disk on fire at (5, 2)".to_string())));
    failing.reads.set(0);
    let err = inclusion_proof(&failing, 3, 100).expect_err("second read fails");
    assert_eq!(err, ProofError::Source(DiskError("disk on fire at (5, 2)".to_string())));
    assert_eq!(err.to_string(), "reading a tree node: disk on fire at (5, 2)");
    assert!(std::error::Error::source(&err).is_some());
    failing.reads.set(0);
    assert!(matches!(consistency_proof(&failing, 3, 100), Err(ProofError::Source(_))));
    failing.reads.set(0);
    assert!(Frontier::from_source(&failing, 100).is_err());
}

#[test]
fn proofs_read_few_nodes_in_a_large_tree() {
    let n: u64 = (1 << 14) + (1 << 10) + 77;
    let mut tree = MemoryTree::new();
    for i in 0..n {
        tree.push(leaf_hash(&i.to_le_bytes()));
    }
    let counting = Counting { tree: &tree, reads: Cell::new(0), fail_at: None };
    let log = u64::from(64 - n.leading_zeros());
    let mut worst = (0, 0);
    for index in [0, 1, n / 3, (1 << 14) - 1, 1 << 14, n - 2, n - 1] {
        counting.reads.set(0);
        let proof = inclusion_proof(&counting, index, n).expect("in range");
        worst.0 = worst.0.max(counting.reads.get());
        assert!(verify_inclusion(&leaf_hash(&index.to_le_bytes()), index, n, &proof, &tree_root(&tree, n)));
    }
    for old in [1, 2, 3, 1000, (1 << 14) - 1, 1 << 14, (1 << 14) + 1, n - 1] {
        counting.reads.set(0);
        let proof = consistency_proof(&counting, old, n).expect("old <= new");
        worst.1 = worst.1.max(counting.reads.get());
        assert!(verify_consistency(old, n, &tree_root(&tree, old), &tree_root(&tree, n), &proof));
    }
    assert!(worst.0 <= log * log && worst.1 <= log * log, "{worst:?} reads for {n} leaves");
    // In fact about one read per level: the composite sibling is only ever needed once.
    assert!(worst.0 <= 2 * log && worst.1 <= 2 * log, "{worst:?} reads for {n} leaves");
}

fn tree_root(tree: &MemoryTree, size: u64) -> TreeHash {
    root(tree, size).unwrap_or_else(|e| match e {})
}

// ---------------------------------------------------------------------------------------------
// Properties over random sizes 0..=300 (and some larger ones), random leaf data.

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn roots_and_frontier_agree_with_reference(seed in any::<u64>(), n in 0usize..=300) {
        check_roots_and_frontier(seed, n);
    }

    #[test]
    fn inclusion_proofs_match_path_and_resist_tampering(
        seed in any::<u64>(),
        n in 1u64..=300,
        picks in proptest::collection::vec(any::<u64>(), 4),
        bit in 0usize..256,
    ) {
        let f = Fixture::new(seed, 300);
        for index in 0..n {
            check_inclusion(&f, index, n);
        }
        for pick in picks {
            check_inclusion_tampering(&f, pick % n, n, bit + pick as usize % 256);
        }
    }

    #[test]
    fn consistency_proofs_match_proof_and_resist_tampering(
        seed in any::<u64>(),
        n in 0u64..=300,
        picks in proptest::collection::vec(any::<u64>(), 4),
        bit in 0usize..256,
    ) {
        let f = Fixture::new(seed, 300);
        for old in 0..=n {
            check_consistency(&f, old, n);
        }
        for pick in picks {
            check_consistency_tampering(&f, pick % (n + 1), n, bit + pick as usize % 256);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn larger_trees(
        seed in any::<u64>(),
        n in 301u64..5000,
        picks in proptest::collection::vec((any::<u64>(), any::<u64>()), 8),
    ) {
        let f = Fixture::new(seed, n as usize);
        prop_assert_eq!(f.root(n), f.reference.mth(0, n as usize));
        let mut frontier = Frontier::new();
        for l in &f.leaves {
            frontier.push(*l, |_, _, _| {});
        }
        prop_assert_eq!(frontier.root(), f.root(n));
        for (a, b) in picks {
            let size = 1 + a % n;
            check_inclusion_tampering(&f, b % size, size, (a ^ b) as usize % 256);
            check_consistency_tampering(&f, b % (size + 1), size, (a ^ b) as usize % 256);
        }
    }
}
