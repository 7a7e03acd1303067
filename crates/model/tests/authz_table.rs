//! Every cell of domain.md's "Who may do what" tables, driven through `State::execute` (writes)
//! and `State::principal` + `State::authorize_key` (reads), against expectations written out as
//! data below — not derived from `authz.rs` — so a change that opens (or closes) a hole fails here.

mod common;

use std::collections::BTreeMap;

use common::{in_namespace, perm, rejected, OtherAccount, World, HOUR};
use keyledger_model::{
    token, AccountId, Actor, Binding, Command, KeyAction, KeyId, Level, Owner, Refusal, RejectCode, Role, Scope,
    SecretToken, ServiceAccountId, SettingsPatch, Span, UserId, Verdict,
};

// ---------------------------------------------------------------------------------------
// The cast
// ---------------------------------------------------------------------------------------

/// Every kind of caller the tables distinguish (plus scoped keys, which act as their scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Caller {
    Owner,
    Admin,
    Developer,
    Read,
    /// Role `read` plus `admin` on namespace `n`.
    ReadNsAdmin,
    /// Role `developer` plus `admin` on namespace `n`.
    DeveloperNsAdmin,
    SaAdmin,
    SaDeveloper,
    SaRead,
    /// Namespace-scoped service accounts of `n`.
    NsSaAdmin,
    NsSaWrite,
    NsSaRead,
    /// The owner, calling with a key scoped to the role `read`.
    OwnerScopedRead,
    /// The owner, calling with a key scoped to `namespace:n:admin`.
    OwnerScopedNsAdmin,
    /// An admin service account, calling with a key scoped to the role `read`.
    SaAdminScopedRead,
}

const CALLERS: [Caller; 15] = [
    Caller::Owner,
    Caller::Admin,
    Caller::Developer,
    Caller::Read,
    Caller::ReadNsAdmin,
    Caller::DeveloperNsAdmin,
    Caller::SaAdmin,
    Caller::SaDeveloper,
    Caller::SaRead,
    Caller::NsSaAdmin,
    Caller::NsSaWrite,
    Caller::NsSaRead,
    Caller::OwnerScopedRead,
    Caller::OwnerScopedNsAdmin,
    Caller::SaAdminScopedRead,
];

/// Whose key an operation is about (columns of the key table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    /// One of the caller's own identity's keys (not the one it calls with).
    Own,
    /// A key of another user (a developer).
    OtherUser,
    /// A key of an account-scoped service account (a developer).
    AccountSa,
    /// A key of another service account bound to namespace `n`.
    NsSaOfN,
    /// A key of a service account bound to namespace `m`.
    NsSaOfM,
}

const TARGETS: [Target; 5] = [Target::Own, Target::OtherUser, Target::AccountSa, Target::NsSaOfN, Target::NsSaOfM];

/// Rows of the key table, in the order of the letters in `KEY_TABLE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    Rotate,
    Read,
    Update,
    Enable,
    Disable,
    Lock,
    Unlock,
    Delete,
}

const OPS: [Op; 9] =
    [Op::Create, Op::Rotate, Op::Read, Op::Update, Op::Enable, Op::Disable, Op::Lock, Op::Unlock, Op::Delete];

/// What a cell answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// `A`: allowed, and it happened.
    Allowed,
    /// `N`: refused as not found (the caller may not see the key); nothing changed.
    NotFound,
    /// `P`: refused as permission denied (it may see it, not change it); nothing changed.
    Denied,
}

fn letters(row: &str) -> Vec<Want> {
    row.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            'A' => Want::Allowed,
            'N' => Want::NotFound,
            'P' => Want::Denied,
            other => panic!("bad letter {other:?} in a table"),
        })
        .collect()
}

/// domain.md's key table, one row per caller; per target the letters for
/// `create rotate read | update enable disable lock unlock | delete`.
///
/// Notes on reading domain.md: a service account may create and rotate its own keys
/// ("self-rotation"); only a *user* holding `admin` on `n` is a namespace admin; creating a key
/// for an identity the caller may not manage names an identity, not a key, so it is `P`, while
/// every other refused operation on a key the caller may not see is `N`. Nobody creates or
/// rotates a key of another user ("a person's keys are minted only by that person"): `P` for
/// those who may see the key, `N` for the rest.
#[rustfmt::skip]
const KEY_TABLE: [(Caller, [&str; 5]); 15] = [
    //                          own               other user        account SA        ns SA of n        ns SA of m
    (Caller::Owner,              ["AAA AAAAA A",   "PPA AAAAA A",   "AAA AAAAA A",   "AAA AAAAA A",   "AAA AAAAA A"]),
    (Caller::Admin,              ["AAA AAAAA A",   "PPA AAAAA A",   "AAA AAAAA A",   "AAA AAAAA A",   "AAA AAAAA A"]),
    (Caller::Developer,          ["AAA AAAAA A",   "PNN NNNNN N",   "PNN NNNNN N",   "PNN NNNNN N",   "PNN NNNNN N"]),
    (Caller::Read,               ["AAA AAAAA A",   "PNN NNNNN N",   "PNN NNNNN N",   "PNN NNNNN N",   "PNN NNNNN N"]),
    (Caller::ReadNsAdmin,        ["AAA AAAAA A",   "PNN NNNNN N",   "PNN NNNNN N",   "AAA AAAAA A",   "PNN NNNNN N"]),
    (Caller::DeveloperNsAdmin,   ["AAA AAAAA A",   "PNN NNNNN N",   "PNN NNNNN N",   "AAA AAAAA A",   "PNN NNNNN N"]),
    (Caller::SaAdmin,            ["AAA AAAAA A",   "PPA AAAAA A",   "AAA AAAAA A",   "AAA AAAAA A",   "AAA AAAAA A"]),
    (Caller::SaDeveloper,        ["AAA PPPPP P",   "PNN NNNNN N",   "PNN NNNNN N",   "PNN NNNNN N",   "PNN NNNNN N"]),
    (Caller::SaRead,             ["AAA PPPPP P",   "PNN NNNNN N",   "PNN NNNNN N",   "PNN NNNNN N",   "PNN NNNNN N"]),
    (Caller::NsSaAdmin,          ["AAA PPPPP P",   "PNN NNNNN N",   "PNN NNNNN N",   "PNN NNNNN N",   "PNN NNNNN N"]),
    (Caller::NsSaWrite,          ["AAA PPPPP P",   "PNN NNNNN N",   "PNN NNNNN N",   "PNN NNNNN N",   "PNN NNNNN N"]),
    (Caller::NsSaRead,           ["AAA PPPPP P",   "PNN NNNNN N",   "PNN NNNNN N",   "PNN NNNNN N",   "PNN NNNNN N"]),
    (Caller::OwnerScopedRead,    ["AAA AAAAA A",   "PNN NNNNN N",   "PNN NNNNN N",   "PNN NNNNN N",   "PNN NNNNN N"]),
    (Caller::OwnerScopedNsAdmin, ["AAA AAAAA A",   "PNN NNNNN N",   "PNN NNNNN N",   "AAA AAAAA A",   "PNN NNNNN N"]),
    (Caller::SaAdminScopedRead,  ["AAA PPPPP P",   "PNN NNNNN N",   "PNN NNNNN N",   "PNN NNNNN N",   "PNN NNNNN N"]),
];

/// One caller: its identity, the key it calls with (and that key's scope), and another key of
/// the same identity (same scope) to be the target of "own keys".
#[derive(Debug, Clone)]
struct Who {
    identity: Owner,
    key: KeyId,
    secret: SecretToken,
    scope: Option<Scope>,
    own: KeyId,
}

/// The victims of the non-own columns, in `default` and in `acme`.
#[derive(Debug, Clone)]
struct Victims {
    user: (Owner, KeyId),
    account_sa: (Owner, KeyId),
    ns_sa_n: (Owner, KeyId),
    ns_sa_m: (Owner, KeyId),
}

/// `default` with namespaces `n` and `m`, one identity per caller kind, victims, two more
/// privileged users (for the identity table), and a second account `acme` that has its own
/// namespace `n` and identities of every kind.
#[derive(Debug, Clone)]
struct Cast {
    world: World,
    callers: BTreeMap<Caller, Who>,
    victims: Victims,
    owner2: UserId,
    admin2: UserId,
    acme: OtherAccount,
    /// acme's keys of every column: its owner's (second) key, a user's, an account SA's and
    /// a namespace `n` SA's.
    acme_targets: Vec<(Owner, KeyId)>,
}

fn ns(name: &str, level: Level) -> Scope {
    Scope::Namespaces(BTreeMap::from([(name.to_string(), level)]))
}

impl Cast {
    fn new() -> Cast {
        let mut w = World::bootstrap(7001);
        w.new_namespace("n");
        w.new_namespace("m");
        let mut callers = BTreeMap::new();

        let owner = Owner::User(w.owner);
        let (own, _) = w.key_for(owner, "owner own", None);
        let secret = w.owner_secret.clone();
        callers.insert(Caller::Owner, Who { identity: owner, key: w.owner_key, secret, scope: None, own });

        let users = [
            (Caller::Admin, Role::Admin, false),
            (Caller::Developer, Role::Developer, false),
            (Caller::Read, Role::Read, false),
            (Caller::ReadNsAdmin, Role::Read, true),
            (Caller::DeveloperNsAdmin, Role::Developer, true),
        ];
        for (caller, role, ns_admin) in users {
            let id = w.new_user(&format!("{caller:?}"), role);
            if ns_admin {
                let command = Command::SetUserNamespace { user: id, namespace: "n".into(), level: Some(Level::Admin) };
                assert_eq!(w.owner_does(command), Ok(1));
            }
            let identity = Owner::User(id);
            let (key, secret) = w.key_for(identity, "calling", None);
            let (own, _) = w.key_for(identity, "own", None);
            callers.insert(caller, Who { identity, key, secret, scope: None, own });
        }

        let service_accounts = [
            (Caller::SaAdmin, Binding::Account(Role::Admin)),
            (Caller::SaDeveloper, Binding::Account(Role::Developer)),
            (Caller::SaRead, Binding::Account(Role::Read)),
            (Caller::NsSaAdmin, in_namespace("n", Level::Admin)),
            (Caller::NsSaWrite, in_namespace("n", Level::Write)),
            (Caller::NsSaRead, in_namespace("n", Level::Read)),
        ];
        for (caller, binding) in service_accounts {
            let identity = Owner::ServiceAccount(w.new_service_account(&format!("{caller:?}"), binding));
            let (key, secret) = w.key_for(identity, "calling", None);
            let (own, _) = w.key_for(identity, "own", None);
            callers.insert(caller, Who { identity, key, secret, scope: None, own });
        }

        let scoped = [
            (Caller::OwnerScopedRead, Caller::Owner, Scope::Role(Role::Read)),
            (Caller::OwnerScopedNsAdmin, Caller::Owner, ns("n", Level::Admin)),
            (Caller::SaAdminScopedRead, Caller::SaAdmin, Scope::Role(Role::Read)),
        ];
        for (caller, of, scope) in scoped {
            let identity = callers[&of].identity;
            let (key, secret) = w.key_for(identity, "scoped calling", Some(scope.clone()));
            let (own, _) = w.key_for(identity, "scoped own", Some(scope.clone()));
            callers.insert(caller, Who { identity, key, secret, scope: Some(scope), own });
        }
        assert_eq!(callers.len(), CALLERS.len());

        let victim = |w: &mut World, identity: Owner| (identity, w.key_for(identity, "victim", None).0);
        let user = Owner::User(w.new_user("victim", Role::Developer));
        let account_sa = Owner::ServiceAccount(w.new_service_account("victim-sa", Binding::Account(Role::Developer)));
        let ns_sa_n = Owner::ServiceAccount(w.new_service_account("victim-n", in_namespace("n", Level::Write)));
        let ns_sa_m = Owner::ServiceAccount(w.new_service_account("victim-m", in_namespace("m", Level::Write)));
        let victims = Victims {
            user: victim(&mut w, user),
            account_sa: victim(&mut w, account_sa),
            ns_sa_n: victim(&mut w, ns_sa_n),
            ns_sa_m: victim(&mut w, ns_sa_m),
        };
        let owner2 = w.new_user("owner2", Role::Owner);
        let admin2 = w.new_user("admin2", Role::Admin);

        // acme, with a namespace of the same name and identities of every column.
        let acme = w.new_account("acme");
        let by = acme.owner_key;
        assert_eq!(w.as_key(by, Command::CreateNamespace { name: "n".into() }), Ok(1));
        let mut acme_targets = Vec::new();
        let acme_owner = Owner::User(acme.owner);
        acme_targets.push((acme_owner, w.key_by(by, None, "acme own", None).unwrap().0));
        let acme_user = UserId::generate(w.now, &mut w.rng);
        let command = Command::CreateUser { id: acme_user, name: "victim".into(), role: Role::Developer };
        assert_eq!(w.as_key(by, command), Ok(1));
        let bindings = [Binding::Account(Role::Developer), in_namespace("n", Level::Write)];
        let mut acme_identities = vec![Owner::User(acme_user)];
        for (i, binding) in bindings.into_iter().enumerate() {
            let id = ServiceAccountId::generate(w.now, &mut w.rng);
            let command = Command::CreateServiceAccount { id, name: format!("acme-sa-{i}"), binding };
            assert_eq!(w.as_key(by, command), Ok(1));
            acme_identities.push(Owner::ServiceAccount(id));
        }
        for identity in acme_identities {
            let key = match identity {
                Owner::User(user) => {
                    let code = w.issue_code(by, user).unwrap();
                    w.enroll(&code, "acme victim", None).unwrap().0
                }
                Owner::ServiceAccount(_) => w.key_by(by, Some(identity), "acme victim", None).unwrap().0,
            };
            acme_targets.push((identity, key));
        }

        Cast { world: w, callers, victims, owner2, admin2, acme, acme_targets }
    }

    fn target(&self, caller: Caller, target: Target) -> (Owner, KeyId) {
        let who = &self.callers[&caller];
        match target {
            Target::Own => (who.identity, who.own),
            Target::OtherUser => self.victims.user,
            Target::AccountSa => self.victims.account_sa,
            Target::NsSaOfN => self.victims.ns_sa_n,
            Target::NsSaOfM => self.victims.ns_sa_m,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Running one cell
// ---------------------------------------------------------------------------------------

fn want_of_refusal(refusal: Refusal) -> Want {
    match refusal {
        Refusal::Hidden => Want::NotFound,
        Refusal::Forbidden => Want::Denied,
    }
}

/// Performs `op` with key `caller` (of identity `identity`, scope `scope`) on key `target`
/// (owned by `target_owner`) in a copy of `base`; returns what happened, having checked that an
/// accepted operation had its effect and a refused one changed nothing (`World::execute`).
fn perform(
    base: &World,
    caller: KeyId,
    scope: Option<&Scope>,
    op: Op,
    target: KeyId,
    target_owner: Owner,
    target_account_owner_key: KeyId,
) -> Result<Want, String> {
    let mut w = base.clone();
    let own = w.state.key(&caller).unwrap().owner == target_owner;
    if op == Op::Read {
        let principal = w.principal_of(caller);
        let record = w.state.key(&target).unwrap();
        return Ok(match w.state.authorize_key(&principal, record, KeyAction::Read) {
            Ok(()) => Want::Allowed,
            Err(refusal) => want_of_refusal(refusal),
        });
    }
    // Set the target up so that the operation, if allowed, changes something.
    match op {
        Op::Enable => assert_eq!(w.as_key(target_account_owner_key, Command::DisableKey(target)), Ok(1)),
        Op::Unlock => assert_eq!(w.as_key(target_account_owner_key, Command::LockKey(target)), Ok(1)),
        _ => {}
    }
    let mut created = None;
    let command = match op {
        Op::Create => {
            // For itself: with its own scope (a key can't mint a wider one); for others: unscoped.
            let (owner, scope) = if own { (None, scope.cloned()) } else { (Some(target_owner), None) };
            let (key, _) = w.new_key_for(owner, "made", scope);
            created = Some(key.id);
            Command::CreateKey(key)
        }
        Op::Rotate => {
            let (key, _) = w.new_key_for(None, "ignored", None);
            created = Some(key.id);
            Command::RotateKey { key: target, new: key, grace: Span(24 * HOUR) }
        }
        Op::Update => {
            Command::UpdateKey { key: target, name: Some("renamed".into()), description: None, if_revision: None }
        }
        Op::Enable => Command::EnableKey(target),
        Op::Disable => Command::DisableKey(target),
        Op::Lock => Command::LockKey(target),
        Op::Unlock => Command::UnlockKey(target),
        Op::Delete => Command::DeleteKey(target),
        Op::Read => unreachable!(),
    };
    match w.as_key(caller, command) {
        Ok(events) => {
            let record = w.state.key(&target).unwrap();
            let effect = match op {
                Op::Create | Op::Rotate => {
                    let new = w.state.key(&created.unwrap()).ok_or("no new key")?;
                    new.owner == target_owner && (op == Op::Create || record.replaced_by == Some(new.id))
                }
                Op::Update => record.name == "renamed",
                Op::Enable => record.state == keyledger_model::KeyState::Enabled,
                Op::Disable => record.state == keyledger_model::KeyState::Disabled,
                Op::Lock => record.locked,
                Op::Unlock => !record.locked,
                Op::Delete => record.state == keyledger_model::KeyState::Deleted,
                Op::Read => unreachable!(),
            };
            if events == 0 || !effect {
                return Err(format!("accepted with {events} events but without its effect"));
            }
            Ok(Want::Allowed)
        }
        Err(r) if r.code == RejectCode::NotFound => Ok(Want::NotFound),
        Err(r) if r.code == RejectCode::PermissionDenied => Ok(Want::Denied),
        Err(r) => Err(format!("refused with an unexpected code: {r}")),
    }
}

// ---------------------------------------------------------------------------------------
// The key table
// ---------------------------------------------------------------------------------------

#[test]
fn the_key_table_lists_every_caller_target_and_operation() {
    let callers: Vec<Caller> = KEY_TABLE.iter().map(|(c, _)| *c).collect();
    assert_eq!(callers, CALLERS);
    for (caller, row) in KEY_TABLE {
        for cell in row {
            assert_eq!(letters(cell).len(), OPS.len(), "{caller:?}");
        }
    }
}

#[test]
fn every_cell_of_the_key_table() {
    let cast = Cast::new();
    let mut wrong = Vec::new();
    let mut cells = 0;
    for (caller, row) in KEY_TABLE {
        let who = &cast.callers[&caller];
        for (target, cell) in TARGETS.into_iter().zip(row) {
            let (target_owner, target_key) = cast.target(caller, target);
            for (op, want) in OPS.into_iter().zip(letters(cell)) {
                cells += 1;
                let got = perform(
                    &cast.world,
                    who.key,
                    who.scope.as_ref(),
                    op,
                    target_key,
                    target_owner,
                    cast.world.owner_key,
                );
                if got != Ok(want) {
                    wrong.push(format!("{caller:?} {op:?} on {target:?}: want {want:?}, got {got:?}"));
                }
            }
        }
    }
    assert_eq!(cells, CALLERS.len() * TARGETS.len() * OPS.len());
    assert!(wrong.is_empty(), "{} cells differ from domain.md:\n{}", wrong.len(), wrong.join("\n"));
}

/// The API asks `State::authorize_key` before it proposes; it must agree with what apply decides
/// for every key operation (create excepted: it is about an identity, not a key).
#[test]
fn authorize_key_agrees_with_execute() {
    let cast = Cast::new();
    let mut wrong = Vec::new();
    for caller in CALLERS {
        let who = &cast.callers[&caller];
        let principal = cast.world.principal_of(who.key);
        for target in TARGETS {
            let (owner, key) = cast.target(caller, target);
            let record = cast.world.state.key(&key).unwrap();
            for (op, action) in
                [(Op::Rotate, KeyAction::Create), (Op::Disable, KeyAction::Manage), (Op::Delete, KeyAction::Delete)]
            {
                let asked = match cast.world.state.authorize_key(&principal, record, KeyAction::Read) {
                    Err(r) => want_of_refusal(r),
                    Ok(()) => match cast.world.state.authorize_key(&principal, record, action) {
                        Ok(()) => Want::Allowed,
                        Err(r) => want_of_refusal(r),
                    },
                };
                let done = perform(&cast.world, who.key, who.scope.as_ref(), op, key, owner, cast.world.owner_key);
                if done != Ok(asked) {
                    wrong.push(format!("{caller:?} {op:?} on {target:?}: asked {asked:?}, executed {done:?}"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// ---------------------------------------------------------------------------------------
// Nothing crosses accounts
// ---------------------------------------------------------------------------------------

/// A cross-account case: caller name, calling key and its scope, the target (owner, key), and
/// the key of the target account's owner (to prepare the target).
type CrossCase = (String, KeyId, Option<Scope>, (Owner, KeyId), KeyId);

#[test]
fn no_caller_reaches_a_key_of_another_account() {
    let cast = Cast::new();
    let mut wrong = Vec::new();
    // Every caller of `default` against every column of `acme` (including its namespace `n`)…
    let mut pairs: Vec<CrossCase> = Vec::new();
    for caller in CALLERS {
        let who = &cast.callers[&caller];
        for target in &cast.acme_targets {
            pairs.push((format!("{caller:?}"), who.key, who.scope.clone(), *target, cast.acme.owner_key));
        }
    }
    // …and acme's owner against every column of `default`, including default's owner.
    let mut default_targets = vec![(Owner::User(cast.world.owner), cast.callers[&Caller::Owner].own)];
    default_targets.extend([cast.victims.user, cast.victims.account_sa, cast.victims.ns_sa_n, cast.victims.ns_sa_m]);
    for target in default_targets {
        pairs.push(("acme owner".into(), cast.acme.owner_key, None, target, cast.world.owner_key));
    }
    for (name, caller, scope, (owner, key), prep) in pairs {
        for op in OPS {
            let got = perform(&cast.world, caller, scope.as_ref(), op, key, owner, prep);
            if got != Ok(Want::NotFound) {
                wrong.push(format!("{name} {op:?} on {owner:?}: want NotFound, got {got:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_caller_manages_identities_of_another_account() {
    let cast = Cast::new();
    let mut w = cast.world.clone();
    let acme_sa = match cast.acme_targets[2].0 {
        Owner::ServiceAccount(id) => id,
        other => panic!("{other:?}"),
    };
    let acme_owner = cast.acme.owner;
    let commands = [
        Command::SetUserEnabled { user: acme_owner, enabled: false },
        Command::DeleteUser(acme_owner),
        Command::SetUserRole { user: acme_owner, role: Role::Read },
        Command::SetUserNamespace { user: acme_owner, namespace: "n".into(), level: Some(Level::Read) },
        Command::DeleteServiceAccount(acme_sa),
        Command::SetServiceAccountEnabled { service_account: acme_sa, enabled: false },
    ];
    for command in commands {
        assert_eq!(rejected(w.owner_does(command.clone())), RejectCode::NotFound, "{command:?}");
    }
    // A namespace or scope that exists only in acme does not exist in default.
    w.state = cast.world.state.clone();
    let only_in_acme = "acme-only";
    assert_eq!(w.as_key(cast.acme.owner_key, Command::CreateNamespace { name: only_in_acme.into() }), Ok(1));
    let victim = match cast.victims.user.0 {
        Owner::User(id) => id,
        other => panic!("{other:?}"),
    };
    let command = Command::SetUserNamespace { user: victim, namespace: only_in_acme.into(), level: Some(Level::Read) };
    assert_eq!(rejected(w.owner_does(command)), RejectCode::NotFound);
    let id = ServiceAccountId::generate(w.now, &mut w.rng);
    let command =
        Command::CreateServiceAccount { id, name: "x".into(), binding: in_namespace(only_in_acme, Level::Read) };
    assert_eq!(rejected(w.owner_does(command)), RejectCode::InvalidArgument);
    let owner_key = w.owner_key;
    assert_eq!(
        rejected(w.key_by(owner_key, None, "x", Some(ns(only_in_acme, Level::Read)))),
        RejectCode::InvalidArgument
    );
}

#[test]
fn a_key_never_acts_or_verifies_as_anything_in_another_account() {
    let cast = Cast::new();
    let mut w = cast.world.clone();
    let acme = cast.acme.id.clone();
    // A proposal naming the other account, or the other account's owner, with a default key is
    // not authenticated.
    let target = cast.victims.user.1;
    for caller in CALLERS {
        let key = cast.callers[&caller].key;
        let mut proposal = w.proposal(w.actor_of(key), Command::DisableKey(target));
        proposal.account = acme.clone();
        assert_eq!(rejected(w.run(&proposal)), RejectCode::Unauthenticated, "{caller:?}");
        let actor = Actor::User { id: cast.acme.owner, key };
        let mut proposal = w.proposal(actor, Command::DisableKey(cast.acme_targets[0].1));
        proposal.account = acme.clone();
        assert_eq!(rejected(w.run(&proposal)), RejectCode::Unauthenticated, "{caller:?}");
    }
    // Verification names the key's own account and identity, whatever is asked.
    let default = AccountId::default_account();
    for caller in CALLERS {
        let who = &cast.callers[&caller];
        match w.state.verify(who.secret.expose(), w.now, Some(&perm("namespace:n:read"))) {
            Verdict::Valid(v) | Verdict::Forbidden(v) => {
                assert_eq!(v.account(), &default, "{caller:?}");
                assert_eq!(v.owner, who.identity, "{caller:?}");
                assert_eq!(v.key, who.key, "{caller:?}");
            }
            other => panic!("{caller:?}: {other:?}"),
        }
    }
    match w.state.verify(cast.acme.owner_secret.expose(), w.now, None) {
        Verdict::Valid(v) => {
            assert_eq!(v.account(), &acme);
            assert_eq!(v.owner, Owner::User(cast.acme.owner));
            assert_eq!(v.identity_name(), "acme-owner");
        }
        other => panic!("{other:?}"),
    }
    // acme's owner cannot create keys for default's identities, nor default's for acme's.
    let acme_key = cast.acme.owner_key;
    assert_eq!(rejected(w.key_by(acme_key, Some(Owner::User(w.owner)), "x", None)), RejectCode::NotFound);
    let owner_key = w.owner_key;
    assert_eq!(rejected(w.key_by(owner_key, Some(Owner::User(cast.acme.owner)), "x", None)), RejectCode::NotFound);
}

// ---------------------------------------------------------------------------------------
// Managing identities, namespaces, settings and accounts
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdOp {
    CreateOwner,
    CreateAdmin,
    CreateDeveloper,
    CreateRead,
    /// The developer victim made owner / admin.
    GrantOwner,
    GrantAdmin,
    /// The second owner made developer; the second admin made developer.
    RemoveOwner,
    RemoveAdmin,
    /// The developer victim made read.
    DeveloperToRead,
    DeleteOwner,
    DeleteAdmin,
    DeleteDeveloper,
    DisableAdmin,
    /// `write` on `n` for the developer victim.
    SetNamespacePermission,
    CreateAccountSa,
    CreateNsSaOfN,
    CreateNsSaOfM,
    DeleteAccountSa,
    DeleteNsSaOfN,
    DeleteNsSaOfM,
    CreateNamespace,
    UpdateSettings,
    CreateAccount,
}

const ID_OPS: [IdOp; 23] = [
    IdOp::CreateOwner,
    IdOp::CreateAdmin,
    IdOp::CreateDeveloper,
    IdOp::CreateRead,
    IdOp::GrantOwner,
    IdOp::GrantAdmin,
    IdOp::RemoveOwner,
    IdOp::RemoveAdmin,
    IdOp::DeveloperToRead,
    IdOp::DeleteOwner,
    IdOp::DeleteAdmin,
    IdOp::DeleteDeveloper,
    IdOp::DisableAdmin,
    IdOp::SetNamespacePermission,
    IdOp::CreateAccountSa,
    IdOp::CreateNsSaOfN,
    IdOp::CreateNsSaOfM,
    IdOp::DeleteAccountSa,
    IdOp::DeleteNsSaOfN,
    IdOp::DeleteNsSaOfM,
    IdOp::CreateNamespace,
    IdOp::UpdateSettings,
    IdOp::CreateAccount,
];

/// Letters in `ID_OPS` order: `create owner/admin/developer/read user | grant owner, grant
/// admin, remove owner, remove admin, developer→read | delete owner/admin/developer, disable
/// admin | namespace permission | create account/n/m SA | delete account/n/m SA | namespace,
/// settings | account`.
#[rustfmt::skip]
const IDENTITY_TABLE: [(Caller, &str); 15] = [
    (Caller::Owner,              "AAAA AAAAA AAAA A AAA AAA AA A"),
    (Caller::Admin,              "PPAA PPPPA PPAP A AAA AAA AA P"),
    (Caller::Developer,          "PPPP PPPPP PPPP P PPP PPP PP P"),
    (Caller::Read,               "PPPP PPPPP PPPP P PPP PPP PP P"),
    (Caller::ReadNsAdmin,        "PPPP PPPPP PPPP P PAP PAP PP P"),
    (Caller::DeveloperNsAdmin,   "PPPP PPPPP PPPP P PAP PAP PP P"),
    (Caller::SaAdmin,            "PPAA PPPPA PPAP A AAA AAA AA P"),
    (Caller::SaDeveloper,        "PPPP PPPPP PPPP P PPP PPP PP P"),
    (Caller::SaRead,             "PPPP PPPPP PPPP P PPP PPP PP P"),
    (Caller::NsSaAdmin,          "PPPP PPPPP PPPP P PPP PPP PP P"),
    (Caller::NsSaWrite,          "PPPP PPPPP PPPP P PPP PPP PP P"),
    (Caller::NsSaRead,           "PPPP PPPPP PPPP P PPP PPP PP P"),
    (Caller::OwnerScopedRead,    "PPPP PPPPP PPPP P PPP PPP PP P"),
    (Caller::OwnerScopedNsAdmin, "PPPP PPPPP PPPP P PAP PAP PP P"),
    (Caller::SaAdminScopedRead,  "PPPP PPPPP PPPP P PPP PPP PP P"),
];

fn user_of(owner: Owner) -> UserId {
    match owner {
        Owner::User(id) => id,
        other => panic!("not a user: {other:?}"),
    }
}

fn sa_of(owner: Owner) -> ServiceAccountId {
    match owner {
        Owner::ServiceAccount(id) => id,
        other => panic!("not a service account: {other:?}"),
    }
}

fn identity_command(cast: &Cast, w: &mut World, op: IdOp) -> Command {
    let victim = user_of(cast.victims.user.0);
    let now = w.now;
    let mut user =
        |name: &str, role| Command::CreateUser { id: UserId::generate(now, &mut w.rng), name: name.into(), role };
    match op {
        IdOp::CreateOwner => user("new-owner", Role::Owner),
        IdOp::CreateAdmin => user("new-admin", Role::Admin),
        IdOp::CreateDeveloper => user("new-developer", Role::Developer),
        IdOp::CreateRead => user("new-read", Role::Read),
        IdOp::GrantOwner => Command::SetUserRole { user: victim, role: Role::Owner },
        IdOp::GrantAdmin => Command::SetUserRole { user: victim, role: Role::Admin },
        IdOp::RemoveOwner => Command::SetUserRole { user: cast.owner2, role: Role::Developer },
        IdOp::RemoveAdmin => Command::SetUserRole { user: cast.admin2, role: Role::Developer },
        IdOp::DeveloperToRead => Command::SetUserRole { user: victim, role: Role::Read },
        IdOp::DeleteOwner => Command::DeleteUser(cast.owner2),
        IdOp::DeleteAdmin => Command::DeleteUser(cast.admin2),
        IdOp::DeleteDeveloper => Command::DeleteUser(victim),
        IdOp::DisableAdmin => Command::SetUserEnabled { user: cast.admin2, enabled: false },
        IdOp::SetNamespacePermission => {
            Command::SetUserNamespace { user: victim, namespace: "n".into(), level: Some(Level::Write) }
        }
        IdOp::CreateAccountSa | IdOp::CreateNsSaOfN | IdOp::CreateNsSaOfM => {
            let binding = match op {
                IdOp::CreateAccountSa => Binding::Account(Role::Read),
                IdOp::CreateNsSaOfN => in_namespace("n", Level::Read),
                _ => in_namespace("m", Level::Read),
            };
            Command::CreateServiceAccount {
                id: ServiceAccountId::generate(now, &mut w.rng),
                name: "new-sa".into(),
                binding,
            }
        }
        IdOp::DeleteAccountSa => Command::DeleteServiceAccount(sa_of(cast.victims.account_sa.0)),
        IdOp::DeleteNsSaOfN => Command::DeleteServiceAccount(sa_of(cast.victims.ns_sa_n.0)),
        IdOp::DeleteNsSaOfM => Command::DeleteServiceAccount(sa_of(cast.victims.ns_sa_m.0)),
        IdOp::CreateNamespace => Command::CreateNamespace { name: "fresh".into() },
        IdOp::UpdateSettings => {
            Command::UpdateSettings(SettingsPatch { key_creation_enabled: Some(false), ..Default::default() })
        }
        IdOp::CreateAccount => Command::CreateAccountWithEnrollment {
            account: AccountId::new("fresh").unwrap(),
            owner: UserId::generate(now, &mut w.rng),
            owner_name: "fresh-owner".into(),
            code: token::generate_enrollment_code(&mut w.rng).digest(),
        },
    }
}

#[test]
fn the_identity_table_lists_every_caller_and_operation() {
    let callers: Vec<Caller> = IDENTITY_TABLE.iter().map(|(c, _)| *c).collect();
    assert_eq!(callers, CALLERS);
    for (caller, row) in IDENTITY_TABLE {
        assert_eq!(letters(row).len(), ID_OPS.len(), "{caller:?}");
        assert!(!letters(row).contains(&Want::NotFound), "identity refusals inside the account are 403s");
    }
}

#[test]
fn every_cell_of_the_identity_table() {
    let cast = Cast::new();
    let mut wrong = Vec::new();
    for (caller, row) in IDENTITY_TABLE {
        let key = cast.callers[&caller].key;
        for (op, want) in ID_OPS.into_iter().zip(letters(row)) {
            let mut w = cast.world.clone();
            let command = identity_command(&cast, &mut w, op);
            let got = match w.as_key(key, command) {
                Ok(0) => Err("accepted without an event".to_string()),
                Ok(_) => Ok(Want::Allowed),
                Err(r) if r.code == RejectCode::PermissionDenied => Ok(Want::Denied),
                Err(r) if r.code == RejectCode::NotFound => Ok(Want::NotFound),
                Err(r) => Err(format!("unexpected refusal {r}")),
            };
            if got != Ok(want) {
                wrong.push(format!("{caller:?} {op:?}: want {want:?}, got {got:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{} cells differ from domain.md:\n{}", wrong.len(), wrong.join("\n"));
}

#[test]
fn a_service_account_never_holds_the_owner_role() {
    let cast = Cast::new();
    for caller in [Caller::Owner, Caller::Admin, Caller::SaAdmin] {
        let mut w = cast.world.clone();
        let id = ServiceAccountId::generate(w.now, &mut w.rng);
        let command = Command::CreateServiceAccount { id, name: "root".into(), binding: Binding::Account(Role::Owner) };
        let code = rejected(w.as_key(cast.callers[&caller].key, command));
        assert!(matches!(code, RejectCode::InvalidArgument | RejectCode::PermissionDenied), "{caller:?}: {code:?}");
        assert!(w.state.service_account(&id).is_none());
    }
    // Nor does a key scoped to `owner` lift a service account above its role.
    let mut w = cast.world.clone();
    let sa = cast.callers[&Caller::SaAdmin].identity;
    let (key, _) = w.key_for(sa, "owner-scoped", Some(Scope::Role(Role::Owner)));
    assert_eq!(w.principal_of(key).role, Some(Role::Admin));
    let command = Command::SetUserRole { user: user_of(cast.victims.user.0), role: Role::Admin };
    assert_eq!(rejected(w.as_key(key, command)), RejectCode::PermissionDenied);
}

#[test]
fn a_namespace_admin_manages_service_accounts_of_its_own_namespace_only() {
    let cast = Cast::new();
    let mut w = cast.world.clone();
    let key = cast.callers[&Caller::ReadNsAdmin].key;
    let id = ServiceAccountId::generate(w.now, &mut w.rng);
    let command = Command::CreateServiceAccount { id, name: "worker".into(), binding: in_namespace("n", Level::Admin) };
    assert_eq!(w.as_key(key, command), Ok(1));
    // It can make keys for it, and delete it again.
    let worker = Owner::ServiceAccount(id);
    let (_, worker_secret) = w.key_by(key, Some(worker), "worker key", None).unwrap();
    assert!(matches!(
        w.state.verify(worker_secret.expose(), w.now, Some(&perm("namespace:n:admin"))),
        Verdict::Valid(_)
    ));
    assert_eq!(w.as_key(key, Command::DeleteServiceAccount(id)), Ok(1));
    assert!(matches!(
        w.state.verify(worker_secret.expose(), w.now, None),
        Verdict::Invalid(keyledger_model::Invalid::IdentityDisabled)
    ));
    // Not of another namespace, not account-scoped ones.
    for binding in [in_namespace("m", Level::Read), Binding::Account(Role::Read)] {
        let id = ServiceAccountId::generate(w.now, &mut w.rng);
        let command = Command::CreateServiceAccount { id, name: "other".into(), binding };
        assert_eq!(rejected(w.as_key(key, command)), RejectCode::PermissionDenied);
    }
    for victim in [cast.victims.ns_sa_m.0, cast.victims.account_sa.0] {
        assert_eq!(rejected(w.as_key(key, Command::DeleteServiceAccount(sa_of(victim)))), RejectCode::PermissionDenied);
    }
    // Once the namespace permission is taken away, not even in `n`.
    let me = user_of(cast.callers[&Caller::ReadNsAdmin].identity);
    let command = Command::SetUserNamespace { user: me, namespace: "n".into(), level: None };
    assert_eq!(w.owner_does(command), Ok(1));
    let command = Command::DeleteServiceAccount(sa_of(cast.victims.ns_sa_n.0));
    assert_eq!(rejected(w.as_key(key, command)), RejectCode::PermissionDenied);
}

// ---------------------------------------------------------------------------------------
// Scopes: a key does no more than its scope, and mints nothing wider than itself
// ---------------------------------------------------------------------------------------

#[test]
fn a_key_scoped_to_read_acts_as_a_read_user() {
    let cast = Cast::new();
    let mut w = cast.world.clone();
    let key = cast.callers[&Caller::OwnerScopedRead].key;
    assert_eq!(w.principal_of(key).role, Some(Role::Read));
    let victim_key = cast.victims.user.1;
    let victim = user_of(cast.victims.user.0);
    assert_eq!(rejected(w.as_key(key, Command::DisableKey(victim_key))), RejectCode::NotFound);
    assert_eq!(rejected(w.as_key(key, Command::DeleteKey(victim_key))), RejectCode::NotFound);
    assert_eq!(rejected(w.key_by(key, Some(Owner::User(victim)), "x", None)), RejectCode::PermissionDenied);
    let id = UserId::generate(w.now, &mut w.rng);
    let command = Command::CreateUser { id, name: "someone".into(), role: Role::Read };
    assert_eq!(rejected(w.as_key(key, command)), RejectCode::PermissionDenied);
    assert_eq!(rejected(w.as_key(key, Command::CreateNamespace { name: "x".into() })), RejectCode::PermissionDenied);
    let patch = SettingsPatch { key_creation_enabled: Some(false), ..Default::default() };
    assert_eq!(rejected(w.as_key(key, Command::UpdateSettings(patch))), RejectCode::PermissionDenied);
    // The same owner's unscoped key does all of it.
    assert_eq!(w.owner_does(Command::DisableKey(victim_key)), Ok(1));
    // A developer's key scoped to `admin` is still a developer's.
    let dev = cast.callers[&Caller::Developer].identity;
    let (dev_admin, _) = w.key_for(dev, "wishful", Some(Scope::Role(Role::Admin)));
    assert_eq!(w.principal_of(dev_admin).role, Some(Role::Developer));
    assert_eq!(rejected(w.as_key(dev_admin, Command::EnableKey(victim_key))), RejectCode::NotFound);
}

#[test]
fn a_key_cannot_mint_a_key_wider_than_itself() {
    let cast = Cast::new();
    let mut w = cast.world.clone();
    let owner = Owner::User(w.owner);
    let (dev_scoped, _) = w.key_for(owner, "dev-scoped", Some(Scope::Role(Role::Developer)));
    let (ns_scoped, _) = w.key_for(owner, "n-write", Some(ns("n", Level::Write)));
    let cases: [(KeyId, Option<Scope>, bool); 10] = [
        (dev_scoped, None, false),
        (dev_scoped, Some(Scope::Role(Role::Owner)), false),
        (dev_scoped, Some(Scope::Role(Role::Admin)), false),
        (dev_scoped, Some(Scope::Role(Role::Developer)), true),
        (dev_scoped, Some(Scope::Role(Role::Read)), true),
        (ns_scoped, None, false),
        (ns_scoped, Some(ns("n", Level::Admin)), false),
        (ns_scoped, Some(ns("m", Level::Read)), false),
        (ns_scoped, Some(Scope::Role(Role::Read)), false),
        (ns_scoped, Some(ns("n", Level::Read)), true),
    ];
    for (by, scope, ok) in cases {
        let mut attempt = w.clone();
        let result = attempt.key_by(by, None, "minted", scope.clone());
        if ok {
            assert!(result.is_ok(), "{scope:?}: {result:?}");
        } else {
            assert_eq!(rejected(result), RejectCode::PermissionDenied, "{scope:?}");
        }
    }
    // For another identity too: a developer-scoped key of the owner is no account admin.
    let sa_admin = cast.callers[&Caller::SaAdmin].identity;
    assert_eq!(rejected(w.key_by(dev_scoped, Some(sa_admin), "x", None)), RejectCode::PermissionDenied);
    // Rotating an unscoped key with a narrower key would mint a wider one.
    let (wide, _) = w.key_for(owner, "wide", None);
    let (new, _) = w.new_key_for(None, "r", None);
    let command = Command::RotateKey { key: wide, new, grace: Span(HOUR) };
    assert_eq!(rejected(w.as_key(dev_scoped, command)), RejectCode::PermissionDenied);
    assert!(w.state.key(&wide).unwrap().replaced_by.is_none());
}

// ---------------------------------------------------------------------------------------
// Rank: every caller rank × operation × target rank, against an oracle from domain.md
// ---------------------------------------------------------------------------------------

/// A rank as domain.md words it: `owner` > `admin` > `developer` > `read`, and a
/// namespace-scoped service account (or a key scoped to namespaces only) below `developer` —
/// here below `read` too, as it holds nothing account-wide.
fn rank_of(role: Option<Role>) -> u8 {
    match role {
        Some(Role::Owner) => 4,
        Some(Role::Admin) => 3,
        Some(Role::Developer) => 2,
        Some(Role::Read) => 1,
        None => 0,
    }
}

/// What the oracle knows of a caller: written out per caller below, not read from the state.
#[derive(Debug, Clone, Copy)]
struct CallerFacts {
    is_user: bool,
    /// The effective account role: the identity's, narrowed by the calling key's scope.
    role: Option<Role>,
    /// A user holding (effectively) `admin` on namespace `n`.
    admin_of_n: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Own,
    User,
    AccountSa,
    NsSa(&'static str),
}

/// What the oracle knows of a target key: whose it is and how that identity (for its own keys:
/// that key) ranks.
#[derive(Debug, Clone, Copy)]
struct TargetFacts {
    column: Column,
    role: Option<Role>,
}

/// domain.md's words: the key table, then *rank* ("no caller acts on the keys of an identity
/// that outranks it … equal rank is allowed … reading/listing stays as the table says", and
/// "no operation ever hands a caller a credential with more power than its own").
fn oracle(caller: CallerFacts, op: Op, target: TargetFacts) -> Want {
    let account_admin = matches!(caller.role, Some(Role::Owner | Role::Admin));
    let outranked = op != Op::Read && rank_of(target.role) > rank_of(caller.role);
    let may = match target.column {
        // Own keys: create, rotate, read — every identity; the rest — every user, and a
        // service account only with an admin role.
        Column::Own => matches!(op, Op::Create | Op::Rotate | Op::Read) || caller.is_user || account_admin,
        // Another user's keys: nobody creates or rotates them (a person mints its own keys, from
        // an enrollment code); the rest, and an account-scoped service account's keys: owner, admin.
        Column::User if matches!(op, Op::Create | Op::Rotate) => false,
        Column::User | Column::AccountSa => account_admin,
        Column::NsSa(ns) => account_admin || (caller.is_user && caller.admin_of_n && ns == "n"),
    };
    match (may, target.column, op) {
        (true, _, _) if outranked => Want::Denied,
        (true, _, _) => Want::Allowed,
        // Its own keys it sees; refused is refused.
        (false, Column::Own, _) => Want::Denied,
        // Creating names an identity, not a key: no disclosure in refusing it.
        (false, _, Op::Create) => Want::Denied,
        // Rotating another user's key: refused outright to whoever may see the key.
        (false, Column::User, Op::Rotate) if account_admin => Want::Denied,
        (false, _, _) => Want::NotFound,
    }
}

/// A caller of the rank test: the cast's plus keys scoped to `admin` and to `developer`.
struct RankCaller {
    name: String,
    who: Who,
    facts: CallerFacts,
}

/// A target of the rank test other than the caller's own keys.
struct RankTarget {
    name: &'static str,
    owner: Owner,
    key: KeyId,
    facts: TargetFacts,
}

struct RankCast {
    world: World,
    callers: Vec<RankCaller>,
    targets: Vec<RankTarget>,
}

fn rank_cast(cast: &Cast) -> RankCast {
    let mut w = cast.world.clone();
    let user = |role, admin_of_n| CallerFacts { is_user: true, role, admin_of_n };
    let sa = |role| CallerFacts { is_user: false, role, admin_of_n: false };
    let facts = |caller: Caller| match caller {
        Caller::Owner => user(Some(Role::Owner), true),
        Caller::Admin => user(Some(Role::Admin), true),
        Caller::Developer => user(Some(Role::Developer), false),
        Caller::Read => user(Some(Role::Read), false),
        Caller::ReadNsAdmin => user(Some(Role::Read), true),
        Caller::DeveloperNsAdmin => user(Some(Role::Developer), true),
        Caller::SaAdmin => sa(Some(Role::Admin)),
        Caller::SaDeveloper => sa(Some(Role::Developer)),
        Caller::SaRead => sa(Some(Role::Read)),
        Caller::NsSaAdmin | Caller::NsSaWrite | Caller::NsSaRead => sa(None),
        Caller::OwnerScopedRead => user(Some(Role::Read), false),
        Caller::OwnerScopedNsAdmin => user(None, true),
        Caller::SaAdminScopedRead => sa(Some(Role::Read)),
    };
    let mut callers: Vec<RankCaller> = CALLERS
        .iter()
        .map(|c| RankCaller { name: format!("{c:?}"), who: cast.callers[c].clone(), facts: facts(*c) })
        .collect();
    let scoped = [
        ("OwnerScopedAdmin", Caller::Owner, Role::Admin, user(Some(Role::Admin), true)),
        ("AdminScopedDeveloper", Caller::Admin, Role::Developer, user(Some(Role::Developer), false)),
        ("SaAdminScopedDeveloper", Caller::SaAdmin, Role::Developer, sa(Some(Role::Developer))),
    ];
    for (name, of, role, facts) in scoped {
        let identity = cast.callers[&of].identity;
        let scope = Scope::Role(role);
        let (key, secret) = w.key_for(identity, "scoped calling", Some(scope.clone()));
        let (own, _) = w.key_for(identity, "scoped own", Some(scope.clone()));
        callers.push(RankCaller {
            name: name.into(),
            who: Who { identity, key, secret, scope: Some(scope), own },
            facts,
        });
    }

    let target = |name, owner, key, column, role| RankTarget { name, owner, key, facts: TargetFacts { column, role } };
    let mut targets = Vec::new();
    let owner2 = Owner::User(cast.owner2);
    targets.push(target("owner user", owner2, w.key_for(owner2, "victim", None).0, Column::User, Some(Role::Owner)));
    let admin2 = Owner::User(cast.admin2);
    targets.push(target("admin user", admin2, w.key_for(admin2, "victim", None).0, Column::User, Some(Role::Admin)));
    let (dev, dev_key) = cast.victims.user;
    targets.push(target("developer user", dev, dev_key, Column::User, Some(Role::Developer)));
    let read = Owner::User(w.new_user("read victim", Role::Read));
    targets.push(target("read user", read, w.key_for(read, "victim", None).0, Column::User, Some(Role::Read)));
    let sa_admin = Owner::ServiceAccount(w.new_service_account("victim-admin-sa", Binding::Account(Role::Admin)));
    let key = w.key_for(sa_admin, "victim", None).0;
    targets.push(target("admin SA", sa_admin, key, Column::AccountSa, Some(Role::Admin)));
    let (sa_dev, sa_dev_key) = cast.victims.account_sa;
    targets.push(target("developer SA", sa_dev, sa_dev_key, Column::AccountSa, Some(Role::Developer)));
    let sa_read = Owner::ServiceAccount(w.new_service_account("victim-read-sa", Binding::Account(Role::Read)));
    let key = w.key_for(sa_read, "victim", None).0;
    targets.push(target("read SA", sa_read, key, Column::AccountSa, Some(Role::Read)));
    let (ns_n, ns_n_key) = cast.victims.ns_sa_n;
    targets.push(target("ns SA of n", ns_n, ns_n_key, Column::NsSa("n"), None));
    let (ns_m, ns_m_key) = cast.victims.ns_sa_m;
    targets.push(target("ns SA of m", ns_m, ns_m_key, Column::NsSa("m"), None));
    RankCast { world: w, callers, targets }
}

/// The effective role of one of `identity`'s keys with `scope`, as the oracle reads domain.md.
fn own_key_role(identity_role: Option<Role>, scope: Option<&Scope>) -> Option<Role> {
    let weaker = |a: Role, b: Role| if rank_of(Some(a)) <= rank_of(Some(b)) { a } else { b };
    match scope {
        None => identity_role,
        Some(Scope::Role(r)) => identity_role.map(|i| weaker(i, *r)),
        Some(Scope::Namespaces(_)) => None,
    }
}

#[test]
fn every_rank_cell_matches_the_oracle() {
    let cast = Cast::new();
    let rc = rank_cast(&cast);
    let w = &rc.world;
    let mut wrong = Vec::new();
    let (mut cells, mut refused, mut unauthorized_successes) = (0usize, 0usize, 0usize);
    let mut tally = |got: &Result<Want, String>, want: Want, label: String, wrong: &mut Vec<String>| {
        cells += 1;
        if *got != Ok(Want::Allowed) {
            refused += 1;
        }
        if *got == Ok(Want::Allowed) && want != Want::Allowed {
            unauthorized_successes += 1;
        }
        if *got != Ok(want) {
            wrong.push(format!("{label}: want {want:?}, got {got:?}"));
        }
    };
    for caller in &rc.callers {
        let who = &caller.who;
        // Own keys: one of the same scope, and (for a scoped key) its identity's unscoped one.
        let unscoped_role = match who.identity {
            Owner::User(id) => Some(w.state.user(&id).unwrap().role),
            Owner::ServiceAccount(id) => w.state.service_account(&id).unwrap().role(),
        };
        let mut own_targets = vec![("own key", who.own, who.scope.clone())];
        if who.scope.is_some() {
            let wider = w.state.keys_after(None).find(|k| k.owner == who.identity && k.scope.is_none()).unwrap().id;
            own_targets.push(("own wider key", wider, None));
        }
        for (name, key, scope) in own_targets {
            let facts = TargetFacts { column: Column::Own, role: own_key_role(unscoped_role, scope.as_ref()) };
            for op in OPS {
                let want = oracle(caller.facts, op, facts);
                let got = perform(w, who.key, scope.as_ref(), op, key, who.identity, w.owner_key);
                tally(&got, want, format!("{} {op:?} on {name}", caller.name), &mut wrong);
            }
        }
        for target in &rc.targets {
            for op in OPS {
                let want = oracle(caller.facts, op, target.facts);
                let got = perform(w, who.key, who.scope.as_ref(), op, target.key, target.owner, w.owner_key);
                tally(&got, want, format!("{} {op:?} on {}", caller.name, target.name), &mut wrong);
            }
        }
        // Across accounts: every column of acme is hidden, whatever the rank.
        for (owner, key) in &cast.acme_targets {
            for op in OPS {
                let got = perform(w, who.key, who.scope.as_ref(), op, *key, *owner, cast.acme.owner_key);
                tally(&got, Want::NotFound, format!("{} {op:?} on acme {owner:?}", caller.name), &mut wrong);
            }
        }
    }
    println!("rank cells: {cells} checked, {refused} refused, {unauthorized_successes} unauthorized successes");
    assert!(wrong.is_empty(), "{} cells differ from the oracle:\n{}", wrong.len(), wrong.join("\n"));
    assert_eq!(unauthorized_successes, 0);
    // 18 callers × (own + 9 targets + 4 in acme) × 9 operations, plus the wider own key of the
    // 6 scoped callers.
    assert_eq!(cells, 18 * (1 + 9 + 4) * OPS.len() + 6 * OPS.len());
}

/// The chain of issue #13, cell by cell: an admin (user or service account) can no longer take
/// over the owner through the owner's keys.
#[test]
fn an_admin_cannot_take_over_the_owner_through_keys() {
    let cast = Cast::new();
    let owner = Owner::User(cast.world.owner);
    let owner_key = cast.world.owner_key;
    for caller in [Caller::Admin, Caller::SaAdmin] {
        let mut w = cast.world.clone();
        let by = cast.callers[&caller].key;
        let before = w.state.clone();
        assert_eq!(rejected(w.key_by(by, Some(owner), "mine now", None)), RejectCode::PermissionDenied, "{caller:?}");
        let (new, _) = w.new_key_for(None, "x", None);
        let commands = [
            Command::RotateKey { key: owner_key, new, grace: Span(0) },
            Command::DisableKey(owner_key),
            Command::LockKey(owner_key),
            Command::DeleteKey(owner_key),
            Command::UpdateKey { key: owner_key, name: Some("x".into()), description: None, if_revision: None },
        ];
        for command in commands {
            assert_eq!(rejected(w.as_key(by, command.clone())), RejectCode::PermissionDenied, "{caller:?} {command:?}");
        }
        assert_eq!(w.state, before, "{caller:?}: nothing changed");
        // It still reads the owner's key metadata, as the table says.
        let principal = w.principal_of(by);
        assert_eq!(w.state.authorize_key(&principal, w.state.key(&owner_key).unwrap(), KeyAction::Read), Ok(()));
    }
    // …nor manage the owner user.
    let mut w = cast.world.clone();
    let admin = cast.callers[&Caller::Admin].key;
    for command in [
        Command::SetUserEnabled { user: w.owner, enabled: false },
        Command::DeleteUser(w.owner),
        Command::SetUserRole { user: w.owner, role: Role::Read },
    ] {
        assert_eq!(rejected(w.as_key(admin, command.clone())), RejectCode::PermissionDenied, "{command:?}");
    }
}

#[test]
fn only_an_owner_of_default_creates_accounts() {
    let cast = Cast::new();
    let mut w = cast.world.clone();
    let new_account = |w: &mut World, name: &str| {
        let code = token::generate_enrollment_code(&mut w.rng).digest();
        let owner = UserId::generate(w.now, &mut w.rng);
        Command::CreateAccountWithEnrollment {
            account: AccountId::new(name).unwrap(),
            owner,
            owner_name: "o".into(),
            code,
        }
    };
    let command = new_account(&mut w, "beta");
    assert_eq!(rejected(w.as_key(cast.acme.owner_key, command)), RejectCode::PermissionDenied, "acme's owner");
    let scoped = cast.callers[&Caller::Owner].identity;
    let (admin_scoped, _) = w.key_for(scoped, "owner as admin", Some(Scope::Role(Role::Admin)));
    let command = new_account(&mut w, "beta");
    assert_eq!(rejected(w.as_key(admin_scoped, command)), RejectCode::PermissionDenied, "owner's admin-scoped key");
    let command = new_account(&mut w, "beta");
    assert_eq!(w.owner_does(command), Ok(3));
}

#[test]
fn caps_refuse_one_more_with_limit_exceeded() {
    use keyledger_model::LimitsPatch;
    let cast = Cast::new();
    let mut w = cast.world.clone();
    let live_users = w.state.live_user_count(&AccountId::default_account());
    let live_sas = w.state.live_service_account_count(&AccountId::default_account());
    let namespaces = 2;
    let limits = LimitsPatch {
        max_users: Some(live_users as u32 + 1),
        max_service_accounts: Some(live_sas as u32),
        max_namespaces: Some(namespaces),
        max_accounts: Some(2),
    };
    let command = Command::ChangeSettings { patch: SettingsPatch::default(), limits, action_when_leaked: None };
    assert_eq!(w.owner_does(command), Ok(1), "one limits_changed event");
    w.new_user("one more", Role::Read);
    let id = UserId::generate(w.now, &mut w.rng);
    let command = Command::CreateUser { id, name: "two more".into(), role: Role::Read };
    assert_eq!(rejected(w.owner_does(command)), RejectCode::LimitExceeded);
    let id = ServiceAccountId::generate(w.now, &mut w.rng);
    let command = Command::CreateServiceAccount { id, name: "sa".into(), binding: Binding::Account(Role::Read) };
    assert_eq!(rejected(w.owner_does(command)), RejectCode::LimitExceeded);
    assert_eq!(rejected(w.owner_does(Command::CreateNamespace { name: "third".into() })), RejectCode::LimitExceeded);
    // Default and acme: the cap of 2 accounts is reached.
    let code = token::generate_enrollment_code(&mut w.rng).digest();
    let owner = UserId::generate(w.now, &mut w.rng);
    let command = Command::CreateAccountWithEnrollment {
        account: AccountId::new("gamma").unwrap(),
        owner,
        owner_name: "o".into(),
        code,
    };
    assert_eq!(rejected(w.owner_does(command)), RejectCode::LimitExceeded);
    // A deleted user frees its place.
    let victim = match cast.victims.user.0 {
        Owner::User(id) => id,
        other => panic!("{other:?}"),
    };
    assert_eq!(w.owner_does(Command::DeleteUser(victim)), Ok(1));
    w.new_user("in the freed place", Role::Read);
    // Bounds: 0 and too large are refused with a sentence; acme cannot set the operator's cap.
    for limits in [
        LimitsPatch { max_users: Some(0), ..Default::default() },
        LimitsPatch { max_namespaces: Some(10_001), ..Default::default() },
    ] {
        let command = Command::ChangeSettings { patch: SettingsPatch::default(), limits, action_when_leaked: None };
        assert_eq!(rejected(w.owner_does(command)), RejectCode::InvalidArgument);
    }
    let limits = LimitsPatch { max_accounts: Some(5), ..Default::default() };
    let command = Command::ChangeSettings { patch: SettingsPatch::default(), limits, action_when_leaked: None };
    let mut proposal = w.proposal(w.actor_of(cast.acme.owner_key), command);
    proposal.account = cast.acme.id.clone();
    assert_eq!(rejected(w.run(&proposal)), RejectCode::InvalidArgument);
    // An admin of default changes caps but not the operator's cap on accounts.
    let admin = cast.callers[&Caller::Admin].key;
    let limits = LimitsPatch { max_accounts: Some(5), ..Default::default() };
    let command = Command::ChangeSettings { patch: SettingsPatch::default(), limits, action_when_leaked: None };
    assert_eq!(rejected(w.as_key(admin, command)), RejectCode::PermissionDenied);
    let limits = LimitsPatch { max_namespaces: Some(50), ..Default::default() };
    let command = Command::ChangeSettings { patch: SettingsPatch::default(), limits, action_when_leaked: None };
    assert_eq!(w.as_key(admin, command), Ok(1));
}

#[test]
fn names_refuse_bidi_controls() {
    let cast = Cast::new();
    let mut w = cast.world.clone();
    for bidi in ['\u{061C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}'] {
        let name = format!("adm{bidi}in");
        let id = UserId::generate(w.now, &mut w.rng);
        let refused = w.owner_does(Command::CreateUser { id, name: name.clone(), role: Role::Read }).unwrap_err();
        assert_eq!(refused.code, RejectCode::InvalidArgument);
        assert!(refused.message.contains("bidirectional"), "{refused}");
        let id = ServiceAccountId::generate(w.now, &mut w.rng);
        let command = Command::CreateServiceAccount { id, name: name.clone(), binding: Binding::Account(Role::Read) };
        assert_eq!(rejected(w.owner_does(command)), RejectCode::InvalidArgument);
        let owner_key = w.owner_key;
        assert_eq!(rejected(w.key_by(owner_key, None, &name, None)), RejectCode::InvalidArgument);
        let (mut key, _) = w.new_key_for(None, "fine", None);
        key.description = name.clone();
        assert_eq!(rejected(w.as_key(owner_key, Command::CreateKey(key))), RejectCode::InvalidArgument);
        let command =
            Command::UpdateKey { key: owner_key, name: Some(name.clone()), description: None, if_revision: None };
        assert_eq!(rejected(w.as_key(owner_key, command)), RejectCode::InvalidArgument);
    }
    // Other right-to-left text is a name like any other.
    w.new_user("مدير", Role::Read);
}
