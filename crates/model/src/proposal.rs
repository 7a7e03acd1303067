//! Proposals: what a node puts into the Raft log, and what applying one answers.
//!
//! A proposal is complete before it enters the log: the proposing node has stamped the
//! time, made the ids and generated the secret (only its digest is here). Applying it needs
//! nothing but the proposal and the current state, which is what makes every node's ledger
//! byte-identical.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::event::{Actor, ChainHead, Owner};
use crate::ids::{AccountId, KeyId, UserId};
use crate::state::KeyRecord;
use crate::time::Timestamp;
use crate::token::KeyDigest;

/// One entry of the Raft log's application data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// Wall-clock time at the proposing node; becomes the events' `time`.
    pub time: Timestamp,
    pub request_id: String,
    pub actor: Actor,
    /// The account the actor belongs to (for `System`, the account being acted on).
    pub account: AccountId,
    pub command: Command,
}

/// The change asked for. New variants go at the end (the log is bincode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// First start of a cluster: the `default` account, its owner and the owner's first key.
    Bootstrap {
        admin: UserId,
        admin_name: String,
        key: NewKey,
    },
    CreateKey(NewKey),
    EnableKey(KeyId),
    DisableKey(KeyId),
    DeleteKey(KeyId),
}

/// A key as proposed: everything fixed, the secret reduced to its digest and hint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewKey {
    pub id: KeyId,
    /// `None`: the actor's own identity.
    pub owner: Option<Owner>,
    pub name: String,
    pub description: String,
    pub digest: KeyDigest,
    pub hint: String,
    /// `None`: never expires (only where the account allows it).
    pub expires_at: Option<Timestamp>,
}

/// Why a proposal was refused. Applying a refused proposal changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub code: RejectCode,
    pub message: String,
}

impl Rejection {
    pub fn new(code: RejectCode, message: impl Into<String>) -> Rejection {
        Rejection { code, message: message.into() }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectCode {
    InvalidArgument,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    Conflict,
    KeyLocked,
    LimitExceeded,
    CreationDisabled,
    RevisionMismatch,
}

impl RejectCode {
    /// The stable API error code.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::InvalidArgument => "invalid_argument",
            RejectCode::Unauthenticated => "unauthenticated",
            RejectCode::PermissionDenied => "permission_denied",
            RejectCode::NotFound => "not_found",
            RejectCode::Conflict => "conflict",
            RejectCode::KeyLocked => "key_locked",
            RejectCode::LimitExceeded => "limit_exceeded",
            RejectCode::CreationDisabled => "creation_disabled",
            RejectCode::RevisionMismatch => "revision_mismatch",
        }
    }
}

/// What applying one Raft entry answers to the proposer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// A Raft-internal entry (blank or membership): no ledger change.
    Internal,
    /// Accepted; `events` were appended (0 for a no-op such as enabling an enabled key).
    Accepted {
        events: u32,
        head: ChainHead,
        key: Option<Box<KeyRecord>>,
    },
    Rejected(Rejection),
}
