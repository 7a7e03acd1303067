//! Identities: users, service accounts and what they are bound to, and a user's open
//! enrollment code.
//!
//! Plain domain types, apart from [`crate::State`] which holds them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{AccountId, ServiceAccountId, UserId};
use crate::permissions::{level_grants, Grant, Level, Permission, Role};
use crate::time::{Span, Timestamp};

/// A user's open enrollment code, known by its digest only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    pub user: UserId,
    pub expires_at: Timestamp,
}

/// The one answer for every code that cannot be redeemed, so it does not say which.
pub const ENROLLMENT_REFUSED: &str = "the enrollment code is not valid (unknown, used, replaced or expired)";

/// How long an enrollment code can be redeemed.
pub const ENROLLMENT_VALIDITY: Span = Span(24 * 3_600_000);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdentityState {
    Enabled,
    Disabled,
    Deleted,
}

impl IdentityState {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityState::Enabled => "enabled",
            IdentityState::Disabled => "disabled",
            IdentityState::Deleted => "deleted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub account: AccountId,
    pub name: String,
    pub role: Role,
    pub namespaces: BTreeMap<String, Level>,
    pub state: IdentityState,
    pub created_at: Timestamp,
}

impl User {
    pub fn grant(&self) -> Grant {
        Grant { account: Some(self.role.level()), namespaces: self.namespaces.clone() }
    }

    /// What [`User::grant`] grants, asked without building it.
    pub fn grants(&self, permission: &Permission) -> bool {
        level_grants(Some(self.role.level()), |name| self.namespaces.get(name).copied(), permission)
    }
}

/// What a service account is bound to: an account role (never `owner`), or one permission in
/// one namespace and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Binding {
    Account(Role),
    Namespace { namespace: String, level: Level },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAccount {
    pub id: ServiceAccountId,
    pub account: AccountId,
    pub name: String,
    pub binding: Binding,
    pub state: IdentityState,
    pub created_at: Timestamp,
}

impl ServiceAccount {
    pub fn grant(&self) -> Grant {
        match &self.binding {
            Binding::Account(role) => Grant::account_wide(role.level()),
            Binding::Namespace { namespace, level } => {
                Grant { account: None, namespaces: BTreeMap::from([(namespace.clone(), *level)]) }
            }
        }
    }

    /// What [`ServiceAccount::grant`] grants, asked without building it.
    pub fn grants(&self, permission: &Permission) -> bool {
        match &self.binding {
            Binding::Account(role) => level_grants(Some(role.level()), |_| None, permission),
            Binding::Namespace { namespace, level } => {
                level_grants(None, |name| (name == namespace).then_some(*level), permission)
            }
        }
    }

    pub fn role(&self) -> Option<Role> {
        match self.binding {
            Binding::Account(role) => Some(role),
            Binding::Namespace { .. } => None,
        }
    }

    pub fn namespace(&self) -> Option<&str> {
        match &self.binding {
            Binding::Account(_) => None,
            Binding::Namespace { namespace, .. } => Some(namespace),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AccountId, ServiceAccountId, UserId};
    use crate::permissions::Permission;

    fn asked() -> Vec<Permission> {
        ["account:read", "account:write", "account:admin", "namespace:p:read", "namespace:p:admin", "namespace:q:write"]
            .iter()
            .map(|p| p.parse().unwrap())
            .collect()
    }

    /// The borrowed answers of the hot path agree with the grants every other check builds.
    #[test]
    fn identities_grant_what_their_grant_grants() {
        let account = AccountId::default_account();
        for role in Role::ALL {
            let user = User {
                id: UserId::from_bytes([1; 16]),
                account: account.clone(),
                name: "u".into(),
                role,
                namespaces: BTreeMap::from([("p".into(), Level::Admin)]),
                state: IdentityState::Enabled,
                created_at: Timestamp(0),
            };
            for p in asked() {
                assert_eq!(user.grants(&p), user.grant().grants(&p), "{role:?} {p}");
            }
        }
        for binding in
            [Binding::Account(Role::Developer), Binding::Namespace { namespace: "p".into(), level: Level::Write }]
        {
            let sa = ServiceAccount {
                id: ServiceAccountId::from_bytes([2; 16]),
                account: account.clone(),
                name: "s".into(),
                binding: binding.clone(),
                state: IdentityState::Enabled,
                created_at: Timestamp(0),
            };
            for p in asked() {
                assert_eq!(sa.grants(&p), sa.grant().grants(&p), "{binding:?} {p}");
            }
        }
    }
}
