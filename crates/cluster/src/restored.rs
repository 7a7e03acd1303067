//! The first start on a restored data dir (`keyledger admin restore`): the node founds a new
//! cluster of one on the restored ledger, then, before it lets anyone join, snapshots its state
//! and purges its Raft log up to that snapshot. A node that joins then receives the whole ledger
//! by snapshot: the log alone would give it the new cluster's entries on top of an empty ledger.
//! The marker the restore left is removed last, so a start interrupted before that does it again.

use std::time::Duration;

use keyledger_ledger::restore::{restored_for, RESTORE_MARKER};

use crate::node::ClusterNode;
use crate::ClusterError;

/// How long the snapshot and the purge of a restored ledger may take (a snapshot only records
/// where the ledger ends; it copies nothing).
const SEAL_DEADLINE: Duration = Duration::from_secs(60);

/// Is this node's data dir a restore whose first start has not finished?
pub(crate) fn is_pending(node: &ClusterNode) -> bool {
    node.data_dir().join(RESTORE_MARKER).exists()
}

/// On the sole member of a new cluster whose log is applied: if its data dir is a restore, makes
/// the restored ledger reach joining nodes by snapshot (see the module's doc). Idempotent.
pub(crate) async fn seal(node: &ClusterNode) -> Result<(), ClusterError> {
    let Some(restored_for) = restored_for(node.data_dir())? else { return Ok(()) };
    if restored_for != node.id() {
        return Err(ClusterError::Io(format!(
            "this data dir was restored for node {restored_for}; start it with --node-id {restored_for}"
        )));
    }
    let applied = node.metrics().last_applied.map_or(0, |id| id.index);
    let stopped = |e: openraft::error::Fatal<u64>| ClusterError::Raft(e.to_string());
    node.raft().trigger().snapshot().await.map_err(stopped)?;
    if !node
        .wait_for(tokio::time::Instant::now() + SEAL_DEADLINE, |m| m.snapshot.is_some_and(|id| id.index >= applied))
        .await
    {
        return Err(ClusterError::Raft("the restored ledger's first snapshot was not made in time".into()));
    }
    let snapshot = node.metrics().snapshot.map_or(applied, |id| id.index);
    node.raft().trigger().purge_log(snapshot).await.map_err(stopped)?;
    if !node
        .wait_for(tokio::time::Instant::now() + SEAL_DEADLINE, |m| m.purged.is_some_and(|id| id.index >= snapshot))
        .await
    {
        return Err(ClusterError::Raft("the restored node's log was not purged in time".into()));
    }
    let marker = node.data_dir().join(RESTORE_MARKER);
    std::fs::remove_file(&marker).map_err(|e| crate::bootstrap::io_error(&marker, e))?;
    tracing::info!(
        events = node.ledger().state().head().seq,
        snapshot,
        "restored ledger ready: new members receive it by snapshot"
    );
    Ok(())
}
