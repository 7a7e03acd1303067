//! `keyledger serve`: run one node — storage, Raft, the HTTP API — until SIGTERM or Ctrl-C.
//! Its settings come from flags, `KEYLEDGER_*` variables and a TOML file (`config.rs`).

pub(crate) mod config;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use keyledger_api::serve::ServeOptions;
use keyledger_api::{Closing, Limits};
use keyledger_cluster::tls;
use keyledger_cluster::webhooks::WebhookPolicy;
use keyledger_cluster::{
    bootstrap_default_account, CheckpointPolicy, ClusterNode, ClusterSecret, NodeConfig, SecretSource, StorageOptions,
};
use keyledger_console::ConsoleOptions;
use rustls::{ClientConfig, ServerConfig};
use tokio::net::TcpListener;
use tracing_subscriber::filter::LevelFilter;

/// Flags of `keyledger serve`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ServeArgs {
    /// This node's id in the cluster; the first node of a cluster is 1.
    #[arg(long, env = "KEYLEDGER_NODE_ID", default_value_t = 1)]
    pub(crate) node_id: u64,
    /// Address the HTTP API (and the node-to-node RPC) listens on. Plain HTTP only on
    /// loopback, unless --insecure-plain-http.
    #[arg(long, env = "KEYLEDGER_LISTEN", default_value = "127.0.0.1:7700")]
    pub(crate) listen: SocketAddr,
    /// Directory holding this node's Raft log, ledger and bootstrap key.
    #[arg(long, env = "KEYLEDGER_DATA_DIR", default_value = "./keyledger-data")]
    pub(crate) data_dir: PathBuf,
    /// Join the cluster reached at this URL (ignored when the data dir already holds cluster state).
    #[arg(long, env = "KEYLEDGER_JOIN", conflicts_with = "standby")]
    pub(crate) join: Option<String>,
    /// Start without a cluster and wait to be added by `keyledger cluster add` (a new data dir
    /// otherwise bootstraps a cluster of its own).
    #[arg(long, env = "KEYLEDGER_STANDBY")]
    pub(crate) standby: bool,
    /// File holding the cluster secret, a copy of a member's `<data-dir>/cluster.secret`. A node
    /// that joins (`--join`, `--standby`) needs it once: it is stored in the data dir, so restarts
    /// need nothing. A node founding a cluster makes one. The secret itself never goes on the
    /// command line, where `ps` would show it.
    #[arg(long, env = "KEYLEDGER_CLUSTER_SECRET_FILE", value_name = "PATH")]
    pub(crate) cluster_secret_file: Option<PathBuf>,
    /// Address other nodes use to reach this one (default: the listen address).
    #[arg(long, env = "KEYLEDGER_ADVERTISE")]
    pub(crate) advertise: Option<String>,
    /// Snapshot the state after this many Raft log entries and compact the log up to the
    /// snapshot, keeping this many entries for lagging followers.
    #[arg(long, env = "KEYLEDGER_SNAPSHOT_LOGS", default_value_t = NodeConfig::DEFAULT_SNAPSHOT_LOGS, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) snapshot_logs: u64,
    /// MiB of Raft log kept after a snapshot, whatever --snapshot-logs says (one entry can hold a
    /// batch of a thousand writes); a snapshot is also built once twice this much was logged
    /// since the last. A restart reads all of it; a follower further behind gets a snapshot.
    #[arg(long, env = "KEYLEDGER_RAFT_LOG_KEEP_MIB", value_name = "MIB", default_value_t = NodeConfig::DEFAULT_LOG_KEEP_BYTES >> 20, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub(crate) raft_log_keep_mib: u64,
    /// When leading, sign a checkpoint (ledger size, head hash, Merkle root) once this many
    /// events were written since the last one...
    #[arg(long, env = "KEYLEDGER_CHECKPOINT_EVERY", default_value_t = CheckpointPolicy::default().every_events, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) checkpoint_every: u64,
    /// ...or once this long has passed with anything new written (`60s`, `5m`).
    #[arg(long, env = "KEYLEDGER_CHECKPOINT_INTERVAL", default_value = "60s", value_parser = parse_interval)]
    pub(crate) checkpoint_interval: Duration,
    /// Threads running the node's async work: HTTP, Raft and applying (default: one per core).
    /// Nodes sharing a machine, as in a test cluster, do better with fewer: every hand-off
    /// between threads costs a context switch (docs/benchmarks.md).
    #[arg(long, env = "KEYLEDGER_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) worker_threads: Option<u16>,
    /// MiB of ledger pages kept in memory for reads (histories, exports, proofs); beyond it
    /// they come from the OS's page cache. Verification never reads them: its index is in
    /// memory whatever this is.
    #[arg(long, env = "KEYLEDGER_STORAGE_CACHE_MIB", value_name = "MIB", default_value_t = StorageOptions::DEFAULT_CACHE_BYTES >> 20, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub(crate) storage_cache_mib: u64,
    /// Free space (MiB) the data dir's filesystem keeps: below it the node refuses writes
    /// (`503 unavailable`, saying so) and takes them again once space is freed; verification
    /// goes on. Room for the writes in flight, a snapshot and the state saved at shutdown
    /// (docs/operations.md, "Disk full"). 0 turns the reserve off.
    #[arg(long, env = "KEYLEDGER_MIN_FREE_DISK_MIB", value_name = "MIB", default_value_t = NodeConfig::DEFAULT_MIN_FREE_DISK_BYTES >> 20, value_parser = clap::value_parser!(u64).range(0..=1 << 30))]
    pub(crate) min_free_disk_mib: u64,
    /// Let webhooks use plain `http://` URLs (otherwise only `https://`).
    #[arg(long, env = "KEYLEDGER_WEBHOOK_ALLOW_HTTP")]
    pub(crate) webhook_allow_http: bool,
    /// Let webhooks send to loopback and private-network addresses (RFC 1918, unique-local,
    /// 100.64/10). Link-local addresses (169.254/16, cloud metadata) stay refused.
    #[arg(long, env = "KEYLEDGER_WEBHOOK_ALLOW_PRIVATE_NETWORKS")]
    pub(crate) webhook_allow_private_networks: bool,
    /// Attempts per webhook delivery (waits doubling from 1 s to 5 min between them) before it
    /// is recorded as failed and the webhook moves on to its next event.
    #[arg(long, env = "KEYLEDGER_WEBHOOK_MAX_ATTEMPTS", default_value_t = WebhookPolicy::default().max_attempts, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub(crate) webhook_max_attempts: u32,
    /// Failed authentications (a missing or invalid API key) one client address may make per
    /// minute; past that, its requests to authenticated routes are answered `429 rate_limited`
    /// until the minute ends. 0 turns the limit off.
    #[arg(long, env = "KEYLEDGER_AUTH_FAILURES_PER_MINUTE", default_value_t = Limits::default().auth_failures_per_minute)]
    pub(crate) auth_failures_per_minute: u32,
    /// Audit exports one identity may have running at once.
    #[arg(long, env = "KEYLEDGER_EXPORTS_PER_CALLER", default_value_t = Limits::default().exports_per_caller, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) exports_per_caller: u32,
    /// Audit exports this node runs at once, for all callers.
    #[arg(long, env = "KEYLEDGER_EXPORTS_PER_NODE", default_value_t = Limits::default().exports_per_node, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) exports_per_node: u32,
    /// Change feeds (`GET /v1/audit/stream`) one identity may have open at once.
    #[arg(long, env = "KEYLEDGER_FEEDS_PER_CALLER", default_value_t = Limits::default().feeds_per_caller, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) feeds_per_caller: u32,
    /// Change feeds this node keeps open at once, for all callers.
    #[arg(long, env = "KEYLEDGER_FEEDS_PER_NODE", default_value_t = Limits::default().feeds_per_node, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) feeds_per_node: u32,
    /// An audit export whose client takes nothing for this long is dropped (`30s`, `2m`).
    #[arg(long, env = "KEYLEDGER_EXPORT_STALL_TIMEOUT", default_value = "30s", value_parser = parse_interval)]
    pub(crate) export_stall_timeout: Duration,
    /// On SIGTERM, exports in flight may run this much longer before they are cut short
    /// (change feeds close at once); the node exits soon after, whatever is still open.
    #[arg(long, env = "KEYLEDGER_SHUTDOWN_GRACE", default_value = "5s", value_parser = parse_interval)]
    pub(crate) shutdown_grace: Duration,
    /// Serve HTTPS with this certificate chain (PEM, this node's certificate first); needs
    /// --tls-key. Peers then reach this node at its `https://` advertise address.
    #[arg(long, env = "KEYLEDGER_TLS_CERT", value_name = "FILE", requires = "tls_key", help_heading = "Transport")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "KEYLEDGER_TLS_KEY", value_name = "FILE", requires = "tls_cert", help_heading = "Transport")]
    pub(crate) tls_key: Option<PathBuf>,
    /// CA certificate(s) (PEM) this node trusts when calling `https://` peers [default: the
    /// certificates in --tls-cert, so a chain ending in the cluster's CA, or one self-signed
    /// certificate shared by every node, needs nothing more]. Only these are trusted, never the
    /// web's roots.
    #[arg(long, env = "KEYLEDGER_PEER_CACERT", value_name = "FILE", help_heading = "Transport")]
    pub(crate) peer_cacert: Option<PathBuf>,
    /// Serve plain HTTP on an address other than loopback. Without it such a node refuses to
    /// start: API keys and the cluster secret would cross the network in clear text.
    #[arg(long, env = "KEYLEDGER_INSECURE_PLAIN_HTTP", conflicts_with = "tls_cert", help_heading = "Transport")]
    pub(crate) insecure_plain_http: bool,
    /// Connections open at once; more are closed as soon as they are accepted. Keep it well
    /// below the file-descriptor limit (`ulimit -n`).
    #[arg(long, env = "KEYLEDGER_MAX_CONNECTIONS", default_value_t = ServeOptions::DEFAULT_MAX_CONNECTIONS as u64, value_parser = clap::value_parser!(u64).range(1..), help_heading = "Transport")]
    pub(crate) max_connections: u64,
    /// How long a client may take to send a request's headers, and may keep a connection idle
    /// between requests; also bounds a TLS handshake (`10s`, `500ms`).
    #[arg(long, env = "KEYLEDGER_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_timeout, help_heading = "Transport")]
    pub(crate) header_read_timeout: Duration,
    /// Log lines as `text` (for a terminal) or `json` (one object per line: timestamp, level,
    /// target, fields with the message).
    #[arg(long, env = "KEYLEDGER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, help_heading = "Logging")]
    pub(crate) log_format: LogFormat,
    /// Lowest level logged: error, warn, info, debug, trace or off. RUST_LOG, when set, replaces
    /// it (and may name targets: `RUST_LOG=info,keyledger_cluster=debug`).
    #[arg(long, env = "KEYLEDGER_LOG_LEVEL", default_value = "info", value_parser = parse_level, help_heading = "Logging")]
    pub(crate) log_level: LevelFilter,
    /// Log each HTTP API request at `info` (target `keyledger::access`): method, route template,
    /// status, latency, request id and the caller's key id; never a query string, a header, a
    /// body or a secret.
    #[arg(long, env = "KEYLEDGER_ACCESS_LOG", default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL", help_heading = "Logging")]
    pub(crate) access_log: bool,
    /// Also log each verification (`POST /v1/verify`, `GET /v1/verify/auth-request`; target
    /// `keyledger::access::verify`, never the key checked). Off by default: a line per
    /// verification costs about a quarter of a node's verification throughput; `/metrics`
    /// counts them either way.
    #[arg(long, env = "KEYLEDGER_ACCESS_LOG_VERIFICATIONS", default_value_t = false, action = clap::ArgAction::Set, value_name = "BOOL", help_heading = "Logging")]
    pub(crate) access_log_verifications: bool,
    /// Read settings from this TOML file: every flag above is a key (`data_dir = "/var/lib/keyledger"`).
    /// A flag beats its environment variable, which beats the file, which beats the default
    /// (docs/configuration.md).
    #[arg(long, env = "KEYLEDGER_SERVE_CONFIG", value_name = "FILE", help_heading = "Configuration")]
    pub(crate) config: Option<PathBuf>,
    /// Print the effective configuration as TOML, each line with where its value came from, and
    /// exit without starting or touching the data dir.
    #[arg(long, help_heading = "Configuration")]
    pub(crate) print_config: bool,
}

/// How `serve` writes its log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

impl ServeArgs {
    fn limits(&self) -> Limits {
        Limits {
            auth_failures_per_minute: self.auth_failures_per_minute,
            exports_per_caller: self.exports_per_caller,
            exports_per_node: self.exports_per_node,
            feeds_per_caller: self.feeds_per_caller,
            feeds_per_node: self.feeds_per_node,
            export_stall_timeout: self.export_stall_timeout,
            export_shutdown_grace: self.shutdown_grace,
        }
    }
}

/// After the shutdown grace, how long connections still open may take before the node stops
/// waiting for them.
const SHUTDOWN_SLACK: Duration = Duration::from_secs(1);

/// A duration of at least one second, in keyledger's duration syntax.
fn parse_interval(text: &str) -> Result<Duration, String> {
    let span = keyledger_model::Span::parse(text).map_err(|e| e.to_string())?;
    if span.0 < 1000 {
        return Err("must be at least 1s".into());
    }
    Ok(Duration::from_millis(span.0 as u64))
}

/// A log level, as `--log-level` takes it.
fn parse_level(text: &str) -> Result<LevelFilter, String> {
    text.parse().map_err(|_| "must be one of error, warn, info, debug, trace, off".to_string())
}

/// A duration above zero, in keyledger's duration syntax.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let span = keyledger_model::Span::parse(text).map_err(|e| e.to_string())?;
    if span.0 < 1 {
        return Err("must be at least 1ms".into());
    }
    Ok(Duration::from_millis(span.0 as u64))
}

/// The TLS configurations of a node, from its flags.
struct Transport {
    /// Serve HTTPS with this; plain HTTP without it.
    server: Option<Arc<ServerConfig>>,
    /// Trust for `https://` peers.
    peer: Option<Arc<ClientConfig>>,
}

/// The TLS configurations for serving and for calling peers, from the flags. Plain HTTP is
/// refused on any address but loopback unless asked for by name.
fn transport(args: &ServeArgs) -> anyhow::Result<Transport> {
    let server = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
        _ => None,
    };
    if server.is_none() && !args.listen.ip().is_loopback() && !args.insecure_plain_http {
        anyhow::bail!(
            "refusing to serve plain HTTP on {}, which is not a loopback address: API keys and the cluster \
             secret would cross the network in clear text; give --tls-cert and --tls-key, or \
             --insecure-plain-http to do it anyway",
            args.listen
        );
    }
    let peer_ca = args.peer_cacert.as_ref().or(args.tls_cert.as_ref());
    let peer = peer_ca.map(|ca| tls::peer_client_config(ca)).transpose()?;
    Ok(Transport { server, peer })
}

/// The address peers reach this node at: `https://` when it serves TLS, whether or not
/// `--advertise` named a scheme.
fn advertise_address(advertise: Option<&str>, local: SocketAddr, tls: bool) -> String {
    let address = advertise.map_or_else(|| local.to_string(), str::to_string);
    if tls && !address.contains("://") {
        format!("https://{address}")
    } else {
        address
    }
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    // Flags are checked before anything is created.
    let Transport { server: server_tls, peer: peer_tls } = transport(&args)?;
    restrict_data_dir(&args.data_dir)?;
    if (args.join.is_some() || args.standby) && keyledger_ledger::restore::restored_for(&args.data_dir)?.is_some() {
        anyhow::bail!(
            "{} holds a restored backup: start it without --join or --standby, so that it founds the new cluster",
            args.data_dir.display()
        );
    }
    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
    let local = listener.local_addr()?;
    let advertise = advertise_address(args.advertise.as_deref(), local, server_tls.is_some());
    let secret = match &args.cluster_secret_file {
        Some(path) => SecretSource::Given(ClusterSecret::read(path).context("cannot read the cluster secret")?),
        None if args.join.is_some() || args.standby => SecretSource::Joining,
        None => SecretSource::NewCluster,
    };
    let config = NodeConfig {
        node_id: args.node_id,
        advertise,
        data_dir: args.data_dir.clone(),
        snapshot_logs: args.snapshot_logs,
        log_keep_bytes: args.raft_log_keep_mib << 20,
        checkpoints: CheckpointPolicy { every_events: args.checkpoint_every, interval: args.checkpoint_interval },
        secret,
        peer_tls,
        storage: StorageOptions { cache_bytes: args.storage_cache_mib << 20 },
        min_free_disk_bytes: args.min_free_disk_mib << 20,
        webhooks: WebhookPolicy {
            allow_http: args.webhook_allow_http,
            allow_private_networks: args.webhook_allow_private_networks,
            max_attempts: args.webhook_max_attempts,
            ..WebhookPolicy::default()
        },
    };
    let node = ClusterNode::start(config)
        .await
        .with_context(|| format!("cannot open the data dir {}", args.data_dir.display()))?;

    let closing = Closing::new();
    let api = keyledger_api::router_with(node.clone(), args.limits(), closing.clone());
    // The console asks this same API, in process, as the signed-in key.
    let console = keyledger_console::router(api.clone(), ConsoleOptions { secure_cookies: server_tls.is_some() });
    let app = api.merge(console).merge(keyledger_cluster::rpc::router(node.clone()));
    // Every request carries its client address (`ConnectInfo`): failed authentications are
    // limited per address, and a leak report records it as its reporter.
    let options = ServeOptions {
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        header_read_timeout: args.header_read_timeout,
        tls: server_tls,
    };
    let scheme = if options.tls.is_some() { "https" } else { "http" };
    let mut server = tokio::spawn({
        let closing = closing.clone();
        keyledger_api::serve::serve(listener, app, options, async move { closing.closed().await })
    });
    tokio::spawn({
        let closing = closing.clone();
        async move {
            shutdown_signal().await;
            closing.close();
        }
    });
    tracing::info!(node_id = args.node_id, address = %local, %scheme, data_dir = %args.data_dir.display(), "listening");

    if args.standby && !node.is_initialized().await? {
        tracing::info!("standing by: add this node with `keyledger cluster add`");
    } else {
        join_or_bootstrap(&node, args.join.as_deref()).await?;
    }
    node.spawn_background();

    // The server stops accepting on SIGTERM/Ctrl-C and finishes requests in flight: change
    // feeds end at once, exports get their grace. A connection still open after that (a client
    // that stopped reading) does not hold the node up.
    let grace = args.shutdown_grace + SHUTDOWN_SLACK;
    tokio::select! {
        served = &mut server => served.context("the HTTP server task failed")?.context("the HTTP server failed")?,
        () = async { closing.closed().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(?grace, "connections still open after the shutdown grace; stopping without them");
            server.abort();
        }
    }
    node.flush_activity().await;
    node.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Keeps the data dir to this node's user: the process's umask makes every file it creates from
/// now on (the Raft log's segments, sled's files, snapshots, keys) 0600 and every folder 0700,
/// the data dir is created 0700, and what an older version left more open is tightened.
fn restrict_data_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create the data dir {}", dir.display()))?;
    }
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        // Symbolic links inside are left alone: their own mode means nothing, and what they
        // point to is not this node's to change. The data dir itself may be one.
        let meta = if path == dir { std::fs::metadata(&path) } else { std::fs::symlink_metadata(&path) }
            .with_context(|| format!("cannot read {}", path.display()))?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).with_context(|| format!("cannot read {}", path.display()))? {
                pending.push(entry?.path());
            }
        } else if !meta.is_file() {
            continue;
        }
        let mode = meta.permissions().mode() & 0o7777;
        let owner_only = if meta.is_dir() { 0o700 } else { mode & 0o700 };
        if mode != owner_only {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(owner_only))
                .with_context(|| format!("cannot restrict {} to its owner", path.display()))?;
        }
    }
    Ok(())
}

/// A new data dir with `--join` asks to be added; without it, it becomes a cluster of one.
/// A data dir that already holds cluster state resumes it (and finishes an interrupted join).
async fn join_or_bootstrap(node: &Arc<ClusterNode>, join: Option<&str>) -> anyhow::Result<()> {
    let initialized = node.is_initialized().await?;
    match join {
        Some(url) if !initialized || !node.is_voter() => {
            let (node, url) = (node.clone(), url.to_string());
            tracing::info!(%url, "joining the cluster");
            tokio::spawn(async move { node.join(&url).await });
        }
        Some(_) => tracing::info!("resuming cluster membership from the data dir; --join is not needed"),
        None => {
            if let Some(path) = bootstrap_default_account(node).await? {
                tracing::info!(
                    path = %path.display(),
                    "bootstrapped account `default` with user `admin`; its API key was written to this file (mode 0600)"
                );
            }
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM");
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}
