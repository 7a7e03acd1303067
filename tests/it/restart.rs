//! A node killed with SIGKILL and started again on the same data dir keeps everything.

use crate::single_node::assert_invalid;
use crate::util::{new_key, verify_req, Cluster, BOOTSTRAP_KEY_FILE};

#[tokio::test]
async fn a_killed_single_node_restarts_with_its_keys_and_states() {
    let mut cluster = Cluster::single().await;
    let client = cluster.client(1);

    let kept = client.create_key(&new_key("kept")).await.unwrap().value;
    let off = client.create_key(&new_key("off")).await.unwrap().value;
    let gone = client.create_key(&new_key("gone")).await.unwrap().value;
    client.disable_key(&off.key.id).await.unwrap();
    let last = client.delete_key(&gone.key.id).await.unwrap().index;

    let keys = [(&kept, "enabled"), (&off, "disabled"), (&gone, "deleted")];
    let mut revisions = Vec::new();
    for (created, _) in keys {
        revisions.push(client.get_key(&created.key.id).await.unwrap().revision);
    }
    let key_file = cluster.node(1).data_dir().join(BOOTSTRAP_KEY_FILE);
    let key_file_before = std::fs::read(&key_file).unwrap();

    cluster.kill(1);
    cluster.restart(1).await;
    let client = cluster.client(1);

    // The restart did not bootstrap again: the same key file, and the old admin key (which
    // `client` carries) still authenticates.
    assert_eq!(std::fs::read(&key_file).unwrap(), key_file_before);
    for ((created, state), revision) in keys.into_iter().zip(revisions) {
        let got = client.get_key(&created.key.id).await.unwrap();
        assert_eq!(got.value.state, state, "key {}", created.key.name);
        assert_eq!(got.revision, revision, "key {}", created.key.name);
    }

    assert!(client.verify(&verify_req(&kept.secret, None)).await.unwrap().valid);
    assert_invalid(&client, &off.secret, "disabled").await;
    assert_invalid(&client, &gone.secret, "deleted").await;

    // The ledger goes on where it stopped.
    let next = client.create_key(&new_key("after")).await.unwrap();
    assert!(next.index > last, "index {} after a restart at {last}", next.index);
    assert!(client.verify(&verify_req(&next.value.secret, None)).await.unwrap().valid);
}
