//! Users, service accounts, namespaces, settings and accounts over HTTP: their shapes, who may
//! see and change them, and the refusals (each changing nothing).

use keyledger_client::ListKeys;
use keyledger_wire as wire;
use reqwest::Method;

use crate::single_node::assert_invalid;
use crate::util::{
    account_sa, enroll, expect_refused, namespace_sa, new_key, service_account_with_key, user_with_key, verify_req,
    Cluster,
};

fn user_req(name: &str, role: &str) -> wire::CreateUserRequest {
    wire::CreateUserRequest { name: name.into(), role: role.into() }
}

/// Sends a raw JSON body and returns the status and error code.
async fn raw(cluster: &Cluster, method: Method, path: &str, body: &str) -> (u16, String) {
    let resp = cluster
        .http()
        .request(method, format!("{}{path}", cluster.node(1).url()))
        .bearer_auth(cluster.admin_key())
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let code = serde_json::from_str::<wire::ErrorBody>(&text).map(|b| b.error.code).unwrap_or(text);
    (status, code)
}

#[tokio::test]
async fn users_are_created_read_changed_and_deleted() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    admin.create_namespace("payments").await.unwrap();

    let created = admin.create_user(&user_req("alice", "developer")).await.unwrap();
    assert!(created.index > 0);
    assert!(created.value.enrollment_code.starts_with("kle_"));
    let alice = created.value.user;
    assert!(alice.id.starts_with("usr_"), "{alice:?}");
    assert_eq!((alice.name.as_str(), alice.role.as_str(), alice.state.as_str()), ("alice", "developer", "enabled"));
    assert!(alice.namespaces.is_empty());
    assert_eq!(admin.get_user(&alice.id).await.unwrap(), alice);

    expect_refused(admin.create_user(&user_req("alice", "read")).await, 409, "conflict");
    expect_refused(admin.create_user(&user_req("bob", "root")).await, 400, "invalid_argument");
    expect_refused(admin.create_user(&user_req("", "read")).await, 400, "invalid_argument");
    assert_eq!(raw(&cluster, Method::POST, "/v1/users", r#"{"name":"x","role":"read","age":3}"#).await.0, 400);
    let names: Vec<String> = admin.list_users().await.unwrap().users.into_iter().map(|u| u.name).collect();
    assert_eq!(names, ["admin", "alice"], "the refusals created nobody");

    assert_eq!(admin.set_user_role(&alice.id, "read").await.unwrap().value.role, "read");
    let granted = admin.set_user_namespace(&alice.id, "payments", "write").await.unwrap().value;
    assert_eq!(granted.namespaces, [("payments".to_string(), "write".to_string())].into());
    expect_refused(admin.set_user_namespace(&alice.id, "payments", "owner").await, 400, "invalid_argument");
    expect_refused(admin.set_user_namespace(&alice.id, "nowhere", "read").await, 404, "not_found");
    assert!(admin.remove_user_namespace(&alice.id, "payments").await.unwrap().value.namespaces.is_empty());
    assert_eq!(admin.disable_user(&alice.id).await.unwrap().value.state, "disabled");
    assert_eq!(admin.enable_user(&alice.id).await.unwrap().value.state, "enabled");

    assert!(admin.delete_user(&alice.id).await.unwrap().index > created.index);
    assert_eq!(admin.get_user(&alice.id).await.unwrap().state, "deleted");
    expect_refused(admin.enable_user(&alice.id).await, 409, "conflict");

    for bad in ["not-an-id", "usr_", "sa_00000000000000000000000"] {
        expect_refused(admin.get_user(bad).await, 404, "not_found");
        expect_refused(admin.disable_user(bad).await, 404, "not_found");
        expect_refused(admin.set_user_role(bad, "read").await, 404, "not_found");
        expect_refused(admin.delete_user(bad).await, 404, "not_found");
    }
}

/// Owners and admins manage users; only an owner grants, changes or removes `owner`/`admin`;
/// everyone else may only look at itself.
#[tokio::test]
async fn only_an_owner_grants_privileged_roles() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let (ops, ops_secret) = user_with_key(&admin, "ops", "admin").await;
    let (dev, dev_secret) = user_with_key(&admin, "dev", "developer").await;
    let ops_client = cluster.client_as(&ops_secret);
    let dev_client = cluster.client_as(&dev_secret);

    let intern = ops_client.create_user(&user_req("intern", "read")).await.unwrap().value.user;
    ops_client.set_user_role(&intern.id, "developer").await.unwrap();
    expect_refused(ops_client.create_user(&user_req("boss", "admin")).await, 403, "permission_denied");
    expect_refused(ops_client.set_user_role(&intern.id, "admin").await, 403, "permission_denied");
    expect_refused(ops_client.disable_user(&ops.id).await, 403, "permission_denied");
    assert_eq!(admin.get_user(&intern.id).await.unwrap().role, "developer", "the refusals changed nothing");

    expect_refused(dev_client.create_user(&user_req("friend", "read")).await, 403, "permission_denied");
    expect_refused(dev_client.set_user_role(&dev.id, "admin").await, 403, "permission_denied");
    let seen: Vec<String> = dev_client.list_users().await.unwrap().users.into_iter().map(|u| u.id).collect();
    assert_eq!(seen, std::slice::from_ref(&dev.id), "a developer sees only itself");
    assert_eq!(dev_client.get_user(&dev.id).await.unwrap().name, "dev");
    expect_refused(dev_client.get_user(&ops.id).await, 404, "not_found");
    assert_eq!(ops_client.list_users().await.unwrap().users.len(), 4, "an admin sees every user");

    assert_eq!(admin.set_user_role(&ops.id, "owner").await.unwrap().value.role, "owner");
}

#[tokio::test]
async fn service_accounts_are_account_or_namespace_scoped() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    admin.create_namespace("payments").await.unwrap();

    let (ci, ci_secret) = service_account_with_key(&admin, account_sa("ci", "developer")).await;
    assert!(ci.id.starts_with("sa_"), "{ci:?}");
    assert_eq!(
        (ci.role.as_deref(), ci.namespace.as_deref(), ci.permission.as_deref()),
        (Some("developer"), None, None)
    );
    let pay = admin.create_service_account(&namespace_sa("pay", "payments", "write")).await.unwrap().value;
    assert_eq!(
        (pay.role.as_deref(), pay.namespace.as_deref(), pay.permission.as_deref()),
        (None, Some("payments"), Some("write"))
    );
    assert_eq!(admin.get_service_account(&pay.id).await.unwrap(), pay);

    let refusals = [
        (wire::CreateServiceAccountRequest { name: "none".into(), ..Default::default() }, 400, "invalid_argument"),
        (
            wire::CreateServiceAccountRequest { role: Some("read".into()), ..namespace_sa("both", "payments", "read") },
            400,
            "invalid_argument",
        ),
        (account_sa("boss", "owner"), 400, "invalid_argument"),
        (account_sa("odd", "superuser"), 400, "invalid_argument"),
        (namespace_sa("lost", "nowhere", "read"), 400, "invalid_argument"),
        (namespace_sa("pay", "payments", "read"), 409, "conflict"),
    ];
    for (req, status, code) in refusals {
        expect_refused(admin.create_service_account(&req).await, status, code);
    }
    let all = admin.list_service_accounts().await.unwrap().service_accounts;
    assert_eq!(all.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["ci", "pay"]);

    // A service account sees itself and nothing else; it cannot manage others.
    let ci_client = cluster.client_as(&ci_secret);
    assert_eq!(ci_client.list_service_accounts().await.unwrap().service_accounts, std::slice::from_ref(&ci));
    expect_refused(ci_client.get_service_account(&pay.id).await, 404, "not_found");
    expect_refused(ci_client.disable_service_account(&pay.id).await, 403, "permission_denied");

    assert_eq!(admin.disable_service_account(&ci.id).await.unwrap().value.state, "disabled");
    assert_invalid(&admin, &ci_secret, "identity_disabled").await;
    assert_eq!(admin.enable_service_account(&ci.id).await.unwrap().value.state, "enabled");
    assert!(admin.verify(&verify_req(&ci_secret, None)).await.unwrap().valid);
    admin.delete_service_account(&ci.id).await.unwrap();
    assert_eq!(admin.get_service_account(&ci.id).await.unwrap().state, "deleted");
    assert_invalid(&admin, &ci_secret, "identity_disabled").await;

    for bad in ["not-an-id", "sa_", "usr_0000000000000000000000"] {
        expect_refused(admin.get_service_account(bad).await, 404, "not_found");
        expect_refused(admin.delete_service_account(bad).await, 404, "not_found");
        expect_refused(admin.enable_service_account(bad).await, 404, "not_found");
    }
}

#[tokio::test]
async fn namespaces_are_created_by_admins_and_listed_by_anyone_in_the_account() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let (_, dev_secret) = user_with_key(&admin, "dev", "developer").await;
    let dev = cluster.client_as(&dev_secret);

    let payments = admin.create_namespace("payments").await.unwrap().value;
    assert_eq!(payments.name, "payments");
    assert!(!payments.created_at.is_empty());
    expect_refused(admin.create_namespace("payments").await, 409, "conflict");
    expect_refused(admin.create_namespace("Pay Ments").await, 400, "invalid_argument");
    expect_refused(dev.create_namespace("staging").await, 403, "permission_denied");
    assert_eq!(raw(&cluster, Method::POST, "/v1/namespaces", r#"{"name":"x","kind":"y"}"#).await.0, 400);

    assert_eq!(dev.list_namespaces().await.unwrap().namespaces, [payments]);
}

#[tokio::test]
async fn settings_are_read_by_anyone_and_changed_by_admins() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let (_, dev_secret) = user_with_key(&admin, "dev", "developer").await;
    let dev = cluster.client_as(&dev_secret);

    let defaults = dev.get_settings().await.unwrap();
    let expected = wire::Settings {
        key_creation_enabled: true,
        max_key_lifetime: "730d".into(),
        allow_never_expiring: false,
        max_keys_per_user: 10,
        max_keys_per_service_account: 20,
        max_users: 1000,
        max_service_accounts: 1000,
        max_namespaces: 100,
        max_accounts: Some(1000),
        action_when_leaked: "disable".into(),
        last_used_granularity: "1h".into(),
    };
    assert_eq!(defaults, expected);
    let forever = wire::CreateKeyRequest { never_expires: Some(true), expires_in: None, ..new_key("forever") };
    let refused = expect_refused(admin.create_key(&forever).await, 400, "invalid_argument");
    assert!(refused.contains("never expire"), "{refused}");

    let patch = wire::UpdateSettingsRequest {
        max_key_lifetime: Some("30d".into()),
        allow_never_expiring: Some(true),
        max_keys_per_user: Some(3),
        ..Default::default()
    };
    let changed = admin.update_settings(&patch).await.unwrap();
    assert!(changed.index > 0);
    assert_eq!(
        changed.value,
        wire::Settings {
            max_key_lifetime: "30d".into(),
            allow_never_expiring: true,
            max_keys_per_user: 3,
            ..expected.clone()
        }
    );
    assert_eq!(dev.get_settings().await.unwrap(), changed.value);
    let too_long = wire::CreateKeyRequest { expires_in: Some("60d".into()), ..new_key("long") };
    expect_refused(admin.create_key(&too_long).await, 400, "invalid_argument");
    admin.create_key(&forever).await.expect("never-expiring keys are allowed now");

    for bad in [
        wire::UpdateSettingsRequest { max_key_lifetime: Some("forever".into()), ..Default::default() },
        wire::UpdateSettingsRequest { max_key_lifetime: Some("1h".into()), ..Default::default() },
        wire::UpdateSettingsRequest { max_keys_per_user: Some(0), ..Default::default() },
    ] {
        expect_refused(admin.update_settings(&bad).await, 400, "invalid_argument");
    }
    let switch_off = wire::UpdateSettingsRequest { key_creation_enabled: Some(false), ..Default::default() };
    expect_refused(dev.update_settings(&switch_off).await, 403, "permission_denied");
    assert_eq!(raw(&cluster, Method::PATCH, "/v1/settings", r#"{"max_keys_per_user":-1}"#).await.0, 400);
    assert_eq!(raw(&cluster, Method::PATCH, "/v1/settings", r#"{"colour":"red"}"#).await.0, 400);
    assert_eq!(admin.get_settings().await.unwrap(), changed.value, "the refusals changed nothing");
}

/// An owner creates another account; its owner's first key works there and sees nothing of
/// the first account, and the first account sees nothing of it.
#[tokio::test]
async fn an_owner_creates_another_account_that_is_isolated() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    admin.create_namespace("payments").await.unwrap();
    let req = wire::CreateAccountRequest { name: "acme".into(), owner_name: "root".into() };
    let created = admin.create_account(&req).await.unwrap();
    let acme = created.value;
    assert_eq!(acme.account, "acme");
    assert_eq!((acme.owner.name.as_str(), acme.owner.role.as_str()), ("root", "owner"));
    assert!(acme.enrollment_code.starts_with("kle_"), "{acme:?}");

    // The owner redeems the code for its own first key.
    let first = enroll(&admin, &acme.enrollment_code, "root's first key").await;
    assert_eq!((first.key.account.as_str(), first.key.owner.id.as_str()), ("acme", acme.owner.id.as_str()));
    let answer = admin.verify(&verify_req(&first.secret, None)).await.unwrap();
    assert!(answer.valid, "{answer:?}");
    assert_eq!(answer.account.as_deref(), Some("acme"));
    let root = cluster.client_as(&first.secret);
    let keys = root.list_keys(&ListKeys::default()).await.unwrap().keys;
    assert_eq!(keys.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(), [first.key.id.as_str()]);
    let users: Vec<String> = root.list_users().await.unwrap().users.into_iter().map(|u| u.name).collect();
    assert_eq!(users, ["root"]);
    assert!(root.list_namespaces().await.unwrap().namespaces.is_empty());
    root.create_namespace("payments").await.expect("names are per account");

    let admin_key = admin.verify(&verify_req(cluster.admin_key(), None)).await.unwrap().key_id.unwrap();
    expect_refused(root.get_key(&admin_key).await, 404, "not_found");
    expect_refused(root.disable_key(&admin_key).await, 404, "not_found");
    expect_refused(admin.get_key(&first.key.id).await, 404, "not_found");
    expect_refused(admin.get_user(&acme.owner.id).await, 404, "not_found");

    expect_refused(admin.create_account(&req).await, 409, "conflict");
    let bad_name = wire::CreateAccountRequest { name: "Acme Corp".into(), ..req.clone() };
    expect_refused(admin.create_account(&bad_name).await, 400, "invalid_argument");
    let (_, ops_secret) = user_with_key(&admin, "ops", "admin").await;
    let by_admin = wire::CreateAccountRequest { name: "other".into(), ..req };
    expect_refused(cluster.client_as(&ops_secret).create_account(&by_admin).await, 403, "permission_denied");
}
