//! Membership: the operator adds a standby node through the API (learner, caught up, voter)
//! and removes nodes, live or dead; a removed node stops answering as a member; a five-node
//! cluster keeps writing and verifying with two nodes down.

use std::time::Duration;

use keyledger_wire as wire;

use crate::util::{expect_refused, new_key, poll, succeeded, user_with_key, verify_req, Cluster};

fn voters(status: &wire::ClusterStatus) -> Vec<u64> {
    status.members.iter().filter(|m| m.role == "voter").map(|m| m.node_id).collect()
}

#[tokio::test]
async fn the_operator_adds_a_standby_node_and_removes_live_and_dead_ones() {
    let mut cluster = Cluster::start(3).await;
    let admin = cluster.client(1);
    let created = admin.create_key(&new_key("before-the-change")).await.unwrap();
    let key = created.value;

    // A standby node serves nothing until it is added.
    let (id, address) = cluster.start_standby_node();
    let standby = cluster.client(id);
    poll("the standby node to answer", Duration::from_secs(10), async || {
        standby.cluster_status().await.map(|_| ()).or_else(|e| match e.status() {
            Some(_) => Ok(()),
            None => Err(format!("{e:?}")),
        })
    })
    .await;
    expect_refused(standby.verify(&verify_req(&key.secret, None)).await, 503, "unavailable");

    // Only the operator changes members.
    let (_, other_admin) = user_with_key(&admin, "not-the-operator", "admin").await;
    let request = wire::AddMemberRequest { node_id: id, address: address.clone() };
    expect_refused(cluster.client_as(&other_admin).add_cluster_member(&request).await, 403, "permission_denied");

    // Added through a follower: the change is made on the leader.
    let status = cluster.client(2).add_cluster_member(&request).await.unwrap();
    assert_eq!(voters(&status), [1, 2, 3, id]);
    cluster.wait_ready(id).await;
    let verified = cluster.client(id).verify(&verify_req(&key.secret, Some(created.index))).await.unwrap();
    assert!(verified.valid, "the new node holds the whole ledger");
    cluster.wait_caught_up(1, [id]).await;

    // Removing a live node through the CLI: it learns of it and stops answering as a member.
    let removed = id.to_string();
    let table = succeeded(&cluster.cli(&["cluster", "remove", "--node-id", &removed]), "cluster remove");
    assert!(!table.contains(&format!("\n{removed} ")), "{table}");
    poll("the removed node to stop serving", Duration::from_secs(10), async || {
        match cluster.client(id).verify(&verify_req(&key.secret, None)).await {
            Err(e) if e.status() == Some(503) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let ready = cluster.http().get(format!("{}/readyz", cluster.node(id).url())).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    expect_refused(admin.remove_cluster_member(id).await, 404, "not_found");
    expect_refused(admin.remove_cluster_member(99).await, 404, "not_found");

    // Removing a dead node: the other two go on writing, with a quorum of two.
    cluster.kill(3);
    let status = admin.remove_cluster_member(3).await.unwrap();
    assert_eq!(voters(&status), [1, 2]);
    let disabled = admin.disable_key(&key.key.id).await.unwrap();
    let verdict = cluster.client(2).verify(&verify_req(&key.secret, Some(disabled.index))).await.unwrap();
    assert!(!verdict.valid, "the disable reached node 2");
    let status = admin.remove_cluster_member(2).await.unwrap();
    assert_eq!(voters(&status), [1]);
    expect_refused(admin.remove_cluster_member(1).await, 400, "invalid_argument");
}

#[tokio::test]
async fn five_nodes_keep_writing_and_verifying_with_two_down() {
    let mut cluster = Cluster::start(5).await;
    let admin = cluster.client(1);
    assert_eq!(voters(&admin.cluster_status().await.unwrap()), [1, 2, 3, 4, 5]);
    let leader = cluster.leader().await;
    let down: Vec<u64> = [leader, if leader == 5 { 4 } else { 5 }].into();
    for &id in &down {
        cluster.kill(id);
    }
    let survivor = cluster.running()[0];
    let client = cluster.client(survivor);
    let created = poll("a write with two of five down", Duration::from_secs(15), async || {
        client.create_key(&new_key("with-two-down")).await.map_err(|e| format!("{e:?}"))
    })
    .await;
    for id in cluster.running() {
        let answer = cluster.client(id).verify(&verify_req(&created.value.secret, Some(created.index))).await.unwrap();
        assert!(answer.valid, "node {id} verifies the key written with two nodes down");
    }
    for id in down {
        cluster.restart(id).await;
    }
    cluster.wait_caught_up(survivor, 1..=5).await;
}
