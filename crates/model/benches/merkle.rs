//! The Merkle tree at a million leaves: proof generation from stored nodes, verification, and
//! the cost of appending a leaf to the frontier.
//!
//! `cargo bench -p keyledger-model --bench merkle` (set `KEYLEDGER_BENCH_LEAVES` to change the
//! tree size; default 1,000,000).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use keyledger_model::merkle::{
    consistency_proof, inclusion_proof, leaf_hash, node_hash, root, verify_consistency, verify_inclusion, Frontier,
    MemoryTree, TreeHash,
};

fn leaves() -> u64 {
    std::env::var("KEYLEDGER_BENCH_LEAVES").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000)
}

fn leaf(i: u64) -> TreeHash {
    leaf_hash(&i.to_le_bytes())
}

/// A cheap deterministic spread of positions, so successive iterations touch different paths.
fn spread(i: u64, n: u64) -> u64 {
    i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % n
}

fn tree(n: u64) -> MemoryTree {
    let mut tree = MemoryTree::new();
    for i in 0..n {
        tree.push(leaf(i));
    }
    tree
}

fn bench(c: &mut Criterion) {
    let n = leaves();
    let tree = tree(n);
    let size_root = root(&tree, n).unwrap_or_else(|e| match e {});
    // Older roots for the consistency proofs, computed once from the stored nodes.
    let olds: Vec<(u64, TreeHash)> = (1..=1024u64)
        .map(|i| {
            let old = 1 + spread(i, n - 1);
            (old, root(&tree, old).unwrap_or_else(|e| match e {}))
        })
        .collect();

    let mut g = c.benchmark_group(format!("merkle/{n}"));

    // Baseline: one interior hash, the unit every other figure is made of.
    let (a, b) = (leaf(1), leaf(2));
    g.bench_function("node_hash (baseline)", |bench| bench.iter(|| node_hash(black_box(&a), black_box(&b))));

    let mut i = 0u64;
    g.bench_function("inclusion proof", |bench| {
        bench.iter(|| {
            i += 1;
            inclusion_proof(&tree, spread(i, n), n).unwrap_or_else(|e| panic!("{e:?}"))
        })
    });
    let proofs: Vec<(u64, Vec<TreeHash>)> = (0..1024u64)
        .map(|i| {
            let index = spread(i, n);
            (index, inclusion_proof(&tree, index, n).unwrap_or_else(|e| panic!("{e:?}")))
        })
        .collect();
    let mut i = 0usize;
    g.bench_function("inclusion verify", |bench| {
        bench.iter(|| {
            i = (i + 1) % proofs.len();
            let (index, proof) = &proofs[i];
            assert!(verify_inclusion(&leaf(*index), *index, n, proof, &size_root));
        })
    });
    let mut i = 0u64;
    g.bench_function("inclusion proof + verify", |bench| {
        bench.iter(|| {
            i += 1;
            let index = spread(i, n);
            let proof = inclusion_proof(&tree, index, n).unwrap_or_else(|e| panic!("{e:?}"));
            assert!(verify_inclusion(&leaf(index), index, n, &proof, &size_root));
        })
    });

    let mut i = 0usize;
    g.bench_function("consistency proof", |bench| {
        bench.iter(|| {
            i = (i + 1) % olds.len();
            consistency_proof(&tree, olds[i].0, n).unwrap_or_else(|e| panic!("{e:?}"))
        })
    });
    let mut i = 0usize;
    g.bench_function("consistency proof + verify", |bench| {
        bench.iter(|| {
            i = (i + 1) % olds.len();
            let (old, old_root) = olds[i];
            let proof = consistency_proof(&tree, old, n).unwrap_or_else(|e| panic!("{e:?}"));
            assert!(verify_consistency(old, n, &old_root, &size_root, &proof));
        })
    });

    // Appending to a frontier that already holds n leaves; every completed node is handed to
    // the callback, as a caller storing them would receive it. The leaf hash is made outside.
    let mut frontier = Frontier::new();
    for i in 0..n {
        frontier.push(leaf(i), |_, _, _| {});
    }
    let mut next = n;
    g.bench_function("frontier push (per leaf)", |bench| {
        bench.iter_batched(
            || {
                next += 1;
                leaf(next)
            },
            |l| {
                frontier.push(l, |level, index, hash| {
                    black_box((level, index, hash));
                })
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("frontier root", |bench| bench.iter(|| black_box(&frontier).root()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
