//! Unit tests of the key lifecycle rules the model enforces (domain.md, "The key lifecycle",
//! "Verification" and "The ledger"), each driven through `State::execute` and `State::verify`.

mod common;

use common::{at, check_chains, new_key, World, DAY, HOUR, T0};
use keyledger_model::{
    token, AccountId, AccountSettings, Actor, Command, EventBody, Invalid, KeyId, KeyState, NewKey, Outcome, Owner,
    Proposal, RejectCode, Role, Scope, Span, State, Timestamp, UserId, Verdict,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// The rejection code of a result, panicking on acceptance.
fn code<T: std::fmt::Debug>(result: Result<T, keyledger_model::Rejection>) -> RejectCode {
    match result {
        Ok(value) => panic!("expected a rejection, got {value:?}"),
        Err(rejection) => rejection.code,
    }
}

fn invalid(verdict: Verdict<'_>) -> Invalid {
    match verdict {
        Verdict::Invalid(why) => why,
        other => panic!("expected an invalid verdict, got {other:?}"),
    }
}

fn valid_key(verdict: Verdict<'_>) -> KeyId {
    match verdict {
        Verdict::Valid(verified) => verified.key,
        other => panic!("expected a valid verdict, got {other:?}"),
    }
}

fn perm(text: &str) -> keyledger_model::Permission {
    text.parse().expect("a permission")
}

fn state_of(world: &World, key: KeyId) -> KeyState {
    world.state.key(&key).expect("key exists").state
}

fn revision_of(world: &World, key: KeyId) -> u64 {
    world.state.key(&key).expect("key exists").revision
}

/// Bootstraps a second account `acme` in `world`'s state (a cluster operator's act), returning
/// its owner, the owner's key and secret.
fn bootstrap_acme(world: &mut World) -> (UserId, KeyId, keyledger_model::SecretToken) {
    let now = world.now;
    let admin = UserId::generate(now, &mut world.rng);
    let (key, secret) = new_key(&mut world.rng, now, "acme bootstrap", Some(at(30 * DAY)));
    let key_id = key.id;
    let mut proposal =
        world.proposal(Actor::System, Command::Bootstrap { admin, admin_name: "acme-owner".into(), key });
    proposal.account = AccountId::new("acme").unwrap();
    let (outcome, _) = world.execute(&proposal);
    assert!(matches!(outcome, Outcome::Accepted { events: 3, .. }), "{outcome:?}");
    (admin, key_id, secret)
}

// ---------------------------------------------------------------------------------------
// Bootstrap
// ---------------------------------------------------------------------------------------

#[test]
fn bootstrap_creates_default_account_owner_and_a_valid_key() {
    let world = World::bootstrap(1);
    let default = AccountId::default_account();

    let account = world.state.account(&default).expect("the default account exists");
    assert_eq!(account.settings, AccountSettings::default());
    assert_eq!(account.created_at, T0);

    let user = world.state.user(&world.owner).expect("the owner exists");
    assert_eq!(user.name, "owner");
    assert_eq!(user.role, Role::Owner);
    assert_eq!(user.account, default);

    let key = world.state.key(&world.owner_key).expect("the owner's key exists");
    assert_eq!(key.owner, Owner::User(world.owner));
    assert_eq!(key.account, default);
    assert_eq!(key.state, KeyState::Enabled);
    assert_eq!(key.created_by, Actor::System);
    assert_eq!(key.hint, world.owner_secret.hint());
    assert_eq!(key.revision, 3);

    let types: Vec<_> = world.ledger.iter().map(|e| e.event.body.type_name()).collect();
    assert_eq!(types, ["account_created", "user_created", "created"]);
    assert!(world.ledger.iter().all(|e| e.event.actor == Actor::System && e.event.account == default));

    match world.state.verify(world.owner_secret.expose(), T0, Some(&perm("account:admin"))) {
        Verdict::Valid(verified) => {
            assert_eq!(verified.key, world.owner_key);
            assert_eq!(verified.owner, Owner::User(world.owner));
            assert_eq!(verified.identity_name(), "owner");
            assert_eq!(verified.account(), &default);
            assert!(matches!(verified.identity, keyledger_model::IdentityRef::User(u) if u.role == Role::Owner));
            assert_eq!(verified.effective().permissions(), ["account:admin", "account:write", "account:read"]);
            assert_eq!(verified.expires_at, Some(at(30 * DAY)));
        }
        other => panic!("the bootstrap key must verify: {other:?}"),
    }
}

#[test]
fn bootstrap_twice_is_a_conflict_and_changes_nothing() {
    let mut world = World::bootstrap(2);
    let before = world.state.clone();
    let admin = UserId::generate(world.now, &mut world.rng);
    let (key, secret) = new_key(&mut world.rng, world.now, "again", Some(at(DAY)));
    let proposal = world.proposal(Actor::System, Command::Bootstrap { admin, admin_name: "second".into(), key });
    let (outcome, entries) = world.execute(&proposal);
    match outcome {
        Outcome::Rejected(rejection) => assert_eq!(rejection.code, RejectCode::Conflict),
        other => panic!("{other:?}"),
    }
    assert!(entries.is_empty());
    assert_eq!(world.state, before);
    assert_eq!(world.ledger.len(), 3);
    assert_eq!(invalid(world.state.verify(secret.expose(), world.now, None)), Invalid::NotFound);
}

#[test]
fn bootstrap_by_a_user_is_refused() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let admin = UserId::generate(T0, &mut rng);
    let (key, _) = new_key(&mut rng, T0, "k", Some(at(DAY)));
    let actor = Actor::User { id: admin, key: key.id };
    let proposal = Proposal {
        time: T0,
        request_id: "r".into(),
        actor,
        account: AccountId::default_account(),
        command: Command::Bootstrap { admin, admin_name: "owner".into(), key },
    };
    let mut state = State::new();
    let (outcome, entries) = state.execute(&proposal);
    match outcome {
        Outcome::Rejected(rejection) => assert_eq!(rejection.code, RejectCode::PermissionDenied),
        other => panic!("{other:?}"),
    }
    assert!(entries.is_empty());
    assert_eq!(state, State::new());

    // Nor may an authenticated owner bootstrap a new account.
    let mut world = World::bootstrap(3);
    let admin = UserId::generate(world.now, &mut world.rng);
    let (key, _) = new_key(&mut world.rng, world.now, "k", Some(at(DAY)));
    let mut proposal = world.by_owner(Command::Bootstrap { admin, admin_name: "x".into(), key });
    proposal.account = AccountId::new("acme").unwrap();
    let (outcome, _) = world.execute(&proposal);
    assert!(matches!(outcome, Outcome::Rejected(ref r) if r.code == RejectCode::PermissionDenied), "{outcome:?}");
    assert!(world.state.account(&AccountId::new("acme").unwrap()).is_none());
}

#[test]
fn bootstrap_checks_the_owner_name_and_key_shape() {
    for (admin_name, key_name) in [("", "k"), ("a\nb", "k"), ("owner", ""), ("owner", "tab\there")] {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let admin = UserId::generate(T0, &mut rng);
        let (key, _) = new_key(&mut rng, T0, key_name, Some(at(DAY)));
        let proposal = Proposal {
            time: T0,
            request_id: "r".into(),
            actor: Actor::System,
            account: AccountId::default_account(),
            command: Command::Bootstrap { admin, admin_name: admin_name.into(), key },
        };
        let mut state = State::new();
        let (outcome, entries) = state.execute(&proposal);
        assert!(
            matches!(outcome, Outcome::Rejected(ref r) if r.code == RejectCode::InvalidArgument),
            "{admin_name:?}/{key_name:?}: {outcome:?}"
        );
        assert!(entries.is_empty());
        assert_eq!(state, State::new());
    }
}

// ---------------------------------------------------------------------------------------
// Create, enable, disable, delete
// ---------------------------------------------------------------------------------------

#[test]
fn created_key_is_enabled_and_verifies() {
    let mut world = World::bootstrap(5);
    world.advance(HOUR);
    let (key, secret) = new_key(&mut world.rng, world.now, "ci", Some(at(10 * DAY)));
    let id = key.id;
    let proposal = world.by_owner(Command::CreateKey(key));
    let (outcome, entries) = world.execute(&proposal);
    let Outcome::Accepted { events: 1, head, .. } = outcome else { panic!("{outcome:?}") };
    let record = outcome.key().expect("the created key").clone();
    assert_eq!(head.seq, 4);
    assert_eq!(record.id, id);
    assert_eq!(record.state, KeyState::Enabled);
    assert_eq!(record.owner, Owner::User(world.owner));
    assert_eq!(record.name, "ci");
    assert_eq!(record.created_at, world.now);
    assert_eq!(record.created_by, world.owner_actor());
    assert_eq!(record.revision, 4);
    assert_eq!(&record, world.state.key(&id).unwrap());
    assert!(matches!(entries[0].event.body, EventBody::KeyCreated { key, .. } if key == id));
    assert_eq!(entries[0].digest, Some(secret.digest()));

    match world.state.verify(secret.expose(), world.now, Some(&perm("account:write"))) {
        Verdict::Valid(verified) => {
            assert_eq!(verified.key, id);
            assert_eq!(verified.identity_name(), "owner");
            assert_eq!(verified.expires_at, Some(at(10 * DAY)));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn disable_fails_verification_and_enable_restores_it() {
    let mut world = World::bootstrap(6);
    let (id, secret) = world.create("k", Span::days(7)).unwrap();

    assert_eq!(world.owner_does(Command::DisableKey(id)), Ok(1));
    assert_eq!(state_of(&world, id), KeyState::Disabled);
    assert_eq!(invalid(world.state.verify(secret.expose(), world.now, None)), Invalid::Disabled);
    assert_eq!(invalid(world.state.verify(secret.expose(), world.now, Some(&perm("account:read")))), Invalid::Disabled);

    assert_eq!(world.owner_does(Command::EnableKey(id)), Ok(1));
    assert_eq!(state_of(&world, id), KeyState::Enabled);
    assert_eq!(valid_key(world.state.verify(secret.expose(), world.now, None)), id);

    let types: Vec<_> = world.ledger[3..].iter().map(|e| e.event.body.type_name()).collect();
    assert_eq!(types, ["created", "disabled", "enabled"]);
}

#[test]
fn deleted_key_never_verifies_and_cannot_be_enabled_or_disabled() {
    let mut world = World::bootstrap(7);
    let (id, secret) = world.create("k", Span::days(7)).unwrap();
    assert_eq!(world.owner_does(Command::DeleteKey(id)), Ok(1));
    assert_eq!(state_of(&world, id), KeyState::Deleted);
    assert_eq!(invalid(world.state.verify(secret.expose(), world.now, None)), Invalid::Deleted);

    assert_eq!(code(world.owner_does(Command::EnableKey(id))), RejectCode::Conflict);
    assert_eq!(code(world.owner_does(Command::DisableKey(id))), RejectCode::Conflict);
    assert_eq!(state_of(&world, id), KeyState::Deleted);
    assert_eq!(invalid(world.state.verify(secret.expose(), world.now, None)), Invalid::Deleted);

    // A disabled key can be deleted too, and stays deleted.
    let (other, other_secret) = world.create("k2", Span::days(7)).unwrap();
    world.owner_does(Command::DisableKey(other)).unwrap();
    assert_eq!(world.owner_does(Command::DeleteKey(other)), Ok(1));
    assert_eq!(code(world.owner_does(Command::EnableKey(other))), RejectCode::Conflict);
    assert_eq!(invalid(world.state.verify(other_secret.expose(), world.now, None)), Invalid::Deleted);

    // The metadata stays.
    assert_eq!(world.state.key(&id).unwrap().name, "k");
}

#[test]
fn no_op_transitions_are_accepted_without_events() {
    let mut world = World::bootstrap(8);
    let (id, _) = world.create("k", Span::days(7)).unwrap();
    let check_no_op = |world: &mut World, command: Command| {
        let revision = revision_of(world, id);
        let head = world.state.head();
        let ledger_len = world.ledger.len();
        let proposal = world.by_owner(command);
        let (outcome, entries) = world.execute(&proposal);
        let Outcome::Accepted { events: 0, head: answered, .. } = outcome else { panic!("{outcome:?}") };
        let record = outcome.key().expect("the key").clone();
        assert!(entries.is_empty());
        assert_eq!(answered, head);
        assert_eq!(world.state.head(), head);
        assert_eq!(world.ledger.len(), ledger_len);
        assert_eq!(record.revision, revision);
        assert_eq!(revision_of(world, id), revision);
    };

    check_no_op(&mut world, Command::EnableKey(id));
    world.owner_does(Command::DisableKey(id)).unwrap();
    check_no_op(&mut world, Command::DisableKey(id));
    world.owner_does(Command::DeleteKey(id)).unwrap();
    check_no_op(&mut world, Command::DeleteKey(id));
}

#[test]
fn revision_is_the_seq_of_the_latest_state_changing_event() {
    let mut world = World::bootstrap(9);
    let (a, _) = world.create("a", Span::days(7)).unwrap();
    assert_eq!(revision_of(&world, a), 4);
    let (b, _) = world.create("b", Span::days(7)).unwrap();
    assert_eq!(revision_of(&world, b), 5);
    assert_eq!(revision_of(&world, a), 4, "another key's event does not move a's revision");

    world.owner_does(Command::DisableKey(a)).unwrap();
    assert_eq!(revision_of(&world, a), 6);
    world.owner_does(Command::DisableKey(b)).unwrap();
    assert_eq!(revision_of(&world, a), 6);
    assert_eq!(revision_of(&world, b), 7);

    world.owner_does(Command::DisableKey(a)).unwrap(); // no-op
    assert_eq!(revision_of(&world, a), 6);
    world.owner_does(Command::EnableKey(a)).unwrap();
    assert_eq!(revision_of(&world, a), 8);
    world.owner_does(Command::DeleteKey(a)).unwrap();
    assert_eq!(revision_of(&world, a), 9);
    let _ = world.owner_does(Command::EnableKey(a)); // refused
    assert_eq!(revision_of(&world, a), 9);

    // In general: the seq of the last event about the key.
    for key in [a, b, world.owner_key] {
        let last = world.ledger.iter().rev().find(|e| e.event.body.key() == Some(key)).unwrap();
        assert_eq!(revision_of(&world, key), last.event.seq);
    }
}

// ---------------------------------------------------------------------------------------
// Input rules
// ---------------------------------------------------------------------------------------

#[test]
fn key_names_must_be_1_to_100_printable_characters() {
    let mut world = World::bootstrap(10);
    for bad in ["", "   ", &"n".repeat(101), &"é".repeat(101), "line\nbreak", "nul\0", "del\u{7f}", "\u{85}next"] {
        assert_eq!(code(world.create(bad, Span::days(1))), RejectCode::InvalidArgument, "{bad:?}");
    }
    for good in ["n", &"n".repeat(100), &"é".repeat(100), "with spaces – and ünïcödé 🔑"] {
        assert!(world.create(good, Span::days(1)).is_ok(), "{good:?}");
    }
}

#[test]
fn descriptions_are_at_most_1000_printable_characters() {
    let mut world = World::bootstrap(11);
    let expires = Some(at(DAY));
    for bad in ["d".repeat(1001), "ü".repeat(1001), "two\nlines".to_string()] {
        let result = world.create_with("k", expires, |k| k.description = bad.clone());
        assert_eq!(code(result), RejectCode::InvalidArgument, "{} chars", bad.chars().count());
    }
    for good in [String::new(), "d".repeat(1000), "ü".repeat(1000)] {
        assert!(world.create_with("k", expires, |k| k.description = good.clone()).is_ok());
    }
}

#[test]
fn expiry_must_be_in_the_future_and_within_two_years() {
    let mut world = World::bootstrap(12);
    world.advance(DAY);
    let now = world.now;
    let two_years = Span::years(2).0;
    for bad in [Timestamp(now.0 - 1), now, Timestamp(0), Timestamp(now.0 + two_years + 1), Timestamp(i64::MAX)] {
        assert_eq!(code(world.create_with("k", Some(bad), |_| {})), RejectCode::InvalidArgument, "{bad:?}");
    }
    for good in [Timestamp(now.0 + 1), Timestamp(now.0 + two_years)] {
        assert!(world.create_with("k", Some(good), |_| {}).is_ok(), "{good:?}");
    }
}

#[test]
fn never_expiring_keys_are_refused_by_default() {
    let mut world = World::bootstrap(13);
    assert!(!world.state.account(&world.account).unwrap().settings.allow_never_expiring);
    assert_eq!(code(world.create_with("forever", None, |_| {})), RejectCode::InvalidArgument);
}

// ---------------------------------------------------------------------------------------
// Expiry
// ---------------------------------------------------------------------------------------

#[test]
fn a_key_expires_at_exactly_its_expiry_without_any_event() {
    let mut world = World::bootstrap(14);
    let (id, secret) = world.create("short", Span(HOUR)).unwrap();
    let expires = Timestamp(world.now.0 + HOUR);
    let ledger_len = world.ledger.len();

    let just_before = Timestamp(expires.0 - 1);
    assert_eq!(valid_key(world.state.verify(secret.expose(), just_before, None)), id);
    assert_eq!(invalid(world.state.verify(secret.expose(), expires, None)), Invalid::Expired);
    assert_eq!(invalid(world.state.verify(secret.expose(), Timestamp(expires.0 + DAY), None)), Invalid::Expired);
    assert_eq!(invalid(world.state.verify(secret.expose(), expires, Some(&perm("account:read")))), Invalid::Expired);

    let record = world.state.key(&id).unwrap();
    assert_eq!(record.state_at(just_before), KeyState::Enabled);
    assert_eq!(record.state_at(expires), KeyState::Expired);
    assert_eq!(record.state, KeyState::Enabled, "no event was written");
    assert_eq!(world.ledger.len(), ledger_len);
}

#[test]
fn an_expired_key_cannot_be_enabled_or_disabled() {
    let mut world = World::bootstrap(15);
    let (enabled, _) = world.create("enabled", Span(HOUR)).unwrap();
    let (disabled, _) = world.create("disabled", Span(HOUR)).unwrap();
    world.owner_does(Command::DisableKey(disabled)).unwrap();
    let record = world.state.key(&disabled).unwrap();
    assert_eq!(record.state_at(Timestamp(world.now.0 + HOUR)), KeyState::Expired, "a disabled key expires too");

    world.advance(HOUR);
    assert_eq!(code(world.owner_does(Command::EnableKey(disabled))), RejectCode::Conflict);
    assert_eq!(code(world.owner_does(Command::EnableKey(enabled))), RejectCode::Conflict);
    assert_eq!(code(world.owner_does(Command::DisableKey(enabled))), RejectCode::Conflict);
    assert_eq!(state_of(&world, disabled), KeyState::Disabled);
    assert_eq!(state_of(&world, enabled), KeyState::Enabled);

    // Deleting an expired key is still allowed.
    assert_eq!(world.owner_does(Command::DeleteKey(enabled)), Ok(1));
    assert_eq!(state_of(&world, enabled), KeyState::Deleted);
}

// ---------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------

#[test]
fn a_user_may_hold_ten_live_keys() {
    let mut world = World::bootstrap(16);
    // The bootstrap key is the first of ten.
    let mut keys = vec![world.owner_key];
    for i in 2..=10 {
        keys.push(world.create(&format!("k{i}"), Span::days(7)).unwrap().0);
    }
    let rejection = world.create("k11", Span::days(7)).unwrap_err();
    assert_eq!(rejection.code, RejectCode::LimitExceeded);

    // Disabled keys still count.
    world.owner_does(Command::DisableKey(keys[5])).unwrap();
    assert_eq!(code(world.create("k11", Span::days(7))), RejectCode::LimitExceeded);

    // Deleting one frees a slot, exactly one.
    world.owner_does(Command::DeleteKey(keys[5])).unwrap();
    world.create("k11", Span::days(7)).unwrap();
    assert_eq!(code(world.create("k12", Span::days(7))), RejectCode::LimitExceeded);
}

#[test]
fn expired_keys_do_not_count_against_the_limit() {
    let mut world = World::bootstrap(17);
    for i in 2..=10 {
        world.create(&format!("short{i}"), Span(HOUR)).unwrap();
    }
    assert_eq!(code(world.create("over", Span::days(7))), RejectCode::LimitExceeded);

    world.advance(HOUR - 1);
    assert_eq!(code(world.create("over", Span::days(7))), RejectCode::LimitExceeded, "not yet expired");

    world.advance(1);
    for i in 2..=10 {
        world.create(&format!("long{i}"), Span::days(7)).unwrap();
    }
    assert_eq!(code(world.create("over", Span::days(7))), RejectCode::LimitExceeded);
}

// ---------------------------------------------------------------------------------------
// The caller, re-checked at apply time
// ---------------------------------------------------------------------------------------

#[test]
fn a_caller_whose_key_was_disabled_earlier_in_the_log_is_unauthenticated() {
    let mut world = World::bootstrap(18);
    let (second, _) = world.create("second", Span::days(7)).unwrap();
    let (target, _) = world.create("target", Span::days(7)).unwrap();
    let as_second = Actor::User { id: world.owner, key: second };

    // Both proposals were made before either was applied; the disable comes first in the log.
    let disable_second = world.by_owner(Command::DisableKey(second));
    let (new_key_proposal, _) = new_key(&mut world.rng, world.now, "late", Some(at(DAY)));
    let create_by_second = world.proposal(as_second, Command::CreateKey(new_key_proposal));
    let delete_by_second = world.proposal(as_second, Command::DeleteKey(target));

    assert!(matches!(world.execute(&disable_second).0, Outcome::Accepted { events: 1, .. }));
    for proposal in [&create_by_second, &delete_by_second] {
        let (outcome, _) = world.execute(proposal);
        assert!(matches!(outcome, Outcome::Rejected(ref r) if r.code == RejectCode::Unauthenticated), "{outcome:?}");
    }
    assert_eq!(state_of(&world, target), KeyState::Enabled);

    // Re-enabled, the same key works again.
    world.owner_does(Command::EnableKey(second)).unwrap();
    let proposal = world.proposal(as_second, Command::DisableKey(target));
    assert!(matches!(world.execute(&proposal).0, Outcome::Accepted { events: 1, .. }));
}

#[test]
fn a_caller_with_a_deleted_expired_unknown_or_foreign_key_is_unauthenticated() {
    let mut world = World::bootstrap(19);
    let (deleted, _) = world.create("deleted", Span::days(7)).unwrap();
    let (short, _) = world.create("short", Span(HOUR)).unwrap();
    let (target, _) = world.create("target", Span::days(7)).unwrap();
    world.owner_does(Command::DeleteKey(deleted)).unwrap();
    world.advance(HOUR);
    let unknown = KeyId::generate(world.now, &mut world.rng);
    let stranger = UserId::generate(world.now, &mut world.rng);

    let actors = [
        Actor::User { id: world.owner, key: deleted },
        Actor::User { id: world.owner, key: short },
        Actor::User { id: world.owner, key: unknown },
        // Someone else presenting the owner's key id: the key is not theirs.
        Actor::User { id: stranger, key: world.owner_key },
    ];
    for actor in actors {
        let proposal = world.proposal(actor, Command::DisableKey(target));
        let (outcome, _) = world.execute(&proposal);
        assert!(matches!(outcome, Outcome::Rejected(ref r) if r.code == RejectCode::Unauthenticated), "{actor:?}");
    }
    // The cluster itself does not manage keys.
    let proposal = world.proposal(Actor::System, Command::DisableKey(target));
    assert!(matches!(world.execute(&proposal).0, Outcome::Rejected(_)));
    assert_eq!(state_of(&world, target), KeyState::Enabled);
}

#[test]
fn unknown_or_foreign_key_ids_are_not_found() {
    let mut world = World::bootstrap(20);
    let unknown = KeyId::generate(world.now, &mut world.rng);
    for command in [Command::EnableKey(unknown), Command::DisableKey(unknown), Command::DeleteKey(unknown)] {
        assert_eq!(code(world.owner_does(command)), RejectCode::NotFound);
    }

    let (acme_owner, acme_key, acme_secret) = bootstrap_acme(&mut world);
    // default's owner cannot touch acme's key…
    for command in [Command::DisableKey(acme_key), Command::DeleteKey(acme_key), Command::EnableKey(acme_key)] {
        assert_eq!(code(world.owner_does(command)), RejectCode::NotFound);
    }
    // …nor can it act in acme by naming that account…
    let mut proposal = world.by_owner(Command::DisableKey(acme_key));
    proposal.account = AccountId::new("acme").unwrap();
    assert!(matches!(world.execute(&proposal).0, Outcome::Rejected(ref r) if r.code == RejectCode::Unauthenticated));
    // …nor can acme's owner act in default by presenting default's key id…
    let proposal =
        world.proposal(Actor::User { id: acme_owner, key: world.owner_key }, Command::DisableKey(world.owner_key));
    assert!(matches!(world.execute(&proposal).0, Outcome::Rejected(ref r) if r.code == RejectCode::Unauthenticated));
    // …and acme's owner cannot touch default's key.
    let mut proposal =
        world.proposal(Actor::User { id: acme_owner, key: acme_key }, Command::DisableKey(world.owner_key));
    proposal.account = AccountId::new("acme").unwrap();
    assert!(matches!(world.execute(&proposal).0, Outcome::Rejected(ref r) if r.code == RejectCode::NotFound));

    assert_eq!(state_of(&world, acme_key), KeyState::Enabled);
    assert_eq!(state_of(&world, world.owner_key), KeyState::Enabled);
    match world.state.verify(acme_secret.expose(), world.now, None) {
        Verdict::Valid(v) => assert_eq!(v.account().as_str(), "acme"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_duplicate_key_id_or_digest_is_a_conflict() {
    let mut world = World::bootstrap(21);
    let (existing, secret) = world.create("k", Span::days(7)).unwrap();
    let expires = Some(at(DAY));
    assert_eq!(code(world.create_with("same id", expires, |k| k.id = existing)), RejectCode::Conflict);
    let digest = secret.digest();
    assert_eq!(code(world.create_with("same secret", expires, |k| k.digest = digest)), RejectCode::Conflict);
    let owner_digest = world.owner_secret.digest();
    assert_eq!(code(world.create_with("bootstrap's", expires, |k| k.digest = owner_digest)), RejectCode::Conflict);

    // A deleted key's id and secret are never reused either.
    world.owner_does(Command::DeleteKey(existing)).unwrap();
    assert_eq!(code(world.create_with("same id", expires, |k| k.id = existing)), RejectCode::Conflict);
    assert_eq!(code(world.create_with("same secret", expires, |k| k.digest = digest)), RejectCode::Conflict);
    assert_eq!(invalid(world.state.verify(secret.expose(), world.now, None)), Invalid::Deleted);
}

#[test]
fn a_rejected_proposal_returns_nothing_and_changes_nothing() {
    let mut world = World::bootstrap(22);
    let (id, _) = world.create("k", Span::days(7)).unwrap();
    world.owner_does(Command::DeleteKey(id)).unwrap();
    let before = world.state.clone();
    let ledger_len = world.ledger.len();
    let unknown = KeyId::generate(world.now, &mut world.rng);
    let stranger = UserId::generate(world.now, &mut world.rng);

    let mut proposals = Vec::new();
    proposals.push(world.by_owner(Command::EnableKey(id)));
    proposals.push(world.by_owner(Command::DisableKey(unknown)));
    let (k, _) = new_key(&mut world.rng, world.now, "", Some(at(DAY)));
    proposals.push(world.by_owner(Command::CreateKey(k)));
    let (k, _) = new_key(&mut world.rng, world.now, "never", None);
    proposals.push(world.by_owner(Command::CreateKey(k)));
    let (k, _) = new_key(&mut world.rng, world.now, "stranger", Some(at(DAY)));
    proposals.push(world.proposal(Actor::User { id: stranger, key: world.owner_key }, Command::CreateKey(k)));

    for proposal in &proposals {
        // Straight on `State`, not through the world's checks.
        let (outcome, entries) = world.state.execute(proposal);
        assert!(matches!(outcome, Outcome::Rejected(_)), "{outcome:?}");
        assert!(entries.is_empty());
        assert_eq!(world.state, before);
    }
    assert_eq!(world.ledger.len(), ledger_len);
}

// ---------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------

#[test]
fn malformed_tokens_are_rejected_before_any_lookup() {
    let world = World::bootstrap(23);
    let good = world.owner_secret.expose().to_string();
    assert_eq!(good.len(), token::TOKEN_LEN);
    let mut bad = vec![
        String::new(),
        "klk_".to_string(),
        good.replacen("klk_", "klx_", 1),
        good.replacen("klk_", "KLK_", 1),
        good[4..].to_string(),
        good[..good.len() - 1].to_string(),
        format!("{good}0"),
        format!(" {good}"),
        format!("{good}\n"),
        good.replace(&good[10..11], "-"),
        format!("{}é{}", &good[..10], &good[12..]),
    ];
    // Every single-character change anywhere after the prefix.
    for pos in 4..good.len() {
        let mut bytes = good.clone().into_bytes();
        bytes[pos] = if bytes[pos] == b'a' { b'b' } else { b'a' };
        bad.push(String::from_utf8(bytes).unwrap());
    }
    for text in &bad {
        assert_ne!(text, &good);
        assert_eq!(invalid(world.state.verify(text, T0, None)), Invalid::Malformed, "{text:?}");
        assert_eq!(invalid(world.state.verify(text, T0, Some(&perm("account:admin")))), Invalid::Malformed);
    }
}

#[test]
fn an_unknown_well_formed_token_is_not_found() {
    let world = World::bootstrap(24);
    let mut rng = ChaCha20Rng::seed_from_u64(999);
    for _ in 0..20 {
        let stranger = token::generate(&mut rng);
        assert_eq!(token::parse(stranger.expose()), Ok(()));
        assert_eq!(invalid(world.state.verify(stranger.expose(), T0, None)), Invalid::NotFound);
    }
}

#[test]
fn a_permission_the_key_lacks_is_forbidden_and_names_the_key() {
    let mut world = World::bootstrap(25);
    // The owner holds every account permission, and account-wide levels cover namespaces.
    for permission in ["account:admin", "account:write", "account:read", "namespace:payments:admin"] {
        assert_eq!(
            valid_key(world.state.verify(world.owner_secret.expose(), T0, Some(&perm(permission)))),
            world.owner_key
        );
    }
    // A key scoped to `read` of the same owner can do no more than read.
    let (key, secret) = new_key(&mut world.rng, world.now, "read-only", Some(at(DAY)));
    let key = NewKey { scope: Some(Scope::Role(Role::Read)), ..key };
    let id = key.id;
    world.owner_does(Command::CreateKey(key)).expect("create a scoped key");
    assert_eq!(valid_key(world.state.verify(secret.expose(), T0, Some(&perm("account:read")))), id);
    for permission in ["account:write", "account:admin", "namespace:payments:write"] {
        match world.state.verify(secret.expose(), T0, Some(&perm(permission))) {
            Verdict::Forbidden(verified) => {
                assert_eq!(verified.key, id, "{permission:?}");
                assert_eq!(verified.owner, Owner::User(world.owner));
                assert_eq!(verified.identity_name(), "owner");
                assert_eq!(verified.account(), &world.account);
            }
            other => panic!("{permission:?}: {other:?}"),
        }
    }
}

#[test]
fn permissions_that_are_not_of_the_form_do_not_parse() {
    for text in ["account:superuser", "", "ACCOUNT:ADMIN", "namespace:payments", "namespace:Pay:read"] {
        assert!(text.parse::<keyledger_model::Permission>().is_err(), "{text:?}");
    }
}

// ---------------------------------------------------------------------------------------
// The ledger
// ---------------------------------------------------------------------------------------

/// A world with a bit of everything in its ledger, across two accounts; and the secrets.
fn busy_world(seed: u64) -> (World, Vec<keyledger_model::SecretToken>) {
    let mut world = World::bootstrap(seed);
    let mut secrets = vec![world.owner_secret.clone()];
    let (a, s) = world.create("a", Span::days(3)).unwrap();
    secrets.push(s);
    let (_, acme_key, acme_secret) = bootstrap_acme(&mut world);
    secrets.push(acme_secret);
    world.advance(HOUR);
    let (b, s) = world.create_with("b", Some(at(DAY)), |k| k.description = "for CI".into()).unwrap();
    secrets.push(s);
    world.owner_does(Command::DisableKey(a)).unwrap();
    world.owner_does(Command::EnableKey(a)).unwrap();
    world.owner_does(Command::DeleteKey(b)).unwrap();
    let _ = world.owner_does(Command::EnableKey(b)); // refused: writes nothing
    let _ = world.owner_does(Command::DisableKey(acme_key)); // refused
    (world, secrets)
}

#[test]
fn the_ledger_is_two_valid_gap_free_hash_chains() {
    let (world, _) = busy_world(26);
    assert_eq!(world.ledger.len(), 11);
    check_chains(&world.ledger);
    assert_eq!(world.state.head().seq, 11);
    assert_eq!(world.state.head().hash, world.ledger.last().unwrap().event.hash);

    let default_seqs: Vec<_> =
        world.ledger.iter().filter(|e| e.event.account == world.account).map(|e| e.event.account_seq).collect();
    assert_eq!(default_seqs, (1..=8).collect::<Vec<_>>());
    let acme = AccountId::new("acme").unwrap();
    let acme_seqs: Vec<_> =
        world.ledger.iter().filter(|e| e.event.account == acme).map(|e| e.event.account_seq).collect();
    assert_eq!(acme_seqs, [1, 2, 3]);
    let acme_last = world.ledger.iter().rev().find(|e| e.event.account == acme).unwrap();
    assert_eq!(world.state.account_head(&acme).hash, acme_last.event.account_hash);
    assert_eq!(world.state.account_head(&acme).seq, 3);

    // The check is not vacuous: any change to an event's content breaks its hashes.
    let mut tampered = world.ledger[3].event.clone();
    tampered.time = Timestamp(tampered.time.0 + 1);
    assert!(!tampered.hashes_are_valid());
    let mut tampered = world.ledger[3].event.clone();
    tampered.request_id.push('x');
    assert!(!tampered.hashes_are_valid());
}

#[test]
fn no_ledger_entry_contains_a_secret() {
    let (world, secrets) = busy_world(27);
    let windows = |secret: &str| -> Vec<String> {
        // Every 8-character piece of the secret but the last 4 characters, which are the hint.
        let body = &secret[..secret.len() - token::HINT_LEN];
        (0..=body.len() - 8).map(|i| body[i..i + 8].to_string()).collect()
    };
    for entry in &world.ledger {
        let debug = format!("{entry:?}");
        let bytes = bincode::serde::encode_to_vec(entry, bincode::config::standard()).unwrap();
        let chained = entry.event.content_bytes();
        for secret in &secrets {
            for piece in windows(secret.expose()) {
                assert!(!debug.contains(&piece), "Debug of seq {} shows a secret", entry.event.seq);
                assert!(!bytes.windows(8).any(|w| w == piece.as_bytes()), "bincode of seq {}", entry.event.seq);
            }
            // The chained bytes carry only a commitment to the digest, never the digest.
            let digest = secret.digest().0;
            assert!(!chained.windows(32).any(|w| w == digest), "seq {} chains a digest", entry.event.seq);
        }
        if let EventBody::KeyCreated { digest_commitment, .. } = &entry.event.body {
            assert_eq!(Some(*digest_commitment), entry.digest.map(|d| d.commitment()));
        }
    }
}

#[test]
fn rebuilding_from_the_ledger_gives_the_same_state() {
    let (world, secrets) = busy_world(28);
    let rebuilt = State::rebuild(&world.ledger);
    assert_eq!(rebuilt, world.state);
    for secret in &secrets {
        let live = format!("{:?}", world.state.verify(secret.expose(), world.now, None));
        let again = format!("{:?}", rebuilt.verify(secret.expose(), world.now, None));
        assert_eq!(live, again);
    }
}

#[test]
fn bootstrapping_another_account_with_an_existing_user_id_is_refused() {
    // Reusing the owner's user id would otherwise move that user (and its keys) into the new
    // account.
    let mut world = World::bootstrap(40);
    let before = world.state.clone();
    let (key, _) = new_key(&mut world.rng, world.now, "acme", Some(at(DAY)));
    let mut proposal =
        world.proposal(Actor::System, Command::Bootstrap { admin: world.owner, admin_name: "acme-owner".into(), key });
    proposal.account = AccountId::new("acme").unwrap();
    let (outcome, entries) = world.state.execute(&proposal);
    assert!(matches!(outcome, Outcome::Rejected(ref r) if r.code == RejectCode::Conflict), "{outcome:?}");
    assert!(entries.is_empty());
    assert_eq!(world.state, before);
}

#[test]
fn a_bootstrap_key_expiry_if_given_follows_the_default_policy() {
    let bootstrap_with = |expires_at| {
        let mut rng = ChaCha20Rng::seed_from_u64(41);
        let admin = UserId::generate(T0, &mut rng);
        let (key, _) = new_key(&mut rng, T0, "bootstrap", expires_at);
        let proposal = Proposal {
            time: T0,
            request_id: "r".into(),
            actor: Actor::System,
            account: AccountId::default_account(),
            command: Command::Bootstrap { admin, admin_name: "owner".into(), key },
        };
        State::new().execute(&proposal).0
    };
    for bad in [Some(at(-1)), Some(at(3 * 365 * DAY))] {
        let outcome = bootstrap_with(bad);
        assert!(
            matches!(outcome, Outcome::Rejected(ref r) if r.code == RejectCode::InvalidArgument),
            "{bad:?}: {outcome:?}"
        );
    }
    // The operator's first key may never expire.
    assert!(matches!(bootstrap_with(None), Outcome::Accepted { events: 3, .. }));
    assert!(matches!(bootstrap_with(Some(at(30 * DAY))), Outcome::Accepted { events: 3, .. }));
}

#[test]
fn a_hint_that_is_not_four_base62_characters_is_refused() {
    let mut world = World::bootstrap(42);
    let (key, secret) = new_key(&mut world.rng, world.now, "k", Some(at(DAY)));
    for hint in [secret.expose().to_string(), "abc".into(), "ab-d".into()] {
        let proposal = world.by_owner(Command::CreateKey(NewKey { hint, ..key.clone() }));
        let (outcome, entries) = world.state.execute(&proposal);
        assert!(entries.is_empty(), "nothing may be written");
        assert!(matches!(outcome, Outcome::Rejected(ref r) if r.code == RejectCode::InvalidArgument), "{outcome:?}");
    }
}
