//! `EventCheck`, the event-by-event verification a backup file gets: a whole ledger passes with
//! every checkpoint's root recomputed and the Merkle root of the whole; a rewritten history with
//! every hash recomputed, a gap and a forged checkpoint are caught at the event that shows them.

mod common;

use common::every_kind_of_event;
use keyledger_audit::verify::EventCheck;
use keyledger_model::merkle::Frontier;
use keyledger_model::{merkle, CheckpointSigner, Event, EventBody};

fn events() -> Vec<Event> {
    every_kind_of_event().ledger.iter().map(|e| e.event.clone()).collect()
}

/// The seq of the first event refused, if any.
fn first_failure(events: &[Event]) -> Option<u64> {
    let mut check = EventCheck::new(None);
    for event in events {
        if let Err(failure) = check.push(event.clone()) {
            return Some(failure.line);
        }
    }
    check.finish().err().map(|f| f.line)
}

#[test]
fn a_whole_ledger_passes_with_its_checkpoints_and_its_merkle_root() {
    let events = events();
    let mut check = EventCheck::new(None);
    let mut tree = Frontier::new();
    for event in &events {
        tree.push(merkle::leaf_hash(&event.hash.0), |_, _, _| {});
        check.push(event.clone()).unwrap();
    }
    assert_eq!(check.merkle_root(), Some(tree.root()));
    let verified = check.finish().unwrap();
    assert_eq!(verified.events as usize, events.len());
    assert_eq!((verified.checkpoints, verified.roots_checked), (4, 4));
}

#[test]
fn rewritten_missing_and_forged_events_are_caught_where_they_show() {
    let events = events();
    // A changed event with its own hashes recomputed breaks the link of the next one.
    let mut changed = events.clone();
    changed[3].request_id = "rewritten".into();
    (changed[3].hash, changed[3].account_hash) = changed[3].compute_hashes();
    assert_eq!(first_failure(&changed), Some(events[4].seq));
    // A missing event.
    let mut gap = events.clone();
    gap.remove(5);
    assert_eq!(first_failure(&gap), Some(events[6].seq));
    // A checkpoint re-signed by a key nobody registered.
    let at = events.iter().position(|e| matches!(e.body, EventBody::Checkpoint(_))).unwrap();
    let mut forged = events.clone();
    if let EventBody::Checkpoint(checkpoint) = &forged[at].body {
        let forger = CheckpointSigner::from_seed(checkpoint.signer, [9; 32]);
        forged[at].body = EventBody::Checkpoint(forger.sign(checkpoint.tree_size, checkpoint.root, checkpoint.head));
    }
    (forged[at].hash, forged[at].account_hash) = forged[at].compute_hashes();
    assert_eq!(first_failure(&forged), Some(events[at].seq));
}
