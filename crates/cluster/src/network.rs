//! The client half of node-to-node RPC: openraft's messages as bincode, AppendEntries on a
//! stream of its own (`raft_stream.rs`), everything else as HTTP POST.
//!
//! One `reqwest::Client` (one connection pool) serves every peer. A connection that cannot be
//! made is `Unreachable` — openraft then backs off instead of hammering a dead node — and
//! every other transport failure is a `NetworkError`. A peer advertised as `https://` is
//! reached over TLS, trusting only the cluster's CA (`NodeConfig::peer_tls`). Every call goes through [`RpcClient`],
//! which shows this node's cluster secret (`secret.rs`).

use std::sync::Arc;
use std::time::Duration;

use keyledger_ledger::codec;
use keyledger_ledger::{Node, NodeId, TypeConfig};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::raft_stream::StreamClient;
use crate::secret::{ClusterSecret, Throttle};

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
    /// The peer refused this node's cluster secret (`401`): nothing happened there either.
    #[error("{0} refused this node's cluster secret")]
    Refused(String),
    /// The request was sent, or may have been, but no usable answer came back.
    #[error("{0}")]
    Failed(String),
}

/// The one HTTP client (one connection pool) for every call to a peer. It puts the cluster
/// secret on each request, so no internal call can go out without it. Cheap to clone.
#[derive(Clone)]
pub(crate) struct RpcClient {
    http: reqwest::Client,
    secret: HeaderValue,
    refusals: Arc<Throttle>,
}

impl RpcClient {
    pub(crate) fn new(http: reqwest::Client, secret: &ClusterSecret) -> RpcClient {
        RpcClient { http, secret: secret.header(), refusals: Arc::default() }
    }

    /// Posts `body` (bincode) to `url` and decodes a bincode answer.
    pub(crate) async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        url: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        let bytes = codec::encode(body).map_err(|e| CallError::Failed(e.to_string()))?;
        let response = self
            .http
            .post(url)
            .timeout(timeout)
            .header(AUTHORIZATION, self.secret.clone())
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    CallError::Unreachable(url.to_string())
                } else {
                    CallError::Failed(e.to_string())
                }
            })?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            return Err(self.refused(url.split("/internal/").next().unwrap_or(url)));
        }
        let bytes = response.bytes().await.map_err(|e| CallError::Failed(e.to_string()))?;
        if !status.is_success() {
            return Err(CallError::Failed(format!("{url} answered {status}")));
        }
        codec::decode(&bytes).map_err(|e| CallError::Failed(e.to_string()))
    }

    /// The `Authorization` value every internal request carries.
    pub(crate) fn secret_header(&self) -> HeaderValue {
        self.secret.clone()
    }

    /// The error for a peer that answered `401`, logged at a pace a human can read.
    pub(crate) fn refused(&self, peer: &str) -> CallError {
        // Heartbeats go ten times a second: say it clearly, but not that often.
        if self.refusals.due(peer) {
            tracing::warn!(
                %peer,
                "the peer refused this node's cluster secret: every node of a cluster must hold the same \
                 <data-dir>/cluster.secret (further refusals by this peer are logged every 30 s)"
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
        let url = format!("{}{}", self.base, path);
        let answer: Result<Resp, RaftError<NodeId, E>> =
            self.rpc.call(&url, req, option.hard_ttl()).await.map_err(rpc_error)?;
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
        let stream = self.stream.insert(StreamClient::open(&self.rpc, &self.base, self.tls.as_ref()).await?);
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
        CallError::Unreachable(_) | CallError::Refused(_) => RPCError::Unreachable(Unreachable::new(&e)),
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
