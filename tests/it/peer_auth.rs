//! The node-to-node routes answer only requests that show the cluster secret: a forged leader's
//! AppendEntries, a vote and a removal notice without it change nothing, and a node given the
//! wrong secret cannot join (nor restart on a data dir of another cluster).

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use keyledger_ledger::{codec, TypeConfig};
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::{CommittedLeaderId, LogId, Vote};

use crate::util::{poll, Cluster, CONVERGE, STARTUP};

/// A well-formed secret file that is not the cluster's.
fn wrong_secret_file(dir: &Path) -> PathBuf {
    let path = dir.join("wrong.secret");
    let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).unwrap();
    std::io::Write::write_all(&mut file, format!("{}\n", "ab".repeat(32)).as_bytes()).unwrap();
    path
}

/// Posts `body` to node 1's internal `path`, with `Authorization: Bearer <bearer>` if given.
async fn post_internal(cluster: &Cluster, path: &str, body: Vec<u8>, bearer: Option<&str>) -> (u16, String) {
    let mut request = cluster.http().post(format!("{}{path}", cluster.node(1).url())).body(body);
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn internal_requests_without_the_cluster_secret_are_refused_and_change_nothing() {
    let cluster = Cluster::single().await;
    let secret = fs::read_to_string(cluster.cluster_secret_file()).unwrap().trim().to_owned();
    let before = cluster.client(1).cluster_status().await.unwrap();
    assert_eq!(before.leader, Some(1));

    // A stranger poses as leader 99 of a much later term, asks for votes, and says node 1 was
    // removed: each would unseat or silence node 1 if it were believed.
    let term = before.term + 100;
    let append = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(term, 99),
        prev_log_id: None,
        entries: Vec::new(),
        leader_commit: None,
    };
    let last = LogId::new(CommittedLeaderId::new(term, 99), 1_000_000);
    let vote = VoteRequest::new(Vote::new(term, 99), Some(last));
    let forged = [
        ("/internal/raft/append", codec::encode(&append).unwrap()),
        ("/internal/raft/vote", codec::encode(&vote).unwrap()),
        ("/internal/removed", codec::encode(&()).unwrap()),
    ];
    let wrong = "ab".repeat(32);
    for (path, body) in &forged {
        for bearer in [None, Some(wrong.as_str()), Some(&secret[..63]), Some(cluster.admin_key())] {
            let (status, text) = post_internal(&cluster, path, body.clone(), bearer).await;
            assert_eq!(status, 401, "{path} with {bearer:?}: {text}");
            assert!(text.contains("\"unauthenticated\""), "{text}");
            assert!(!text.contains(&secret) && !text.contains(&wrong), "the answer echoes a secret: {text}");
        }
    }

    let after = cluster.client(1).cluster_status().await.unwrap();
    assert_eq!((after.term, after.leader), (before.term, Some(1)), "the forged requests moved node 1: {after:?}");
    let ready = cluster.http().get(format!("{}/readyz", cluster.node(1).url())).send().await.unwrap();
    assert_eq!(ready.status(), 200, "node 1 still serves as a member");
    assert!(cluster.node(1).log().contains("refused an internal request without this cluster's secret"));
    assert!(!cluster.node(1).log().contains(&secret), "the log shows the secret");

    // With the secret the same routes answer: it is the secret that was missing.
    let (status, text) = post_internal(&cluster, "/internal/status", codec::encode(&()).unwrap(), Some(&secret)).await;
    assert_eq!(status, 200, "{text}");
}

#[tokio::test]
async fn a_node_with_the_wrong_secret_cannot_join_and_one_with_the_right_one_can() {
    let mut cluster = Cluster::single().await;
    let wrong = wrong_secret_file(cluster.dir());
    let id = cluster.start_joining_node(wrong.clone());
    assert_eq!(id, 2);

    // The joining node is told no, says why, and is not made a member.
    poll("node 2 to log that node 1 refused its secret", STARTUP, async || {
        let log = cluster.node(2).log();
        if log.contains("refused this node's cluster secret") {
            Ok(())
        } else {
            Err(log.lines().last().unwrap_or_default().to_owned())
        }
    })
    .await;
    let status = cluster.client(1).cluster_status().await.unwrap();
    let members: Vec<u64> = status.members.iter().map(|m| m.node_id).collect();
    assert_eq!(members, [1], "{status:?}");
    let ready = cluster.http().get(format!("{}/readyz", cluster.node(2).url())).send().await.unwrap();
    assert_eq!(ready.status(), 503);

    // Restarted with the cluster's secret, the node that never joined takes it and joins.
    cluster.kill(2);
    cluster.set_secret_file(2, Some(cluster.cluster_secret_file()));
    cluster.restart(2).await;
    poll("node 2 to be a voter", CONVERGE, async || {
        let status = cluster.client(1).cluster_status().await.map_err(|e| format!("{e:?}"))?;
        match status.members.iter().find(|m| m.node_id == 2) {
            Some(m) if m.role == "voter" => Ok(()),
            _ => Err(format!("{status:?}")),
        }
    })
    .await;
    let stored = cluster.node(2).data_dir().join(crate::util::CLUSTER_SECRET_FILE);
    assert_eq!(fs::read(&stored).unwrap(), fs::read(cluster.cluster_secret_file()).unwrap());
    assert_eq!(crate::util::mode_of(&stored), 0o600);

    // Now a member, it refuses to start with another cluster's secret, and keeps its own.
    cluster.kill(2);
    cluster.set_secret_file(2, Some(wrong));
    cluster.start_again(2);
    let status = cluster.wait_exit(2, STARTUP).await;
    assert!(!status.success());
    assert!(cluster.node(2).log().contains("the given cluster secret differs"), "{}", cluster.node(2).log());
    assert_eq!(fs::read(&stored).unwrap(), fs::read(cluster.cluster_secret_file()).unwrap());

    // And with no flag at all a restart uses the stored secret.
    cluster.set_secret_file(2, None);
    cluster.restart(2).await;
    let created = cluster.client(2).create_key(&crate::util::new_key("after-restart")).await.unwrap();
    assert!(created.index > 0);
}
