//! Changes to one key over HTTP — update with `If-Match`, lock, rotate and its defaults —
//! keys with a scope, and the list filters by owner and namespace.

use keyledger_client::ListKeys;
use keyledger_model::Timestamp;
use keyledger_wire as wire;
use reqwest::Method;

use crate::util::{
    account_sa, expect_refused, key_for, namespace_sa, new_key, service_account_with_key, user_with_key, Cluster,
};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

fn millis(text: &str) -> i64 {
    Timestamp::parse_rfc3339(text).unwrap_or_else(|e| panic!("{text:?}: {e}")).millis()
}

/// A raw request to node 1 as the admin; returns status, headers and body text.
async fn raw(
    cluster: &Cluster,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req =
        cluster.http().request(method, format!("{}{path}", cluster.node(1).url())).bearer_auth(cluster.admin_key());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some(body) = body {
        req = req.header("content-type", "application/json").body(body.to_owned());
    }
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    (status, headers, resp.text().await.unwrap())
}

fn error_code(body: &str) -> String {
    serde_json::from_str::<wire::ErrorBody>(body).map(|b| b.error.code).unwrap_or_else(|_| body.to_owned())
}

/// `If-Match` as `"<rev>"` or `<rev>`; a malformed one is `400` and changes nothing; every
/// write answer carries `X-Keyledger-Index`.
#[tokio::test]
async fn update_takes_if_match_quoted_or_bare_and_refuses_a_malformed_one() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let created = admin.create_key(&new_key("svc")).await.unwrap().value;
    let path = format!("/v1/keys/{}", created.key.id);
    let rev = created.key.revision.to_string();

    let quoted = format!("\"{rev}\"");
    let body = r#"{"description":"first"}"#;
    let (status, headers, text) = raw(&cluster, Method::PATCH, &path, &[("if-match", &quoted)], Some(body)).await;
    assert_eq!(status, 200, "{text}");
    assert!(headers.get(wire::INDEX_HEADER).is_some(), "no index header: {headers:?}");
    let updated: wire::Key = serde_json::from_str(&text).unwrap();
    assert_eq!((updated.name.as_str(), updated.description.as_str()), ("svc", "first"));

    let fresh = updated.revision.to_string();
    let body = r#"{"name":"svc-2"}"#;
    let (status, _, text) = raw(&cluster, Method::PATCH, &path, &[("if-match", &fresh)], Some(body)).await;
    assert_eq!(status, 200, "{text}");
    let (status, _, text) = raw(&cluster, Method::PATCH, &path, &[("if-match", &rev)], Some(body)).await;
    assert_eq!((status, error_code(&text).as_str()), (412, "revision_mismatch"));

    let current = admin.get_key(&created.key.id).await.unwrap();
    for bad in ["soon", "\"12", "W/\"1\"", "-1", "\"\""] {
        let body = r#"{"name":"bad"}"#;
        let (status, _, text) = raw(&cluster, Method::PATCH, &path, &[("if-match", bad)], Some(body)).await;
        assert_eq!((status, error_code(&text).as_str()), (400, "invalid_argument"), "If-Match {bad:?}");
    }
    let (status, _, text) = raw(&cluster, Method::PATCH, &path, &[], Some(r#"{"title":"x"}"#)).await;
    assert_eq!((status, error_code(&text).as_str()), (400, "invalid_argument"), "unknown field");
    let (status, _, text) = raw(&cluster, Method::PATCH, &path, &[], Some(r#"{"name":""}"#)).await;
    assert_eq!((status, error_code(&text).as_str()), (400, "invalid_argument"), "empty name");
    assert_eq!(admin.get_key(&created.key.id).await.unwrap(), current, "the refusals changed nothing");

    // Every other change answers with the index too.
    for action in ["lock", "unlock", "disable", "enable"] {
        let (status, headers, text) = raw(&cluster, Method::POST, &format!("{path}/{action}"), &[], None).await;
        assert_eq!(status, 200, "{action}: {text}");
        assert!(headers.get(wire::INDEX_HEADER).is_some(), "{action}: no index header");
    }
}

/// Without a body, rotate gives the new key 90 days and the old one a 24 h grace; the new key
/// keeps name, description, owner and scope. A key rotated once, or deleted, is not rotated.
#[tokio::test]
async fn rotate_defaults_and_what_the_new_key_inherits() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let scope = wire::KeyScope::Role("read".into());
    let req = wire::CreateKeyRequest {
        description: Some("nightly export".into()),
        scope: Some(scope.clone()),
        ..new_key("export")
    };
    let old = admin.create_key(&req).await.unwrap().value.key;

    let path = format!("/v1/keys/{}/rotate", old.id);
    let (status, headers, text) = raw(&cluster, Method::POST, &path, &[], None).await;
    assert_eq!(status, 201, "{text}");
    assert!(headers.get(wire::INDEX_HEADER).is_some());
    let rotated: wire::RotatedKey = serde_json::from_str(&text).unwrap();
    assert!(rotated.secret.starts_with("klk_"));
    assert_eq!(rotated.replaces, old.id);
    let new = &rotated.key;
    assert_eq!(
        (&new.name, &new.description, &new.owner, &new.scope),
        (&old.name, &old.description, &old.owner, &old.scope)
    );
    assert_eq!(new.scope, Some(scope));
    let created_at = millis(&new.created_at);
    assert_eq!(millis(new.expires_at.as_deref().unwrap()) - created_at, 90 * DAY_MS);
    let old_after = admin.get_key(&old.id).await.unwrap().value;
    assert_eq!(millis(old_after.expires_at.as_deref().unwrap()) - created_at, 24 * HOUR_MS);

    expect_refused(admin.rotate_key(&old.id, &Default::default()).await, 409, "conflict");
    let bad_grace = wire::RotateKeyRequest { grace: Some("a while".into()), ..Default::default() };
    expect_refused(admin.rotate_key(&new.id, &bad_grace).await, 400, "invalid_argument");
    let two = wire::RotateKeyRequest {
        expires_in: Some("1d".into()),
        expires_at: Some("2099-01-01T00:00:00Z".into()),
        ..Default::default()
    };
    expect_refused(admin.rotate_key(&new.id, &two).await, 400, "invalid_argument");
    let (status, _, text) =
        raw(&cluster, Method::POST, &format!("/v1/keys/{}/rotate", new.id), &[], Some("{\"x\":1}")).await;
    assert_eq!((status, error_code(&text).as_str()), (400, "invalid_argument"));
    let deleted = admin.create_key(&new_key("gone")).await.unwrap().value.key;
    admin.delete_key(&deleted.id).await.unwrap();
    expect_refused(admin.rotate_key(&deleted.id, &Default::default()).await, 409, "conflict");

    // An explicit expiry is taken as given.
    let explicit =
        wire::RotateKeyRequest { expires_in: Some("7d".into()), grace: Some("2h".into()), ..Default::default() };
    let third = admin.rotate_key(&new.id, &explicit).await.unwrap().value.key;
    assert_eq!(millis(third.expires_at.as_deref().unwrap()) - millis(&third.created_at), 7 * DAY_MS);
}

/// A key that never expires is replaced by one that never expires, where the account allows
/// that; where it does not (the bootstrap key's case), the successor gets the 90-day default.
#[tokio::test]
async fn rotating_a_never_expiring_key() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let bootstrap = admin.verify(&crate::util::verify_req(cluster.admin_key(), None)).await.unwrap().key_id.unwrap();
    let successor = admin.rotate_key(&bootstrap, &Default::default()).await.unwrap().value;
    assert!(successor.key.expires_at.is_some(), "never-expiring keys are off by default: {successor:?}");

    let allow = wire::UpdateSettingsRequest { allow_never_expiring: Some(true), ..Default::default() };
    admin.update_settings(&allow).await.unwrap();
    let forever = admin
        .create_key(&wire::CreateKeyRequest { never_expires: Some(true), expires_in: None, ..new_key("forever") })
        .await;
    let forever = forever.unwrap().value.key;
    let next = admin.rotate_key(&forever.id, &Default::default()).await.unwrap().value;
    assert_eq!(next.key.expires_at, None);
}

/// `scope` on create is shown back in KEY's `scope`; a scope naming an unknown namespace or
/// level is refused.
#[tokio::test]
async fn keys_carry_their_scope() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    admin.create_namespace("payments").await.unwrap();

    let role = wire::KeyScope::Role("developer".into());
    let created = admin.create_key(&wire::CreateKeyRequest { scope: Some(role.clone()), ..new_key("dev") }).await;
    let created = created.unwrap().value.key;
    assert_eq!(created.scope, Some(role));
    assert_eq!(admin.get_key(&created.id).await.unwrap().value.scope, created.scope);
    let plain = admin.create_key(&new_key("plain")).await.unwrap().value.key;
    assert_eq!(plain.scope, None);

    let (_, _, text) = raw(&cluster, Method::GET, &format!("/v1/keys/{}", created.id), &[], None).await;
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["scope"], serde_json::json!({"role": "developer"}));

    let bad_scopes = [
        wire::KeyScope::Role("root".into()),
        wire::KeyScope::Namespaces([("nowhere".to_string(), "read".to_string())].into()),
        wire::KeyScope::Namespaces([("payments".to_string(), "all".to_string())].into()),
        wire::KeyScope::Namespaces(Default::default()),
    ];
    for scope in bad_scopes {
        let req = wire::CreateKeyRequest { scope: Some(scope.clone()), ..new_key("bad") };
        expect_refused(admin.create_key(&req).await, 400, "invalid_argument");
    }
    let body = r#"{"name":"x","expires_in":"1d","scope":{"role":"read","namespaces":{}}}"#;
    let (status, _, text) = raw(&cluster, Method::POST, "/v1/keys", &[], Some(body)).await;
    assert_eq!((status, error_code(&text).as_str()), (400, "invalid_argument"));
}

/// `owner_kind`, `owner_id`, `namespace` and `name` (a part of it, any case) filter the list; KEY's `namespace` is its owner's
/// for a namespace-scoped service account.
#[tokio::test]
async fn list_filters_by_owner_and_namespace() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    admin.create_namespace("payments").await.unwrap();
    let (dev, _) = user_with_key(&admin, "dev", "developer").await;
    let (pay, _) = service_account_with_key(&admin, namespace_sa("pay", "payments", "read")).await;
    let (ci, _) = service_account_with_key(&admin, account_sa("ci", "read")).await;
    let pay_key = key_for(&admin, wire::OwnerKind::ServiceAccount, &pay.id, "pay-2").await.key;
    assert_eq!(pay_key.namespace.as_deref(), Some("payments"));

    let ids = |keys: Vec<wire::Key>| keys.into_iter().map(|k| k.owner.id).collect::<Vec<_>>();
    let list = async |query: ListKeys| admin.list_keys(&query).await.unwrap().keys;
    let by_kind = list(ListKeys { owner_kind: Some("service_account".into()), ..Default::default() }).await;
    assert_eq!(ids(by_kind), [pay.id.clone(), ci.id.clone(), pay.id.clone()]);
    let by_owner = list(ListKeys { owner_id: Some(dev.id.clone()), ..Default::default() }).await;
    assert_eq!(ids(by_owner), std::slice::from_ref(&dev.id));
    let in_payments = list(ListKeys { namespace: Some("payments".into()), ..Default::default() }).await;
    assert!(in_payments.iter().all(|k| k.namespace.as_deref() == Some("payments")));
    assert_eq!(ids(in_payments), [pay.id.clone(), pay.id.clone()]);
    let users = list(ListKeys { owner_kind: Some("user".into()), ..Default::default() }).await;
    assert!(users.iter().all(|k| k.namespace.is_none()), "{users:?}");
    assert_eq!(users.len(), 2, "admin's and dev's: {users:?}");
    let every = list(ListKeys::default()).await.len();
    let named = list(ListKeys { name: Some("PAY-".into()), ..Default::default() }).await;
    assert!(named.iter().all(|k| k.name.to_lowercase().contains("pay-")), "{named:?}");
    assert!(named.iter().any(|k| k.name == "pay-2") && named.len() < every, "{named:?}");

    for query in ["owner_kind=robot", "state=gone", "limit=0", "colour=red"] {
        let (status, _, text) = raw(&cluster, Method::GET, &format!("/v1/keys?{query}"), &[], None).await;
        assert_eq!((status, error_code(&text).as_str()), (400, "invalid_argument"), "{query}");
    }
}

/// The summary counts what the caller may read, by state, and the keys expiring soon.
#[tokio::test]
async fn the_summary_counts_the_keys_a_caller_may_see() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let soon = |name: &str, days: &str| wire::CreateKeyRequest { expires_in: Some(days.into()), ..new_key(name) };
    admin.create_key(&soon("in-3-days", "3d")).await.unwrap();
    admin.create_key(&soon("in-20-days", "20d")).await.unwrap();
    let off = admin.create_key(&soon("off", "90d")).await.unwrap().value.key.id;
    admin.disable_key(&off).await.unwrap();
    let gone = admin.create_key(&soon("gone", "90d")).await.unwrap().value.key.id;
    admin.delete_key(&gone).await.unwrap();
    let (_, reader_key) = user_with_key(&admin, "reader", "read").await;

    let summary = admin.key_summary().await.unwrap();
    // The bootstrap key never expires; the reader's own 30-day key is the admin's to see too.
    let expected = wire::KeySummary {
        enabled: 4,
        disabled: 1,
        expired: 0,
        deleted: 1,
        expiring_within_7d: 1,
        expiring_within_30d: 3,
    };
    assert_eq!(summary, expected);
    let own = cluster.client_as(&reader_key).key_summary().await.unwrap();
    assert_eq!((own.enabled, own.disabled, own.deleted, own.expiring_within_30d), (1, 0, 0, 1), "only its own key");
}

/// `expiring_within` lists the keys, enabled or disabled, whose expiry falls in the window, only
/// those the caller may see, paged by id like any list; `/metrics` counts them for every account.
#[tokio::test]
async fn keys_expiring_within_a_window_are_listed_and_counted() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let lasting = |name: &str, span: &str| wire::CreateKeyRequest { expires_in: Some(span.into()), ..new_key(name) };
    let mut soon = Vec::new();
    for (name, span) in [("in-3-days", "3d"), ("in-6-days", "6d"), ("in-1-hour", "1h")] {
        soon.push(admin.create_key(&lasting(name, span)).await.unwrap().value.key.id);
    }
    let later = admin.create_key(&lasting("in-20-days", "20d")).await.unwrap().value.key.id;
    let off = admin.create_key(&lasting("off-in-5-days", "5d")).await.unwrap().value.key.id;
    admin.disable_key(&off).await.unwrap();
    let gone = admin.create_key(&lasting("gone-in-2-days", "2d")).await.unwrap().value.key.id;
    admin.delete_key(&gone).await.unwrap();
    let (_, reader_key) = user_with_key(&admin, "reader", "read").await;

    let ids = |keys: &[wire::Key]| keys.iter().map(|k| k.id.clone()).collect::<Vec<_>>();
    let within = |span: &str, state: Option<&str>| ListKeys {
        expiring_within: Some(span.into()),
        state: state.map(str::to_owned),
        ..ListKeys::default()
    };
    // Ids sort by creation, so the listing is in creation order, not expiry order.
    let week = admin.list_keys(&within("7d", None)).await.unwrap().keys;
    assert_eq!(ids(&week), [soon[0].clone(), soon[1].clone(), soon[2].clone(), off.clone()]);
    let enabled = admin.list_keys(&within("7d", Some("enabled"))).await.unwrap().keys;
    assert_eq!(ids(&enabled), soon);
    let hour = admin.list_keys(&within("2h", None)).await.unwrap().keys;
    assert_eq!(ids(&hour), [soon[2].clone()]);
    let month = admin.list_keys(&within("30d", None)).await.unwrap().keys;
    assert!(month.iter().any(|k| k.id == later) && month.len() == 6, "with the reader's 30-day key: {month:?}");
    assert!(month.iter().all(|k| k.id != gone), "a deleted key has nothing left to expire");

    // Paged one at a time, the same keys in the same order.
    let (mut paged, mut cursor) = (Vec::new(), None);
    loop {
        let query = ListKeys { limit: Some(1), cursor: cursor.take(), ..within("7d", None) };
        let page = admin.list_keys(&query).await.unwrap();
        paged.extend(ids(&page.keys));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(paged, ids(&week));

    // A `read` user sees only its own key, expiring in 30 days.
    let own = cluster.client_as(&reader_key).list_keys(&within("31d", None)).await.unwrap().keys;
    assert_eq!(own.len(), 1, "{own:?}");
    assert_eq!(own[0].owner.name, "reader");

    for bad in ["0d", "-1d", "soon", "7", ""] {
        let (status, _, text) = raw(&cluster, Method::GET, &format!("/v1/keys?expiring_within={bad}"), &[], None).await;
        assert_eq!((status, error_code(&text).as_str()), (400, "invalid_argument"), "{bad:?}");
    }

    // The gauge counts every account's keys in each window, disabled ones too.
    let metrics = cluster.http().get(format!("{}/metrics", cluster.node(1).url())).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    let gauge = |within: &str| {
        let line = format!("keyledger_keys_expiring{{within=\"{within}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(line.as_str())).map(|v| v.parse::<f64>().unwrap())
    };
    assert_eq!((gauge("1d"), gauge("7d"), gauge("30d")), (Some(1.0), Some(4.0), Some(6.0)), "{text}");
}

/// Ids of the wrong form are `404` on every key write, as for any unknown key (and on the
/// other collections' paths too).
#[tokio::test]
async fn key_writes_on_unknown_ids_are_not_found() {
    let cluster = Cluster::single().await;
    // `%FF` decodes to a byte that is not UTF-8: still a JSON `404`, not a plain-text `400`.
    for id in ["not-an-id", "key_", "usr_0000000000000000000000", "%FF"] {
        for action in ["lock", "unlock", "rotate"] {
            let (status, _, text) = raw(&cluster, Method::POST, &format!("/v1/keys/{id}/{action}"), &[], None).await;
            assert_eq!((status, error_code(&text).as_str()), (404, "not_found"), "{action} {id}");
        }
        let (status, _, text) =
            raw(&cluster, Method::PATCH, &format!("/v1/keys/{id}"), &[], Some(r#"{"name":"x"}"#)).await;
        assert_eq!((status, error_code(&text).as_str()), (404, "not_found"), "patch {id}");
    }
    for path in ["/v1/users/%FF", "/v1/service-accounts/%FF", "/v1/users/%FF/namespaces/%FE"] {
        let (status, _, text) = raw(&cluster, Method::DELETE, path, &[], None).await;
        assert_eq!((status, error_code(&text).as_str()), (404, "not_found"), "{path}");
    }
}
