//! The server half of node-to-node RPC: `/internal/*` routes, bincode in and out.
//!
//! openraft's AppendEntries comes on a stream of its own (`raft_stream.rs`, upgraded from
//! `GET /internal/raft/stream`); its votes and snapshot chunks come here. Besides those this
//! carries keyledger's own: `propose` (a follower forwarding complete proposals to the leader,
//! batched), `join` (a new node asking to be added), `members` (an add or remove passed to the
//! leader), `removed` (the leader telling a node it was removed), `read-index` (a follower's
//! linearizable read asking the leader) and `status` (a node's applied index and ledger head,
//! for `/v1/cluster`).
//!
//! Every route answers only a request that shows the cluster secret (`secret.rs`); any other
//! gets `401` before its body is read, so a stranger who reaches the port cannot pose as a
//! leader, vote, or change the members.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use keyledger_ledger::codec;
use keyledger_model::{ChainHead, Proposal};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::network::path;
use crate::node::{ClusterNode, Committed, MembershipChange, Refusal};
use crate::secret::{ClusterSecret, Throttle};
use crate::NodeId;

/// Raft messages can be large (batches of entries, 3 MiB snapshot chunks).
const INTERNAL_BODY_LIMIT: usize = 64 * 1024 * 1024;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct JoinRequest {
    pub(crate) node_id: NodeId,
    pub(crate) address: String,
}

/// One node's own view of its progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node_id: NodeId,
    pub applied_index: Option<u64>,
    pub ledger_head: ChainHead,
}

/// The internal routes, for merging into the node's HTTP server.
pub fn router(node: Arc<ClusterNode>) -> Router {
    let inbound = Arc::new(SnapshotInbound::default());
    let gate = Arc::new(Gate { secret: node.cluster_secret().clone(), refusals: Throttle::default() });
    Router::new()
        .route(path::STREAM, get(crate::raft_stream::accept))
        .route(path::VOTE, post(vote))
        .route(
            path::SNAPSHOT,
            post(move |State(node): State<Arc<ClusterNode>>, body: Bytes| snapshot(node, inbound.clone(), body)),
        )
        .route(path::PROPOSE, post(propose))
        .route(path::JOIN, post(join))
        .route(path::MEMBERS, post(members))
        .route(path::REMOVED, post(removed))
        .route(path::READ_INDEX, post(read_index))
        .route(path::STATUS, post(status))
        .layer(DefaultBodyLimit::max(INTERNAL_BODY_LIMIT))
        // Outermost: a request without the secret is refused before anything reads its body.
        .layer(middleware::from_fn_with_state(gate, require_secret))
        .with_state(node)
}

/// What an internal request must show, and the pace of warnings about those that do not.
struct Gate {
    secret: ClusterSecret,
    refusals: Throttle,
}

/// Passes on only requests whose `Authorization` header carries the cluster secret.
async fn require_secret(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    if gate.secret.admits(request.headers().get(AUTHORIZATION)) {
        return next.run(request).await;
    }
    if gate.refusals.due("") {
        tracing::warn!(
            path = %request.uri().path(),
            "refused an internal request without this cluster's secret (further refusals are logged every 30 s)"
        );
    }
    let body = r#"{"error":{"code":"unauthenticated","message":"node-to-node requests need the cluster secret"}}"#;
    (
        StatusCode::UNAUTHORIZED,
        [(CONTENT_TYPE, "application/json"), (WWW_AUTHENTICATE, r#"Bearer realm="keyledger-cluster""#)],
        body,
    )
        .into_response()
}

/// Decodes a bincode request, runs `handle`, encodes its answer.
async fn serve<Req, Resp, Fut>(body: Bytes, handle: impl FnOnce(Req) -> Fut) -> Response
where
    Req: DeserializeOwned,
    Resp: Serialize,
    Fut: std::future::Future<Output = Resp>,
{
    match codec::decode::<Req>(&body) {
        Ok(req) => encode(&handle(req).await),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

fn encode<T: Serialize>(value: &T) -> Response {
    match codec::encode(value) {
        Ok(bytes) => bytes.into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn vote(State(node): State<Arc<ClusterNode>>, body: Bytes) -> Response {
    serve(body, |req| async move { node.raft().vote(req).await }).await
}

async fn snapshot(node: Arc<ClusterNode>, inbound: Arc<SnapshotInbound>, body: Bytes) -> Response {
    let _receiving = inbound.begin(&node);
    serve(body, |req| async move { node.raft().install_snapshot(req).await }).await
}

/// openraft 0.9 sends heartbeats on the stream that carries a snapshot, so a follower
/// receiving and installing a large one hears nothing else from the leader for that long; its
/// election timer would run out and its elections unseat a healthy leader (seen with 12k
/// events in a debug build). Its elections are off while snapshot chunks come in, and back on
/// once none has been in flight for [`SNAPSHOT_QUIET`] (by then the leader's heartbeats have
/// reset its timer, or the leader is gone and the timer should run).
#[derive(Default)]
struct SnapshotInbound {
    state: Mutex<Inbound>,
}

#[derive(Default)]
struct Inbound {
    in_flight: u32,
    last: Option<Instant>,
    /// Elections are off and a task is waiting to turn them back on.
    paused: bool,
}

const SNAPSHOT_QUIET: Duration = Duration::from_secs(2);

impl SnapshotInbound {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inbound> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A chunk arrived; the guard marks its end, even if the request is dropped.
    fn begin(self: &Arc<Self>, node: &Arc<ClusterNode>) -> Receiving {
        let mut state = self.lock();
        state.in_flight += 1;
        if !state.paused {
            state.paused = true;
            node.raft().runtime_config().elect(false);
            tracing::info!("receiving a snapshot: elections paused");
            tokio::spawn(resume_elections(self.clone(), node.clone()));
        }
        Receiving(self.clone())
    }
}

struct Receiving(Arc<SnapshotInbound>);

impl Drop for Receiving {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.in_flight -= 1;
        state.last = Some(Instant::now());
    }
}

async fn resume_elections(inbound: Arc<SnapshotInbound>, node: Arc<ClusterNode>) {
    loop {
        tokio::time::sleep(SNAPSHOT_QUIET / 8).await;
        let mut state = inbound.lock();
        if state.in_flight == 0 && state.last.is_some_and(|last| last.elapsed() >= SNAPSHOT_QUIET) {
            state.paused = false;
            node.raft().runtime_config().elect(true);
            tracing::info!("no snapshot chunk for {SNAPSHOT_QUIET:?}: elections resumed");
            return;
        }
    }
}

/// A follower's batch of proposals: all are queued here at once, so they share entries.
async fn propose(State(node): State<Arc<ClusterNode>>, body: Bytes) -> Response {
    serve(body, |proposals: Vec<Proposal>| async move {
        let answers: Vec<Result<Committed, Refusal>> =
            futures::future::join_all(proposals.into_iter().map(|proposal| node.propose_here(proposal))).await;
        answers
    })
    .await
}

async fn join(State(node): State<Arc<ClusterNode>>, body: Bytes) -> Response {
    serve(body, |req: JoinRequest| async move { node.admit(req.node_id, req.address).await }).await
}

async fn members(State(node): State<Arc<ClusterNode>>, body: Bytes) -> Response {
    serve(body, |change: MembershipChange| async move { node.change_members(change).await }).await
}

async fn removed(State(node): State<Arc<ClusterNode>>) -> Response {
    node.mark_removed();
    encode(&())
}

async fn read_index(State(node): State<Arc<ClusterNode>>) -> Response {
    encode(&node.read_index_here().await)
}

async fn status(State(node): State<Arc<ClusterNode>>) -> Response {
    encode(&node.own_status())
}
