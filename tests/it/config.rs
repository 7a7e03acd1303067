//! `serve --config FILE`, `KEYLEDGER_*` variables and flags: their precedence seen through
//! `--print-config` and through what a node does (where it listens, where it stores); a bad
//! file refused before anything is created; no secret file's content printed; JSON logs and
//! the access log.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use keyledger_wire as wire;
use serde_json::Value;

use crate::util::{
    free_loopback_addr, keyledger_bin, new_key, poll, succeeded, verify_req, Cluster, BOOTSTRAP_KEY_FILE, CONVERGE,
    STARTUP,
};

/// `keyledger serve` with `args`, run in `dir` (where the default data dir would go), in an
/// environment without any `KEYLEDGER_*` variable or `RUST_LOG` of the test's own, so that only
/// what a test sets counts.
fn serve(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(keyledger_bin());
    command.arg("serve").args(args).current_dir(dir).stdin(Stdio::null());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KEYLEDGER_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    command
}

/// A `serve` process, killed and reaped when dropped; its output goes to a file.
struct Running {
    child: Child,
    log: PathBuf,
}

impl Running {
    fn start(mut command: Command, log: PathBuf) -> Running {
        let file = fs::File::create(&log).expect("create the log file");
        command.stdout(file.try_clone().expect("clone the log handle")).stderr(file);
        Running { child: command.spawn().expect("spawn keyledger serve"), log }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for `GET /readyz` at `address` to answer 200.
    async fn wait_ready(&mut self, address: &str) {
        let url = format!("http://{address}/readyz");
        let http = reqwest::Client::new();
        poll(&format!("a node ready at {address}"), STARTUP, async || {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                panic!("keyledger serve exited early ({status}):\n{}", self.log());
            }
            match http.get(&url).send().await {
                Ok(answer) if answer.status() == 200 => Ok(()),
                Ok(answer) => Err(format!("status {}", answer.status())),
                Err(e) => Err(e.to_string()),
            }
        })
        .await
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("keyledger-it-config-").tempdir().expect("a temp dir")
}

fn write(path: &Path, text: &str) -> PathBuf {
    fs::write(path, text).expect("write a file");
    path.to_path_buf()
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The line of `--print-config` output that sets `key`.
fn line<'a>(printed: &'a str, key: &str) -> &'a str {
    printed.lines().find(|l| l.starts_with(&format!("{key} = "))).unwrap_or_else(|| panic!("no {key} in:\n{printed}"))
}

#[tokio::test]
async fn a_node_started_from_a_config_file_listens_and_stores_where_it_says() {
    let dir = temp_dir();
    let address = free_loopback_addr().to_string();
    let data_dir = dir.path().join("data");
    let config = write(
        &dir.path().join("keyledger.toml"),
        &format!("listen = \"{address}\"\ndata_dir = \"{}\"\nnode_id = 1\n", data_dir.display()),
    );
    let mut node = Running::start(
        serve(dir.path(), &[], &[("KEYLEDGER_SERVE_CONFIG", config.to_str().unwrap())]),
        dir.path().join("log"),
    );
    node.wait_ready(&address).await;
    assert!(data_dir.join(BOOTSTRAP_KEY_FILE).is_file(), "the data dir of the file holds the bootstrap key");
    assert!(!dir.path().join("keyledger-data").exists(), "the default data dir was not used");
}

#[tokio::test]
async fn a_flag_beats_the_environment_which_beats_the_file() {
    let dir = temp_dir();
    let (file_address, env_address) = (free_loopback_addr().to_string(), free_loopback_addr().to_string());
    let [from_file, from_env, from_flag] = ["file-data", "env-data", "flag-data"].map(|d| dir.path().join(d));
    let config = write(
        &dir.path().join("keyledger.toml"),
        &format!(
            "listen = \"{file_address}\"\ndata_dir = \"{}\"\nlog_level = \"debug\"\nshutdown_grace = \"7s\"\n",
            from_file.display()
        ),
    );
    let env = [
        ("KEYLEDGER_LISTEN", env_address.as_str()),
        ("KEYLEDGER_DATA_DIR", from_env.to_str().unwrap()),
        ("KEYLEDGER_LOG_LEVEL", "info"),
    ];
    let flags = ["--config", config.to_str().unwrap(), "--data-dir", from_flag.to_str().unwrap()];

    let printed =
        serve(dir.path(), &[&flags[..], &["--print-config"]].concat(), &env).output().expect("run --print-config");
    let printed = succeeded(&printed, "--print-config");
    assert!(line(&printed, "data_dir").ends_with("# flag"), "{printed}");
    assert!(line(&printed, "data_dir").contains(&format!("\"{}\"", from_flag.display())));
    assert!(line(&printed, "listen").ends_with("# env KEYLEDGER_LISTEN"), "{printed}");
    assert!(line(&printed, "listen").contains(&env_address));
    assert!(
        line(&printed, "log_level").contains("\"info\"")
            && line(&printed, "log_level").ends_with("# env KEYLEDGER_LOG_LEVEL")
    );
    assert!(
        line(&printed, "shutdown_grace").contains("\"7s\"") && line(&printed, "shutdown_grace").ends_with("# file")
    );
    assert!(line(&printed, "node_id").ends_with("# default"), "{printed}");
    assert!(!from_flag.exists(), "--print-config touches no data dir");

    // And so the node does: it listens at the environment's address and stores under the flag's
    // data dir; the file's address and data dir stay unused.
    let mut node = Running::start(serve(dir.path(), &flags, &env), dir.path().join("log"));
    node.wait_ready(&env_address).await;
    assert!(from_flag.join(BOOTSTRAP_KEY_FILE).is_file());
    assert!(!from_env.exists() && !from_file.exists());
    assert!(std::net::TcpStream::connect(&file_address).is_err(), "nothing listens at the file's address");
}

#[tokio::test]
async fn an_unknown_key_stops_the_node_before_anything_is_created() {
    let dir = temp_dir();
    let data_dir = dir.path().join("data");
    let config = write(
        &dir.path().join("keyledger.toml"),
        &format!("data_dir = \"{}\"\nlisten = \"127.0.0.1:0\"\nsnapshot_every = 100\n", data_dir.display()),
    );
    let output = serve(dir.path(), &["--config", config.to_str().unwrap()], &[]).output().expect("run keyledger serve");
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_of(&output);
    assert!(stderr.contains(&format!("{}:3: unknown key `snapshot_every`", config.display())), "{stderr}");
    assert!(!data_dir.exists(), "nothing was created");

    let missing = dir.path().join("missing.toml");
    let output =
        serve(dir.path(), &["--config", missing.to_str().unwrap()], &[]).output().expect("run keyledger serve");
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr_of(&output).contains(&format!("cannot read the config file {}", missing.display())));
}

#[tokio::test]
async fn print_config_names_secret_files_without_reading_them() {
    let dir = temp_dir();
    let secret = write(&dir.path().join("cluster.secret"), "klcs_THE-CLUSTER-SECRET-ITSELF\n");
    let tls_key = write(&dir.path().join("node.key"), "-----BEGIN PRIVATE KEY-----\nTHE-TLS-KEY-ITSELF\n");
    let data_dir = dir.path().join("data");
    let config = write(
        &dir.path().join("keyledger.toml"),
        &format!(
            "data_dir = \"{}\"\ncluster_secret_file = \"{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\nstandby = true\n",
            data_dir.display(),
            secret.display(),
            dir.path().join("node.crt").display(),
            tls_key.display()
        ),
    );
    let output = serve(
        dir.path(),
        &["--config", config.to_str().unwrap(), "--print-config"],
        &[("KEYLEDGER_LOG_FORMAT", "json")],
    )
    .output()
    .expect("run --print-config");
    let printed = succeeded(&output, "--print-config");
    assert!(!printed.contains("THE-CLUSTER-SECRET-ITSELF") && !printed.contains("THE-TLS-KEY-ITSELF"), "{printed}");
    assert!(line(&printed, "cluster_secret_file").contains(&secret.display().to_string()));
    assert!(line(&printed, "tls_key").contains(&tls_key.display().to_string()));
    assert!(line(&printed, "tls_key").ends_with("# file"));
    assert!(line(&printed, "standby").starts_with("standby = true ") && line(&printed, "standby").ends_with("# file"));
    assert!(line(&printed, "log_format").ends_with("# env KEYLEDGER_LOG_FORMAT"));
    assert!(printed.contains("# join: not set"));
    assert!(!data_dir.exists(), "--print-config touches no data dir");

    // What it printed is a config file that gives the same configuration.
    let again = write(&dir.path().join("printed.toml"), &printed);
    let output =
        serve(dir.path(), &["--config", again.to_str().unwrap(), "--print-config"], &[]).output().expect("run");
    let reprinted = succeeded(&output, "--print-config of the printed file");
    let values = |p: &str| {
        p.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split('#').next().unwrap().trim().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(values(&printed), values(&reprinted));
}

#[tokio::test]
async fn the_packaged_example_is_accepted() {
    let dir = temp_dir();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/keyledger.toml");
    let output =
        serve(dir.path(), &["--config", example.to_str().unwrap(), "--print-config"], &[]).output().expect("run");
    let printed = succeeded(&output, "--print-config of packaging/keyledger.toml");
    assert!(
        line(&printed, "data_dir").contains("\"/var/lib/keyledger\"") && line(&printed, "data_dir").ends_with("# file")
    );
    assert!(line(&printed, "log_format").contains("\"json\""));
}

/// The node's log as JSON objects; panics on a line that is not one.
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {l}")))
        .collect()
}

fn access_lines(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|l| l["target"] == "keyledger::access").collect()
}

#[tokio::test]
async fn json_logs_hold_an_access_line_per_request_with_the_callers_key_and_no_secret() {
    let cluster = Cluster::start_with(1, &["--log-format", "json"]).await;
    let admin = cluster.client(1);
    let created = admin.create_key(&new_key("logged")).await.expect("create a key").value;
    let caller = cluster.client_as(&created.secret);
    caller.get_key(&created.key.id).await.expect("read its own key");
    let verdict = admin.verify(&verify_req(&created.secret, None)).await.expect("verify");
    assert!(verdict.valid);
    let request_id = "it-config-access-1";
    let answer = cluster
        .http()
        .get(format!("{}/v1/keys/{}?secret={}", cluster.node(1).url(), created.key.id, created.secret))
        .bearer_auth(&created.secret)
        .header(wire::REQUEST_ID_HEADER, request_id)
        .send()
        .await
        .expect("a request with a query string");
    let status = answer.status().as_u16();

    let node = cluster.node(1);
    let lines = poll("the access line of the request with a query string", CONVERGE, async || {
        let lines = json_lines(&node.log());
        if access_lines(&lines).iter().any(|l| l["fields"]["request_id"] == request_id) {
            Ok(lines)
        } else {
            Err(format!("{} lines", lines.len()))
        }
    })
    .await;
    for line in &lines {
        for field in ["timestamp", "level", "target"] {
            assert!(line[field].is_string(), "no {field} in {line}");
        }
        assert!(line["fields"]["message"].is_string(), "no message in {line}");
    }
    let access = access_lines(&lines);
    let by_caller = access
        .iter()
        .find(|l| l["fields"]["route"] == "/v1/keys/{id}" && l["fields"]["key_id"] == created.key.id.as_str())
        .unwrap_or_else(|| panic!("no access line of GET /v1/keys/{{id}} by the new key: {access:?}"));
    let fields = &by_caller["fields"];
    assert_eq!((fields["method"].as_str(), fields["status"].as_u64()), (Some("GET"), Some(200)), "{by_caller}");
    assert!(fields["request_id"].as_str().is_some_and(|id| id.starts_with("req_")), "{by_caller}");
    assert!(fields["latency_ms"].is_f64(), "{by_caller}");
    assert_eq!(by_caller["level"], "INFO");

    // Verifications are counted in /metrics, not logged, unless asked (below).
    assert!(!lines.iter().any(|l| l["fields"]["route"] == "/v1/verify"), "a verification logged by default");

    let with_query = access.iter().find(|l| l["fields"]["request_id"] == request_id).expect("found above");
    assert_eq!(with_query["fields"]["status"].as_u64(), Some(u64::from(status)));
    assert_eq!(with_query["fields"]["route"], "/v1/keys/{id}", "the template, not the path as sent");

    let log = node.log();
    for secret in [created.secret.as_str(), cluster.admin_key()] {
        assert!(!log.contains(secret), "a secret in the log");
    }
    assert!(!log.contains("?secret="), "a query string in the log");
}

#[tokio::test]
async fn verifications_are_logged_when_asked_without_the_key_checked() {
    let cluster = Cluster::start_with(1, &["--log-format", "json", "--access-log-verifications", "true"]).await;
    let admin = cluster.client(1);
    let created = admin.create_key(&new_key("verified")).await.expect("create a key").value;
    assert!(admin.verify(&verify_req(&created.secret, None)).await.expect("verify").valid);
    let node = cluster.node(1);
    let verify = poll("the verification's access line", CONVERGE, async || {
        json_lines(&node.log())
            .into_iter()
            .find(|l| l["target"] == "keyledger::access::verify" && l["fields"]["route"] == "/v1/verify")
            .ok_or_else(|| "not yet".to_owned())
    })
    .await;
    assert_eq!((verify["fields"]["method"].as_str(), verify["fields"]["status"].as_u64()), (Some("POST"), Some(200)));
    assert!(verify["fields"].get("key_id").is_none(), "the verified key is not the caller's: {verify}");
    let log = node.log();
    assert!(!log.contains(&created.secret) && !log.contains(created.key.id.as_str()), "the key checked is not logged");
}

#[tokio::test]
async fn access_log_false_writes_no_access_line() {
    let cluster = Cluster::start_with(1, &["--access-log", "false"]).await;
    let admin = cluster.client(1);
    let created = admin.create_key(&new_key("quiet")).await.expect("create a key").value;
    admin.verify(&verify_req(&created.secret, None)).await.expect("verify");
    admin.get_key(&created.key.id).await.expect("get");
    // The node's other `info` lines still come: the bootstrap and the listening address.
    let log = cluster.node(1).log();
    assert!(log.contains("listening"), "{log}");
    assert!(!log.contains("keyledger::access"), "{log}");
}
