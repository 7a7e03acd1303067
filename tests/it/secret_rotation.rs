//! Rotating the cluster secret without downtime (docs/operations.md, "Rotating the cluster
//! secret"): three rolling restarts of a three-node cluster (stage the new secret as
//! `cluster.secret.next`; promote it, keeping the old as `cluster.secret.previous`; retire the
//! old), with a write through each node after its restart, so every mix of old and new nodes
//! talks. Afterwards a request signed with the old secret is refused; a malformed rotation file
//! stops a node with a message naming it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use keyledger_client::ListKeys;
use keyledger_cluster::{CLUSTER_SECRET_FILE, NEXT_SECRET_FILE, PREVIOUS_SECRET_FILE};
use rand_core::RngCore;

use crate::peer_auth::send_raw;
use crate::util::{new_key, Cluster, CONVERGE, STARTUP};

fn write_secret(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

/// One rolling restart: each node stopped, `step` done on its data dir, started again, and a
/// key written through it (a follower forwards to the leader: both directions must be believed).
async fn roll(cluster: &mut Cluster, phase: &str, step: impl Fn(&Path), written: &mut Vec<String>) {
    for id in 1..=3 {
        cluster.terminate(id, CONVERGE);
        step(cluster.node(id).data_dir());
        cluster.restart(id).await;
        let name = format!("{phase}-after-node-{id}");
        let created = crate::util::poll(&format!("a write through node {id} ({phase})"), CONVERGE, async || {
            cluster.client(id).create_key(&new_key(&name)).await.map_err(|e| e.to_string())
        })
        .await;
        written.push(created.value.key.id);
    }
}

#[tokio::test]
async fn the_cluster_secret_is_rotated_by_three_rolling_restarts() {
    let mut cluster = Cluster::start(3).await;
    // Restarts use the stored secret, not the flag they joined with.
    for id in [2, 3] {
        cluster.set_secret_file(id, None);
    }
    let old = fs::read_to_string(cluster.cluster_secret_file()).unwrap();
    let old_request = crate::peer_auth::signed_request(&cluster, 1, "POST", "/internal/status", &[]);
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    let new = format!("{}\n", keyledger_model::hex::encode(&bytes));
    let mut written = Vec::new();

    roll(&mut cluster, "staged", |dir| write_secret(&dir.join(NEXT_SECRET_FILE), &new), &mut written).await;
    roll(
        &mut cluster,
        "promoted",
        |dir| {
            fs::rename(dir.join(CLUSTER_SECRET_FILE), dir.join(PREVIOUS_SECRET_FILE)).unwrap();
            fs::rename(dir.join(NEXT_SECRET_FILE), dir.join(CLUSTER_SECRET_FILE)).unwrap();
        },
        &mut written,
    )
    .await;
    roll(&mut cluster, "retired", |dir| fs::remove_file(dir.join(PREVIOUS_SECRET_FILE)).unwrap(), &mut written).await;

    for id in 1..=3 {
        let dir = cluster.node(id).data_dir();
        assert_eq!(fs::read_to_string(dir.join(CLUSTER_SECRET_FILE)).unwrap(), new, "node {id}");
        assert!(!dir.join(PREVIOUS_SECRET_FILE).exists() && !dir.join(NEXT_SECRET_FILE).exists());
    }
    assert_ne!(old, new);
    // Every write is on every node.
    let leader = cluster.leader().await;
    cluster.wait_caught_up(leader, [1, 2, 3]).await;
    for id in 1..=3 {
        let keys = cluster.client(id).list_keys(&ListKeys { limit: Some(1000), ..Default::default() }).await.unwrap();
        for key in &written {
            assert!(keys.keys.iter().any(|k| &k.id == key), "node {id} lacks {key}");
        }
    }

    // The old secret opens nothing any more; the new one does.
    let (head, body) = send_raw(&cluster, &old_request).await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}\n{body}");
    let new_request = crate::peer_auth::signed_request(&cluster, 1, "POST", "/internal/status", &[]);
    let (head, _) = send_raw(&cluster, &new_request).await;
    assert!(!head.starts_with("HTTP/1.1 401"), "{head}");

    // A rotation file that is not a secret stops the node, naming it.
    cluster.terminate(3, CONVERGE);
    let next = cluster.node(3).data_dir().join(NEXT_SECRET_FILE);
    write_secret(&next, "not a secret\n");
    cluster.start_again(3);
    assert!(!cluster.wait_exit(3, STARTUP).await.success());
    assert!(cluster.node(3).log().contains(NEXT_SECRET_FILE), "{}", cluster.node(3).log());
    fs::remove_file(next).unwrap();
    cluster.restart(3).await;
}
