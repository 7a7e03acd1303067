//! The saved state: a restart continues from it and replays only the events after it, to the
//! same state a full replay builds; a damaged file, or one of another ledger, is refused and
//! the node replays everything instead.

use std::path::Path;

use keyledger_ledger::{saved_state, StateMachine, Storage, TypeConfig};
use openraft::storage::RaftStateMachine;
use openraft::Entry;

mod common;
use common::reopen;

/// Raft entries `from..=to` of a history: a bootstrap, then a new key every 10 entries and
/// renames of the first key between them. Another `seed` gives another chain.
fn history(seed: u64, from: u64, to: u64) -> Vec<Entry<TypeConfig>> {
    let mut entries = common::history(seed, 10, to);
    entries.retain(|e| e.log_id.index >= from);
    entries
}

async fn apply(sm: &mut StateMachine, entries: Vec<Entry<TypeConfig>>) {
    sm.apply(entries).await.unwrap();
}

/// The state every event of the data dir builds, each checked (as offline tools open it).
fn full_replay(dir: &Path) -> String {
    format!("{:?}", *keyledger_ledger::open_ledger(dir).unwrap().state())
}

#[tokio::test]
async fn a_restart_continues_from_the_saved_state_to_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = Storage::open(dir.path()).unwrap();
    assert_eq!(storage.ledger.started_from_saved_state(), None);
    apply(&mut storage.state_machine, history(1, 1, 300)).await;
    storage.ledger.save_state().unwrap();
    let saved_at = storage.ledger.state().head().seq;
    assert!(saved_state::path_in(dir.path()).is_file());
    // Events after the save: replayed on the next start.
    apply(&mut storage.state_machine, history(1, 301, 500)).await;
    storage.ledger.persist().unwrap();
    let live = format!("{:?}", *storage.ledger.state());
    drop(storage);

    let storage = reopen(dir.path());
    assert_eq!(storage.ledger.started_from_saved_state(), Some(saved_at));
    assert_eq!(format!("{:?}", *storage.ledger.state()), live);
    drop(storage);
    assert_eq!(full_replay(dir.path()), live);
}

#[tokio::test]
async fn a_damaged_saved_state_or_one_of_another_ledger_is_refused() {
    let (mine, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for (dir, seed) in [(&mine, 1), (&other, 2)] {
        let mut storage = Storage::open(dir.path()).unwrap();
        apply(&mut storage.state_machine, history(seed, 1, 200)).await;
        storage.ledger.save_state().unwrap();
    }
    let live = full_replay(mine.path());
    let file = saved_state::path_in(mine.path());
    let good = std::fs::read(&file).unwrap();

    // A flipped byte in the body: the checksum no longer holds.
    let mut damaged = good.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x20;
    // Cut short, as a crash mid-write would leave it (had it not been renamed into place).
    let torn = good[..good.len() - 10].to_vec();
    // Another ledger's state, well formed: its head is not this ledger's event.
    let foreign = std::fs::read(saved_state::path_in(other.path())).unwrap();
    for (what, bytes) in [("damaged", damaged), ("torn", torn), ("foreign", foreign), ("empty", Vec::new())] {
        std::fs::write(&file, bytes).unwrap();
        let storage = reopen(mine.path());
        assert_eq!(storage.ledger.started_from_saved_state(), None, "{what}");
        assert_eq!(format!("{:?}", *storage.ledger.state()), live, "{what}");
    }
    // The good file is used again.
    std::fs::write(&file, good).unwrap();
    let storage = reopen(mine.path());
    assert!(storage.ledger.started_from_saved_state().is_some());
    assert_eq!(format!("{:?}", *storage.ledger.state()), live);
}
