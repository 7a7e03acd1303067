//! The audit trail: ledger events as the API shows and exports them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Actor;

/// EVENT: one ledger event, on the cluster chain (`seq`, `prev_hash`, `hash`) and on its
/// account's chain (`account_seq`, `account_prev_hash`, `account_hash`). Never a secret, never
/// a key's digest (a `created` event carries only its `digest_commitment`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct AuditEvent {
    pub seq: u64,
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    /// `created`, `enabled`, `disabled`, `deleted`, `updated`, `locked`, `unlocked`, `rotated`,
    /// `expired`, `used`, `denied`, `user_created`, `settings_changed`, `enrollment_issued`,
    /// `enrolled`, `leaked`, `leak_action_changed`, ...
    #[serde(rename = "type")]
    pub kind: String,
    pub account: String,
    pub account_seq: u64,
    pub actor: Actor,
    pub request_id: String,
    /// The event type's own fields: ids (`key_id`, `user_id`, ...), times in RFC 3339,
    /// durations in milliseconds, roles and permissions as words.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// Hex SHA3-256 hashes.
    pub prev_hash: String,
    pub hash: String,
    pub account_prev_hash: String,
    pub account_hash: String,
}

/// `GET /v1/audit/events` (and, without `next`, `GET /v1/keys/{id}/history`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct EventList {
    pub events: Vec<AuditEvent>,
    /// Pass as `after` for the next page; `null` when there is none.
    #[serde(default)]
    #[schema(required)]
    pub next: Option<u64>,
}

/// `GET /v1/keys/{id}/history`: every event of a key, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct KeyHistory {
    pub events: Vec<AuditEvent>,
}

/// `GET /v1/audit/public-key`: the keys checkpoints are signed with, one per node that has led
/// the cluster. An auditor keeps this document and passes it to `keyledger audit verify
/// --public-key`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct SigningKeys {
    /// Always `ed25519`.
    pub algorithm: String,
    pub keys: Vec<SigningKey>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct SigningKey {
    pub node_id: u64,
    /// The Ed25519 public key, 64 hex digits.
    pub public_key: String,
}

/// `GET /v1/audit/checkpoints`: `checkpoint` events, whose `data` holds `tree_size`, `root`
/// (the RFC 6962 Merkle root, SHA3-256, of events `1..=tree_size`), `head` (the hash of event
/// `tree_size`), `signer_node_id`, `public_key` and `signature` (Ed25519, hex).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct CheckpointList {
    pub checkpoints: Vec<AuditEvent>,
    #[serde(default)]
    #[schema(required)]
    pub next: Option<u64>,
}

/// `GET /v1/audit/proof/inclusion`: the audit path from `event` (leaf `seq - 1`, whose leaf hash
/// is SHA3-256(0x00 ‖ its `hash`)) to the root `checkpoint` signed (RFC 9162 §2.1.3).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct InclusionProof {
    pub event: AuditEvent,
    pub checkpoint: AuditEvent,
    /// Hex node hashes, leaf to root.
    pub proof: Vec<String>,
}

/// `GET /v1/audit/proof/consistency`: the tree `to` signed extends the tree `from` signed
/// (RFC 9162 §2.1.4).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ConsistencyProof {
    pub from: AuditEvent,
    pub to: AuditEvent,
    pub proof: Vec<String>,
}

/// `GET /v1/audit/replay` and `keyledger replay`: an account as it was at `at`, rebuilt from
/// its events alone.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Replay {
    /// The moment asked about (RFC 3339, UTC, milliseconds).
    pub at: String,
    /// The last of the account's events at or before `at` (its cluster `seq`; 0 when none).
    pub seq: u64,
    pub account: String,
    /// `null` when the account did not exist yet.
    pub settings: Option<crate::Settings>,
    pub users: Vec<crate::User>,
    pub service_accounts: Vec<crate::ServiceAccount>,
    pub namespaces: Vec<crate::Namespace>,
    /// Every key, deleted ones too, with its state as of `at`.
    pub keys: Vec<crate::Key>,
}

/// `POST /v1/verify/as-of`: would a key have verified at `at`? Give `key` (the secret) or
/// `key_id`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VerifyAsOfRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// An RFC 3339 time.
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
}

/// The verdict as of `at`, and the ledger event that decided it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct VerifyAsOfResponse {
    #[serde(flatten)]
    pub verdict: crate::VerifyResponse,
    /// The time asked about, as understood (RFC 3339, UTC, milliseconds).
    pub at: String,
    /// The latest event before `at` that set what the verdict rests on: the key's last
    /// state-changing event, or its identity's disabling; `null` when the key did not exist yet.
    pub decided_by: Option<AuditEvent>,
}
