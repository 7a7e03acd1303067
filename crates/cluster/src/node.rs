//! One keyledger node: the [`ClusterNode`] handle, its settings and its small accessors.
//!
//! The node's work is spread over the files of `node/`, one job each, every one adding an
//! `impl ClusterNode` block: `lifecycle.rs` (start, background tasks, shutdown), `propose.rs`
//! (writes, here or at the leader), `membership.rs` (joining, adding and removing members),
//! `read_barrier.rs` (linearizable reads) and `status.rs` (the cluster view and readiness). The
//! fields stay private to this module and those files.

mod lifecycle;
mod membership;
mod propose;
mod read_barrier;
mod status;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use keyledger_ledger::{Ledger, LogReader, Node, NodeId, StorageOptions, TypeConfig};
use keyledger_model::{token, AccountId, Actor, CheckpointSigner, SecretToken, Timestamp};
use openraft::{Raft, RaftMetrics};
use rand_chacha::ChaCha20Rng;
use tokio::time::Instant;

use crate::activity::Activity;
use crate::batch::Batcher;
use crate::checkpoints::CheckpointPolicy;
use crate::disk::DiskReserve;
use crate::forward::Forwarder;
use crate::network::RpcClient;
use crate::peer_auth::PeerKeys;
use crate::secret::{ClusterSecret, SecretSource};

pub use membership::{MembershipChange, MembershipRefusal};
pub(crate) use propose::Refusal;
pub use propose::{Committed, ProposeError};
pub use status::{ClusterView, MemberView};

/// Settings of one node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub node_id: NodeId,
    /// `host:port` other nodes use to reach this one.
    pub advertise: String,
    pub data_dir: PathBuf,
    /// Build a snapshot after this many new log entries, and keep this many entries after it
    /// (so a briefly lagging follower catches up from the log, not a snapshot).
    pub snapshot_logs: u64,
    pub checkpoints: CheckpointPolicy,
    /// Bytes of Raft log kept after a snapshot; a snapshot is built once twice this much was
    /// logged since the last (`upkeep.rs`), whatever the entry count.
    pub log_keep_bytes: u64,
    /// Where the cluster secret comes from if the data dir holds none (`secret.rs`).
    pub secret: SecretSource,
    /// How to reach `https://` peers: a TLS client configuration trusting the cluster's CA
    /// (`tls::peer_client_config`). Without it only `http://` peers can be reached.
    pub peer_tls: Option<Arc<rustls::ClientConfig>>,
    pub storage: StorageOptions,
    /// Free bytes the data dir's filesystem keeps: below it, writes are refused (`disk.rs`).
    pub min_free_disk_bytes: u64,
    /// Where webhooks may send and how the leader retries them (`webhooks.rs`).
    pub webhooks: crate::webhooks::WebhookPolicy,
}

impl NodeConfig {
    /// A node with every setting at its default: `serve`'s defaults, and a reserve of 0 (no
    /// disk check), as an embedding or a test wants unless it says otherwise.
    pub fn new(node_id: NodeId, advertise: String, data_dir: PathBuf, secret: SecretSource) -> NodeConfig {
        NodeConfig {
            node_id,
            advertise,
            data_dir,
            snapshot_logs: NodeConfig::DEFAULT_SNAPSHOT_LOGS,
            checkpoints: CheckpointPolicy::default(),
            log_keep_bytes: NodeConfig::DEFAULT_LOG_KEEP_BYTES,
            secret,
            peer_tls: None,
            storage: StorageOptions::default(),
            min_free_disk_bytes: 0,
            webhooks: crate::webhooks::WebhookPolicy::default(),
        }
    }

    /// Entries between snapshots. A snapshot used to copy the whole ledger into a file (at
    /// 5,000 entries builds were 6 % of a loaded cluster's CPU after 300k events); now a build
    /// records a few keys and a follower that needs one gets it streamed from the ledger, so
    /// this bounds the Raft log rather than any copying: the log keeps at most twice this many
    /// entries (the newest are kept for lagging followers).
    pub const DEFAULT_SNAPSHOT_LOGS: u64 = 20_000;

    /// Raft log kept after a snapshot: a restart reads it all, and a follower that fell less
    /// than this behind catches up from it rather than from a snapshot of the whole ledger.
    pub const DEFAULT_LOG_KEEP_BYTES: u64 = 32 << 20;

    /// Room for the entries in flight, a snapshot's file and the state saved at shutdown of a
    /// node with some hundred thousand keys; a larger one needs more (docs/operations.md).
    pub const DEFAULT_MIN_FREE_DISK_BYTES: u64 = 256 << 20;
}

/// A running node.
pub struct ClusterNode {
    id: NodeId,
    advertise: String,
    data_dir: PathBuf,
    raft: Raft<TypeConfig>,
    /// Gathers proposals made while this node leads into Raft entries.
    batcher: Batcher,
    /// Gathers proposals passed on to the leader while this node follows.
    forwarder: Forwarder,
    ledger: Ledger,
    /// Every call to a peer; it signs each with the key derived from the cluster secret.
    rpc: RpcClient,
    /// The cluster secret this node signs with; webhook signing secrets derive from it too.
    secret: ClusterSecret,
    rng: Mutex<ChaCha20Rng>,
    activity: Activity,
    /// Told by the leader that it was removed (kept in the data dir as `REMOVED_MARKER`).
    removed: Arc<AtomicBool>,
    /// Whether the membership lists this node, kept up to date from Raft's metrics so that
    /// verification reads one atomic, not the lock around the metrics openraft keeps writing.
    listed: Arc<AtomicBool>,
    signer: CheckpointSigner,
    checkpoints: CheckpointPolicy,
    /// The Raft log's index, shared with the store openraft owns: its sizes, read by the upkeep.
    log: LogReader,
    log_keep_bytes: u64,
    disk: DiskReserve,
    /// The keys internal requests and answers are signed and checked with (`secret.rs`).
    peer_keys: PeerKeys,
    webhooks: crate::webhooks::WebhookPolicy,
    webhook_gauges: Arc<crate::webhooks::WebhookGauges>,
}

/// The flags [`ClusterNode::is_member`] reads first, shared so that verification, the hot
/// path, reads them without a call into the node: a member is not `removed` and is `listed`
/// (if not listed, ask [`ClusterNode::is_member`], which also asks the membership itself).
#[derive(Clone)]
pub struct MemberFlags {
    pub removed: Arc<AtomicBool>,
    pub listed: Arc<AtomicBool>,
}

impl ClusterNode {
    /// Free bytes on the data dir's filesystem (looked at most every 200 ms) and the reserve
    /// below which writes are refused.
    pub fn disk_space(&self) -> (u64, u64) {
        (self.disk.free_bytes(), self.disk.reserve_bytes())
    }

    /// Encoded bytes of the Raft log entries this node keeps (not yet purged).
    pub fn raft_log_bytes(&self) -> u64 {
        self.log.bytes_from(0)
    }

    /// The secret from which the key that signs internal requests to and from this node is derived.
    pub(crate) fn peer_keys(&self) -> &PeerKeys {
        &self.peer_keys
    }

    pub(crate) fn cluster_secret(&self) -> &ClusterSecret {
        &self.secret
    }

    /// This node's checkpoint-signing key (its public half is what auditors trust).
    pub fn signer(&self) -> &CheckpointSigner {
        &self.signer
    }

    /// Where webhooks may send, as this node was started.
    pub fn webhook_policy(&self) -> &crate::webhooks::WebhookPolicy {
        &self.webhooks
    }

    /// The webhook dispatcher's counters.
    pub fn webhook_gauges(&self) -> &Arc<crate::webhooks::WebhookGauges> {
        &self.webhook_gauges
    }

    pub(crate) fn activity(&self) -> &Activity {
        &self.activity
    }

    /// Notes an operation refused to an authenticated caller; written (capped) in the next batch.
    pub fn record_denial(&self, actor: Actor, account: AccountId, operation: &str, target: &str, reason: &str) {
        self.activity.record_denial(actor, account, operation, target, reason);
    }

    /// Writes gathered use and refusals now (at shutdown, so they are not lost).
    pub async fn flush_activity(&self) {
        crate::activity::flush(self).await;
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn metrics(&self) -> RaftMetrics<NodeId, Node> {
        self.raft.metrics().borrow().clone()
    }

    /// The wall clock, as stamped into proposals made here.
    pub fn now(&self) -> Timestamp {
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        Timestamp(ms)
    }

    /// Runs `f` with this node's ChaCha20 generator (seeded once from the OS).
    pub fn with_rng<T>(&self, f: impl FnOnce(&mut ChaCha20Rng) -> T) -> T {
        let mut rng = self.rng.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut rng)
    }

    pub fn generate_secret(&self) -> SecretToken {
        self.with_rng(token::generate)
    }

    /// True while the membership this node knows includes it (false before it joined, and
    /// after it saw its own removal).
    pub fn is_member(&self) -> bool {
        if self.removed.load(Ordering::Relaxed) {
            return false;
        }
        // A member's answer is one atomic read. Not listed as of the last change the watcher
        // saw: ask the membership itself, which may be ahead of it (just bootstrapped or added).
        self.listed.load(Ordering::Relaxed) || self.membership_lists_me()
    }

    /// The two flags [`ClusterNode::is_member`] reads first, shared so that verification can
    /// read them without a call into the node.
    pub fn member_flags(&self) -> MemberFlags {
        MemberFlags { removed: self.removed.clone(), listed: self.listed.clone() }
    }

    /// Asks the membership itself, which may be ahead of the watcher (just bootstrapped or added).
    fn membership_lists_me(&self) -> bool {
        self.raft.metrics().borrow().membership_config.membership().get_node(&self.id).is_some()
    }

    fn member_address(&self, id: NodeId) -> Option<String> {
        self.metrics().membership_config.membership().get_node(&id).map(|n| n.addr.clone())
    }

    /// Waits until `ready` holds for this node's Raft metrics; false if `until` came first.
    pub(crate) async fn wait_for(&self, until: Instant, ready: impl Fn(&RaftMetrics<NodeId, Node>) -> bool) -> bool {
        let mut watch = self.raft.metrics();
        loop {
            if ready(&watch.borrow()) {
                return true;
            }
            if tokio::time::timeout_at(until, watch.changed()).await.is_err() {
                return false;
            }
        }
    }
}
