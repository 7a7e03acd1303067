//! Linearizable reads: the read barrier a fresh read waits for, and waiting for this node to
//! lead or to have applied an index.

use std::time::Duration;

use tokio::time::Instant;

use super::ClusterNode;
use crate::network::{base_url, path};

/// How long a linearizable read may wait for the leader and for its own node to catch up.
const READ_BARRIER_DEADLINE: Duration = Duration::from_secs(3);

impl ClusterNode {
    /// A linearizable read barrier: once this returns, this node has applied everything the
    /// cluster had committed when it was called, so a read from local state sees every write
    /// acknowledged before. The leader confirms its leadership with a quorum (Raft's read
    /// index); a follower asks the leader for that index, then waits to have applied it.
    pub async fn read_barrier(&self) -> Result<u64, String> {
        let until = Instant::now() + READ_BARRIER_DEADLINE;
        let leader = self.current_leader_until(until).await.ok_or("no leader is known")?;
        let index = if leader == self.id {
            self.read_index_here().await?
        } else {
            let addr = self.member_address(leader).ok_or("the leader's address is unknown")?;
            let budget = until.saturating_duration_since(Instant::now());
            let base = base_url(&addr);
            self.rpc
                .call::<_, Result<u64, String>>(leader, &base, path::READ_INDEX, &(), budget)
                .await
                .map_err(|e| e.to_string())??
        };
        let budget = until.saturating_duration_since(Instant::now());
        if self.wait_applied(index, budget).await {
            Ok(index)
        } else {
            Err(format!("this node has not applied index {index} in time"))
        }
    }

    /// On the leader: the index a linearizable read must wait for, leadership confirmed.
    ///
    /// Not openraft's read index alone. That is the larger of the leader's first entry of its
    /// term and its commit index, and a leader that restarts before anyone else is elected
    /// resumes leading (openraft 0.9) knowing only the commit index it stored, which this log
    /// stores lazily: entries it had committed and acknowledged before the crash were missed
    /// (a chaos run read a key's disabled state back after its enable was acknowledged). Every
    /// committed entry is in the leader's log, so the read waits for the log's last entry; the
    /// cost is waiting for writes still in flight.
    pub(crate) async fn read_index_here(&self) -> Result<u64, String> {
        let (read, _) = self.raft.get_read_log_id().await.map_err(|e| e.to_string())?;
        // Read after leadership was confirmed: the log only grows while this node leads.
        let last = self.metrics().last_log_index.unwrap_or(0);
        Ok(read.map_or(0, |id| id.index).max(last))
    }

    /// Waits until this node leads; false if `timeout` passed first.
    pub async fn wait_leader_self(&self, timeout: Duration) -> bool {
        self.wait_for(Instant::now() + timeout, |m| m.current_leader == Some(self.id)).await
    }

    /// Waits until this node has applied `index`; false if `timeout` passed first.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> bool {
        self.wait_for(Instant::now() + timeout, |m| m.last_applied.is_some_and(|id| id.index >= index)).await
    }

    /// The highest log index applied here.
    pub fn applied_index(&self) -> u64 {
        self.metrics().last_applied.map_or(0, |id| id.index)
    }
}
