//! Unit tests of `as_of`: which event decided a key's verdict at a past moment, rebuilt the way
//! `POST /v1/verify/as-of` rebuilds it (the ledger prefix up to the moment).

mod common;

use common::{World, DAY, HOUR};
use keyledger_model::as_of::{deciding_event, disables};
use keyledger_model::{Binding, Command, EventBody, KeyId, LedgerEntry, Owner, Role, State, Timestamp};

/// The deciding event's body as of `at`, the rebuild done as the API does it.
fn decided_at(world: &World, key: KeyId, at: Timestamp) -> Option<EventBody> {
    let record = world.state.key(&key).expect("the key exists");
    let (digest, owner) = (record.digest, record.owner);
    let mut past = State::new();
    let mut last_seq = 0;
    let mut identity_change = None;
    for entry in world.ledger.iter().take_while(|e| e.event.time <= at) {
        last_seq = entry.event.seq;
        past.evolve(entry);
        if disables(&entry.event.body, &owner) {
            identity_change = Some(entry.clone());
        }
    }
    let history: Vec<LedgerEntry> = world.ledger.iter().filter(|e| e.event.body.key() == Some(key)).cloned().collect();
    let verdict = past.verify_digest(&digest, at, None);
    deciding_event(&verdict, identity_change, history, last_seq).map(|e| e.event.body)
}

#[test]
fn the_keys_last_change_before_the_moment_decides() {
    let mut world = World::bootstrap(71);
    let (key, _) = world.create("k", keyledger_model::Span(30 * DAY)).unwrap();
    let created = world.now;
    world.advance(HOUR);
    world.owner_does(Command::DisableKey(key)).unwrap();
    let disabled = world.now;
    world.advance(HOUR);
    world.owner_does(Command::EnableKey(key)).unwrap();
    assert!(matches!(decided_at(&world, key, created), Some(EventBody::KeyCreated { .. })));
    assert!(matches!(decided_at(&world, key, disabled), Some(EventBody::KeyDisabled { .. })));
    assert!(matches!(decided_at(&world, key, world.now), Some(EventBody::KeyEnabled { .. })));
}

#[test]
fn a_disabled_identity_is_decided_by_its_disabling() {
    let mut world = World::bootstrap(72);
    let sa = world.new_service_account("robot", Binding::Account(Role::Developer));
    let (key, _) = world.key_for(Owner::ServiceAccount(sa), "k", None);
    world.advance(HOUR);
    world.owner_does(Command::SetServiceAccountEnabled { service_account: sa, enabled: false }).unwrap();
    let body = decided_at(&world, key, world.now);
    assert!(
        matches!(body, Some(EventBody::ServiceAccountDisabled { service_account }) if service_account == sa),
        "{body:?}"
    );
    assert!(!disables(&EventBody::ServiceAccountDisabled { service_account: sa }, &Owner::User(world.owner)));
    assert!(disables(&EventBody::UserDeleted { user: world.owner }, &Owner::User(world.owner)));
}
