//! The client half of node-to-node RPC: openraft's messages as bincode over HTTP POST.
//!
//! One `reqwest::Client` (one connection pool) serves every peer. A connection that cannot be
//! made is `Unreachable` — openraft then backs off instead of hammering a dead node — and
//! every other transport failure is a `NetworkError`.

use std::time::Duration;

use keyledger_ledger::codec;
use keyledger_ledger::{Node, NodeId, TypeConfig};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Paths of the internal RPC endpoints (served by [`crate::rpc::router`]).
pub(crate) mod path {
    pub(crate) const APPEND: &str = "/internal/raft/append";
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
    /// The request was sent, or may have been, but no usable answer came back.
    #[error("{0}")]
    Failed(String),
}

/// Posts `body` (bincode) to `url` and decodes a bincode answer.
pub(crate) async fn call<Req: Serialize, Resp: DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    body: &Req,
    timeout: Duration,
) -> Result<Resp, CallError> {
    let bytes = codec::encode(body).map_err(|e| CallError::Failed(e.to_string()))?;
    let response = http
        .post(url)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
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
    let bytes = response.bytes().await.map_err(|e| CallError::Failed(e.to_string()))?;
    if !status.is_success() {
        return Err(CallError::Failed(format!("{url} answered {status}")));
    }
    codec::decode(&bytes).map_err(|e| CallError::Failed(e.to_string()))
}

/// Makes one [`Peer`] per target, all sharing one HTTP client.
#[derive(Clone)]
pub struct Network {
    http: reqwest::Client,
}

impl Network {
    pub fn new(http: reqwest::Client) -> Network {
        Network { http }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> Peer {
        Peer { http: self.http.clone(), target, base: base_url(&node.addr) }
    }
}

/// The connection to one peer.
pub struct Peer {
    http: reqwest::Client,
    target: NodeId,
    base: String,
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
            call(&self.http, &url, req, option.hard_ttl()).await.map_err(|e| match e {
                CallError::Unreachable(_) => RPCError::Unreachable(Unreachable::new(&e)),
                CallError::Failed(_) => RPCError::Network(NetworkError::new(&e)),
            })?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.rpc(path::APPEND, &rpc, &option).await
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
