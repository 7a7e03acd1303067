//! One keyledger node: its Raft instance, storage, and how writes reach the leader.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keyledger_ledger::{Ledger, LogReader, Node, NodeId, Storage, StorageOptions, TypeConfig};
use keyledger_model::{token, AccountId, Actor, CheckpointSigner, Outcome, Proposal, SecretToken, Timestamp};
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{ChangeMembers, Raft, RaftMetrics, ServerState};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::activity::Activity;
use crate::batch::{Batcher, Forwarder};
use crate::checkpoints::{load_or_create_signer, CheckpointPolicy};
use crate::network::{base_url, path, CallError, Network, RpcClient};
use crate::peer_auth::ANY_NODE;
use crate::rpc::{JoinRequest, NodeStatus};
use crate::secret::{ClusterSecret, SecretSource};
use crate::ClusterError;

/// How long a write may take end to end before the caller gets a 503.
const WRITE_DEADLINE: Duration = Duration::from_secs(5);
/// How long a write waits for a leader to be known before giving up as `unavailable`.
const LEADER_WAIT: Duration = Duration::from_secs(3);
/// A leader that has not heard from a quorum for this long does not take new writes: they
/// could not commit, and answering `unavailable` at once beats `outcome_unknown` later.
const QUORUM_FRESHNESS_MS: u64 = 1_000;
/// How long a linearizable read may wait for the leader and for its own node to catch up.
const READ_BARRIER_DEADLINE: Duration = Duration::from_secs(3);
/// Written to the data dir of a node the leader removed.
pub(crate) const REMOVED_MARKER: &str = "removed-from-cluster";
/// A node is ready when it knows a leader and has applied all but this many log entries.
const READY_MAX_LAG: u64 = 100;

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
}

impl NodeConfig {
    /// Entries between snapshots. A snapshot used to copy the whole ledger into a file (at
    /// 5,000 entries builds were 6 % of a loaded cluster's CPU after 300k events); now a build
    /// records a few keys and a follower that needs one gets it streamed from the ledger, so
    /// this bounds the Raft log rather than any copying: the log keeps at most twice this many
    /// entries (the newest are kept for lagging followers).
    pub const DEFAULT_SNAPSHOT_LOGS: u64 = 20_000;

    /// Raft log kept after a snapshot: a restart reads it all, and a follower that fell less
    /// than this behind catches up from it rather than from a snapshot of the whole ledger.
    pub const DEFAULT_LOG_KEEP_BYTES: u64 = 32 << 20;
}

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

/// A leader's refusal as sent back over RPC.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Refusal {
    NotLeader(Option<(NodeId, String)>),
    Unavailable(String),
    OutcomeUnknown(String),
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
    /// The key of every signature on internal requests and answers is derived from it.
    secret: ClusterSecret,
    rng: Mutex<ChaCha20Rng>,
    activity: Activity,
    /// Told by the leader that it was removed (kept in the data dir as `REMOVED_MARKER`).
    removed: AtomicBool,
    /// Whether the membership lists this node, kept up to date from Raft's metrics so that
    /// verification reads one atomic, not the lock around the metrics openraft keeps writing.
    listed: Arc<AtomicBool>,
    signer: CheckpointSigner,
    checkpoints: CheckpointPolicy,
    /// The Raft log's index, shared with the store openraft owns: its sizes, read by the upkeep.
    log: LogReader,
    log_keep_bytes: u64,
}

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

pub(crate) fn raft_config(snapshot_logs: u64) -> openraft::Config {
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
        let removed = AtomicBool::new(config.data_dir.join(REMOVED_MARKER).exists());
        let mut http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            // Below the server's default header-read timeout (10 s), which also closes idle
            // connections: a pooled connection is dropped here before the peer drops it.
            .pool_idle_timeout(Duration::from_secs(5));
        if let Some(tls) = &config.peer_tls {
            http = http.use_preconfigured_tls(rustls::ClientConfig::clone(tls));
        }
        let http = http.build().map_err(|e| ClusterError::Io(e.to_string()))?;
        let rpc = RpcClient::new(http, &secret, config.node_id);
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
        Ok(Arc::new(ClusterNode {
            id: config.node_id,
            advertise: config.advertise,
            data_dir: config.data_dir,
            raft,
            batcher,
            forwarder,
            ledger: storage.ledger,
            rpc,
            secret,
            rng: Mutex::new(ChaCha20Rng::from_entropy()),
            activity: Activity::default(),
            signer,
            checkpoints: config.checkpoints,
            removed,
            listed,
            log,
            log_keep_bytes: config.log_keep_bytes,
        }))
    }

    /// Starts the background work: batched `used`/`denied` events, the Raft log's byte budget,
    /// and on the leader `expired` events and checkpoints.
    pub fn spawn_background(self: &Arc<Self>) {
        crate::activity::spawn(self);
        crate::checkpoints::spawn(self, self.checkpoints);
        crate::upkeep::spawn(self, self.log.clone(), self.log_keep_bytes);
    }

    /// Encoded bytes of the Raft log entries this node keeps (not yet purged).
    pub fn raft_log_bytes(&self) -> u64 {
        self.log.bytes_from(0)
    }

    /// The secret from which the key that signs internal requests to and from this node is derived.
    pub(crate) fn cluster_secret(&self) -> &ClusterSecret {
        &self.secret
    }

    /// This node's checkpoint-signing key (its public half is what auditors trust).
    pub fn signer(&self) -> &CheckpointSigner {
        &self.signer
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
                let (member, _) = self
                    .rpc
                    .call_answered_by::<_, NodeStatus>(ANY_NODE, &base, path::STATUS, &(), IDENTIFY_DEADLINE)
                    .await?;
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
                Err(CallError::Refused(_)) => {}
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
            Err(CallError::NotANode(why)) => why,
            Err(CallError::Failed(why)) => why,
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

    /// True while the membership this node knows includes it (false before it joined, and
    /// after it saw its own removal).
    pub fn is_member(&self) -> bool {
        if self.removed.load(Ordering::Relaxed) {
            return false;
        }
        // A member's answer is one atomic read. Not listed as of the last change the watcher
        // saw: ask the membership itself, which may be ahead of it (just bootstrapped or added).
        self.listed.load(Ordering::Relaxed)
            || self.raft.metrics().borrow().membership_config.membership().get_node(&self.id).is_some()
    }

    fn member_address(&self, id: NodeId) -> Option<String> {
        self.metrics().membership_config.membership().get_node(&id).map(|n| n.addr.clone())
    }

    /// Proposes a complete proposal: here if this node leads, else at the leader. Retries a
    /// leader change until the deadline; never retries once the outcome is unknown.
    pub async fn propose(&self, proposal: Proposal) -> Result<Committed, ProposeError> {
        if !self.is_member() {
            return Err(ProposeError::Unavailable("this node is not a member of the cluster".into()));
        }
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

    async fn current_leader_until(&self, until: Instant) -> Option<NodeId> {
        self.wait_for(until, |m| m.current_leader.is_some()).await;
        self.metrics().current_leader
    }

    /// Waits until `ready` holds for this node's Raft metrics; false if `until` came first.
    async fn wait_for(&self, until: Instant, ready: impl Fn(&RaftMetrics<NodeId, Node>) -> bool) -> bool {
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
        self.batcher.propose(proposal).await
    }

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
                let status = if id == self.id {
                    Some(self.own_status())
                } else {
                    let base = base_url(&addr);
                    self.rpc.call::<_, NodeStatus>(id, &base, path::STATUS, &(), Duration::from_millis(500)).await.ok()
                };
                (id, addr, status)
            }
        });
        for (id, address, status) in futures::future::join_all(asks).await {
            members.push(MemberView { node_id: id, address, voter: voters.contains(&id), status });
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
        if self.ledger.state().accounts().next().is_none() {
            return Err("the cluster has no data yet".into());
        }
        if !self.is_member() {
            return Err("this node is not a member of the cluster (it was removed)".into());
        }
        Ok(())
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
