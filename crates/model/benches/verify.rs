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

/// Presented keys laid out back to back and read in order, as a server reads each request's
/// key from a buffer that is already in cache: the bench then times the index lookup's random
/// memory access, not a cache miss on fetching the presented key itself.
struct Presented {
    bytes: Vec<u8>,
    count: usize,
}

impl Presented {
    fn new(secrets: &[String]) -> Presented {
        Presented { bytes: secrets.concat().into_bytes(), count: secrets.len() }
    }

    fn get(&self, i: usize) -> &str {
        let at = (i % self.count) * token::TOKEN_LEN;
        std::str::from_utf8(&self.bytes[at..at + token::TOKEN_LEN]).expect("tokens are ASCII")
    }
}

/// A state with `n` enabled keys (built with `evolve`, which trusts its input: limits are a
/// `decide` concern and not what this bench measures) and their secrets.
fn state_with_keys(n: usize) -> (State, Vec<String>) {
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let mut state = State::new();
    // Ten keys per user, the default limit: a million keys means a hundred thousand users.
    let mut seq = 0;
    let mut user = UserId::generate(Timestamp(0), &mut rng);
    let mut secrets = Vec::with_capacity(n);
    for i in 0..n {
        if i % 10 == 0 {
            user = UserId::generate(Timestamp(i as i64), &mut rng);
            seq += 1;
            let name = format!("user-{i}");
            state.evolve(&entry(seq, EventBody::UserCreated { user, name, role: Role::Developer }, None));
        }
        let secret = token::generate(&mut rng);
        let digest = secret.digest();
        let key = KeyId::generate(Timestamp(i as i64), &mut rng);
        let body = EventBody::KeyCreated {
            key,
            owner: Owner::User(user),
            name: "k".into(),
            description: String::new(),
            scope: None,
            digest_commitment: digest.commitment(),
            hint: secret.hint(),
            expires_at: Some(Timestamp(i64::MAX)),
        };
        seq += 1;
        state.evolve(&entry(seq, body, Some(digest)));
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

    let presented = Presented::new(&secrets);
    drop(secrets);
    let mut i = 0usize;
    group.bench_function("sha3_only", |b| {
        b.iter(|| {
            i += 1;
            black_box(KeyDigest::of(black_box(presented.get(i))))
        })
    });
    group.bench_function("full_valid", |b| {
        b.iter(|| {
            i += 1;
            let verdict = state.verify(black_box(presented.get(i)), now, None);
            assert!(matches!(verdict, keyledger_model::Verdict::Valid(_)));
        })
    });
    let permission: keyledger_model::Permission = "account:write".parse().expect("a permission");
    group.bench_function("full_with_permission", |b| {
        b.iter(|| {
            i += 1;
            let verdict = state.verify(black_box(presented.get(i)), now, Some(&permission));
            assert!(matches!(verdict, keyledger_model::Verdict::Valid(_)));
        })
    });
    let unknown = token::generate(&mut ChaCha20Rng::seed_from_u64(7)).expose().to_string();
    group.bench_function("full_not_found", |b| b.iter(|| black_box(state.verify(black_box(&unknown), now, None))));
    group.bench_function("malformed", |b| b.iter(|| black_box(state.verify(black_box("klk_not-a-key"), now, None))));
    group.finish();
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);
