//! The client half of node-to-node RPC: openraft's messages as bincode, AppendEntries on a
//! stream of its own (`raft_stream.rs`), everything else as HTTP POST.
//!
//! One `reqwest::Client` (one connection pool) serves every peer. A connection that cannot be
//! made is `Unreachable` — openraft then backs off instead of hammering a dead node — and
//! every other transport failure is a `NetworkError`. A peer advertised as `https://` is
//! reached over TLS, trusting only the cluster's CA (`NodeConfig::peer_tls`). Every call goes
//! through [`RpcClient`], which signs it with the key derived from the cluster secret and checks
//! the answer's signature (`peer_auth.rs`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyledger_ledger::codec;
use keyledger_ledger::{Node, NodeId, TypeConfig};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::peer_auth::{now_ms, AnswerSignature, PeerKeys, ANSWER_HEADER, ANY_NODE, REQUEST_HEADER};
use crate::protocol::{self, PeerSpeaks, PROTOCOL_HEADER};
use crate::raft_stream::StreamClient;
use crate::secret::Throttle;

/// Paths of the internal RPC endpoints (served by [`crate::rpc::router`]).
pub(crate) mod path {
    pub(crate) const STREAM: &str = "/internal/raft/stream";
    pub(crate) const VOTE: &str = "/internal/raft/vote";
    pub(crate) const SNAPSHOT: &str = "/internal/raft/snapshot";
    pub(crate) const PROPOSE: &str = "/internal/propose";
    pub(crate) const JOIN: &str = "/internal/join";
    pub(crate) const MEMBERS: &str = "/internal/members";
    pub(crate) const REMOVED: &str = "/internal/removed";
    pub(crate) const READ_INDEX: &str = "/internal/read-index";
    pub(crate) const STATUS: &str = "/internal/status";
}

/// The base URL of a node from its advertised address (`host:port` or a full URL).
pub(crate) fn base_url(address: &str) -> String {
    if address.starts_with("http://") || address.starts_with("https://") {
        address.trim_end_matches('/').to_string()
    } else {
        format!("http://{address}")
    }
}

/// Why a call to a peer failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// The request never reached the peer (connection refused, no route): nothing happened there.
    #[error("cannot connect to {0}")]
    Unreachable(String),
    /// The peer refused this node's signature (`401`): nothing happened there either.
    #[error("{0} refused this node's signature (made with the cluster secret)")]
    Refused(String),
    /// Something answered, but not as a node of this cluster: its answer is not signed with
    /// the cluster key, or by another node than the one asked.
    #[error("{0}")]
    NotANode(String),
    /// The peer speaks another peer protocol (`protocol.rs`): it refused the request, or its
    /// answer was not believed; nothing was done either way.
    #[error("{0}")]
    Incompatible(String),
    /// The request was sent, or may have been, but no usable answer came back.
    #[error("{0}")]
    Failed(String),
}

/// The one HTTP client (one connection pool) for every call to a peer. It signs each request
/// (`peer_auth.rs`) and checks each answer's signature, so no internal call goes out unsigned
/// and no answer is believed that a node of this cluster did not give. Cheap to clone.
#[derive(Clone)]
pub(crate) struct RpcClient {
    http: reqwest::Client,
    /// Signs with the cluster secret's key; accepts answers made with any key of a rotation.
    keys: PeerKeys,
    own_id: NodeId,
    nonces: Arc<Mutex<ChaCha20Rng>>,
    refusals: Arc<Throttle>,
}

/// A peer's answer: who gave it, what that node speaks (its release), and the answer itself.
pub(crate) struct Answered<T> {
    pub(crate) from: NodeId,
    pub(crate) speaks: PeerSpeaks,
    pub(crate) value: T,
}

/// A signed request about to go out: its header and the nonce its answer must be bound to.
pub(crate) struct Signed {
    pub(crate) header: HeaderValue,
    pub(crate) nonce: [u8; 16],
}

impl RpcClient {
    pub(crate) fn new(http: reqwest::Client, keys: PeerKeys, own_id: NodeId) -> RpcClient {
        RpcClient {
            http,
            keys,
            own_id,
            nonces: Arc::new(Mutex::new(ChaCha20Rng::from_entropy())),
            refusals: Arc::default(),
        }
    }

    /// Signs a request to node `to` (or [`ANY_NODE`]).
    pub(crate) fn sign(&self, to: NodeId, method: &str, path: &str, body: &[u8]) -> Signed {
        let mut nonce = [0u8; 16];
        self.nonces.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).fill_bytes(&mut nonce);
        let signature = self.keys.signing().sign_request(self.own_id, to, method, path, now_ms(), nonce, body);
        let header = HeaderValue::from_str(&signature.to_header()).expect("the signature header is ASCII");
        Signed { header, nonce }
    }

    /// Checks that an answer to the request with `nonce` was signed by node `expected` (or by
    /// any node, for [`ANY_NODE`]); the id of the node that signed it.
    pub(crate) fn check_answer(
        &self,
        base: &str,
        expected: NodeId,
        nonce: &[u8; 16],
        status: u16,
        header: Option<&HeaderValue>,
        body: &[u8],
    ) -> Result<NodeId, CallError> {
        let not_a_node = || CallError::NotANode(format!("{base} did not answer as a node of this cluster"));
        let signature = header
            .and_then(|h| h.to_str().ok())
            .and_then(AnswerSignature::parse)
            .filter(|sig| self.keys.answer_is_genuine(sig, nonce, status, body))
            .ok_or_else(not_a_node)?;
        if expected != ANY_NODE && signature.from != expected {
            return Err(CallError::NotANode(format!(
                "{base} answered as node {}, not node {expected}",
                signature.from
            )));
        }
        Ok(signature.from)
    }

    /// Posts `body` (bincode) to `path` at `base`, for node `to`, and decodes a bincode answer.
    pub(crate) async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        to: NodeId,
        base: &str,
        path: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        self.call_answered_by(to, base, path, body, timeout).await.map(|answered| answered.value)
    }

    /// Like [`Self::call`], also giving which node answered and what it speaks.
    pub(crate) async fn call_answered_by<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        to: NodeId,
        base: &str,
        path: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Answered<Resp>, CallError> {
        let bytes = codec::encode(body).map_err(|e| CallError::Failed(e.to_string()))?;
        let signed = self.sign(to, "POST", path, &bytes);
        let url = format!("{base}{path}");
        let response = self
            .http
            .post(&url)
            .timeout(timeout)
            .header(REQUEST_HEADER, signed.header)
            .header(PROTOCOL_HEADER, protocol::header_value())
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    CallError::Unreachable(base.to_string())
                } else if e.is_timeout() {
                    CallError::Failed(format!("{base}: no answer within {timeout:?}"))
                } else {
                    CallError::Failed(format!("{base}: {e}"))
                }
            })?;
        let status = response.status();
        let speaks = self.check_protocol(base, response.headers().get(PROTOCOL_HEADER))?;
        if status == StatusCode::UNAUTHORIZED {
            return Err(self.refused(base));
        }
        let answer_header = response.headers().get(ANSWER_HEADER).cloned();
        let bytes = response.bytes().await.map_err(|e| CallError::Failed(format!("{base}: {e}")))?;
        if !status.is_success() {
            return Err(CallError::Failed(format!("{url} answered {status}")));
        }
        let from = self.check_answer(base, to, &signed.nonce, status.as_u16(), answer_header.as_ref(), &bytes)?;
        let answer = codec::decode(&bytes).map_err(|e| CallError::Failed(e.to_string()))?;
        Ok(Answered { from, speaks, value: answer })
    }

    /// Fails the call when the peer's answer names another peer protocol, logged as an error
    /// at a pace a human can read: the cluster cannot work until an operator acts.
    pub(crate) fn check_protocol(&self, peer: &str, header: Option<&HeaderValue>) -> Result<PeerSpeaks, CallError> {
        let speaks = PeerSpeaks::from_header(header);
        match speaks.check(peer) {
            Ok(()) => Ok(speaks),
            Err(message) => {
                if self.refusals.due(peer) {
                    tracing::error!(%peer, "{message} (logged every 30 s)");
                }
                Err(CallError::Incompatible(message))
            }
        }
    }

    /// The error for a peer that answered `401`, logged at a pace a human can read.
    pub(crate) fn refused(&self, peer: &str) -> CallError {
        // Heartbeats go ten times a second: say it clearly, but not that often.
        if self.refusals.due(peer) {
            tracing::warn!(
                %peer,
                "the peer refused this node's signature: every node of a cluster must hold the same \
                 <data-dir>/cluster.secret, and their clocks must agree within 30 s (further refusals by this \
                 peer are logged every 30 s)"
            );
        }
        CallError::Refused(peer.to_string())
    }
}

/// Makes one [`Peer`] per target, all sharing one HTTP client.
#[derive(Clone)]
pub struct Network {
    rpc: RpcClient,
    /// Trust for `https://` peers, for the raft stream's own connections (`raft_stream.rs`).
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Network {
    pub(crate) fn new(rpc: RpcClient, tls: Option<Arc<rustls::ClientConfig>>) -> Network {
        Network { rpc, tls }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> Peer {
        Peer { rpc: self.rpc.clone(), tls: self.tls.clone(), target, base: base_url(&node.addr), stream: None }
    }
}

/// The connection to one peer.
pub struct Peer {
    rpc: RpcClient,
    tls: Option<Arc<rustls::ClientConfig>>,
    target: NodeId,
    base: String,
    /// AppendEntries' own connection (`raft_stream.rs`), opened on first use and after a failure.
    stream: Option<StreamClient>,
}

impl Peer {
    async fn rpc<Req, Resp, E>(
        &self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, Node, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let answer: Result<Resp, RaftError<NodeId, E>> =
            self.rpc.call(self.target, &self.base, path, req, option.hard_ttl()).await.map_err(rpc_error)?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    /// One AppendEntries on the stream, opening it first if needed. Any failure drops the
    /// stream: what is in flight on it is unknown. A stream that had been idle may have been
    /// closed by the peer meanwhile (it restarted), so a failure on one is retried once on a
    /// new stream: AppendEntries may safely be sent again.
    async fn append_on_stream(
        &mut self,
        request: &AppendEntriesRequest<TypeConfig>,
    ) -> Result<Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>, CallError> {
        if let Some(stream) = &mut self.stream {
            match stream.append(request).await {
                Ok(answer) => return Ok(answer),
                Err(e) => tracing::debug!(peer = %self.base, error = %e, "raft stream broke; opening another"),
            }
            self.stream = None;
        }
        let stream =
            self.stream.insert(StreamClient::open(&self.rpc, self.target, &self.base, self.tls.as_ref()).await?);
        let answer = stream.append(request).await;
        if answer.is_err() {
            self.stream = None;
        }
        answer
    }
}

fn rpc_error<E: std::error::Error>(e: CallError) -> RPCError<NodeId, Node, RaftError<NodeId, E>> {
    match e {
        // A refusal, like a dead peer, makes openraft back off instead of retrying
        // at once: nothing will change until an operator gives a node the right secret.
        // So does an address where something other than a node of this cluster answers.
        CallError::Unreachable(_) | CallError::Refused(_) | CallError::NotANode(_) | CallError::Incompatible(_) => {
            RPCError::Unreachable(Unreachable::new(&e))
        }
        CallError::Failed(_) => RPCError::Network(NetworkError::new(&e)),
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        let answer = match tokio::time::timeout(option.hard_ttl(), self.append_on_stream(&rpc)).await {
            Ok(answer) => answer.map_err(rpc_error)?,
            Err(_) => {
                self.stream = None;
                let e = CallError::Failed(format!("{}: no answer within {:?}", self.base, option.hard_ttl()));
                return Err(rpc_error(e));
            }
        };
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>> {
        self.rpc(path::SNAPSHOT, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.rpc(path::VOTE, &rpc, &option).await
    }
}
