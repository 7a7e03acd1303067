//! Membership: joining a cluster (`--join`), and adding or removing a member on the leader —
//! a new node proves who it is, joins as a learner and is promoted once it has caught up — and
//! what a removed node does.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use keyledger_ledger::{Node, NodeId};
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::ChangeMembers;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::ClusterNode;
use crate::network::{base_url, path, CallError};
use crate::peer_auth::ANY_NODE;
use crate::rpc::{JoinRequest, NodeStatus};

/// Written to the data dir of a node the leader removed.
pub(super) const REMOVED_MARKER: &str = "removed-from-cluster";

/// How long the leader waits for a would-be member to prove it is a node of this cluster.
const IDENTIFY_DEADLINE: Duration = Duration::from_secs(3);
/// A learner is promoted once its replicated log is within this many entries of the leader's.
const CAUGHT_UP_LAG: u64 = 100;
/// An add answers that the learner stays a learner once its replication made no progress for
/// this long (a node that answered but cannot take the log: wrong version, full disk, gone) …
const CATCH_UP_STALL: Duration = Duration::from_secs(5);
/// … or after this long in all (a very long catch-up goes on in the background; adding the
/// node again promotes it once it is done).
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(60);
/// How long the promotion to voter may take to commit.
const PROMOTION_DEADLINE: Duration = Duration::from_secs(10);

/// openraft's refusals of a membership change as sentences (never its debug strings).
fn membership_error(e: RaftError<NodeId, ClientWriteError<NodeId, Node>>) -> MembershipRefusal {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
            MembershipRefusal::Unavailable("this node stopped leading during the change; retry it".into())
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(ChangeMembershipError::InProgress(p))) => {
            let at = p.membership_log_id.map_or(String::new(), |id| format!(" (at log index {})", id.index));
            MembershipRefusal::Conflict(format!(
                "an earlier membership change{at} is not committed yet; retry once it is"
            ))
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(ChangeMembershipError::EmptyMembership(_))) => {
            MembershipRefusal::Invalid("the change would leave the cluster without voters".into())
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(ChangeMembershipError::LearnerNotFound(l))) => {
            MembershipRefusal::Conflict(format!(
                "node {} is no longer a learner of the cluster (removed meanwhile?)",
                l.node_id
            ))
        }
        RaftError::Fatal(_) => MembershipRefusal::Unavailable("raft has stopped on this node".into()),
    }
}

/// A change of members (`POST`/`DELETE /v1/cluster/members`, and `--join`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    Add { node_id: NodeId, address: String },
    Remove { node_id: NodeId },
}

/// Why a membership change was not made (or not completed): always a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum MembershipRefusal {
    #[error("{0}")]
    NotFound(String),
    /// A request that cannot succeed as made: a bad address, one where no node of this
    /// cluster answers, the last voter.
    #[error("{0}")]
    Invalid(String),
    /// The cluster's state stands in the way: a learner not caught up, an add cancelled, an
    /// earlier change not committed yet.
    #[error("{0}")]
    Conflict(String),
    /// No leader, the leader unreachable, or the change not confirmed.
    #[error("{0}")]
    Unavailable(String),
}

impl ClusterNode {
    /// Asks the cluster at `url` to add this node, retrying until it has (learner, caught up,
    /// then voter). Any member can be asked: it forwards to the leader. The member is first
    /// asked who it is (a signed answer proves it is a node of this cluster), so the join
    /// request itself is signed for that node alone.
    pub async fn join(&self, url: &str) {
        let base = base_url(url);
        let request = JoinRequest { node_id: self.id, address: self.advertise.clone() };
        let mut pause = Duration::from_millis(200);
        loop {
            let asked = async {
                let member = self
                    .rpc
                    .call_answered_by::<_, NodeStatus>(ANY_NODE, &base, path::STATUS, &(), IDENTIFY_DEADLINE)
                    .await?
                    .from;
                self.rpc
                    .call::<_, Result<(), String>>(member, &base, path::JOIN, &request, Duration::from_secs(120))
                    .await
            };
            match asked.await {
                Ok(Ok(())) => {
                    tracing::info!(node_id = self.id, "joined the cluster as a voter");
                    return;
                }
                Ok(Err(refused)) => tracing::warn!(%refused, "join refused; retrying"),
                // Already logged by the call, at most every 30 s.
                Err(CallError::Refused(_) | CallError::Incompatible(_)) => {}
                Err(e) => tracing::warn!(error = %e, "cannot reach the cluster to join; retrying"),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(3));
        }
    }

    /// True when this node is the only voter of its cluster.
    pub fn is_sole_voter(&self) -> bool {
        let metrics = self.metrics();
        let voters: Vec<NodeId> = metrics.membership_config.membership().voter_ids().collect();
        voters == [self.id]
    }

    /// True when the latest membership lists this node as a voter.
    pub fn is_voter(&self) -> bool {
        self.metrics().membership_config.membership().voter_ids().any(|id| id == self.id)
    }

    /// Handles a join request (`--join`): see [`ClusterNode::change_members`].
    pub(crate) async fn admit(&self, node_id: NodeId, address: String) -> Result<(), String> {
        self.change_members(MembershipChange::Add { node_id, address }).await.map_err(|e| e.to_string())
    }

    /// Adds a node or removes one, live or dead. Made on the leader; any node passes it there.
    ///
    /// An operator's typo must not cost the cluster its writes, so a node is added only once it
    /// has proved, at the address given, to be a node of this cluster with the id given
    /// (otherwise nothing changes); then as a learner, which no quorum needs; and promoted to
    /// voter only once it has caught up. One that does not catch up stays a learner (the
    /// answer says so), and a learner can always be removed, which also cancels an add still
    /// waiting for it.
    pub async fn change_members(&self, change: MembershipChange) -> Result<(), MembershipRefusal> {
        let metrics = self.metrics();
        match metrics.current_leader {
            Some(leader) if leader == self.id => {}
            Some(leader) => {
                let addr = self
                    .member_address(leader)
                    .ok_or_else(|| MembershipRefusal::Unavailable("the leader's address is unknown".into()))?;
                return self
                    .rpc
                    .call::<_, Result<(), MembershipRefusal>>(
                        leader,
                        &base_url(&addr),
                        path::MEMBERS,
                        &change,
                        Duration::from_secs(110),
                    )
                    .await
                    .map_err(|e| MembershipRefusal::Unavailable(format!("the leader cannot be asked: {e}")))?;
            }
            None => return Err(MembershipRefusal::Unavailable("no leader is known".into())),
        }
        let membership = metrics.membership_config.membership().clone();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        match change {
            MembershipChange::Add { node_id, address } => {
                if crate::restored::is_pending(self) {
                    // Its log would give the new member the new cluster's entries without the ledger.
                    return Err(MembershipRefusal::Unavailable(
                        "this node is still preparing its restored ledger; try again in a moment".into(),
                    ));
                }
                let address = address.trim().to_string();
                if address.is_empty() {
                    return Err(MembershipRefusal::Invalid("a new member needs the address it listens on".into()));
                }
                let known = membership.get_node(&node_id).map(|n| n.addr.clone());
                if let Some(known) = &known {
                    if *known != address {
                        return Err(MembershipRefusal::Invalid(format!(
                            "node {node_id} is already a member, at {known}; remove it first to add it at {address}"
                        )));
                    }
                    if voters.contains(&node_id) {
                        return Ok(());
                    }
                }
                self.identify(node_id, &address).await?;
                if known.is_none() {
                    tracing::info!(node_id, %address, "the new member answered as a node of this cluster: adding it as a learner");
                    self.raft
                        .add_learner(node_id, Node { addr: address.clone() }, false)
                        .await
                        .map_err(membership_error)?;
                }
                self.wait_caught_up(node_id, &address).await?;
                tracing::info!(node_id, "the learner has caught up: promoting it to voter");
                let promote = ChangeMembers::AddVoterIds(BTreeSet::from([node_id]));
                match tokio::time::timeout(PROMOTION_DEADLINE, self.raft.change_membership(promote, false)).await {
                    Ok(done) => {
                        done.map_err(membership_error)?;
                    }
                    Err(_) => {
                        return Err(MembershipRefusal::Unavailable(format!(
                            "the promotion of node {node_id} to voter was not confirmed within {PROMOTION_DEADLINE:?}: \
                             it needs node {node_id} to answer; if it is gone, remove it"
                        )))
                    }
                }
            }
            MembershipChange::Remove { node_id } => {
                if membership.get_node(&node_id).is_none() {
                    return Err(MembershipRefusal::NotFound(format!("node {node_id} is not a member")));
                }
                if voters.len() == 1 && voters.contains(&node_id) {
                    return Err(MembershipRefusal::Invalid("the last voter cannot be removed".into()));
                }
                tracing::info!(node_id, "removing a member");
                // Not retained as a learner either: the node is out of the cluster.
                let remove = if voters.contains(&node_id) {
                    ChangeMembers::RemoveVoters(BTreeSet::from([node_id]))
                } else {
                    ChangeMembers::RemoveNodes(BTreeSet::from([node_id]))
                };
                let address = membership.get_node(&node_id).map(|n| n.addr.clone());
                self.raft.change_membership(remove, false).await.map_err(membership_error)?;
                // The removed node may never receive the entry that leaves it out: tell it.
                if let Some(address) = address {
                    let base = base_url(&address);
                    if let Err(e) =
                        self.rpc.call::<_, ()>(node_id, &base, path::REMOVED, &(), Duration::from_secs(2)).await
                    {
                        tracing::info!(node_id, error = %e, "could not tell the removed node (it may be down)");
                    }
                }
            }
        }
        Ok(())
    }

    /// Asks whoever listens at `address` to prove it is node `node_id` of this cluster: a
    /// request signed for that node alone, whose answer must be signed by it over the
    /// request's nonce. What a listener there receives is useless anywhere else.
    async fn identify(&self, node_id: NodeId, address: &str) -> Result<(), MembershipRefusal> {
        let base = base_url(address);
        let why = match self.rpc.call::<_, NodeStatus>(node_id, &base, path::STATUS, &(), IDENTIFY_DEADLINE).await {
            Ok(status) if status.node_id == node_id => return Ok(()),
            Ok(status) => format!("node {} answered there, not node {node_id}", status.node_id),
            Err(CallError::Unreachable(_)) => "nothing accepts connections there".to_string(),
            Err(CallError::Refused(_)) => {
                "a node answered but refused this node's signature (is it of another cluster, or is its clock off?)"
                    .to_string()
            }
            Err(CallError::NotANode(why) | CallError::Incompatible(why) | CallError::Failed(why)) => why,
        };
        tracing::warn!(node_id, %address, %why, "refused to add a member that did not answer as a node of this cluster");
        Err(MembershipRefusal::Invalid(format!(
            "no keyledger node of this cluster answers at {address} as node {node_id} ({why}); the membership is \
             unchanged"
        )))
    }

    /// Waits until learner `node_id`'s replicated log is within [`CAUGHT_UP_LAG`] of this
    /// leader's. Gives up if it makes no progress for [`CATCH_UP_STALL`], after
    /// [`CATCH_UP_DEADLINE`] in all, or once the learner was removed (the add is cancelled).
    async fn wait_caught_up(&self, node_id: NodeId, address: &str) -> Result<(), MembershipRefusal> {
        let started = Instant::now();
        let mut progress: (Option<u64>, Instant) = (None, started);
        loop {
            let metrics = self.metrics();
            if metrics.membership_config.membership().get_node(&node_id).is_none() {
                return Err(MembershipRefusal::Conflict(format!(
                    "the addition of node {node_id} was cancelled: it was removed meanwhile"
                )));
            }
            if metrics.current_leader != Some(self.id) {
                return Err(MembershipRefusal::Unavailable(format!(
                    "this node stopped leading while node {node_id} caught up; it stays a learner: add it again"
                )));
            }
            let matched =
                metrics.replication.as_ref().and_then(|r| r.get(&node_id).cloned().flatten()).map(|l| l.index);
            let last = metrics.last_log_index.unwrap_or(0);
            if matched.is_some_and(|m| last.saturating_sub(m) <= CAUGHT_UP_LAG) {
                return Ok(());
            }
            let now = Instant::now();
            if matched != progress.0 {
                progress = (matched, now);
            }
            if now.duration_since(progress.1) >= CATCH_UP_STALL || now.duration_since(started) >= CATCH_UP_DEADLINE {
                let at = matched.map_or("nothing yet".to_string(), |m| format!("index {m}"));
                tracing::warn!(node_id, %address, %at, last, "the new learner has not caught up: not promoted");
                return Err(MembershipRefusal::Conflict(format!(
                    "node {node_id} answered at {address} and was added as a learner, but has not caught up \
                     (it has {at} of {last}); it stays a learner, which no quorum needs, so writes go on: add it \
                     again to promote it once it has caught up, or remove it"
                )));
            }
            let mut watch = self.raft.metrics();
            let _ = tokio::time::timeout(Duration::from_millis(200), watch.changed()).await;
        }
    }

    /// This node was removed from the cluster: it stops answering as a member, now and after
    /// restarts (a new data dir is needed to join again).
    pub(crate) fn mark_removed(&self) {
        if let Err(e) = std::fs::write(self.data_dir.join(REMOVED_MARKER), b"removed from the cluster\n") {
            tracing::warn!(error = %e, "cannot record the removal in the data dir");
        }
        if !self.removed.swap(true, Ordering::SeqCst) {
            tracing::warn!("this node was removed from the cluster; it no longer serves as a member");
        }
    }
}

#[cfg(test)]
mod tests {
    use openraft::error::{ChangeMembershipError, ClientWriteError, EmptyMembership, Fatal, InProgress, RaftError};
    use openraft::{CommittedLeaderId, LogId};

    use super::*;

    #[test]
    fn openraft_refusals_become_sentences_without_debug_strings() {
        let log_id = Some(LogId::new(CommittedLeaderId::new(3, 1), 42));
        let in_progress = InProgress { committed: log_id, membership_log_id: log_id };
        let errors: Vec<RaftError<NodeId, ClientWriteError<NodeId, Node>>> = vec![
            RaftError::APIError(ClientWriteError::ChangeMembershipError(ChangeMembershipError::InProgress(
                in_progress,
            ))),
            RaftError::APIError(ClientWriteError::ChangeMembershipError(ChangeMembershipError::EmptyMembership(
                EmptyMembership {},
            ))),
            RaftError::Fatal(Fatal::Stopped),
        ];
        let refusals: Vec<MembershipRefusal> = errors.into_iter().map(membership_error).collect();
        assert!(matches!(&refusals[0], MembershipRefusal::Conflict(m) if m.contains("log index 42")), "{refusals:?}");
        assert!(matches!(&refusals[1], MembershipRefusal::Invalid(_)), "{refusals:?}");
        assert!(matches!(&refusals[2], MembershipRefusal::Unavailable(_)), "{refusals:?}");
        for refusal in &refusals {
            let text = refusal.to_string();
            assert!(!text.contains("LogId") && !text.contains("Some(") && !text.contains('{'), "{text}");
        }
    }
}
