//! Memory held by the state per key, counted by the allocator (not RSS, which also holds
//! freed pages, the allocator's reserve and the binary).
//!
//! `cargo run --release -p keyledger-model --example state_memory [KEYS]` (default 1,000,000):
//! builds a state of KEYS keys owned by service accounts of 1,000 keys each (the bulk shape)
//! with `evolve`, as a node's start-up does, and prints the bytes allocated per key, the
//! verification index's share, and where the rest goes: the same structures as the state's,
//! built alone in the same order and counted one by one.

use std::alloc::System;
use std::collections::{BTreeMap, BTreeSet};

use keyledger_model::{
    token, Actor, ChainHash, Event, EventBody, KeyDigest, KeyId, KeyRecord, LedgerEntry, Owner, Role, ServiceAccountId,
    State, Timestamp,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

/// The system allocator, counting what it hands out and gets back.
#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated and not freed since `region` began.
fn live(region: &Region<'_, System>) -> usize {
    let change = region.change();
    let net = change.bytes_allocated as isize + change.bytes_reallocated - change.bytes_deallocated as isize;
    net.max(0) as usize
}

fn entry(seq: u64, actor: Actor, body: EventBody, digest: Option<KeyDigest>) -> LedgerEntry {
    LedgerEntry {
        event: Event {
            seq,
            time: Timestamp(1_750_000_000_000 + seq as i64),
            account: keyledger_model::AccountId::default_account(),
            actor,
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

fn main() {
    let keys: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let admin = Actor::User {
        id: keyledger_model::UserId::generate(Timestamp(0), &mut rng),
        key: KeyId::generate(Timestamp(0), &mut rng),
    };
    let mut state = State::new();
    // The events' own buffers are dropped as they go: only what the state keeps is counted.
    let region = Region::new(ALLOCATOR);
    let mut seq = 0;
    let mut owner = ServiceAccountId::generate(Timestamp(0), &mut rng);
    let mut identities = 0;
    let mut identity_bytes = 0;
    let mut created = Vec::with_capacity(keys);
    for i in 0..keys {
        if i % 1000 == 0 {
            owner = ServiceAccountId::generate(Timestamp(i as i64), &mut rng);
            seq += 1;
            let name = format!("service-{}", i / 1000);
            let binding = keyledger_model::Binding::Account(Role::Developer);
            let at = live(&region);
            state.evolve(&entry(
                seq,
                admin,
                EventBody::ServiceAccountCreated { service_account: owner, name, binding },
                None,
            ));
            identity_bytes += live(&region) - at;
            identities += 1;
        }
        let secret = token::generate(&mut rng);
        let digest = secret.digest();
        let key = KeyId::generate(Timestamp(i as i64), &mut rng);
        let expires_at = Timestamp(1_800_000_000_000);
        created.push((key, Owner::ServiceAccount(owner), expires_at));
        let body = EventBody::KeyCreated {
            key,
            owner: Owner::ServiceAccount(owner),
            name: format!("key-{i}"),
            description: String::new(),
            scope: None,
            digest_commitment: digest.commitment(),
            hint: secret.hint(),
            expires_at: Some(expires_at),
        };
        seq += 1;
        state.evolve(&entry(seq, admin, body, Some(digest)));
    }
    let total = live(&region) - created.capacity() * std::mem::size_of::<(KeyId, Owner, Timestamp)>();
    let index = state.usage_positions() * 64;
    println!("keys                      {keys}");
    println!("service accounts          {identities} ({} B each)", identity_bytes / identities.max(1));
    println!("state, bytes per key      {:.0}", total as f64 / keys as f64);
    println!("  verification index      {:.0} ({} slots of 64 B)", index as f64 / keys as f64, state.usage_positions());
    println!("  everything else         {:.0}", (total - index) as f64 / keys as f64);
    let per_key = |bytes: usize| format!("{:.0}", bytes as f64 / keys as f64);
    let records = {
        let region = Region::new(ALLOCATOR);
        let boxed: Vec<Box<KeyRecord>> =
            created.iter().map(|(id, _, _)| Box::new(state.key(id).expect("created").clone())).collect();
        let bytes = live(&region) - boxed.capacity() * std::mem::size_of::<usize>();
        std::hint::black_box(&boxed);
        bytes
    };
    println!(
        "  key records             {} (size_of::<KeyRecord>() {} + its strings)",
        per_key(records),
        std::mem::size_of::<KeyRecord>()
    );
    println!(
        "  keys map's nodes        {}",
        per_key(counted(|| {
            let mut map = BTreeMap::new();
            for (id, _, _) in &created {
                map.insert(*id, 0usize);
            }
            map
        }))
    );
    println!(
        "  keys by owner           {}",
        per_key(counted(|| {
            let mut by_owner: BTreeMap<Owner, BTreeSet<KeyId>> = BTreeMap::new();
            for (id, owner, _) in &created {
                by_owner.entry(*owner).or_default().insert(*id);
            }
            by_owner
        }))
    );
    println!(
        "  expiry queue            {}",
        per_key(counted(|| {
            let mut queue = BTreeSet::new();
            for (id, _, at) in &created {
                queue.insert((*at, *id));
            }
            queue
        }))
    );
    std::hint::black_box(&state);
}

/// Bytes `build`'s result holds, counted while it is built.
fn counted<T>(build: impl FnOnce() -> T) -> usize {
    let region = Region::new(ALLOCATOR);
    let built = build();
    let bytes = live(&region);
    drop(built);
    bytes
}
