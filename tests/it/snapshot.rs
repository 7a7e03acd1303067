//! Log compaction: a node that joins after the Raft log was compacted cannot replay it from
//! the start; it must receive a snapshot carrying the entire ledger, and end identical.

use std::collections::BTreeMap;

use keyledger_client::ListKeys;

use crate::util::{new_key, poll, verify_req, Cluster, CONVERGE};

#[tokio::test]
async fn a_node_joining_after_compaction_receives_the_whole_ledger() {
    // Snapshot every 10 entries and keep only 10 behind it: history is soon purged from the log.
    let mut cluster = Cluster::start_with(1, &["--snapshot-logs", "10"]).await;
    let leader = cluster.client(1);
    let mut secrets = Vec::new();
    for i in 0..5 {
        let created = leader.create_key(&new_key(&format!("k{i}"))).await.expect("create");
        secrets.push((created.value.key.id.clone(), created.value.secret.clone()));
    }
    for round in 0..20 {
        let (id, _) = &secrets[round % secrets.len()];
        leader.disable_key(id).await.expect("disable");
        leader.enable_key(id).await.expect("enable");
    }
    leader.disable_key(&secrets[1].0).await.expect("disable");
    leader.delete_key(&secrets[2].0).await.expect("delete");

    let joined = cluster.join_new_node().await;
    let expected = cluster.own_ledger_head(1).await.expect("node 1 head");
    poll("the joined node's ledger head to equal node 1's", CONVERGE, async || {
        let head = cluster.own_ledger_head(joined).await?;
        if head == expected {
            Ok(())
        } else {
            Err(format!("{head:?} != {expected:?}"))
        }
    })
    .await;
    assert!(
        cluster.node(joined).log().contains("installed snapshot"),
        "the log was compacted, so the new node must have caught up from a snapshot"
    );

    // Same keys, same states, same revisions; and the joined node verifies from its own memory.
    let list = |id| {
        let client = cluster.client(id);
        async move {
            let keys = client.list_keys(&ListKeys { limit: Some(1000), ..Default::default() }).await.expect("list");
            keys.keys.into_iter().map(|k| (k.id, (k.state, k.revision))).collect::<BTreeMap<_, _>>()
        }
    };
    assert_eq!(list(joined).await, list(1).await);
    let on_joined = cluster.client(joined);
    let answers = [
        on_joined.verify(&verify_req(&secrets[0].1, None)).await.expect("verify"),
        on_joined.verify(&verify_req(&secrets[1].1, None)).await.expect("verify"),
        on_joined.verify(&verify_req(&secrets[2].1, None)).await.expect("verify"),
    ];
    assert!(answers[0].valid, "{:?}", answers[0]);
    assert_eq!(answers[1].code.as_deref(), Some("disabled"));
    assert_eq!(answers[2].code.as_deref(), Some("deleted"));
}
