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
    /// `expired`, `used`, `denied`, `user_created`, `settings_changed`, ...
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
