//! Proposals: what a node puts into the Raft log, and what applying one answers.
//!
//! A proposal is complete before it enters the log: the proposing node has stamped the
//! time, made the ids and generated the secret (only its digest is here). Applying it needs
//! nothing but the proposal and the current state, which is what makes every node's ledger
//! byte-identical.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::account::{Account, AccountLimits, LeakAction, Namespace};
use crate::chain::ChainHead;
use crate::checkpoint::{Checkpoint, PublicKey};
use crate::identity::{Binding, ServiceAccount, User};
use crate::ids::{AccountId, KeyId, ServiceAccountId, UserId, WebhookId};
use crate::key::KeyRecord;
use crate::owner::{Actor, Owner};
use crate::permissions::{Level, Role, Scope};
use crate::time::{Span, Timestamp};
use crate::token::KeyDigest;
use crate::webhook::{DeliveryReport, NewWebhook, Webhook};

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
    /// New name and/or description; refused with `revision_mismatch` if `if_revision` is stale.
    UpdateKey {
        key: KeyId,
        name: Option<String>,
        description: Option<String>,
        if_revision: Option<u64>,
    },
    LockKey(KeyId),
    UnlockKey(KeyId),
    /// A new key (`new.id`, digest, hint, expiry) for the same identity, name, description and
    /// scope as `key`, which then expires after `grace`.
    RotateKey {
        key: KeyId,
        new: NewKey,
        grace: Span,
    },
    /// Proposed by the leader for keys whose expiry has passed.
    ExpireKeys(Vec<KeyId>),
    /// Use gathered in memory on a node, written in batches.
    RecordUse(Vec<UseRecord>),
    /// Refused operations gathered on a node, written in batches (capped per actor).
    RecordDenials(Vec<DenialRecord>),
    CreateUser {
        id: UserId,
        name: String,
        role: Role,
    },
    DeleteUser(UserId),
    SetUserEnabled {
        user: UserId,
        enabled: bool,
    },
    SetUserRole {
        user: UserId,
        role: Role,
    },
    /// `level: None` removes the permission.
    SetUserNamespace {
        user: UserId,
        namespace: String,
        level: Option<Level>,
    },
    CreateServiceAccount {
        id: ServiceAccountId,
        name: String,
        binding: Binding,
    },
    DeleteServiceAccount(ServiceAccountId),
    SetServiceAccountEnabled {
        service_account: ServiceAccountId,
        enabled: bool,
    },
    CreateNamespace {
        name: String,
    },
    UpdateSettings(SettingsPatch),
    /// Another account, with its owner and the owner's first key (by an owner).
    CreateAccount {
        account: AccountId,
        owner: UserId,
        owner_name: String,
        key: NewKey,
    },
    /// `command` sent with an `Idempotency-Key`: see [`crate::idempotency`].
    Idempotent {
        key: String,
        fingerprint: [u8; 32],
        command: Box<Command>,
    },
    /// A node's checkpoint-signing key, proposed by the node itself when it leads.
    RegisterSigner {
        node: u64,
        public_key: PublicKey,
    },
    /// Signed by the leader before proposing (see [`crate::checkpoint`]).
    Checkpoint(Checkpoint),
    /// A user with a one-time enrollment code (`code`: the code's digest), valid for
    /// [`crate::identity::ENROLLMENT_VALIDITY`] from the proposal's time.
    CreateEnrolledUser {
        id: UserId,
        name: String,
        role: Role,
        code: KeyDigest,
    },
    /// A fresh enrollment code for `user`, voiding the previous one.
    IssueEnrollment {
        user: UserId,
        code: KeyDigest,
    },
    /// Redeems the code with digest `code` for the user's own key `key` (`key.owner` is
    /// ignored). Proposed as [`Actor::System`]: the code is the only credential.
    Enroll {
        code: KeyDigest,
        key: NewKey,
    },
    /// Someone holding the secret with digest `digest` reported it leaked (as [`Actor::System`]:
    /// possession is the credential). Names no key: nothing is written.
    ReportLeak {
        digest: KeyDigest,
        source: String,
        reporter: String,
    },
    /// Settings, caps and `action_when_leaked` in one change (`UpdateSettings` stays for
    /// proposals already logged). Caps and the leak action are kept apart from
    /// [`SettingsPatch`], whose encoding is in existing log entries.
    ChangeSettings {
        patch: SettingsPatch,
        limits: LimitsPatch,
        action_when_leaked: Option<LeakAction>,
    },
    /// Another account with its owner, who gets a one-time enrollment code (`code`: the code's
    /// digest) instead of a key, so the operator never holds the new owner's credential
    /// (`CreateAccount` stays for proposals already logged).
    CreateAccountWithEnrollment {
        account: AccountId,
        owner: UserId,
        owner_name: String,
        code: KeyDigest,
    },
    /// `ChangeSettings` and the cluster's `last_used_granularity` (the operator's, kept in
    /// account `default`) in one change; `ChangeSettings` stays for proposals already logged.
    Configure {
        patch: SettingsPatch,
        limits: LimitsPatch,
        action_when_leaked: Option<LeakAction>,
        last_used_granularity: Option<Span>,
    },
    /// A webhook of the caller's account (owner or admin); see [`crate::webhook`].
    CreateWebhook(NewWebhook),
    DeleteWebhook(WebhookId),
    /// A new nonce, so a new signing secret; the old secret stops signing at once.
    RotateWebhookSecret {
        webhook: WebhookId,
        secret_nonce: [u8; 16],
    },
    /// Finished deliveries, reported by the leader's dispatcher in ledger order per webhook.
    RecordWebhookDeliveries(Vec<DeliveryReport>),
    /// Proposed by the leader for enabled keys that entered the expiry warning window.
    WarnExpiringKeys(Vec<KeyId>),
}

/// A key as proposed: everything fixed, the secret reduced to its digest and hint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewKey {
    pub id: KeyId,
    /// `None`: the actor's own identity.
    pub owner: Option<Owner>,
    pub name: String,
    pub description: String,
    pub scope: Option<Scope>,
    pub digest: KeyDigest,
    pub hint: String,
    /// `None`: never expires (only where the account allows it).
    pub expires_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UseRecord {
    pub key: KeyId,
    pub last_used_at: Timestamp,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DenialRecord {
    pub actor: Actor,
    pub account: AccountId,
    pub operation: String,
    pub target: String,
    pub reason: String,
    pub count: u32,
}

/// Settings to change; `None` leaves one as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsPatch {
    pub key_creation_enabled: Option<bool>,
    pub max_key_lifetime: Option<Span>,
    pub allow_never_expiring: Option<bool>,
    pub max_keys_per_user: Option<u32>,
    pub max_keys_per_service_account: Option<u32>,
}

/// Caps to change; `None` leaves one as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitsPatch {
    pub max_users: Option<u32>,
    pub max_service_accounts: Option<u32>,
    pub max_namespaces: Option<u32>,
    pub max_accounts: Option<u32>,
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

impl From<crate::authz::Refusal> for Rejection {
    fn from(refusal: crate::authz::Refusal) -> Rejection {
        match refusal {
            crate::authz::Refusal::Hidden => Rejection::new(RejectCode::NotFound, "not found"),
            crate::authz::Refusal::Forbidden => {
                Rejection::new(RejectCode::PermissionDenied, "the caller is not allowed to do this")
            }
        }
    }
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
        subject: Option<Box<Subject>>,
    },
    Rejected(Rejection),
    /// A retry with the same `Idempotency-Key`: what the first request, committed at `index`,
    /// answered. Nothing was written.
    Replayed {
        index: u64,
        outcome: Box<Outcome>,
    },
}

/// The object a command was about, as it is after the command, for the answer.
// Always boxed inside `Outcome`, so the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Subject {
    Key(KeyRecord),
    User(User),
    ServiceAccount(ServiceAccount),
    Namespace(Namespace),
    /// As answered before caps existed (kept so stored idempotency records still decode).
    Account(Account),
    /// A user and the expiry of the enrollment code just issued for it.
    Enrollment {
        user: User,
        expires_at: Timestamp,
    },
    /// An account's settings, caps and `action_when_leaked`.
    AccountSettings {
        account: Account,
        limits: AccountLimits,
        action_when_leaked: LeakAction,
    },
    Webhook(Webhook),
}

impl Outcome {
    /// The key the command was about, if it was accepted and about a key.
    pub fn key(&self) -> Option<&KeyRecord> {
        match self {
            Outcome::Replayed { outcome, .. } => outcome.key(),
            Outcome::Accepted { subject: Some(subject), .. } => match subject.as_ref() {
                Subject::Key(key) => Some(key),
                _ => None,
            },
            _ => None,
        }
    }
}
