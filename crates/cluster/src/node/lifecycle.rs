//! A node's life: opening its storage and starting Raft, starting its background work, making
//! a new one-member cluster, and stopping.
//!
//! Raft's settings live here too ([`raft_config`]): they are fixed when Raft starts.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyledger_ledger::{Node, NodeId, Storage, TypeConfig};
use openraft::{Raft, RaftMetrics};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::membership::REMOVED_MARKER;
use super::propose::WRITE_DEADLINE;
use super::{ClusterNode, NodeConfig};
use crate::activity::Activity;
use crate::batch::Batcher;
use crate::checkpoints::load_or_create_signer;
use crate::disk::DiskReserve;
use crate::forward::Forwarder;
use crate::network::{Network, RpcClient};
use crate::ClusterError;

/// A flag that follows whether the membership lists node `id`, updated whenever Raft's metrics
/// change, until Raft shuts down.
fn watch_membership(raft: &Raft<TypeConfig>, id: NodeId) -> Arc<AtomicBool> {
    let mut metrics = raft.metrics();
    let listed_now = move |m: &RaftMetrics<NodeId, Node>| m.membership_config.membership().get_node(&id).is_some();
    let listed = Arc::new(AtomicBool::new(listed_now(&metrics.borrow_and_update())));
    let flag = listed.clone();
    tokio::spawn(async move {
        while metrics.changed().await.is_ok() {
            let now = listed_now(&metrics.borrow_and_update());
            flag.store(now, Ordering::Relaxed);
        }
    });
    listed
}

/// Whether the data dir already belongs to a cluster, judged as openraft's `is_initialized`
/// does (any log entry, or a vote cast), but before Raft starts: the secret must be settled
/// before the first message goes out.
async fn has_cluster_state(storage: &mut Storage) -> Result<bool, ClusterError> {
    use openraft::storage::RaftLogStorage;
    let storage_error = |e: openraft::StorageError<NodeId>| ClusterError::Raft(e.to_string());
    let log = storage.log_store.get_log_state().await.map_err(storage_error)?;
    let vote = storage.log_store.read_vote().await.map_err(storage_error)?;
    Ok(log.last_log_id.is_some() || vote.is_some_and(|v| v != openraft::Vote::default()))
}

fn raft_config(snapshot_logs: u64) -> openraft::Config {
    openraft::Config {
        cluster_name: "keyledger".into(),
        heartbeat_interval: 100,
        election_timeout_min: 400,
        election_timeout_max: 800,
        // A snapshot travels as one RPC per chunk, each bounded by this timeout (openraft's
        // deadline and our HTTP client's). The last chunk's RPC answers only once the follower
        // has checked and installed the whole ledger: about 2 min for 1M events on a fresh node
        // here (docs/benchmarks.md), so 10 min covers several million. A timeout restarts the
        // transfer from scratch, so too short loops forever; too long only delays noticing a
        // hung follower (an unreachable one fails at once).
        install_snapshot_timeout: 600_000,
        // Each chunk is one bincode request body (limit 64 MiB, `rpc.rs`) and is held a few
        // times over at each end, so chunks stay small; per-chunk overhead is a 1 ms pause.
        snapshot_max_chunk_size: 4 * 1024 * 1024,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(snapshot_logs),
        max_in_snapshot_log_to_keep: snapshot_logs,
        ..Default::default()
    }
}

impl ClusterNode {
    /// Opens storage and starts Raft. The node serves RPC once its router is mounted; call
    /// [`ClusterNode::bootstrap`] or [`ClusterNode::join`] after that.
    pub async fn start(config: NodeConfig) -> Result<Arc<ClusterNode>, ClusterError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| ClusterError::Io(format!("cannot create {}: {e}", config.data_dir.display())))?;
        let mut storage = Storage::open_with(&config.data_dir, config.storage)?;
        let secret = crate::secret::resolve(&config.data_dir, &config.secret, has_cluster_state(&mut storage).await?)?;
        let signer = load_or_create_signer(config.node_id, &config.data_dir)?;
        let removed = Arc::new(AtomicBool::new(config.data_dir.join(REMOVED_MARKER).exists()));
        let mut http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            // Below the server's default header-read timeout (10 s), which also closes idle
            // connections: a pooled connection is dropped here before the peer drops it.
            .pool_idle_timeout(Duration::from_secs(5));
        if let Some(tls) = &config.peer_tls {
            http = http.use_preconfigured_tls(rustls::ClientConfig::clone(tls));
        }
        let http = http.build().map_err(|e| ClusterError::Io(e.to_string()))?;
        let peer_keys = crate::secret::peer_keys(&config.data_dir, &secret)?;
        let rpc = RpcClient::new(http, peer_keys.clone(), config.node_id);
        let log = storage.log_store.reader();
        let raft_config =
            Arc::new(raft_config(config.snapshot_logs).validate().map_err(|e| ClusterError::Raft(e.to_string()))?);
        let raft = Raft::new(
            config.node_id,
            raft_config,
            Network::new(rpc.clone(), config.peer_tls.clone()),
            storage.log_store,
            storage.state_machine,
        )
        .await
        .map_err(|e| ClusterError::Raft(e.to_string()))?;
        let listed = watch_membership(&raft, config.node_id);
        let batcher = Batcher::start(raft.clone(), WRITE_DEADLINE);
        let forwarder = Forwarder::start(rpc.clone());
        let disk = DiskReserve::new(config.data_dir.clone(), config.min_free_disk_bytes);
        Ok(Arc::new(ClusterNode {
            id: config.node_id,
            advertise: config.advertise,
            data_dir: config.data_dir,
            disk,
            peer_keys,
            secret,
            raft,
            batcher,
            forwarder,
            ledger: storage.ledger,
            rpc,
            rng: Mutex::new(ChaCha20Rng::from_entropy()),
            activity: Activity::default(),
            signer,
            checkpoints: config.checkpoints,
            removed,
            listed,
            log,
            log_keep_bytes: config.log_keep_bytes,
            webhooks: config.webhooks,
            webhook_gauges: Arc::default(),
        }))
    }

    /// Starts the background work: batched `used`/`denied` events, the Raft log's byte budget,
    /// and on the leader `expired` events, checkpoints and webhook deliveries.
    pub fn spawn_background(self: &Arc<Self>) {
        crate::activity::spawn(self);
        crate::checkpoints::spawn(self, self.checkpoints);
        crate::upkeep::spawn(self, self.log.clone(), self.log_keep_bytes);
        crate::webhooks::spawn(self);
    }

    /// Does this data dir already belong to a cluster?
    pub async fn is_initialized(&self) -> Result<bool, ClusterError> {
        self.raft.is_initialized().await.map_err(|e| ClusterError::Raft(e.to_string()))
    }

    /// Makes this node a one-member cluster, unless it already belongs to one.
    pub async fn initialize_single(&self) -> Result<(), ClusterError> {
        if self.is_initialized().await? {
            return Ok(());
        }
        let members = BTreeMap::from([(self.id, Node { addr: self.advertise.clone() })]);
        self.raft.initialize(members).await.map_err(|e| ClusterError::Raft(e.to_string()))
    }

    /// Stops Raft (flushes nothing more: every acknowledged write is already durable).
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        // Applied entries may be only staged (they are safe in the Raft log), but a stopped
        // node's data dir is read by offline tools, which read the ledger alone; and the state
        // saved with it lets the next start skip replaying the ledger. Saving the state writes
        // and flushes the ledger first; if the save fails, the ledger is still written.
        if let Err(e) = self.ledger.save_state() {
            tracing::warn!(error = %e, "cannot save the state at shutdown; the next start replays more of the ledger");
            if let Err(e) = self.ledger.persist() {
                tracing::warn!(error = %e, "cannot write the applied ledger at shutdown");
            }
        }
    }
}
