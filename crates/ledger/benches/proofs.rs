//! Merkle roots and proofs read from a sled-backed ledger of 1M events, built through the
//! state machine exactly as a node builds it: what `GET /v1/audit/proof/inclusion` costs besides
//! HTTP; and how fast a node starts on such a data dir, and `admin rebuild` runs on it.
//!
//! `cargo bench -p keyledger-ledger --bench proofs`. With `KEYLEDGER_BENCH_DATA=DIR` the ledger
//! is kept in DIR: the first run builds it, a second run finds it and times the start-up in a
//! fresh process, as a node restarting would (in the process that just wrote 1.3 GB, sled's
//! first open is far slower and says nothing about a restart).

use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use keyledger_ledger::Storage;
use keyledger_model::{Actor, Command, KeyId, Timestamp, UserId};
use openraft::storage::RaftStateMachine;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

#[path = "../tests/common/mod.rs"]
mod common;
use common::{entry, new_key};

const EVENTS: u64 = 1_000_000;
const PER_APPLY: u64 = 10_000;

fn proofs(c: &mut Criterion) {
    let kept = std::env::var_os("KEYLEDGER_BENCH_DATA").map(std::path::PathBuf::from);
    let temporary = tempfile::tempdir().unwrap();
    let dir = kept.clone().unwrap_or_else(|| temporary.path().to_path_buf());
    if kept.is_some() && dir.join("db").is_dir() {
        return measure(c, &dir);
    }
    build(&dir);
    measure(c, &dir);
}

/// A ledger of `EVENTS` events in `dir`, applied through the state machine in batches.
fn build(dir: &std::path::Path) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let storage = Storage::open(dir).unwrap();
    let ledger = storage.ledger.clone();
    let mut sm = storage.state_machine;
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let t0 = Timestamp(1_790_000_000_000);
    let (admin, key) = (UserId::generate(t0, &mut rng), KeyId::generate(t0, &mut rng));
    let first = new_key(key, &mut rng, None);
    let started = Instant::now();
    let boot = Command::Bootstrap { admin, admin_name: "admin".into(), key: first };
    runtime.block_on(sm.apply(vec![entry(1, Actor::System, boot)])).unwrap();
    let mut index = 1;
    while ledger.stored_size() < EVENTS {
        let batch: Vec<_> = (0..PER_APPLY.min(EVENTS - ledger.stored_size()))
            .map(|_| {
                index += 1;
                let name = Some(format!("n{index}"));
                let rename = Command::UpdateKey { key, name, description: None, if_revision: None };
                entry(index, Actor::User { id: admin, key }, rename)
            })
            .collect();
        runtime.block_on(sm.apply(batch)).unwrap();
    }
    eprintln!("built a ledger of {} events in {:.1} s", ledger.stored_size(), started.elapsed().as_secs_f64());
}

fn measure(c: &mut Criterion, dir: &std::path::Path) {
    // Start-up: open sled, read, decode and chain-check every event, rebuild the state.
    let started = Instant::now();
    let storage = Storage::open(dir).unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let size = storage.ledger.stored_size();
    eprintln!("start-up on {size} events: {seconds:.2} s = {:.0} events/s", size as f64 / seconds);
    drop(storage);
    // `keyledger admin rebuild`: the same checks, and every index record and tree node written again.
    let started = Instant::now();
    let rebuilt = keyledger_ledger::rebuild(dir).unwrap();
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("admin rebuild of {} events: {seconds:.2} s = {:.0} events/s", rebuilt.events, size as f64 / seconds);
    let ledger = keyledger_ledger::open_ledger(dir).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(2);

    let mut group = c.benchmark_group("proofs_1m");
    group.bench_function("root_at_random_size", |b| {
        b.iter(|| ledger.merkle_root(1 + rng.next_u64() % size).unwrap());
    });
    group.bench_function("inclusion_proof_with_event", |b| {
        b.iter(|| {
            let seq = 1 + rng.next_u64() % size;
            let event = ledger.entry(seq).unwrap().unwrap();
            (event, ledger.inclusion_proof(seq, size).unwrap())
        });
    });
    group.bench_function("consistency_proof", |b| {
        b.iter(|| ledger.consistency_proof(1 + rng.next_u64() % size, size).unwrap());
    });
    group.finish();
}

criterion_group!(benches, proofs);
criterion_main!(benches);
