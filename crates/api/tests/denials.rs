//! Refused writes are written down: the router of a real single node (storage, Raft) driven
//! in-process, and the ledger read afterwards for its `denied` events. Only refusals for
//! authorization count — `permission_denied`, and `not_found` for an object that exists but is
//! hidden from the caller — not a missing object or a refusal on the object's state.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use keyledger_model::{Actor, EventBody, KeyDigest};
use serde_json::{json, Value};
use tower::ServiceExt;

use common::Node;

impl Node {
    async fn call(&self, key: &str, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let request = Request::builder().method(method).uri(path).header("authorization", format!("Bearer {key}"));
        let request = match body {
            Some(body) => request.header("content-type", "application/json").body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        };
        let response = self.router.clone().oneshot(request.unwrap()).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// `(actor, operation, target)` of every `denied` event in the ledger.
    fn denials(&self) -> Vec<(Actor, String, String)> {
        let head = self.node.ledger().state().head().seq;
        self.node
            .ledger()
            .entries(1, head)
            .map(|entry| entry.unwrap().event)
            .filter_map(|event| match event.body {
                EventBody::Denied { operation, target, .. } => Some((event.actor, operation, target)),
                _ => None,
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_refusals_become_denied_events_and_nothing_else_does() {
    let n = Node::start().await;
    let admin_key = n.node.ledger().state().key_by_digest(&KeyDigest::of(&n.admin)).unwrap().id.to_string();

    let (status, reader) = n.call(&n.admin, "POST", "/v1/users", Some(json!({"name": "reader", "role": "read"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{reader}");
    // The reader mints its own key with its enrollment code.
    let body = json!({"code": reader["enrollment_code"], "name": "r", "expires_in": "1d"});
    let (status, created) = n.call(&n.admin, "POST", "/v1/enroll", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let reader_secret = created["secret"].as_str().unwrap().to_string();
    let reader_key = created["key"]["id"].as_str().unwrap().to_string();

    // Refused for authorization: a hidden key (404) and a forbidden change (403).
    let (status, _) = n.call(&reader_secret, "DELETE", &format!("/v1/keys/{admin_key}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = n.call(&reader_secret, "POST", "/v1/users", Some(json!({"name": "x", "role": "read"}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Not refusals for authorization: a key that does not exist, and a locked key.
    let last = if reader_key.ends_with('a') { 'b' } else { 'a' };
    let missing = format!("{}{last}", &reader_key[..reader_key.len() - 1]);
    let (status, _) = n.call(&reader_secret, "DELETE", &format!("/v1/keys/{missing}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = n.call(&n.admin, "POST", &format!("/v1/keys/{reader_key}/lock"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, error) = n.call(&n.admin, "DELETE", &format!("/v1/keys/{reader_key}"), None).await;
    assert_eq!((status, &error["error"]["code"]), (StatusCode::CONFLICT, &json!("key_locked")));

    assert!(n.denials().is_empty(), "denials are batched, not written on the request path");
    n.node.flush_activity().await;
    let reader_id = reader["user"]["id"].as_str().unwrap().parse().unwrap();
    let reader_actor = Actor::User { id: reader_id, key: reader_key.parse().unwrap() };
    let mut denials = n.denials();
    denials.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        denials,
        [
            (reader_actor, "key.delete".to_string(), admin_key.clone()),
            (reader_actor, "user.create".to_string(), "x".to_string()),
        ]
    );
    n.node.shutdown().await;
}
