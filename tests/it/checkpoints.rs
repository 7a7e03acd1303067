//! Signed checkpoints and Merkle proofs, end to end: the leader signs checkpoints, the public
//! keys are served without a key, proofs fetched through the API and the CLI verify offline
//! against those keys, and any change to a proof, or a key nobody trusts, fails it.

use std::path::Path;
use std::time::Duration;

use keyledger_audit::proofs::{verify_consistency, verify_inclusion, TrustedKeys};
use keyledger_wire as wire;
use serde_json::Value;

use crate::util::{expect_refused, mode_of, new_key, poll, succeeded, user_with_key, Cluster};

/// A valid Ed25519 public key no node has (RFC 8032's first test vector).
const UNTRUSTED_KEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

/// Checkpoints every second when anything was written, so tests need not wait a minute.
const FAST_CHECKPOINTS: &[&str] = &["--checkpoint-interval", "1s"];

/// The newest checkpoint once one covers at least `seq` events.
pub(crate) async fn checkpoint_covering(cluster: &Cluster, node: u64, seq: u64) -> wire::AuditEvent {
    let client = cluster.client(node);
    poll("a checkpoint covering the writes", Duration::from_secs(20), async || {
        let list = client.audit_checkpoints(None, Some(1000)).await.map_err(|e| e.to_string())?;
        let last = list.checkpoints.last().ok_or("no checkpoint yet")?.clone();
        if last.data["tree_size"].as_u64().unwrap() >= seq {
            Ok(last)
        } else {
            Err(format!("the newest checkpoint covers {} events", last.data["tree_size"]))
        }
    })
    .await
}

fn path_arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test]
async fn checkpoints_are_signed_and_proofs_verify_offline_against_the_public_key() {
    let cluster = Cluster::start_with(1, FAST_CHECKPOINTS).await;
    let admin = cluster.client(1);
    let key = admin.create_key(&new_key("proved")).await.unwrap().value.key;
    admin.disable_key(&key.id).await.unwrap();
    let history = admin.key_history(&key.id).await.unwrap().events;
    let disabled_seq = history[1].seq;
    let first = checkpoint_covering(&cluster, 1, disabled_seq).await;
    let listed = admin.audit_checkpoints(None, Some(1000)).await.unwrap().checkpoints;
    let latest = admin.latest_checkpoint().await.unwrap();
    assert_eq!(latest.kind, "checkpoint");
    assert!(latest.seq >= listed.last().unwrap().seq, "the latest is at least the list's last");

    // The public keys need no API key; the node's own seed stays in its data dir, private.
    let keys = keyledger_client::Client::new(cluster.node(1).url(), None).unwrap().audit_public_keys().await.unwrap();
    assert_eq!(keys.algorithm, "ed25519");
    assert_eq!(keys.keys.len(), 1);
    assert_eq!(keys.keys[0].node_id, 1);
    assert_eq!(first.data["public_key"], keys.keys[0].public_key.as_str());
    assert_eq!(mode_of(&cluster.node(1).data_dir().join("checkpoint-signing.key")) & 0o777, 0o600);
    let trusted = TrustedKeys::parse(&serde_json::to_string(&keys).unwrap()).unwrap();
    let stranger = TrustedKeys::parse(UNTRUSTED_KEY).unwrap();

    // Inclusion of the `disabled` event in the checkpoint.
    let body = admin.inclusion_proof(disabled_seq, Some(first.seq)).await.unwrap();
    let proof: wire::InclusionProof = serde_json::from_slice(&body).unwrap();
    let included = verify_inclusion(&proof, &trusted).unwrap();
    assert_eq!((included.seq, included.checkpoint_seq), (disabled_seq, first.seq));
    assert!(verify_inclusion(&proof, &stranger).is_err(), "a key nobody trusts signs nothing");
    let mut bent = proof.clone();
    bent.event.data["key_id"] = Value::from("key_0000000000000000000000");
    assert!(verify_inclusion(&bent, &trusted).is_err(), "a changed event");
    if let Some(first_hash) = proof.proof.first() {
        let mut bent = proof.clone();
        bent.proof[0] = crate::util::change_one_char(first_hash, 5);
        assert!(verify_inclusion(&bent, &trusted).is_err(), "a changed path");
    }

    // More writes, a later checkpoint, and the later tree only appended to the first.
    for i in 0..5 {
        admin.create_key(&new_key(&format!("more-{i}"))).await.unwrap();
    }
    let head = cluster.own_ledger_head(1).await.unwrap().seq;
    let later = checkpoint_covering(&cluster, 1, head).await;
    assert!(later.seq > first.seq);
    let body = admin.consistency_proof(first.seq, None).await.unwrap();
    let proof: wire::ConsistencyProof = serde_json::from_slice(&body).unwrap();
    assert_eq!(proof.to.seq, later.seq, "the latest checkpoint by default");
    let consistent = verify_consistency(&proof, &trusted).unwrap();
    assert!(consistent.from_size < consistent.to_size);
    let mut swapped = proof.clone();
    std::mem::swap(&mut swapped.from, &mut swapped.to);
    assert!(verify_consistency(&swapped, &trusted).is_err());

    // Refusals: not a checkpoint, not yet covered, someone else's trail, not an admin.
    expect_refused(admin.inclusion_proof(disabled_seq, Some(disabled_seq)).await, 404, "not_found");
    expect_refused(admin.consistency_proof(later.seq, Some(first.seq)).await, 400, "invalid_argument");
    expect_refused(admin.inclusion_proof(head + 1000, None).await, 404, "not_found");
    let (_, dev_secret) = user_with_key(&admin, "dev", "developer").await;
    expect_refused(cluster.client_as(&dev_secret).inclusion_proof(disabled_seq, None).await, 403, "permission_denied");
    expect_refused(cluster.client_as(&dev_secret).latest_checkpoint().await, 403, "permission_denied");
    let anonymous = keyledger_client::Client::new(cluster.node(1).url(), None).unwrap();
    expect_refused(anonymous.audit_checkpoints(None, None).await, 401, "unauthenticated");

    // The same through the CLI, as an auditor would: keep the keys, fetch a proof, check it.
    let dir = tempfile::tempdir().unwrap();
    let keys_file = dir.path().join("keys.json");
    let proof_file = dir.path().join("inclusion.json");
    let consistency_file = dir.path().join("consistency.json");
    succeeded(&cluster.cli(&["audit", "public-key", "--out", path_arg(&keys_file)]), "public-key");
    let seq = disabled_seq.to_string();
    let prove = ["audit", "prove", "--seq", &seq, "--out", path_arg(&proof_file)];
    succeeded(&cluster.cli(&prove), "prove --seq");
    let from = first.seq.to_string();
    let prove = ["audit", "prove", "--from", &from, "--out", path_arg(&consistency_file)];
    succeeded(&cluster.cli(&prove), "prove --from");
    for file in [&proof_file, &consistency_file] {
        let check = ["audit", "verify-proof", path_arg(file), "--public-key", path_arg(&keys_file), "--output", "json"];
        let summary: Value = serde_json::from_str(&succeeded(&cluster.cli(&check), "verify-proof")).unwrap();
        assert_eq!(summary["valid"], true);
        let refused = cluster.cli(&["audit", "verify-proof", path_arg(file), "--public-key", UNTRUSTED_KEY]);
        assert!(!refused.status.success(), "a proof signed by an untrusted key must fail");
        assert!(String::from_utf8_lossy(&refused.stderr).contains("not among the trusted public keys"));
    }
    let mut document: Value = serde_json::from_str(&std::fs::read_to_string(&proof_file).unwrap()).unwrap();
    document["checkpoint"]["data"]["tree_size"] = Value::from(disabled_seq);
    let tampered = dir.path().join("tampered.json");
    std::fs::write(&tampered, document.to_string()).unwrap();
    let refused = cluster.cli(&["audit", "verify-proof", path_arg(&tampered), "--public-key", path_arg(&keys_file)]);
    assert!(!refused.status.success(), "a checkpoint with a changed size no longer verifies");

    let table = succeeded(&cluster.cli(&["audit", "checkpoints"]), "checkpoints");
    assert!(table.starts_with("SEQ") && table.contains(&first.seq.to_string()), "{table}");

    // The whole procedure on an export: its checkpoints are checked against the kept keys, and
    // their roots recomputed from its events.
    let export = dir.path().join("audit.jsonl");
    succeeded(&cluster.cli(&["audit", "export", "--format", "jsonl", "--out", path_arg(&export)]), "export");
    let check = ["audit", "verify", path_arg(&export), "--public-key", path_arg(&keys_file), "--output", "json"];
    let report: Value = serde_json::from_str(&succeeded(&cluster.cli(&check), "verify")).unwrap();
    assert!(report["checkpoints"].as_u64().unwrap() >= 2, "{report}");
    assert_eq!(report["roots_checked"], report["checkpoints"], "a single account's export holds every event");
    assert_eq!(report["checkpoints_by_trusted_keys"], true);
    let refused = cluster.cli(&["audit", "verify", path_arg(&export), "--public-key", UNTRUSTED_KEY]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not among the trusted public keys"), "{refused:?}");

    // The operator's full export, checked as one.
    let all = dir.path().join("all.jsonl");
    let export_all = ["audit", "export", "--format", "jsonl", "--scope", "cluster", "--out", path_arg(&all)];
    succeeded(&cluster.cli(&export_all), "export --scope cluster");
    let check = ["audit", "verify", path_arg(&all), "--cluster", "--public-key", path_arg(&keys_file)];
    let table = succeeded(&cluster.cli(&check), "verify --cluster");
    assert!(table.contains("signed by trusted keys") && table.contains("last checkpoint"), "{table}");
    let (_, admin_secret) = user_with_key(&admin, "not-the-operator", "admin").await;
    let request = keyledger_client::ExportRequest {
        scope: Some("cluster".into()),
        ..keyledger_client::ExportRequest::new(keyledger_client::ExportFormat::Jsonl)
    };
    expect_refused(cluster.client_as(&admin_secret).audit_export(&request).await, 403, "permission_denied");
}

/// After a failover the new leader registers its own key and goes on signing; every node
/// serves the same keys and the ledgers stay identical.
#[tokio::test]
async fn a_new_leader_registers_its_key_and_keeps_signing() {
    let mut cluster = Cluster::start_with(3, FAST_CHECKPOINTS).await;
    let admin = cluster.client(1);
    admin.create_key(&new_key("before")).await.unwrap();
    let head = cluster.own_ledger_head(1).await.unwrap().seq;
    let before = checkpoint_covering(&cluster, 1, head).await;
    let old_leader = cluster.leader().await;
    cluster.kill(old_leader);
    let survivor = cluster.running()[0];
    let client = cluster.client(survivor);
    client.create_key(&new_key("after")).await.unwrap();
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, old_leader);
    let head = cluster.own_ledger_head(survivor).await.unwrap().seq;
    let after = checkpoint_covering(&cluster, survivor, head).await;
    assert_eq!(after.data["signer_node_id"], new_leader);
    assert_ne!(after.data["public_key"], before.data["public_key"]);

    let keys = client.audit_public_keys().await.unwrap();
    let nodes: Vec<u64> = keys.keys.iter().map(|k| k.node_id).collect();
    assert!(nodes.contains(&old_leader) && nodes.contains(&new_leader), "{nodes:?}");
    let trusted = TrustedKeys::parse(&serde_json::to_string(&keys).unwrap()).unwrap();
    let body = client.consistency_proof(before.seq, Some(after.seq)).await.unwrap();
    verify_consistency(&serde_json::from_slice(&body).unwrap(), &trusted).unwrap();

    cluster.restart(old_leader).await;
    let keys_again = cluster.client(old_leader);
    poll("the restarted node serves the same keys", Duration::from_secs(20), async || {
        let theirs = keys_again.audit_public_keys().await.map_err(|e| e.to_string())?;
        if theirs == keys || theirs.keys.len() > keys.keys.len() {
            Ok(())
        } else {
            Err(format!("{theirs:?}"))
        }
    })
    .await;
}
