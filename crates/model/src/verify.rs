//! Verification: is this presented key good, right now, for this permission?
//!
//! The hot path of the whole product. It parses the token's form (no allocation), hashes it
//! once with SHA3-256, reads one slot of the in-memory index and the owner's identity; a key
//! with a scope costs one more read when a permission is asked. Expiry is judged against the
//! `now` the caller passes, so a key fails the instant it expires, whether or not the `expired`
//! event has been written.

use std::sync::{Arc, RwLock, RwLockReadGuard};

use crate::identity::{IdentityState, ServiceAccount, User};
use crate::ids::{AccountId, KeyId};
use crate::index::Usage;
use crate::key::KeyState;
use crate::owner::Owner;
use crate::permissions::{Grant, Permission, Scope};
use crate::state::State;
use crate::time::Timestamp;
use crate::token::{self, KeyDigest};

/// Read access to the state the ledger's apply keeps current, handed to the HTTP layer at
/// start-up: a verification goes from its handler to this file and the index, through neither
/// the ledger nor the node. The ledger keeps the only write access.
#[derive(Clone)]
pub struct StateReader(Arc<RwLock<State>>);

impl StateReader {
    pub fn new(shared: Arc<RwLock<State>>) -> StateReader {
        StateReader(shared)
    }

    pub fn read(&self) -> RwLockReadGuard<'_, State> {
        // A poisoned lock means an apply panicked mid-way; the state may be half-changed, but
        // the process is going down through openraft's fatal path anyway.
        self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Why a key did not verify. `as_str` is the API's `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    Malformed,
    NotFound,
    Disabled,
    Expired,
    Deleted,
    IdentityDisabled,
}

impl Invalid {
    pub fn as_str(self) -> &'static str {
        match self {
            Invalid::Malformed => "malformed",
            Invalid::NotFound => "not_found",
            Invalid::Disabled => "disabled",
            Invalid::Expired => "expired",
            Invalid::Deleted => "deleted",
            Invalid::IdentityDisabled => "identity_disabled",
        }
    }
}

/// The identity a key authenticates as.
#[derive(Debug, Clone, Copy)]
pub enum IdentityRef<'a> {
    User(&'a User),
    ServiceAccount(&'a ServiceAccount),
}

impl IdentityRef<'_> {
    fn grants(&self, permission: &Permission) -> bool {
        match self {
            IdentityRef::User(user) => user.grants(permission),
            IdentityRef::ServiceAccount(sa) => sa.grants(permission),
        }
    }

    fn grant(&self) -> Grant {
        match self {
            IdentityRef::User(user) => user.grant(),
            IdentityRef::ServiceAccount(sa) => sa.grant(),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            IdentityRef::User(user) => &user.name,
            IdentityRef::ServiceAccount(sa) => &sa.name,
        }
    }

    pub fn account(&self) -> &AccountId {
        match self {
            IdentityRef::User(user) => &user.account,
            IdentityRef::ServiceAccount(sa) => &sa.account,
        }
    }
}

/// A key that authenticated, with what it may do. Borrowed from the state: no copies.
#[derive(Debug, Clone, Copy)]
pub struct Verified<'a> {
    pub key: KeyId,
    pub owner: Owner,
    pub identity: IdentityRef<'a>,
    pub expires_at: Option<Timestamp>,
    pub scope: Option<&'a Scope>,
    /// This node's record of the key's use, in the key's index slot.
    pub usage: &'a Usage,
}

impl<'a> Verified<'a> {
    /// Notes that the key was used at `now`: a relaxed atomic write to its own index slot, no
    /// lock; the node's flusher turns it into a `used` event once per `last_used_granularity`.
    #[inline]
    pub fn note_use(&self, now: Timestamp) {
        self.usage.note(now);
    }

    pub fn account(&self) -> &'a AccountId {
        match self.identity {
            IdentityRef::User(user) => &user.account,
            IdentityRef::ServiceAccount(sa) => &sa.account,
        }
    }

    pub fn identity_name(&self) -> &'a str {
        match self.identity {
            IdentityRef::User(user) => &user.name,
            IdentityRef::ServiceAccount(sa) => &sa.name,
        }
    }

    /// Does the key, as of now, grant `permission`? (Its identity's and its scope's rights.)
    pub fn grants(&self, permission: &Permission) -> bool {
        self.identity.grants(permission) && self.scope.is_none_or(|s| s.grants(permission))
    }

    /// The effective permissions: the identity's current ones narrowed by the key's scope.
    pub fn effective(&self) -> Grant {
        self.identity.grant().narrowed_by(self.scope)
    }
}

/// The answer to a verification. `Forbidden` still names the key and identity.
#[derive(Debug, Clone, Copy)]
pub enum Verdict<'a> {
    Valid(Verified<'a>),
    Invalid(Invalid),
    Forbidden(Verified<'a>),
}

impl State {
    /// Verifies a presented key at `now`, optionally requiring `permission`.
    pub fn verify(&self, presented: &str, now: Timestamp, permission: Option<&Permission>) -> Verdict<'_> {
        if token::parse(presented).is_err() {
            return Verdict::Invalid(Invalid::Malformed);
        }
        self.verify_digest(&KeyDigest::of(presented), now, permission)
    }

    /// Verification after parsing and hashing (split out so benches can time the parts).
    pub fn verify_digest(&self, digest: &KeyDigest, now: Timestamp, permission: Option<&Permission>) -> Verdict<'_> {
        let Some((entry, usage)) = self.index.get_with_usage(digest) else {
            return Verdict::Invalid(Invalid::NotFound);
        };
        match entry.state {
            KeyState::Deleted => return Verdict::Invalid(Invalid::Deleted),
            KeyState::Disabled => return Verdict::Invalid(Invalid::Disabled),
            KeyState::Expired => return Verdict::Invalid(Invalid::Expired),
            KeyState::Enabled => {}
        }
        if entry.expires_at.is_some_and(|at| now >= at) {
            return Verdict::Invalid(Invalid::Expired);
        }
        let (identity, state) = match entry.owner {
            Owner::User(id) => match self.user(&id) {
                Some(user) => (IdentityRef::User(user), user.state),
                None => return Verdict::Invalid(Invalid::NotFound),
            },
            Owner::ServiceAccount(id) => match self.service_account(&id) {
                Some(sa) => (IdentityRef::ServiceAccount(sa), sa.state),
                None => return Verdict::Invalid(Invalid::NotFound),
            },
        };
        if state != IdentityState::Enabled {
            return Verdict::Invalid(Invalid::IdentityDisabled);
        }
        // Only a scoped key needs its record: one more read, and only for those keys.
        let scope = if entry.scoped { self.key(&entry.key).and_then(|k| k.scope.as_ref()) } else { None };
        let verified =
            Verified { key: entry.key, owner: entry.owner, identity, expires_at: entry.expires_at, scope, usage };
        match permission {
            Some(p) if !verified.grants(p) => Verdict::Forbidden(verified),
            _ => Verdict::Valid(verified),
        }
    }
}
