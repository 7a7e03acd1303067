//! What a node says about itself and the cluster: its own status (answered to peers), the
//! view of every member, and whether it is ready to serve fresh reads.

use std::collections::BTreeSet;
use std::time::Duration;

use keyledger_ledger::NodeId;
use openraft::ServerState;

use super::ClusterNode;
use crate::network::{base_url, path};
use crate::rpc::NodeStatus;

/// A node is ready when it knows a leader and has applied all but this many log entries.
const READY_MAX_LAG: u64 = 100;

impl ClusterNode {
    pub(crate) fn own_status(&self) -> NodeStatus {
        NodeStatus {
            node_id: self.id,
            applied_index: self.metrics().last_applied.map(|id| id.index),
            ledger_head: self.ledger.state().head(),
        }
    }

    /// The status of every member, asking each peer (briefly) for its own.
    pub async fn cluster_view(&self) -> ClusterView {
        let metrics = self.metrics();
        let membership = metrics.membership_config.membership().clone();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let mut members = Vec::new();
        let asks = membership.nodes().map(|(id, node)| {
            let (id, addr) = (*id, node.addr.clone());
            async move {
                let (status, release) = if id == self.id {
                    (Some(self.own_status()), Some(crate::protocol::RELEASE.to_owned()))
                } else {
                    let base = base_url(&addr);
                    let timeout = Duration::from_millis(500);
                    match self.rpc.call_answered_by::<_, NodeStatus>(id, &base, path::STATUS, &(), timeout).await {
                        Ok(answered) => (Some(answered.value), answered.speaks.release),
                        Err(_) => (None, None),
                    }
                };
                (id, addr, status, release)
            }
        });
        for (id, address, status, release) in futures::future::join_all(asks).await {
            members.push(MemberView { node_id: id, address, voter: voters.contains(&id), status, release });
        }
        ClusterView {
            node_id: self.id,
            leader: metrics.current_leader,
            term: metrics.current_term,
            last_log_index: metrics.last_log_index.unwrap_or(0),
            members,
        }
    }

    /// `Ok` when this node can serve fresh reads: it knows a leader and is not far behind.
    pub fn readiness(&self) -> Result<(), String> {
        let metrics = self.metrics();
        if let Err(fatal) = &metrics.running_state {
            return Err(format!("raft stopped: {fatal}"));
        }
        if metrics.current_leader.is_none() || metrics.state == ServerState::Candidate {
            return Err("no leader is known".into());
        }
        let applied = metrics.last_applied.map_or(0, |id| id.index);
        let last = metrics.last_log_index.unwrap_or(0);
        if last.saturating_sub(applied) > READY_MAX_LAG {
            return Err(format!("applying the log: {applied} of {last}"));
        }
        if crate::restored::is_pending(self) {
            return Err("preparing the restored ledger for new members".into());
        }
        if self.ledger.state().accounts().next().is_none() {
            return Err("the cluster has no data yet".into());
        }
        if !self.is_member() {
            return Err("this node is not a member of the cluster (it was removed)".into());
        }
        Ok(())
    }
}

/// The cluster as one node sees it.
#[derive(Debug, Clone)]
pub struct ClusterView {
    pub node_id: NodeId,
    pub leader: Option<NodeId>,
    pub term: u64,
    pub last_log_index: u64,
    pub members: Vec<MemberView>,
}

#[derive(Debug, Clone)]
pub struct MemberView {
    pub node_id: NodeId,
    pub address: String,
    pub voter: bool,
    /// `None` when the member did not answer in time.
    pub status: Option<NodeStatus>,
    /// The release the member runs, as it said; `None` when it did not answer (or runs a
    /// release from before releases were named).
    pub release: Option<String>,
}
