//! One node: bootstrap, the whole key lifecycle, listing, reading and verification answers.

use std::collections::HashSet;

use keyledger_client::ListKeys;
use keyledger_wire as wire;

use crate::util::{change_one_char, mode_of, new_key, verify_req, Cluster, BOOTSTRAP_KEY_FILE};

/// The bootstrap key file holds the secret and a newline, only its owner can read it, the log
/// names the file but never prints the secret, and the key authenticates as `admin` (owner)
/// of account `default`.
#[tokio::test]
async fn bootstrap_writes_a_private_admin_key_file_and_never_logs_the_secret() {
    let cluster = Cluster::single().await;
    let node = cluster.node(1);
    let path = node.data_dir().join(BOOTSTRAP_KEY_FILE);

    assert_eq!(mode_of(&path), 0o600, "mode of {}", path.display());
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, format!("{}\n", cluster.admin_key()), "the file holds the secret and a newline, nothing else");
    assert!(cluster.admin_key().starts_with("klk_"), "secret {:?}", cluster.admin_key());

    let log = node.log();
    assert!(log.contains(BOOTSTRAP_KEY_FILE), "the log should name the key file:\n{log}");
    assert!(!log.contains(cluster.admin_key()), "the log contains the bootstrap secret");

    let answer = cluster.client(1).verify(&verify_req(cluster.admin_key(), None)).await.unwrap();
    assert!(answer.valid, "{answer:?}");
    let identity = answer.identity.expect("a valid answer names the identity");
    assert_eq!((identity.kind, identity.name.as_str()), (wire::OwnerKind::User, "admin"));
    assert_eq!(answer.account.as_deref(), Some("default"));

    // The key is good for the admin API too, and the node reports itself up and leading.
    let status = cluster.client(1).cluster_status().await.unwrap();
    assert_eq!((status.node_id, status.leader), (1, Some(1)));
    cluster.client(1).health().await.unwrap();
}

/// create → valid, disable → `disabled`, enable → valid, delete → `deleted`; each write is
/// acknowledged with a later ledger index, and the key's revision follows its state changes.
#[tokio::test]
async fn key_lifecycle_is_reflected_in_verification() {
    let cluster = Cluster::single().await;
    let client = cluster.client(1);

    let created = client.create_key(&new_key("ci")).await.unwrap();
    let key = &created.value.key;
    let secret = &created.value.secret;
    assert!(secret.starts_with("klk_"), "secret {secret:?}");
    assert_eq!(key.state, "enabled");
    assert_eq!(key.name, "ci");
    assert_eq!(key.account, "default");
    assert_eq!(key.owner.name, "admin", "the owner defaults to the caller");
    assert_eq!(key.hint, secret[secret.len() - 4..], "the hint is the last 4 characters");
    assert!(key.expires_at.is_some(), "created with expires_in 30d");
    assert!(created.index > 0);

    let valid = client.verify(&verify_req(secret, None)).await.unwrap();
    assert!(valid.valid, "{valid:?}");
    assert_eq!(valid.key_id.as_deref(), Some(key.id.as_str()));
    let identity = valid.identity.as_ref().expect("identity on a valid answer");
    assert_eq!((identity.kind, identity.name.as_str()), (wire::OwnerKind::User, "admin"));
    assert_eq!(valid.account.as_deref(), Some("default"));

    let disabled = client.disable_key(&key.id).await.unwrap();
    assert_eq!(disabled.value.state, "disabled");
    assert!(disabled.index > created.index, "{} then {}", created.index, disabled.index);
    assert!(disabled.value.revision > key.revision, "a state change moves the revision");
    assert_invalid(&client, secret, "disabled").await;

    let enabled = client.enable_key(&key.id).await.unwrap();
    assert_eq!(enabled.value.state, "enabled");
    assert!(enabled.index > disabled.index);
    assert!(client.verify(&verify_req(secret, None)).await.unwrap().valid);

    let deleted = client.delete_key(&key.id).await.unwrap();
    assert!(deleted.index > enabled.index);
    assert_invalid(&client, secret, "deleted").await;

    // The metadata stays: a deleted key can still be read.
    let after = client.get_key(&key.id).await.unwrap();
    assert_eq!(after.value.state, "deleted");
}

/// The list shows every key, filters by state and pages with a cursor without gaps or repeats.
#[tokio::test]
async fn list_filters_by_state_and_pages_with_a_cursor() {
    let cluster = Cluster::single().await;
    let client = cluster.client(1);

    let mut ours = Vec::new();
    for name in ["a", "b", "c", "d"] {
        ours.push(client.create_key(&new_key(name)).await.unwrap().value.key.id);
    }
    client.disable_key(&ours[1]).await.unwrap();

    let all = client.list_keys(&ListKeys::default()).await.unwrap();
    let all_ids: HashSet<String> = all.keys.iter().map(|k| k.id.clone()).collect();
    assert_eq!(all.keys.len(), 5, "the bootstrap key and ours: {all:?}");
    assert!(ours.iter().all(|id| all_ids.contains(id)), "{all:?}");
    assert_eq!(all.next_cursor, None);

    let disabled = client.list_keys(&ListKeys { state: Some("disabled".into()), ..Default::default() }).await.unwrap();
    let disabled_ids: Vec<&str> = disabled.keys.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(disabled_ids, [ours[1].as_str()]);

    let mut paged = Vec::new();
    let mut cursor = None;
    for _ in 0..10 {
        let page =
            client.list_keys(&ListKeys { limit: Some(2), cursor: cursor.take(), ..Default::default() }).await.unwrap();
        assert!(page.keys.len() <= 2, "limit 2 gave {}", page.keys.len());
        paged.extend(page.keys.into_iter().map(|k| k.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(paged.len(), 5, "pages: {paged:?}");
    assert_eq!(paged.iter().cloned().collect::<HashSet<_>>(), all_ids);
}

/// `GET /v1/keys/{id}` carries `ETag: "<revision>"`, and neither it nor the list ever shows
/// the secret.
#[tokio::test]
async fn get_has_the_revision_as_etag_and_no_answer_shows_the_secret() {
    let cluster = Cluster::single().await;
    let client = cluster.client(1);
    let created = client.create_key(&new_key("etag")).await.unwrap().value;
    let id = &created.key.id;
    let disabled = client.disable_key(id).await.unwrap().value;

    let url = format!("{}/v1/keys/{id}", cluster.node(1).url());
    let resp = cluster.http().get(&url).bearer_auth(cluster.admin_key()).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let etag = resp.headers().get("etag").expect("an ETag header").to_str().unwrap().to_owned();
    let text = resp.text().await.unwrap();
    let key: wire::Key = serde_json::from_str(&text).unwrap();
    assert_eq!(etag, format!("\"{}\"", key.revision));
    assert_eq!(key.revision, disabled.revision);
    assert_eq!(key.state, "disabled");
    assert!(!text.contains(&created.secret), "GET shows the secret: {text}");

    let typed = client.get_key(id).await.unwrap();
    assert_eq!(typed.revision, key.revision);

    let list_url = format!("{}/v1/keys", cluster.node(1).url());
    let list = cluster.http().get(&list_url).bearer_auth(cluster.admin_key()).send().await.unwrap();
    assert_eq!(list.status(), 200);
    let list_text = list.text().await.unwrap();
    assert!(list_text.contains(id.as_str()));
    assert!(!list_text.contains(&created.secret), "the list shows a secret: {list_text}");
    assert!(!list_text.contains(cluster.admin_key()), "the list shows the bootstrap secret");
}

/// Strings that are not keys of this system are `malformed`; a real key with one character
/// changed is refused too (`malformed` by its checksum, or at least `not_found`).
#[tokio::test]
async fn verify_rejects_malformed_and_altered_keys() {
    let cluster = Cluster::single().await;
    let client = cluster.client(1);
    let secret = client.create_key(&new_key("real")).await.unwrap().value.secret;
    let body = &secret["klk_".len()..];
    let mid = secret.len() / 2;

    let malformed = [
        "not-a-key".to_owned(),
        format!("kly_{body}"),                                // wrong prefix
        secret[..secret.len() - 1].to_owned(),                // one character short
        format!("{secret}A"),                                 // one character long
        format!("{}!{}", &secret[..mid], &secret[mid + 1..]), // a character outside the alphabet
    ];
    for candidate in &malformed {
        assert_invalid(&client, candidate, "malformed").await;
    }

    let altered = change_one_char(&secret, mid);
    assert_ne!(altered, secret);
    let answer = client.verify(&verify_req(&altered, None)).await.unwrap();
    assert!(!answer.valid, "an altered key verified: {answer:?}");
    assert!(matches!(answer.code.as_deref(), Some("malformed" | "not_found")), "altered key {altered:?}: {answer:?}");

    // The real key is still fine: the refusals above changed nothing.
    assert!(client.verify(&verify_req(&secret, None)).await.unwrap().valid);
}

/// Verifies `secret` and asserts the answer is invalid with `code`.
pub(crate) async fn assert_invalid(client: &keyledger_client::Client, secret: &str, code: &str) {
    let answer = client.verify(&verify_req(secret, None)).await.unwrap();
    assert!(!answer.valid, "{secret:?} verified: {answer:?}");
    assert_eq!(answer.code.as_deref(), Some(code), "{secret:?}: {answer:?}");
}
