//! Refused requests: each gets its status and a JSON error body with a stable code, and
//! changes nothing. Driven with plain HTTP, since these are requests the typed client would
//! not send.

use keyledger_wire as wire;
use reqwest::{Method, RequestBuilder};

use crate::util::{change_one_char, new_key, verify_req, Cluster};

/// A request to node 1 of `cluster`; `auth` is the whole `Authorization` header, if any.
fn request(cluster: &Cluster, method: Method, path: &str, auth: Option<&str>) -> RequestBuilder {
    let builder = cluster.http().request(method, format!("{}{path}", cluster.node(1).url()));
    match auth {
        Some(value) => builder.header("authorization", value),
        None => builder,
    }
}

fn admin(cluster: &Cluster) -> String {
    format!("Bearer {}", cluster.admin_key())
}

/// Sends `req` and asserts the answer is `status` with a JSON error body carrying `code`, a
/// message and a request id. Returns the error for further checks.
async fn expect_error(req: RequestBuilder, status: u16, code: &str) -> wire::ErrorDetail {
    let resp = req.send().await.expect("an answer");
    let got = resp.status().as_u16();
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let text = resp.text().await.expect("a body");
    assert_eq!(got, status, "body: {text}");
    assert!(content_type.starts_with("application/json"), "content type {content_type:?}, body: {text}");
    let body: wire::ErrorBody =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not an error body ({e}): {text}"));
    assert_eq!(body.error.code, code, "body: {text}");
    assert!(!body.error.message.trim().is_empty(), "empty message: {text}");
    assert!(body.error.request_id.as_deref().is_some_and(|id| !id.is_empty()), "no request id: {text}");
    body.error
}

/// Number of keys node 1 lists.
async fn key_count(cluster: &Cluster) -> usize {
    let list = cluster.client(1).list_keys(&Default::default()).await.unwrap();
    list.keys.len()
}

#[tokio::test]
async fn admin_endpoints_need_a_valid_bearer_key() {
    // 21 refusals from one address: more than the default limit of failed authentications
    // (`hostile` tests the limit itself).
    let cluster = Cluster::start_with(1, &["--auth-failures-per-minute", "100"]).await;
    let client = cluster.client(1);
    let disabled = client.create_key(&new_key("disabled")).await.unwrap().value;
    client.disable_key(&disabled.key.id).await.unwrap();
    let deleted = client.create_key(&new_key("deleted")).await.unwrap().value;
    client.delete_key(&deleted.key.id).await.unwrap();
    let altered = change_one_char(cluster.admin_key(), cluster.admin_key().len() / 2);
    let count = key_count(&cluster).await;

    let refused = [
        None,
        Some("Bearer".to_owned()),
        Some("Bearer not-a-key".to_owned()),
        Some(format!("Basic {}", cluster.admin_key())),
        Some(format!("Bearer {altered}")),
        Some(format!("Bearer {}", disabled.secret)),
        Some(format!("Bearer {}", deleted.secret)),
    ];
    for auth in &refused {
        expect_error(request(&cluster, Method::GET, "/v1/keys", auth.as_deref()), 401, "unauthenticated").await;
        expect_error(request(&cluster, Method::GET, "/v1/cluster", auth.as_deref()), 401, "unauthenticated").await;
        let create = request(&cluster, Method::POST, "/v1/keys", auth.as_deref()).json(&new_key("sneaky"));
        expect_error(create, 401, "unauthenticated").await;
    }
    assert_eq!(key_count(&cluster).await, count, "an unauthenticated create wrote something");

    // Verification needs no key at all.
    let verify = request(&cluster, Method::POST, "/v1/verify", None)
        .json(&verify_req(cluster.admin_key(), None))
        .send()
        .await
        .unwrap();
    assert_eq!(verify.status(), 200);
}

#[tokio::test]
async fn unknown_ids_and_ids_of_the_wrong_form_are_not_found() {
    let cluster = Cluster::single().await;
    let auth = admin(&cluster);
    let real = cluster.client(1).create_key(&new_key("real")).await.unwrap().value.key.id;
    // Same form as a real id, last character changed: well-formed, but no such key.
    let unknown = change_one_char(&real, real.len() - 1);

    for id in [unknown.as_str(), "not-an-id", "key_", "0"] {
        expect_error(request(&cluster, Method::GET, &format!("/v1/keys/{id}"), Some(&auth)), 404, "not_found").await;
        for action in ["enable", "disable"] {
            let path = format!("/v1/keys/{id}/{action}");
            expect_error(request(&cluster, Method::POST, &path, Some(&auth)), 404, "not_found").await;
        }
        let path = format!("/v1/keys/{id}");
        expect_error(request(&cluster, Method::DELETE, &path, Some(&auth)), 404, "not_found").await;
    }
    // The real key was not touched by any of it.
    assert_eq!(cluster.client(1).get_key(&real).await.unwrap().value.state, "enabled");
}

#[tokio::test]
async fn bad_bodies_are_invalid_arguments_and_change_nothing() {
    let cluster = Cluster::single().await;
    let auth = admin(&cluster);
    let count = key_count(&cluster).await;

    let bad_creates = [
        "{not json".to_owned(),
        "[]".to_owned(),
        "{}".to_owned(),                                                       // no name
        r#"{"name":"x","expires_in":"30d","colour":"red"}"#.to_owned(),        // unknown field
        r#"{"name":"","expires_in":"30d"}"#.to_owned(),                        // empty name
        format!(r#"{{"name":"{}","expires_in":"30d"}}"#, "n".repeat(101)),     // name too long
        r#"{"name":"x","expires_in":"soon"}"#.to_owned(),                      // not a duration
        r#"{"name":"x","expires_in":"30d","never_expires":"yes"}"#.to_owned(), // wrong type
    ];
    for body in &bad_creates {
        let req = request(&cluster, Method::POST, "/v1/keys", Some(&auth))
            .header("content-type", "application/json")
            .body(body.clone());
        let error = expect_error(req, 400, "invalid_argument").await;
        assert!(!error.message.is_empty(), "{body}");
    }
    assert_eq!(key_count(&cluster).await, count, "a refused create wrote something");

    let bad_verifies = ["{not json", r#"{"key":"klk_x","extra":1}"#, r#"{"key":42}"#];
    for body in bad_verifies {
        let req =
            request(&cluster, Method::POST, "/v1/verify", None).header("content-type", "application/json").body(body);
        expect_error(req, 400, "invalid_argument").await;
    }
}

#[tokio::test]
async fn bodies_over_one_mib_are_refused_with_413() {
    let cluster = Cluster::single().await;
    let auth = admin(&cluster);
    let count = key_count(&cluster).await;

    let big = format!(r#"{{"name":"x","expires_in":"30d","description":"{}"}}"#, "d".repeat(1024 * 1024));
    let req =
        request(&cluster, Method::POST, "/v1/keys", Some(&auth)).header("content-type", "application/json").body(big);
    expect_error(req, 413, "payload_too_large").await;

    let big_verify = format!(r#"{{"key":"klk_{}"}}"#, "a".repeat(1024 * 1024));
    let req =
        request(&cluster, Method::POST, "/v1/verify", None).header("content-type", "application/json").body(big_verify);
    expect_error(req, 413, "payload_too_large").await;

    // The node is still serving, and nothing was written.
    assert_eq!(key_count(&cluster).await, count);
}

#[tokio::test]
async fn a_deleted_key_cannot_be_enabled_or_disabled() {
    let cluster = Cluster::single().await;
    let auth = admin(&cluster);
    let client = cluster.client(1);
    let created = client.create_key(&new_key("doomed")).await.unwrap().value;
    let id = &created.key.id;
    client.delete_key(id).await.unwrap();
    let revision = client.get_key(id).await.unwrap().revision;

    for action in ["enable", "disable"] {
        let path = format!("/v1/keys/{id}/{action}");
        expect_error(request(&cluster, Method::POST, &path, Some(&auth)), 409, "conflict").await;
    }

    let after = client.get_key(id).await.unwrap();
    assert_eq!(after.value.state, "deleted");
    assert_eq!(after.revision, revision, "a refused change moved the revision");
    let answer = client.verify(&verify_req(&created.secret, None)).await.unwrap();
    assert_eq!(answer.code.as_deref(), Some("deleted"), "{answer:?}");
}

#[tokio::test]
async fn a_min_index_beyond_any_ledger_position_is_an_invalid_argument_not_a_wait() {
    let cluster = Cluster::single().await;
    let url = format!("{}/v1/verify", cluster.node(1).url());
    let body = serde_json::json!({"key": cluster.admin_key(), "min_index": 1u64 << 63});
    let error = expect_error(cluster.http().post(&url).json(&body), 400, "invalid_argument").await;
    assert!(error.message.contains("min_index"), "{}", error.message);
    // The largest position still waits its bounded time and answers `503`, as documented.
    let body = serde_json::json!({"key": cluster.admin_key(), "min_index": i64::MAX});
    expect_error(cluster.http().post(&url).json(&body), 503, "unavailable").await;
}
