//! What applying committed writes costs a node: entries of 1 and of 32 proposals (a leader
//! under load batches proposals; see `crates/cluster/src/batch.rs`), each a key rename, applied
//! through the state machine to sled — events, index records and Merkle nodes — without the
//! Raft log. Every node of a cluster does this work for every write.
//!
//! `cargo bench -p keyledger-ledger --bench apply`

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use keyledger_ledger::{Proposals, Storage};
use keyledger_model::{AccountId, Actor, Command, KeyId, Proposal, SettingsPatch, Timestamp, UserId};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

#[path = "../tests/common/mod.rs"]
mod common;

/// Keys renamed in turn, as many clients renaming their own keys would.
const KEYS: usize = 64;

fn apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply");
    for per_entry in [1usize, 32] {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let mut sm = storage.state_machine;
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let t0 = Timestamp(1_790_000_000_000);
        let admin = UserId::generate(t0, &mut rng);
        let keys: Vec<KeyId> = (0..KEYS).map(|_| KeyId::generate(t0, &mut rng)).collect();
        let expires_at = Some(Timestamp(t0.0 + 30 * 86_400_000));
        let new_key = |id: KeyId, rng: &mut ChaCha20Rng| common::new_key(id, rng, expires_at);
        let (mut index, mut n) = (0u64, 0u64);
        let mut entry = |proposals: Vec<Proposal>| {
            index += 1;
            Entry {
                log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
                payload: EntryPayload::Normal(Proposals(proposals)),
            }
        };
        let mut proposal = |actor: Actor, command: Command| {
            n += 1;
            let time = Timestamp(t0.0 + n as i64);
            Proposal { time, request_id: format!("r{n}"), actor, account: AccountId::default_account(), command }
        };
        let boot = Command::Bootstrap { admin, admin_name: "admin".into(), key: new_key(keys[0], &mut rng) };
        let mut setup = vec![entry(vec![proposal(Actor::System, boot)])];
        let user = Actor::User { id: admin, key: keys[0] };
        let settings = Command::UpdateSettings(SettingsPatch { max_keys_per_user: Some(1000), ..Default::default() });
        setup.push(entry(vec![proposal(user, settings)]));
        for key in &keys[1..] {
            setup.push(entry(vec![proposal(user, Command::CreateKey(new_key(*key, &mut rng)))]));
        }
        let outcomes = runtime.block_on(sm.apply(setup)).unwrap();
        let refused =
            outcomes.iter().flatten().filter(|o| !matches!(o, keyledger_model::Outcome::Accepted { .. })).count();
        assert_eq!(refused, 0, "the setup is accepted: {outcomes:?}");

        let mut renamed = 0usize;
        group.throughput(Throughput::Elements(per_entry as u64));
        group.bench_function(format!("{per_entry} rename(s) per entry"), |b| {
            b.iter_custom(|iterations| {
                let mut spent = Duration::ZERO;
                for _ in 0..iterations {
                    let proposals = (0..per_entry)
                        .map(|_| {
                            renamed += 1;
                            let key = keys[renamed % KEYS];
                            let name = Some(format!("n{renamed}"));
                            proposal(user, Command::UpdateKey { key, name, description: None, if_revision: None })
                        })
                        .collect();
                    let batch = vec![entry(proposals)];
                    let started = Instant::now();
                    let outcomes = runtime.block_on(sm.apply(batch)).unwrap();
                    spent += started.elapsed();
                    let accepted =
                        |o: &keyledger_model::Outcome| matches!(o, keyledger_model::Outcome::Accepted { .. });
                    assert!(outcomes.iter().flatten().all(accepted), "every rename is accepted: {outcomes:?}");
                }
                spent
            })
        });
    }
    group.finish();
}

criterion_group!(benches, apply);
criterion_main!(benches);
