//! The node-to-node routes answer only requests that show the cluster secret: a forged leader's
//! AppendEntries (its stream cannot even be opened), a vote and a removal notice without it
//! change nothing, and a node given the wrong secret cannot join (nor restart on a data dir of
//! another cluster). And the AppendEntries stream survives a peer that sends it garbage.

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use keyledger_ledger::{codec, TypeConfig};
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::{CommittedLeaderId, LogId, Vote};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
    let forged =
        [("/internal/raft/vote", codec::encode(&vote).unwrap()), ("/internal/removed", codec::encode(&()).unwrap())];
    let wrong = "ab".repeat(32);
    for (path, body) in &forged {
        for bearer in [None, Some(wrong.as_str()), Some(&secret[..63]), Some(cluster.admin_key())] {
            let (status, text) = post_internal(&cluster, path, body.clone(), bearer).await;
            assert_eq!(status, 401, "{path} with {bearer:?}: {text}");
            assert!(text.contains("\"unauthenticated\""), "{text}");
            assert!(!text.contains(&secret) && !text.contains(&wrong), "the answer echoes a secret: {text}");
        }
    }
    // AppendEntries travels on an upgraded connection: without the secret there is none.
    for bearer in [None, Some(wrong.as_str()), Some(&secret[..63]), Some(cluster.admin_key())] {
        let mut stream = open_stream(&cluster, bearer).await;
        let head = read_head(&mut stream).await;
        assert!(head.starts_with("HTTP/1.1 401"), "the stream opened with {bearer:?}: {head}");
        // Had it opened, this frame would make node 1 follow leader 99.
        let _ = stream.write_all(&frame(&codec::encode(&append).unwrap())).await;
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

/// Asks node 1 to upgrade a fresh connection to the AppendEntries stream.
async fn open_stream(cluster: &Cluster, bearer: Option<&str>) -> TcpStream {
    let authority = cluster.node(1).url().trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&authority).await.unwrap();
    let auth = bearer.map(|b| format!("Authorization: Bearer {b}\r\n")).unwrap_or_default();
    let request = format!(
        "GET /internal/raft/stream HTTP/1.1\r\nHost: {authority}\r\n{auth}Connection: upgrade\r\nUpgrade: keyledger-raft/1\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// The status line and headers of the answer, read byte by byte so nothing after them is taken.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read_u8().await {
            Ok(byte) => head.push(byte),
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A stream frame: the payload's length, then the payload.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = (payload.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(payload);
    frame
}

#[tokio::test]
async fn the_append_stream_drops_a_peer_that_sends_garbage_and_serves_the_next() {
    let cluster = Cluster::single().await;
    let secret = fs::read_to_string(cluster.cluster_secret_file()).unwrap().trim().to_owned();
    let before = cluster.client(1).cluster_status().await.unwrap();

    let garbage: [Vec<u8>; 3] = [
        frame(&[1, 0xff, 0xff, 0xff, 0xff, 0xff]), // the right codec version, then nonsense
        frame(&[9; 16]),                           // an unknown codec version
        (u32::MAX).to_le_bytes().to_vec(),         // a length far over the limit
    ];
    for bytes in &garbage {
        let mut stream = open_stream(&cluster, Some(&secret)).await;
        let head = read_head(&mut stream).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        stream.write_all(bytes).await.unwrap();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(crate::util::STARTUP, stream.read_to_end(&mut rest)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "node 1 kept the connection or answered: {read:?} {rest:?}");
    }

    // A well-formed AppendEntries from a stale leader gets a proper answer on the stream.
    let stale = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(0, 99),
        prev_log_id: None,
        entries: Vec::new(),
        leader_commit: None,
    };
    let mut stream = open_stream(&cluster, Some(&secret)).await;
    assert!(read_head(&mut stream).await.starts_with("HTTP/1.1 101"));
    stream.write_all(&frame(&codec::encode(&stale).unwrap())).await.unwrap();
    let length = stream.read_u32_le().await.unwrap() as usize;
    let mut answer = vec![0; length];
    stream.read_exact(&mut answer).await.unwrap();
    type Answer = Result<openraft::raft::AppendEntriesResponse<u64>, openraft::error::RaftError<u64>>;
    let answer: Answer = codec::decode(&answer).unwrap();
    assert!(matches!(answer, Ok(openraft::raft::AppendEntriesResponse::HigherVote(_))), "{answer:?}");

    let after = cluster.client(1).cluster_status().await.unwrap();
    assert_eq!((after.term, after.leader), (before.term, Some(1)), "{after:?}");
    let created = cluster.client(1).create_key(&crate::util::new_key("after-garbage")).await.unwrap();
    assert!(created.index > 0);
}
