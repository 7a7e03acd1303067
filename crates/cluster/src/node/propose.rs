//! Writes: a complete proposal made here if this node leads, else passed on to the leader
//! (`forward.rs` batches what a follower sends), retried across a leader change until a
//! deadline and never once its outcome is unknown.

use std::time::Duration;

use keyledger_ledger::NodeId;
use keyledger_model::{Outcome, Proposal};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::ClusterNode;
use crate::network::base_url;

/// How long a write may take end to end before the caller gets a 503.
pub(super) const WRITE_DEADLINE: Duration = Duration::from_secs(5);
/// How long a write waits for a leader to be known before giving up as `unavailable`.
const LEADER_WAIT: Duration = Duration::from_secs(3);
/// A leader that has not heard from a quorum for this long does not take new writes: they
/// could not commit, and answering `unavailable` at once beats `outcome_unknown` later.
const QUORUM_FRESHNESS_MS: u64 = 1_000;

/// A write that committed: the Raft log index and what applying it answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Committed {
    pub index: u64,
    pub outcome: Outcome,
    /// A retry with the same `Idempotency-Key`: `index` and `outcome` are the first request's,
    /// and nothing new was written. A secret made for this retry was never stored.
    pub replayed: bool,
}

impl Committed {
    pub(crate) fn new(index: u64, outcome: Outcome) -> Committed {
        match outcome {
            Outcome::Replayed { index, outcome } => Committed { index, outcome: *outcome, replayed: true },
            outcome => Committed { index, outcome, replayed: false },
        }
    }
}

/// Why a write was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// Nothing was proposed, so nothing will ever be written.
    #[error("{0}")]
    Unavailable(String),
    /// It was proposed but not confirmed in time: it may still commit.
    #[error("{0}")]
    OutcomeUnknown(String),
}

/// A leader's refusal as sent back over RPC.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Refusal {
    NotLeader(Option<(NodeId, String)>),
    Unavailable(String),
    OutcomeUnknown(String),
}

impl ClusterNode {
    /// Proposes a complete proposal: here if this node leads, else at the leader. Retries a
    /// leader change until the deadline; never retries once the outcome is unknown.
    pub async fn propose(&self, proposal: Proposal) -> Result<Committed, ProposeError> {
        if !self.is_member() {
            return Err(ProposeError::Unavailable("this node is not a member of the cluster".into()));
        }
        // This node's disk: a follower would store the entry too.
        self.disk.check().map_err(|why| ProposeError::Unavailable(format!("the write was not accepted: {why}")))?;
        let deadline = Instant::now() + WRITE_DEADLINE;
        let leader_deadline = Instant::now() + LEADER_WAIT;
        let mut last_problem = String::from("no leader is known");
        loop {
            let leader = self.current_leader_until(leader_deadline).await;
            let attempt = match leader {
                None => Err(Refusal::Unavailable(last_problem.clone())),
                Some(leader) if leader == self.id => self.propose_here(proposal.clone()).await,
                Some(leader) => self.forward(leader, &proposal, deadline).await,
            };
            match attempt {
                Ok(committed) => return Ok(committed),
                Err(Refusal::OutcomeUnknown(why)) => return Err(ProposeError::OutcomeUnknown(why)),
                Err(Refusal::NotLeader(_)) => last_problem = "leadership is changing".into(),
                Err(Refusal::Unavailable(why)) => last_problem = why,
            }
            if Instant::now() + Duration::from_millis(100) >= deadline || leader.is_none() {
                return Err(ProposeError::Unavailable(format!("the write was not accepted: {last_problem}")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(super) async fn current_leader_until(&self, until: Instant) -> Option<NodeId> {
        self.wait_for(until, |m| m.current_leader.is_some()).await;
        self.metrics().current_leader
    }

    async fn forward(&self, leader: NodeId, proposal: &Proposal, deadline: Instant) -> Result<Committed, Refusal> {
        let Some(addr) = self.member_address(leader) else {
            return Err(Refusal::Unavailable("the leader's address is unknown".into()));
        };
        let committed = self.forwarder.forward((leader, base_url(&addr)), proposal.clone(), deadline).await?;
        // Read-your-writes on this node: wait (briefly) until it has applied the write too.
        self.wait_applied(committed.index, Duration::from_secs(2)).await;
        Ok(committed)
    }

    /// Proposes on this node, which must be the leader.
    pub(crate) async fn propose_here(&self, proposal: Proposal) -> Result<Committed, Refusal> {
        let metrics = self.metrics();
        if metrics.current_leader != Some(self.id) {
            let leader = metrics.current_leader.and_then(|id| self.member_address(id).map(|a| (id, a)));
            return Err(Refusal::NotLeader(leader));
        }
        if metrics.millis_since_quorum_ack.is_none_or(|ms| ms > QUORUM_FRESHNESS_MS) {
            return Err(Refusal::Unavailable("the leader cannot reach a quorum".into()));
        }
        if let Err(why) = self.disk.check() {
            return Err(Refusal::Unavailable(format!("on the leader, node {}: {why}", self.id)));
        }
        self.batcher.propose(proposal).await
    }
}
