//! An account and what belongs to it alone: its settings, its caps, its leak policy and its
//! namespaces.
//!
//! Plain domain types, apart from [`crate::State`] which holds them: the encodings of several
//! are part of events' canonical bytes, so they change only by appending.

use serde::{Deserialize, Serialize};

use crate::ids::AccountId;
use crate::time::{Span, Timestamp};

/// Per-account policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSettings {
    pub key_creation_enabled: bool,
    pub max_key_lifetime: Span,
    pub allow_never_expiring: bool,
    pub max_keys_per_user: u32,
    pub max_keys_per_service_account: u32,
}

impl Default for AccountSettings {
    fn default() -> AccountSettings {
        AccountSettings {
            key_creation_enabled: true,
            max_key_lifetime: Span::years(2),
            allow_never_expiring: false,
            max_keys_per_user: 10,
            max_keys_per_service_account: 20,
        }
    }
}

/// What a `leaked` report does to the key it names (`action_when_leaked`). Kept apart from
/// [`AccountSettings`], whose encoding is part of existing events' canonical bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LeakAction {
    #[default]
    Disable,
    Delete,
    /// Only the `leaked` event is written; the key stays as it is.
    None,
}

impl LeakAction {
    pub const ALL: [LeakAction; 3] = [LeakAction::Disable, LeakAction::Delete, LeakAction::None];

    pub fn as_str(self) -> &'static str {
        match self {
            LeakAction::Disable => "disable",
            LeakAction::Delete => "delete",
            LeakAction::None => "none",
        }
    }

    pub fn parse(text: &str) -> Option<LeakAction> {
        LeakAction::ALL.into_iter().find(|a| a.as_str() == text)
    }
}

/// Per-account caps on how many identities and namespaces it holds, and (on account `default`
/// only) the operator's cap on accounts. Kept apart from [`AccountSettings`] and [`Account`],
/// whose bincode encodings are chained into existing `account_created`/`settings_changed` events
/// and stored in idempotency records: caps arrive by `limits_changed` events, and an account that
/// never had one has the defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountLimits {
    /// Users not deleted.
    pub max_users: u32,
    /// Service accounts not deleted.
    pub max_service_accounts: u32,
    pub max_namespaces: u32,
    /// Accounts in the cluster, `default` included; read from account `default` only.
    pub max_accounts: u32,
}

impl Default for AccountLimits {
    fn default() -> AccountLimits {
        AccountLimits { max_users: 1000, max_service_accounts: 1000, max_namespaces: 100, max_accounts: 1000 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub created_at: Timestamp,
    pub settings: AccountSettings,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    pub account: AccountId,
    pub name: String,
    pub created_at: Timestamp,
}
