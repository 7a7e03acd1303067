//! Who owns a key ([`Owner`]) and who caused an event ([`Actor`]).
//!
//! Kept below the domain types, `authz` and `event`, which all name identities: they import
//! these from here rather than from one another.

use serde::{Deserialize, Serialize};

use crate::ids::{KeyId, ServiceAccountId, UserId};

/// The identity that owns a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Owner {
    User(UserId),
    ServiceAccount(ServiceAccountId),
}

/// Who caused an event: an identity with the key it presented, or the cluster itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Actor {
    System,
    User { id: UserId, key: KeyId },
    ServiceAccount { id: ServiceAccountId, key: KeyId },
}

impl Actor {
    pub fn identity(&self) -> Option<Owner> {
        match *self {
            Actor::System => None,
            Actor::User { id, .. } => Some(Owner::User(id)),
            Actor::ServiceAccount { id, .. } => Some(Owner::ServiceAccount(id)),
        }
    }

    pub fn key(&self) -> Option<KeyId> {
        match *self {
            Actor::System => None,
            Actor::User { key, .. } | Actor::ServiceAccount { key, .. } => Some(key),
        }
    }
}
