//! The command-line client against a real node: output that scripts can parse, and exit codes
//! (0 success, 2 an error answer from the server, 3 `verify` found the key not valid).

use std::io::Write;
use std::process::{Output, Stdio};

use keyledger_wire as wire;

use crate::util::{assert_exit, cli_command as keyledger, free_loopback_url, stdout, Cluster};

/// Runs `keyledger ARGS --address URL --api-key KEY` against node 1 of `cluster`.
fn run(cluster: &Cluster, args: &[&str]) -> Output {
    let url = cluster.node(1).url();
    let mut all = args.to_vec();
    all.extend(["--address", &url, "--api-key", cluster.admin_key()]);
    keyledger(&all).output().expect("run keyledger")
}

#[tokio::test]
async fn cli_creates_lists_verifies_and_disables_keys() {
    let cluster = Cluster::single().await;

    let out = run(&cluster, &["apikey", "create", "--name", "from-cli", "--duration", "30d", "--output", "json"]);
    assert_exit(&out, 0, "apikey create");
    let created: wire::CreatedKey = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("apikey create --output json is not a created key ({e}): {}", stdout(&out)));
    assert_eq!(created.key.name, "from-cli");
    let (id, secret) = (created.key.id.as_str(), created.secret.as_str());
    // The server has it, under the identity of the key the CLI was given.
    let got = cluster.client(1).get_key(id).await.unwrap();
    assert_eq!((got.value.state.as_str(), got.value.owner.name.as_str()), ("enabled", "admin"));

    // Connection settings from the environment, JSON for scripts.
    let out = keyledger(&["apikey", "list", "--output", "json"])
        .env("KEYLEDGER_ADDRESS", cluster.node(1).url())
        .env("KEYLEDGER_API_KEY", cluster.admin_key())
        .output()
        .unwrap();
    assert_exit(&out, 0, "apikey list --output json");
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(listed.to_string().contains(id), "{listed}");
    assert!(!stdout(&out).contains(secret), "the list shows a secret");

    // The table names the key too.
    let out = run(&cluster, &["apikey", "list"]);
    assert_exit(&out, 0, "apikey list");
    assert!(stdout(&out).contains(id) && stdout(&out).contains("from-cli"), "{}", stdout(&out));

    // Keys about to expire: the 30-day key is within 31 days, not within 7; a bad span is the
    // server's 400.
    let out = run(&cluster, &["apikey", "list", "--expiring-within", "31d", "--output", "json"]);
    assert_exit(&out, 0, "apikey list --expiring-within 31d");
    assert!(stdout(&out).contains(id), "{}", stdout(&out));
    let out = run(&cluster, &["apikey", "list", "--expiring-within", "7d", "--output", "json"]);
    assert_exit(&out, 0, "apikey list --expiring-within 7d");
    assert!(!stdout(&out).contains(id), "{}", stdout(&out));
    let out = run(&cluster, &["apikey", "list", "--expiring-within", "soon"]);
    assert_exit(&out, 2, "apikey list --expiring-within soon");
    assert!(String::from_utf8_lossy(&out.stderr).contains("expiring_within"), "{out:?}");

    let out = run(&cluster, &["apikey", "get", "--id", id]);
    assert_exit(&out, 0, "apikey get");
    assert!(stdout(&out).contains(id));

    assert_exit(&run(&cluster, &["verify", "--key", secret]), 0, "verify of a valid key");
    assert_exit(&run(&cluster, &["verify", "--key", "klk_not_a_key"]), 3, "verify of a malformed key");

    // The key may come on stdin instead, kept out of the process list.
    let mut child = keyledger(&["verify", "--address", &cluster.node(1).url()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{secret}\n").as_bytes()).unwrap();
    assert_exit(&child.wait_with_output().unwrap(), 0, "verify with the key on stdin");

    assert_exit(&run(&cluster, &["apikey", "disable", "--id", id]), 0, "apikey disable");
    assert_eq!(cluster.client(1).get_key(id).await.unwrap().value.state, "disabled");
    assert_exit(&run(&cluster, &["verify", "--key", secret]), 3, "verify of a disabled key");
}

#[tokio::test]
async fn cli_reports_error_answers_on_stderr_with_exit_code_2() {
    let cluster = Cluster::single().await;

    // The CLI prints the server's own message; ask the server directly to know it.
    let resp = cluster
        .http()
        .get(format!("{}/v1/keys/not-an-id", cluster.node(1).url()))
        .bearer_auth(cluster.admin_key())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let expected: wire::ErrorBody = resp.json().await.unwrap();

    let out = run(&cluster, &["apikey", "get", "--id", "not-an-id"]);
    assert_exit(&out, 2, "apikey get of an unknown id");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&expected.error.message), "stderr {stderr:?} lacks {:?}", expected.error.message);
    assert!(out.stdout.is_empty(), "stdout: {}", stdout(&out));

    let out =
        keyledger(&["apikey", "list", "--address", &cluster.node(1).url(), "--api-key", "klk_wrong"]).output().unwrap();
    assert_exit(&out, 2, "apikey list with a bad key");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unauthenticated"), "{out:?}");

    // No server at all is a failure too, but not an error answer.
    let out = keyledger(&["apikey", "list", "--address", &free_loopback_url(), "--api-key", cluster.admin_key()])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    assert_ne!(out.status.code(), Some(2), "no answer is not an error answer: {out:?}");
    assert!(!out.stderr.is_empty());
}

#[tokio::test]
async fn login_stores_address_and_key_privately_and_later_commands_use_them() {
    use std::os::unix::fs::PermissionsExt;
    let cluster = Cluster::single().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("conf").join("config.json");
    let with_config = |args: &[&str]| {
        let mut cmd = keyledger(args);
        cmd.env("KEYLEDGER_CONFIG", &config);
        cmd
    };

    // A key the server refuses is not stored.
    let out = with_config(&["login", "--address", &cluster.node(1).url(), "--api-key", "klk_nope"]).output().unwrap();
    assert_exit(&out, 2, "login with a bad key");
    assert!(!config.exists());

    // The key on standard input, as a script would pass it.
    let mut child = with_config(&["login", "--address", &cluster.node(1).url()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{}\n", cluster.admin_key()).as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_exit(&out, 0, "login");
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the stored login must be private");
    assert!(!String::from_utf8_lossy(&out.stderr).contains(cluster.admin_key()), "login must not print the key");

    // No flags, no environment: the stored login is used.
    let out = with_config(&["apikey", "list", "--output", "json"]).output().unwrap();
    assert_exit(&out, 0, "apikey list with the stored login");
    let list: wire::KeyList = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!list.keys.is_empty());

    // A flag still wins over the stored key.
    let out = with_config(&["apikey", "list", "--api-key", "klk_nope"]).output().unwrap();
    assert_exit(&out, 2, "a bad --api-key overrides the stored one");

    let out = with_config(&["logout"]).output().unwrap();
    assert_exit(&out, 0, "logout");
    assert!(!config.exists());
    let out = with_config(&["apikey", "list", "--address", &cluster.node(1).url()]).output().unwrap();
    assert_exit(&out, 2, "without a key the server refuses");
}

#[tokio::test]
async fn create_with_file_writes_the_secret_to_a_new_private_file_only() {
    use std::os::unix::fs::PermissionsExt;
    let cluster = Cluster::single().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ci.key");
    let path_text = path.to_str().unwrap();

    let out = run(&cluster, &["apikey", "create", "--name", "to-file", "--file", path_text, "--output", "json"]);
    assert_exit(&out, 0, "apikey create --file");
    let secret = std::fs::read_to_string(&path).unwrap();
    let secret = secret.strip_suffix('\n').expect("secret and a newline");
    assert!(secret.starts_with("klk_"));
    assert!(!stdout(&out).contains(secret), "with --file the secret is not printed");
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let answer = cluster.client(1).verify(&crate::util::verify_req(secret, None)).await.unwrap();
    assert!(answer.valid, "{answer:?}");

    // An existing file is never overwritten, and nothing is created on the server.
    let before = cluster.client(1).list_keys(&Default::default()).await.unwrap().keys.len();
    let out = run(&cluster, &["apikey", "create", "--name", "again", "--file", path_text]);
    assert_exit(&out, 1, "apikey create --file onto an existing file");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{secret}\n"));
    assert_eq!(cluster.client(1).list_keys(&Default::default()).await.unwrap().keys.len(), before);
}
