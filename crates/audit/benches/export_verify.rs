//! Audit throughput on a large ledger: exporting events to JSON lines, and verifying such an
//! export offline.
//!
//! `cargo bench -p keyledger-audit --bench export_verify` (`KEYLEDGER_BENCH_EVENTS`, default
//! 1,000,000). The ledger is built through `State::execute`: a bootstrap, a few keys, then
//! disable/enable toggles — realistic events, each sealed on both chains.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use keyledger_audit::to_export;
use keyledger_audit::verify::{verify_jsonl, Expect};
use keyledger_model::{
    token, AccountId, Actor, Command, KeyId, LedgerEntry, NewKey, Outcome, Proposal, State, Timestamp, UserId,
};
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
    let run = |state: &mut State, ledger: &mut Vec<LedgerEntry>, actor, command, now: Timestamp, n: usize| {
        let proposal = Proposal {
            time: now,
            request_id: format!("req_{n:016x}"),
            actor,
            account: AccountId::default_account(),
            command,
        };
        let (outcome, entries) = state.execute(&proposal);
        assert!(matches!(outcome, Outcome::Accepted { .. }), "{outcome:?}");
        ledger.extend(entries);
    };
    run(
        &mut state,
        &mut ledger,
        Actor::System,
        Command::Bootstrap { admin, admin_name: "admin".into(), key: first },
        now,
        0,
    );
    let mut keys = Vec::new();
    for n in 0..9 {
        let key = new_key(&mut rng, now);
        keys.push(key.id);
        run(&mut state, &mut ledger, owner, Command::CreateKey(key), now, n);
    }
    let mut n = 0;
    while ledger.len() < events {
        now = Timestamp(now.0 + 1);
        let key = keys[n % keys.len()];
        let command =
            if (n / keys.len()).is_multiple_of(2) { Command::DisableKey(key) } else { Command::EnableKey(key) };
        run(&mut state, &mut ledger, owner, command, now, n + 10);
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
    group.bench_function("verify_jsonl", |b| {
        b.iter(|| {
            let verified = verify_jsonl(black_box(&file[..]), Expect::Complete).expect("the export verifies");
            assert_eq!(verified.events as usize, ledger.len());
        })
    });
    group.bench_function("rebuild_state", |b| b.iter(|| black_box(State::rebuild(black_box(&ledger)))));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
