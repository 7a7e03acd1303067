//! The verification hot path at scale: parse + SHA3-256 + index lookup, in process.
//!
//! `cargo bench -p keyledger-model --bench verify` (set `KEYLEDGER_BENCH_KEYS` to change the
//! index size; default 1,000,000). Figures are recorded in docs/benchmarks.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use keyledger_model::{
    token, Actor, ChainHash, Event, EventBody, KeyDigest, KeyId, LedgerEntry, Owner, Role, State, Timestamp, UserId,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn entry(seq: u64, body: EventBody, digest: Option<KeyDigest>) -> LedgerEntry {
    LedgerEntry {
        event: Event {
            seq,
            time: Timestamp(1_700_000_000_000),
            account: keyledger_model::AccountId::default_account(),
            actor: Actor::System,
            request_id: String::new(),
            body,
            account_seq: seq,
            prev_hash: ChainHash::GENESIS,
            hash: ChainHash::GENESIS,
            account_prev_hash: ChainHash::GENESIS,
            account_hash: ChainHash::GENESIS,
        },
        digest,
    }
}

/// A state with `n` enabled keys (built with `evolve`, which trusts its input: limits are a
/// `decide` concern and not what this bench measures) and their secrets.
fn state_with_keys(n: usize) -> (State, Vec<String>) {
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let mut state = State::new();
    let user = UserId::generate(Timestamp(0), &mut rng);
    state.evolve(&entry(1, EventBody::UserCreated { user, name: "bench".into(), role: Role::Developer }, None));
    let mut secrets = Vec::with_capacity(n);
    for i in 0..n {
        let secret = token::generate(&mut rng);
        let digest = secret.digest();
        let key = KeyId::generate(Timestamp(i as i64), &mut rng);
        let body = EventBody::KeyCreated {
            key,
            owner: Owner::User(user),
            name: "k".into(),
            description: String::new(),
            digest_commitment: digest.commitment(),
            hint: secret.hint(),
            expires_at: Some(Timestamp(i64::MAX)),
        };
        state.evolve(&entry(i as u64 + 2, body, Some(digest)));
        secrets.push(secret.expose().to_string());
    }
    (state, secrets)
}

fn bench_verify(c: &mut Criterion) {
    let n: usize = std::env::var("KEYLEDGER_BENCH_KEYS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let (state, secrets) = state_with_keys(n);
    let now = Timestamp(1_800_000_000_000);
    let mut group = c.benchmark_group(format!("verify_{n}_keys"));
    group.throughput(Throughput::Elements(1));

    let mut i = 0usize;
    group.bench_function("sha3_only", |b| {
        b.iter(|| {
            i = (i + 7919) % secrets.len();
            black_box(KeyDigest::of(black_box(&secrets[i])))
        })
    });
    group.bench_function("full_valid", |b| {
        b.iter(|| {
            i = (i + 7919) % secrets.len();
            let verdict = state.verify(black_box(&secrets[i]), now, None);
            assert!(matches!(verdict, keyledger_model::Verdict::Valid(_)));
        })
    });
    group.bench_function("full_with_permission", |b| {
        b.iter(|| {
            i = (i + 7919) % secrets.len();
            black_box(state.verify(black_box(&secrets[i]), now, Some("account:write")))
        })
    });
    let unknown = token::generate(&mut ChaCha20Rng::seed_from_u64(7)).expose().to_string();
    group.bench_function("full_not_found", |b| b.iter(|| black_box(state.verify(black_box(&unknown), now, None))));
    group.bench_function("malformed", |b| b.iter(|| black_box(state.verify(black_box("klk_not-a-key"), now, None))));
    group.finish();
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);
