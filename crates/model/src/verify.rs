//! Verification: is this presented key good, right now, for this permission?
//!
//! The hot path of the whole product. It parses the token's form (no allocation), hashes it
//! once with SHA3-256 and reads one slot of the in-memory index; nothing else. Expiry is
//! judged against the `now` the caller passes, so a key fails the instant it expires,
//! whether or not the `expired` event has been written.

use crate::event::Owner;
use crate::ids::{AccountId, KeyId};
use crate::state::{IdentityState, KeyState, Role, State, User};
use crate::time::Timestamp;
use crate::token::{self, KeyDigest};

/// Why a key did not verify. `as_str` is the API's `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    Malformed,
    NotFound,
    Disabled,
    Expired,
    Deleted,
    IdentityDisabled,
    Forbidden,
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
            Invalid::Forbidden => "forbidden",
        }
    }
}

/// A key that authenticated, with what it may do. Borrowed from the state: no copies.
#[derive(Debug, Clone, Copy)]
pub struct Verified<'a> {
    pub key: KeyId,
    pub owner: Owner,
    pub identity_name: &'a str,
    pub account: &'a AccountId,
    pub role: Role,
    pub expires_at: Option<Timestamp>,
}

impl Verified<'_> {
    /// Effective permissions: the identity's current ones (key scopes narrow this later).
    pub fn permissions(&self) -> &'static [&'static str] {
        self.role.permissions()
    }

    pub fn grants(&self, permission: &str) -> bool {
        self.permissions().contains(&permission)
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
    pub fn verify(&self, presented: &str, now: Timestamp, permission: Option<&str>) -> Verdict<'_> {
        if token::parse(presented).is_err() {
            return Verdict::Invalid(Invalid::Malformed);
        }
        self.verify_digest(&KeyDigest::of(presented), now, permission)
    }

    /// Verification after parsing and hashing (split out so benches can time the parts).
    pub fn verify_digest(&self, digest: &KeyDigest, now: Timestamp, permission: Option<&str>) -> Verdict<'_> {
        let Some(entry) = self.index_entry(digest) else {
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
        let (user, role): (&User, Role) = match entry.owner {
            Owner::User(id) => match self.user(&id) {
                Some(user) => (user, user.role),
                None => return Verdict::Invalid(Invalid::NotFound),
            },
            Owner::ServiceAccount(_) => return Verdict::Invalid(Invalid::NotFound),
        };
        if user.state != IdentityState::Enabled {
            return Verdict::Invalid(Invalid::IdentityDisabled);
        }
        let verified = Verified {
            key: entry.key,
            owner: entry.owner,
            identity_name: &user.name,
            account: &user.account,
            role,
            expires_at: entry.expires_at,
        };
        match permission {
            Some(p) if !verified.grants(p) => Verdict::Forbidden(verified),
            _ => Verdict::Valid(verified),
        }
    }
}
