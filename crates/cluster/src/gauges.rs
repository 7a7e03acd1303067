//! [`NodeGauges`]: this node's Raft and ledger positions as `GET /metrics` shows them, read
//! from the node at the moment of asking.
//!
//! They are read here, beside the openraft wiring they come from, so the API crate only
//! renders numbers and needs to know nothing of openraft's metrics types.

use keyledger_model::Span;

use crate::ClusterNode;

/// This node's state as the gauges show it.
#[derive(Debug, Clone, Default)]
pub struct NodeGauges {
    pub node_id: u64,
    /// A member of the cluster (not before joining, not after removal).
    pub member: bool,
    /// `/readyz` would answer 200.
    pub ready: bool,
    pub role: RaftRole,
    /// The leader this node knows of.
    pub leader: Option<u64>,
    pub term: u64,
    pub last_log_index: u64,
    pub applied_index: u64,
    /// The last log index in this node's snapshot; 0 when none.
    pub snapshot_index: u64,
    /// The last log index purged here; 0 when none.
    pub purged_index: u64,
    /// Encoded bytes of the Raft log entries kept here.
    pub log_bytes: u64,
    /// On the leader: milliseconds since a quorum last acknowledged it.
    pub quorum_ack_ms: Option<u64>,
    pub voters: u64,
    pub learners: u64,
    /// On the leader: each other member's highest log index known to be replicated to it.
    pub replication: Vec<(u64, u64)>,
    /// The seq of the last event in this node's ledger.
    pub ledger_head_seq: u64,
    /// Keys in the verification index, deleted ones included.
    pub keys: u64,
    /// Keys, enabled or disabled, expiring within each of [`EXPIRY_WINDOWS`].
    pub keys_expiring: [u64; 3],
    /// Free bytes on the data dir's filesystem, and the reserve below which writes are refused.
    pub disk_free_bytes: u64,
    pub disk_reserve_bytes: u64,
    /// Webhook deliveries this node finished while leading: delivered, and given up on.
    pub webhook_delivered: u64,
    pub webhook_failed: u64,
    /// Webhook delivery attempts this node made, retries included.
    pub webhook_attempts: u64,
    /// On the leader: ledger positions the furthest-behind webhook has still to look at.
    pub webhook_lag: u64,
}

/// The windows of the `keyledger_keys_expiring` gauge, with their label values.
pub const EXPIRY_WINDOWS: [(&str, Span); 3] =
    [("1d", Span(DAY_MS)), ("7d", Span(7 * DAY_MS)), ("30d", Span(30 * DAY_MS))];
const DAY_MS: i64 = 24 * 3_600_000;

/// The Raft role of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RaftRole {
    Leader,
    Follower,
    Candidate,
    #[default]
    Learner,
    Shutdown,
}

impl RaftRole {
    /// Every role, in the order they are shown.
    pub const ALL: [RaftRole; 5] =
        [RaftRole::Leader, RaftRole::Follower, RaftRole::Candidate, RaftRole::Learner, RaftRole::Shutdown];

    /// The role's name as a label value.
    pub fn label(self) -> &'static str {
        match self {
            RaftRole::Leader => "leader",
            RaftRole::Follower => "follower",
            RaftRole::Candidate => "candidate",
            RaftRole::Learner => "learner",
            RaftRole::Shutdown => "shutdown",
        }
    }
}

impl NodeGauges {
    /// Reads the node's Raft metrics (one copy of openraft's latest report) and its ledger.
    pub fn read(node: &ClusterNode) -> NodeGauges {
        let raft = node.metrics();
        let role = match &raft.state {
            _ if raft.running_state.is_err() => RaftRole::Shutdown,
            state if state.is_leader() => RaftRole::Leader,
            state if state.is_follower() => RaftRole::Follower,
            state if state.is_candidate() => RaftRole::Candidate,
            state if state.is_learner() => RaftRole::Learner,
            _ => RaftRole::Shutdown,
        };
        let membership = raft.membership_config.membership();
        let replication = raft
            .replication
            .iter()
            .flatten()
            .filter(|(peer, _)| **peer != raft.id)
            .map(|(peer, matched)| (*peer, matched.map_or(0, |log_id| log_id.index)))
            .collect();
        let now = node.now();
        let (ledger_head_seq, keys, keys_expiring) = {
            let state = node.ledger().state();
            let expiring = state.keys_expiring_within(now, EXPIRY_WINDOWS.map(|(_, span)| span));
            (state.head().seq, state.key_count() as u64, expiring)
        };
        let (disk_free_bytes, disk_reserve_bytes) = node.disk_space();
        let webhooks = node.webhook_gauges();
        let (webhook_delivered, webhook_failed) = webhooks.deliveries();
        NodeGauges {
            disk_free_bytes,
            disk_reserve_bytes,
            node_id: node.id(),
            member: node.is_member(),
            ready: node.readiness().is_ok(),
            role,
            leader: raft.current_leader,
            term: raft.current_term,
            last_log_index: raft.last_log_index.unwrap_or(0),
            applied_index: raft.last_applied.map_or(0, |log_id| log_id.index),
            snapshot_index: raft.snapshot.map_or(0, |log_id| log_id.index),
            purged_index: raft.purged.map_or(0, |log_id| log_id.index),
            log_bytes: node.raft_log_bytes(),
            quorum_ack_ms: raft.millis_since_quorum_ack.filter(|_| role == RaftRole::Leader),
            voters: membership.voter_ids().count() as u64,
            learners: membership.learner_ids().count() as u64,
            replication,
            ledger_head_seq,
            keys,
            keys_expiring,
            webhook_delivered,
            webhook_failed,
            webhook_attempts: webhooks.attempts(),
            webhook_lag: webhooks.lag(),
        }
    }

    /// On the leader: log entries a peer still lacks, given its matched index.
    pub fn lag(&self, matched: u64) -> u64 {
        self.last_log_index.saturating_sub(matched)
    }
}
