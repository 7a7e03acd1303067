//! Mixed releases: every internal request and answer names its peer protocol and release; a
//! node refuses a peer of another protocol with `409 protocol_mismatch` naming both, before it
//! reads the body; a data dir stamped by a later release is refused before it is opened, and a
//! node's own stamp is its format (docs/operations.md, "Rolling upgrade").

use std::fs;

use keyledger_cluster::protocol::{PEER_PROTOCOL, PROTOCOL_HEADER, RELEASE};
use keyledger_ledger::data_format::{DATA_FORMAT, FORMAT_FILE};

use crate::peer_auth::{send_raw, signed_request};
use crate::util::{Cluster, STARTUP};

/// `request` with a protocol header line added after its request line.
fn with_protocol(request: Vec<u8>, value: &str) -> Vec<u8> {
    let text = String::from_utf8(request).expect("the forged request is text");
    let (line, rest) = text.split_once("\r\n").expect("a request line");
    format!("{line}\r\n{PROTOCOL_HEADER}: {value}\r\n{rest}").into_bytes()
}

#[tokio::test]
async fn a_peer_of_another_protocol_is_refused_with_both_releases_named() {
    let cluster = Cluster::single().await;
    let head_before = cluster.client(1).cluster_status().await.unwrap();

    // Signed with the cluster's key, as a node of it would: only the protocol differs.
    let status = |protocol: Option<&str>| {
        let request = signed_request(&cluster, 1, "POST", "/internal/status", &[1]);
        match protocol {
            Some(value) => with_protocol(request, value),
            None => request,
        }
    };
    let (head, body) = send_raw(&cluster, &status(Some("2 keyledger/9.0.0"))).await;
    assert!(head.starts_with("HTTP/1.1 409"), "{head}");
    let ours = format!("{PEER_PROTOCOL} keyledger/{RELEASE}");
    assert!(head.to_lowercase().contains(&format!("{PROTOCOL_HEADER}: {ours}")), "{head}");
    assert!(body.contains("\"protocol_mismatch\""), "{body}");
    assert!(body.contains("node 99 speaks peer protocol 2 (keyledger 9.0.0)"), "{body}");
    assert!(body.contains(&format!("speaks protocol {PEER_PROTOCOL}")), "{body}");
    assert!(cluster.node(1).log().contains("speaks peer protocol 2"), "the node logs the refusal");

    // The raft stream is refused the same way.
    let stream = signed_request(&cluster, 1, "GET", "/internal/raft/stream", b"");
    let stream = with_protocol(stream, "2 keyledger/9.0.0");
    let stream = String::from_utf8(stream)
        .unwrap()
        .replace("Connection: close", "Connection: upgrade\r\nUpgrade: keyledger-raft/1");
    let (head, _) = send_raw(&cluster, stream.as_bytes()).await;
    assert!(head.starts_with("HTTP/1.1 409"), "{head}");

    // The same request in this release's protocol, or from a release before the header (no
    // header: protocol 1), passes the check and is answered with the node's own header.
    for protocol in [Some(ours.as_str()), None] {
        let (head, _) = send_raw(&cluster, &status(protocol)).await;
        assert!(!head.starts_with("HTTP/1.1 409") && !head.starts_with("HTTP/1.1 401"), "{protocol:?}: {head}");
        assert!(head.to_lowercase().contains(&format!("{PROTOCOL_HEADER}: {ours}")), "{head}");
    }
    // Refusals changed nothing.
    let head_after = cluster.client(1).cluster_status().await.unwrap();
    assert_eq!(head_before.members.len(), head_after.members.len());
}

/// `cluster status` names each member's release, as the member said it (a rolling upgrade
/// shows which nodes are done); a member that does not answer has none.
#[tokio::test]
async fn cluster_status_names_each_members_release() {
    let mut cluster = Cluster::start(3).await;
    let status = cluster.client(1).cluster_status().await.unwrap();
    let releases: Vec<_> = status.members.iter().map(|m| (m.node_id, m.release.clone())).collect();
    assert_eq!(releases, [1, 2, 3].map(|id| (id, Some(RELEASE.to_owned()))));
    let table = crate::util::succeeded(&cluster.cli(&["cluster", "status"]), "cluster status");
    assert!(table.contains("RELEASE") && table.contains(RELEASE), "{table}");

    cluster.kill(3);
    let status = cluster.client(1).cluster_status().await.unwrap();
    let dead = status.members.iter().find(|m| m.node_id == 3).unwrap();
    assert_eq!(dead.release, None, "{dead:?}");
}

#[tokio::test]
async fn a_data_dir_of_a_later_format_is_refused_and_left_as_it_was() {
    let mut cluster = Cluster::single().await;
    let stamp = cluster.node(1).data_dir().join(FORMAT_FILE);
    assert_eq!(fs::read_to_string(&stamp).unwrap(), format!("keyledger data dir format {DATA_FORMAT}\n"));
    cluster.client(1).create_key(&crate::util::new_key("kept")).await.unwrap();

    cluster.kill(1);
    let later = format!("keyledger data dir format {}\n", DATA_FORMAT + 1);
    fs::write(&stamp, &later).unwrap();
    cluster.start_again(1);
    let status = cluster.wait_exit(1, STARTUP).await;
    assert!(!status.success());
    let log = cluster.node(1).log();
    assert!(
        log.contains(&format!("data dir format {}", DATA_FORMAT + 1)) && log.contains("later keyledger release"),
        "{log}"
    );
    assert_eq!(fs::read_to_string(&stamp).unwrap(), later, "the stamp is left as it was");

    // Rolled back to this release's format, the node starts with everything kept.
    fs::write(&stamp, format!("keyledger data dir format {DATA_FORMAT}\n")).unwrap();
    cluster.restart(1).await;
    let keys = cluster.client(1).list_keys(&Default::default()).await.unwrap().keys;
    assert!(keys.iter().any(|k| k.name == "kept"), "{keys:?}");
}
