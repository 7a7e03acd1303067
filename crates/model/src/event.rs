//! Ledger events: the permanent, hash-chained record of every change.
//!
//! An event's *content* (everything but its hashes) is encoded canonically with bincode and
//! chained twice: on the cluster chain (`prev_hash` → `hash`) and on its account's chain
//! (`account_prev_hash` → `account_hash`), so an account's own history verifies alone.
//! Enum variants are only ever appended: their position is part of the canonical bytes.

use serde::{Deserialize, Serialize};
use sha3::{Digest as _, Sha3_256};

use crate::account::{AccountLimits, AccountSettings, LeakAction};
use crate::chain::ChainHash;
use crate::checkpoint::{Checkpoint, PublicKey};
use crate::identity::Binding;
use crate::ids::{AccountId, KeyId, ServiceAccountId, UserId, WebhookId};
use crate::owner::{Actor, Owner};
use crate::permissions::{Level, Role, Scope};
use crate::time::{Span, Timestamp};
use crate::token::KeyDigest;
use crate::webhook::{Delivery, WebhookEventType};

/// What happened. New variants go at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventBody {
    AccountCreated {
        settings: AccountSettings,
    },
    UserCreated {
        user: UserId,
        name: String,
        role: Role,
    },
    KeyCreated {
        key: KeyId,
        owner: Owner,
        name: String,
        description: String,
        scope: Option<Scope>,
        /// `KeyDigest::commitment`: the chain never carries the digest itself.
        digest_commitment: [u8; 32],
        hint: String,
        expires_at: Option<Timestamp>,
    },
    KeyEnabled {
        key: KeyId,
    },
    KeyDisabled {
        key: KeyId,
    },
    KeyDeleted {
        key: KeyId,
    },
    /// Name and description after the change.
    KeyUpdated {
        key: KeyId,
        name: String,
        description: String,
    },
    KeyLocked {
        key: KeyId,
    },
    KeyUnlocked {
        key: KeyId,
    },
    /// `key` was replaced by `replacement` (created just before) and now expires at `expires_at`.
    KeyRotated {
        key: KeyId,
        replacement: KeyId,
        expires_at: Timestamp,
    },
    KeyExpired {
        key: KeyId,
    },
    /// Uses since the previous `used` event of this key, gathered in memory on the nodes.
    KeyUsed {
        key: KeyId,
        last_used_at: Timestamp,
        count: u64,
    },
    /// A refused operation by an authenticated caller (the envelope's actor); `count` repeats.
    Denied {
        operation: String,
        target: String,
        reason: String,
        count: u32,
    },
    UserDeleted {
        user: UserId,
    },
    UserDisabled {
        user: UserId,
    },
    UserEnabled {
        user: UserId,
    },
    UserRoleChanged {
        user: UserId,
        role: Role,
    },
    /// `level: None` removes the user's permission in the namespace.
    UserNamespaceChanged {
        user: UserId,
        namespace: String,
        level: Option<Level>,
    },
    ServiceAccountCreated {
        service_account: ServiceAccountId,
        name: String,
        binding: Binding,
    },
    ServiceAccountDeleted {
        service_account: ServiceAccountId,
    },
    ServiceAccountDisabled {
        service_account: ServiceAccountId,
    },
    ServiceAccountEnabled {
        service_account: ServiceAccountId,
    },
    NamespaceCreated {
        name: String,
    },
    /// The account's whole settings after the change.
    SettingsChanged {
        settings: AccountSettings,
    },
    /// Node `node`'s checkpoint-signing public key (on the `_cluster` chain).
    SignerRegistered {
        node: u64,
        public_key: PublicKey,
    },
    /// A signed statement of the ledger's size, head and Merkle root (on the `_cluster` chain).
    Checkpoint(Checkpoint),
    /// A one-time enrollment code for `user`, voiding any earlier one. The chain carries only a
    /// commitment to the code's digest (`KeyDigest::commitment`); the digest rides beside.
    EnrollmentIssued {
        user: UserId,
        code_commitment: [u8; 32],
        expires_at: Timestamp,
    },
    /// `user` redeemed its code for key `key` (whose `created` event comes just before).
    Enrolled {
        user: UserId,
        key: KeyId,
    },
    /// Someone holding the key's secret reported it leaked. `action` is what the account's
    /// `action_when_leaked` did (a `disabled` or `deleted` event follows when it changed the
    /// key); `lock_overridden`: the key was locked, and the leak stopped it anyway.
    Leaked {
        key: KeyId,
        source: String,
        reporter: String,
        action: LeakAction,
        lock_overridden: bool,
    },
    /// The account's `action_when_leaked` after the change.
    LeakActionChanged {
        action: LeakAction,
    },
    /// The account's whole caps after the change.
    LimitsChanged {
        limits: AccountLimits,
    },
    /// The cluster's `last_used_granularity` after the change (on account `default`).
    UsageGranularityChanged {
        granularity: Span,
    },
    /// A webhook of the account; `secret_nonce` is what its signing secret is derived from
    /// (with the cluster secret, which the ledger never holds).
    WebhookCreated {
        webhook: WebhookId,
        url: String,
        event_types: Vec<WebhookEventType>,
        description: String,
        secret_nonce: [u8; 16],
    },
    WebhookDeleted {
        webhook: WebhookId,
    },
    WebhookSecretRotated {
        webhook: WebhookId,
        secret_nonce: [u8; 16],
    },
    /// Finished deliveries of `webhook`, in ledger order; the last one's position is its cursor.
    WebhookDeliveries {
        webhook: WebhookId,
        deliveries: Vec<Delivery>,
    },
    /// The enabled key expires at `expires_at`, within `webhook::EXPIRY_WARNING_WINDOW` of
    /// this event (proposed by the leader, once per key and expiry).
    KeyExpiringSoon {
        key: KeyId,
        expires_at: Timestamp,
    },
}

impl EventBody {
    /// The `type` shown in the API and in exports.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventBody::AccountCreated { .. } => "account_created",
            EventBody::UserCreated { .. } => "user_created",
            EventBody::KeyCreated { .. } => "created",
            EventBody::KeyEnabled { .. } => "enabled",
            EventBody::KeyDisabled { .. } => "disabled",
            EventBody::KeyDeleted { .. } => "deleted",
            EventBody::KeyUpdated { .. } => "updated",
            EventBody::KeyLocked { .. } => "locked",
            EventBody::KeyUnlocked { .. } => "unlocked",
            EventBody::KeyRotated { .. } => "rotated",
            EventBody::KeyExpired { .. } => "expired",
            EventBody::KeyUsed { .. } => "used",
            EventBody::Denied { .. } => "denied",
            EventBody::UserDeleted { .. } => "user_deleted",
            EventBody::UserDisabled { .. } => "user_disabled",
            EventBody::UserEnabled { .. } => "user_enabled",
            EventBody::UserRoleChanged { .. } => "user_role_changed",
            EventBody::UserNamespaceChanged { .. } => "user_namespace_changed",
            EventBody::ServiceAccountCreated { .. } => "service_account_created",
            EventBody::ServiceAccountDeleted { .. } => "service_account_deleted",
            EventBody::ServiceAccountDisabled { .. } => "service_account_disabled",
            EventBody::ServiceAccountEnabled { .. } => "service_account_enabled",
            EventBody::NamespaceCreated { .. } => "namespace_created",
            EventBody::SettingsChanged { .. } => "settings_changed",
            EventBody::SignerRegistered { .. } => "signer_registered",
            EventBody::Checkpoint(_) => "checkpoint",
            EventBody::EnrollmentIssued { .. } => "enrollment_issued",
            EventBody::Enrolled { .. } => "enrolled",
            EventBody::Leaked { .. } => "leaked",
            EventBody::LeakActionChanged { .. } => "leak_action_changed",
            EventBody::LimitsChanged { .. } => "limits_changed",
            EventBody::UsageGranularityChanged { .. } => "usage_granularity_changed",
            EventBody::WebhookCreated { .. } => "webhook_created",
            EventBody::WebhookDeleted { .. } => "webhook_deleted",
            EventBody::WebhookSecretRotated { .. } => "webhook_secret_rotated",
            EventBody::WebhookDeliveries { .. } => "webhook_deliveries",
            EventBody::KeyExpiringSoon { .. } => "expiring_soon",
        }
    }

    /// The key this event is about, if any.
    pub fn key(&self) -> Option<KeyId> {
        match self {
            EventBody::KeyCreated { key, .. }
            | EventBody::KeyEnabled { key }
            | EventBody::KeyDisabled { key }
            | EventBody::KeyDeleted { key }
            | EventBody::KeyUpdated { key, .. }
            | EventBody::KeyLocked { key }
            | EventBody::KeyUnlocked { key }
            | EventBody::KeyRotated { key, .. }
            | EventBody::KeyExpired { key }
            | EventBody::KeyUsed { key, .. }
            | EventBody::Enrolled { key, .. }
            | EventBody::Leaked { key, .. }
            | EventBody::KeyExpiringSoon { key, .. } => Some(*key),
            _ => None,
        }
    }
}

/// One ledger event with its place on both chains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub time: Timestamp,
    pub account: AccountId,
    pub actor: Actor,
    pub request_id: String,
    pub body: EventBody,
    pub account_seq: u64,
    pub prev_hash: ChainHash,
    pub hash: ChainHash,
    pub account_prev_hash: ChainHash,
    pub account_hash: ChainHash,
}

/// Bumped if the canonical encoding ever changes; old events keep verifying under their version.
const CANONICAL_VERSION: u8 = 1;

#[derive(Serialize)]
struct Content<'a> {
    version: u8,
    seq: u64,
    time: Timestamp,
    account: &'a AccountId,
    actor: &'a Actor,
    request_id: &'a str,
    body: &'a EventBody,
    account_seq: u64,
}

impl Event {
    /// The canonical bytes both chain hashes cover.
    pub fn content_bytes(&self) -> Vec<u8> {
        let content = Content {
            version: CANONICAL_VERSION,
            seq: self.seq,
            time: self.time,
            account: &self.account,
            actor: &self.actor,
            request_id: &self.request_id,
            body: &self.body,
            account_seq: self.account_seq,
        };
        // Sized for a typical event up front, rather than grown from empty in several steps.
        let mut bytes = Vec::with_capacity(256);
        bincode::serde::encode_into_std_write(&content, &mut bytes, bincode::config::standard())
            .expect("encoding plain data into a Vec cannot fail");
        bytes
    }

    /// Recomputes `(hash, account_hash)` from the content and the two previous hashes.
    pub fn compute_hashes(&self) -> (ChainHash, ChainHash) {
        let content = self.content_bytes();
        let chain = |domain: &[u8], prev: &ChainHash| {
            let mut hasher = Sha3_256::new();
            hasher.update(domain);
            hasher.update(prev.0);
            hasher.update(&content);
            ChainHash(hasher.finalize().into())
        };
        (chain(b"keyledger-chain-v1", &self.prev_hash), chain(b"keyledger-account-chain-v1", &self.account_prev_hash))
    }

    /// True when both stored hashes match the content.
    pub fn hashes_are_valid(&self) -> bool {
        self.compute_hashes() == (self.hash, self.account_hash)
    }
}

/// What the ledger stores per event: the event, plus — for `KeyCreated` the key's verification
/// digest, for `EnrollmentIssued` the code's digest — kept beside the chained bytes so the index can be rebuilt from the
/// ledger while exports and the chain carry only the commitment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub event: Event,
    pub digest: Option<KeyDigest>,
}
