//! `POST /v1/keys/batch`: each item is created exactly as `POST /v1/keys` would create it (once,
//! with a secret that verifies, or refused alone with the same status and code), a malformed
//! item refuses the whole request and creates nothing, and a retry with the same
//! `Idempotency-Key` creates nothing new.

use keyledger_client::{AuditQuery, Client, ListKeys};
use keyledger_wire as wire;
use serde_json::{json, Value};

use crate::util::{account_sa, expect_refused, mode_of, new_key, succeeded, user_with_key, verify_req, Cluster};

/// Sends a raw batch as `secret`, with `idempotency_key` if given; returns status and body.
async fn send(cluster: &Cluster, secret: &str, body: &Value, idempotency_key: Option<&str>) -> (u16, Value) {
    let mut request =
        cluster.http().post(format!("{}/v1/keys/batch", cluster.node(1).url())).bearer_auth(secret).json(body);
    if let Some(key) = idempotency_key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Every key the admin can list, as `(id, name)`.
async fn all_keys(admin: &Client) -> Vec<(String, String)> {
    let query = ListKeys { limit: Some(1000), ..ListKeys::default() };
    admin.list_keys(&query).await.unwrap().keys.into_iter().map(|k| (k.id, k.name)).collect()
}

/// The kinds of the events written after `seq`, leaving out batched `used` records (the
/// tests' own requests are use).
async fn written_since(admin: &Client, seq: u64) -> Vec<String> {
    let query = AuditQuery { after: Some(seq), ..Default::default() };
    let events = admin.audit_events(&query).await.unwrap().events;
    events.into_iter().map(|e| e.kind).filter(|k| k != "used").collect()
}

fn owned_by(name: &str, kind: wire::OwnerKind, id: &str) -> wire::CreateKeyRequest {
    wire::CreateKeyRequest { owner: Some(wire::OwnerRef { kind, id: id.into() }), ..new_key(name) }
}

#[tokio::test]
async fn a_batch_creates_each_key_once_and_an_item_over_its_owners_limit_fails_alone() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let limit = wire::UpdateSettingsRequest { max_keys_per_service_account: Some(1), ..Default::default() };
    admin.update_settings(&limit).await.unwrap();
    let free = admin.create_service_account(&account_sa("free", "read")).await.unwrap().value;
    let full = admin.create_service_account(&account_sa("full", "read")).await.unwrap().value;
    admin.create_key(&owned_by("already", wire::OwnerKind::ServiceAccount, &full.id)).await.unwrap();
    let before = all_keys(&admin).await;

    let sa = wire::OwnerKind::ServiceAccount;
    let keys = vec![
        new_key("mine"),
        owned_by("for-free", sa, &free.id),
        owned_by("one-too-many", sa, &full.id),
        owned_by("nobody", sa, "not-an-id"),
        wire::CreateKeyRequest { never_expires: Some(true), expires_in: None, ..new_key("forever") },
    ];
    let written = admin.create_keys(&wire::CreateKeysRequest { keys }).await.unwrap();
    let results = written.value.results;
    let statuses: Vec<u16> = results.iter().map(|r| r.status).collect();
    let codes: Vec<Option<&str>> = results.iter().map(|r| r.error.as_ref().map(|e| e.code.as_str())).collect();
    // The account's policy refuses never-expiring keys by default: at apply time, like a single create.
    assert_eq!(statuses, [201, 201, 409, 404, 400], "{results:?}");
    assert_eq!(codes, [None, None, Some("limit_exceeded"), Some("not_found"), Some("invalid_argument")]);

    // Each created key exists once, under its name, and its secret verifies.
    let after = all_keys(&admin).await;
    assert_eq!(after.len(), before.len() + 2, "{after:?}");
    for (result, name) in results[..2].iter().zip(["mine", "for-free"]) {
        let key = result.key.as_ref().expect("a created key");
        assert_eq!(key.name, name);
        assert_eq!(after.iter().filter(|(id, _)| *id == key.id).count(), 1);
        let secret = result.secret.as_deref().expect("its secret");
        let verdict = admin.verify(&verify_req(secret, Some(written.index))).await.unwrap();
        assert_eq!((verdict.valid, verdict.key_id.as_deref()), (true, Some(key.id.as_str())));
    }
    assert!(results[2..].iter().all(|r| r.key.is_none() && r.secret.is_none()));
}

#[tokio::test]
async fn a_malformed_item_refuses_the_whole_batch_and_creates_nothing() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let head = cluster.own_ledger_head(1).await.unwrap();
    let before = all_keys(&admin).await;
    let good = json!({"name": "fine", "expires_in": "30d"});
    let too_many: Vec<Value> = (0..=wire::MAX_KEYS_PER_BATCH).map(|_| good.clone()).collect();
    let cases = [
        (json!({"keys": [good, good, {"name": "bad", "expires_in": "soon"}]}), Some("keys[2]")),
        (json!({"keys": [good, {"name": "x", "colour": "red"}]}), Some("keys[1]")),
        (json!({"keys": [good, {"name": "x", "expires_in": "1d", "never_expires": true}]}), Some("keys[1]")),
        (json!({"keys": [{"description": "no name"}]}), Some("keys[0]")),
        (json!({"keys": []}), None),
        (json!({"keys": too_many}), None),
        (json!({"key": [good]}), None),
    ];
    for (body, names) in cases {
        let (status, answer) = send(&cluster, cluster.admin_key(), &body, None).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("invalid_argument")), "{answer}");
        if let Some(item) = names {
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains(item), "the message names {item}: {message}");
        }
    }
    assert_eq!(all_keys(&admin).await, before);
    assert_eq!(written_since(&admin, head.seq).await, Vec::<String>::new(), "nothing was written");
}

#[tokio::test]
async fn a_caller_without_permission_gets_what_single_creates_get() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let bot = admin.create_service_account(&account_sa("bot", "admin")).await.unwrap().value;
    let (_, reader_secret) = user_with_key(&admin, "reader", "read").await;
    let reader = cluster.client_as(&reader_secret);
    let admin_id = admin.verify(&verify_req(cluster.admin_key(), None)).await.unwrap().identity.unwrap().id;
    let keys = vec![
        new_key("own"),
        owned_by("for-the-bot", wire::OwnerKind::ServiceAccount, &bot.id),
        owned_by("for-the-owner", wire::OwnerKind::User, &admin_id),
    ];
    let batch = reader.create_keys(&wire::CreateKeysRequest { keys: keys.clone() }).await.unwrap().value.results;
    assert!(batch[1..].iter().all(|r| r.status >= 400), "{batch:?}");
    for (item, request) in batch.iter().zip(&keys) {
        let single = match reader.create_key(request).await {
            Ok(_) => (201, None),
            Err(keyledger_client::ClientError::Api { status, error }) => (status, Some(error.code)),
            Err(other) => panic!("{other}"),
        };
        let got = (item.status, item.error.as_ref().map(|e| e.code.clone()));
        assert_eq!(got, single, "item {} as a batch and alone", request.name);
    }
    // Without a key at all, the batch is refused as any authenticated write is.
    let anonymous = Client::new(cluster.node(1).url(), None).unwrap();
    expect_refused(anonymous.create_keys(&wire::CreateKeysRequest { keys }).await, 401, "unauthenticated");
}

#[tokio::test]
async fn a_retried_batch_with_the_same_idempotency_key_creates_nothing_new() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let body = json!({"keys": [{"name": "ci-1", "expires_in": "30d"}, {"name": "ci-2", "expires_in": "30d"}]});
    let (status, first) = send(&cluster, cluster.admin_key(), &body, Some("provision-1")).await;
    assert_eq!(status, 200, "{first}");
    let ids: Vec<&str> =
        first["results"].as_array().unwrap().iter().map(|r| r["key"]["id"].as_str().unwrap()).collect();
    let after_first = all_keys(&admin).await;
    let head = cluster.own_ledger_head(1).await.unwrap();

    // The retry answers each item as a retried single create does: applied, no secret again.
    let (status, retry) = send(&cluster, cluster.admin_key(), &body, Some("provision-1")).await;
    assert_eq!(status, 200, "{retry}");
    for (result, id) in retry["results"].as_array().unwrap().iter().zip(&ids) {
        assert_eq!((result["status"].as_u64(), result["error"]["code"].as_str()), (Some(409), Some("conflict")));
        let message = result["error"]["message"].as_str().unwrap();
        assert!(message.contains(id), "the answer names the key already created: {message}");
    }
    assert!(!retry.to_string().contains("klk_"), "no secret in the retry's answer: {retry}");

    // The same key on another batch is refused item by item; nothing is created.
    let other = json!({"keys": [{"name": "other", "expires_in": "30d"}]});
    let (status, reused) = send(&cluster, cluster.admin_key(), &other, Some("provision-1")).await;
    assert_eq!((status, reused["results"][0]["error"]["code"].as_str()), (200, Some("conflict")), "{reused}");
    assert_eq!(all_keys(&admin).await, after_first);
    assert_eq!(written_since(&admin, head.seq).await, Vec::<String>::new(), "the retries wrote nothing");
}

#[tokio::test]
async fn apikey_create_batch_writes_the_secrets_to_a_new_file_and_names_what_failed() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let requests = cluster.dir().join("batch.json");
    let body = json!({"keys": [{"name": "a", "expires_in": "30d"}, {"name": "b", "expires_in": "30d"}]});
    std::fs::write(&requests, body.to_string()).unwrap();
    let secrets = cluster.dir().join("batch.keys");
    let args =
        ["apikey", "create-batch", "--requests", requests.to_str().unwrap(), "--file", secrets.to_str().unwrap()];
    let out = succeeded(&cluster.cli(&[&args[..], &["--output", "json"]].concat()), "create-batch");
    let shown: wire::CreatedKeys = serde_json::from_str(&out).unwrap();
    assert!(!out.contains("klk_"), "the secrets went to the file, not the screen: {out}");
    assert_eq!(mode_of(&secrets), 0o600);
    let lines = std::fs::read_to_string(&secrets).unwrap();
    let pairs: Vec<(&str, &str)> = lines.lines().map(|line| line.split_once(' ').unwrap()).collect();
    assert_eq!(pairs.len(), 2, "{lines}");
    for ((id, secret), result) in pairs.iter().zip(&shown.results) {
        assert_eq!(Some(*id), result.key.as_ref().map(|k| k.id.as_str()));
        let verdict = admin.verify(&verify_req(secret, None)).await.unwrap();
        assert_eq!(verdict.key_id.as_deref(), Some(*id));
    }

    // An item refused alone: the table names its error, and the command fails.
    let body = json!({"keys": [{"name": "c", "expires_in": "30d"}, {"name": "d", "never_expires": true}]});
    std::fs::write(&requests, body.to_string()).unwrap();
    let out = cluster.cli(&["apikey", "create-batch", "--requests", requests.to_str().unwrap()]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{table}");
    assert!(table.contains("klk_") && table.contains("(invalid_argument)"), "{table}");
}
