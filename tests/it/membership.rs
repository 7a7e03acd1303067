//! Membership: the operator adds a standby node through the API (learner, caught up, voter)
//! and removes nodes, live or dead; a removed node stops answering as a member; a five-node
//! cluster keeps writing and verifying with two nodes down. An operator's mistake cannot cost
//! a single-node cluster its writes: adding a member where nothing listens, or where a
//! listener stays silent, is refused in bounded time with nothing changed; a member that
//! answers as a node but cannot take the log stays a learner and can be removed, which also
//! cancels its pending addition.

use std::time::{Duration, Instant};

use keyledger_cluster::peer_auth::{RequestSignature, ANSWER_HEADER, REQUEST_HEADER};
use keyledger_cluster::rpc::NodeStatus;
use keyledger_ledger::codec;
use keyledger_model::ChainHead;
use keyledger_wire as wire;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::peer_auth::{cluster_key, whole_request};
use crate::util::{expect_refused, new_key, poll, succeeded, user_with_key, verify_req, Cluster};

/// Waits until node `id` answers HTTP at all (a standby answers `503`): started, listening.
async fn wait_listening(cluster: &Cluster, id: u64) {
    let client = cluster.client(id);
    poll(&format!("node {id} to answer"), Duration::from_secs(10), async || {
        client.cluster_status().await.map(|_| ()).or_else(|e| match e.status() {
            Some(_) => Ok(()),
            None => Err(format!("{e:?}")),
        })
    })
    .await;
}

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
    wait_listening(&cluster, id).await;
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
    let table = succeeded(&cluster.cli(&["cluster", "remove", "--node-id", &removed, "--yes"]), "cluster remove");
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

/// The error a member added at `address` (where no node of this cluster answers) gets, and
/// that writes go on with the membership unchanged. Returns the error's message.
async fn adding_is_refused_and_writes_go_on(cluster: &Cluster, address: &str) -> String {
    let admin = cluster.client(1);
    let started = Instant::now();
    let request = wire::AddMemberRequest { node_id: 7, address: address.to_owned() };
    let message = expect_refused(admin.add_cluster_member(&request).await, 400, "invalid_argument");
    assert!(started.elapsed() < Duration::from_secs(10), "the refusal took {:?}", started.elapsed());
    assert!(message.contains(&format!("no keyledger node of this cluster answers at {address}")), "{message}");
    let status = admin.cluster_status().await.unwrap();
    assert_eq!(status.members.iter().map(|m| m.node_id).collect::<Vec<_>>(), [1], "{status:?}");
    let created = admin.create_key(&new_key("after-a-bad-add")).await.unwrap();
    assert!(created.index > 0);
    message
}

#[tokio::test]
async fn adding_a_member_where_nothing_listens_or_a_listener_stays_silent_changes_nothing() {
    let cluster = Cluster::single().await;

    // Nothing listens: a port that was free a moment ago.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let message = adding_is_refused_and_writes_go_on(&cluster, &closed).await;
    assert!(message.contains("nothing accepts connections"), "{message}");

    // A listener that accepts connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let message = adding_is_refused_and_writes_go_on(&cluster, &silent).await;
    assert!(message.contains("no answer within"), "{message}");
}

/// A process that answers `/internal/status` as node `id` of the cluster, signed with its key,
/// and nothing else: it proves it is a node but can never take the log.
async fn start_half_node(cluster: &Cluster, id: u64) -> String {
    let key = cluster_key(cluster);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let key = key.clone();
            tokio::spawn(async move {
                let mut bytes = Vec::new();
                let mut buf = [0u8; 4096];
                while !whole_request(&bytes) {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => bytes.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&bytes).into_owned();
                let signature = head
                    .lines()
                    .find_map(|line| line.strip_prefix(&format!("{REQUEST_HEADER}: ")))
                    .and_then(RequestSignature::parse);
                let answer = match signature {
                    Some(signature) if head.starts_with("POST /internal/status ") => {
                        let status = NodeStatus { node_id: id, applied_index: None, ledger_head: ChainHead::EMPTY };
                        let body = codec::encode(&status).unwrap();
                        let signed = key.sign_answer(&signature.nonce, id, 200, &body);
                        let mut answer = format!(
                            "HTTP/1.1 200 OK\r\n{ANSWER_HEADER}: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            signed.to_header(),
                            body.len()
                        )
                        .into_bytes();
                        answer.extend_from_slice(&body);
                        answer
                    }
                    _ => {
                        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
                    }
                };
                let _ = stream.write_all(&answer).await;
            });
        }
    });
    address
}

fn roles(status: &wire::ClusterStatus) -> Vec<(u64, String)> {
    status.members.iter().map(|m| (m.node_id, m.role.clone())).collect()
}

#[tokio::test]
async fn a_member_that_cannot_catch_up_stays_a_learner_and_can_be_removed() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let address = start_half_node(&cluster, 7).await;

    let request = wire::AddMemberRequest { node_id: 7, address: address.clone() };
    let message = expect_refused(admin.add_cluster_member(&request).await, 409, "conflict");
    assert!(message.contains("stays a learner"), "{message}");
    let status = admin.cluster_status().await.unwrap();
    assert_eq!(roles(&status), [(1, "voter".to_owned()), (7, "learner".to_owned())], "{status:?}");

    // A learner needs no quorum: writes go on, and it is removed at once.
    let created = admin.create_key(&new_key("with-a-stuck-learner")).await.unwrap();
    assert!(created.index > 0);
    let status = admin.remove_cluster_member(7).await.unwrap();
    assert_eq!(roles(&status), [(1, "voter".to_owned())]);
    let created = admin.create_key(&new_key("after-removing-the-learner")).await.unwrap();
    assert!(created.index > 0);
}

#[tokio::test]
async fn removing_a_learner_cancels_its_pending_addition() {
    let cluster = Cluster::single().await;
    let address = start_half_node(&cluster, 7).await;

    let adding = {
        let admin = cluster.client(1);
        let request = wire::AddMemberRequest { node_id: 7, address: address.clone() };
        tokio::spawn(async move { admin.add_cluster_member(&request).await })
    };
    let admin = cluster.client(1);
    poll("node 7 to be a learner", Duration::from_secs(5), async || {
        let status = admin.cluster_status().await.map_err(|e| format!("{e:?}"))?;
        if roles(&status).contains(&(7, "learner".to_owned())) {
            Ok(())
        } else {
            Err(format!("{status:?}"))
        }
    })
    .await;
    let status = admin.remove_cluster_member(7).await.unwrap();
    assert_eq!(roles(&status), [(1, "voter".to_owned())]);
    let message = expect_refused(adding.await.unwrap(), 409, "conflict");
    assert!(message.contains("was cancelled"), "{message}");
    let created = admin.create_key(&new_key("after-the-cancel")).await.unwrap();
    assert!(created.index > 0);
}

/// docs/operations.md, "Replacing a dead node", step by step through the CLI: node 3 dies with
/// its disk, it is removed, a new node 4 starts as a standby with a copy of the cluster secret
/// and is added; it receives the whole ledger and the cluster is three voters again.
#[tokio::test]
async fn a_dead_node_is_replaced_as_the_runbook_says() {
    let mut cluster = Cluster::start(3).await;
    let admin = cluster.client(1);
    let before = admin.create_key(&new_key("before-the-loss")).await.unwrap();

    cluster.kill(3);
    std::fs::remove_dir_all(cluster.node(3).data_dir()).unwrap();
    let during = admin.create_key(&new_key("with-two-voters")).await.unwrap();
    succeeded(&cluster.cli(&["cluster", "remove", "--node-id", "3", "--yes"]), "cluster remove");

    let (id, address) = cluster.start_standby_node();
    wait_listening(&cluster, id).await;
    let table = succeeded(
        &cluster.cli(&["cluster", "add", "--node-id", &id.to_string(), "--node-address", &address]),
        "cluster add",
    );
    assert!(table.contains(&address), "{table}");
    cluster.wait_ready(id).await;
    let status = admin.cluster_status().await.unwrap();
    assert_eq!(voters(&status), [1, 2, id]);

    let replacement = cluster.client(id);
    for created in [&before, &during] {
        let answer = replacement.verify(&verify_req(&created.value.secret, Some(during.index))).await.unwrap();
        assert!(answer.valid, "the new node holds the whole ledger");
    }
    let after = replacement.create_key(&new_key("after-the-replacement")).await.unwrap();
    // Identical ledgers (background events may still be landing: the heads settle together).
    poll("the three ledgers to be identical", Duration::from_secs(15), async || {
        let mut heads = Vec::new();
        for node in [1, 2, id] {
            heads.push(cluster.own_ledger_head(node).await?);
        }
        if heads.windows(2).all(|pair| pair[0] == pair[1]) {
            Ok(())
        } else {
            Err(format!("{heads:?}"))
        }
    })
    .await;
    assert!(cluster.client(2).verify(&verify_req(&after.value.secret, Some(after.index))).await.unwrap().valid);
}
