//! A key's record and lifecycle state, and the slot the verification index keeps for it.
//!
//! Plain domain types, apart from [`crate::State`] which holds them.

use serde::{Deserialize, Serialize};

use crate::ids::{AccountId, KeyId};
use crate::owner::{Actor, Owner};
use crate::permissions::Scope;
use crate::time::Timestamp;
use crate::token::KeyDigest;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyState {
    Enabled,
    Disabled,
    Expired,
    Deleted,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Enabled => "enabled",
            KeyState::Disabled => "disabled",
            KeyState::Expired => "expired",
            KeyState::Deleted => "deleted",
        }
    }

    pub fn parse(text: &str) -> Option<KeyState> {
        [KeyState::Enabled, KeyState::Disabled, KeyState::Expired, KeyState::Deleted]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A key's metadata as the admin API shows it (plus the digest, which it never shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: KeyId,
    pub account: AccountId,
    pub owner: Owner,
    pub name: String,
    pub description: String,
    pub scope: Option<Scope>,
    pub hint: String,
    pub digest: KeyDigest,
    pub created_at: Timestamp,
    pub created_by: Actor,
    pub expires_at: Option<Timestamp>,
    pub state: KeyState,
    pub locked: bool,
    /// Seq of the latest state-changing event (`used` and `denied` do not count).
    pub revision: u64,
    pub last_used_at: Option<Timestamp>,
    pub use_count: u64,
    /// The key this one was rotated from, and the one it was rotated into.
    pub replaces: Option<KeyId>,
    pub replaced_by: Option<KeyId>,
}

impl KeyRecord {
    /// The state as of `now`: a key past its expiry is expired even before the `expired`
    /// event is written.
    pub fn state_at(&self, now: Timestamp) -> KeyState {
        match (self.state, self.expires_at) {
            (KeyState::Enabled | KeyState::Disabled, Some(at)) if now >= at => KeyState::Expired,
            (state, _) => state,
        }
    }

    /// Counts against its owner's limit: neither expired nor deleted at `now`.
    pub fn is_live_at(&self, now: Timestamp) -> bool {
        !matches!(self.state_at(now), KeyState::Expired | KeyState::Deleted)
    }
}

/// What the verification index keeps per digest: exactly what a verification reads first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub key: KeyId,
    pub owner: Owner,
    pub state: KeyState,
    pub expires_at: Option<Timestamp>,
    /// The key has a scope: a permission check must read its record.
    pub scoped: bool,
}
