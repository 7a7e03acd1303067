//! First start of a cluster: the `default` account, its `admin` owner, and that user's first
//! key, whose secret is written once to `<data-dir>/bootstrap-admin.key` (mode 0600).
//!
//! The secret goes to a `.tmp` file *before* the proposal, and the file is renamed only once
//! the bootstrap committed. A crash in between leaves a `.tmp` that the next start resolves by
//! asking the ledger whether that key exists — so the committed key is never lost, and a key
//! that never committed is never handed out.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keyledger_model::{AccountId, Actor, Command, KeyDigest, KeyId, NewKey, Outcome, Proposal, UserId};

use crate::node::{ClusterNode, ProposeError};
use crate::ClusterError;

pub const BOOTSTRAP_KEY_FILE: &str = "bootstrap-admin.key";
const ADMIN_NAME: &str = "admin";

/// Bootstraps the default account if this single-node cluster has none yet. Returns the path
/// of the key file when it was written by this call.
pub async fn bootstrap_default_account(node: &ClusterNode) -> Result<Option<PathBuf>, ClusterError> {
    if node.is_initialized().await? {
        if !node.is_sole_voter() {
            // A member of a larger cluster: the account came (or will come) through the log.
            return Ok(None);
        }
    } else {
        node.initialize_single().await?;
    }
    let final_path = node.data_dir().join(BOOTSTRAP_KEY_FILE);
    let tmp_path = node.data_dir().join(format!("{BOOTSTRAP_KEY_FILE}.tmp"));
    let account = AccountId::default_account();

    // Wait for this node's own state to be current (it is the only voter).
    if !node.wait_leader_self(Duration::from_secs(10)).await {
        return Err(ClusterError::Raft("this node did not become leader of its own cluster".into()));
    }
    node.wait_applied(node.metrics().last_log_index.unwrap_or(0), Duration::from_secs(10)).await;
    // A restored ledger already holds the account; it must reach new members by snapshot.
    crate::restored::seal(node).await?;
    resolve_leftover(node, &tmp_path, &final_path)?;
    if node.ledger().state().account(&account).is_some() {
        return Ok(None);
    }

    let now = node.now();
    let secret = node.generate_secret();
    let (admin, key_id) = node.with_rng(|rng| (UserId::generate(now, rng), KeyId::generate(now, rng)));
    write_secret_file(&tmp_path, secret.expose())?;
    let proposal = Proposal {
        time: now,
        request_id: format!("bootstrap-{}", key_id),
        actor: Actor::System,
        account,
        command: Command::Bootstrap {
            admin,
            admin_name: ADMIN_NAME.into(),
            key: NewKey {
                id: key_id,
                owner: None,
                name: "bootstrap".into(),
                description: "first key of the account owner, made at cluster bootstrap".into(),
                scope: None,
                digest: secret.digest(),
                hint: secret.hint(),
                // The operator's way in must not lapse unnoticed; rotate it once set up.
                expires_at: None,
            },
        },
    };
    match node.propose(proposal).await {
        Ok(committed) => match committed.outcome {
            Outcome::Accepted { .. } => {
                std::fs::rename(&tmp_path, &final_path).map_err(|e| io_error(&final_path, e))?;
                Ok(Some(final_path))
            }
            other => {
                let _ = std::fs::remove_file(&tmp_path);
                Err(ClusterError::Raft(format!("bootstrap refused: {other:?}")))
            }
        },
        Err(ProposeError::Unavailable(why)) => {
            let _ = std::fs::remove_file(&tmp_path);
            Err(ClusterError::Raft(why))
        }
        // Keep the .tmp: the next start learns from the ledger whether it committed.
        Err(ProposeError::OutcomeUnknown(why)) => Err(ClusterError::Raft(why)),
    }
}

/// A `.tmp` secret from an interrupted bootstrap: keep it if its key made it into the ledger.
fn resolve_leftover(node: &ClusterNode, tmp: &Path, final_path: &Path) -> Result<(), ClusterError> {
    let Ok(text) = std::fs::read_to_string(tmp) else {
        return Ok(());
    };
    let committed = node.ledger().state().key_by_digest(&KeyDigest::of(text.trim())).is_some();
    if committed && !final_path.exists() {
        std::fs::rename(tmp, final_path).map_err(|e| io_error(final_path, e))?;
        tracing::info!(path = %final_path.display(), "recovered the bootstrap key file of an interrupted start");
    } else {
        std::fs::remove_file(tmp).map_err(|e| io_error(tmp, e))?;
    }
    Ok(())
}

/// Writes `secret` and a newline to a new file readable only by its owner, synced to disk.
pub(crate) fn write_secret_file(path: &Path, secret: &str) -> Result<(), ClusterError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    file.write_all(format!("{secret}\n").as_bytes()).map_err(|e| io_error(path, e))?;
    file.sync_all().map_err(|e| io_error(path, e))
}

pub(crate) fn io_error(path: &Path, e: std::io::Error) -> ClusterError {
    ClusterError::Io(format!("{}: {e}", path.display()))
}
