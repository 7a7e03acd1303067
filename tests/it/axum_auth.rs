//! `keyledger-axum` (`crates/axum-auth`) against a real node: the layer on a small axum app,
//! driven in process. A valid key reaches the handler with its identity, others are refused in
//! keyledger's error shape, an unreachable address is passed over, and the revocation barrier
//! refuses a disabled key at once even though its verdict is cached.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::Router;
use keyledger_axum::{Authenticated, Config, KeyledgerAuth};
use serde_json::Value;
use tower::ServiceExt;

use crate::util::{namespace_sa, service_account_with_key, verify_req, Cluster};

fn app(auth: &KeyledgerAuth) -> Router {
    let whoami =
        |who: Authenticated| async move { format!("{}:{}:{}", who.identity.name, who.identity.id, who.account) };
    let any_key = Router::new().route("/whoami", get(whoami)).layer(auth.layer());
    let writers = Router::new()
        .route("/payments", get(|| async { "paid" }))
        .layer(auth.require("namespace:payments:write").expect("a permission"));
    any_key.merge(writers)
}

async fn call(app: &Router, path: &str, key: Option<&str>) -> (StatusCode, String) {
    let mut request = Request::builder().uri(path);
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let response = app.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn code(body: &str) -> String {
    let value: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    value["error"]["code"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_layer_admits_valid_keys_and_the_barrier_revokes_a_cached_one_at_once() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    admin.create_namespace("payments").await.unwrap();
    let (sa, writer) = service_account_with_key(&admin, namespace_sa("payments-app", "payments", "write")).await;
    let (_, reader) = service_account_with_key(&admin, namespace_sa("payments-ro", "payments", "read")).await;

    // An address nobody answers first: the layer passes over it to the node.
    let dead = crate::util::free_loopback_url();
    let mut config = Config::new([dead, cluster.node(1).url()]);
    config.cache_ttl = Duration::from_secs(30);
    let auth = KeyledgerAuth::new(config).unwrap();
    let app = app(&auth);

    let (status, body) = call(&app, "/whoami", Some(&writer)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, format!("payments-app:{}:default", sa.id), "the handler sees the identity");
    assert_eq!(call(&app, "/payments", Some(&writer)).await, (StatusCode::OK, "paid".to_string()));

    let (status, body) = call(&app, "/whoami", None).await;
    assert_eq!((status, code(&body).as_str()), (StatusCode::UNAUTHORIZED, "unauthenticated"));
    let (status, body) = call(&app, "/whoami", Some("klk_not_a_key")).await;
    assert_eq!((status, code(&body).as_str()), (StatusCode::UNAUTHORIZED, "unauthenticated"));
    let (status, body) = call(&app, "/payments", Some(&reader)).await;
    assert_eq!((status, code(&body).as_str()), (StatusCode::FORBIDDEN, "permission_denied"));
    assert_eq!(call(&app, "/whoami", Some(&reader)).await.0, StatusCode::OK, "any key will do there");

    // Disabled in keyledger: the cached verdict still admits the key for its TTL...
    let key_id = admin.verify(&verify_req(&writer, None)).await.unwrap().key_id.unwrap();
    let disabled = admin.disable_key(&key_id).await.unwrap();
    assert!(!admin.verify(&verify_req(&writer, None)).await.unwrap().valid);
    assert_eq!(call(&app, "/whoami", Some(&writer)).await.0, StatusCode::OK, "served from the cache");
    // ...until the application raises the barrier to the disable's index: refused at once,
    // on every route.
    auth.barrier(disabled.index);
    let (status, body) = call(&app, "/whoami", Some(&writer)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("disabled"), "{body}");
    assert_eq!(call(&app, "/payments", Some(&writer)).await.0, StatusCode::UNAUTHORIZED);
    // Other keys verify again under the barrier, and are cached again.
    assert_eq!(call(&app, "/whoami", Some(&reader)).await.0, StatusCode::OK);
    assert!(auth.cached() >= 1);
}
