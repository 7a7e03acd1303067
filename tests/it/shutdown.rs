//! SIGTERM: a node finishes what it is doing and exits cleanly while the cluster goes on; a
//! leader that stops hands over to a new one; both rejoin by themselves from their data dirs.

use std::time::{Duration, Instant};

use crate::util::{new_key, poll, verify_req, Cluster};

#[tokio::test]
async fn sigterm_stops_a_node_cleanly_and_it_rejoins_by_itself() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = cluster.running().into_iter().find(|&id| id != leader).unwrap();
    let other = cluster.running().into_iter().find(|&id| id != leader && id != follower).unwrap();
    let writer = cluster.client(other);

    // A follower: clean exit, and no write fails meanwhile.
    let status = cluster.terminate(follower, Duration::from_secs(10));
    assert!(status.success(), "SIGTERM exits 0, got {status}");
    assert!(cluster.node(follower).log().contains("stopped"), "the node says it stopped");
    let mut written = Vec::new();
    for i in 0..5 {
        written.push(writer.create_key(&new_key(&format!("while-one-stopped-{i}"))).await.unwrap());
    }

    // The follower rejoins by itself, starting from the state it saved as it stopped (not by
    // replaying its whole ledger); then the leader stops: clean exit, the others elect a new one
    // and writes go on.
    assert!(cluster.node(follower).data_dir().join("state.bin").is_file(), "the state is saved at shutdown");
    cluster.restart(follower).await;
    let log = cluster.node(follower).log();
    let loaded = log.lines().rfind(|l| l.contains("state loaded")).expect("the start says how it loaded");
    assert!(!loaded.contains("saved_at=0 "), "started from the saved state: {loaded}");
    let status = cluster.terminate(leader, Duration::from_secs(10));
    assert!(status.success(), "SIGTERM exits 0, got {status}");
    let stopped_at = Instant::now();
    let after = poll("writes after the leader stopped", Duration::from_secs(10), async || {
        writer.create_key(&new_key("after-the-leader-stopped")).await.map_err(|e| format!("{e:?}"))
    })
    .await;
    eprintln!("writes resumed {:?} after the leader stopped", stopped_at.elapsed());
    written.push(after);

    // The old leader rejoins from its data dir and ends with everything.
    cluster.restart(leader).await;
    for created in &written {
        let verdict = cluster.client(leader).verify(&verify_req(&created.value.secret, Some(created.index))).await;
        assert!(verdict.unwrap().valid, "the restarted node has every acknowledged key");
    }
    cluster.wait_caught_up(other, 1..=3).await;
}
