//! Operations: cluster status and health.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A ledger position: the last event's sequence number and chain hash (hex).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct LedgerHead {
    pub seq: u64,
    pub hash: String,
}

/// One member of the cluster as seen from the answering node.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Member {
    pub node_id: u64,
    pub address: String,
    /// `voter` or `learner`.
    pub role: String,
    /// `null` when the member did not answer in time.
    #[schema(required)]
    pub applied_index: Option<u64>,
    /// How far the member's applied index is behind the answering node's last log index.
    #[schema(required)]
    pub lag: Option<u64>,
    #[schema(required)]
    pub ledger_head: Option<LedgerHead>,
    /// Does the member's ledger head hash equal the answering node's hash at that seq? `false`
    /// means the two ledgers diverged (also logged as an error); `null` when it cannot be told
    /// (no answer, or the member is ahead of the answering node).
    #[serde(default)]
    #[schema(required)]
    pub ledger_agrees: Option<bool>,
    /// The keyledger release the member runs (`0.1.0`); `null` when it did not answer. During a
    /// rolling upgrade this shows which nodes are done.
    #[serde(default)]
    #[schema(required)]
    pub release: Option<String>,
}

/// `GET /v1/cluster`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ClusterStatus {
    pub node_id: u64,
    #[schema(required)]
    pub leader: Option<u64>,
    pub term: u64,
    pub members: Vec<Member>,
}

/// `POST /v1/cluster/members`: a node to add. It must be running and reachable at `address`
/// (started with `--standby`, or with `--join`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AddMemberRequest {
    pub node_id: u64,
    /// `host:port` the other nodes reach it at.
    pub address: String,
}

/// `GET /healthz` and `GET /readyz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Health {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
