//! The cluster secret: 32 random bytes every member holds. Every `/internal/*` request is
//! signed with a key derived from it (`peer_auth.rs`) and every node demands that signature
//! before it acts on one; the secret itself never goes on the wire. Without it, anyone who
//! reaches a node's port could pose as a leader, vote, or change the members: forge the ledger.
//!
//! Each node keeps it in `<data-dir>/cluster.secret` (64 lower-case hex digits and a newline,
//! mode 0600). The node that founds a cluster makes it; a node that joins (`--join`,
//! `--standby`) is given a copy of a member's file once (`--cluster-secret-file`) and stores it,
//! so restarts need nothing.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::bootstrap::{io_error, write_secret_file};
use crate::peer_auth::{constant_time_eq, PeerKey, PeerKeys};
use crate::ClusterError;

pub const CLUSTER_SECRET_FILE: &str = "cluster.secret";
/// During a rotation of the cluster secret (docs/operations.md, "Rotating the cluster
/// secret"): the new secret, accepted from peers before this node signs with it...
pub const NEXT_SECRET_FILE: &str = "cluster.secret.next";
/// ...and, once it signs with the new one, the old secret, still accepted until every node
/// has moved.
pub const PREVIOUS_SECRET_FILE: &str = "cluster.secret.previous";

/// The shared secret of a cluster. Its `Debug` shows nothing of it, so it cannot reach a log
/// by way of a config printed whole.
#[derive(Clone)]
pub struct ClusterSecret {
    bytes: [u8; 32],
}

impl ClusterSecret {
    /// A new secret from a generator seeded by the operating system.
    pub fn generate() -> ClusterSecret {
        let mut bytes = [0u8; 32];
        ChaCha20Rng::from_entropy().fill_bytes(&mut bytes);
        ClusterSecret { bytes }
    }

    /// Reads a secret file (a member's `cluster.secret`, or a copy of it).
    pub fn read(path: &Path) -> Result<ClusterSecret, ClusterError> {
        let text = std::fs::read_to_string(path).map_err(|e| io_error(path, e))?;
        ClusterSecret::parse(&text).ok_or_else(|| {
            ClusterError::Io(format!("{}: not a cluster secret (64 lower-case hex digits)", path.display()))
        })
    }

    fn parse(text: &str) -> Option<ClusterSecret> {
        keyledger_model::hex::decode(text.trim()).map(|bytes| ClusterSecret { bytes })
    }

    fn hex(&self) -> String {
        keyledger_model::hex::encode(&self.bytes)
    }

    /// The raw secret, from which the peer key is derived (`peer_auth.rs`); never sent.
    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }
}

impl PartialEq for ClusterSecret {
    fn eq(&self, other: &ClusterSecret) -> bool {
        constant_time_eq(&self.bytes, &other.bytes)
    }
}

impl Eq for ClusterSecret {}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

/// Where a node's cluster secret comes from when its data dir holds none.
#[derive(Debug, Clone)]
pub enum SecretSource {
    /// Given by the operator (`--cluster-secret-file`): stored in the data dir, or checked
    /// against the one stored there.
    Given(ClusterSecret),
    /// None given, and the node founds a new cluster: a new data dir makes one.
    NewCluster,
    /// None given, and the node joins or waits to be added: a new data dir cannot start, since
    /// no member would accept it.
    Joining,
}

/// The secret this node uses: the data dir's, else the given one (then stored), else a new one
/// for a node that founds a cluster. `has_cluster_state` says whether the data dir already
/// belongs to a cluster.
pub(crate) fn resolve(
    data_dir: &Path,
    source: &SecretSource,
    has_cluster_state: bool,
) -> Result<ClusterSecret, ClusterError> {
    let path = data_dir.join(CLUSTER_SECRET_FILE);
    let stored = match ClusterSecret::read(&path) {
        Ok(stored) => Some(stored),
        Err(_) if !path.exists() => None,
        Err(e) => return Err(e),
    };
    match (stored, source) {
        (Some(stored), SecretSource::Given(given)) if stored != *given => {
            if has_cluster_state {
                return Err(ClusterError::Io(format!(
                    "the given cluster secret differs from the one in {}: this data dir belongs to the cluster of \
                     that secret; give this node that cluster's secret, or none",
                    path.display()
                )));
            }
            // A node that never joined has nothing that depends on its secret: a start with the
            // right one after a wrong one just works.
            store(&path, given)?;
            tracing::info!(path = %path.display(), "this node never joined a cluster: replaced its stored cluster secret with the given one");
            Ok(given.clone())
        }
        (Some(stored), _) => Ok(stored),
        (None, SecretSource::Given(given)) => {
            store(&path, given)?;
            tracing::info!(path = %path.display(), "stored the given cluster secret in the data dir");
            Ok(given.clone())
        }
        (None, _) if has_cluster_state => {
            let secret = ClusterSecret::generate();
            store(&path, &secret)?;
            tracing::warn!(
                path = %path.display(),
                "this data dir belongs to a cluster but holds no cluster secret (made by an older version): \
                 a new one was made; in a cluster of several nodes, every other node must be given this file \
                 (--cluster-secret-file) or it will refuse this node and be refused by it"
            );
            Ok(secret)
        }
        (None, SecretSource::NewCluster) => {
            let secret = ClusterSecret::generate();
            store(&path, &secret)?;
            tracing::info!(path = %path.display(), "made the cluster secret; nodes that join need a copy (--cluster-secret-file)");
            Ok(secret)
        }
        (None, SecretSource::Joining) => Err(ClusterError::Io(format!(
            "a node that joins a cluster needs its secret: pass --cluster-secret-file (or \
             KEYLEDGER_CLUSTER_SECRET_FILE) naming a copy of a member's {CLUSTER_SECRET_FILE}; it is then kept in {}",
            path.display()
        ))),
    }
}

/// Replaces `path` with `secret` at once: a temporary file (0600, synced), renamed over it, and
/// the directory synced so the rename survives a crash.
fn store(path: &Path, secret: &ClusterSecret) -> Result<(), ClusterError> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let _ = std::fs::remove_file(&tmp);
    write_secret_file(&tmp, &secret.hex())?;
    std::fs::rename(&tmp, path).map_err(|e| io_error(path, e))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_error(dir, e))
}

/// Lets a repeated warning through once per [`Throttle::EVERY`] for each subject, so a peer
/// refusing every heartbeat (ten a second) is said clearly, not thousands of times.
#[derive(Default)]
pub(crate) struct Throttle {
    last: Mutex<HashMap<String, Instant>>,
}

impl Throttle {
    const EVERY: Duration = Duration::from_secs(30);

    /// True when a warning about `subject` is due now (and notes that it was given).
    pub(crate) fn due(&self, subject: &str) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        match last.get(subject) {
            Some(at) if now.duration_since(*at) < Throttle::EVERY => false,
            _ => {
                last.insert(subject.to_string(), now);
                true
            }
        }
    }
}

/// The keys this node signs and checks with: its cluster secret's, plus those of a rotation in
/// progress (`cluster.secret.next`, `cluster.secret.previous`), which it accepts but never
/// signs with. A rotation file that is not a secret stops the node: ignoring it would split
/// the cluster later, when the others move on.
pub(crate) fn peer_keys(data_dir: &Path, secret: &ClusterSecret) -> Result<PeerKeys, ClusterError> {
    let mut also = Vec::new();
    for name in [NEXT_SECRET_FILE, PREVIOUS_SECRET_FILE] {
        let path = data_dir.join(name);
        if !path.exists() {
            continue;
        }
        let other = ClusterSecret::read(&path)?;
        if other == *secret {
            continue;
        }
        tracing::info!(file = %path.display(), "a rotation of the cluster secret is in progress: peers signing with this secret are accepted too");
        also.push(PeerKey::derive(&other));
    }
    Ok(PeerKeys::new(PeerKey::derive(secret), also))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn stored(dir: &Path) -> ClusterSecret {
        ClusterSecret::read(&dir.join(CLUSTER_SECRET_FILE)).unwrap()
    }

    #[test]
    fn a_founding_node_makes_a_private_secret_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let made = resolve(dir.path(), &SecretSource::NewCluster, false).unwrap();
        let path = dir.path().join(CLUSTER_SECRET_FILE);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 65, "64 hex digits and a newline: {text:?}");
        assert_eq!(stored(dir.path()), made);
        assert!(!dir.path().join(format!("{CLUSTER_SECRET_FILE}.tmp")).exists());
        // A restart, however it is started, uses the stored secret.
        for source in [SecretSource::NewCluster, SecretSource::Joining] {
            assert_eq!(resolve(dir.path(), &source, true).unwrap(), made);
        }
        assert_ne!(ClusterSecret::generate(), made);
    }

    #[test]
    fn a_joining_node_needs_a_secret_and_stores_the_one_given() {
        let dir = tempfile::tempdir().unwrap();
        let refused = resolve(dir.path(), &SecretSource::Joining, false).unwrap_err();
        assert!(refused.to_string().contains("--cluster-secret-file"), "{refused}");
        assert!(!dir.path().join(CLUSTER_SECRET_FILE).exists());

        let given = ClusterSecret::generate();
        assert_eq!(resolve(dir.path(), &SecretSource::Given(given.clone()), false).unwrap(), given);
        assert_eq!(stored(dir.path()), given);
        assert_eq!(resolve(dir.path(), &SecretSource::Joining, true).unwrap(), given);
        let mode = std::fs::metadata(dir.path().join(CLUSTER_SECRET_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_different_secret_is_refused_once_the_node_belongs_to_a_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let first = resolve(dir.path(), &SecretSource::NewCluster, false).unwrap();
        let other = ClusterSecret::generate();
        let refused = resolve(dir.path(), &SecretSource::Given(other.clone()), true).unwrap_err();
        assert!(refused.to_string().contains("differs"), "{refused}");
        assert_eq!(stored(dir.path()), first, "the stored secret is kept");
        // The same secret given again is fine.
        assert_eq!(resolve(dir.path(), &SecretSource::Given(first.clone()), true).unwrap(), first);
        // A node that never joined takes the new one.
        assert_eq!(resolve(dir.path(), &SecretSource::Given(other.clone()), false).unwrap(), other);
        assert_eq!(stored(dir.path()), other);
    }

    #[test]
    fn an_older_data_dir_with_cluster_state_gets_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let made = resolve(dir.path(), &SecretSource::Joining, true).unwrap();
        assert_eq!(stored(dir.path()), made);
        let given = ClusterSecret::generate();
        let other_dir = tempfile::tempdir().unwrap();
        assert_eq!(resolve(other_dir.path(), &SecretSource::Given(given.clone()), true).unwrap(), given);
        assert_eq!(stored(other_dir.path()), given);
    }

    #[test]
    fn a_damaged_secret_file_is_an_error_not_a_new_secret() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CLUSTER_SECRET_FILE), "not hex\n").unwrap();
        assert!(resolve(dir.path(), &SecretSource::NewCluster, true).is_err());
        assert!(ClusterSecret::read(&dir.path().join("absent")).is_err());
        assert!(ClusterSecret::parse(&"A".repeat(64)).is_none(), "upper case is not the stored spelling");
        assert!(ClusterSecret::parse(&"a".repeat(62)).is_none());
        assert!(ClusterSecret::parse(&format!("{}\n", "a".repeat(64))).is_some());
    }

    #[test]
    fn the_secret_is_never_printed() {
        let secret = ClusterSecret::generate();
        let hex = secret.hex();
        assert!(!format!("{secret:?} {:?}", SecretSource::Given(secret.clone())).contains(&hex[..8]));
    }

    #[test]
    fn a_warning_is_let_through_once_per_interval_and_subject() {
        let throttle = Throttle::default();
        assert!(throttle.due("a"));
        assert!(!throttle.due("a"));
        assert!(throttle.due("b"));
    }
}
