//! Who may see what: the users, service accounts, audit trails and cluster changes a caller
//! may read or reach, beside the write rules of `authz`.
//!
//! The API asks these before it answers; an object a caller may not see is answered as if it
//! did not exist (`404`), a trail or operation it may not read as `403`. Keys are not here:
//! reading a key is a row of the key table (`authz::authorize_key` with `KeyAction::Read`).

use crate::authz::Principal;
use crate::identity::{ServiceAccount, User};
use crate::owner::Owner;

/// May `caller` see `user`? Owners and admins see every user of their account; anyone else
/// only itself.
pub fn may_see_user(caller: &Principal, user: &User) -> bool {
    user.account == caller.account && (caller.is_account_admin() || caller.identity == Owner::User(user.id))
}

/// May `caller` see `sa`? Owners and admins see all of their account's; a user who is admin of
/// a namespace sees those bound to it; a service account sees itself.
pub fn may_see_service_account(caller: &Principal, sa: &ServiceAccount) -> bool {
    sa.account == caller.account
        && (caller.is_account_admin()
            || caller.identity == Owner::ServiceAccount(sa.id)
            || sa.namespace().is_some_and(|ns| caller.is_namespace_admin(ns)))
}

/// May `caller` read its account's audit trail (events, exports, proofs, replays and the live
/// stream)? Its owners and admins.
pub fn may_read_audit_trail(caller: &Principal) -> bool {
    caller.is_account_admin()
}

/// May `caller` read every account's events at once (the `cluster` audit scope)? The cluster
/// operator only.
pub fn may_read_every_account(caller: &Principal) -> bool {
    caller.is_operator()
}

/// May `caller` ask what a key's verdict was at a past moment? Its account's owners and
/// admins: the answer names the event that decided it.
pub fn may_verify_as_of(caller: &Principal) -> bool {
    caller.is_account_admin()
}

/// May `caller` add or remove cluster members? The cluster operator only. (Reading the member
/// list takes only a valid key: it names nodes, nothing of any account.)
pub fn may_change_members(caller: &Principal) -> bool {
    caller.is_operator()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::identity::{Binding, IdentityState};
    use crate::ids::{AccountId, ServiceAccountId, UserId};
    use crate::permissions::{Grant, Level, Role};
    use crate::time::Timestamp;

    fn me() -> UserId {
        UserId::from_bytes([1; 16])
    }

    fn other() -> UserId {
        UserId::from_bytes([2; 16])
    }

    fn account(name: &str) -> AccountId {
        AccountId::new(name).unwrap()
    }

    fn user_caller(account: AccountId, role: Role, namespaces: &[(&str, Level)]) -> Principal {
        let grant = Grant {
            account: Some(role.level()),
            namespaces: namespaces.iter().map(|(n, l)| (n.to_string(), *l)).collect(),
        };
        Principal { account, identity: Owner::User(me()), role: Some(role), grant }
    }

    fn user(id: UserId, account: AccountId) -> User {
        User {
            id,
            account,
            name: "u".into(),
            role: Role::Read,
            namespaces: BTreeMap::new(),
            state: IdentityState::Enabled,
            created_at: Timestamp(0),
        }
    }

    fn service_account(account: AccountId, binding: Binding) -> ServiceAccount {
        // Distinct bindings, distinct ids.
        let id = if matches!(binding, Binding::Account(_)) { [3; 16] } else { [4; 16] };
        ServiceAccount {
            id: ServiceAccountId::from_bytes(id),
            account,
            name: "s".into(),
            binding,
            state: IdentityState::Enabled,
            created_at: Timestamp(0),
        }
    }

    #[test]
    fn admins_see_their_accounts_users_and_others_only_themselves() {
        let a = account("acme");
        let admin = user_caller(a.clone(), Role::Admin, &[]);
        let developer = user_caller(a.clone(), Role::Developer, &[]);
        assert!(may_see_user(&admin, &user(other(), a.clone())));
        assert!(!may_see_user(&admin, &user(other(), account("other"))));
        assert!(may_see_user(&developer, &user(me(), a.clone())));
        assert!(!may_see_user(&developer, &user(other(), a)));
    }

    #[test]
    fn namespace_admins_see_the_service_accounts_bound_there() {
        let a = account("acme");
        let in_p = service_account(a.clone(), Binding::Namespace { namespace: "p".into(), level: Level::Write });
        let account_wide = service_account(a.clone(), Binding::Account(Role::Read));
        let ns_admin = user_caller(a.clone(), Role::Read, &[("p", Level::Admin)]);
        assert!(may_see_service_account(&ns_admin, &in_p));
        assert!(!may_see_service_account(&ns_admin, &account_wide));
        assert!(may_see_service_account(&user_caller(a.clone(), Role::Owner, &[]), &account_wide));
        assert!(!may_see_service_account(&user_caller(account("other"), Role::Owner, &[]), &account_wide));
        let itself =
            Principal { account: a, identity: Owner::ServiceAccount(in_p.id), role: None, grant: in_p.grant() };
        assert!(may_see_service_account(&itself, &in_p));
        assert!(!may_see_service_account(&itself, &account_wide));
    }

    #[test]
    fn the_operator_is_an_owner_of_the_default_account() {
        let operator = user_caller(AccountId::default_account(), Role::Owner, &[]);
        let default_admin = user_caller(AccountId::default_account(), Role::Admin, &[]);
        let other_owner = user_caller(account("acme"), Role::Owner, &[]);
        assert!(may_read_every_account(&operator) && may_change_members(&operator));
        assert!(!may_read_every_account(&default_admin) && !may_change_members(&default_admin));
        assert!(!may_read_every_account(&other_owner) && !may_change_members(&other_owner));
        assert!(may_read_audit_trail(&other_owner) && may_verify_as_of(&other_owner));
        assert!(!may_read_audit_trail(&user_caller(account("acme"), Role::Developer, &[])));
        assert!(!may_verify_as_of(&user_caller(account("acme"), Role::Read, &[])));
    }
}
