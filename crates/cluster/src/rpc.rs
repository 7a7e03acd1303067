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
//! Every route answers only a request signed for this node with the key derived from the
//! cluster secret (`peer_auth.rs`), and signs its answer; any other gets `401` before its body
//! is read, so a stranger who reaches the port cannot pose as a leader, vote, or change the
//! members, and a captured request cannot be replayed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
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
use crate::peer_auth::{body_hash, constant_time_eq, now_ms, Rejection, Verifier, ANSWER_HEADER, REQUEST_HEADER};
use crate::protocol::{self, PeerSpeaks, PROTOCOL_HEADER};
use crate::secret::Throttle;
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
    let verifier = Verifier::new(node.peer_keys().clone(), node.id());
    let gate = Arc::new(Gate { verifier, refusals: Throttle::default() });
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
        // Outermost: a request not signed for this node is refused before anything reads its body.
        .layer(middleware::from_fn_with_state(gate, require_signature))
        .with_state(node)
}

/// What an internal request must show, and the pace of warnings about those that do not.
struct Gate {
    verifier: Verifier,
    refusals: Throttle,
}

/// Passes on only requests signed for this node with the cluster key (`peer_auth.rs`), and
/// signs their answers. Everything but the body is checked first; the body is then read (up to
/// the limit) only to check it is the one signed.
async fn require_signature(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let header = request.headers().get(REQUEST_HEADER).map(|h| h.as_bytes());
    let signature = match gate.verifier.check_head(header, &method, &path, now_ms()) {
        Ok(signature) => signature,
        Err(rejection) => return refuse(&gate, &path, rejection),
    };
    // Only a node of this cluster learns what this one speaks, and only once it proved it is one.
    let peer = PeerSpeaks::from_header(request.headers().get(PROTOCOL_HEADER));
    if let Err(message) = peer.check(&format!("node {}", signature.from)) {
        return refuse_protocol(&gate, signature.from, message);
    }
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, INTERNAL_BODY_LIMIT).await else {
        let body =
            r#"{"error":{"code":"payload_too_large","message":"an internal request body is limited to 64 MiB"}}"#;
        return (StatusCode::PAYLOAD_TOO_LARGE, [(CONTENT_TYPE, "application/json")], body).into_response();
    };
    if !constant_time_eq(&body_hash(&body), &signature.body_hash) {
        return refuse(&gate, &path, Rejection::BodyMismatch);
    }
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    sign_answer(&gate.verifier, &signature.nonce, response).await
}

/// Adds this node's signature over the answer's status and body, bound to the request's nonce.
async fn sign_answer(verifier: &Verifier, nonce: &[u8; 16], response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, INTERNAL_BODY_LIMIT).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "the answer could not be read to be signed").into_response();
    };
    let signature = verifier.key().sign_answer(nonce, verifier.own_id(), parts.status.as_u16(), &body);
    let value = HeaderValue::from_str(&signature.to_header()).expect("the signature header is ASCII");
    parts.headers.insert(ANSWER_HEADER, value);
    parts.headers.insert(PROTOCOL_HEADER, protocol::header_value());
    Response::from_parts(parts, Body::from(body))
}

/// `409 protocol_mismatch` for a node of this cluster that speaks another peer protocol,
/// naming both; the answer carries this node's protocol header so the sender can say it too.
fn refuse_protocol(gate: &Gate, from: NodeId, message: String) -> Response {
    if gate.refusals.due(&from.to_string()) {
        tracing::error!(peer = from, "{message} (logged every 30 s)");
    }
    let body = serde_json::json!({"error": {"code": "protocol_mismatch", "message": message}});
    (
        StatusCode::CONFLICT,
        [
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (HeaderName::from_static(PROTOCOL_HEADER), protocol::header_value()),
        ],
        body.to_string(),
    )
        .into_response()
}

fn refuse(gate: &Gate, path: &str, rejection: Rejection) -> Response {
    let reason = rejection.reason();
    if gate.refusals.due("") {
        tracing::warn!(
            %path,
            reason,
            "refused an internal request not signed for this node with this cluster's key (further refusals are \
             logged every 30 s)"
        );
    }
    let body = serde_json::json!({"error": {
        "code": "unauthenticated",
        "message": format!("node-to-node requests must be signed for this node with the cluster key: {reason}"),
    }});
    (
        StatusCode::UNAUTHORIZED,
        [(CONTENT_TYPE, "application/json"), (WWW_AUTHENTICATE, r#"KeyledgerPeer realm="keyledger-cluster""#)],
        body.to_string(),
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
