//! `Idempotency-Key`: a retried write answers what the first one did and writes nothing new,
//! on whichever node the retry lands.

use serde_json::{json, Value};

use crate::util::{new_key, Cluster};

/// Sends one JSON write with an `Idempotency-Key`; returns status, index header and body.
async fn send(
    cluster: &Cluster,
    node: u64,
    method: reqwest::Method,
    path: &str,
    body: Value,
    key: &str,
) -> (u16, Option<u64>, Value) {
    let response = cluster
        .http()
        .request(method, format!("{}{path}", cluster.node(node).url()))
        .bearer_auth(cluster.admin_key())
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    let index = response.headers().get("x-keyledger-index").and_then(|v| v.to_str().ok()?.parse().ok());
    let body = response.json().await.unwrap_or(Value::Null);
    (status, index, body)
}

#[tokio::test]
async fn a_retried_write_answers_the_first_answer_on_any_node_and_writes_nothing() {
    let cluster = Cluster::start(3).await;
    let admin = cluster.client(1);
    let key = admin.create_key(&new_key("retried")).await.unwrap().value.key;
    let path = format!("/v1/keys/{}/disable", key.id);

    let (status, first_index, first) = send(&cluster, 1, reqwest::Method::POST, &path, json!({}), "retry-1").await;
    assert_eq!(status, 200, "{first}");
    let head_after_first = cluster.own_ledger_head(1).await.unwrap();

    // The same request again, through another node: the same answer, at the same index.
    let (status, index, again) = send(&cluster, 2, reqwest::Method::POST, &path, json!({}), "retry-1").await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(index, first_index);
    assert_eq!(again["revision"], first["revision"]);
    assert_only_use_since(&cluster, head_after_first.seq).await;

    // The same key for a different request is refused.
    let other = format!("/v1/keys/{}/enable", key.id);
    let (status, _, body) = send(&cluster, 3, reqwest::Method::POST, &other, json!({}), "retry-1").await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("conflict")), "{body}");
    assert_eq!(admin.get_key(&key.id).await.unwrap().value.state, "disabled", "the enable did not happen");

    // Without the header nothing is deduplicated.
    let enabled = admin.enable_key(&key.id).await.unwrap();
    assert!(enabled.index > first_index.unwrap());
}

#[tokio::test]
async fn a_retried_create_never_makes_a_second_key_and_never_invents_a_secret() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let before = admin.list_keys(&Default::default()).await.unwrap().keys.len();
    let body = json!({"name": "ci", "expires_in": "30d"});

    let (status, index, first) = send(&cluster, 1, reqwest::Method::POST, "/v1/keys", body.clone(), "create-1").await;
    assert_eq!(status, 201, "{first}");
    let secret = first["secret"].as_str().unwrap().to_string();
    let id = first["key"]["id"].as_str().unwrap().to_string();

    // The secret was shown once; the retry says what happened instead of a different secret.
    let (status, _, retry) = send(&cluster, 1, reqwest::Method::POST, "/v1/keys", body, "create-1").await;
    assert_eq!((status, retry["error"]["code"].as_str()), (409, Some("conflict")), "{retry}");
    let message = retry["error"]["message"].as_str().unwrap();
    assert!(message.contains(&id) && message.contains(&index.unwrap().to_string()), "{message}");
    assert!(!retry.to_string().contains("klk_"), "no secret in the retry's answer");
    assert_eq!(admin.list_keys(&Default::default()).await.unwrap().keys.len(), before + 1);
    assert!(admin.verify(&crate::util::verify_req(&secret, None)).await.unwrap().valid);
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_refused_and_changes_nothing() {
    let cluster = Cluster::single().await;
    let before = cluster.own_ledger_head(1).await.unwrap();
    let long = "k".repeat(256);
    for bad in [long.as_str(), "with space"] {
        let (status, _, body) = send(&cluster, 1, reqwest::Method::POST, "/v1/keys", json!({"name": "x"}), bad).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_argument")), "{body}");
    }
    assert_only_use_since(&cluster, before.seq).await;
}

/// Nothing but batched `used` records (the tests' own requests are use) was written after `seq`.
async fn assert_only_use_since(cluster: &Cluster, seq: u64) {
    let query = keyledger_client::AuditQuery { after: Some(seq), ..Default::default() };
    let events = cluster.client(1).audit_events(&query).await.unwrap().events;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).filter(|k| *k != "used").collect();
    assert!(kinds.is_empty(), "a retry must write nothing, but these were written: {kinds:?}");
}
