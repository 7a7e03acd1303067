//! Three nodes: membership, writes on any node, verification on every node, a follower that
//! was down and catches up.

use keyledger_client::Client;
use keyledger_wire as wire;

use crate::util::{new_key, verify_req, Cluster};

/// Verifies `secret` on every running node once that node has applied `index`.
pub(crate) async fn verify_everywhere(cluster: &Cluster, secret: &str, index: u64) -> Vec<(u64, wire::VerifyResponse)> {
    let mut answers = Vec::new();
    for id in cluster.running() {
        let answer = cluster
            .client(id)
            .verify(&verify_req(secret, Some(index)))
            .await
            .unwrap_or_else(|e| panic!("verify on node {id} at index {index}: {e:?}"));
        answers.push((id, answer));
    }
    answers
}

/// Ids of the running nodes other than the leader.
async fn followers(cluster: &Cluster) -> (u64, Vec<u64>) {
    let leader = cluster.leader().await;
    let followers = cluster.running().into_iter().filter(|&id| id != leader).collect();
    (leader, followers)
}

#[tokio::test]
async fn three_nodes_form_one_cluster_of_voters() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    for id in 1..=3 {
        let status = cluster.client(id).cluster_status().await.unwrap();
        assert_eq!(status.node_id, id);
        assert_eq!(status.leader, Some(leader));
        let mut members: Vec<(u64, &str)> = status.members.iter().map(|m| (m.node_id, m.role.as_str())).collect();
        members.sort();
        assert_eq!(members, [(1, "voter"), (2, "voter"), (3, "voter")], "as seen by node {id}");
        for member in &status.members {
            assert_eq!(
                member.address.trim_start_matches("http://"),
                cluster.node(member.node_id).url().trim_start_matches("http://")
            );
        }
    }
    // Every member's ledger is checked against the answering node's: they agree (or a member is
    // momentarily ahead, which cannot be judged).
    crate::util::poll("every member to report an agreeing ledger", crate::util::CONVERGE, async || {
        let status = cluster.client(1).cluster_status().await.map_err(|e| format!("{e:?}"))?;
        let verdicts: Vec<Option<bool>> = status.members.iter().map(|m| m.ledger_agrees).collect();
        if verdicts.contains(&Some(false)) {
            panic!("ledgers diverged: {status:?}");
        }
        if verdicts.iter().all(|v| *v == Some(true)) {
            Ok(())
        } else {
            Err(format!("{verdicts:?}"))
        }
    })
    .await;
}

#[tokio::test]
async fn writes_on_followers_are_verified_on_every_node() {
    let cluster = Cluster::start(3).await;
    let (leader, followers) = followers(&cluster).await;
    assert_eq!(followers.len(), 2);
    let (writer, other) = (followers[0], followers[1]);

    // A create sent to a follower is forwarded, committed, and seen everywhere.
    let created = cluster.client(writer).create_key(&new_key("via-follower")).await.unwrap();
    let id = &created.value.key.id;
    for (node, answer) in verify_everywhere(&cluster, &created.value.secret, created.index).await {
        assert!(answer.valid, "node {node}: {answer:?}");
        assert_eq!(answer.key_id.as_deref(), Some(id.as_str()), "node {node}");
    }

    // A disable through the other follower reaches every node too.
    let disabled = cluster.client(other).disable_key(id).await.unwrap();
    assert!(disabled.index > created.index);
    for (node, answer) in verify_everywhere(&cluster, &created.value.secret, disabled.index).await {
        assert!(!answer.valid, "node {node} still accepts a disabled key: {answer:?}");
        assert_eq!(answer.code.as_deref(), Some("disabled"), "node {node}");
    }

    // And one through the leader, read back from a follower.
    let enabled = cluster.client(leader).enable_key(id).await.unwrap();
    let answer = cluster.client(writer).verify(&verify_req(&created.value.secret, Some(enabled.index))).await.unwrap();
    assert!(answer.valid, "{answer:?}");
}

#[tokio::test]
async fn a_follower_that_was_down_catches_up_after_restart() {
    let mut cluster = Cluster::start(3).await;
    let (leader, followers) = followers(&cluster).await;
    let down = followers[0];
    let leader_client: Client = cluster.client(leader);

    let before = leader_client.create_key(&new_key("before")).await.unwrap();
    cluster.kill(down);

    // Two of three nodes are a quorum: writes go on while the follower is down.
    let during = leader_client.create_key(&new_key("during")).await.unwrap();
    let off = leader_client.disable_key(&before.value.key.id).await.unwrap();

    cluster.restart(down).await;
    let client = cluster.client(down);
    let answer = client.verify(&verify_req(&during.value.secret, Some(off.index))).await.unwrap();
    assert!(answer.valid, "a key created while node {down} was down: {answer:?}");
    let answer = client.verify(&verify_req(&before.value.secret, Some(off.index))).await.unwrap();
    assert_eq!(answer.code.as_deref(), Some("disabled"), "a key disabled while node {down} was down: {answer:?}");
}
