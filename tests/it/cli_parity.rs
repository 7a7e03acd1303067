//! Every API operation through the command line: each command group run with `--output json`
//! (parsed as the wire type), the server's state checked through the typed client, and the
//! human table checked to name what was made.

use std::path::Path;
use std::process::Output;

use keyledger_client::Client;
use keyledger_wire as wire;
use serde::de::DeserializeOwned;

use crate::util::{
    assert_exit, cli_command as keyledger, enroll, mode_of, new_key, poll, stderr, stdout, verify_req, Cluster,
    CONVERGE,
};

/// Runs `keyledger ARGS` against node 1 of `cluster` as the admin.
fn run(cluster: &Cluster, args: &[&str]) -> Output {
    let url = cluster.node(1).url();
    let mut all = args.to_vec();
    all.extend(["--address", &url, "--api-key", cluster.admin_key()]);
    keyledger(&all).output().expect("run keyledger")
}

/// Runs a command that must succeed with `--output json` and parses what it printed as `T`.
#[track_caller]
fn run_json<T: DeserializeOwned>(cluster: &Cluster, args: &[&str]) -> T {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let out = run(cluster, &all);
    assert_exit(&out, 0, &args.join(" "));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("`{}` did not print a {} ({e}): {}", args.join(" "), std::any::type_name::<T>(), stdout(&out))
    })
}

/// Runs a command that must succeed with the default (table) output; returns what it printed.
#[track_caller]
fn run_table(cluster: &Cluster, args: &[&str]) -> String {
    let out = run(cluster, args);
    assert_exit(&out, 0, &args.join(" "));
    stdout(&out)
}

/// Runs a command the server must refuse: exit code 2 and `code` on stderr, nothing on stdout.
#[track_caller]
fn assert_refused(cluster: &Cluster, args: &[&str], code: &str) {
    let out = run(cluster, args);
    assert_exit(&out, 2, &args.join(" "));
    assert!(stderr(&out).contains(&format!("({code})")), "`{}`: stderr lacks {code}: {}", args.join(" "), stderr(&out));
    assert!(out.stdout.is_empty(), "stdout: {}", stdout(&out));
}

async fn verify(client: &Client, secret: &str) -> wire::VerifyResponse {
    client.verify(&verify_req(secret, None)).await.unwrap()
}

/// The secret `apikey create|rotate` and `account create` show in a table: the one indented line.
fn secret_in_table(text: &str) -> String {
    let line = text.lines().find(|l| l.trim_start().starts_with("klk_")).unwrap_or_else(|| panic!("no secret: {text}"));
    line.trim().to_string()
}

/// The secret in a file written with `--file`: the secret and a newline, mode 0600.
fn secret_in_file(path: &Path) -> String {
    assert_eq!(mode_of(path), 0o600, "{} must be private", path.display());
    let text = std::fs::read_to_string(path).unwrap();
    text.strip_suffix('\n').expect("the secret and a newline").to_string()
}

#[tokio::test]
async fn user_commands() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    admin.create_namespace("payments").await.unwrap();

    let created: wire::CreatedUser = run_json(&cluster, &["user", "create", "--name", "alice", "--role", "developer"]);
    assert!(created.enrollment_code.starts_with("kle_"), "{created:?}");
    let alice = created.user;
    assert_eq!((alice.name.as_str(), alice.role.as_str(), alice.state.as_str()), ("alice", "developer", "enabled"));
    assert_eq!(admin.get_user(&alice.id).await.unwrap(), alice);
    let id = alice.id.as_str();

    let got: wire::User = run_json(&cluster, &["user", "get", "--id", id]);
    assert_eq!(got, alice);
    let list: wire::UserList = run_json(&cluster, &["user", "list"]);
    assert_eq!(list, admin.list_users().await.unwrap());
    assert!(list.users.iter().any(|u| u.id == alice.id));

    let granted: wire::User =
        run_json(&cluster, &["user", "grant", "--id", id, "--namespace", "payments", "--permission", "write"]);
    let expected = [("payments".to_string(), "write".to_string())].into();
    assert_eq!(granted.namespaces, expected);
    assert_eq!(admin.get_user(id).await.unwrap().namespaces, expected);
    let table = run_table(&cluster, &["user", "list"]);
    assert!(table.starts_with("ID "), "{table}");
    let row = table.lines().find(|l| l.contains(id)).unwrap_or_else(|| panic!("no row for alice: {table}"));
    assert!(row.contains("alice") && row.contains("payments:write") && row.contains("developer"), "{row}");

    let changed: wire::User = run_json(&cluster, &["user", "set-role", "--id", id, "--role", "read"]);
    assert_eq!(changed.role, "read");
    assert_eq!(admin.get_user(id).await.unwrap().role, "read");
    let revoked: wire::User = run_json(&cluster, &["user", "revoke", "--id", id, "--namespace", "payments"]);
    assert!(revoked.namespaces.is_empty());
    assert!(admin.get_user(id).await.unwrap().namespaces.is_empty());

    let disabled: wire::User = run_json(&cluster, &["user", "disable", "--id", id]);
    assert_eq!(disabled.state, "disabled");
    assert_eq!(admin.get_user(id).await.unwrap().state, "disabled");
    let table = run_table(&cluster, &["user", "enable", "--id", id]);
    assert!(table.contains("alice") && table.contains("enabled"), "{table}");
    assert_eq!(admin.get_user(id).await.unwrap().state, "enabled");

    // Refusals: the server's (exit 2, its code) and the CLI's own (usage, exit 1).
    assert_refused(&cluster, &["user", "create", "--name", "alice", "--role", "read"], "conflict");
    assert_refused(
        &cluster,
        &["user", "grant", "--id", id, "--namespace", "nowhere", "--permission", "read"],
        "not_found",
    );
    assert_exit(&run(&cluster, &["user", "create", "--name", "bob", "--role", "root"]), 1, "an unknown role");

    let deleted: serde_json::Value = run_json(&cluster, &["user", "delete", "--id", id, "--yes"]);
    assert_eq!((deleted["id"].as_str(), deleted["deleted"].as_bool()), (Some(id), Some(true)), "{deleted}");
    assert_eq!(admin.get_user(id).await.unwrap().state, "deleted");
}

#[tokio::test]
async fn service_account_commands() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    admin.create_namespace("payments").await.unwrap();

    let ci: wire::ServiceAccount =
        run_json(&cluster, &["service-account", "create", "--name", "ci", "--role", "developer"]);
    assert_eq!(
        (ci.role.as_deref(), ci.namespace.as_deref(), ci.permission.as_deref()),
        (Some("developer"), None, None)
    );
    assert_eq!(admin.get_service_account(&ci.id).await.unwrap(), ci);

    let args = ["service-account", "create", "--name", "pay", "--namespace", "payments", "--permission", "write"];
    let pay: wire::ServiceAccount = run_json(&cluster, &args);
    assert_eq!(pay.role, None);
    assert_eq!((pay.namespace.as_deref(), pay.permission.as_deref()), (Some("payments"), Some("write")));
    assert_eq!(admin.get_service_account(&pay.id).await.unwrap(), pay);

    let list: wire::ServiceAccountList = run_json(&cluster, &["service-account", "list"]);
    assert_eq!(list, admin.list_service_accounts().await.unwrap());
    assert_eq!(list.service_accounts.len(), 2, "{list:?}");
    let table = run_table(&cluster, &["service-account", "list"]);
    assert!(table.starts_with("ID "), "{table}");
    let row = table.lines().find(|l| l.contains(&pay.id)).unwrap_or_else(|| panic!("no row for pay: {table}"));
    assert!(row.contains("pay") && row.contains("payments") && row.contains("write"), "{row}");
    assert!(table.contains("ci"), "{table}");

    // A key for the namespace-scoped account, found by the list filters.
    let created: wire::CreatedKey = run_json(
        &cluster,
        &["apikey", "create", "--name", "pay-key", "--duration", "30d", "--service-account-id", &pay.id],
    );
    assert_eq!(created.key.namespace.as_deref(), Some("payments"));
    let filtered: wire::KeyList =
        run_json(&cluster, &["apikey", "list", "--identity-type", "service-account", "--namespace", "payments"]);
    assert_eq!(filtered.keys.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(), [created.key.id.as_str()]);
    let none: wire::KeyList =
        run_json(&cluster, &["apikey", "list", "--identity-type", "user", "--namespace", "payments"]);
    assert!(none.keys.is_empty(), "{none:?}");

    let got: wire::ServiceAccount = run_json(&cluster, &["service-account", "get", "--id", &ci.id]);
    assert_eq!(got, ci);
    let disabled: wire::ServiceAccount = run_json(&cluster, &["service-account", "disable", "--id", &pay.id]);
    assert_eq!(disabled.state, "disabled");
    assert_eq!(admin.get_service_account(&pay.id).await.unwrap().state, "disabled");
    assert_eq!(verify(&admin, &created.secret).await.code.as_deref(), Some("identity_disabled"));
    let enabled: wire::ServiceAccount = run_json(&cluster, &["service-account", "enable", "--id", &pay.id]);
    assert_eq!(enabled.state, "enabled");
    assert!(verify(&admin, &created.secret).await.valid);

    assert_refused(&cluster, &["service-account", "create", "--name", "boss", "--role", "owner"], "invalid_argument");
    let out = run(&cluster, &["service-account", "create", "--name", "half", "--namespace", "payments"]);
    assert_exit(&out, 1, "a namespace without a permission");

    let deleted: serde_json::Value = run_json(&cluster, &["service-account", "delete", "--id", &ci.id, "--yes"]);
    assert_eq!(deleted["deleted"].as_bool(), Some(true), "{deleted}");
    assert_eq!(admin.get_service_account(&ci.id).await.unwrap().state, "deleted");
    assert_refused(&cluster, &["service-account", "get", "--id", "sa_nope"], "not_found");
}

#[tokio::test]
async fn namespace_commands() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);

    let payments: wire::Namespace = run_json(&cluster, &["namespace", "create", "--name", "payments"]);
    assert_eq!(payments.name, "payments");
    assert_eq!(admin.list_namespaces().await.unwrap().namespaces, std::slice::from_ref(&payments));
    let table = run_table(&cluster, &["namespace", "create", "--name", "staging"]);
    assert!(table.contains("staging"), "{table}");

    let list: wire::NamespaceList = run_json(&cluster, &["namespace", "list"]);
    assert_eq!(list, admin.list_namespaces().await.unwrap());
    let names: Vec<&str> = list.namespaces.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"payments") && names.contains(&"staging"), "{names:?}");
    let table = run_table(&cluster, &["namespace", "list"]);
    assert!(table.starts_with("NAME "), "{table}");
    assert!(table.contains("payments") && table.contains("staging"), "{table}");

    assert_refused(&cluster, &["namespace", "create", "--name", "payments"], "conflict");
    assert_refused(&cluster, &["namespace", "create", "--name", "Pay Ments"], "invalid_argument");
}

#[tokio::test]
async fn settings_commands() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);

    let before: wire::Settings = run_json(&cluster, &["settings", "get"]);
    assert_eq!(before, admin.get_settings().await.unwrap());

    let args = [
        "settings",
        "set",
        "--max-key-lifetime",
        "30d",
        "--allow-never-expiring",
        "true",
        "--max-keys-per-user",
        "3",
        "--max-keys-per-service-account",
        "4",
    ];
    let changed: wire::Settings = run_json(&cluster, &args);
    let expected = wire::Settings {
        max_key_lifetime: "30d".into(),
        allow_never_expiring: true,
        max_keys_per_user: 3,
        max_keys_per_service_account: 4,
        ..before.clone()
    };
    assert_eq!(changed, expected);
    assert_eq!(admin.get_settings().await.unwrap(), expected);

    let off: wire::Settings = run_json(&cluster, &["settings", "set", "--key-creation-enabled", "false"]);
    assert!(!off.key_creation_enabled);
    assert!(!admin.get_settings().await.unwrap().key_creation_enabled);
    assert_refused(&cluster, &["apikey", "create", "--name", "blocked", "--duration", "1d"], "creation_disabled");

    let table = run_table(&cluster, &["settings", "get"]);
    assert!(table.lines().any(|l| l.starts_with("max-key-lifetime") && l.ends_with("30d")), "{table}");
    assert!(table.lines().any(|l| l.starts_with("key-creation-enabled") && l.ends_with("false")), "{table}");

    assert_refused(&cluster, &["settings", "set", "--max-key-lifetime", "1h"], "invalid_argument");
    assert_exit(&run(&cluster, &["settings", "set"]), 1, "a set with nothing to change");
    assert_eq!(admin.get_settings().await.unwrap(), off, "the refusals changed nothing");
}

#[tokio::test]
async fn apikey_update_lock_and_scope_commands() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    admin.create_namespace("payments").await.unwrap();
    admin.create_namespace("ops").await.unwrap();

    // Scopes map to the wire scope.
    let args = ["apikey", "create", "--name", "narrow", "--duration", "30d", "--scope", "role:developer"];
    let narrow: wire::CreatedKey = run_json(&cluster, &args);
    let scope = admin.get_key(&narrow.key.id).await.unwrap().value.scope;
    assert_eq!(scope, Some(wire::KeyScope::Role("developer".into())));
    let args = [
        "apikey",
        "create",
        "--name",
        "namespaced",
        "--duration",
        "30d",
        "--scope",
        "namespace:payments:write",
        "--scope",
        "namespace:ops:read",
    ];
    let namespaced: wire::CreatedKey = run_json(&cluster, &args);
    let expected = [("ops".to_string(), "read".to_string()), ("payments".to_string(), "write".to_string())];
    let scope = admin.get_key(&namespaced.key.id).await.unwrap().value.scope;
    assert_eq!(scope, Some(wire::KeyScope::Namespaces(expected.into())));
    let mixed = ["apikey", "create", "--name", "x", "--scope", "role:read", "--scope", "namespace:ops:read"];
    assert_exit(&run(&cluster, &mixed), 1, "a role scope with a namespace scope");

    // Update, with and without If-Match.
    let key = admin.create_key(&new_key("svc")).await.unwrap().value.key;
    let id = key.id.as_str();
    let rev = key.revision.to_string();
    let updated: wire::Key =
        run_json(&cluster, &["apikey", "update", "--id", id, "--description", "nightly", "--if-match", &rev]);
    assert_eq!((updated.name.as_str(), updated.description.as_str()), ("svc", "nightly"));
    assert_eq!(admin.get_key(id).await.unwrap().value, updated);
    assert_refused(
        &cluster,
        &["apikey", "update", "--id", id, "--name", "stale", "--if-match", &rev],
        "revision_mismatch",
    );
    assert_eq!(admin.get_key(id).await.unwrap().value.name, "svc", "a stale update changes nothing");
    let table = run_table(&cluster, &["apikey", "update", "--id", id, "--name", "svc-renamed"]);
    assert!(table.contains("svc-renamed") && table.contains("nightly"), "{table}");
    assert_eq!(admin.get_key(id).await.unwrap().value.name, "svc-renamed");

    // Lock: delete is refused until unlocked.
    let locked: wire::Key = run_json(&cluster, &["apikey", "lock", "--id", id]);
    assert!(locked.locked);
    assert!(admin.get_key(id).await.unwrap().value.locked);
    assert_refused(&cluster, &["apikey", "delete", "--id", id, "--yes"], "key_locked");
    assert_refused(&cluster, &["apikey", "update", "--id", id, "--name", "x"], "key_locked");
    assert_eq!(admin.get_key(id).await.unwrap().value.state, "enabled", "the refusals changed nothing");
    let table = run_table(&cluster, &["apikey", "unlock", "--id", id]);
    assert!(table.contains("svc-renamed"), "{table}");
    assert!(!admin.get_key(id).await.unwrap().value.locked);
    let deleted: serde_json::Value = run_json(&cluster, &["apikey", "delete", "--id", id, "--yes"]);
    assert_eq!(deleted["deleted"].as_bool(), Some(true), "{deleted}");
    assert_eq!(admin.get_key(id).await.unwrap().value.state, "deleted");
}

#[tokio::test]
async fn apikey_rotate_commands() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let first = admin.create_key(&new_key("worker")).await.unwrap().value;

    // With a grace period both keys verify.
    let args = ["apikey", "rotate", "--id", &first.key.id, "--grace", "1h", "--duration", "7d"];
    let second: wire::RotatedKey = run_json(&cluster, &args);
    assert_eq!(second.replaces, first.key.id);
    assert_eq!(second.key.name, "worker");
    assert_ne!(second.secret, first.secret);
    assert!(verify(&admin, &second.secret).await.valid, "the new key verifies");
    assert!(verify(&admin, &first.secret).await.valid, "the old key verifies during the grace period");
    assert!(admin.get_key(&first.key.id).await.unwrap().value.expires_at < first.key.expires_at);
    assert_refused(&cluster, &["apikey", "rotate", "--id", &first.key.id], "conflict");

    // Grace 0, the secret to a new private file: the old key is refused as expired.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("worker.key");
    let path_text = path.to_str().unwrap();
    let args = ["apikey", "rotate", "--id", &second.key.id, "--grace", "0", "--file", path_text, "--output", "json"];
    let out = run(&cluster, &args);
    assert_exit(&out, 0, "apikey rotate --file");
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let third_id = shown["key"]["id"].as_str().expect("the new key's id").to_string();
    assert_eq!(shown["replaces"].as_str(), Some(second.key.id.as_str()), "{shown}");
    assert!(shown.get("secret").is_none(), "{shown}");
    let third_secret = secret_in_file(&path);
    assert!(!stdout(&out).contains(&third_secret), "with --file the secret is not printed");
    let answer = verify(&admin, &third_secret).await;
    assert_eq!((answer.valid, answer.key_id.as_deref()), (true, Some(third_id.as_str())));
    let old = &second.secret;
    poll("the old key to verify as expired", CONVERGE, async || {
        let answer = verify(&admin, old).await;
        match answer.code.as_deref() {
            Some("expired") => Ok(()),
            _ => Err(format!("{answer:?}")),
        }
    })
    .await;

    // An existing file is refused before anything changes.
    let before = admin.get_key(&third_id).await.unwrap();
    let out = run(&cluster, &["apikey", "rotate", "--id", &third_id, "--file", path_text]);
    assert_exit(&out, 1, "apikey rotate --file onto an existing file");
    assert_eq!(admin.get_key(&third_id).await.unwrap(), before, "the refused rotation left the key alone");
    assert_eq!(secret_in_file(&path), third_secret, "the file was not overwritten");

    // The table shows the new secret once and names the key it replaces.
    let table = run_table(&cluster, &["apikey", "rotate", "--id", &third_id]);
    assert!(table.contains(&third_id) && table.contains("worker"), "{table}");
    let fourth_secret = secret_in_table(&table);
    let answer = verify(&admin, &fourth_secret).await;
    assert!(answer.valid, "{answer:?}");
    assert_ne!(answer.key_id.as_deref(), Some(third_id.as_str()));
}

#[tokio::test]
async fn account_commands() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);

    let args = ["account", "create", "--name", "acme", "--owner-name", "root"];
    let acme: wire::CreatedAccount = run_json(&cluster, &args);
    assert_eq!((acme.account.as_str(), acme.owner.name.as_str(), acme.owner.role.as_str()), ("acme", "root", "owner"));
    assert!(acme.enrollment_code.starts_with("kle_"), "{acme:?}");
    // The owner redeems the code for its own first key, which works in acme.
    let first = enroll(&admin, &acme.enrollment_code, "root").await;
    let answer = verify(&admin, &first.secret).await;
    assert!(answer.valid, "{answer:?}");
    assert_eq!((answer.account.as_deref(), answer.key_id.as_deref()), (Some("acme"), Some(first.key.id.as_str())));
    let root = cluster.client_as(&first.secret);
    assert_eq!(root.list_users().await.unwrap().users, std::slice::from_ref(&acme.owner));
    assert_refused(&cluster, &["account", "create", "--name", "acme", "--owner-name", "root"], "conflict");

    // The table shows the code once, with how the owner redeems it; no key, no --file.
    let table = run_table(&cluster, &["account", "create", "--name", "gamma", "--owner-name", "chief"]);
    assert!(table.contains("gamma") && table.contains("login --enroll"), "{table}");
    assert!(!table.contains("klk_"), "no key secret: {table}");
    let code = table
        .split_whitespace()
        .find(|word| word.starts_with("kle_"))
        .unwrap_or_else(|| panic!("no code in {table}"))
        .to_string();
    let chief = enroll(&admin, &code, "chief").await;
    let answer = verify(&admin, &chief.secret).await;
    assert_eq!((answer.valid, answer.account.as_deref()), (true, Some("gamma")));
    let out = cluster.cli(&["account", "create", "--name", "beta", "--owner-name", "boss", "--file", "beta.key"]);
    assert!(!out.status.success(), "account create takes no --file");
}
