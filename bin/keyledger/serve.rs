//! `keyledger serve`: run one node.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Flags of `keyledger serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// This node's id in the cluster; the first node of a cluster is 1.
    #[arg(long, default_value_t = 1)]
    pub node_id: u64,
    /// Address the HTTP API (and the node-to-node RPC) listens on.
    #[arg(long, default_value = "127.0.0.1:7700")]
    pub listen: SocketAddr,
    /// Directory holding this node's Raft log, ledger and bootstrap key.
    #[arg(long, default_value = "./keyledger-data")]
    pub data_dir: PathBuf,
    /// Join the cluster reached at this URL (ignored when the data dir already holds cluster state).
    #[arg(long)]
    pub join: Option<String>,
    /// Address other nodes use to reach this one (default: the listen address).
    #[arg(long)]
    pub advertise: Option<String>,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    // Filled in by the server wiring (in progress).
    let _ = args;
    anyhow::bail!("serve is not wired yet")
}
