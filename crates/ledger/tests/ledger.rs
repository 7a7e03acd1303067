//! The ledger through the openraft state machine: apply, restart, and snapshot transfer all
//! end in the same, complete, hash-chained history.

use keyledger_ledger::{Ledger, Proposals, SnapshotFile, StateMachine, Storage, TypeConfig};
use keyledger_model::{AccountId, Actor, Command, KeyId, LedgerEntry, Outcome, Proposal, Timestamp, UserId};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

mod common;
use common::new_key;

/// Applying answers one list of outcomes per log entry; these tests put one proposal in each.
fn one_per_proposal(outcomes: Vec<Vec<Outcome>>) -> Vec<Outcome> {
    outcomes.into_iter().flatten().collect()
}

fn entry(index: u64, proposal: Proposal) -> Entry<TypeConfig> {
    Entry { log_id: LogId::new(CommittedLeaderId::new(1, 1), index), payload: EntryPayload::Normal(proposal.into()) }
}

/// A bootstrap and `creates` keys, as the Raft entries a leader would commit.
fn history(creates: usize) -> Vec<Entry<TypeConfig>> {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let t0 = Timestamp(1_790_000_000_000);
    let admin = UserId::generate(t0, &mut rng);
    let boot_key = KeyId::generate(t0, &mut rng);
    let mut entries = vec![entry(
        1,
        Proposal {
            time: t0,
            request_id: "boot".into(),
            actor: Actor::System,
            account: AccountId::default_account(),
            command: Command::Bootstrap { admin, admin_name: "admin".into(), key: new_key(boot_key, &mut rng, None) },
        },
    )];
    for i in 0..creates {
        let time = Timestamp(t0.0 + 1000 * (i as i64 + 1));
        let id = KeyId::generate(time, &mut rng);
        let command = if i % 3 == 2 {
            Command::DisableKey(id) // unknown key: rejected, writes nothing
        } else {
            Command::CreateKey(new_key(id, &mut rng, Some(Timestamp(time.0 + 86_400_000))))
        };
        entries.push(entry(
            i as u64 + 2,
            Proposal {
                time,
                request_id: format!("r{i}"),
                actor: Actor::User { id: admin, key: boot_key },
                account: AccountId::default_account(),
                command,
            },
        ));
    }
    entries
}

/// The storage of a node in a new data dir.
fn new_node() -> (tempfile::TempDir, Storage) {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path()).unwrap();
    (dir, storage)
}

fn all_entries(ledger: &Ledger) -> Vec<LedgerEntry> {
    let head = ledger.state().head().seq;
    ledger.entries(1, head).collect::<Result<_, _>>().expect("read ledger")
}

#[tokio::test]
async fn apply_restart_and_snapshot_give_the_same_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path()).unwrap();
    let mut sm: StateMachine = storage.state_machine;
    let outcomes = one_per_proposal(sm.apply(history(8)).await.unwrap());
    assert!(matches!(outcomes[0], Outcome::Accepted { events: 3, .. }), "{:?}", outcomes[0]);
    assert!(matches!(outcomes[3], Outcome::Rejected(_)), "disable of an unknown key is refused");
    let live = all_entries(&storage.ledger);
    assert_eq!(live.len(), 3 + 6, "bootstrap writes 3 events, each accepted create 1");
    assert!(live.windows(2).all(|w| w[1].event.prev_hash == w[0].event.hash && w[1].event.seq == w[0].event.seq + 1));
    let live_state = storage.ledger.state().clone();

    // Snapshot → a fresh node: identical entries and state.
    let snapshot = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let other = Storage::open(other_dir.path()).unwrap();
    let mut other_sm = other.state_machine;
    other_sm.install_snapshot(&snapshot.meta, snapshot.snapshot).await.unwrap();
    assert_eq!(all_entries(&other.ledger), live);
    assert_eq!(*other.ledger.state(), live_state);
    assert_eq!(other_sm.applied_state().await.unwrap().0, Some(LogId::new(CommittedLeaderId::new(1, 1), 9)));

    // Restart: the state is rebuilt from the stored ledger alone.
    drop(sm);
    drop(storage.ledger);
    drop(storage.log_store);
    let reopened = Storage::open(dir.path()).unwrap();
    assert_eq!(*reopened.ledger.state(), live_state);
    assert_eq!(all_entries(&reopened.ledger), live);
}

#[tokio::test]
async fn a_damaged_snapshot_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path()).unwrap();
    let mut sm = storage.state_machine;
    sm.apply(history(4)).await.unwrap();
    let mut snapshot = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
    // Flip one byte in the middle of a copy of it.
    let mut bytes = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut snapshot.snapshot, &mut bytes).await.unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    let copy_dir = tempfile::tempdir().unwrap();
    let damaged = copy_dir.path().join("damaged");
    std::fs::write(&damaged, bytes).unwrap();
    let damaged = Box::new(SnapshotFile::open(&damaged).await.unwrap());

    let other_dir = tempfile::tempdir().unwrap();
    let other = Storage::open(other_dir.path()).unwrap();
    let mut other_sm = other.state_machine;
    assert!(other_sm.install_snapshot(&snapshot.meta, damaged).await.is_err());
    assert_eq!(other.ledger.state().head().seq, 0);
    assert_eq!(other_sm.applied_state().await.unwrap().0, None);
}

/// A retry of an idempotent request committed before a snapshot, or before a restart, is still
/// recognised: the table travels in snapshots and is stored beside `last_applied`.
#[tokio::test]
async fn idempotency_records_survive_snapshots_and_restarts() {
    let mut entries = history(1);
    let Some(EntryPayload::Normal(Proposals(mut batch))) = entries.pop().map(|e| e.payload) else {
        panic!("a normal entry")
    };
    let create = batch.remove(0);
    let idempotent = |index, proposal: &Proposal| {
        let command =
            Command::Idempotent { key: "k1".into(), fingerprint: [7; 32], command: Box::new(proposal.command.clone()) };
        entry(index, Proposal { command, ..proposal.clone() })
    };
    entries.push(idempotent(2, &create));
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path()).unwrap();
    let mut sm = storage.state_machine;
    let outcomes = one_per_proposal(sm.apply(entries).await.unwrap());
    assert!(matches!(outcomes[1], Outcome::Accepted { events: 1, .. }), "{:?}", outcomes[1]);
    let replay = |outcomes: Vec<Outcome>| match &outcomes[0] {
        Outcome::Replayed { index, .. } => *index,
        other => panic!("not replayed: {other:?}"),
    };

    let snapshot = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let mut other = Storage::open(other_dir.path()).unwrap().state_machine;
    other.install_snapshot(&snapshot.meta, snapshot.snapshot).await.unwrap();
    assert_eq!(replay(one_per_proposal(other.apply([idempotent(3, &create)]).await.unwrap())), 2);

    drop(sm);
    drop(storage.ledger);
    drop(storage.log_store);
    let mut reopened = Storage::open(dir.path()).unwrap().state_machine;
    assert_eq!(replay(one_per_proposal(reopened.apply([idempotent(3, &create)]).await.unwrap())), 2);
}

/// A key's history comes from the per-key index, on the node that applied the events and on one
/// that installed them from a snapshot.
#[tokio::test]
async fn key_history_lists_exactly_a_keys_events_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path()).unwrap();
    let mut sm = storage.state_machine;
    sm.apply(history(6)).await.unwrap();
    let all = all_entries(&storage.ledger);
    let snapshot = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let other = Storage::open(other_dir.path()).unwrap();
    let mut other_sm = other.state_machine;
    other_sm.install_snapshot(&snapshot.meta, snapshot.snapshot).await.unwrap();

    let keys: Vec<KeyId> = storage.ledger.state().keys_after(None).map(|k| k.id).collect();
    assert!(keys.len() >= 4);
    for key in keys {
        let expected: Vec<LedgerEntry> = all.iter().filter(|e| e.event.body.key() == Some(key)).cloned().collect();
        assert!(!expected.is_empty());
        for ledger in [&storage.ledger, &other.ledger] {
            let got: Vec<LedgerEntry> = ledger.key_history(&key).collect::<Result<_, _>>().unwrap();
            assert_eq!(got, expected, "history of {key}");
        }
    }
}

/// An account's events come from the account index: exactly that account's, in order, on the
/// applying node and on one that installed a snapshot.
#[tokio::test]
async fn account_entries_list_exactly_an_accounts_events() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path()).unwrap();
    let mut sm = storage.state_machine;
    sm.apply(history(5)).await.unwrap();
    let all = all_entries(&storage.ledger);
    let account = AccountId::default_account();
    let expected: Vec<LedgerEntry> = all.iter().filter(|e| e.event.account == account).cloned().collect();
    assert!(!expected.is_empty());
    let snapshot = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let other = Storage::open(other_dir.path()).unwrap();
    let mut other_sm = other.state_machine;
    other_sm.install_snapshot(&snapshot.meta, snapshot.snapshot).await.unwrap();
    for ledger in [&storage.ledger, &other.ledger] {
        let got: Vec<LedgerEntry> = ledger.account_entries(&account, 1, u64::MAX).collect::<Result<_, _>>().unwrap();
        assert_eq!(got, expected);
        let tail: Vec<LedgerEntry> = ledger.account_entries(&account, 3, 5).collect::<Result<_, _>>().unwrap();
        assert_eq!(tail, expected.iter().filter(|e| (3..=5).contains(&e.event.seq)).cloned().collect::<Vec<_>>());
    }
    let other_account = AccountId::new("elsewhere").unwrap();
    assert_eq!(storage.ledger.account_entries(&other_account, 1, u64::MAX).count(), 0);
}

/// A leader batches proposals that arrive while earlier ones are in flight into one log entry.
/// Applying such an entry must write exactly what applying each proposal in its own entry
/// writes: the ledger bytes may not depend on how the leader happened to batch.
#[tokio::test]
async fn a_batch_of_proposals_in_one_entry_writes_the_same_ledger_as_one_entry_each() {
    let singles = history(12);
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path()).unwrap();
    let mut sm = storage.state_machine;
    let single_outcomes = one_per_proposal(sm.apply(singles.clone()).await.unwrap());

    // The same proposals, batched 1, 5 and 7 to an entry.
    let mut proposals = singles.into_iter().map(|e| match e.payload {
        EntryPayload::Normal(Proposals(mut batch)) => batch.remove(0),
        _ => panic!("history holds normal entries"),
    });
    let mut batched = Vec::new();
    for (index, size) in [(1, 1), (2, 5), (3, 7)] {
        let batch: Vec<Proposal> = proposals.by_ref().take(size).collect();
        batched.push(Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Proposals(batch)),
        });
    }
    let other_dir = tempfile::tempdir().unwrap();
    let other = Storage::open(other_dir.path()).unwrap();
    let mut other_sm = other.state_machine;
    let batched_outcomes = other_sm.apply(batched).await.unwrap();
    assert_eq!(batched_outcomes.iter().map(Vec::len).collect::<Vec<_>>(), [1, 5, 7], "one outcome per proposal");
    assert_eq!(batched_outcomes.into_iter().flatten().collect::<Vec<_>>(), single_outcomes);
    assert_eq!(all_entries(&other.ledger), all_entries(&storage.ledger));
    let size = storage.ledger.state().head().seq;
    assert_eq!(other.ledger.merkle_root(size).unwrap(), storage.ledger.merkle_root(size).unwrap());
}

/// Applies stage their writes and sled gets them in larger batches later. A node that stops
/// before a staged batch is written restarts at the last written one, and applying the same
/// entries again stores the same ledger as a node that never stopped.
#[tokio::test]
async fn a_crash_before_staged_applies_are_written_replays_them_to_the_same_ledger() {
    let entries = history(8);
    let (_reference_dir, reference) = new_node();
    let mut reference_sm = reference.state_machine;
    reference_sm.apply(entries.clone()).await.unwrap();
    // Read without any explicit write: readers see what is only staged.
    let expected = all_entries(&reference.ledger);
    assert_eq!(expected.len(), 9);

    let (dir, storage) = new_node();
    let mut sm = storage.state_machine;
    sm.apply(entries[..4].to_vec()).await.unwrap();
    storage.ledger.write_pending().unwrap();
    sm.apply(entries[4..].to_vec()).await.unwrap();
    assert_eq!(storage.ledger.state().head().seq, 9, "applied in memory");
    drop((sm, storage.ledger, storage.log_store)); // the staged batch is lost, as in a crash

    let reopened = Storage::open(dir.path()).unwrap();
    let mut sm = reopened.state_machine;
    assert_eq!(sm.applied_state().await.unwrap().0, Some(LogId::new(CommittedLeaderId::new(1, 1), 4)));
    assert_eq!(all_entries(&reopened.ledger), expected[..5].to_vec(), "entries 1-4 wrote 5 events");
    sm.apply(entries[4..].to_vec()).await.unwrap();
    assert_eq!(all_entries(&reopened.ledger), expected);
    assert_eq!(*reopened.ledger.state(), *reference.ledger.state());
}

/// A purge removes entries the ledger may hold only staged: it writes and flushes them first.
#[tokio::test]
async fn a_purge_writes_what_applies_staged_before_the_log_forgets_it() {
    use openraft::storage::RaftLogStorage;
    let (dir, storage) = new_node();
    let (mut sm, mut log_store) = (storage.state_machine, storage.log_store);
    sm.apply(history(8)).await.unwrap();
    log_store.purge(LogId::new(CommittedLeaderId::new(1, 1), 9)).await.unwrap();
    drop((sm, storage.ledger, log_store));

    let reopened = Storage::open(dir.path()).unwrap();
    let mut sm = reopened.state_machine;
    assert_eq!(sm.applied_state().await.unwrap().0, Some(LogId::new(CommittedLeaderId::new(1, 1), 9)));
    assert_eq!(reopened.ledger.state().head().seq, 9);
}
