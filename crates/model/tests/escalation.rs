//! Property test of *rank*: random sequences of operations by callers of every rank, calling
//! with keys of random scopes, never hand the caller a key (created or rotated in) whose
//! effective permissions or rank exceed those of the key it called with.

mod common;

use std::cell::Cell;
use std::collections::BTreeMap;

use common::{in_namespace, World, DAY};
use keyledger_model::{
    Binding, Command, EventBody, KeyId, Level, Outcome, Owner, Principal, Rank, Role, Scope, Span, UserId,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

#[derive(Debug, Clone)]
enum ScopePick {
    None,
    Role(Role),
    Namespace(&'static str, Level),
}

#[derive(Debug, Clone)]
enum Act {
    /// Create a key for identity `owner` (an index into the identities; past the end: itself).
    Create { owner: usize, scope: ScopePick },
    /// Rotate key number `key` of those in the state.
    Rotate { key: usize },
    /// Give user number `user` role `role` (which may promote or demote a caller).
    SetRole { user: usize, role: Role },
    /// Give user number `user` `level` (or nothing) on namespace `n`.
    SetNamespace { user: usize, level: Option<Level> },
}

#[derive(Debug, Clone)]
struct Move {
    /// Which key calls: an index into the keys that authenticate now.
    caller: usize,
    act: Act,
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Owner), Just(Role::Admin), Just(Role::Developer), Just(Role::Read)]
}

fn level() -> impl Strategy<Value = Level> {
    prop_oneof![Just(Level::Read), Just(Level::Write), Just(Level::Admin)]
}

fn scope() -> impl Strategy<Value = ScopePick> {
    prop_oneof![
        3 => Just(ScopePick::None),
        2 => role().prop_map(ScopePick::Role),
        2 => (prop_oneof![Just("n"), Just("m")], level()).prop_map(|(n, l)| ScopePick::Namespace(n, l)),
    ]
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        5 => (0..12usize, scope()).prop_map(|(owner, scope)| Act::Create { owner, scope }),
        3 => (0..64usize).prop_map(|key| Act::Rotate { key }),
        1 => (0..8usize, role()).prop_map(|(user, role)| Act::SetRole { user, role }),
        1 => (0..8usize, proptest::option::of(level())).prop_map(|(user, level)| Act::SetNamespace { user, level }),
    ]
}

fn moves() -> impl Strategy<Value = Vec<Move>> {
    proptest::collection::vec((0..64usize, act()).prop_map(|(caller, act)| Move { caller, act }), 1..40)
}

/// `default` with namespaces `n` and `m` and one identity of every rank, each with a key.
fn base() -> (World, Vec<Owner>) {
    let mut w = World::bootstrap(4242);
    w.new_namespace("n");
    w.new_namespace("m");
    let mut identities = vec![Owner::User(w.owner)];
    for (name, role) in
        [("owner2", Role::Owner), ("admin", Role::Admin), ("dev", Role::Developer), ("read", Role::Read)]
    {
        identities.push(Owner::User(w.new_user(name, role)));
    }
    let ns_admin = w.new_user("ns-admin", Role::Read);
    let command = Command::SetUserNamespace { user: ns_admin, namespace: "n".into(), level: Some(Level::Admin) };
    assert_eq!(w.owner_does(command), Ok(1));
    identities.push(Owner::User(ns_admin));
    for (name, binding) in [
        ("sa-admin", Binding::Account(Role::Admin)),
        ("sa-dev", Binding::Account(Role::Developer)),
        ("sa-read", Binding::Account(Role::Read)),
        ("sa-n", in_namespace("n", Level::Admin)),
    ] {
        identities.push(Owner::ServiceAccount(w.new_service_account(name, binding)));
    }
    for identity in identities.clone() {
        w.key_for(identity, "first", None);
    }
    (w, identities)
}

fn users(identities: &[Owner]) -> Vec<UserId> {
    identities
        .iter()
        .filter_map(|o| match o {
            Owner::User(id) => Some(*id),
            Owner::ServiceAccount(_) => None,
        })
        .collect()
}

/// Does `new` hold anything `caller` does not?
fn exceeds(new: &Principal, caller: &Principal) -> bool {
    new.grant.intersect(&caller.grant) != new.grant || new.rank() > caller.rank()
}

/// Runs `moves`; returns how many keys were handed out, or the first escalation found.
fn run(base: &World, identities: &[Owner], moves: &[Move]) -> Result<usize, String> {
    let mut w = base.clone();
    let users = users(identities);
    let mut handed_out = 0;
    for m in moves {
        w.now.0 += 1000;
        let live: Vec<KeyId> =
            w.state.keys_after(None).filter(|k| w.state.principal(&k.id, w.now).is_some()).map(|k| k.id).collect();
        let Some(&caller_key) = live.get(m.caller % live.len().max(1)) else {
            return Ok(handed_out);
        };
        let caller = w.principal_of(caller_key);
        let command = match &m.act {
            Act::Create { owner, scope } => {
                let scope = match scope {
                    ScopePick::None => None,
                    ScopePick::Role(r) => Some(Scope::Role(*r)),
                    ScopePick::Namespace(n, l) => Some(Scope::Namespaces(BTreeMap::from([(n.to_string(), *l)]))),
                };
                let (key, _) = w.new_key_for(identities.get(*owner).copied(), "made", scope);
                Command::CreateKey(key)
            }
            Act::Rotate { key } => {
                let all: Vec<KeyId> = w.state.keys_after(None).map(|k| k.id).collect();
                let (mut new, _) = w.new_key_for(None, "rotated", None);
                new.expires_at = Some(keyledger_model::Timestamp(w.now.0 + 20 * DAY));
                Command::RotateKey { key: all[key % all.len()], new, grace: Span(0) }
            }
            Act::SetRole { user, role } => Command::SetUserRole { user: users[user % users.len()], role: *role },
            Act::SetNamespace { user, level } => {
                Command::SetUserNamespace { user: users[user % users.len()], namespace: "n".into(), level: *level }
            }
        };
        let proposal = w.proposal(w.actor_of(caller_key), command);
        let (outcome, entries) = w.execute(&proposal);
        if !matches!(outcome, Outcome::Accepted { .. }) {
            continue;
        }
        for entry in &entries {
            if let EventBody::KeyCreated { key, .. } = &entry.event.body {
                handed_out += 1;
                let Some(new) = w.state.principal(key, w.now) else { continue };
                if exceeds(&new, &caller) {
                    return Err(format!("{:?} by {caller:?} handed out {new:?}", m.act));
                }
            }
        }
    }
    Ok(handed_out)
}

#[test]
fn no_sequence_hands_a_caller_a_key_more_powerful_than_its_own() {
    let (base, identities) = base();
    let handed_out = Cell::new(0usize);
    let mut runner = TestRunner::new(Config { cases: 256, ..Config::default() });
    runner
        .run(&moves(), |moves| {
            let n = run(&base, &identities, &moves).map_err(TestCaseError::fail)?;
            handed_out.set(handed_out.get() + n);
            Ok(())
        })
        .unwrap();
    // Not vacuous: many keys were created or rotated in along the way.
    assert!(handed_out.get() > 500, "only {} keys handed out", handed_out.get());
}

#[test]
fn the_rank_order_is_owner_admin_developer_read_namespace() {
    assert!(Rank::Owner > Rank::Admin && Rank::Admin > Rank::Developer && Rank::Developer > Rank::Read);
    assert!(Rank::Read > Rank::NamespaceOnly);
}
