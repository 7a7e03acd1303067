//! Real `keyledger serve` processes: started, killed with SIGKILL, restarted with the same
//! command line, each in its own network namespace when [`Net`] is in use, or on loopback
//! ports otherwise.

use std::fs::{self, OpenOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use keyledger_client::Client;

use crate::net::Net;

/// The nodes' `--snapshot-logs`: a snapshot every 1,000 log entries, a few dozen in a long run.
const SNAPSHOT_LOGS: u64 = 1_000;

/// How often a waiting check is retried.
pub const POLL_EVERY: Duration = Duration::from_millis(50);

/// Deadline for a node to come up or rejoin (generous: a loaded 2-core machine).
pub const STARTUP: Duration = Duration::from_secs(60);

/// One node: its command line, its data dir and log, and its process when running.
#[derive(Debug)]
pub struct Node {
    pub id: u64,
    listen: String,
    data_dir: PathBuf,
    log_path: PathBuf,
    join: Option<String>,
    /// `--cluster-secret-file`: node 1's secret, for the nodes that join it.
    secret_file: Option<PathBuf>,
    netns: Option<String>,
    child: Option<Child>,
}

impl Node {
    pub fn url(&self) -> String {
        format!("http://{}", self.listen)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    fn spawn(&mut self, binary: &Path) -> anyhow::Result<()> {
        let log = OpenOptions::new().create(true).append(true).open(&self.log_path).context("open the node log")?;
        // `ip netns exec` execs the binary in place, so the child's pid is the node's.
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns]).arg(binary);
                cmd
            }
            None => Command::new(binary),
        };
        cmd.arg("serve")
            .args(["--node-id", &self.id.to_string(), "--listen", &self.listen])
            .arg("--data-dir")
            .arg(&self.data_dir)
            // Far below the default, so kills and partitions keep meeting log compaction and
            // nodes that come back after it catch up by snapshot.
            .args(["--snapshot-logs", &SNAPSHOT_LOGS.to_string()]);
        if self.netns.is_some() {
            // A namespace address is not loopback; the harness's private network carries only
            // test keys, and capture there is part of what chaos runs do.
            cmd.arg("--insecure-plain-http");
        }
        if let Some(join) = &self.join {
            cmd.args(["--join", join]);
        }
        if let Some(secret_file) = &self.secret_file {
            cmd.arg("--cluster-secret-file").arg(secret_file);
        }
        cmd.env("RUST_LOG", "info")
            .env_remove("KEYLEDGER_ADDRESS")
            .env_remove("KEYLEDGER_API_KEY")
            .env_remove("KEYLEDGER_CLUSTER_SECRET_FILE")
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("clone the log handle")?)
            .stderr(log);
        self.child = Some(cmd.spawn().with_context(|| format!("start node {}", self.id))?);
        Ok(())
    }

    /// SIGKILL and reap.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process ended on its own; reaps it if so.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
        if status.is_some() {
            self.child = None;
        }
        status
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The nodes, their network, and the cluster's admin key. Dropping it kills every node and
/// then removes the namespaces (field order).
#[derive(Debug)]
pub struct Cluster {
    nodes: Vec<Node>,
    pub net: Option<Net>,
    binary: PathBuf,
    admin_key: String,
}

fn free_loopback_addr() -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind a loopback port")?;
    Ok(listener.local_addr()?.to_string())
}

impl Cluster {
    /// Starts `n` nodes under `dir`: node 1 bootstraps, the others join through it one after
    /// another. With `net`, each node runs in its namespace.
    pub async fn start(binary: &Path, dir: &Path, n: u64, net: Option<Net>) -> anyhow::Result<Cluster> {
        let mut cluster = Cluster { nodes: Vec::new(), net, binary: binary.to_path_buf(), admin_key: String::new() };
        for id in 1..=n {
            let (listen, netns) = match &cluster.net {
                Some(net) => (format!("{}:7700", net.node_ip(id)), Some(net.namespace(id))),
                None => (free_loopback_addr()?, None),
            };
            // Node 1 founds the cluster and makes its secret (it is ready before node 2 starts).
            let (join, secret_file) = match id {
                1 => (None, None),
                _ => (Some(cluster.nodes[0].url()), Some(dir.join("node-1").join("cluster.secret"))),
            };
            let mut node = Node {
                id,
                listen,
                data_dir: dir.join(format!("node-{id}")),
                log_path: dir.join(format!("node-{id}.log")),
                join,
                secret_file,
                netns,
                child: None,
            };
            node.spawn(binary)?;
            cluster.nodes.push(node);
            // Ready first: that wait notices a node that exits at once (a bad binary, say).
            cluster.wait_ready(id).await?;
            if id == 1 {
                cluster.admin_key = read_bootstrap_key(&dir.join("node-1").join("bootstrap-admin.key")).await?;
            }
            cluster.wait_voter(id).await?;
        }
        Ok(cluster)
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    fn node_mut(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    /// A client for node `id` with the admin key.
    pub fn client(&self, id: u64) -> anyhow::Result<Client> {
        Ok(Client::new(self.node(id).url(), Some(self.admin_key.clone()))?)
    }

    pub fn kill(&mut self, id: u64) {
        self.node_mut(id).kill();
    }

    pub fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        let binary = self.binary.clone();
        self.node_mut(id).spawn(&binary)
    }

    /// Starts every node that is not running.
    pub fn start_stopped(&mut self) -> anyhow::Result<()> {
        for id in self.ids() {
            if !self.node(id).is_running() {
                self.restart(id)?;
            }
        }
        Ok(())
    }

    /// Waits until node `id` answers `/readyz` with 200; fails if its process exits.
    pub async fn wait_ready(&mut self, id: u64) -> anyhow::Result<()> {
        let client = Client::new(self.node(id).url(), None)?;
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(status) = self.node_mut(id).exited() {
                bail!("node {id} exited on its own ({status})");
            }
            let last = match client.ready().await {
                Ok(_) => return Ok(()),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                bail!("node {id} not ready after {STARTUP:?}: {last}");
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    async fn wait_voter(&self, id: u64) -> anyhow::Result<()> {
        let client = self.client(id)?;
        let deadline = Instant::now() + STARTUP;
        loop {
            let last = match client.cluster_status().await {
                Ok(status) if status.members.iter().any(|m| m.node_id == id && m.role == "voter") => return Ok(()),
                Ok(status) => format!("{status:?}"),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                bail!("node {id} not a voter after {STARTUP:?}: {last}");
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// The leader as node `asked` sees it, if it answers and knows one.
    pub async fn leader_seen_by(&self, asked: u64) -> Option<u64> {
        let client = self.client(asked).ok()?;
        let status = tokio::time::timeout(Duration::from_secs(2), client.cluster_status()).await.ok()?.ok()?;
        status.leader
    }

    /// Node `id`'s ledger head (seq and hash) as it reports it about itself.
    pub async fn ledger_head(&self, id: u64) -> anyhow::Result<(u64, String)> {
        let status = self.client(id)?.cluster_status().await?;
        let me = status.members.iter().find(|m| m.node_id == id).context("the node lists itself")?;
        let head = me.ledger_head.as_ref().context("the node reports its ledger head")?;
        Ok((head.seq, head.hash.clone()))
    }

    /// The tail of node `id`'s log, for a report.
    pub fn log_tail(&self, id: u64, lines: usize) -> String {
        let text = fs::read_to_string(&self.node(id).log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

async fn read_bootstrap_key(path: &Path) -> anyhow::Result<String> {
    let deadline = Instant::now() + STARTUP;
    loop {
        if let Ok(text) = fs::read_to_string(path) {
            if let Some(secret) = text.strip_suffix('\n') {
                return Ok(secret.to_string());
            }
        }
        if Instant::now() >= deadline {
            bail!("no bootstrap key at {} after {STARTUP:?}", path.display());
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}
