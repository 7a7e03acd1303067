//! Builders shared by the ledger's tests, benches and examples (each a crate of its own, which
//! includes this file; each uses part of it).
#![allow(dead_code)]

use keyledger_ledger::TypeConfig;
use keyledger_model::{token, AccountId, Actor, Command, KeyId, NewKey, Proposal, Timestamp};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use rand_chacha::ChaCha20Rng;

/// The time of the first entry; entry `i` is stamped `i` ms later.
pub(crate) const T0: Timestamp = Timestamp(1_790_000_000_000);

/// The Raft entry at `index` holding one proposal of `actor` on the `default` account.
pub(crate) fn entry(index: u64, actor: Actor, command: Command) -> Entry<TypeConfig> {
    let proposal = Proposal {
        time: Timestamp(T0.0 + index as i64),
        request_id: format!("r{index}"),
        actor,
        account: AccountId::default_account(),
        command,
    };
    Entry { log_id: LogId::new(CommittedLeaderId::new(1, 1), index), payload: EntryPayload::Normal(proposal.into()) }
}

/// A new key named `k` with a fresh secret (only its digest and hint are kept).
pub(crate) fn new_key(id: KeyId, rng: &mut ChaCha20Rng, expires_at: Option<Timestamp>) -> NewKey {
    let secret = token::generate(rng);
    NewKey {
        id,
        owner: None,
        name: "k".into(),
        description: String::new(),
        scope: None,
        digest: secret.digest(),
        hint: secret.hint(),
        expires_at,
    }
}

/// Opens a data dir this process just closed: sled's background flusher may hold the lock a
/// while longer after a large write (more than `Storage::open`'s own short retry in debug builds).
pub(crate) fn reopen(dir: &std::path::Path) -> keyledger_ledger::Storage {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match keyledger_ledger::Storage::open(dir) {
            Err(e) if e.to_string().contains("could not acquire lock") && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            opened => return opened.unwrap(),
        }
    }
}

/// Raft entries 1..=`to` of a history: a bootstrap, then a new key every `key_every` entries
/// and renames of the first key between them. Another `seed` gives another chain.
pub(crate) fn history(seed: u64, key_every: u64, to: u64) -> Vec<Entry<TypeConfig>> {
    use keyledger_model::UserId;
    use rand_core::SeedableRng;
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let (admin, key) = (UserId::generate(T0, &mut rng), KeyId::generate(T0, &mut rng));
    let boot = Command::Bootstrap { admin, admin_name: "admin".into(), key: new_key(key, &mut rng, None) };
    let mut entries = vec![entry(1, Actor::System, boot)];
    let actor = Actor::User { id: admin, key };
    for index in 2..=to {
        let command = if index % key_every == 0 {
            Command::CreateKey(new_key(KeyId::generate(Timestamp(T0.0 + index as i64), &mut rng), &mut rng, None))
        } else {
            Command::UpdateKey { key, name: Some(format!("n{index}")), description: None, if_revision: None }
        };
        entries.push(entry(index, actor, command));
    }
    entries
}
