//! Boots real `keyledger` processes for the black-box tests.
//!
//! A [`Cluster`] owns one temporary directory and the node processes started in it. Node `n`
//! keeps its data in `node-<n>/` and writes its stdout and stderr (with `RUST_LOG=info`) to
//! `node-<n>.log`, in append mode, so a restarted node's log follows its earlier life. Each node
//! listens on a free loopback port chosen once and kept across restarts, because a restart
//! must use the same command line. Node 1 founds the cluster and makes its secret; every other
//! node is given node 1's `cluster.secret` with `--cluster-secret-file`, as an operator would.
//!
//! Dropping a [`Cluster`] kills every node (SIGKILL) and then removes the directory. When the drop
//! happens because the test panicked, the node logs are printed first, so a failure shows the
//! server's own account of it next to the failed assertion.
//!
//! Nothing here sleeps to synchronize. Every wait is [`poll`]: retry a check every
//! [`POLL_EVERY`] until it holds or a deadline passes, then fail saying what was awaited and
//! what the check saw last.

use std::fs::{self, OpenOptions};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keyledger_client::Client;
use keyledger_wire as wire;

/// How often a waiting check is retried.
pub(crate) const POLL_EVERY: Duration = Duration::from_millis(25);

/// Deadline for a node to come up, join, or for the cluster to agree on a leader. Generous,
/// because a loaded CI machine runs many tests at once; a healthy run needs well under a second.
pub(crate) const STARTUP: Duration = Duration::from_secs(30);

/// Deadline for replication to reach every node, or for a write to succeed after a failover.
pub(crate) const CONVERGE: Duration = Duration::from_secs(15);

/// Name of the file a bootstrapping node writes the first admin key to.
pub(crate) const BOOTSTRAP_KEY_FILE: &str = "bootstrap-admin.key";

/// Name of the file in a data dir that holds the cluster secret.
pub(crate) const CLUSTER_SECRET_FILE: &str = "cluster.secret";

/// Path of the `keyledger` binary under test.
pub(crate) fn keyledger_bin() -> &'static str {
    env!("CARGO_BIN_EXE_keyledger")
}

/// Retries `check` every [`POLL_EVERY`] until it returns `Ok`, and returns that value. Panics
/// once `within` has passed, with `what` and the last `Err` the check gave (its reason for "not
/// yet"), so a timeout reads as a precise failure rather than a hang.
pub(crate) async fn poll<T>(what: &str, within: Duration, mut check: impl AsyncFnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {within:?} waiting for {what}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(POLL_EVERY).await,
        }
    }
}

/// A loopback address whose port was free a moment ago: bind port 0, read the port the kernel
/// chose, release it. Another process could take it in between, but the kernel hands out
/// ephemeral ports in rotation, so a collision within one test run is very unlikely.
pub(crate) fn free_loopback_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("read the bound port")
}

/// One `keyledger serve` process, possibly stopped. Its data dir and port outlive the process.
pub(crate) struct Node {
    id: u64,
    addr: SocketAddr,
    data_dir: PathBuf,
    log_path: PathBuf,
    join: Option<String>,
    /// Passed as `--cluster-secret-file` on every start.
    secret_file: Option<PathBuf>,
    /// Further `serve` flags, the same on every start.
    extra_args: Vec<String>,
    /// Serves HTTPS (the cluster was started with a CA, `Cluster::start_tls`).
    https: bool,
    child: Option<Child>,
}

impl Node {
    /// Base URL of the node's HTTP API, e.g. `http://127.0.0.1:41234`.
    pub(crate) fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The `host:port` the node listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub(crate) fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Everything the node has printed so far, over all its restarts.
    pub(crate) fn log(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    /// Starts the process with the node's one command line.
    fn spawn(&mut self) {
        assert!(self.child.is_none(), "node {} is already running", self.id);
        let log = OpenOptions::new().create(true).append(true).open(&self.log_path).expect("open the node log");
        let mut cmd = Command::new(keyledger_bin());
        cmd.arg("serve")
            .arg("--node-id")
            .arg(self.id.to_string())
            .arg("--listen")
            .arg(self.addr.to_string())
            .arg("--data-dir")
            .arg(&self.data_dir);
        if let Some(join) = &self.join {
            cmd.arg("--join").arg(join);
        }
        if let Some(secret_file) = &self.secret_file {
            cmd.arg("--cluster-secret-file").arg(secret_file);
        }
        cmd.args(&self.extra_args);
        cmd.env("RUST_LOG", "info")
            .env_remove("KEYLEDGER_ADDRESS")
            .env_remove("KEYLEDGER_API_KEY")
            .env_remove("KEYLEDGER_CLUSTER_SECRET_FILE")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log);
        self.child = Some(cmd.spawn().expect("spawn keyledger serve"));
    }

    /// SIGTERM, then waits for the process to end on its own; its exit status.
    fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the node is running");
        let signalled = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("run kill");
        assert!(signalled.success(), "kill -TERM failed");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("wait for the node") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("node {} did not stop within {within:?} of SIGTERM; its log:\n{}", self.id, self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, then reap, so the port and the data dir are free when this returns.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Panics with the log if the process has exited on its own.
    fn assert_alive(&mut self) {
        if let Some(child) = &mut self.child {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                panic!("node {} exited early ({status}); its log:\n{}", self.id, self.log());
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A set of nodes in one temporary directory, and the admin key of the cluster they form.
pub(crate) struct Cluster {
    // Field order matters: the nodes are dropped (killed) before the directory is removed.
    nodes: Vec<Node>,
    http: reqwest::Client,
    admin_key: String,
    extra_args: Vec<String>,
    /// The CA the nodes' certificates chain to, when they serve HTTPS; clients trust it.
    cacert: Option<PathBuf>,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// One node that bootstraps a fresh single-node cluster.
    pub(crate) async fn single() -> Cluster {
        Cluster::start(1).await
    }

    /// Node 1 bootstraps; nodes 2..=n join through node 1, one after another, and each is
    /// awaited until it is a voter. Returns once every node is ready and a voter.
    pub(crate) async fn start(n: u64) -> Cluster {
        Cluster::start_with(n, &[]).await
    }

    /// Like [`Cluster::start`], with further `serve` flags for every node.
    pub(crate) async fn start_with(n: u64, extra_args: &[&str]) -> Cluster {
        Cluster::start_inner(n, extra_args, None).await
    }

    /// Like [`Cluster::start_with`] for nodes serving HTTPS (`extra_args` hold `--tls-cert`
    /// and `--tls-key`): URLs are `https://` and every client trusts `cacert`.
    pub(crate) async fn start_tls(n: u64, cacert: &Path, extra_args: &[&str]) -> Cluster {
        Cluster::start_inner(n, extra_args, Some(cacert.to_path_buf())).await
    }

    async fn start_inner(n: u64, extra_args: &[&str], cacert: Option<PathBuf>) -> Cluster {
        assert!(n >= 1);
        let dir = tempfile::Builder::new().prefix("keyledger-it-").tempdir().expect("create a temp dir");
        // Pooled connections are dropped before the node's 10 s idle close, as the client does.
        let mut http =
            reqwest::Client::builder().timeout(Duration::from_secs(10)).pool_idle_timeout(Duration::from_secs(5));
        if let Some(path) = &cacert {
            let pem = fs::read(path).expect("read the CA certificate");
            http = http.add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("parse the CA certificate"));
        }
        let http = http.build().expect("build the HTTP client");
        let extra_args = extra_args.iter().map(|a| a.to_string()).collect();
        let mut cluster = Cluster { nodes: Vec::new(), http, admin_key: String::new(), extra_args, cacert, dir };

        cluster.add_node_with(None, None, cluster.extra_args.clone());
        cluster.wait_ready(1).await;
        cluster.admin_key = cluster.read_bootstrap_key().await;

        for _ in 2..=n {
            cluster.join_new_node().await;
        }
        cluster
    }

    /// A cluster whose node 1 starts on a data dir `prepare` fills first (given its path; a
    /// restored backup), with `serve` flags `extra_args`; clients use `admin_key`. Returns once
    /// node 1 is ready; add more nodes with [`Cluster::join_new_node`].
    pub(crate) async fn start_prepared(admin_key: &str, extra_args: &[&str], prepare: impl FnOnce(&Path)) -> Cluster {
        let dir = tempfile::Builder::new().prefix("keyledger-it-").tempdir().expect("create a temp dir");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .expect("build the HTTP client");
        let extra_args: Vec<String> = extra_args.iter().map(|a| a.to_string()).collect();
        let mut cluster =
            Cluster { nodes: Vec::new(), http, admin_key: admin_key.into(), extra_args, cacert: None, dir };
        prepare(&cluster.dir.path().join("node-1"));
        cluster.add_node_with(None, None, cluster.extra_args.clone());
        cluster.wait_ready(1).await;
        cluster
    }

    /// Starts one more node that joins through node 1; returns its id once it is a ready voter.
    pub(crate) async fn join_new_node(&mut self) -> u64 {
        let id = self.start_joining_node(self.cluster_secret_file());
        self.wait_ready(id).await;
        self.wait_voter(id).await;
        id
    }

    /// Starts one more node that joins through node 1, given `secret_file` as the cluster
    /// secret, without waiting for anything; returns its id.
    pub(crate) fn start_joining_node(&mut self, secret_file: PathBuf) -> u64 {
        let join = Some(self.node(1).url());
        self.add_node_with(join, Some(secret_file), self.extra_args.clone());
        self.nodes.len() as u64
    }

    /// Node 1's secret file: the cluster's secret, which it made when it founded the cluster.
    pub(crate) fn cluster_secret_file(&self) -> PathBuf {
        self.node(1).data_dir().join(CLUSTER_SECRET_FILE)
    }

    /// Gives node `id` another `--cluster-secret-file` (or none) for its next starts.
    pub(crate) fn set_secret_file(&mut self, id: u64, secret_file: Option<PathBuf>) {
        self.node_mut(id).secret_file = secret_file;
    }

    /// A directory of this cluster's for a test's own files; removed with the cluster.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts one more node with `--standby` (it neither bootstraps nor joins); returns its id
    /// and the address to add it with.
    pub(crate) fn start_standby_node(&mut self) -> (u64, String) {
        let mut extra_args = self.extra_args.clone();
        extra_args.push("--standby".into());
        self.add_node_with(None, Some(self.cluster_secret_file()), extra_args);
        let node = self.nodes.last().expect("just added");
        (node.id, node.addr.to_string())
    }

    fn add_node_with(&mut self, join: Option<String>, secret_file: Option<PathBuf>, extra_args: Vec<String>) {
        let id = self.nodes.len() as u64 + 1;
        let mut node = Node {
            id,
            addr: free_loopback_addr(),
            data_dir: self.dir.path().join(format!("node-{id}")),
            log_path: self.dir.path().join(format!("node-{id}.log")),
            join,
            secret_file,
            extra_args,
            https: self.cacert.is_some(),
            child: None,
        };
        node.spawn();
        self.nodes.push(node);
    }

    pub(crate) fn node(&self, id: u64) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    fn node_mut(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    /// Ids of the nodes whose process is running.
    pub(crate) fn running(&self) -> Vec<u64> {
        self.nodes.iter().filter(|n| n.is_running()).map(|n| n.id).collect()
    }

    /// The secret read from node 1's bootstrap key file.
    pub(crate) fn admin_key(&self) -> &str {
        &self.admin_key
    }

    /// A plain HTTP client, for requests the typed client cannot express.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A typed client for node `id`, authenticated with the admin key.
    pub(crate) fn client(&self, id: u64) -> Client {
        Client::with_cacert(self.node(id).url(), Some(self.admin_key.clone()), self.cacert.as_deref())
            .expect("build the client")
    }

    /// Waits until each of `ids` holds a ledger at least as long as node `from`'s is now.
    pub(crate) async fn wait_caught_up(&self, from: u64, ids: impl IntoIterator<Item = u64>) {
        let head = self.own_ledger_head(from).await.expect("read the reference head");
        for id in ids {
            poll(&format!("node {id} to catch up with node {from}"), CONVERGE, async || {
                let theirs = self.own_ledger_head(id).await?;
                if theirs.seq >= head.seq {
                    Ok(())
                } else {
                    Err(format!("{theirs:?}, want seq {}", head.seq))
                }
            })
            .await;
        }
    }

    /// Stops node `id` with SIGTERM and waits (up to `within`) for it to exit; its status.
    pub(crate) fn terminate(&mut self, id: u64, within: Duration) -> std::process::ExitStatus {
        self.node_mut(id).terminate(within)
    }

    /// Kills node `id` with SIGKILL: no shutdown path runs, as in a crash.
    pub(crate) fn kill(&mut self, id: u64) {
        self.node_mut(id).kill();
    }

    /// Starts node `id` again with its original command line, without waiting for anything.
    pub(crate) fn start_again(&mut self, id: u64) {
        self.node_mut(id).spawn();
    }

    /// Starts node `id` again with its original command line (and so its original `--join`,
    /// which a node holding state must ignore) and waits until it is ready.
    pub(crate) async fn restart(&mut self, id: u64) {
        self.node_mut(id).spawn();
        self.wait_ready(id).await;
    }

    /// Waits (up to `within`) for node `id` to exit on its own, as a node refusing to start
    /// does; its exit status.
    pub(crate) async fn wait_exit(&mut self, id: u64, within: Duration) -> std::process::ExitStatus {
        let node = self.node_mut(id);
        let child = node.child.as_mut().expect("the node is running");
        let status = poll(&format!("node {id} to exit"), within, async || {
            child.try_wait().map_err(|e| e.to_string())?.ok_or_else(|| "still running".to_owned())
        })
        .await;
        node.child = None;
        status
    }

    /// Waits until `GET /readyz` on node `id` answers 200; fails at once if the process exits.
    pub(crate) async fn wait_ready(&mut self, id: u64) {
        let url = format!("{}/readyz", self.node(id).url());
        let deadline = Instant::now() + STARTUP;
        loop {
            self.node_mut(id).assert_alive();
            let last = match self.http.get(&url).send().await {
                Ok(resp) if resp.status() == 200 => return,
                Ok(resp) => format!("status {}", resp.status()),
                Err(e) => e.to_string(),
            };
            assert!(Instant::now() < deadline, "node {id} not ready after {STARTUP:?}: {last}");
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// Waits until node `id`'s own `GET /v1/cluster` lists it as a voter.
    async fn wait_voter(&self, id: u64) {
        let client = self.client(id);
        poll(&format!("node {id} to be a voter"), STARTUP, async || {
            let status = client.cluster_status().await.map_err(|e| format!("{e:?}"))?;
            match status.members.iter().find(|m| m.node_id == id) {
                Some(m) if m.role == "voter" => Ok(()),
                _ => Err(format!("{status:?}")),
            }
        })
        .await
    }

    /// Waits until every running node names the same leader, and that leader is running;
    /// returns its id.
    pub(crate) async fn leader(&self) -> u64 {
        let running = self.running();
        poll("the running nodes to agree on a running leader", CONVERGE, async || {
            let mut seen = Vec::new();
            for &id in &running {
                let status = self.client(id).cluster_status().await.map_err(|e| format!("node {id}: {e:?}"))?;
                seen.push(status.leader);
            }
            match seen[0] {
                Some(leader) if seen.iter().all(|l| *l == Some(leader)) && running.contains(&leader) => Ok(leader),
                _ => Err(format!("leaders seen by nodes {running:?}: {seen:?}")),
            }
        })
        .await
    }

    /// Node `id`'s ledger head as it reports it about itself in its own `GET /v1/cluster`.
    pub(crate) async fn own_ledger_head(&self, id: u64) -> Result<wire::LedgerHead, String> {
        let status = self.client(id).cluster_status().await.map_err(|e| format!("node {id}: {e:?}"))?;
        status
            .members
            .iter()
            .find(|m| m.node_id == id)
            .and_then(|m| m.ledger_head.clone())
            .ok_or_else(|| format!("node {id} reports no ledger head for itself: {status:?}"))
    }

    /// Polls node 1's data dir for the bootstrap key file and returns the secret in it.
    async fn read_bootstrap_key(&self) -> String {
        let path = self.node(1).data_dir().join(BOOTSTRAP_KEY_FILE);
        poll("the bootstrap key file", STARTUP, async || {
            let text = fs::read_to_string(&path).map_err(|e| e.to_string())?;
            let secret = text.strip_suffix('\n').ok_or("no trailing newline yet")?;
            Ok(secret.to_owned())
        })
        .await
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for node in &self.nodes {
                let log = node.log();
                let lines: Vec<&str> = log.lines().collect();
                let tail = &lines[lines.len().saturating_sub(200)..];
                eprintln!("===== node {} log (last {} lines) =====", node.id, tail.len());
                for line in tail {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// Unix permission bits of a file (`0o600` for a file only its owner may read and write).
pub(crate) fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

/// A create request for a key that expires in 30 days (never-expiring keys are off by default).
pub(crate) fn new_key(name: &str) -> wire::CreateKeyRequest {
    wire::CreateKeyRequest { name: name.to_owned(), expires_in: Some("30d".to_owned()), ..Default::default() }
}

/// A verification request, answered by the node once it has applied `min_index` (if given).
pub(crate) fn verify_req(secret: &str, min_index: Option<u64>) -> wire::VerifyRequest {
    wire::VerifyRequest { key: secret.to_owned(), permission: None, min_index }
}

/// `text` with the character at `at` replaced by another of the same class (digit, lower or
/// upper case letter), picked from characters that every common key and id alphabet holds, so
/// the result differs from `text` but still has its form.
pub(crate) fn change_one_char(text: &str, at: usize) -> String {
    let old = text.as_bytes()[at] as char;
    let new = match old {
        '0'..='9' => {
            if old == '2' {
                '3'
            } else {
                '2'
            }
        }
        'a'..='z' => {
            if old == 'a' {
                'b'
            } else {
                'a'
            }
        }
        'A'..='Z' => {
            if old == 'A' {
                'B'
            } else {
                'A'
            }
        }
        _ => {
            if old == '_' {
                '-'
            } else {
                '_'
            }
        }
    };
    format!("{}{new}{}", &text[..at], &text[at + 1..])
}

/// The URL of a loopback port nothing listens on (for "no server there" cases).
pub(crate) fn free_loopback_url() -> String {
    format!("http://{}", free_loopback_addr())
}

impl Cluster {
    /// Runs the `keyledger` CLI against node 1 as the bootstrap admin, with no stored login.
    pub(crate) fn cli(&self, args: &[&str]) -> std::process::Output {
        cli_command(args)
            .args(["--address", &self.node(1).url(), "--api-key", self.admin_key()])
            .args(self.cacert.iter().flat_map(|path| [std::ffi::OsStr::new("--cacert"), path.as_os_str()]))
            .output()
            .expect("run keyledger")
    }

    /// A typed client for node 1, authenticated with `secret` instead of the admin key.
    pub(crate) fn client_as(&self, secret: &str) -> Client {
        self.client(1).with_api_key(secret)
    }
}

/// Asserts the command succeeded and returns its standard output.
#[track_caller]
pub(crate) fn succeeded(output: &std::process::Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{what}\nstdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// Asserts `result` is an error answer with `status` and `code`, and returns its message.
#[track_caller]
pub(crate) fn expect_refused<T: std::fmt::Debug>(
    result: Result<T, keyledger_client::ClientError>,
    status: u16,
    code: &str,
) -> String {
    match result {
        Err(keyledger_client::ClientError::Api { status: got, error }) => {
            assert_eq!((got, error.code.as_str()), (status, code), "{}", error.message);
            error.message
        }
        other => panic!("expected {status} {code}, got {other:?}"),
    }
}

/// Creates user `name` with `role` through `admin`; the user enrolls with its code for a
/// 30-day key of its own (nobody mints keys for another user). Returns the user and the key's
/// secret.
pub(crate) async fn user_with_key(admin: &Client, name: &str, role: &str) -> (wire::User, String) {
    let created = admin
        .create_user(&wire::CreateUserRequest { name: name.into(), role: role.into() })
        .await
        .unwrap_or_else(|e| panic!("create user {name}: {e}"))
        .value;
    let secret = enroll(admin, &created.enrollment_code, &format!("{name}-key")).await.secret;
    (created.user, secret)
}

/// Redeems enrollment code `code` for a 30-day key named `name`, with no API key (through
/// `client`'s address).
pub(crate) async fn enroll(client: &Client, code: &str, name: &str) -> wire::CreatedKey {
    let anonymous = Client::new(client.address(), None).expect("a client");
    let req = wire::EnrollRequest {
        code: code.into(),
        name: name.into(),
        expires_in: Some("30d".into()),
        ..Default::default()
    };
    anonymous.enroll(&req).await.unwrap_or_else(|e| panic!("enroll for key {name}: {e}")).value
}

/// Creates service account `req` through `admin`, and a 30-day key for it.
pub(crate) async fn service_account_with_key(
    admin: &Client,
    req: wire::CreateServiceAccountRequest,
) -> (wire::ServiceAccount, String) {
    let name = req.name.clone();
    let sa =
        admin.create_service_account(&req).await.unwrap_or_else(|e| panic!("create service account {name}: {e}")).value;
    let secret = key_for(admin, wire::OwnerKind::ServiceAccount, &sa.id, &format!("{name}-key")).await.secret;
    (sa, secret)
}

/// Creates a 30-day key named `name` for the identity `kind`/`id` through `client`.
pub(crate) async fn key_for(client: &Client, kind: wire::OwnerKind, id: &str, name: &str) -> wire::CreatedKey {
    let req = wire::CreateKeyRequest { owner: Some(wire::OwnerRef { kind, id: id.into() }), ..new_key(name) };
    client.create_key(&req).await.unwrap_or_else(|e| panic!("create key {name} for {id}: {e}")).value
}

/// A namespace-scoped service account request.
pub(crate) fn namespace_sa(name: &str, namespace: &str, permission: &str) -> wire::CreateServiceAccountRequest {
    wire::CreateServiceAccountRequest {
        name: name.into(),
        namespace: Some(namespace.into()),
        permission: Some(permission.into()),
        ..Default::default()
    }
}

/// An account-scoped service account request.
pub(crate) fn account_sa(name: &str, role: &str) -> wire::CreateServiceAccountRequest {
    wire::CreateServiceAccountRequest { name: name.into(), role: Some(role.into()), ..Default::default() }
}

/// A `keyledger` client command with no connection settings inherited from the environment,
/// and never the login of whoever runs the tests.
pub(crate) fn cli_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(keyledger_bin());
    cmd.args(args)
        .env_remove("KEYLEDGER_ADDRESS")
        .env_remove("KEYLEDGER_API_KEY")
        .env_remove("KEYLEDGER_CACERT")
        .env_remove("RUST_LOG")
        .env("KEYLEDGER_CONFIG", "/nonexistent/keyledger-tests/config.json")
        .stdin(Stdio::null());
    cmd
}

/// Asserts a command exited with `code`, showing its output otherwise.
#[track_caller]
pub(crate) fn assert_exit(output: &std::process::Output, code: i32, what: &str) {
    assert_eq!(output.status.code(), Some(code), "{what}\nstdout: {}\nstderr: {}", stdout(output), stderr(output));
}

pub(crate) fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub(crate) fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
