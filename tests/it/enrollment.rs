//! Enrollment codes: a user's keys are minted only by that user. An admin creates a user and
//! hands over the one-time code; the user redeems it (no other credential) for its own key.

use std::process::{Command, Stdio};

use keyledger_wire as wire;

use crate::util::{enroll, expect_refused, keyledger_bin, new_key, succeeded, user_with_key, verify_req, Cluster};

/// The whole audit export as JSON lines, as the bootstrap admin reads it.
pub(crate) async fn export_jsonl(cluster: &Cluster) -> String {
    let url = format!("{}/v1/audit/export?format=jsonl", cluster.node(1).url());
    let answer = cluster.http().get(url).bearer_auth(cluster.admin_key()).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    answer.text().await.unwrap()
}

fn user_req(name: &str, role: &str) -> wire::CreateUserRequest {
    wire::CreateUserRequest { name: name.into(), role: role.into() }
}

fn enroll_req(code: &str, name: &str) -> wire::EnrollRequest {
    wire::EnrollRequest { code: code.into(), name: name.into(), expires_in: Some("30d".into()), ..Default::default() }
}

#[tokio::test]
async fn an_admin_creates_a_user_who_enrolls_once_for_a_working_key() {
    let cluster = Cluster::single().await;
    let owner = cluster.client(1);
    let (_, ops_secret) = user_with_key(&owner, "ops", "admin").await;
    let admin = cluster.client_as(&ops_secret);

    let created = admin.create_user(&user_req("dev", "developer")).await.unwrap().value;
    let code = created.enrollment_code.clone();
    assert!(code.starts_with("kle_") && code.len() == 53, "{code}");
    assert_eq!(created.user.name, "dev");

    // Redeemed with no API key at all.
    let anonymous = keyledger_client::Client::new(cluster.node(1).url(), None).unwrap();
    let key = anonymous.enroll(&enroll_req(&code, "dev's laptop")).await.unwrap().value;
    assert_eq!((key.key.owner.id.as_str(), key.key.name.as_str()), (created.user.id.as_str(), "dev's laptop"));
    let answer = owner.verify(&verify_req(&key.secret, None)).await.unwrap();
    assert!(answer.valid, "{answer:?}");
    // The key works for the API, as the user.
    let dev = cluster.client_as(&key.secret);
    dev.create_key(&new_key("dev's second")).await.expect("the enrolled key mints the user's next key");

    // The code does not work twice; an unknown or malformed code gets the very same answer.
    let again = expect_refused(anonymous.enroll(&enroll_req(&code, "again")).await, 401, "unauthenticated");
    let stranger = "kle_".to_string() + &code[4..10].chars().rev().collect::<String>() + &code[10..];
    let unknown = expect_refused(anonymous.enroll(&enroll_req(&stranger, "x")).await, 401, "unauthenticated");
    let malformed = expect_refused(anonymous.enroll(&enroll_req("kle_nope", "x")).await, 401, "unauthenticated");
    assert_eq!((&again, &unknown), (&malformed, &malformed), "one answer that does not say which");

    // Nobody mints a key for another user: the admin gets 403, and neither can the owner.
    let for_dev = wire::CreateKeyRequest {
        owner: Some(wire::OwnerRef { kind: wire::OwnerKind::User, id: created.user.id.clone() }),
        ..new_key("for dev")
    };
    expect_refused(admin.create_key(&for_dev).await, 403, "permission_denied");
    expect_refused(owner.create_key(&for_dev).await, 403, "permission_denied");
    expect_refused(admin.rotate_key(&key.key.id, &Default::default()).await, 403, "permission_denied");

    // The audit trail has the issue and the redemption, and no code.
    let events = owner.key_history(&key.key.id).await.unwrap().events;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds[..2], ["created", "enrolled"], "{kinds:?}");
    assert_eq!(events[1].actor.id.as_deref(), Some(created.user.id.as_str()), "the user minted it");
    let export = export_jsonl(&cluster).await;
    assert!(export.contains("\"enrollment_issued\""), "the export shows the issue");
    assert!(!export.contains(&code[4..]), "no code in the export");
}

#[tokio::test]
async fn a_fresh_code_voids_the_old_one_and_rank_decides_who_may_issue() {
    let cluster = Cluster::single().await;
    let owner = cluster.client(1);
    let (_, ops_secret) = user_with_key(&owner, "ops", "admin").await;
    let admin = cluster.client_as(&ops_secret);
    let boss = owner.create_user(&user_req("boss", "owner")).await.unwrap().value;
    let dev = admin.create_user(&user_req("dev", "developer")).await.unwrap().value;

    let fresh = admin.issue_enrollment(&dev.user.id).await.unwrap().value;
    assert!(fresh.enrollment_code.starts_with("kle_"));
    assert_ne!(fresh.enrollment_code, dev.enrollment_code);
    let anonymous = keyledger_client::Client::new(cluster.node(1).url(), None).unwrap();
    expect_refused(anonymous.enroll(&enroll_req(&dev.enrollment_code, "old")).await, 401, "unauthenticated");
    enroll(&owner, &fresh.enrollment_code, "new").await;

    // An admin may not issue a code for an owner (it would mint an owner's key); an owner may.
    expect_refused(admin.issue_enrollment(&boss.user.id).await, 403, "permission_denied");
    owner.issue_enrollment(&boss.user.id).await.expect("an owner issues for an owner");
    let (_, dev_secret) = user_with_key(&owner, "plain", "developer").await;
    expect_refused(cluster.client_as(&dev_secret).issue_enrollment(&dev.user.id).await, 403, "permission_denied");
    expect_refused(admin.issue_enrollment("usr_nope").await, 404, "not_found");
}

#[tokio::test]
async fn the_cli_prints_a_code_and_login_enroll_stores_the_new_key() {
    use std::os::unix::fs::PermissionsExt;
    let cluster = Cluster::single().await;
    let out = cluster.cli(&["user", "create", "--name", "carol", "--role", "developer", "--output", "json"]);
    let created: wire::CreatedUser = serde_json::from_str(&succeeded(&out, "user create")).unwrap();
    let out = cluster.cli(&["user", "enrollment", "--id", &created.user.id]);
    let table = succeeded(&out, "user enrollment");
    let code = table.split_whitespace().find(|w| w.starts_with("kle_")).expect("the code is printed").to_string();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    let login = |code: &str| {
        Command::new(keyledger_bin())
            .args(["login", "--address", &cluster.node(1).url(), "--enroll", code, "--name", "carol's cli"])
            .env_remove("KEYLEDGER_API_KEY")
            .env_remove("KEYLEDGER_ADDRESS")
            .env("KEYLEDGER_CONFIG", &config)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = login(&created.enrollment_code);
    assert_eq!(out.status.code(), Some(2), "the voided code is refused: {out:?}");
    assert!(!config.exists());
    let out = login(&code);
    succeeded(&out, "login --enroll");
    assert_eq!(std::fs::metadata(&config).unwrap().permissions().mode() & 0o777, 0o600);
    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    let secret = stored["api_key"].as_str().expect("a stored key").to_string();
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&secret), "login does not print the key");

    let answer = cluster.client(1).verify(&verify_req(&secret, None)).await.unwrap();
    assert!(answer.valid, "{answer:?}");
    assert_eq!(answer.identity.map(|i| i.id), Some(created.user.id.clone()));
    // Later commands use the stored login: carol lists her own key.
    let out = Command::new(keyledger_bin())
        .args(["apikey", "list", "--output", "json"])
        .env_remove("KEYLEDGER_API_KEY")
        .env_remove("KEYLEDGER_ADDRESS")
        .env("KEYLEDGER_CONFIG", &config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let list: wire::KeyList = serde_json::from_str(&succeeded(&out, "apikey list as carol")).unwrap();
    assert_eq!(list.keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(), ["carol's cli"]);
}
