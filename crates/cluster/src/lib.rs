//! keyledger's cluster layer: openraft wired to the sled storage, node-to-node RPC over HTTP,
//! bootstrap of a new cluster, joining an existing one, and forwarding writes to the leader.
//!
//! Main types: [`ClusterNode`] (one running node: propose, wait for an index, status),
//! [`rpc::router`] (the `/internal/*` routes peers call) and [`Network`] (the calls to peers).
//!
//! Design decision: a follower forwards the *complete* proposal — time, ids and the secret's
//! digest already fixed by the node the client talked to — rather than the client's request.
//! The leader then only orders it, so a retried forward cannot mint a second, different secret.
//! Internal routes carry bincode, not JSON, and answer only requests signed for the receiving
//! node with a key derived from the cluster secret (`peer_auth.rs`, `secret.rs`), a shared key
//! every member keeps in its data dir and never sends.

mod activity;
mod batch;
mod bootstrap;
mod checkpoints;
mod disk;
mod forward;
#[doc(hidden)]
pub mod fuzzing;
mod gauges;
mod network;
mod node;
pub mod peer_auth;
pub mod protocol;
mod raft_stream;
mod restored;
pub mod rpc;
mod secret;
pub mod tls;
mod upkeep;
pub mod webhooks;

pub use activity::FLUSH_EVERY;
pub use bootstrap::{bootstrap_default_account, BOOTSTRAP_KEY_FILE};
pub use checkpoints::{CheckpointPolicy, SIGNING_KEY_FILE};
pub use gauges::{NodeGauges, RaftRole, EXPIRY_WINDOWS};
pub use keyledger_ledger::{NodeId, StorageOptions, TypeConfig};
pub use network::Network;
pub use node::{
    ClusterNode, ClusterView, Committed, MemberFlags, MemberView, MembershipChange, MembershipRefusal, NodeConfig,
    ProposeError,
};
pub use secret::{ClusterSecret, SecretSource, CLUSTER_SECRET_FILE, NEXT_SECRET_FILE, PREVIOUS_SECRET_FILE};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("storage: {0}")]
    Storage(#[from] keyledger_ledger::LedgerError),
    #[error("raft: {0}")]
    Raft(String),
    #[error("{0}")]
    Io(String),
}
