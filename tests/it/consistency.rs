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

/// A leader killed and restarted before its followers' election timers run out leads again at
/// once (openraft restores it), knowing only the commit index it stored, which lags. Its
/// linearizable reads must still see every write it acknowledged before the crash. (A chaos run
/// caught it reading a key as disabled after the enable that followed was acknowledged.)
#[tokio::test]
async fn a_leader_restarted_before_anyone_else_leads_reads_what_it_acknowledged() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let writer = cluster.client(leader);
    for round in 0..4 {
        let created = writer.create_key(&new_key(&format!("restarted-leader-{round}"))).await.unwrap().value;
        writer.disable_key(&created.key.id).await.unwrap();
        let change = keyledger_wire::UpdateKeyRequest { name: Some(format!("last-{round}")), description: None };
        writer.update_key(&created.key.id, &change, None).await.unwrap();

        // Back within a few tens of milliseconds: well inside the 400 ms election timeout.
        cluster.kill(leader);
        cluster.start_again(leader);
        let linearizable = cluster.client(leader).linearizable();
        let read = poll("the restarted leader to answer a linearizable read", Duration::from_secs(10), async || {
            match linearizable.get_key(&created.key.id).await {
                Ok(read) => Ok(read),
                Err(e) if e.status() == Some(503) || e.status().is_none() => Err(format!("{e:?}")),
                Err(e) => panic!("round {round}: {e:?}"),
            }
        })
        .await;
        assert_eq!(read.value.name, format!("last-{round}"), "round {round}: an acknowledged rename is missing");
        let verdict = linearizable.verify(&verify_req(&created.secret, None)).await.unwrap();
        assert!(!verdict.valid, "round {round}: the acknowledged disable is missing");
        cluster.wait_ready(leader).await;
        if cluster.leader().await != leader {
            break; // another node took over; the case needs the restarted node to lead again
        }
    }
}
