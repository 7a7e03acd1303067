//! The key events beyond create/enable/disable/delete (domain.md, "The key lifecycle"):
//! `updated` with `If-Match` revisions, `locked`/`unlocked`, `rotated`, `expired`, `used`,
//! `denied` — and a property test of random sessions using all of them.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{check_chains, perm, rejected, World, DAY, HOUR};
use keyledger_model::{
    AccountId, Actor, Binding, Command, DenialRecord, EventBody, KeyId, KeyState, LedgerEntry, Level, Outcome, Owner,
    Proposal, RejectCode, Role, Scope, SecretToken, SettingsPatch, Span, State, Timestamp, UseRecord, UserId, Verdict,
};
use proptest::prelude::*;

fn answer(world: &World, secret: &SecretToken, at: Timestamp) -> String {
    match world.state.verify(secret.expose(), at, None) {
        Verdict::Valid(_) => "valid".into(),
        Verdict::Forbidden(_) => "forbidden".into(),
        Verdict::Invalid(why) => why.as_str().into(),
    }
}

fn revision(world: &World, key: KeyId) -> u64 {
    world.state.key(&key).unwrap().revision
}

fn last_seq(world: &World) -> u64 {
    world.ledger.last().unwrap().event.seq
}

fn update(key: KeyId, name: Option<&str>, description: Option<&str>, if_revision: Option<u64>) -> Command {
    Command::UpdateKey { key, name: name.map(String::from), description: description.map(String::from), if_revision }
}

/// A rotation of `key` into a fresh 30-day key, with `grace`; the new key's id and secret.
fn rotation(world: &mut World, key: KeyId, grace: Span) -> (Command, KeyId, SecretToken) {
    let (new, secret) = world.new_key_for(None, "ignored", None);
    let id = new.id;
    (Command::RotateKey { key, new, grace }, id, secret)
}

// ---------------------------------------------------------------------------------------
// Update and revisions
// ---------------------------------------------------------------------------------------

#[test]
fn update_changes_name_and_description() {
    let mut world = World::bootstrap(200);
    let (id, _) = world.create_with("old", Some(common::at(DAY)), |k| k.description = "old text".into()).unwrap();

    assert_eq!(world.owner_does(update(id, Some("new"), None, None)), Ok(1));
    let entry = world.ledger.last().unwrap();
    assert_eq!(entry.event.body, EventBody::KeyUpdated { key: id, name: "new".into(), description: "old text".into() });
    let record = world.state.key(&id).unwrap();
    assert_eq!((record.name.as_str(), record.description.as_str()), ("new", "old text"));
    assert_eq!(record.revision, entry.event.seq);

    assert_eq!(world.owner_does(update(id, None, Some("for CI"), None)), Ok(1));
    assert_eq!(world.owner_does(update(id, Some("both"), Some(""), None)), Ok(1));
    let record = world.state.key(&id).unwrap();
    assert_eq!((record.name.as_str(), record.description.as_str()), ("both", ""));

    // Nothing to change: accepted, nothing written, revision kept.
    let rev = revision(&world, id);
    for command in [update(id, None, None, None), update(id, Some("both"), Some(""), Some(rev))] {
        assert_eq!(world.owner_does(command), Ok(0));
    }
    assert_eq!(revision(&world, id), rev);

    // The same rules as at creation.
    let long_description = "d".repeat(1001);
    for (name, description) in
        [(Some(""), None), (Some("  "), None), (Some("a\nb"), None), (None, Some(long_description.as_str()))]
    {
        assert_eq!(rejected(world.owner_does(update(id, name, description, None))), RejectCode::InvalidArgument);
    }
    let unknown = KeyId::generate(world.now, &mut world.rng);
    assert_eq!(rejected(world.owner_does(update(unknown, Some("x"), None, None))), RejectCode::NotFound);
}

#[test]
fn a_stale_if_match_revision_is_refused_and_changes_nothing() {
    let mut world = World::bootstrap(201);
    let (id, _) = world.create("k", Span::days(3)).unwrap();
    let created = revision(&world, id);
    assert_eq!(created, last_seq(&world));
    assert_eq!(world.owner_does(update(id, Some("a"), None, Some(created))), Ok(1));
    let updated = revision(&world, id);
    assert!(updated > created);

    let before = world.state.clone();
    for stale in [created, updated - 1, updated + 1, 0] {
        let r = world.owner_does(update(id, Some("b"), None, Some(stale))).unwrap_err();
        assert_eq!(r.code, RejectCode::RevisionMismatch, "{stale}");
    }
    assert_eq!(world.state, before);
    assert_eq!(world.state.key(&id).unwrap().name, "a");

    // `used` and `denied` do not move the revision: the same If-Match still holds after them.
    let uses = vec![UseRecord { key: id, last_used_at: world.now, count: 5 }];
    assert_eq!(world.as_system(Command::RecordUse(uses)), Ok(1));
    let denial = DenialRecord {
        actor: world.owner_actor(),
        account: world.account.clone(),
        operation: "disable".into(),
        target: id.to_string(),
        reason: "locked".into(),
        count: 1,
    };
    assert_eq!(world.as_system(Command::RecordDenials(vec![denial])), Ok(1));
    assert_eq!(revision(&world, id), updated);
    assert_eq!(world.owner_does(update(id, Some("b"), None, Some(updated))), Ok(1));

    // Any state-changing event does.
    let rev = revision(&world, id);
    assert_eq!(world.owner_does(Command::LockKey(id)), Ok(1));
    assert_eq!(world.owner_does(Command::UnlockKey(id)), Ok(1));
    assert_eq!(rejected(world.owner_does(update(id, Some("c"), None, Some(rev)))), RejectCode::RevisionMismatch);
    assert_eq!(world.owner_does(update(id, Some("c"), None, Some(revision(&world, id)))), Ok(1));
}

#[test]
fn the_revision_follows_every_state_changing_event_and_only_those() {
    let mut world = World::bootstrap(202);
    let (id, _) = world.create("k", Span(2 * HOUR)).unwrap();
    let expect = |world: &World, changed: bool, what: &str, last: &mut u64| {
        if changed {
            *last = last_seq(world);
        }
        assert_eq!(revision(world, id), *last, "after {what}");
    };
    let mut last = revision(&world, id);
    let steps: Vec<(Command, bool, &str)> = vec![
        (update(id, Some("n"), None, None), true, "updated"),
        (Command::LockKey(id), true, "locked"),
        (Command::UnlockKey(id), true, "unlocked"),
        (Command::DisableKey(id), true, "disabled"),
        (Command::EnableKey(id), true, "enabled"),
    ];
    for (command, changed, what) in steps {
        assert_eq!(world.owner_does(command), Ok(1));
        expect(&world, changed, what, &mut last);
    }
    let uses = vec![UseRecord { key: id, last_used_at: world.now, count: 1 }];
    assert_eq!(world.as_system(Command::RecordUse(uses)), Ok(1));
    expect(&world, false, "used", &mut last);
    let (command, new, _) = rotation(&mut world, id, Span(HOUR));
    assert_eq!(world.owner_does(command), Ok(2));
    expect(&world, true, "rotated", &mut last);
    assert_eq!(revision(&world, new), last_seq(&world) - 1, "the replacement's revision is its created event");
    world.advance(HOUR);
    assert_eq!(world.as_system(Command::ExpireKeys(vec![id])), Ok(1));
    expect(&world, true, "expired", &mut last);
    assert_eq!(world.owner_does(Command::DeleteKey(id)), Ok(1));
    expect(&world, true, "deleted", &mut last);
}

#[test]
fn an_expired_key_can_still_be_renamed_but_a_deleted_one_cannot() {
    let mut world = World::bootstrap(203);
    let (id, _) = world.create("k", Span(HOUR)).unwrap();
    world.advance(HOUR);
    assert_eq!(world.owner_does(update(id, Some("expired"), None, None)), Ok(1));
    assert_eq!(world.owner_does(Command::DeleteKey(id)), Ok(1));
    assert_eq!(rejected(world.owner_does(update(id, Some("deleted"), None, None))), RejectCode::Conflict);
    assert_eq!(world.state.key(&id).unwrap().name, "expired");
}

// ---------------------------------------------------------------------------------------
// Lock and unlock
// ---------------------------------------------------------------------------------------

#[test]
fn a_locked_key_cannot_be_updated_disabled_or_deleted() {
    let mut world = World::bootstrap(210);
    let (id, secret) = world.create("k", Span::days(3)).unwrap();
    assert_eq!(world.owner_does(Command::LockKey(id)), Ok(1));
    assert_eq!(world.ledger.last().unwrap().event.body, EventBody::KeyLocked { key: id });
    assert!(world.state.key(&id).unwrap().locked);
    assert_eq!(world.owner_does(Command::LockKey(id)), Ok(0));
    assert_eq!(answer(&world, &secret, world.now), "valid", "a locked key still works");

    let rev = revision(&world, id);
    for command in [
        update(id, Some("x"), None, None),
        update(id, None, Some("x"), Some(rev)),
        Command::DisableKey(id),
        Command::DeleteKey(id),
    ] {
        assert_eq!(rejected(world.owner_does(command.clone())), RejectCode::KeyLocked, "{command:?}");
    }
    // A locked key calling for itself is refused the same way.
    assert_eq!(rejected(world.as_key(id, Command::DisableKey(id))), RejectCode::KeyLocked);

    assert_eq!(world.owner_does(Command::UnlockKey(id)), Ok(1));
    assert_eq!(world.ledger.last().unwrap().event.body, EventBody::KeyUnlocked { key: id });
    assert_eq!(world.owner_does(Command::UnlockKey(id)), Ok(0));
    assert_eq!(world.owner_does(Command::DisableKey(id)), Ok(1));
    // A disabled key, locked, cannot be enabled either.
    assert_eq!(world.owner_does(Command::LockKey(id)), Ok(1));
    assert_eq!(rejected(world.owner_does(Command::EnableKey(id))), RejectCode::KeyLocked);
    assert_eq!(answer(&world, &secret, world.now), "disabled");
    assert_eq!(world.owner_does(Command::UnlockKey(id)), Ok(1));
    assert_eq!(world.owner_does(Command::DeleteKey(id)), Ok(1));
}

#[test]
fn a_deleted_key_cannot_be_locked_or_unlocked() {
    let mut world = World::bootstrap(211);
    let (id, _) = world.create("k", Span::days(3)).unwrap();
    assert_eq!(world.owner_does(Command::DeleteKey(id)), Ok(1));
    assert_eq!(rejected(world.owner_does(Command::LockKey(id))), RejectCode::Conflict);
    assert_eq!(rejected(world.owner_does(Command::UnlockKey(id))), RejectCode::Conflict);
    assert!(!world.state.key(&id).unwrap().locked);
}

#[test]
fn a_locked_key_still_expires() {
    let mut world = World::bootstrap(212);
    let (id, secret) = world.create("k", Span(HOUR)).unwrap();
    assert_eq!(world.owner_does(Command::LockKey(id)), Ok(1));
    world.advance(HOUR);
    assert_eq!(answer(&world, &secret, world.now), "expired");
    assert_eq!(world.state.due_expiries(world.now, 10), [id]);
    assert_eq!(world.as_system(Command::ExpireKeys(vec![id])), Ok(1));
    assert_eq!(world.state.key(&id).unwrap().state, KeyState::Expired);
    // Lock and unlock remain possible on an expired key.
    assert_eq!(world.owner_does(Command::UnlockKey(id)), Ok(1));
    assert_eq!(world.owner_does(Command::LockKey(id)), Ok(1));
}

// ---------------------------------------------------------------------------------------
// Rotation
// ---------------------------------------------------------------------------------------

#[test]
fn rotation_makes_a_replacement_with_the_same_name_description_scope_and_owner() {
    let mut world = World::bootstrap(220);
    let scope = Some(Scope::Role(Role::Developer));
    let (old, old_secret) = world
        .create_with("deploy", Some(common::at(10 * DAY)), |k| {
            k.description = "CI deploys".into();
            k.scope = scope.clone();
        })
        .unwrap();
    let (mut new, new_secret) = world.new_key_for(None, "other name", Some(Scope::Role(Role::Admin)));
    new.description = "other description".into();
    new.owner = Some(Owner::User(UserId::generate(world.now, &mut world.rng)));
    let new_id = new.id;
    let new_expiry = new.expires_at;
    let grace = Span(6 * HOUR);
    let proposal = world.by_owner(Command::RotateKey { key: old, new, grace });
    let (outcome, entries) = world.execute(&proposal);
    assert_eq!(outcome.key().map(|k| k.id), Some(new_id), "the answer is about the new key");
    let grace_end = Timestamp(world.now.0 + grace.0);
    assert_eq!(entries.len(), 2);
    match &entries[0].event.body {
        EventBody::KeyCreated { key, owner, name, description, scope: s, expires_at, .. } => {
            assert_eq!(*key, new_id);
            assert_eq!(*owner, Owner::User(world.owner));
            assert_eq!((name.as_str(), description.as_str()), ("deploy", "CI deploys"));
            assert_eq!(s, &scope);
            assert_eq!(*expires_at, new_expiry);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(entries[0].digest, Some(new_secret.digest()));
    assert_eq!(entries[1].event.body, EventBody::KeyRotated { key: old, replacement: new_id, expires_at: grace_end });

    let (o, n) = (world.state.key(&old).unwrap(), world.state.key(&new_id).unwrap());
    assert_eq!((o.replaced_by, o.replaces, o.expires_at), (Some(new_id), None, Some(grace_end)));
    assert_eq!((n.replaces, n.replaced_by, n.state), (Some(old), None, KeyState::Enabled));
    assert_eq!(n.hint, new_secret.hint());

    // Both work during the grace period; the old one stops at exactly its end.
    let just_before = Timestamp(grace_end.0 - 1);
    for t in [world.now, just_before] {
        assert_eq!(answer(&world, &old_secret, t), "valid");
        assert_eq!(answer(&world, &new_secret, t), "valid");
    }
    assert_eq!(answer(&world, &old_secret, grace_end), "expired");
    assert_eq!(answer(&world, &new_secret, grace_end), "valid");
    // The scope came along.
    match world.state.verify(new_secret.expose(), world.now, Some(&perm("account:admin"))) {
        Verdict::Forbidden(v) => assert_eq!(v.key, new_id),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rotation_with_no_grace_rejects_the_old_key_at_once() {
    let mut world = World::bootstrap(221);
    let (old, old_secret) = world.create("k", Span::days(3)).unwrap();
    let (command, _, new_secret) = rotation(&mut world, old, Span::ZERO);
    assert_eq!(world.owner_does(command), Ok(2));
    assert_eq!(world.state.key(&old).unwrap().expires_at, Some(world.now));
    assert_eq!(answer(&world, &old_secret, world.now), "expired");
    assert_eq!(answer(&world, &new_secret, world.now), "valid");
    assert_eq!(world.state.due_expiries(world.now, 10), [old]);
}

#[test]
fn rotation_never_extends_the_old_keys_life() {
    let mut world = World::bootstrap(222);
    let (old, old_secret) = world.create("k", Span(HOUR)).unwrap();
    let expires = Timestamp(world.now.0 + HOUR);
    let (command, _, _) = rotation(&mut world, old, Span(24 * HOUR));
    assert_eq!(world.owner_does(command), Ok(2));
    assert_eq!(world.state.key(&old).unwrap().expires_at, Some(expires));
    assert_eq!(answer(&world, &old_secret, expires), "expired");
}

#[test]
fn a_key_is_rotated_at_most_once_and_never_when_deleted() {
    let mut world = World::bootstrap(223);
    let (old, _) = world.create("k", Span::days(3)).unwrap();
    let (command, new, _) = rotation(&mut world, old, Span(HOUR));
    assert_eq!(world.owner_does(command), Ok(2));
    let (again, again_id, _) = rotation(&mut world, old, Span(HOUR));
    assert_eq!(rejected(world.owner_does(again)), RejectCode::Conflict);
    assert!(world.state.key(&again_id).is_none());
    // The replacement itself can be rotated in turn.
    let (command, _, _) = rotation(&mut world, new, Span(HOUR));
    assert_eq!(world.owner_does(command), Ok(2));

    let (gone, _) = world.create("gone", Span::days(3)).unwrap();
    assert_eq!(world.owner_does(Command::DeleteKey(gone)), Ok(1));
    let (command, _, _) = rotation(&mut world, gone, Span(HOUR));
    assert_eq!(rejected(world.owner_does(command)), RejectCode::Conflict);
    let unknown = KeyId::generate(world.now, &mut world.rng);
    let (command, _, _) = rotation(&mut world, unknown, Span(HOUR));
    assert_eq!(rejected(world.owner_does(command)), RejectCode::NotFound);
    let (live, _) = world.create("live", Span::days(3)).unwrap();
    let (command, _, _) = rotation(&mut world, live, Span(-1));
    assert_eq!(rejected(world.owner_does(command)), RejectCode::InvalidArgument);
}

#[test]
fn the_replacement_follows_the_rules_of_a_new_key() {
    let mut world = World::bootstrap(224);
    let (old, old_secret) = world.create("k", Span::days(3)).unwrap();
    let bad_expiries = [None, Some(world.now), Some(Timestamp(world.now.0 + Span::years(2).0 + 1))];
    for expires_at in bad_expiries {
        let (mut new, _) = world.new_key_for(None, "n", None);
        new.expires_at = expires_at;
        let command = Command::RotateKey { key: old, new, grace: Span(HOUR) };
        assert_eq!(rejected(world.owner_does(command)), RejectCode::InvalidArgument, "{expires_at:?}");
    }
    // The new key's id and secret must be fresh.
    let (mut new, _) = world.new_key_for(None, "n", None);
    new.digest = old_secret.digest();
    assert_eq!(
        rejected(world.owner_does(Command::RotateKey { key: old, new, grace: Span(HOUR) })),
        RejectCode::Conflict
    );
    assert!(world.state.key(&old).unwrap().replaced_by.is_none());
}

#[test]
fn rotation_counts_against_the_limit_like_a_create() {
    let mut world = World::bootstrap(225);
    world.set_settings(SettingsPatch { max_keys_per_user: Some(3), ..Default::default() });
    let (a, _) = world.create("a", Span::days(3)).unwrap();
    let (command, _, _) = rotation(&mut world, a, Span(HOUR));
    assert_eq!(world.owner_does(command), Ok(2), "2 of 3 used: room for one more");
    // Now bootstrap, a (in grace), a's replacement: at the limit.
    assert_eq!(rejected(world.create("c", Span::days(3))), RejectCode::LimitExceeded);
    let bootstrap_key = world.owner_key;
    let (command, _, _) = rotation(&mut world, bootstrap_key, Span(HOUR));
    assert_eq!(rejected(world.owner_does(command)), RejectCode::LimitExceeded);
    // Once the grace period is over the old key no longer counts.
    world.advance(HOUR);
    let (command, _, _) = rotation(&mut world, bootstrap_key, Span(HOUR));
    assert_eq!(world.owner_does(command), Ok(2));
}

#[test]
fn a_service_account_rotates_its_own_key_but_cannot_disable_or_delete_it() {
    let mut world = World::bootstrap(226);
    world.new_namespace("n");
    for binding in
        [Binding::Account(Role::Developer), Binding::Account(Role::Read), common::in_namespace("n", Level::Admin)]
    {
        let name = format!("{binding:?}").to_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "");
        let sa = world.new_service_account(&name, binding);
        let (key, secret) = world.key_for(Owner::ServiceAccount(sa), "self", None);
        let (command, new, new_secret) = rotation(&mut world, key, Span(HOUR));
        assert_eq!(world.as_key(key, command), Ok(2), "self-rotation");
        assert_eq!(world.state.key(&new).unwrap().owner, Owner::ServiceAccount(sa));
        assert_eq!(world.state.key(&new).unwrap().created_by, Actor::ServiceAccount { id: sa, key });
        assert_eq!(answer(&world, &secret, world.now), "valid", "during the grace period");
        assert_eq!(answer(&world, &new_secret, world.now), "valid");
        for target in [key, new] {
            for command in [
                Command::DisableKey(target),
                Command::DeleteKey(target),
                Command::LockKey(target),
                update(target, Some("x"), None, None),
            ] {
                assert_eq!(rejected(world.as_key(new, command.clone())), RejectCode::PermissionDenied, "{command:?}");
            }
        }
    }
    // An admin service account may.
    let admin = world.new_service_account("admin", Binding::Account(Role::Admin));
    let (key, _) = world.key_for(Owner::ServiceAccount(admin), "self", None);
    let (command, new, _) = rotation(&mut world, key, Span(HOUR));
    assert_eq!(world.as_key(key, command), Ok(2));
    assert_eq!(world.as_key(new, Command::DeleteKey(key)), Ok(1));
}

// ---------------------------------------------------------------------------------------
// Expiry, use and denials: written by the cluster itself
// ---------------------------------------------------------------------------------------

#[test]
fn only_the_cluster_records_expiry_use_and_denials() {
    let mut world = World::bootstrap(230);
    let (id, _) = world.create("k", Span(HOUR)).unwrap();
    world.advance(HOUR);
    let denial = DenialRecord {
        actor: world.owner_actor(),
        account: world.account.clone(),
        operation: "o".into(),
        target: "t".into(),
        reason: "r".into(),
        count: 1,
    };
    for command in [
        Command::ExpireKeys(vec![id]),
        Command::RecordUse(vec![UseRecord { key: id, last_used_at: world.now, count: 1 }]),
        Command::RecordDenials(vec![denial]),
    ] {
        assert_eq!(rejected(world.owner_does(command.clone())), RejectCode::PermissionDenied, "{command:?}");
    }
}

#[test]
fn expire_keys_writes_expired_only_for_keys_past_their_expiry() {
    let mut world = World::bootstrap(231);
    let (a, a_secret) = world.create("a", Span(HOUR)).unwrap();
    let (b, _) = world.create("b", Span(2 * HOUR)).unwrap();
    let (c, c_secret) = world.create("c disabled", Span(HOUR)).unwrap();
    let (d, _) = world.create("d deleted", Span(HOUR)).unwrap();
    assert_eq!(world.owner_does(Command::DisableKey(c)), Ok(1));
    assert_eq!(world.owner_does(Command::DeleteKey(d)), Ok(1));
    assert!(world.state.due_expiries(world.now, 100).is_empty());

    world.advance(HOUR - 1);
    assert!(world.state.due_expiries(world.now, 100).is_empty(), "nothing is due a millisecond early");
    world.advance(1);
    let due = world.state.due_expiries(world.now, 100);
    assert_eq!(due.iter().copied().collect::<BTreeSet<_>>(), BTreeSet::from([a, c]));
    assert_eq!(world.state.due_expiries(world.now, 1).len(), 1);

    // Listing other keys (not due, deleted, unknown) and repeats writes nothing more.
    let unknown = KeyId::generate(world.now, &mut world.rng);
    let ledger_len = world.ledger.len();
    let proposal = world.proposal(Actor::System, Command::ExpireKeys(vec![b, a, d, unknown, c, a]));
    let (outcome, entries) = world.execute(&proposal);
    assert!(matches!(outcome, Outcome::Accepted { events: 2, .. }), "{outcome:?}");
    let expired: BTreeSet<_> = entries
        .iter()
        .map(|e| match e.event.body {
            EventBody::KeyExpired { key } => key,
            ref other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(expired, BTreeSet::from([a, c]));
    assert!(entries.iter().all(|e| e.event.actor == Actor::System && e.event.account == world.account));
    assert_eq!(world.ledger.len(), ledger_len + 2);
    for (key, secret) in [(a, &a_secret), (c, &c_secret)] {
        let record = world.state.key(&key).unwrap();
        assert_eq!(record.state, KeyState::Expired);
        assert_eq!(answer(&world, secret, world.now), "expired");
    }
    assert_eq!(world.state.key(&b).unwrap().state, KeyState::Enabled);
    assert_eq!(world.state.key(&d).unwrap().state, KeyState::Deleted);

    // They left the queue; the next one joins it on time.
    assert!(world.state.due_expiries(world.now, 100).is_empty());
    assert_eq!(world.as_system(Command::ExpireKeys(vec![a, c])), Ok(0));
    world.advance(HOUR);
    assert_eq!(world.state.due_expiries(world.now, 100), [b]);
    assert_eq!(world.as_system(Command::ExpireKeys(vec![b])), Ok(1));
    assert!(world.state.due_expiries(Timestamp(i64::MAX), 100).iter().all(|k| *k == world.owner_key));
    check_chains(&world.ledger);
}

#[test]
fn a_rotated_key_joins_the_expiry_queue_at_the_end_of_its_grace() {
    let mut world = World::bootstrap(232);
    let (old, _) = world.create("k", Span::days(3)).unwrap();
    let (command, _, _) = rotation(&mut world, old, Span(HOUR));
    assert_eq!(world.owner_does(command), Ok(2));
    world.advance(HOUR - 1);
    assert!(world.state.due_expiries(world.now, 10).is_empty());
    world.advance(1);
    assert_eq!(world.state.due_expiries(world.now, 10), [old]);
    assert_eq!(world.as_system(Command::ExpireKeys(vec![old])), Ok(1));
    world.advance(3 * DAY);
    assert!(!world.state.due_expiries(world.now, 10).contains(&old), "its original expiry is gone");
}

#[test]
fn record_use_sums_counts_and_keeps_the_latest_time_without_a_new_revision() {
    let mut world = World::bootstrap(233);
    let (a, _) = world.create("a", Span::days(3)).unwrap();
    let (b, _) = world.create("b", Span::days(3)).unwrap();
    let acme = world.new_account("acme");
    let rev = revision(&world, a);
    let (t1, t2) = (Timestamp(world.now.0 - 10), Timestamp(world.now.0 - 5));
    let unknown = KeyId::generate(world.now, &mut world.rng);
    let uses = vec![
        UseRecord { key: a, last_used_at: t2, count: 3 },
        UseRecord { key: b, last_used_at: t1, count: 0 },
        UseRecord { key: unknown, last_used_at: t1, count: 7 },
        UseRecord { key: acme.owner_key, last_used_at: t1, count: 1 },
    ];
    let proposal = world.proposal(Actor::System, Command::RecordUse(uses));
    let (outcome, entries) = world.execute(&proposal);
    assert!(matches!(outcome, Outcome::Accepted { events: 2, .. }), "{outcome:?}");
    assert_eq!(entries[0].event.body, EventBody::KeyUsed { key: a, last_used_at: t2, count: 3 });
    assert_eq!(entries[0].event.account, world.account);
    assert_eq!(entries[1].event.account, acme.id, "each use is on its key's account chain");
    assert_eq!(entries[1].event.actor, Actor::System);

    // An older batch arriving later is not due: last_used_at does not move back.
    let uses = vec![UseRecord { key: a, last_used_at: t1, count: 2 }];
    assert_eq!(world.as_system(Command::RecordUse(uses)), Ok(0));
    let record = world.state.key(&a).unwrap();
    assert_eq!((record.last_used_at, record.use_count, record.revision), (Some(t2), 3, rev));
    let record = world.state.key(&b).unwrap();
    assert_eq!((record.last_used_at, record.use_count), (None, 0));
    check_chains(&world.ledger);
}

#[test]
fn record_denials_writes_the_actor_and_cuts_the_text() {
    let mut world = World::bootstrap(234);
    let (alice, alice_key, _) = {
        let id = world.new_user("alice", Role::Read);
        let (key, secret) = world.key_for(Owner::User(id), "k", None);
        (id, key, secret)
    };
    let actor = Actor::User { id: alice, key: alice_key };
    let record = |account: &AccountId, actor: Actor, operation: String, count: u32| DenialRecord {
        actor,
        account: account.clone(),
        operation,
        target: format!("key {}", "é".repeat(300)),
        reason: format!("not\u{0}allowed\n{}", "r".repeat(300)),
        count,
    };
    let ghost = AccountId::new("ghost").unwrap();
    let denials = vec![
        record(&world.account, actor, "d".repeat(300), 4),
        record(&world.account, actor, "zero".into(), 0),
        record(&ghost, actor, "no such account".into(), 1),
        record(&world.account, Actor::System, "the cluster".into(), 1),
    ];
    let rev = revision(&world, alice_key);
    let proposal = world.proposal(Actor::System, Command::RecordDenials(denials));
    let (outcome, entries) = world.execute(&proposal);
    assert!(matches!(outcome, Outcome::Accepted { events: 1, .. }), "{outcome:?}");
    let event = &entries[0].event;
    assert_eq!(event.actor, actor, "the denied caller, not the cluster, is the event's actor");
    assert_eq!(event.account, world.account);
    match &event.body {
        EventBody::Denied { operation, target, reason, count } => {
            assert_eq!(*count, 4);
            assert_eq!(operation, &"d".repeat(200));
            assert_eq!(target.chars().count(), 200);
            assert!(target.starts_with("key é"));
            assert_eq!(reason.chars().count(), 200);
            assert!(reason.starts_with("notallowed"), "control characters are dropped: {reason:?}");
            assert!(!reason.chars().any(char::is_control));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(event.body.type_name(), "denied");
    assert_eq!(revision(&world, alice_key), rev);
    assert!(world.state.account(&ghost).is_none());
    assert_eq!(world.as_system(Command::RecordDenials(Vec::new())), Ok(0));
    check_chains(&world.ledger);
}

// ---------------------------------------------------------------------------------------
// Random sessions with every key command
// ---------------------------------------------------------------------------------------

/// Who calls: one of the owner's live keys (the usual case) or any key at all.
#[derive(Debug, Clone, Copy)]
enum Caller {
    OwnerLive(usize),
    Any(usize),
}

#[derive(Debug, Clone, Copy)]
enum Rev {
    None,
    Current,
    Stale,
}

#[derive(Debug, Clone)]
enum Step {
    /// A key for the caller, or (by index) for one of the other identities.
    Create {
        for_other: Option<usize>,
        expires_in: i64,
        scoped: bool,
    },
    Update {
        target: usize,
        name: Option<String>,
        description: Option<String>,
        rev: Rev,
    },
    Lock(usize),
    Unlock(usize),
    Enable(usize),
    Disable(usize),
    Delete(usize),
    Rotate {
        target: usize,
        grace: i64,
        expires_in: i64,
    },
    /// By the cluster: the due keys (as the leader does) or any keys.
    Expire {
        due: bool,
        extra: Vec<usize>,
    },
    Use(Vec<(usize, i64, u64)>),
    Deny {
        by: usize,
        length: usize,
        count: u32,
    },
    /// The owner flips an identity's enabled flag (dev user, ci SA, worker SA).
    ToggleIdentity(usize),
    ToggleCreation,
}

#[derive(Debug, Clone)]
struct Move {
    advance: i64,
    caller: Caller,
    step: Step,
}

fn step_strategy() -> impl Strategy<Value = Step> {
    let target = any::<usize>;
    let expires_in = prop_oneof![3 => HOUR..=3 * DAY, 1 => 1..=HOUR];
    let text = prop_oneof![Just(None), "[a-z]{1,8}".prop_map(Some), Just(Some(String::new()))];
    prop_oneof![
        6 => (prop::option::of(0..3usize), expires_in.clone(), any::<bool>())
            .prop_map(|(for_other, expires_in, scoped)| Step::Create { for_other, expires_in, scoped }),
        3 => (target(), text.clone(), text, prop_oneof![Just(Rev::None), Just(Rev::Current), Just(Rev::Stale)])
            .prop_map(|(target, name, description, rev)| Step::Update { target, name, description, rev }),
        2 => target().prop_map(Step::Lock),
        2 => target().prop_map(Step::Unlock),
        1 => target().prop_map(Step::Enable),
        2 => target().prop_map(Step::Disable),
        1 => target().prop_map(Step::Delete),
        3 => (target(), prop_oneof![Just(0), Just(HOUR), Just(2 * DAY)], expires_in)
            .prop_map(|(target, grace, expires_in)| Step::Rotate { target, grace, expires_in }),
        2 => (any::<bool>(), prop::collection::vec(target(), 0..3)).prop_map(|(due, extra)| Step::Expire { due, extra }),
        2 => prop::collection::vec((target(), 0..HOUR, 0..4u64), 1..4).prop_map(Step::Use),
        1 => (target(), 0..260usize, 0..3u32).prop_map(|(by, length, count)| Step::Deny { by, length, count }),
        1 => (0..3usize).prop_map(Step::ToggleIdentity),
        1 => Just(Step::ToggleCreation),
    ]
}

fn move_strategy() -> impl Strategy<Value = Move> {
    let advance = prop_oneof![3 => Just(0i64), 3 => 1..=HOUR, 1 => HOUR..=DAY];
    let caller =
        prop_oneof![5 => any::<usize>().prop_map(Caller::OwnerLive), 2 => any::<usize>().prop_map(Caller::Any)];
    (advance, caller, step_strategy()).prop_map(|(advance, caller, step)| Move { advance, caller, step })
}

/// A world with a developer user, an account-scoped and a namespace-scoped service account,
/// each with a key, and every proposal made and answered since.
struct Session {
    world: World,
    others: [Owner; 3],
    secrets: Vec<(KeyId, SecretToken)>,
    proposals: Vec<Proposal>,
    outcomes: Vec<Outcome>,
}

impl Session {
    fn new(seed: u64) -> Session {
        let mut world = World::bootstrap(seed);
        world.new_namespace("n");
        let dev = Owner::User(world.new_user("dev", Role::Developer));
        let ci = Owner::ServiceAccount(world.new_service_account("ci", Binding::Account(Role::Developer)));
        let worker =
            Owner::ServiceAccount(world.new_service_account("worker", common::in_namespace("n", Level::Write)));
        let mut secrets = vec![(world.owner_key, world.owner_secret.clone())];
        for owner in [dev, ci, worker] {
            secrets.push(world.key_for(owner, "first", None));
        }
        Session { world, others: [dev, ci, worker], secrets, proposals: Vec::new(), outcomes: Vec::new() }
    }

    fn keys(&self) -> Vec<KeyId> {
        self.world.state.keys_after(None).map(|k| k.id).collect()
    }

    fn key(&self, i: usize) -> KeyId {
        let keys = self.keys();
        keys[i % keys.len()]
    }

    fn caller(&self, pick: Caller) -> KeyId {
        match pick {
            Caller::Any(i) => self.key(i),
            Caller::OwnerLive(i) => {
                let now = self.world.now;
                let owner = Owner::User(self.world.owner);
                let live: Vec<KeyId> = self
                    .world
                    .state
                    .keys_after(None)
                    .filter(|k| k.owner == owner && k.state_at(now) == KeyState::Enabled)
                    .map(|k| k.id)
                    .collect();
                live.get(i % live.len().max(1)).copied().unwrap_or(self.world.owner_key)
            }
        }
    }

    fn propose(&mut self, m: &Move) -> Proposal {
        self.world.advance(m.advance);
        let now = self.world.now;
        let caller = self.caller(m.caller);
        let user_actor = self.world.actor_of(caller);
        let mut actor = user_actor;
        let command = match &m.step {
            Step::Create { for_other, expires_in, scoped } => {
                let owner = for_other.map(|i| self.others[i]);
                let scope = scoped.then_some(Scope::Role(Role::Read));
                let (mut key, secret) = self.world.new_key_for(owner, "k", scope);
                key.expires_at = Some(Timestamp(now.0 + expires_in));
                self.secrets.push((key.id, secret));
                Command::CreateKey(key)
            }
            Step::Update { target, name, description, rev } => {
                let key = self.key(*target);
                let current = self.world.state.key(&key).unwrap().revision;
                let if_revision = match rev {
                    Rev::None => None,
                    Rev::Current => Some(current),
                    Rev::Stale => Some(current.saturating_sub(1)),
                };
                Command::UpdateKey { key, name: name.clone(), description: description.clone(), if_revision }
            }
            Step::Lock(t) => Command::LockKey(self.key(*t)),
            Step::Unlock(t) => Command::UnlockKey(self.key(*t)),
            Step::Enable(t) => Command::EnableKey(self.key(*t)),
            Step::Disable(t) => Command::DisableKey(self.key(*t)),
            Step::Delete(t) => Command::DeleteKey(self.key(*t)),
            Step::Rotate { target, grace, expires_in } => {
                let key = self.key(*target);
                let (mut new, secret) = self.world.new_key_for(None, "r", None);
                new.expires_at = Some(Timestamp(now.0 + expires_in));
                self.secrets.push((new.id, secret));
                Command::RotateKey { key, new, grace: Span(*grace) }
            }
            Step::Expire { due, extra } => {
                actor = Actor::System;
                let mut ids = if *due { self.world.state.due_expiries(now, 100) } else { Vec::new() };
                ids.extend(extra.iter().map(|i| self.key(*i)));
                Command::ExpireKeys(ids)
            }
            Step::Use(uses) => {
                actor = Actor::System;
                let uses = uses
                    .iter()
                    .map(|(t, ago, count)| UseRecord {
                        key: self.key(*t),
                        last_used_at: Timestamp(now.0 - ago),
                        count: *count,
                    })
                    .collect();
                Command::RecordUse(uses)
            }
            Step::Deny { by, length, count } => {
                actor = Actor::System;
                let denied = self.world.actor_of(self.key(*by));
                let record = DenialRecord {
                    actor: denied,
                    account: self.world.account.clone(),
                    operation: "x".repeat(*length),
                    target: "key".into(),
                    reason: "because".into(),
                    count: *count,
                };
                Command::RecordDenials(vec![record])
            }
            Step::ToggleIdentity(i) => {
                actor = self.world.owner_actor();
                match self.others[*i] {
                    Owner::User(user) => {
                        let enabled =
                            self.world.state.user(&user).unwrap().state != keyledger_model::IdentityState::Enabled;
                        Command::SetUserEnabled { user, enabled }
                    }
                    Owner::ServiceAccount(sa) => {
                        let state = self.world.state.service_account(&sa).unwrap().state;
                        Command::SetServiceAccountEnabled {
                            service_account: sa,
                            enabled: state != keyledger_model::IdentityState::Enabled,
                        }
                    }
                }
            }
            Step::ToggleCreation => {
                actor = self.world.owner_actor();
                let on = self.world.state.account(&self.world.account).unwrap().settings.key_creation_enabled;
                Command::UpdateSettings(SettingsPatch { key_creation_enabled: Some(!on), ..Default::default() })
            }
        };
        self.world.proposal(actor, command)
    }

    /// Executes one proposal and checks the invariants around it.
    fn step(&mut self, proposal: &Proposal) -> Result<(), TestCaseError> {
        let before = self.world.state.clone();
        let (outcome, entries) = self.world.state.execute(proposal);
        let now = proposal.time;
        match &outcome {
            Outcome::Rejected(_) => {
                prop_assert!(entries.is_empty());
                prop_assert_eq!(&self.world.state, &before, "a rejection changed the state");
            }
            Outcome::Accepted { events, head, .. } => {
                prop_assert_eq!(*events as usize, entries.len());
                prop_assert_eq!(*head, self.world.state.head());
            }
            Outcome::Internal | Outcome::Replayed { .. } => return Err(TestCaseError::fail("Internal")),
        }
        self.world.ledger.extend(entries.iter().cloned());
        self.proposals.push(proposal.clone());
        self.outcomes.push(outcome);
        let after = &self.world.state;

        // What each event may do to a key, given the key before it.
        for entry in &entries {
            let Some(id) = entry.event.body.key() else { continue };
            let Some(old) = before.key(&id) else {
                prop_assert!(matches!(entry.event.body, EventBody::KeyCreated { .. }), "a new key starts with created");
                continue;
            };
            let body = &entry.event.body;
            prop_assert!(
                old.state != KeyState::Deleted || matches!(body, EventBody::KeyUsed { .. }),
                "{:?} on a deleted key",
                body
            );
            if old.locked {
                prop_assert!(
                    matches!(
                        body,
                        EventBody::KeyUnlocked { .. }
                            | EventBody::KeyExpired { .. }
                            | EventBody::KeyUsed { .. }
                            | EventBody::KeyRotated { .. }
                    ),
                    "{:?} on a locked key",
                    body
                );
            }
            if matches!(body, EventBody::KeyExpired { .. }) {
                prop_assert!(matches!(proposal.actor, Actor::System));
                prop_assert!(old.expires_at.is_some_and(|at| at <= now), "expired before its time");
            }
            if matches!(body, EventBody::KeyRotated { .. }) {
                prop_assert!(old.replaced_by.is_none(), "rotated twice");
            }
        }

        // Revisions, use counts and the limits, from the whole ledger.
        let mut revisions = BTreeMap::new();
        let mut uses: BTreeMap<KeyId, (u64, Option<Timestamp>)> = BTreeMap::new();
        for entry in &self.world.ledger {
            match &entry.event.body {
                EventBody::KeyUsed { key, last_used_at, count } => {
                    let slot = uses.entry(*key).or_default();
                    slot.0 += count;
                    slot.1 = slot.1.max(Some(*last_used_at));
                }
                body => {
                    if let Some(key) = body.key() {
                        revisions.insert(key, entry.event.seq);
                    }
                }
            }
        }
        let mut live: BTreeMap<Owner, usize> = BTreeMap::new();
        for record in after.keys_after(None) {
            prop_assert_eq!(Some(&record.revision), revisions.get(&record.id), "revision of {:?}", record.id);
            let (count, last) = uses.get(&record.id).copied().unwrap_or_default();
            prop_assert_eq!((record.use_count, record.last_used_at), (count, last));
            if record.is_live_at(now) {
                *live.entry(record.owner).or_default() += 1;
            }
            // Every key past its expiry without an `expired` event is due.
            if matches!(record.state, KeyState::Enabled | KeyState::Disabled)
                && record.expires_at.is_some_and(|at| at <= now)
            {
                prop_assert!(after.due_expiries(now, usize::MAX).contains(&record.id), "{:?} not due", record.id);
            }
        }
        for id in after.due_expiries(now, usize::MAX) {
            prop_assert!(after.key(&id).is_some_and(|k| k.state != KeyState::Deleted), "a deleted key is due");
        }
        for (owner, n) in live {
            let limit = if matches!(owner, Owner::User(_)) { 10 } else { 20 };
            prop_assert!(n <= limit, "{:?} has {} live keys", owner, n);
        }

        // Verification agrees with the records and identities.
        for (id, secret) in &self.secrets {
            let record = after.key(id);
            let verdict = after.verify(secret.expose(), now, None);
            let ok = match (record.map(|r| (r.state, r.state_at(now))), &verdict) {
                (None, Verdict::Invalid(keyledger_model::Invalid::NotFound)) => true,
                (Some((KeyState::Enabled, KeyState::Enabled)), Verdict::Valid(v)) => v.key == *id,
                (
                    Some((KeyState::Enabled, KeyState::Enabled)),
                    Verdict::Invalid(keyledger_model::Invalid::IdentityDisabled),
                ) => after.owner_state(&record.unwrap().owner) != Some(keyledger_model::IdentityState::Enabled),
                (Some((KeyState::Disabled, _)), Verdict::Invalid(keyledger_model::Invalid::Disabled)) => true,
                (Some((KeyState::Deleted, _)), Verdict::Invalid(keyledger_model::Invalid::Deleted)) => true,
                (Some((_, KeyState::Expired)), Verdict::Invalid(keyledger_model::Invalid::Expired)) => true,
                _ => false,
            };
            prop_assert!(ok, "{:?} ({:?}) verified as {:?}", id, record.map(|r| r.state), verdict);
        }

        // The ledger rebuilds the live state.
        prop_assert_eq!(&State::rebuild(&self.world.ledger), after);
        Ok(())
    }
}

fn encode(entries: &[LedgerEntry]) -> Vec<u8> {
    bincode::serde::encode_to_vec(entries, bincode::config::standard()).expect("entries encode")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random sessions of every key command keep the lifecycle invariants, rebuild to the live
    /// state after every step, and replay (twice) to the same answers and byte-identical ledgers.
    #[test]
    fn random_sessions_with_every_key_command(seed in any::<u64>(), moves in prop::collection::vec(move_strategy(), 1..=40)) {
        let mut session = Session::new(seed);
        for m in &moves {
            let proposal = session.propose(m);
            session.step(&proposal)?;
        }
        check_chains(&session.world.ledger);
        let original = encode(&session.world.ledger);
        // The setup went through `World::execute` (journal); the session straight to `State`.
        let journal = session.world.journal.iter().map(|(p, o)| (p, o));
        let all: Vec<(&Proposal, &Outcome)> = journal.chain(session.proposals.iter().zip(&session.outcomes)).collect();
        prop_assert_eq!(all.len(), session.world.journal.len() + moves.len());
        let mut replays = Vec::new();
        for _ in 0..2 {
            let mut state = State::new();
            let mut ledger = Vec::new();
            for (proposal, outcome) in &all {
                let (again, entries) = state.execute(proposal);
                prop_assert_eq!(&again, *outcome);
                ledger.extend(entries);
            }
            prop_assert_eq!(&encode(&ledger), &original);
            prop_assert_eq!(&state, &session.world.state);
            replays.push(encode(&ledger));
        }
        prop_assert_eq!(&replays[0], &replays[1]);
    }
}

#[test]
fn rotating_a_never_expiring_key_at_the_limit_exceeds_nothing() {
    let mut world = World::bootstrap(900);
    world.set_settings(SettingsPatch { allow_never_expiring: Some(true), ..Default::default() });
    let mut forever = Vec::new();
    for i in 0..9 {
        forever.push(world.create_with(&format!("forever {i}"), None, |_| {}).unwrap().0);
    }
    assert_eq!(rejected(world.create("eleventh", Span::days(1))), RejectCode::LimitExceeded);
    let (new, _) = world.new_key_for(None, "r", None);
    let result = world.owner_does(Command::RotateKey { key: forever[0], new, grace: Span(24 * HOUR) });
    assert_eq!(result.map_err(|r| r.code), Err(RejectCode::LimitExceeded), "the old key lives on through its grace");
    let owner = Owner::User(world.owner);
    let live = world.state.keys_after(None).filter(|k| k.owner == owner && k.is_live_at(world.now)).count();
    assert_eq!(live, 10);
}

#[test]
fn rotating_with_no_grace_at_the_limit_frees_the_old_keys_slot() {
    let mut world = World::bootstrap(901);
    for i in 2..=10 {
        world.create(&format!("k{i}"), Span::days(7)).unwrap();
    }
    let key = world.owner_key;
    let (new, _) = world.new_key_for(None, "r", None);
    assert_eq!(world.owner_does(Command::RotateKey { key, new, grace: Span::ZERO }), Ok(2));
}

#[test]
fn a_rotated_expired_key_leaves_the_expiry_queue() {
    let mut world = World::bootstrap(902);
    let (old, _) = world.create("k", Span(HOUR)).unwrap();
    world.advance(HOUR);
    assert_eq!(world.as_system(Command::ExpireKeys(vec![old])), Ok(1));
    assert_eq!(world.state.key(&old).unwrap().state, KeyState::Expired);
    let (new, _) = world.new_key_for(None, "r", None);
    assert_eq!(world.owner_does(Command::RotateKey { key: old, new, grace: Span(HOUR) }), Ok(2));
    assert!(!world.state.due_expiries(Timestamp(world.now.0 + DAY), 10).contains(&old));
}

/// Found by the chaos harness (seed 8827608796039686272): an `enable` stamped before a rotation
/// with no grace, but committed after it, was judged at its own, earlier time and accepted on a
/// key that had already expired. A proposal stamped before the latest event is decided and
/// recorded at that event's time: the ledger's times never go backwards.
#[test]
fn a_proposal_stamped_before_the_latest_event_is_decided_at_that_events_time() {
    let mut world = World::bootstrap(77);
    let (old, _) = world.create("k", Span::days(3)).unwrap();
    world.owner_does(Command::DisableKey(old)).unwrap();
    let stamped_early = world.by_owner(Command::EnableKey(old));
    world.advance(400);
    let (rotate, _, _) = rotation(&mut world, old, Span(0));
    world.owner_does(rotate).unwrap();

    let (outcome, entries) = world.execute(&stamped_early);
    assert!(matches!(outcome, Outcome::Rejected(_)), "the key expired with the rotation: {outcome:?}");
    assert!(entries.is_empty());

    // An accepted late proposal is recorded at the latest event's time, never before it.
    let (other, _) = world.create("other", Span::days(3)).unwrap();
    let latest = world.ledger.last().unwrap().event.time;
    let late = Proposal { time: Timestamp(latest.0 - 1_000), ..world.by_owner(Command::DisableKey(other)) };
    let (outcome, entries) = world.execute(&late);
    assert!(matches!(outcome, Outcome::Accepted { .. }), "{outcome:?}");
    assert_eq!(entries[0].event.time, latest);
    assert!(world.ledger.windows(2).all(|w| w[0].event.time <= w[1].event.time), "times never go backwards");
}

#[test]
fn keys_expiring_lists_only_keys_that_can_still_expire_within_the_window() {
    let mut world = World::bootstrap(233);
    let (soon, _) = world.create("soon", Span(HOUR)).unwrap();
    let (later, _) = world.create("later", Span::days(10)).unwrap();
    let (disabled, _) = world.create("disabled", Span(2 * HOUR)).unwrap();
    let (deleted, _) = world.create("deleted", Span(HOUR)).unwrap();
    assert_eq!(world.owner_does(Command::DisableKey(disabled)), Ok(1));
    assert_eq!(world.owner_does(Command::DeleteKey(deleted)), Ok(1));
    let ids = |world: &World, within: Span| -> Vec<KeyId> {
        let until = world.now.checked_add(within).unwrap();
        world.state.keys_expiring(world.now, until).map(|k| k.id).collect()
    };

    // In expiry order; the window's end is included; deleted keys never.
    assert_eq!(ids(&world, Span(HOUR - 1)), []);
    assert_eq!(ids(&world, Span(HOUR)), [soon]);
    assert_eq!(ids(&world, Span::days(1)), [soon, disabled]);
    assert_eq!(ids(&world, Span::days(10)), [soon, disabled, later]);
    // The gauges count the same keys.
    assert_eq!(world.state.keys_expiring_within(world.now, [Span(HOUR), Span::days(1), Span::days(10)]), [1, 2, 3]);

    // A key whose expiry is now has expired: it is not "expiring" any more.
    world.advance(HOUR);
    assert_eq!(ids(&world, Span::days(1)), [disabled]);
    assert_eq!(world.state.keys_expiring_within(world.now, [Span::days(1)]), [1]);
}
