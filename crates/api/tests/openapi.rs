//! The OpenAPI document: the checked-in `docs/openapi.json` is the generated one byte for byte,
//! every route the router serves is documented (and nothing else is), the document is
//! well-formed, and a real node serves it at `/v1/openapi.json` without authentication.
//!
//! To bring `docs/openapi.json` up to date after changing the API:
//! `KEYLEDGER_UPDATE_OPENAPI=1 cargo test -p keyledger-api --test openapi`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use keyledger_api::{openapi_json, ROUTES};
use keyledger_cluster::{ClusterNode, NodeConfig, SecretSource};
use serde_json::Value;
use tower::ServiceExt;

const UPDATE_VAR: &str = "KEYLEDGER_UPDATE_OPENAPI";
const UPDATE_COMMAND: &str = "KEYLEDGER_UPDATE_OPENAPI=1 cargo test -p keyledger-api --test openapi";

/// The operations anyone may call; every other one needs `Authorization: Bearer <api key>`.
const PUBLIC: &[(&str, &str)] = &[
    ("post", "/v1/verify"),
    // The key to verify is the request's credential, as in `POST /v1/verify`.
    ("get", "/v1/verify/auth-request"),
    ("get", "/v1/verify/auth-request/"),
    ("get", "/v1/verify/auth-request/{rest}"),
    // The enrollment code, and the leaked secret itself, are the credential.
    ("post", "/v1/enroll"),
    ("post", "/v1/keys/leaked"),
    ("get", "/v1/openapi.json"),
    ("get", "/v1/audit/public-key"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
];

const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn checked_in_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

fn document() -> Value {
    serde_json::from_str(&openapi_json()).expect("the generated document is JSON")
}

/// Every operation of the document: `(method, path) -> operation`.
fn operations(doc: &Value) -> BTreeMap<(String, String), Value> {
    let paths = doc["paths"].as_object().expect("`paths` is an object");
    let mut operations = BTreeMap::new();
    for (path, item) in paths {
        let item = item.as_object().expect("a path item is an object");
        for (method, operation) in item {
            if METHODS.contains(&method.as_str()) {
                operations.insert((method.clone(), path.clone()), operation.clone());
            }
        }
    }
    operations
}

#[test]
fn checked_in_document_is_the_generated_one() {
    let generated = openapi_json();
    let path = checked_in_path();
    if std::env::var(UPDATE_VAR).is_ok_and(|v| !v.is_empty() && v != "0") {
        std::fs::write(&path, &generated).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        eprintln!("wrote {}", path.display());
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in != generated {
        let first_difference = checked_in
            .lines()
            .zip(generated.lines())
            .enumerate()
            .find(|(_, (old, new))| old != new)
            .map(|(n, (old, new))| {
                format!("first difference at line {}:\n  checked in: {old}\n  generated:  {new}", n + 1)
            })
            .unwrap_or_else(|| {
                format!(
                    "one is a prefix of the other ({} and {} lines)",
                    checked_in.lines().count(),
                    generated.lines().count()
                )
            });
        panic!(
            "docs/openapi.json is not the document the code generates; if the API change is intended, run\n\n    \
             {UPDATE_COMMAND}\n\nand commit the file.\n{first_difference}"
        );
    }
}

#[test]
fn the_document_is_byte_stable() {
    assert_eq!(openapi_json(), openapi_json());
    assert!(openapi_json().ends_with("}\n"));
}

#[test]
fn every_route_is_documented_and_nothing_else_is() {
    // A wildcard tail (`{*rest}`) is an ordinary path parameter to OpenAPI.
    let served: BTreeSet<(String, String)> =
        ROUTES.iter().map(|(m, p)| (m.to_string(), p.replace("{*", "{"))).collect();
    assert_eq!(served.len(), ROUTES.len(), "a route is listed twice in ROUTES");
    let documented: BTreeSet<(String, String)> = operations(&document()).into_keys().collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "routes the router serves but the OpenAPI document lacks (annotate the handler with #[utoipa::path] \
         and list it in ApiDoc's `paths`): {undocumented:?}"
    );
    assert!(unserved.is_empty(), "operations the document describes but the router does not serve: {unserved:?}");
    for (method, path) in PUBLIC {
        assert!(served.contains(&(method.to_string(), path.to_string())), "{method} {path} is not a route");
    }
}

#[test]
fn the_document_is_well_formed() {
    let doc = document();
    let version = doc["openapi"].as_str().expect("`openapi` is a string");
    assert!(version.starts_with("3."), "openapi version {version}");
    assert_eq!(doc["info"]["title"], "keyledger");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(doc["info"]["description"].as_str().is_some_and(|d| !d.is_empty()));

    // Every $ref points into components and resolves there.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for reference in &refs {
        let pointer = reference.strip_prefix('#').unwrap_or_else(|| panic!("{reference} is not local"));
        assert!(
            pointer.starts_with("/components/schemas/") || pointer.starts_with("/components/responses/"),
            "{reference} points outside components"
        );
        assert!(doc.pointer(pointer).is_some_and(Value::is_object), "{reference} does not resolve");
    }
    let schemas = doc["components"]["schemas"].as_object().expect("components.schemas");
    for name in
        ["ErrorBody", "Key", "CreatedKey", "KeyList", "VerifyResponse", "User", "ServiceAccount", "ClusterStatus"]
    {
        assert!(schemas.contains_key(name), "schema {name} is missing");
    }

    let scheme = &doc["components"]["securitySchemes"]["api_key"];
    assert_eq!((&scheme["type"], &scheme["scheme"]), (&Value::from("http"), &Value::from("bearer")));

    let mut operation_ids = BTreeSet::new();
    for ((method, path), operation) in operations(&doc) {
        let at = format!("{} {path}", method.to_uppercase());
        let id = operation["operationId"].as_str().unwrap_or_else(|| panic!("{at} has no operationId"));
        assert!(operation_ids.insert(id.to_string()), "operationId {id} is used twice");
        assert!(operation["tags"].as_array().is_some_and(|t| !t.is_empty()), "{at} has no tag");

        // Every `{param}` of the path is declared as a path parameter, and nothing more.
        let in_path: BTreeSet<&str> =
            path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect();
        let declared: BTreeSet<&str> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(in_path, declared, "{at}: path parameters");

        let responses = operation["responses"].as_object().unwrap_or_else(|| panic!("{at} has no responses"));
        let success: Vec<&String> = responses.keys().filter(|s| s.starts_with('2')).collect();
        assert!(!success.is_empty(), "{at} documents no success");

        let public = PUBLIC.contains(&(method.as_str(), path.as_str()));
        let security = &operation["security"];
        if public {
            assert!(security.is_null(), "{at} is public but documents security");
        } else {
            assert_eq!(security, &serde_json::json!([{"api_key": []}]), "{at}: bearer security");
            assert!(responses.contains_key("401"), "{at} needs a key but documents no 401");
        }

        // Every write's success carries X-Keyledger-Index, and every write takes Idempotency-Key.
        // POSTs that only read: the verifications. Membership changes are Raft configuration,
        // not ledger writes (and adding a member twice, or removing one, is naturally idempotent).
        // A leak report is answered before anything is written (so the answer is no oracle), and
        // repeating one changes nothing.
        let not_ledger_writes = [
            "/v1/verify",
            "/v1/verify/as-of",
            "/v1/cluster/members",
            "/v1/cluster/members/{node_id}",
            "/v1/keys/leaked",
        ];
        if method != "get" && !not_ledger_writes.contains(&path.as_str()) {
            for status in success {
                let headers = &responses[status]["headers"];
                assert!(headers.get("X-Keyledger-Index").is_some(), "{at} {status}: no X-Keyledger-Index");
            }
            let idempotency_key = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["in"] == "header" && p["name"] == "Idempotency-Key");
            assert!(idempotency_key.is_some_and(|p| p["required"] == false), "{at}: no optional Idempotency-Key");
            assert!(responses.contains_key("409"), "{at}: an Idempotency-Key reused answers 409");
        }
        // Only a parameter that may be left out is optional; none may be `null`.
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            let schema_type = &parameter["schema"]["type"];
            assert!(!schema_type.as_array().is_some_and(|t| t.contains(&"null".into())), "{at}: {parameter}");
        }
    }
    let get_key = &doc["paths"]["/v1/keys/{id}"];
    assert!(get_key["get"]["responses"]["200"]["headers"].get("ETag").is_some(), "GET key: no ETag");
    let patch_params = get_key["patch"]["parameters"].as_array().unwrap();
    assert!(patch_params.iter().any(|p| p["in"] == "header" && p["name"] == "If-Match"), "PATCH key: no If-Match");
    assert!(doc["paths"]["/v1/keys/{id}"]["patch"]["responses"].get("412").is_some(), "PATCH key: no 412");
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(reference)) => out.push(reference.clone()),
                    _ => collect_refs(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// A real node (storage and Raft, no account) serves the document without a key, and for every
/// documented operation the router has the route: an operation that needs a key answers `401`
/// to a request without one, and a public one answers something other than `401`, `404` or `405`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_the_document_and_every_documented_route() {
    let dir = tempfile::tempdir().unwrap();
    let config = NodeConfig::new(1, "127.0.0.1:1".into(), dir.path().to_path_buf(), SecretSource::NewCluster);
    let node = ClusterNode::start(config).await.unwrap();
    let router = keyledger_api::router(node.clone());
    let call = |method: &str, path: &str| {
        let request = Request::builder().method(method.to_uppercase().as_str()).uri(path).body(Body::empty()).unwrap();
        let router = router.clone();
        async move {
            let response = router.oneshot(request).await.unwrap();
            let status = response.status();
            let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 22).await.unwrap();
            (status, content_type, String::from_utf8(bytes.to_vec()).unwrap())
        }
    };

    let (status, content_type, body) = call("get", "/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.unwrap(), "application/json");
    assert_eq!(body, openapi_json());

    for ((method, path), _) in operations(&document()) {
        let concrete: String =
            path.split('/').map(|s| if s.starts_with('{') { "x" } else { s }).collect::<Vec<_>>().join("/");
        let (status, _, body) = call(&method, &concrete).await;
        let at = format!("{} {concrete}", method.to_uppercase());
        if path.starts_with("/v1/verify/auth-request") {
            // Its verdict on a request without a key is its `401` (`503` on this node, not yet a
            // member), not a refusal of the caller.
            assert!([StatusCode::UNAUTHORIZED, StatusCode::SERVICE_UNAVAILABLE].contains(&status), "{at}: {body}");
        } else if PUBLIC.contains(&(method.as_str(), path.as_str())) {
            assert!(
                ![StatusCode::UNAUTHORIZED, StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED].contains(&status),
                "{at} answered {status}: {body}"
            );
        } else {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{at}: {body}");
            assert!(body.contains("\"unauthenticated\""), "{at}: {body}");
        }
    }
    node.shutdown().await;
}
