//! Online backup and restore, end to end: `keyledger admin backup` from a follower of a 3-node
//! cluster with a varied history while writes go on, `keyledger admin restore` into a new dir,
//! and a new 3-node cluster started on it (node 1 restored, two joining by snapshot) that holds
//! the same ledger up to the backup's position, gives the same verdicts and whose checkpoints
//! verify. Refusals: a caller who is not the operator, a non-empty data dir, a truncated file.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use keyledger_audit::verify::{verify_export, Expect, Options};
use keyledger_client::{AuditQuery, Client, ExportFormat, ExportRequest};
use keyledger_ledger::backup::BackupReader;
use keyledger_wire as wire;

use crate::checkpoints::checkpoint_covering;
use crate::util::{
    account_sa, expect_refused, keyledger_bin, new_key, poll, service_account_with_key, succeeded, user_with_key,
    verify_req, Cluster,
};

const FAST_CHECKPOINTS: &[&str] = &["--checkpoint-interval", "1s"];

/// Runs the CLI against `address` as `key`.
fn cli_at(address: &str, key: &str, args: &[&str]) -> std::process::Output {
    Command::new(keyledger_bin())
        .args(args)
        .args(["--address", address, "--api-key", key])
        .env_remove("KEYLEDGER_ADDRESS")
        .env_remove("KEYLEDGER_API_KEY")
        .env_remove("KEYLEDGER_CACERT")
        .env_remove("RUST_LOG")
        .env("KEYLEDGER_CONFIG", "/nonexistent/keyledger-tests/config.json")
        .stdin(Stdio::null())
        .output()
        .expect("run keyledger")
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// Every event of the cluster with seq ≤ `upto`, by seq: its chain hash.
async fn hashes(client: &Client, upto: u64) -> BTreeMap<u64, String> {
    let mut found = BTreeMap::new();
    let mut after = 0;
    while after < upto {
        let query =
            AuditQuery { after: Some(after), limit: Some(10_000), scope: Some("cluster".into()), ..Default::default() };
        let page = client.audit_events(&query).await.expect("a page of the cluster's events");
        for event in page.events.iter().filter(|e| e.seq <= upto) {
            found.insert(event.seq, event.hash.clone());
        }
        match page.next {
            Some(next) => after = next,
            None => break,
        }
    }
    found
}

/// Each secret's verdict on `client`'s node: valid, or the code why not.
async fn verdicts(client: &Client, secrets: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (name, secret) in secrets {
        let answer = client.verify(&verify_req(secret, None)).await.expect("a verdict");
        let verdict = if answer.valid { "valid".to_string() } else { answer.code.unwrap_or_default() };
        out.insert(name.clone(), verdict);
    }
    out
}

/// Keys in every state, users and service accounts, and a checkpoint over them; the secrets by name.
async fn varied_history(cluster: &Cluster) -> BTreeMap<String, String> {
    let admin = cluster.client(1);
    let settings = wire::UpdateSettingsRequest { max_keys_per_user: Some(1000), ..Default::default() };
    admin.update_settings(&settings).await.unwrap();
    let mut secrets = BTreeMap::new();
    for name in ["valid", "disabled", "locked", "deleted", "rotated"] {
        let created = admin.create_key(&new_key(name)).await.unwrap().value;
        secrets.insert(name.to_string(), created.secret);
        match name {
            "disabled" => drop(admin.disable_key(&created.key.id).await.unwrap()),
            "locked" => drop(admin.lock_key(&created.key.id).await.unwrap()),
            "deleted" => drop(admin.delete_key(&created.key.id).await.unwrap()),
            "rotated" => {
                let req = wire::RotateKeyRequest { grace: Some("0s".into()), ..Default::default() };
                let rotated = admin.rotate_key(&created.key.id, &req).await.unwrap().value;
                secrets.insert("rotated-successor".into(), rotated.secret);
            }
            _ => {}
        }
    }
    let (_, dev) = user_with_key(&admin, "dev", "developer").await;
    secrets.insert("user-dev".into(), dev);
    let (_, sa_secret) = service_account_with_key(&admin, account_sa("deployer", "developer")).await;
    secrets.insert("service-account".into(), sa_secret);
    let (retired, retired_secret) = service_account_with_key(&admin, account_sa("retired", "developer")).await;
    admin.disable_service_account(&retired.id).await.unwrap();
    secrets.insert("service-account-disabled".into(), retired_secret);
    let head = cluster.own_ledger_head(1).await.unwrap().seq;
    checkpoint_covering(cluster, 1, head).await;
    secrets
}

#[tokio::test]
async fn a_backup_taken_during_writes_restores_into_a_new_cluster_with_the_same_ledger() {
    let source = Cluster::start_with(3, FAST_CHECKPOINTS).await;
    let secrets = varied_history(&source).await;
    let leader = source.leader().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();

    // Writes go on before, throughout and after the backup.
    let writing = Arc::new(AtomicBool::new(true));
    let count = Arc::new(AtomicUsize::new(0));
    let writer = tokio::spawn({
        let (client, writing, count) = (source.client(leader), writing.clone(), count.clone());
        async move {
            let mut written = Vec::new();
            while writing.load(Ordering::Relaxed) {
                let name = format!("during-{}", written.len());
                let created = client.create_key(&new_key(&name)).await.unwrap().value;
                written.push((created.key.id, created.secret));
                count.fetch_add(1, Ordering::Relaxed);
            }
            written
        }
    });
    let written_at_least = async |at_least: usize| {
        poll("the writer to go on", Duration::from_secs(20), async || {
            let written = count.load(Ordering::Relaxed);
            if written >= at_least {
                Ok(written)
            } else {
                Err(format!("{written} written"))
            }
        })
        .await
    };
    written_at_least(5).await;
    let file = source.dir().join("cluster.klbackup");
    let address = source.node(follower).url();
    let key = source.admin_key().to_string();
    let args = ["admin", "backup", "--out", path_str(&file)];
    let output = tokio::task::spawn_blocking({
        let args = args.map(str::to_string);
        move || cli_at(&address, &key, &args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    written_at_least(count.load(Ordering::Relaxed) + 5).await;
    writing.store(false, Ordering::Relaxed);
    let during = writer.await.unwrap();
    let printed = succeeded(&output, "admin backup");
    assert!(printed.contains("OK: backup written") && printed.contains("head hash"), "{printed}");
    assert!(!source.dir().join("cluster.klbackup.partial").exists());
    assert_eq!(crate::util::mode_of(&file) & 0o777, 0o600, "for the operator's eyes only");
    let again = cli_at(&source.node(follower).url(), source.admin_key(), &args);
    assert!(!again.status.success(), "an existing file is never replaced");
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));

    let header = BackupReader::open(std::fs::File::open(&file).unwrap()).unwrap().header().clone();
    let n = header.events;
    assert!(n > 0 && header.source_node == follower);
    let bytes = std::fs::read(&file).unwrap();
    for secret in secrets.values().chain(during.iter().map(|(_, s)| s)) {
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "no secret in the file");
    }
    let source_hashes = hashes(&source.client(leader), n).await;
    assert_eq!(source_hashes.len() as u64, n);
    let source_verdicts = verdicts(&source.client(leader), &secrets).await;
    assert_eq!(source_verdicts["valid"], "valid");
    assert_ne!(source_verdicts["disabled"], "valid");

    // Refusals: a non-empty dir (left as it was), a truncated file (nothing written).
    let busy = source.dir().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("keep.txt"), "mine").unwrap();
    let refused =
        cli_at("http://127.0.0.1:9", "unused", &["admin", "restore", path_str(&file), "--data-dir", path_str(&busy)]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not empty"), "{refused:?}");
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1);
    assert_eq!(std::fs::read_to_string(busy.join("keep.txt")).unwrap(), "mine");
    let truncated = source.dir().join("truncated.klbackup");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let fresh = source.dir().join("fresh");
    let refused = cli_at(
        "http://127.0.0.1:9",
        "unused",
        &["admin", "restore", path_str(&truncated), "--data-dir", path_str(&fresh)],
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("truncated"), "{refused:?}");
    assert!(!fresh.exists());
    let checked = cli_at("http://127.0.0.1:9", "unused", &["admin", "restore", path_str(&file), "--verify-only"]);
    assert!(succeeded(&checked, "restore --verify-only").contains("checks out"));

    // A restored dir founds the new cluster: it is not started as a joining node.
    let misused = source.dir().join("misused");
    succeeded(
        &cli_at(
            "http://127.0.0.1:9",
            "unused",
            &["admin", "restore", path_str(&file), "--data-dir", path_str(&misused)],
        ),
        "admin restore",
    );
    let joining = Command::new(keyledger_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", path_str(&misused), "--join", &source.node(1).url()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!joining.status.success());
    assert!(String::from_utf8_lossy(&joining.stderr).contains("without --join"), "{joining:?}");

    // A new cluster on the restored dir: node 1, then two nodes that join it.
    let mut restored = Cluster::start_prepared(source.admin_key(), FAST_CHECKPOINTS, |dir| {
        let output =
            cli_at("http://127.0.0.1:9", "unused", &["admin", "restore", path_str(&file), "--data-dir", path_str(dir)]);
        succeeded(&output, "admin restore");
    })
    .await;
    restored.join_new_node().await;
    restored.join_new_node().await;
    poll("the restored nodes to report one ledger head", Duration::from_secs(30), async || {
        let mut heads = Vec::new();
        for id in 1..=3 {
            heads.push(restored.own_ledger_head(id).await?);
        }
        if heads.iter().all(|h| h.seq == heads[0].seq && h.hash == heads[0].hash) && heads[0].seq >= n {
            Ok(())
        } else {
            Err(format!("{heads:?}"))
        }
    })
    .await;
    for id in 1..=3 {
        assert_eq!(hashes(&restored.client(id), n).await, source_hashes, "node {id}: events 1..={n}");
    }
    let client = restored.client(2);
    assert_eq!(verdicts(&client, &secrets).await, source_verdicts);
    assert_eq!(client.get_settings().await.unwrap().max_keys_per_user, 1000);
    let users = |c: Client| async move {
        let mut names: Vec<String> = c.list_users().await.unwrap().users.into_iter().map(|u| u.name).collect();
        names.sort();
        names
    };
    assert_eq!(users(client.clone()).await, users(source.client(leader)).await);
    let (mut before, mut after) = (0, 0);
    for (id, secret) in &during {
        let answer = client.verify(&verify_req(secret, None)).await.unwrap();
        let created_at = source.client(leader).key_history(id).await.unwrap().events[0].seq;
        assert_eq!(answer.valid, created_at <= n, "key {id} created at seq {created_at}, backup at {n}");
        if created_at <= n {
            before += 1
        } else {
            after += 1
        }
    }
    assert!(before >= 5 && after >= 5, "writes on both sides of the backup: {before} before, {after} after");
    for id in [2, 3] {
        assert!(restored.node(id).log().contains("installed snapshot"), "node {id} received the ledger by snapshot");
    }

    // The old checkpoints and the new cluster's own verify over the whole ledger.
    let head = restored.own_ledger_head(1).await.unwrap().seq;
    checkpoint_covering(&restored, 1, head).await;
    let mut export = restored
        .client(3)
        .audit_export(&ExportRequest { scope: Some("cluster".into()), ..ExportRequest::new(ExportFormat::Jsonl) })
        .await
        .unwrap();
    let mut lines = Vec::new();
    while let Some(chunk) = export.chunk().await.unwrap() {
        lines.extend_from_slice(&chunk);
    }
    let options = Options { expect: Expect::Complete, trusted: None, whole_cluster: true };
    let verified = verify_export(&lines[..], &options).expect("the restored cluster's export verifies");
    assert!(verified.checkpoints >= 2 && verified.roots_checked >= 2, "{verified:?}");
}

#[tokio::test]
async fn only_the_operator_may_back_up() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let (_, account_admin) = user_with_key(&admin, "second-in-command", "admin").await;
    expect_refused(cluster.client_as(&account_admin).backup().await, 403, "permission_denied");
    let (_, developer) = user_with_key(&admin, "dev", "developer").await;
    expect_refused(cluster.client_as(&developer).backup().await, 403, "permission_denied");
    let file = cluster.dir().join("denied.klbackup");
    let output = cli_at(&cluster.node(1).url(), &account_admin, &["admin", "backup", "--out", path_str(&file)]);
    assert_eq!(output.status.code(), Some(2), "an error answer: {output:?}");
    assert!(!file.exists() && !cluster.dir().join("denied.klbackup.partial").exists());
    // The operator may.
    let mut backup = admin.backup().await.unwrap();
    assert!(backup.chunk().await.unwrap().is_some_and(|c| c.starts_with(b"KLBACKUP")));
}
