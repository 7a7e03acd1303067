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
