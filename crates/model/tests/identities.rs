//! Users, service accounts, namespaces, account settings and account creation (domain.md, "Who
//! and what", the limits and the creation switch), driven through `State::execute` and checked
//! through `State::verify`.

mod common;

use common::{at, in_namespace, new_key, perm, rejected, World, DAY, HOUR};
use keyledger_model::{
    AccountId, AccountSettings, Binding, Command, EventBody, IdentityRef, IdentityState, KeyAction, KeyId, Level,
    Owner, RejectCode, Role, Scope, SecretToken, ServiceAccountId, SettingsPatch, Span, Timestamp, UserId, Verdict,
};

/// `Valid`, `Forbidden` or the invalid code, as text, for compact assertions.
fn answer(world: &World, secret: &SecretToken, permission: Option<&str>) -> String {
    let permission = permission.map(perm);
    match world.state.verify(secret.expose(), world.now, permission.as_ref()) {
        Verdict::Valid(_) => "valid".into(),
        Verdict::Forbidden(_) => "forbidden".into(),
        Verdict::Invalid(why) => why.as_str().into(),
    }
}

/// The effective permissions `verify` reports for a valid key.
fn effective(world: &World, secret: &SecretToken) -> Vec<String> {
    match world.state.verify(secret.expose(), world.now, None) {
        Verdict::Valid(v) => v.effective().permissions(),
        other => panic!("expected a valid key, got {other:?}"),
    }
}

fn user(world: &mut World, name: &str, role: Role) -> (UserId, KeyId, SecretToken) {
    let id = world.new_user(name, role);
    let (key, secret) = world.key_for(Owner::User(id), &format!("{name}'s key"), None);
    (id, key, secret)
}

fn settings(world: &World) -> AccountSettings {
    world.state.account(&world.account).unwrap().settings.clone()
}

fn patch() -> SettingsPatch {
    SettingsPatch::default()
}

// ---------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------

#[test]
fn a_created_user_has_its_role_and_no_namespaces() {
    let mut world = World::bootstrap(100);
    let id = UserId::generate(world.now, &mut world.rng);
    let proposal = world.by_owner(Command::CreateUser { id, name: "alice".into(), role: Role::Developer });
    let (outcome, entries) = world.execute(&proposal);
    match outcome.clone() {
        keyledger_model::Outcome::Accepted { events: 1, subject: Some(subject), .. } => {
            assert!(matches!(*subject, keyledger_model::Subject::User(ref u) if u.id == id));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(entries[0].event.body, EventBody::UserCreated { user: id, name: "alice".into(), role: Role::Developer });
    let alice = world.state.user(&id).unwrap();
    assert_eq!((alice.name.as_str(), alice.role, alice.state), ("alice", Role::Developer, IdentityState::Enabled));
    assert_eq!(alice.account, world.account);
    assert!(alice.namespaces.is_empty());
    assert_eq!(alice.created_at, world.now);
}

#[test]
fn user_and_service_account_names_are_unique_within_an_account() {
    let mut world = World::bootstrap(101);
    world.new_namespace("n");
    let alice = world.new_user("alice", Role::Developer);
    let id = UserId::generate(world.now, &mut world.rng);
    let command = Command::CreateUser { id, name: "alice".into(), role: Role::Read };
    assert_eq!(rejected(world.owner_does(command)), RejectCode::Conflict);
    // The owner is called "owner".
    let command = Command::CreateUser { id, name: "owner".into(), role: Role::Read };
    assert_eq!(rejected(world.owner_does(command)), RejectCode::Conflict);
    // A reused id is refused too.
    let command = Command::CreateUser { id: alice, name: "bob".into(), role: Role::Read };
    assert_eq!(rejected(world.owner_does(command)), RejectCode::Conflict);
    assert_eq!(world.state.user(&alice).unwrap().name, "alice");
    for bad in ["", "   ", "tab\tname", &"x".repeat(101)] {
        let id = UserId::generate(world.now, &mut world.rng);
        let command = Command::CreateUser { id, name: bad.to_string(), role: Role::Read };
        assert_eq!(rejected(world.owner_does(command)), RejectCode::InvalidArgument, "{bad:?}");
    }

    world.new_service_account("ci", Binding::Account(Role::Developer));
    for binding in [Binding::Account(Role::Read), in_namespace("n", Level::Read)] {
        let id = ServiceAccountId::generate(world.now, &mut world.rng);
        let command = Command::CreateServiceAccount { id, name: "ci".into(), binding };
        assert_eq!(rejected(world.owner_does(command)), RejectCode::Conflict);
    }

    // Another account has its own names.
    let acme = world.new_account("acme");
    let id = UserId::generate(world.now, &mut world.rng);
    let command = Command::CreateUser { id, name: "alice".into(), role: Role::Developer };
    assert_eq!(world.as_key(acme.owner_key, command), Ok(1));
    let id = ServiceAccountId::generate(world.now, &mut world.rng);
    let command = Command::CreateServiceAccount { id, name: "ci".into(), binding: Binding::Account(Role::Read) };
    assert_eq!(world.as_key(acme.owner_key, command), Ok(1));
}

#[test]
fn disabling_a_user_stops_its_keys_at_once_and_enabling_restores_them() {
    let mut world = World::bootstrap(102);
    let (alice, alice_key, secret) = user(&mut world, "alice", Role::Developer);
    let (_, second) = world.key_for(Owner::User(alice), "second", None);
    assert_eq!(answer(&world, &secret, Some("account:write")), "valid");

    assert_eq!(world.owner_does(Command::SetUserEnabled { user: alice, enabled: false }), Ok(1));
    assert_eq!(world.ledger.last().unwrap().event.body, EventBody::UserDisabled { user: alice });
    for s in [&secret, &second] {
        assert_eq!(answer(&world, s, None), "identity_disabled");
        assert_eq!(answer(&world, s, Some("account:read")), "identity_disabled");
    }
    // The keys themselves are untouched…
    assert_eq!(world.state.key(&alice_key).unwrap().state, keyledger_model::KeyState::Enabled);
    // …but cannot act, and no key can be made for a disabled user.
    let command = Command::UpdateKey { key: alice_key, name: Some("x".into()), description: None, if_revision: None };
    assert_eq!(rejected(world.as_key(alice_key, command)), RejectCode::Unauthenticated);
    let owner_key = world.owner_key;
    assert_eq!(rejected(world.issue_code(owner_key, alice)), RejectCode::Conflict);
    assert_eq!(world.owner_does(Command::SetUserEnabled { user: alice, enabled: false }), Ok(0));

    assert_eq!(world.owner_does(Command::SetUserEnabled { user: alice, enabled: true }), Ok(1));
    assert_eq!(answer(&world, &secret, Some("account:write")), "valid");
    assert_eq!(answer(&world, &second, None), "valid");
    assert_eq!(world.as_key(alice_key, Command::LockKey(alice_key)), Ok(1));
}

#[test]
fn a_deleted_user_never_authenticates_again_and_cannot_come_back() {
    let mut world = World::bootstrap(103);
    let (alice, alice_key, secret) = user(&mut world, "alice", Role::Admin);
    assert_eq!(world.owner_does(Command::DeleteUser(alice)), Ok(1));
    assert_eq!(world.state.user(&alice).unwrap().state, IdentityState::Deleted);
    assert_eq!(answer(&world, &secret, None), "identity_disabled");
    assert_eq!(rejected(world.as_key(alice_key, Command::DisableKey(world.owner_key))), RejectCode::Unauthenticated);
    for command in [
        Command::SetUserEnabled { user: alice, enabled: true },
        Command::SetUserEnabled { user: alice, enabled: false },
        Command::SetUserRole { user: alice, role: Role::Read },
    ] {
        assert_eq!(rejected(world.owner_does(command.clone())), RejectCode::Conflict, "{command:?}");
    }
    let owner_key = world.owner_key;
    assert_eq!(rejected(world.issue_code(owner_key, alice)), RejectCode::Conflict);
    assert_eq!(world.owner_does(Command::DeleteUser(alice)), Ok(0));
    // Its keys' metadata stays and an admin may still clean them up.
    assert_eq!(world.owner_does(Command::DeleteKey(alice_key)), Ok(1));
    assert_eq!(answer(&world, &secret, None), "deleted");
}

#[test]
fn a_role_change_applies_to_existing_keys_at_once() {
    let mut world = World::bootstrap(104);
    let (alice, alice_key, secret) = user(&mut world, "alice", Role::Admin);
    let (_, bob_key, _) = user(&mut world, "bob", Role::Developer);
    assert_eq!(effective(&world, &secret), ["account:admin", "account:write", "account:read"]);
    assert_eq!(world.as_key(alice_key, Command::DisableKey(bob_key)), Ok(1));

    assert_eq!(world.owner_does(Command::SetUserRole { user: alice, role: Role::Developer }), Ok(1));
    assert_eq!(world.state.user(&alice).unwrap().role, Role::Developer);
    assert_eq!(effective(&world, &secret), ["account:write", "account:read"]);
    assert_eq!(answer(&world, &secret, Some("account:admin")), "forbidden");
    assert_eq!(answer(&world, &secret, Some("account:write")), "valid");
    // The same key can no longer see bob's.
    assert_eq!(rejected(world.as_key(alice_key, Command::EnableKey(bob_key))), RejectCode::NotFound);

    assert_eq!(world.owner_does(Command::SetUserRole { user: alice, role: Role::Read }), Ok(1));
    assert_eq!(effective(&world, &secret), ["account:read"]);
    assert_eq!(answer(&world, &secret, Some("account:write")), "forbidden");
    assert_eq!(world.owner_does(Command::SetUserRole { user: alice, role: Role::Read }), Ok(0));
}

#[test]
fn namespace_permissions_are_granted_changed_and_removed() {
    let mut world = World::bootstrap(105);
    world.new_namespace("payments");
    world.new_namespace("staging");
    let (bob, _, secret) = user(&mut world, "bob", Role::Read);
    assert_eq!(answer(&world, &secret, Some("namespace:payments:write")), "forbidden");
    assert_eq!(answer(&world, &secret, Some("namespace:payments:read")), "valid", "account:read covers it");

    let set = |level| Command::SetUserNamespace { user: bob, namespace: "payments".into(), level };
    assert_eq!(world.owner_does(set(Some(Level::Write))), Ok(1));
    assert_eq!(world.state.user(&bob).unwrap().namespaces.get("payments"), Some(&Level::Write));
    assert_eq!(answer(&world, &secret, Some("namespace:payments:write")), "valid");
    assert_eq!(answer(&world, &secret, Some("namespace:payments:admin")), "forbidden");
    assert_eq!(answer(&world, &secret, Some("namespace:staging:write")), "forbidden");
    assert_eq!(answer(&world, &secret, Some("account:write")), "forbidden");
    assert_eq!(effective(&world, &secret), ["account:read", "namespace:payments:write"]);
    assert_eq!(world.owner_does(set(Some(Level::Write))), Ok(0));

    assert_eq!(world.owner_does(set(Some(Level::Admin))), Ok(1));
    assert_eq!(answer(&world, &secret, Some("namespace:payments:admin")), "valid");

    assert_eq!(world.owner_does(set(None)), Ok(1));
    assert!(world.state.user(&bob).unwrap().namespaces.is_empty());
    assert_eq!(answer(&world, &secret, Some("namespace:payments:write")), "forbidden");
    assert_eq!(world.owner_does(set(None)), Ok(0));

    // Only existing namespaces of the account.
    let command = Command::SetUserNamespace { user: bob, namespace: "nowhere".into(), level: Some(Level::Read) };
    assert_eq!(rejected(world.owner_does(command)), RejectCode::NotFound);

    // A key scoped to the namespace permission carries no more than it.
    let (_, scoped) = world.key_for(
        Owner::User(world.owner),
        "payments-only",
        Some(Scope::Namespaces([("payments".to_string(), Level::Write)].into())),
    );
    assert_eq!(effective(&world, &scoped), ["namespace:payments:write", "namespace:payments:read"]);
    assert_eq!(answer(&world, &scoped, Some("account:read")), "forbidden");
    assert_eq!(answer(&world, &scoped, Some("namespace:staging:read")), "forbidden");
}

#[test]
fn the_account_always_keeps_an_enabled_owner() {
    let mut world = World::bootstrap(106);
    let me = world.owner;
    // Alone, the owner can neither delete, disable nor demote itself.
    for command in [
        Command::DeleteUser(me),
        Command::SetUserEnabled { user: me, enabled: false },
        Command::SetUserRole { user: me, role: Role::Admin },
        Command::SetUserRole { user: me, role: Role::Read },
    ] {
        assert_eq!(rejected(world.owner_does(command.clone())), RejectCode::Conflict, "{command:?}");
    }

    // A second owner, disabled, does not count.
    let (second, second_key, _) = user(&mut world, "second", Role::Owner);
    assert_eq!(world.owner_does(Command::SetUserEnabled { user: second, enabled: false }), Ok(1));
    assert_eq!(rejected(world.owner_does(Command::SetUserRole { user: me, role: Role::Admin })), RejectCode::Conflict);
    assert_eq!(rejected(world.owner_does(Command::DeleteUser(me))), RejectCode::Conflict);

    // Enabled, it does: the first owner may step down to admin…
    assert_eq!(world.owner_does(Command::SetUserEnabled { user: second, enabled: true }), Ok(1));
    assert_eq!(world.owner_does(Command::SetUserRole { user: me, role: Role::Admin }), Ok(1));
    // …after which the second is the last one, and an admin cannot touch it anyway.
    for command in [Command::DeleteUser(second), Command::SetUserEnabled { user: second, enabled: false }] {
        assert_eq!(rejected(world.as_key(second_key, command.clone())), RejectCode::Conflict, "{command:?}");
        assert_eq!(rejected(world.owner_does(command)), RejectCode::PermissionDenied);
    }
    let command = Command::SetUserRole { user: second, role: Role::Developer };
    assert_eq!(rejected(world.as_key(second_key, command)), RejectCode::Conflict);
    // Promoting someone back lets the second owner go.
    assert_eq!(world.as_key(second_key, Command::SetUserRole { user: me, role: Role::Owner }), Ok(1));
    assert_eq!(world.as_key(second_key, Command::DeleteUser(second)), Ok(1));
    assert_eq!(world.state.user(&me).unwrap().role, Role::Owner);
}

// ---------------------------------------------------------------------------------------
// Service accounts
// ---------------------------------------------------------------------------------------

#[test]
fn an_account_scoped_service_account_key_carries_its_role() {
    let mut world = World::bootstrap(110);
    world.new_namespace("n");
    let ci = world.new_service_account("ci", Binding::Account(Role::Developer));
    let sa = world.state.service_account(&ci).unwrap();
    assert_eq!((sa.role(), sa.namespace(), sa.state), (Some(Role::Developer), None, IdentityState::Enabled));
    let (key, secret) = world.key_for(Owner::ServiceAccount(ci), "deploy", None);
    match world.state.verify(secret.expose(), world.now, Some(&perm("account:write"))) {
        Verdict::Valid(v) => {
            assert_eq!(v.key, key);
            assert_eq!(v.owner, Owner::ServiceAccount(ci));
            assert!(matches!(v.identity, IdentityRef::ServiceAccount(s) if s.id == ci));
            assert_eq!(v.identity_name(), "ci");
            assert_eq!(v.effective().permissions(), ["account:write", "account:read"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(answer(&world, &secret, Some("account:admin")), "forbidden");
    assert_eq!(answer(&world, &secret, Some("namespace:n:write")), "valid");
    assert_eq!(answer(&world, &secret, Some("namespace:n:admin")), "forbidden");
    let (_, read_only) = world.key_for(Owner::ServiceAccount(ci), "read-only", Some(Scope::Role(Role::Read)));
    assert_eq!(effective(&world, &read_only), ["account:read"]);
    assert_eq!(answer(&world, &read_only, Some("account:write")), "forbidden");
}

#[test]
fn a_namespace_scoped_service_account_key_holds_one_namespace_permission() {
    let mut world = World::bootstrap(111);
    world.new_namespace("n");
    world.new_namespace("m");
    let worker = world.new_service_account("worker", in_namespace("n", Level::Write));
    assert_eq!(world.state.service_account(&worker).unwrap().namespace(), Some("n"));
    let (_, secret) = world.key_for(Owner::ServiceAccount(worker), "w", None);
    assert_eq!(effective(&world, &secret), ["namespace:n:write", "namespace:n:read"]);
    assert_eq!(answer(&world, &secret, Some("namespace:n:write")), "valid");
    assert_eq!(answer(&world, &secret, Some("namespace:n:read")), "valid");
    for denied in ["namespace:n:admin", "namespace:m:read", "account:read", "account:write"] {
        assert_eq!(answer(&world, &secret, Some(denied)), "forbidden", "{denied}");
    }
    // A namespace that does not exist cannot be bound.
    let id = ServiceAccountId::generate(world.now, &mut world.rng);
    let command = Command::CreateServiceAccount { id, name: "ghost".into(), binding: in_namespace("x", Level::Read) };
    assert_eq!(rejected(world.owner_does(command)), RejectCode::InvalidArgument);
}

#[test]
fn service_accounts_are_disabled_enabled_and_deleted() {
    let mut world = World::bootstrap(112);
    let ci = world.new_service_account("ci", Binding::Account(Role::Admin));
    let (key, secret) = world.key_for(Owner::ServiceAccount(ci), "k", None);
    let set = |enabled| Command::SetServiceAccountEnabled { service_account: ci, enabled };
    assert_eq!(world.owner_does(set(false)), Ok(1));
    assert_eq!(answer(&world, &secret, None), "identity_disabled");
    assert_eq!(rejected(world.as_key(key, Command::CreateNamespace { name: "x".into() })), RejectCode::Unauthenticated);
    assert_eq!(world.owner_does(set(false)), Ok(0));
    assert_eq!(world.owner_does(set(true)), Ok(1));
    assert_eq!(answer(&world, &secret, Some("account:admin")), "valid");
    assert_eq!(world.as_key(key, Command::CreateNamespace { name: "x".into() }), Ok(1));

    assert_eq!(world.owner_does(Command::DeleteServiceAccount(ci)), Ok(1));
    assert_eq!(world.ledger.last().unwrap().event.body, EventBody::ServiceAccountDeleted { service_account: ci });
    assert_eq!(answer(&world, &secret, None), "identity_disabled");
    assert_eq!(rejected(world.owner_does(set(true))), RejectCode::Conflict);
    let owner_key = world.owner_key;
    assert_eq!(rejected(world.key_by(owner_key, Some(Owner::ServiceAccount(ci)), "x", None)), RejectCode::Conflict);
    let unknown = ServiceAccountId::generate(world.now, &mut world.rng);
    assert_eq!(rejected(world.owner_does(Command::DeleteServiceAccount(unknown))), RejectCode::NotFound);
}

// ---------------------------------------------------------------------------------------
// Namespaces
// ---------------------------------------------------------------------------------------

#[test]
fn namespace_names_are_checked_and_unique_within_an_account() {
    let mut world = World::bootstrap(120);
    for good in ["payments", "a", "staging-2", "x_y", &format!("a{}", "b".repeat(62))] {
        assert_eq!(world.owner_does(Command::CreateNamespace { name: good.to_string() }), Ok(1), "{good:?}");
        assert!(world.state.namespace(&world.account, good).is_some());
    }
    for bad in ["", "Payments", "2fa", "-x", "_x", "a b", "a:b", "é", &format!("a{}", "b".repeat(63))] {
        let command = Command::CreateNamespace { name: bad.to_string() };
        assert_eq!(rejected(world.owner_does(command)), RejectCode::InvalidArgument, "{bad:?}");
    }
    assert_eq!(rejected(world.owner_does(Command::CreateNamespace { name: "payments".into() })), RejectCode::Conflict);
    assert_eq!(world.state.namespaces_of(&world.account).count(), 5);

    let acme = world.new_account("acme");
    assert_eq!(world.as_key(acme.owner_key, Command::CreateNamespace { name: "payments".into() }), Ok(1));
    assert_eq!(world.state.namespaces_of(&acme.id).count(), 1);
    assert_eq!(world.state.namespaces_of(&world.account).count(), 5);
}

// ---------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------

#[test]
fn switching_key_creation_off_refuses_create_and_rotate_but_keys_keep_working() {
    let mut world = World::bootstrap(130);
    let (_, admin_key, _) = user(&mut world, "admin", Role::Admin);
    let (existing, existing_secret) = world.create("existing", Span::days(7)).unwrap();
    let ci = world.new_service_account("ci", Binding::Account(Role::Read));
    let (ci_key, _) = world.key_for(Owner::ServiceAccount(ci), "ci", None);

    let off = SettingsPatch { key_creation_enabled: Some(false), ..patch() };
    assert_eq!(world.as_key(admin_key, Command::UpdateSettings(off)), Ok(1));
    assert!(!settings(&world).key_creation_enabled);
    match &world.ledger.last().unwrap().event.body {
        EventBody::SettingsChanged { settings: s } => assert_eq!(*s, settings(&world)),
        other => panic!("{other:?}"),
    }

    assert_eq!(rejected(world.create("new", Span::days(7))), RejectCode::CreationDisabled);
    assert_eq!(rejected(world.key_by(admin_key, None, "mine", None)), RejectCode::CreationDisabled);
    assert_eq!(rejected(world.key_by(ci_key, None, "mine", None)), RejectCode::CreationDisabled);
    let (new, _) = world.new_key_for(None, "r", None);
    let rotate = Command::RotateKey { key: existing, new, grace: Span(HOUR) };
    assert_eq!(rejected(world.owner_does(rotate)), RejectCode::CreationDisabled);
    // Existing keys still verify and can still be managed.
    assert_eq!(answer(&world, &existing_secret, Some("account:admin")), "valid");
    assert_eq!(world.owner_does(Command::DisableKey(existing)), Ok(1));
    assert_eq!(world.owner_does(Command::EnableKey(existing)), Ok(1));
    assert_eq!(answer(&world, &existing_secret, None), "valid");

    let on = SettingsPatch { key_creation_enabled: Some(true), ..patch() };
    assert_eq!(world.as_key(admin_key, Command::UpdateSettings(on)), Ok(1));
    assert!(world.create("new", Span::days(7)).is_ok());
}

#[test]
fn the_maximum_key_lifetime_is_configurable() {
    let mut world = World::bootstrap(131);
    world.set_settings(SettingsPatch { max_key_lifetime: Some(Span::days(30)), ..patch() });
    assert_eq!(settings(&world).max_key_lifetime, Span::days(30));
    assert!(world.create("30d", Span::days(30)).is_ok());
    assert_eq!(rejected(world.create("30d+1ms", Span(Span::days(30).0 + 1))), RejectCode::InvalidArgument);
    world.set_settings(SettingsPatch { max_key_lifetime: Some(Span::years(5)), ..patch() });
    assert!(world.create("5y", Span::years(5)).is_ok());
    assert_eq!(rejected(world.create("5y+1ms", Span(Span::years(5).0 + 1))), RejectCode::InvalidArgument);
}

#[test]
fn keys_that_never_expire_only_where_allowed() {
    let mut world = World::bootstrap(132);
    assert_eq!(rejected(world.create_with("forever", None, |_| {})), RejectCode::InvalidArgument);
    world.set_settings(SettingsPatch { allow_never_expiring: Some(true), ..patch() });
    let (id, secret) = world.create_with("forever", None, |_| {}).unwrap();
    assert_eq!(world.state.key(&id).unwrap().expires_at, None);
    assert!(matches!(world.state.verify(secret.expose(), Timestamp(i64::MAX), None), Verdict::Valid(_)));
    world.set_settings(SettingsPatch { allow_never_expiring: Some(false), ..patch() });
    assert_eq!(rejected(world.create_with("forever 2", None, |_| {})), RejectCode::InvalidArgument);
    assert_eq!(answer(&world, &secret, None), "valid", "an existing key keeps working");
}

#[test]
fn the_per_user_limit_is_configurable() {
    let mut world = World::bootstrap(133);
    assert_eq!(settings(&world).max_keys_per_user, 10);
    let (_, _, _) = user(&mut world, "alice", Role::Developer);
    world.set_settings(SettingsPatch { max_keys_per_user: Some(3), ..patch() });
    // The owner has its bootstrap key: two more.
    world.create("2", Span::days(1)).unwrap();
    world.create("3", Span::days(1)).unwrap();
    assert_eq!(rejected(world.create("4", Span::days(1))), RejectCode::LimitExceeded);
    world.set_settings(SettingsPatch { max_keys_per_user: Some(12), ..patch() });
    for i in 4..=12 {
        world.create(&i.to_string(), Span::days(1)).unwrap();
    }
    assert_eq!(rejected(world.create("13", Span::days(1))), RejectCode::LimitExceeded);
    // Lowering the limit below what exists keeps the keys and refuses new ones.
    world.set_settings(SettingsPatch { max_keys_per_user: Some(1), ..patch() });
    assert_eq!(rejected(world.create("x", Span::days(1))), RejectCode::LimitExceeded);
    assert_eq!(answer(&world, &world.owner_secret.clone(), None), "valid");
}

#[test]
fn the_per_service_account_limit_is_twenty_and_configurable() {
    let mut world = World::bootstrap(134);
    assert_eq!(settings(&world).max_keys_per_service_account, 20);
    let ci = Owner::ServiceAccount(world.new_service_account("ci", Binding::Account(Role::Developer)));
    let owner_key = world.owner_key;
    for i in 1..=20 {
        world.key_by(owner_key, Some(ci), &format!("k{i}"), None).unwrap();
    }
    assert_eq!(rejected(world.key_by(owner_key, Some(ci), "k21", None)), RejectCode::LimitExceeded);
    // Users are limited separately: the owner can still make keys.
    assert!(world.create("owner's", Span::days(1)).is_ok());
    world.set_settings(SettingsPatch { max_keys_per_service_account: Some(22), ..patch() });
    world.key_by(owner_key, Some(ci), "k21", None).unwrap();
    world.key_by(owner_key, Some(ci), "k22", None).unwrap();
    assert_eq!(rejected(world.key_by(owner_key, Some(ci), "k23", None)), RejectCode::LimitExceeded);
}

#[test]
fn settings_out_of_bounds_are_invalid_and_change_nothing() {
    let mut world = World::bootstrap(135);
    let bad = [
        SettingsPatch { max_key_lifetime: Some(Span(Span::days(1).0 - 1)), ..patch() },
        SettingsPatch { max_key_lifetime: Some(Span(0)), ..patch() },
        SettingsPatch { max_key_lifetime: Some(Span(-DAY)), ..patch() },
        SettingsPatch { max_key_lifetime: Some(Span(Span::years(10).0 + 1)), ..patch() },
        SettingsPatch { max_keys_per_user: Some(0), ..patch() },
        SettingsPatch { max_keys_per_user: Some(1001), ..patch() },
        SettingsPatch { max_keys_per_service_account: Some(0), ..patch() },
        SettingsPatch { max_keys_per_service_account: Some(u32::MAX), ..patch() },
        // One bad value spoils the whole patch.
        SettingsPatch { key_creation_enabled: Some(false), max_keys_per_user: Some(0), ..patch() },
    ];
    for patch in bad {
        assert_eq!(
            rejected(world.owner_does(Command::UpdateSettings(patch.clone()))),
            RejectCode::InvalidArgument,
            "{patch:?}"
        );
    }
    assert_eq!(settings(&world), AccountSettings::default());
    let edges = SettingsPatch {
        max_key_lifetime: Some(Span::days(1)),
        max_keys_per_user: Some(1),
        max_keys_per_service_account: Some(1000),
        ..patch()
    };
    assert_eq!(world.owner_does(Command::UpdateSettings(edges)), Ok(1));
    let edges = SettingsPatch {
        max_key_lifetime: Some(Span::years(10)),
        max_keys_per_user: Some(1000),
        max_keys_per_service_account: Some(1),
        ..patch()
    };
    assert_eq!(world.owner_does(Command::UpdateSettings(edges.clone())), Ok(1));
    // The same values again: accepted, nothing written.
    assert_eq!(world.owner_does(Command::UpdateSettings(edges)), Ok(0));
    assert_eq!(world.owner_does(Command::UpdateSettings(patch())), Ok(0));
}

// ---------------------------------------------------------------------------------------
// Accounts
// ---------------------------------------------------------------------------------------

#[test]
fn an_owner_creates_an_account_whose_owner_key_works_there() {
    let mut world = World::bootstrap(140);
    let acme = world.new_account("acme");
    let account = world.state.account(&acme.id).expect("acme exists");
    assert_eq!(account.settings, AccountSettings::default());
    let owner = world.state.user(&acme.owner).unwrap();
    assert_eq!((owner.role, &owner.account, owner.name.as_str()), (Role::Owner, &acme.id, "acme-owner"));
    // acme's chain starts at 1; default's goes on.
    let acme_events: Vec<_> = world.ledger.iter().filter(|e| e.event.account == acme.id).collect();
    assert_eq!(acme_events.iter().map(|e| e.event.account_seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    let types: Vec<_> = acme_events.iter().map(|e| e.event.body.type_name()).collect();
    assert_eq!(types, ["account_created", "user_created", "enrollment_issued", "created", "enrolled"]);
    // The operator creates the account and the code; the owner mints its own key.
    assert!(acme_events[..3].iter().all(|e| e.event.actor == world.owner_actor()));
    let acme_owner = keyledger_model::Actor::User { id: acme.owner, key: acme.owner_key };
    assert!(acme_events[3..].iter().all(|e| e.event.actor == acme_owner));
    common::check_chains(&world.ledger);

    match world.state.verify(acme.owner_secret.expose(), world.now, Some(&perm("account:admin"))) {
        Verdict::Valid(v) => {
            assert_eq!(v.key, acme.owner_key);
            assert_eq!(v.account(), &acme.id);
            assert_eq!(v.identity_name(), "acme-owner");
        }
        other => panic!("{other:?}"),
    }
    // It acts in acme.
    let bob = UserId::generate(world.now, &mut world.rng);
    let command = Command::CreateUser { id: bob, name: "bob".into(), role: Role::Developer };
    assert_eq!(world.as_key(acme.owner_key, command), Ok(1));
    assert_eq!(world.state.user(&bob).unwrap().account, acme.id);
    let code = world.issue_code(acme.owner_key, bob).unwrap();
    let (bob_key, _) = world.enroll(&code, "bob", None).unwrap();
    assert_eq!(world.state.key(&bob_key).unwrap().account, acme.id);
}

#[test]
fn account_creation_checks_its_inputs() {
    let mut world = World::bootstrap(141);
    let create = |world: &mut World, account: &str, owner: Option<UserId>, expires: Option<Timestamp>| {
        let owner = owner.unwrap_or_else(|| UserId::generate(world.now, &mut world.rng));
        let (key, _) = new_key(&mut world.rng, world.now, "first", expires);
        let command =
            Command::CreateAccount { account: AccountId::new(account).unwrap(), owner, owner_name: "o".into(), key };
        world.owner_does(command)
    };
    assert_eq!(rejected(create(&mut world, "default", None, Some(at(DAY)))), RejectCode::Conflict);
    let me = world.owner;
    assert_eq!(rejected(create(&mut world, "acme", Some(me), Some(at(DAY)))), RejectCode::Conflict);
    assert_eq!(rejected(create(&mut world, "acme", None, None)), RejectCode::InvalidArgument);
    assert_eq!(rejected(create(&mut world, "acme", None, Some(at(3 * 365 * DAY)))), RejectCode::InvalidArgument);
    assert_eq!(rejected(create(&mut world, "acme", None, Some(at(0)))), RejectCode::InvalidArgument);
    assert!(world.state.account(&AccountId::new("acme").unwrap()).is_none());
    assert_eq!(create(&mut world, "acme", None, Some(at(DAY))), Ok(3));
    assert_eq!(rejected(create(&mut world, "acme", None, Some(at(DAY)))), RejectCode::Conflict);
    // By the cluster itself it is not an owner's act.
    let (key, _) = new_key(&mut world.rng, world.now, "first", Some(at(DAY)));
    let owner = UserId::generate(world.now, &mut world.rng);
    let command =
        Command::CreateAccount { account: AccountId::new("sys").unwrap(), owner, owner_name: "o".into(), key };
    assert_eq!(rejected(world.as_system(command)), RejectCode::PermissionDenied);
}

#[test]
fn nothing_crosses_accounts() {
    let mut world = World::bootstrap(142);
    world.new_namespace("n");
    let acme = world.new_account("acme");
    assert_eq!(world.as_key(acme.owner_key, Command::CreateNamespace { name: "n".into() }), Ok(1));
    let (acme_second, acme_secret) = world.key_by(acme.owner_key, None, "second", None).unwrap();
    let (default_key, default_secret) = world.create("mine", Span::days(3)).unwrap();

    // A default key cannot read, change or make keys in acme…
    let principal = world.principal_of(world.owner_key);
    let record = world.state.key(&acme_second).unwrap();
    for action in [KeyAction::Read, KeyAction::Manage, KeyAction::Delete, KeyAction::Create] {
        assert_eq!(world.state.authorize_key(&principal, record, action), Err(keyledger_model::Refusal::Hidden));
    }
    for command in [
        Command::DisableKey(acme_second),
        Command::DeleteKey(acme_second),
        Command::LockKey(acme_second),
        Command::UpdateKey { key: acme_second, name: Some("x".into()), description: None, if_revision: None },
    ] {
        assert_eq!(rejected(world.owner_does(command.clone())), RejectCode::NotFound, "{command:?}");
    }
    // …and acme's owner none in default.
    assert_eq!(rejected(world.as_key(acme.owner_key, Command::DeleteKey(default_key))), RejectCode::NotFound);
    assert_eq!(answer(&world, &acme_secret, None), "valid");
    assert_eq!(answer(&world, &default_secret, None), "valid");
    // Each key verifies as its own account's identity only.
    match world.state.verify(default_secret.expose(), world.now, Some(&perm("namespace:n:admin"))) {
        Verdict::Valid(v) => assert_eq!(v.account(), &world.account),
        other => panic!("{other:?}"),
    }

    // Settings are per account: default switching creation off leaves acme alone.
    world.set_settings(SettingsPatch { key_creation_enabled: Some(false), max_keys_per_user: Some(2), ..patch() });
    assert_eq!(rejected(world.create("x", Span::days(1))), RejectCode::CreationDisabled);
    assert!(world.key_by(acme.owner_key, None, "third", None).is_ok());
    assert_eq!(world.state.account(&acme.id).unwrap().settings, AccountSettings::default());
    // Disabling default's owner-made users does not touch acme's, nor the other way round.
    let alice = world.new_user("alice", Role::Read);
    assert_eq!(world.owner_does(Command::SetUserEnabled { user: alice, enabled: false }), Ok(1));
    assert_eq!(answer(&world, &acme.owner_secret, None), "valid");
    let acme_owner = acme.owner;
    let command = Command::SetUserEnabled { user: acme_owner, enabled: false };
    assert_eq!(rejected(world.owner_does(command)), RejectCode::NotFound);
    assert_eq!(world.state.user(&acme_owner).unwrap().state, IdentityState::Enabled);
}

#[test]
fn create_account_checks_the_first_keys_scope() {
    let mut world = World::bootstrap(903);
    let (mut key, _) = world.new_key_for(None, "first", None);
    key.scope = Some(keyledger_model::Scope::Namespaces(Default::default()));
    let owner = keyledger_model::UserId::generate(world.now, &mut world.rng);
    let command = Command::CreateAccount {
        account: keyledger_model::AccountId::new("acme").unwrap(),
        owner,
        owner_name: "o".into(),
        key,
    };
    assert_eq!(rejected(world.owner_does(command)), RejectCode::InvalidArgument);
}

#[test]
fn account_creation_issues_the_owner_a_code_and_writes_no_key() {
    use keyledger_model::{token, Outcome, Subject};
    let mut world = World::bootstrap(904);
    let keys_before = world.state.key_count();
    let owner = UserId::generate(world.now, &mut world.rng);
    let code = token::generate_enrollment_code(&mut world.rng);
    let acme = AccountId::new("acme").unwrap();
    let command = Command::CreateAccountWithEnrollment {
        account: acme.clone(),
        owner,
        owner_name: "acme-owner".into(),
        code: code.digest(),
    };
    let proposal = world.by_owner(command);
    let (outcome, entries) = world.execute(&proposal);
    let Outcome::Accepted { subject: Some(subject), .. } = outcome else { panic!("{outcome:?}") };
    // The answer names the owner and the code's expiry: no key, nothing secret.
    match subject.as_ref() {
        Subject::Enrollment { user, expires_at } => {
            assert_eq!((user.id, user.role, &user.account), (owner, Role::Owner, &acme));
            assert_eq!(*expires_at, Timestamp(world.now.0 + DAY));
        }
        other => panic!("{other:?}"),
    }
    let bodies: Vec<&EventBody> = entries.iter().map(|e| &e.event.body).collect();
    assert!(
        matches!(
            bodies[..],
            [
                EventBody::AccountCreated { .. },
                EventBody::UserCreated { role: Role::Owner, .. },
                EventBody::EnrollmentIssued { .. },
            ]
        ),
        "{bodies:?}"
    );
    assert!(entries.iter().all(|e| e.event.account == acme));
    assert_eq!(world.state.key_count(), keys_before, "no key was written");

    // The owner redeems the code once, for an owner key of acme that works.
    let (key, secret) = world.enroll(&code, "acme owner's laptop", None).unwrap();
    let record = world.state.key(&key).unwrap();
    assert_eq!((record.owner, &record.account), (Owner::User(owner), &acme));
    assert_eq!(answer(&world, &secret, Some("account:admin")), "valid");
    assert_eq!(world.as_key(key, Command::CreateNamespace { name: "ops".into() }), Ok(1));
    assert!(world.enroll(&code, "again", None).is_err(), "the code works once");
    // The operator's own key cannot even see the owner's key.
    let operator = world.principal_of(world.owner_key);
    let record = world.state.key(&key).unwrap();
    assert_eq!(world.state.authorize_key(&operator, record, KeyAction::Read), Err(keyledger_model::Refusal::Hidden));
}

#[test]
fn account_creation_with_a_code_checks_its_inputs() {
    use keyledger_model::token;
    let mut world = World::bootstrap(905);
    let create = |world: &mut World, account: &str, owner: Option<UserId>, code: Option<SecretToken>| {
        let owner = owner.unwrap_or_else(|| UserId::generate(world.now, &mut world.rng));
        let code = code.unwrap_or_else(|| token::generate_enrollment_code(&mut world.rng));
        let command = Command::CreateAccountWithEnrollment {
            account: AccountId::new(account).unwrap(),
            owner,
            owner_name: "o".into(),
            code: code.digest(),
        };
        world.owner_does(command)
    };
    assert_eq!(rejected(create(&mut world, "default", None, None)), RejectCode::Conflict);
    let me = world.owner;
    assert_eq!(rejected(create(&mut world, "acme", Some(me), None)), RejectCode::Conflict);
    // A code's digest must be new: a key's digest is refused.
    let taken = world.owner_secret.clone();
    assert_eq!(rejected(create(&mut world, "acme", None, Some(taken))), RejectCode::Conflict);
    assert!(world.state.account(&AccountId::new("acme").unwrap()).is_none());
    assert_eq!(create(&mut world, "acme", None, None), Ok(3));
    assert_eq!(rejected(create(&mut world, "acme", None, None)), RejectCode::Conflict);
    // Only the operator: not acme's owner, not the cluster itself.
    let acme = world.new_account("beta");
    let code = token::generate_enrollment_code(&mut world.rng).digest();
    let owner = UserId::generate(world.now, &mut world.rng);
    let command = Command::CreateAccountWithEnrollment {
        account: AccountId::new("gamma").unwrap(),
        owner,
        owner_name: "o".into(),
        code,
    };
    assert_eq!(rejected(world.as_key(acme.owner_key, command.clone())), RejectCode::PermissionDenied);
    assert_eq!(rejected(world.as_system(command)), RejectCode::PermissionDenied);
}
