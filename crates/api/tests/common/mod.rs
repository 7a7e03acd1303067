//! What the in-process tests share: a real single node (storage, Raft, the default account)
//! and its router, driven without a socket.

use std::sync::Arc;

use axum::Router;
use keyledger_cluster::{bootstrap_default_account, ClusterNode, NodeConfig, SecretSource};

pub(crate) struct Node {
    pub(crate) node: Arc<ClusterNode>,
    pub(crate) router: Router,
    /// The bootstrap owner's key.
    pub(crate) admin: String,
    _dir: tempfile::TempDir,
}

impl Node {
    pub(crate) async fn start() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let config = NodeConfig::new(1, "127.0.0.1:1".into(), dir.path().to_path_buf(), SecretSource::NewCluster);
        let node = ClusterNode::start(config).await.unwrap();
        let key_file = bootstrap_default_account(&node).await.unwrap().expect("a fresh node bootstraps");
        let admin = std::fs::read_to_string(key_file).unwrap().trim().to_string();
        let router = keyledger_api::router(node.clone());
        Node { node, router, admin, _dir: dir }
    }
}
