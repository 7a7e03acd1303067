//! `GET /v1/verify/auth-request` (nginx `auth_request`, Envoy `ext_authz`): the router of a real
//! single node driven in process. Each verdict's status and headers, the key in either header,
//! permissions from the query and from the proxy, any path below the route, and the counters it
//! shares with `POST /v1/verify`.

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

use common::Node;

impl Node {
    async fn send(&self, request: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        (parts.status, parts.headers, bytes.to_vec())
    }

    /// A GET of `path` with the given headers.
    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut request = Request::builder().method("GET").uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let request = Request::builder()
            .method("POST")
            .uri(path)
            .header("authorization", format!("Bearer {}", self.admin))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let (status, _, bytes) = self.send(request).await;
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn metric(&self, line_start: &str) -> f64 {
        let (_, _, body) = self.get("/metrics", &[]).await;
        let text = String::from_utf8(body).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(line_start).and_then(|rest| rest.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {line_start} in\n{text}"))
    }
}

fn error_code(body: &[u8]) -> String {
    let value: Value = serde_json::from_slice(body).expect("a JSON error body");
    value["error"]["code"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_are_statuses_and_the_identity_comes_back_in_headers() {
    let n = Node::start().await;
    let bearer = format!("Bearer {}", n.admin);

    // Valid: 200, empty body, the identity in headers; the same in either header and below the path.
    for (path, header) in [
        ("/v1/verify/auth-request", ("authorization", bearer.as_str())),
        ("/v1/verify/auth-request", ("authorization", &format!("bEaReR {}", n.admin))),
        ("/v1/verify/auth-request", ("x-api-key", n.admin.as_str())),
        ("/v1/verify/auth-request/api/items/7?page=2", ("authorization", bearer.as_str())),
        // Envoy's prefix before a request for `/`.
        ("/v1/verify/auth-request/", ("authorization", bearer.as_str())),
    ] {
        let (status, headers, body) = n.get(path, &[header]).await;
        assert_eq!(status, StatusCode::OK, "{path} {:?}: {}", header.0, String::from_utf8_lossy(&body));
        assert!(body.is_empty(), "a 200 has no body");
        assert!(headers["x-keyledger-key-id"].to_str().unwrap().starts_with("key_"), "{headers:?}");
        assert_eq!(headers["x-keyledger-identity-kind"], "user");
        assert!(!headers["x-keyledger-identity-id"].is_empty());
        assert_eq!(headers["x-keyledger-identity-name"], "admin");
        assert_eq!(headers["x-keyledger-account"], "default");
    }

    // No key, a malformed key, an altered key: 401 with `WWW-Authenticate: Bearer`.
    let altered = {
        let mut chars: Vec<char> = n.admin.chars().collect();
        let at = chars.len() - 12;
        chars[at] = if chars[at] == 'a' { 'b' } else { 'a' };
        chars.into_iter().collect::<String>()
    };
    for headers in [vec![], vec![("authorization", "Bearer nonsense")], vec![("x-api-key", altered.as_str())]] {
        let (status, answer, body) = n.get("/v1/verify/auth-request", &headers).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{headers:?}");
        assert_eq!(answer["www-authenticate"], "Bearer");
        assert_eq!(error_code(&body), "unauthenticated");
        assert!(answer.get("x-keyledger-key-id").is_none());
        let message = String::from_utf8_lossy(&body);
        assert!(!message.contains(&altered), "the key is never echoed: {message}");
    }
    // Two different keys: refused, not one of them picked.
    let (status, _, _) =
        n.get("/v1/verify/auth-request", &[("authorization", &bearer), ("x-api-key", altered.as_str())]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Basic auth for the upstream beside X-Api-Key for keyledger is fine.
    let (status, _, _) =
        n.get("/v1/verify/auth-request", &[("authorization", "Basic dTpw"), ("x-api-key", n.admin.as_str())]).await;
    assert_eq!(status, StatusCode::OK);
    n.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_from_the_query_and_the_proxy_must_both_hold() {
    let n = Node::start().await;
    let (status, _) = n.post("/v1/namespaces", json!({"name": "payments"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = n.post("/v1/namespaces", json!({"name": "billing"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let sa = json!({"name": "payments-reader", "namespace": "payments", "permission": "read"});
    let (status, created) = n.post("/v1/service-accounts", sa).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let owner = json!({"kind": "service_account", "id": created["id"]});
    let (status, key) = n.post("/v1/keys", json!({"name": "k", "owner": owner, "expires_in": "1d"})).await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let secret = key["secret"].as_str().unwrap();
    let auth = format!("Bearer {secret}");
    let ask = |query: &'static str, proxy: Option<&'static str>| {
        let auth = auth.clone();
        let n = &n;
        async move {
            let mut headers = vec![("authorization", auth.as_str())];
            if let Some(p) = proxy {
                headers.push(("x-keyledger-permission", p));
            }
            let (status, answer, body) = n.get(&format!("/v1/verify/auth-request{query}"), &headers).await;
            (status, answer, body)
        }
    };

    let (status, headers, _) = ask("?permission=namespace:payments:read", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-keyledger-identity-kind"], "service_account");
    assert_eq!(headers["x-keyledger-identity-name"], "payments-reader");
    let (status, headers, body) = ask("?permission=namespace:payments:write", None).await;
    assert_eq!((status, error_code(&body).as_str()), (StatusCode::FORBIDDEN, "permission_denied"));
    assert!(headers.get("x-keyledger-key-id").is_none(), "a 403 hands nothing upstream");
    let (status, _, _) = ask("", Some("namespace:billing:read")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A permission in the query cannot replace the one the proxy requires.
    let (status, _, _) = ask("/anything?permission=namespace:payments:read", Some("namespace:billing:read")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = ask("?permission=namespace:payments:read", Some("namespace:payments:read")).await;
    assert_eq!(status, StatusCode::OK);
    // The permission is read exactly as POST /v1/verify reads it.
    let (status, _, body) = ask("?permission=payments:read", None).await;
    assert_eq!((status, error_code(&body).as_str()), (StatusCode::BAD_REQUEST, "invalid_argument"));
    let (status, _, body) = ask("?min_index=x", None).await;
    assert_eq!((status, error_code(&body).as_str()), (StatusCode::BAD_REQUEST, "invalid_argument"));
    let (status, _, _) = ask("?min_index=1", None).await;
    assert_eq!(status, StatusCode::OK);

    // Disabled: 401 from then on.
    let key_id = key["key"]["id"].as_str().unwrap();
    let (status, _) = n.post(&format!("/v1/keys/{key_id}/disable"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = ask("", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(String::from_utf8_lossy(&body).contains("disabled"), "{}", String::from_utf8_lossy(&body));
    n.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_requests_count_as_verifications() {
    let n = Node::start().await;
    let valid = "keyledger_verifications_total{result=\"valid\"}";
    let malformed = "keyledger_verifications_total{result=\"malformed\"}";
    let (valid_before, malformed_before) = (n.metric(valid).await, n.metric(malformed).await);
    let timed_before = n.metric("keyledger_verify_duration_seconds_count").await;
    n.get("/v1/verify/auth-request", &[("x-api-key", n.admin.as_str())]).await;
    n.get("/v1/verify/auth-request/x", &[("x-api-key", n.admin.as_str())]).await;
    n.get("/v1/verify/auth-request", &[]).await;
    assert_eq!(n.metric(valid).await, valid_before + 2.0);
    assert_eq!(n.metric(malformed).await, malformed_before + 1.0);
    assert_eq!(n.metric("keyledger_verify_duration_seconds_count").await, timed_before + 3.0);
    n.node.shutdown().await;
}
