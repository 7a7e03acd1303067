//! Identities: users, service accounts and what they are bound to, and a user's open
//! enrollment code.
//!
//! Plain domain types, apart from [`crate::State`] which holds them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{AccountId, ServiceAccountId, UserId};
use crate::permissions::{Grant, Level, Role};
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
