//! Audit throughput on a large ledger: exporting events to JSON lines, and verifying such an
//! export offline.
//!
//! `cargo bench -p keyledger-audit --bench export_verify` (`KEYLEDGER_BENCH_EVENTS`, default
//! 1,000,000). The ledger is built through `State::execute`: a bootstrap, a few keys, then
//! disable/enable toggles — realistic events, each sealed on both chains — with a signed
//! checkpoint every 1000 events, as a node writes them; verification checks every signature
//! against the trusted key and recomputes every root.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use keyledger_audit::proofs::TrustedKeys;
use keyledger_audit::to_export;
use keyledger_audit::verify::{verify_export, Expect, Options};
use keyledger_model::merkle::{leaf_hash, Frontier};
use keyledger_model::{
    token, AccountId, Actor, CheckpointSigner, Command, EventBody, KeyId, LedgerEntry, NewKey, Outcome, Proposal,
    State, Timestamp, UserId,
};

const CHECKPOINT_EVERY: usize = 1000;

fn signer() -> CheckpointSigner {
    CheckpointSigner::from_seed(1, [7; 32])
}
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn ledger(events: usize) -> Vec<LedgerEntry> {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let mut state = State::new();
    let mut ledger = Vec::with_capacity(events);
    let mut now = Timestamp(1_790_000_000_000);
    let new_key = |rng: &mut ChaCha20Rng, now: Timestamp| {
        let secret = token::generate(rng);
        NewKey {
            id: KeyId::generate(now, rng),
            owner: None,
            name: "bench key".into(),
            description: "a key of the audit benchmark".into(),
            scope: None,
            digest: secret.digest(),
            hint: secret.hint(),
            expires_at: Some(Timestamp(now.0 + 86_400_000 * 300)),
        }
    };
    let admin = UserId::generate(now, &mut rng);
    let first = new_key(&mut rng, now);
    let owner = Actor::User { id: admin, key: first.id };
    let mut tree = Frontier::new();
    let mut run_on = |account: AccountId, state: &mut State, ledger: &mut Vec<LedgerEntry>, actor, command, now, n| {
        let proposal = Proposal { time: now, request_id: format!("req_{n:016x}"), actor, account, command };
        let (outcome, entries) = state.execute(&proposal);
        assert!(matches!(outcome, Outcome::Accepted { .. }), "{outcome:?}");
        for entry in &entries {
            tree.push(leaf_hash(&entry.event.hash.0), |_, _, _| {});
        }
        ledger.extend(entries);
        (tree.size(), tree.root())
    };
    let tenant = AccountId::default_account;
    let boot = Command::Bootstrap { admin, admin_name: "admin".into(), key: first };
    run_on(tenant(), &mut state, &mut ledger, Actor::System, boot, now, 0);
    let register = Command::RegisterSigner { node: 1, public_key: signer().public_key() };
    run_on(AccountId::cluster(), &mut state, &mut ledger, Actor::System, register, now, 0);
    let mut keys = Vec::new();
    for n in 0..9 {
        let key = new_key(&mut rng, now);
        keys.push(key.id);
        run_on(tenant(), &mut state, &mut ledger, owner, Command::CreateKey(key), now, n);
    }
    let mut n = 0;
    while ledger.len() < events {
        now = Timestamp(now.0 + 1);
        let key = keys[n % keys.len()];
        let command =
            if (n / keys.len()).is_multiple_of(2) { Command::DisableKey(key) } else { Command::EnableKey(key) };
        let (size, root) = run_on(tenant(), &mut state, &mut ledger, owner, command, now, n + 10);
        if ledger.len().is_multiple_of(CHECKPOINT_EVERY) {
            let head = ledger.last().expect("events").event.hash;
            let checkpoint = Command::Checkpoint(signer().sign(size, root, head));
            run_on(AccountId::cluster(), &mut state, &mut ledger, Actor::System, checkpoint, now, n + 10);
        }
        n += 1;
    }
    ledger
}

fn export(ledger: &[LedgerEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ledger.len() * 700);
    for entry in ledger {
        serde_json::to_writer(&mut out, &to_export(&entry.event)).expect("an event serializes");
        out.push(b'\n');
    }
    out
}

fn bench(c: &mut Criterion) {
    let events: usize = std::env::var("KEYLEDGER_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let ledger = ledger(events);
    let file = export(&ledger);
    let mut group = c.benchmark_group(format!("audit_{}_events", ledger.len()));
    group.throughput(Throughput::Elements(ledger.len() as u64));
    group.sample_size(10);
    group.bench_function("export_jsonl", |b| b.iter(|| black_box(export(black_box(&ledger)))));
    let checkpoints = ledger.iter().filter(|e| matches!(e.event.body, EventBody::Checkpoint(_))).count() as u64;
    let options = Options {
        expect: Expect::Complete,
        trusted: Some(TrustedKeys::parse(&signer().public_key().to_hex()).expect("a key")),
        whole_cluster: true,
    };
    group.bench_function("verify_jsonl", |b| {
        b.iter(|| {
            let verified = verify_export(black_box(&file[..]), &options).expect("the export verifies");
            assert_eq!(verified.events as usize, ledger.len());
            assert_eq!(verified.roots_checked, checkpoints);
        })
    });
    group.bench_function("rebuild_state", |b| b.iter(|| black_box(State::rebuild(black_box(&ledger)))));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
