//! The command line's usability: several addresses with failover (and `login` storing them),
//! confirmation before deleting, selecting a key by its exact name, errors that say what to do
//! next, and `keyledger health`.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use keyledger_wire as wire;

use crate::util::{
    assert_exit, cli_command as keyledger, free_loopback_url, keyledger_bin, new_key, stderr, succeeded, Cluster,
};

/// Runs `args` against `addresses` (one `--address`, comma-separated) as the cluster's admin.
fn run_at(cluster: &Cluster, addresses: &[String], args: &[&str]) -> Output {
    let joined = addresses.join(",");
    let mut all = args.to_vec();
    all.extend(["--address", &joined, "--api-key", cluster.admin_key()]);
    keyledger(&all).output().expect("run keyledger")
}

/// Runs `args` against node 1 as the cluster's admin.
fn run(cluster: &Cluster, args: &[&str]) -> Output {
    run_at(cluster, &[cluster.node(1).url()], args)
}

fn created(output: &Output) -> wire::CreatedKey {
    let text = succeeded(output, "apikey create");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not a created key ({e}): {text}"))
}

#[tokio::test]
async fn commands_go_on_past_a_dead_port_and_a_killed_node() {
    let mut cluster = Cluster::start(3).await;
    cluster.kill(1);
    // The two survivors agree on a leader: writes can be acknowledged again.
    cluster.leader().await;
    let addresses = [free_loopback_url(), cluster.node(1).url(), cluster.node(2).url(), cluster.node(3).url()];

    let out = run_at(&cluster, &addresses, &["apikey", "create", "--name", "failover", "--output", "json"]);
    let key = created(&out).key;
    let listed = succeeded(&run_at(&cluster, &addresses, &["apikey", "list", "--output", "json"]), "apikey list");
    assert!(listed.contains(&key.id), "{listed}");
    succeeded(&run_at(&cluster, &addresses, &["apikey", "disable", "--id", &key.id]), "apikey disable");
    assert_eq!(cluster.client(2).linearizable().get_key(&key.id).await.unwrap().value.state, "disabled");
    let export = succeeded(&run_at(&cluster, &addresses, &["audit", "export", "--format", "jsonl"]), "export");
    assert!(export.lines().any(|line| line.contains(&key.id)), "the export lacks the key's events");

    // The same list from KEYLEDGER_ADDRESS, and as repeated flags.
    let out = keyledger(&["cluster", "status", "--output", "json"])
        .env("KEYLEDGER_ADDRESS", addresses.join(","))
        .env("KEYLEDGER_API_KEY", cluster.admin_key())
        .output()
        .unwrap();
    let status: wire::ClusterStatus = serde_json::from_str(&succeeded(&out, "cluster status")).unwrap();
    assert!(status.node_id == 2 || status.node_id == 3, "answered by node {}", status.node_id);
    let (dead, live) = (addresses[0].as_str(), addresses[2].as_str());
    let args =
        ["apikey", "get", "--id", &key.id, "--address", dead, "--address", live, "--api-key", cluster.admin_key()];
    succeeded(&keyledger(&args).output().unwrap(), "repeated --address");

    // Nothing answers anywhere: every address is named, with why.
    let nowhere = [free_loopback_url(), cluster.node(1).url()];
    let out = run_at(&cluster, &nowhere, &["apikey", "list"]);
    assert_exit(&out, 1, "every address down");
    let text = stderr(&out);
    assert!(nowhere.iter().all(|a| text.matches(a.as_str()).count() >= 2), "each address and why: {text}");
}

#[tokio::test]
async fn login_stores_every_address_and_later_commands_fail_over() {
    let cluster = Cluster::single().await;
    let config = cluster.dir().join("config.json");
    let addresses = format!("{},{}", free_loopback_url(), cluster.node(1).url());
    let login = keyledger(&["login", "--address", &addresses, "--api-key", cluster.admin_key()])
        .env("KEYLEDGER_CONFIG", &config)
        .output()
        .unwrap();
    assert_exit(&login, 0, "login with two addresses, the first dead");
    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    let expected: Vec<&str> = addresses.split(',').collect();
    assert_eq!(stored["addresses"], serde_json::json!(expected), "{stored}");

    let out = keyledger(&["cluster", "status"]).env("KEYLEDGER_CONFIG", &config).output().unwrap();
    succeeded(&out, "cluster status with the stored addresses");
}

#[tokio::test]
async fn nothing_is_deleted_without_a_confirmation() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let key = admin.create_key(&new_key("keep-me")).await.unwrap().value.key;

    // No terminal and no --yes: refused, saying how to delete, and the key is still there.
    let out = run(&cluster, &["apikey", "delete", "--id", &key.id]);
    assert_exit(&out, 1, "delete without --yes and without a terminal");
    assert!(stderr(&out).contains("--yes") && stderr(&out).contains("not deleted"), "{}", stderr(&out));
    assert_eq!(admin.get_key(&key.id).await.unwrap().value.state, "enabled");

    // On a terminal, answering anything but y keeps it; the question names the key.
    let answered = |answer: &str| {
        let line = format!(
            "{} apikey delete --id {} --address {} --api-key {}",
            keyledger_bin(),
            key.id,
            cluster.node(1).url(),
            cluster.admin_key()
        );
        let mut child = Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .env("KEYLEDGER_CONFIG", "/nonexistent/keyledger-tests/config.json")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run `script` (util-linux) for a terminal");
        child.stdin.take().unwrap().write_all(answer.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let out = answered("n\n");
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(shown.contains(&format!("Delete API key {} (\"keep-me\")? [y/N]", key.id)), "{shown}");
    assert!(shown.contains("not deleted"), "{shown}");
    assert_eq!(admin.get_key(&key.id).await.unwrap().value.state, "enabled", "declined, yet deleted");
    let out = answered("y\n");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("Deleted key {}", key.id)), "{out:?}");
    let after = admin.get_key(&key.id).await;
    assert!(after.as_ref().map_or(true, |k| k.value.state == "deleted"), "confirmed, yet kept: {after:?}");

    // Users and service accounts ask too.
    let user = admin
        .create_user(&wire::CreateUserRequest { name: "kept".into(), role: "read".into() })
        .await
        .unwrap()
        .value
        .user;
    assert_exit(&run(&cluster, &["user", "delete", "--id", &user.id]), 1, "user delete without --yes");
    assert_eq!(admin.get_user(&user.id).await.unwrap().state, user.state, "refused, yet changed");
    let sa = admin.create_service_account(&crate::util::account_sa("kept-sa", "read")).await.unwrap().value;
    assert_exit(&run(&cluster, &["service-account", "delete", "--id", &sa.id]), 1, "sa delete without --yes");
    assert_eq!(admin.get_service_account(&sa.id).await.unwrap().state, sa.state, "refused, yet changed");
    assert_ne!(sa.state, "deleted");
    succeeded(&run(&cluster, &["service-account", "delete", "--id", &sa.id, "-y"]), "service-account delete -y");
    let after = admin.get_service_account(&sa.id).await;
    assert!(after.as_ref().map_or(true, |s| s.state == "deleted"), "confirmed, yet kept: {after:?}");
}

#[tokio::test]
async fn a_key_is_selected_by_its_exact_name() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let ci = admin.create_key(&new_key("ci")).await.unwrap().value.key;
    // Names the server's substring filter also matches.
    let ci_old = admin.create_key(&new_key("ci-old")).await.unwrap().value.key;
    admin.create_key(&new_key("CI")).await.unwrap();

    let got: wire::Key =
        serde_json::from_str(&succeeded(&run(&cluster, &["apikey", "get", "--name", "ci", "--output", "json"]), "get"))
            .unwrap();
    assert_eq!(got.id, ci.id);
    succeeded(&run(&cluster, &["apikey", "disable", "--name", "ci"]), "disable --name");
    assert_eq!(admin.get_key(&ci.id).await.unwrap().value.state, "disabled");
    succeeded(&run(&cluster, &["apikey", "update", "--key-name", "ci-old", "--name", "ci-renamed"]), "update");
    assert_eq!(admin.get_key(&ci_old.id).await.unwrap().value.name, "ci-renamed");
    let history = succeeded(&run(&cluster, &["history", "--name", "ci-renamed", "--output", "json"]), "history");
    assert!(history.contains(&ci_old.id), "{history}");
    let events =
        succeeded(&run(&cluster, &["audit", "events", "--key-name", "ci-renamed", "--output", "json"]), "events");
    assert!(events.contains(&ci_old.id) && !events.contains(&ci.id), "{events}");
    let out = run(&cluster, &["verify", "--at", &ci.created_at, "--key-name", "ci", "--output", "json"]);
    assert!(matches!(out.status.code(), Some(0 | 3)), "verify --at --key-name: {out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&ci.id), "{out:?}");

    // None: not found, as the server says it (exit 2).
    let out = run(&cluster, &["apikey", "lock", "--name", "nope"]);
    assert_exit(&out, 2, "no key of that name");
    assert!(stderr(&out).contains("not_found"), "{}", stderr(&out));

    // Several: each id listed, nothing changed, pass the id.
    let twin = admin.create_key(&new_key("ci")).await.unwrap().value.key;
    let out = run(&cluster, &["apikey", "delete", "--name", "ci", "--yes"]);
    assert_exit(&out, 1, "two keys named ci");
    let text = stderr(&out);
    assert!(text.contains(&ci.id) && text.contains(&twin.id) && text.contains("--id"), "{text}");
    assert_eq!(admin.get_key(&twin.id).await.unwrap().value.state, "enabled");

    // A deleted key's name no longer counts.
    succeeded(&run(&cluster, &["apikey", "delete", "--id", &twin.id, "--yes"]), "delete the twin");
    succeeded(&run(&cluster, &["apikey", "enable", "--name", "ci"]), "enable --name after the twin went");
    assert_eq!(admin.get_key(&ci.id).await.unwrap().value.state, "enabled");
}

#[tokio::test]
async fn errors_say_what_to_do_next() {
    let cluster = Cluster::single().await;
    let url = cluster.node(1).url();

    let out = keyledger(&["apikey", "list", "--address", &url]).output().unwrap();
    assert_exit(&out, 2, "no API key");
    let text = stderr(&out);
    for needed in ["KEYLEDGER_API_KEY", "--api-key", "keyledger login"] {
        assert!(text.contains(needed), "{needed} missing from: {text}");
    }

    let out = keyledger(&["apikey", "list", "--address", &url, "--api-key", "klk_wrong"]).output().unwrap();
    assert_exit(&out, 2, "a refused key");
    let text = stderr(&out);
    assert!(text.contains("the API key was refused") && text.contains("keyledger login"), "{text}");

    let nobody = free_loopback_url();
    let out = keyledger(&["apikey", "list", "--address", &nobody, "--api-key", "klk_x"]).output().unwrap();
    assert_exit(&out, 1, "nothing listening");
    let text = stderr(&out);
    assert!(text.contains(&format!("is `keyledger serve` running at {nobody}?")), "{text}");
    assert!(text.contains("KEYLEDGER_ADDRESS"), "{text}");
}

#[tokio::test]
async fn health_exits_0_when_the_node_is_ready_and_1_otherwise() {
    let cluster = Cluster::single().await;
    let out = keyledger(&["health", "--address", &cluster.node(1).url()]).output().unwrap();
    assert!(succeeded(&out, "health of a ready node").starts_with("ready"));

    let out = keyledger(&["health", "--address", &free_loopback_url()]).output().unwrap();
    assert_exit(&out, 1, "health with nothing listening");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("not ready"), "{out:?}");
}
