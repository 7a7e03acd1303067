//! The JSON shapes of keyledger's HTTP API (`api.md` is the contract).
//!
//! Both the server (`keyledger-api`) and the typed client (`keyledger-client`) use these
//! types, so a field renamed on one side cannot silently drift from the other. The crate
//! holds plain data only: no validation, no HTTP. Request types refuse unknown fields,
//! because a misspelt optional field silently ignored is a bug the caller never sees.

use serde::{Deserialize, Serialize};

/// Header carrying the Raft log index a write committed at (and `min_index` for reads).
pub const INDEX_HEADER: &str = "x-keyledger-index";
/// Header carrying the request id, taken from the request or made by the server.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Every error answer: `{"error": {"code", "message", "request_id"}}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorDetail {
    /// Stable snake_case code, e.g. `not_found`, `key_locked`, `unavailable`.
    pub code: String,
    /// One human sentence.
    pub message: String,
    #[serde(default)]
    pub request_id: Option<String>,
}

/// `user` or `service_account`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum OwnerKind {
    User,
    ServiceAccount,
}

impl OwnerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OwnerKind::User => "user",
            OwnerKind::ServiceAccount => "service_account",
        }
    }
}

/// A reference to a key's owner in a request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OwnerRef {
    pub kind: OwnerKind,
    pub id: String,
}

/// An identity as shown in answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    pub kind: OwnerKind,
    pub id: String,
    pub name: String,
}

/// Who caused an event: an identity and the key it used, or the cluster itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Actor {
    /// `user`, `service_account` or `system`.
    pub kind: String,
    pub id: Option<String>,
    pub key_id: Option<String>,
}

/// `POST /v1/keys`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A duration such as `30d`, `4d12h`, `90m`, `2y`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<String>,
    /// An RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub never_expires: Option<bool>,
    /// Defaults to the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<OwnerRef>,
}

/// KEY: a key's metadata. Never the secret, never its digest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Key {
    pub id: String,
    pub name: String,
    pub description: String,
    pub owner: Identity,
    pub account: String,
    pub namespace: Option<String>,
    pub scope: Option<String>,
    /// `enabled`, `disabled`, `expired` or `deleted`.
    pub state: String,
    pub locked: bool,
    /// The last 4 characters of the secret.
    pub hint: String,
    pub created_at: String,
    pub created_by: Actor,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    /// Ledger sequence number of the key's latest state-changing event.
    pub revision: u64,
}

/// `201` answer to a create: the secret is shown here once and never again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CreatedKey {
    pub key: Key,
    pub secret: String,
}

/// `GET /v1/keys`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyList {
    pub keys: Vec<Key>,
    pub next_cursor: Option<String>,
}

/// `POST /v1/verify`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_index: Option<u64>,
}

/// The answer to a verification: `valid` with the identity, or `code` saying why not.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct VerifyResponse {
    pub valid: bool,
    /// Set when `valid` is false: `malformed`, `not_found`, `disabled`, `expired`,
    /// `deleted`, `identity_disabled` or `forbidden`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    /// Present on a valid answer; `null` for a key that never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Option<String>>,
}

/// A ledger position: the last event's sequence number and chain hash (hex).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LedgerHead {
    pub seq: u64,
    pub hash: String,
}

/// One member of the cluster as seen from the answering node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Member {
    pub node_id: u64,
    pub address: String,
    /// `voter` or `learner`.
    pub role: String,
    /// `null` when the member did not answer in time.
    pub applied_index: Option<u64>,
    /// How far the member's applied index is behind the answering node's last log index.
    pub lag: Option<u64>,
    pub ledger_head: Option<LedgerHead>,
}

/// `GET /v1/cluster`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClusterStatus {
    pub node_id: u64,
    pub leader: Option<u64>,
    pub term: u64,
    pub members: Vec<Member>,
}

/// `GET /healthz` and `GET /readyz`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Health {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
