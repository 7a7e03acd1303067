//! Enrollment codes ("a person's keys are minted only by that person") and leak reports
//! (domain.md, "Leaked keys"), driven through `State::execute` and checked through `verify`.

mod common;

use common::{at, rejected, World, DAY, HOUR};
use keyledger_model::{
    token, Actor, Command, EventBody, KeyState, LeakAction, Owner, RejectCode, Role, Scope, SecretToken, SettingsPatch,
    Timestamp, UserId, Verdict, ENROLLMENT_REFUSED,
};

fn answer(world: &World, secret: &SecretToken) -> String {
    match world.state.verify(secret.expose(), world.now, None) {
        Verdict::Valid(_) => "valid".into(),
        Verdict::Forbidden(_) => "forbidden".into(),
        Verdict::Invalid(why) => why.as_str().into(),
    }
}

/// The owner creates user `name` with `role`; answers the user and its enrollment code.
fn enrolled_user(world: &mut World, name: &str, role: Role) -> (UserId, SecretToken) {
    let id = UserId::generate(world.now, &mut world.rng);
    let code = token::generate_enrollment_code(&mut world.rng);
    let command = Command::CreateEnrolledUser { id, name: name.into(), role, code: code.digest() };
    assert_eq!(world.owner_does(command), Ok(2), "user_created + enrollment_issued");
    (id, code)
}

/// A refusal of a code: always the one generic answer.
fn refused_code(world: &mut World, code: &SecretToken) {
    match world.enroll(code, "again", None) {
        Err(r) => assert_eq!((r.code, r.message.as_str()), (RejectCode::Unauthenticated, ENROLLMENT_REFUSED)),
        Ok(_) => panic!("the code was accepted"),
    }
}

#[test]
fn a_new_user_enrolls_once_and_the_ledger_holds_no_code() {
    let mut world = World::bootstrap(301);
    let (alice, code) = enrolled_user(&mut world, "alice", Role::Developer);
    let issued = world.ledger.last().unwrap().clone();
    let EventBody::EnrollmentIssued { user, code_commitment, expires_at } = issued.event.body.clone() else {
        panic!("{issued:?}")
    };
    assert_eq!((user, expires_at), (alice, Timestamp(world.now.0 + DAY)));
    assert_eq!(code_commitment, code.digest().commitment());
    assert_eq!(issued.digest, Some(code.digest()), "the digest rides beside the chained bytes");
    let chained = issued.event.content_bytes();
    assert!(!chained.windows(32).any(|w| w == code.digest().0), "the chain carries no digest of the code");
    assert!(!String::from_utf8_lossy(&chained).contains(&code.expose()[4..]), "nor the code");

    let (key, secret) = world.enroll(&code, "alice's laptop", None).unwrap();
    let created = &world.ledger[world.ledger.len() - 2].event;
    let enrolled = &world.ledger[world.ledger.len() - 1].event;
    assert!(matches!(created.body, EventBody::KeyCreated { owner: Owner::User(u), .. } if u == alice));
    assert_eq!(enrolled.body, EventBody::Enrolled { user: alice, key });
    assert_eq!(enrolled.actor, Actor::User { id: alice, key }, "the user minted it, with the key it got");
    assert_eq!(created.actor, enrolled.actor);
    assert_eq!(answer(&world, &secret), "valid");
    // The key acts as alice: it can mint alice's next key itself.
    assert!(world.key_by(key, None, "second", None).is_ok());

    refused_code(&mut world, &code);
}

#[test]
fn a_code_expires_after_24_hours() {
    let mut world = World::bootstrap(302);
    let (_, code) = enrolled_user(&mut world, "bob", Role::Read);
    let mut just_in_time = world.clone();
    just_in_time.advance(DAY - 1);
    assert!(just_in_time.enroll(&code, "k", None).is_ok());
    world.advance(DAY);
    refused_code(&mut world, &code);
}

#[test]
fn a_fresh_code_voids_the_previous_one() {
    let mut world = World::bootstrap(303);
    let (carol, first) = enrolled_user(&mut world, "carol", Role::Developer);
    let owner_key = world.owner_key;
    let second = world.issue_code(owner_key, carol).unwrap();
    assert!(
        matches!(world.ledger.last().unwrap().event.body, EventBody::EnrollmentIssued { user, .. } if user == carol)
    );
    refused_code(&mut world, &first);
    let (_, secret) = world.enroll(&second, "k", None).unwrap();
    assert_eq!(answer(&world, &secret), "valid");
    // An unknown code gets the very same answer.
    let stranger = token::generate_enrollment_code(&mut world.rng);
    refused_code(&mut world, &stranger);
}

#[test]
fn issuing_a_code_takes_an_owner_or_admin_not_outranked_by_the_user() {
    let mut world = World::bootstrap(304);
    let (_, admin_code) = enrolled_user(&mut world, "admin", Role::Admin);
    let (admin_key, _) = world.enroll(&admin_code, "k", None).unwrap();
    let (dev, dev_code) = enrolled_user(&mut world, "dev", Role::Developer);
    let (dev_key, _) = world.enroll(&dev_code, "k", None).unwrap();
    let (boss, _) = enrolled_user(&mut world, "boss", Role::Owner);
    let (peer, _) = enrolled_user(&mut world, "peer", Role::Admin);

    assert!(world.issue_code(admin_key, dev).is_ok(), "admin > developer");
    assert!(world.issue_code(admin_key, peer).is_ok(), "admin = admin");
    assert_eq!(rejected(world.issue_code(admin_key, boss)), RejectCode::PermissionDenied, "an owner outranks an admin");
    assert_eq!(rejected(world.issue_code(dev_key, dev)), RejectCode::PermissionDenied, "not even for itself");
    assert_eq!(rejected(world.issue_code(dev_key, peer)), RejectCode::PermissionDenied);
    let owner_key = world.owner_key;
    assert!(world.issue_code(owner_key, boss).is_ok());
    // An owner calling with a key scoped to `admin` acts as an admin.
    let (scoped, _) = world.key_by(owner_key, None, "as admin", Some(Scope::Role(Role::Admin))).unwrap();
    assert_eq!(rejected(world.issue_code(scoped, boss)), RejectCode::PermissionDenied);
    assert!(world.issue_code(scoped, dev).is_ok());
    // Another account's user is not there at all.
    let acme = world.new_account("acme");
    assert_eq!(rejected(world.issue_code(acme.owner_key, dev)), RejectCode::NotFound);
}

#[test]
fn nobody_creates_or_rotates_a_key_for_another_user() {
    let mut world = World::bootstrap(305);
    let (dev, code) = enrolled_user(&mut world, "dev", Role::Developer);
    let (dev_key, _) = world.enroll(&code, "k", None).unwrap();
    let owner_key = world.owner_key;
    assert_eq!(
        rejected(world.key_by(owner_key, Some(Owner::User(dev)), "for dev", None)),
        RejectCode::PermissionDenied
    );
    let (new, _) = world.new_key_for(None, "r", None);
    let rotate = Command::RotateKey { key: dev_key, new, grace: keyledger_model::Span(0) };
    assert_eq!(rejected(world.as_key(owner_key, rotate)), RejectCode::PermissionDenied);
    // The owner still manages the key otherwise, and a service account's keys as before.
    assert_eq!(world.as_key(owner_key, Command::LockKey(dev_key)), Ok(1));
}

#[test]
fn an_enrolled_key_meets_the_account_policy() {
    let mut world = World::bootstrap(306);
    let (_, code) = enrolled_user(&mut world, "dev", Role::Developer);
    world.set_settings(SettingsPatch { key_creation_enabled: Some(false), ..Default::default() });
    assert_eq!(rejected(world.enroll(&code, "k", None)), RejectCode::CreationDisabled);
    world.set_settings(SettingsPatch { key_creation_enabled: Some(true), ..Default::default() });
    // Never-expiring where not allowed: refused, and the code is still good.
    let (mut key, _) = world.new_key_for(None, "forever", None);
    key.expires_at = None;
    let proposal = world.proposal(Actor::System, Command::Enroll { code: code.digest(), key });
    assert_eq!(world.run(&proposal).map_err(|r| r.code), Err(RejectCode::InvalidArgument));
    // A scope naming no namespace of the account is refused too.
    let scope = Scope::Namespaces([("nowhere".to_string(), keyledger_model::Level::Read)].into());
    assert_eq!(rejected(world.enroll(&code, "k", Some(scope))), RejectCode::InvalidArgument);
    assert!(world.enroll(&code, "k", None).is_ok());
}

#[test]
fn a_disabled_user_or_a_changed_role_cannot_use_an_open_code() {
    let mut world = World::bootstrap(307);
    let (dev, code) = enrolled_user(&mut world, "dev", Role::Developer);
    assert_eq!(world.owner_does(Command::SetUserEnabled { user: dev, enabled: false }), Ok(1));
    refused_code(&mut world, &code);
    assert_eq!(world.owner_does(Command::SetUserEnabled { user: dev, enabled: true }), Ok(1));
    assert!(world.clone().enroll(&code, "k", None).is_ok(), "enabled again, the code works");
    // A code was issued for a role; a new role voids it.
    assert_eq!(world.owner_does(Command::SetUserRole { user: dev, role: Role::Admin }), Ok(1));
    refused_code(&mut world, &code);
}

#[test]
fn only_the_cluster_proposes_enrollments_and_leak_reports() {
    let mut world = World::bootstrap(308);
    let (_, code) = enrolled_user(&mut world, "dev", Role::Developer);
    let (key, _) = world.new_key_for(None, "k", None);
    let owner_key = world.owner_key;
    assert_eq!(
        rejected(world.as_key(owner_key, Command::Enroll { code: code.digest(), key })),
        RejectCode::PermissionDenied
    );
    let digest = world.owner_secret.digest();
    let report = Command::ReportLeak { digest, source: "s".into(), reporter: "r".into() };
    assert_eq!(rejected(world.as_key(owner_key, report)), RejectCode::PermissionDenied);
}

/// A key of a fresh developer, with its secret.
fn victim(world: &mut World) -> (keyledger_model::KeyId, SecretToken) {
    let (_, code) = enrolled_user(world, "victim", Role::Developer);
    world.enroll(&code, "leaky", None).unwrap()
}

fn report(world: &mut World, secret: &SecretToken, source: &str) -> Result<usize, keyledger_model::Rejection> {
    let command = Command::ReportLeak { digest: secret.digest(), source: source.into(), reporter: "192.0.2.1".into() };
    world.as_system(command)
}

fn set_leak_action(world: &mut World, action: LeakAction) -> usize {
    let command = Command::ChangeSettings {
        patch: SettingsPatch::default(),
        limits: Default::default(),
        action_when_leaked: Some(action),
    };
    world.owner_does(command).unwrap()
}

#[test]
fn a_leak_disables_the_key_by_default_once() {
    let mut world = World::bootstrap(309);
    let (key, secret) = victim(&mut world);
    assert_eq!(report(&mut world, &secret, "https://scanner.example/1"), Ok(2));
    let leaked = &world.ledger[world.ledger.len() - 2].event;
    assert_eq!(
        leaked.body,
        EventBody::Leaked {
            key,
            source: "https://scanner.example/1".into(),
            reporter: "192.0.2.1".into(),
            action: LeakAction::Disable,
            lock_overridden: false,
        }
    );
    assert_eq!(leaked.actor, Actor::System);
    assert_eq!(world.ledger.last().unwrap().event.body, EventBody::KeyDisabled { key });
    assert_eq!(answer(&world, &secret), "disabled");
    assert!(world.state.is_leaked(&key));

    // Repeating changes nothing, even after the owner re-enabled the key: one report per key.
    assert_eq!(report(&mut world, &secret, "again"), Ok(0));
    assert_eq!(world.owner_does(Command::EnableKey(key)), Ok(1));
    assert_eq!(report(&mut world, &secret, "again"), Ok(0));
    assert_eq!(answer(&world, &secret), "valid");
    // A secret that names no key writes nothing.
    let stranger = token::generate(&mut world.rng);
    assert_eq!(report(&mut world, &stranger, "nothing"), Ok(0));
}

#[test]
fn the_account_decides_what_a_leak_does() {
    let mut world = World::bootstrap(310);
    assert_eq!(set_leak_action(&mut world, LeakAction::None), 1);
    assert_eq!(world.ledger.last().unwrap().event.body, EventBody::LeakActionChanged { action: LeakAction::None });
    assert_eq!(set_leak_action(&mut world, LeakAction::None), 0, "no change, no event");
    assert_eq!(world.state.leak_action(&world.account), LeakAction::None);
    let (key, secret) = victim(&mut world);
    assert_eq!(report(&mut world, &secret, "s"), Ok(1), "only the leaked event");
    assert!(matches!(world.ledger.last().unwrap().event.body, EventBody::Leaked { action: LeakAction::None, .. }));
    assert_eq!(answer(&world, &secret), "valid");

    assert_eq!(set_leak_action(&mut world, LeakAction::Delete), 1);
    let (key2, secret2) = victim_named(&mut world, "second");
    assert_eq!(report(&mut world, &secret2, "s"), Ok(2));
    assert_eq!(world.ledger.last().unwrap().event.body, EventBody::KeyDeleted { key: key2 });
    assert_eq!(answer(&world, &secret2), "deleted");
    assert_eq!(world.state.key(&key).unwrap().state, KeyState::Enabled);
}

fn victim_named(world: &mut World, name: &str) -> (keyledger_model::KeyId, SecretToken) {
    let (_, code) = enrolled_user(world, name, Role::Developer);
    world.enroll(&code, "leaky", None).unwrap()
}

#[test]
fn a_leak_stops_a_locked_key_and_says_so() {
    let mut world = World::bootstrap(311);
    let (key, secret) = victim(&mut world);
    assert_eq!(world.owner_does(Command::LockKey(key)), Ok(1));
    assert_eq!(report(&mut world, &secret, "s"), Ok(2));
    let leaked = &world.ledger[world.ledger.len() - 2].event.body;
    assert!(matches!(leaked, EventBody::Leaked { lock_overridden: true, .. }), "{leaked:?}");
    assert_eq!(answer(&world, &secret), "disabled");
    assert!(world.state.key(&key).unwrap().locked, "it stays locked");

    // An already disabled key: the leak is recorded, nothing else changes, no lock overridden.
    let (key2, secret2) = victim_named(&mut world, "second");
    assert_eq!(world.owner_does(Command::LockKey(key2)), Ok(1));
    let mut unlocked = world.clone();
    assert_eq!(unlocked.owner_does(Command::UnlockKey(key2)), Ok(1));
    assert_eq!(unlocked.owner_does(Command::DisableKey(key2)), Ok(1));
    assert_eq!(report(&mut unlocked, &secret2, "s"), Ok(1));
    assert!(matches!(unlocked.ledger.last().unwrap().event.body, EventBody::Leaked { lock_overridden: false, .. }));
}

#[test]
fn a_leak_report_keeps_its_text_short_and_printable() {
    let mut world = World::bootstrap(312);
    let (_, secret) = victim(&mut world);
    let source = format!("line\nbreak{}", "x".repeat(2000));
    assert_eq!(report(&mut world, &secret, &source), Ok(2));
    let EventBody::Leaked { source, .. } = &world.ledger[world.ledger.len() - 2].event.body else { panic!() };
    assert_eq!(source.chars().count(), 500);
    assert!(source.starts_with("linebreakxx"));
}

/// The expiry is fixed from the proposal's time when the code is issued, not from bootstrap.
#[test]
fn a_code_expires_24_hours_after_it_was_issued() {
    let mut world = World::bootstrap(313);
    world.advance(HOUR);
    let (_, code) = enrolled_user(&mut world, "late", Role::Read);
    let expected = Timestamp(at(HOUR).0 + DAY);
    assert!(
        matches!(world.ledger.last().unwrap().event.body, EventBody::EnrollmentIssued { expires_at, .. } if expires_at == expected)
    );
    assert!(world.enroll(&code, "k", None).is_ok());
}

/// Open codes survive a saved state: loaded, the state still knows each user's code, so a
/// fresh code voids the old one exactly as before the save.
#[test]
fn open_codes_survive_a_saved_state() {
    let mut world = World::bootstrap(331);
    let (user, old_code) = enrolled_user(&mut world, "newcomer", Role::Developer);
    let bytes = bincode::serde::encode_to_vec(world.state.to_saved(), bincode::config::standard()).unwrap();
    let (saved, _): (keyledger_model::saved::SavedState, usize) =
        bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
    world.state = keyledger_model::State::from_saved(saved);
    let fresh = token::generate_enrollment_code(&mut world.rng);
    assert_eq!(world.owner_does(Command::IssueEnrollment { user, code: fresh.digest() }), Ok(1));
    refused_code(&mut world, &old_code);
    world.enroll(&fresh, "mine", None).expect("the fresh code works");
}
