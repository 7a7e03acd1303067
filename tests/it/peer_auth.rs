//! The node-to-node routes answer only requests signed for the node with the cluster key: a
//! forged leader's AppendEntries (its stream cannot even be opened), a vote and a removal
//! notice without a signature change nothing, and the secret itself, once sent as a bearer
//! token, is refused too; a signed request is refused when replayed; a node given the wrong
//! secret cannot join (nor restart on a data dir of another cluster). Adding a member at a
//! plain listener's address gives the listener nothing it can replay. And the AppendEntries
//! stream survives a peer that sends it garbage.

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use keyledger_cluster::peer_auth::{now_ms, PeerKey, ANSWER_HEADER, REQUEST_HEADER};
use keyledger_cluster::ClusterSecret;
use keyledger_ledger::{codec, TypeConfig};
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::{CommittedLeaderId, LogId, Vote};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::{expect_refused, new_key, poll, Cluster, CONVERGE, STARTUP};

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
        for bearer in [None, Some(wrong.as_str()), Some(&secret[..63]), Some(&secret), Some(cluster.admin_key())] {
            let (status, text) = post_internal(&cluster, path, body.clone(), bearer).await;
            assert_eq!(status, 401, "{path} with {bearer:?}: {text}");
            assert!(text.contains("\"unauthenticated\""), "{text}");
            assert!(!text.contains(&secret) && !text.contains(&wrong), "the answer echoes a secret: {text}");
        }
    }
    // AppendEntries travels on an upgraded connection: without a signature there is none.
    for bearer in [None, Some(wrong.as_str()), Some(&secret[..63]), Some(&secret), Some(cluster.admin_key())] {
        let auth = bearer.map(|b| format!("Authorization: Bearer {b}"));
        let mut stream = open_stream(&cluster, auth).await;
        let head = read_head(&mut stream).await;
        assert!(head.starts_with("HTTP/1.1 401"), "the stream opened with {bearer:?}: {head}");
        // Had it opened, this frame would make node 1 follow leader 99.
        let _ = stream.write_all(&frame(&codec::encode(&append).unwrap())).await;
    }

    let after = cluster.client(1).cluster_status().await.unwrap();
    assert_eq!((after.term, after.leader), (before.term, Some(1)), "the forged requests moved node 1: {after:?}");
    let ready = cluster.http().get(format!("{}/readyz", cluster.node(1).url())).send().await.unwrap();
    assert_eq!(ready.status(), 200, "node 1 still serves as a member");
    assert!(cluster.node(1).log().contains("refused an internal request not signed for this node"));
    assert!(!cluster.node(1).log().contains(&secret), "the log shows the secret");

    // Signed for node 1 with the cluster key, the same route answers, signed by node 1; the
    // very same request sent again (a replay) is refused, and so is one signed for node 2.
    let signed = signed_request(&cluster, 1, "POST", "/internal/status", &codec::encode(&()).unwrap());
    let (status, text) = send_raw(&cluster, &signed).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status} {text}");
    assert!(status.to_ascii_lowercase().contains(ANSWER_HEADER), "the answer is not signed: {status}");
    let (status, text) = send_raw(&cluster, &signed).await;
    assert!(status.starts_with("HTTP/1.1 401") && text.contains("already used"), "the replay: {status} {text}");
    let elsewhere = signed_request(&cluster, 2, "POST", "/internal/status", &codec::encode(&()).unwrap());
    let (status, text) = send_raw(&cluster, &elsewhere).await;
    assert!(status.starts_with("HTTP/1.1 401") && text.contains("another node"), "{status} {text}");
}

/// The cluster's secret, as node 1 holds it.
pub(crate) fn cluster_key(cluster: &Cluster) -> PeerKey {
    PeerKey::derive(&ClusterSecret::read(&cluster.cluster_secret_file()).unwrap())
}

/// A complete HTTP/1.1 request to node 1, signed as node 99 for node `to`, as a node would.
pub(crate) fn signed_request(cluster: &Cluster, to: u64, method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
    let signature = cluster_key(cluster).sign_request(99, to, method, path, now_ms(), nonce, body);
    let authority = cluster.node(1).url().trim_start_matches("http://").to_owned();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\n{REQUEST_HEADER}: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        signature.to_header(),
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// Sends `bytes` as they are to node 1 on a new connection; the answer's head and the rest.
pub(crate) async fn send_raw(cluster: &Cluster, bytes: &[u8]) -> (String, String) {
    let authority = cluster.node(1).url().trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&authority).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let head = read_head(&mut stream).await;
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(STARTUP, stream.read_to_end(&mut rest)).await;
    (head, String::from_utf8_lossy(&rest).into_owned())
}

/// A plain TCP listener that records everything sent to it, connection by connection, and
/// closes each connection once it has read a whole request (or the sender stops).
struct Recorder {
    address: String,
    captured: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

impl Recorder {
    async fn start() -> Recorder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let captured = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = captured.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let mut bytes = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !whole_request(&bytes) {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => bytes.extend_from_slice(&buf[..n]),
                        }
                    }
                    sink.lock().unwrap().push(bytes);
                });
            }
        });
        Recorder { address, captured }
    }

    fn captured(&self) -> Vec<Vec<u8>> {
        self.captured.lock().unwrap().clone()
    }
}

/// Whether `bytes` hold a request's head and as much body as its `Content-Length` says.
pub(crate) fn whole_request(bytes: &[u8]) -> bool {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else { return false };
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    bytes.len() >= end + 4 + length
}

#[tokio::test]
async fn adding_a_member_at_a_listener_gives_it_nothing_it_can_use() {
    let cluster = Cluster::single().await;
    let secret_hex = fs::read_to_string(cluster.cluster_secret_file()).unwrap().trim().to_owned();
    let secret_raw: Vec<u8> = (0..32).map(|i| u8::from_str_radix(&secret_hex[2 * i..2 * i + 2], 16).unwrap()).collect();
    let admin = cluster.client(1);
    let recorder = Recorder::start().await;

    let request = keyledger_wire::AddMemberRequest { node_id: 7, address: recorder.address.clone() };
    let message = expect_refused(admin.add_cluster_member(&request).await, 400, "invalid_argument");
    assert!(
        message.contains(&format!("no keyledger node of this cluster answers at {}", recorder.address)),
        "{message}"
    );
    assert!(!message.contains("LogId") && !message.contains("Some("), "a debug string: {message}");

    // The listener was asked (a signed request for node 7), and learned nothing of the secret.
    let captured = recorder.captured();
    assert!(!captured.is_empty(), "the leader never contacted the listener");
    for bytes in &captured {
        let text = String::from_utf8_lossy(bytes).to_ascii_lowercase();
        assert!(text.contains(REQUEST_HEADER), "{text}");
        assert!(!text.contains(&secret_hex), "the listener received the secret in hex: {text}");
        assert!(!bytes.windows(32).any(|w| w == secret_raw.as_slice()), "the listener received the raw secret");
        assert!(!text.contains("authorization"), "{text}");
        // Replayed verbatim to the real node, it is refused.
        let (status, answer) = send_raw(&cluster, bytes).await;
        assert!(status.starts_with("HTTP/1.1 401"), "the replay was accepted: {status} {answer}");
    }

    assert!(!cluster.node(1).log().contains(&secret_hex), "the log shows the secret");

    // Nothing changed, and writes go on.
    let status = admin.cluster_status().await.unwrap();
    assert_eq!(status.members.iter().map(|m| m.node_id).collect::<Vec<_>>(), [1], "{status:?}");
    let created = admin.create_key(&new_key("after-the-listener")).await.unwrap();
    assert!(created.index > 0);
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
        if log.contains("refused this node's signature") {
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

/// Asks node 1 to upgrade a fresh connection to the AppendEntries stream, with `auth` (one
/// header line) if given.
async fn open_stream(cluster: &Cluster, auth: Option<String>) -> TcpStream {
    let authority = cluster.node(1).url().trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&authority).await.unwrap();
    let auth = auth.map(|line| format!("{line}\r\n")).unwrap_or_default();
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
    let before = cluster.client(1).cluster_status().await.unwrap();
    // The header a leader signs its upgrade with, for node 1 (a fresh nonce each time).
    let signed = || {
        let mut nonce = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
        let signature = cluster_key(&cluster).sign_request(99, 1, "GET", "/internal/raft/stream", now_ms(), nonce, b"");
        Some(format!("{REQUEST_HEADER}: {}", signature.to_header()))
    };

    let garbage: [Vec<u8>; 3] = [
        frame(&[1, 0xff, 0xff, 0xff, 0xff, 0xff]), // the right codec version, then nonsense
        frame(&[9; 16]),                           // an unknown codec version
        (u32::MAX).to_le_bytes().to_vec(),         // a length far over the limit
    ];
    for bytes in &garbage {
        let mut stream = open_stream(&cluster, signed()).await;
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
    let mut stream = open_stream(&cluster, signed()).await;
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.to_ascii_lowercase().contains(ANSWER_HEADER), "the upgrade is not signed: {head}");
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
