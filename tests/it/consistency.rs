//! `consistency=linearizable`: a read on any node reflects every write acknowledged before it,
//! even on a follower that has just restarted and not caught up; without a leader it answers
//! `503` rather than something stale, while local reads keep answering.

use std::time::Duration;

use crate::util::{expect_refused, new_key, poll, verify_req, Cluster};

#[tokio::test]
async fn linearizable_reads_see_every_acknowledged_write_on_any_node() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = cluster.running().into_iter().find(|&id| id != leader).unwrap();
    cluster.kill(follower);

    // Writes the follower misses while it is down.
    let writer = cluster.client(leader);
    let mut written = Vec::new();
    for i in 0..8 {
        written.push(writer.create_key(&new_key(&format!("while-down-{i}"))).await.unwrap().value);
    }
    let disabled = &written[0];
    writer.disable_key(&disabled.key.id).await.unwrap();
    let renamed = &written[1].key.id;
    for i in 0..30 {
        let change = keyledger_wire::UpdateKeyRequest { name: Some(format!("renamed-{i}")), description: None };
        writer.update_key(renamed, &change, None).await.unwrap();
    }

    // As soon as it answers at all, a linearizable read there sees all of them.
    cluster.start_again(follower);
    let reader = cluster.client(follower);
    poll("the restarted follower to answer HTTP", Duration::from_secs(10), async || {
        reader.health().await.map(|_| ()).map_err(|e| format!("{e:?}"))
    })
    .await;
    let linearizable = reader.linearizable();
    let last = written.last().unwrap();
    // Only "no leader known yet" (503) is waited out: a 404 here would be a stale read.
    let read = poll("a linearizable read (the leader must be known)", Duration::from_secs(10), async || {
        match linearizable.get_key(&last.key.id).await {
            Err(e) if e.status() == Some(503) => Err(format!("{e:?}")),
            other => Ok(other),
        }
    })
    .await
    .expect("a linearizable read never misses an acknowledged write");
    assert_eq!(read.value.id, last.key.id);
    let renamed_now = linearizable.get_key(renamed).await.unwrap().value;
    assert_eq!(renamed_now.name, "renamed-29", "the last acknowledged rename is seen");
    let verdict = linearizable.verify(&verify_req(&disabled.secret, None)).await.unwrap();
    assert!(!verdict.valid, "the disable acknowledged before is seen");
    let verdict = linearizable.verify(&verify_req(&last.secret, None)).await.unwrap();
    assert!(verdict.valid);

    let bad = cluster.http().get(format!("{}/v1/keys?consistency=eventually", cluster.node(follower).url()));
    let bad = bad.bearer_auth(cluster.admin_key()).send().await.unwrap();
    assert_eq!(bad.status(), 400);

    // No leader: linearizable reads refuse, local reads still answer.
    for id in cluster.running().into_iter().filter(|&id| id != follower) {
        cluster.kill(id);
    }
    poll("the lone node to lose its leader", Duration::from_secs(10), async || {
        match linearizable.verify(&verify_req(&last.secret, None)).await {
            Err(e) if e.status() == Some(503) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    expect_refused(linearizable.get_key(&last.key.id).await, 503, "unavailable");
    assert!(reader.verify(&verify_req(&last.secret, None)).await.unwrap().valid, "local reads go on");
}
