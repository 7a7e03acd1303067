//! Signed checkpoints, made by whichever node leads (design: `keyledger_model::checkpoint`).
//!
//! Each node keeps its own Ed25519 seed in `<data-dir>/checkpoint-signing.key` (mode 0600),
//! made on its first start. Leading, a node first registers its public key in the ledger
//! (`signer_registered`), then, every `every_events` events or `interval` (whichever comes
//! first, and only when something new was written), signs the size, head hash and Merkle root
//! of what it has stored and proposes that as a `checkpoint` event.

use std::path::Path;
use std::time::Duration;

use keyledger_ledger::LedgerError;
use keyledger_model::{AccountId, ChainHash, CheckpointSigner, Command, Proposal, TreeHash};
use rand_core::{OsRng, RngCore};

use crate::activity::system_proposal;
use crate::bootstrap::{io_error, write_secret_file};
use crate::node::ClusterNode;
use crate::ClusterError;

pub const SIGNING_KEY_FILE: &str = "checkpoint-signing.key";
/// How often the leader looks whether a checkpoint is due.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// When checkpoints are made.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointPolicy {
    /// A checkpoint once this many events were written since the last one...
    pub every_events: u64,
    /// ...or once this long has passed with anything new written.
    pub interval: Duration,
}

impl Default for CheckpointPolicy {
    fn default() -> CheckpointPolicy {
        CheckpointPolicy { every_events: 1000, interval: Duration::from_secs(60) }
    }
}

/// This node's signing key: read from the data dir, or made and stored on the first start.
pub(crate) fn load_or_create_signer(node_id: u64, data_dir: &Path) -> Result<CheckpointSigner, ClusterError> {
    let path = data_dir.join(SIGNING_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let seed = keyledger_model::hex::decode(text.trim())
                .ok_or_else(|| ClusterError::Io(format!("{}: not 64 lower-case hex digits", path.display())))?;
            Ok(CheckpointSigner::from_seed(node_id, seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            OsRng.fill_bytes(&mut seed);
            let tmp = data_dir.join(format!("{SIGNING_KEY_FILE}.tmp"));
            let _ = std::fs::remove_file(&tmp);
            write_secret_file(&tmp, &keyledger_model::hex::encode(&seed))?;
            std::fs::rename(&tmp, &path).map_err(|e| io_error(&path, e))?;
            Ok(CheckpointSigner::from_seed(node_id, seed))
        }
        Err(e) => Err(io_error(&path, e)),
    }
}

fn cluster_proposal(node: &ClusterNode, command: Command, kind: &str) -> Proposal {
    system_proposal(node, AccountId::cluster(), command, kind)
}

/// On the leader: registers this node's key if needed, then makes a checkpoint if one is due.
async fn tick(node: &ClusterNode, policy: CheckpointPolicy) {
    if node.metrics().current_leader != Some(node.id()) {
        return;
    }
    let signer = node.signer();
    let public_key = signer.public_key();
    if !node.ledger().state().is_signer(&public_key) {
        let command = Command::RegisterSigner { node: node.id(), public_key };
        match node.propose(cluster_proposal(node, command, "signer")).await {
            Ok(_) => tracing::info!(%public_key, "registered this node's checkpoint-signing key"),
            Err(e) => tracing::warn!(error = %e, "registering the checkpoint-signing key failed; retrying"),
        }
        return;
    }
    let (due, last_size) = {
        let state = node.ledger().state();
        let now = node.now();
        let head = state.head().seq;
        match state.last_checkpoint() {
            None => (head > 0, 0),
            Some(last) => {
                let since = head - last.seq;
                let waited = Duration::from_millis(now.0.saturating_sub(last.time.0).max(0) as u64);
                (since >= policy.every_events || (since > 0 && waited >= policy.interval), last.tree_size)
            }
        }
    };
    if !due {
        return;
    }
    let (size, head, root) = match stored_statement(node) {
        Ok(Some((size, head, root))) if size > last_size => (size, head, root),
        Ok(_) => return,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the ledger's Merkle tree for a checkpoint");
            return;
        }
    };
    let checkpoint = signer.sign(size, root, head);
    match node.propose(cluster_proposal(node, Command::Checkpoint(checkpoint), "checkpoint")).await {
        Ok(committed) => tracing::debug!(size, outcome = ?committed.outcome, "checkpoint"),
        Err(e) => tracing::warn!(error = %e, "proposing a checkpoint failed; retrying"),
    }
}

/// The size, head hash and Merkle root of what this node has stored.
fn stored_statement(node: &ClusterNode) -> Result<Option<(u64, ChainHash, TreeHash)>, LedgerError> {
    let ledger = node.ledger();
    let size = ledger.stored_size();
    let Some(entry) = ledger.entry(size)? else {
        return Ok(None);
    };
    Ok(Some((size, entry.event.hash, ledger.merkle_root(size)?)))
}

/// Starts the checkpoint loop; it runs until the process ends.
pub(crate) fn spawn(node: &std::sync::Arc<ClusterNode>, policy: CheckpointPolicy) {
    let weak = std::sync::Arc::downgrade(node);
    tokio::spawn(async move {
        let mut timer = tokio::time::interval(CHECK_EVERY);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            timer.tick().await;
            let Some(node) = weak.upgrade() else { return };
            tick(&node, policy).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_file_round_trips_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_signer(1, dir.path()).unwrap();
        let again = load_or_create_signer(1, dir.path()).unwrap();
        assert_eq!(first.public_key(), again.public_key());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(SIGNING_KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(dir.path().join(SIGNING_KEY_FILE), "not hex").unwrap();
        assert!(load_or_create_signer(1, dir.path()).is_err());
    }
}
