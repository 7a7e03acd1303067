//! Replay and rebuild: "what did the account look like at 03:12?" answered from a running node
//! and, identically, from the stopped node's data dir with no server; and `admin rebuild`
//! re-deriving a stopped node's indexes and Merkle tree, after which it serves the same ledger.

use std::time::Duration;

use keyledger_wire as wire;

use crate::util::{expect_refused, new_key, succeeded, user_with_key, Cluster};

fn key_state<'a>(replayed: &'a wire::Replay, id: &str) -> Option<&'a str> {
    replayed.keys.iter().find(|k| k.id == id).map(|k| k.state.as_str())
}

#[tokio::test]
async fn replay_shows_the_account_as_it_was_online_and_offline_alike() {
    let mut cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let key = admin.create_key(&new_key("incident")).await.unwrap().value.key;
    let created_at = key.created_at.clone();
    // Event times have millisecond resolution: step past them so "between" is unambiguous.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let between = wire_now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    admin.disable_key(&key.id).await.unwrap();
    let (user, _) = user_with_key(&admin, "later", "developer").await;
    let after = wire_now();

    let then = admin.replay(&between).await.unwrap();
    assert_eq!(then.account, "default");
    assert_eq!(key_state(&then, &key.id), Some("enabled"), "enabled at {between}");
    assert!(then.users.iter().all(|u| u.id != user.id), "the user did not exist yet");
    assert!(then.users.iter().any(|u| u.name == "admin"));
    let now = admin.replay(&after).await.unwrap();
    assert_eq!(key_state(&now, &key.id), Some("disabled"));
    assert!(now.users.iter().any(|u| u.id == user.id));
    assert!(now.seq > then.seq);
    let before_everything = admin.replay("2000-01-01T00:00:00Z").await.unwrap();
    assert!(before_everything.settings.is_none() && before_everything.keys.is_empty(), "{before_everything:?}");
    assert!(created_at.as_str() <= between.as_str());

    expect_refused(admin.replay("yesterday").await, 400, "invalid_argument");
    let (_, dev_secret) = user_with_key(&admin, "dev", "developer").await;
    expect_refused(cluster.client_as(&dev_secret).replay(&after).await, 403, "permission_denied");

    // The CLI asks the node; with --data-dir it reads a stopped node's ledger itself.
    let online: wire::Replay =
        serde_json::from_str(&succeeded(&cluster.cli(&["replay", "--at", &between, "--output", "json"]), "replay"))
            .unwrap();
    assert_eq!(online, then);
    let table = succeeded(&cluster.cli(&["replay", "--at", &after]), "replay table");
    assert!(table.contains("KEYS") && table.contains(&key.id) && table.contains("disabled"), "{table}");

    let data_dir = cluster.node(1).data_dir().to_str().unwrap().to_string();
    let locked = cluster.cli(&["replay", "--at", &between, "--data-dir", &data_dir]);
    assert!(!locked.status.success(), "a running node's data dir is locked");
    assert!(String::from_utf8_lossy(&locked.stderr).contains("stop it or copy"), "{locked:?}");
    cluster.kill(1);
    let offline = cluster.cli(&["replay", "--at", &between, "--data-dir", &data_dir, "--output", "json"]);
    let offline: wire::Replay = serde_json::from_str(&succeeded(&offline, "offline replay")).unwrap();
    assert_eq!(offline, then, "the data dir tells the same story as the node");
}

#[tokio::test]
async fn admin_rebuild_rederives_a_stopped_nodes_indexes_and_tree() {
    let mut cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(admin.create_key(&new_key(&format!("r{i}"))).await.unwrap().value.key.id);
    }
    admin.lock_key(&ids[2]).await.unwrap();
    let history = admin.key_history(&ids[2]).await.unwrap().events;
    let head = cluster.own_ledger_head(1).await.unwrap();
    let data_dir = cluster.node(1).data_dir().to_str().unwrap().to_string();

    let refused = cluster.cli(&["admin", "rebuild", "--data-dir", &data_dir]);
    assert!(!refused.status.success(), "not while the node runs");
    cluster.kill(1);
    let report = cluster.cli(&["admin", "rebuild", "--data-dir", &data_dir, "--output", "json"]);
    let report: serde_json::Value = serde_json::from_str(&succeeded(&report, "rebuild")).unwrap();
    assert!(report["events"].as_u64().unwrap() >= head.seq);
    assert_eq!(report["keys"], 5, "the bootstrap key and four more");
    let missing = cluster.cli(&["admin", "rebuild", "--data-dir", "/nonexistent/keyledger-data"]);
    assert!(!missing.status.success());

    cluster.restart(1).await;
    let after = cluster.own_ledger_head(1).await.unwrap();
    assert!(after.seq >= head.seq);
    assert_eq!(admin.key_history(&ids[2]).await.unwrap().events[..history.len()], history[..]);
    let audit = admin.audit_events(&keyledger_client::AuditQuery::default()).await.unwrap().events;
    assert!(audit.iter().filter(|e| e.kind == "created").count() >= 5, "the account index was rebuilt");
}

/// Now as RFC 3339 with milliseconds, the form event times take.
fn wire_now() -> String {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    keyledger_model::Timestamp(ms).to_string()
}

/// Applies only stage their ledger writes (the Raft log holds the entries), so a node stopping
/// with SIGTERM writes what it staged: offline tools read the ledger alone, and a cleanly
/// stopped node's data dir must hold its last write.
#[tokio::test]
async fn a_cleanly_stopped_nodes_data_dir_holds_its_last_write() {
    let mut cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let key = admin.create_key(&new_key("last-write")).await.unwrap().value.key;
    admin.disable_key(&key.id).await.unwrap();
    let after = wire_now();
    let status = cluster.terminate(1, Duration::from_secs(10));
    assert!(status.success(), "SIGTERM exits 0, got {status}");

    let data_dir = cluster.node(1).data_dir().to_str().unwrap().to_string();
    let offline = cluster.cli(&["replay", "--at", &after, "--data-dir", &data_dir, "--output", "json"]);
    let offline: wire::Replay = serde_json::from_str(&succeeded(&offline, "offline replay")).unwrap();
    assert_eq!(key_state(&offline, &key.id), Some("disabled"), "the disable just before the stop is in the ledger");
}
