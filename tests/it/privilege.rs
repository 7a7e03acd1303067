//! Rank, operator-only accounts, caps and paging on a real node: the privilege chain of issue
//! #13 (an admin taking over the owner through the owner's keys) is closed, and every refusal
//! changes nothing.

use std::collections::BTreeSet;

use keyledger_client::{Client, ListKeys, Page};
use keyledger_wire as wire;
use reqwest::Method;

use crate::util::{
    account_sa, enroll, expect_refused, new_key, service_account_with_key, succeeded, user_with_key, verify_req,
    Cluster,
};

/// An identity's keys as the owner lists them: id, state, lock and expiry.
async fn keys_of(client: &Client, owner_id: &str) -> Vec<(String, String, bool, Option<String>)> {
    let query = ListKeys { owner_id: Some(owner_id.to_string()), ..ListKeys::default() };
    let mut keys: Vec<_> = client
        .list_keys(&query)
        .await
        .unwrap()
        .keys
        .into_iter()
        .map(|k| (k.id, k.state, k.locked, k.expires_at))
        .collect();
    keys.sort();
    keys
}

/// A raw request with `secret`; returns the status and error code.
async fn raw(cluster: &Cluster, secret: &str, method: Method, path: &str, body: &str) -> (u16, String) {
    let resp = cluster
        .http()
        .request(method, format!("{}{path}", cluster.node(1).url()))
        .bearer_auth(secret)
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
async fn an_admin_cannot_take_over_the_owner_through_its_keys() {
    let cluster = Cluster::single().await;
    let owner = cluster.client(1);
    let me = owner.verify(&verify_req(cluster.admin_key(), None)).await.unwrap();
    let owner_key = me.key_id.unwrap();
    let owner_id = me.identity.unwrap().id;
    let (_, admin_secret) = user_with_key(&owner, "second-admin", "admin").await;
    let (_, sa_secret) = service_account_with_key(&owner, account_sa("deploy-bot", "admin")).await;
    let before = keys_of(&owner, &owner_id).await;

    for (who, secret) in [("admin user", &admin_secret), ("admin service account", &sa_secret)] {
        let admin = cluster.client_as(secret);
        // The issue's first step: a key for the owner, minted by an admin.
        let body = format!(r#"{{"name":"mine now","expires_in":"1d","owner":{{"kind":"user","id":"{owner_id}"}}}}"#);
        assert_eq!(
            raw(&cluster, secret, Method::POST, "/v1/keys", &body).await,
            (403, "permission_denied".into()),
            "{who}"
        );
        let grace_0 = wire::RotateKeyRequest { grace: Some("0s".into()), ..Default::default() };
        expect_refused(admin.rotate_key(&owner_key, &grace_0).await, 403, "permission_denied");
        expect_refused(admin.disable_key(&owner_key).await, 403, "permission_denied");
        expect_refused(admin.lock_key(&owner_key).await, 403, "permission_denied");
        expect_refused(admin.delete_key(&owner_key).await, 403, "permission_denied");
        // It still reads the owner's key, as the table says.
        assert_eq!(admin.get_key(&owner_key).await.unwrap().value.state, "enabled", "{who}");
        // …and cannot manage the owner user either.
        expect_refused(admin.disable_user(&owner_id).await, 403, "permission_denied");
        expect_refused(admin.set_user_role(&owner_id, "read").await, 403, "permission_denied");
    }
    // Nothing was written: the owner's keys are as they were, and its key still verifies.
    assert_eq!(keys_of(&owner, &owner_id).await, before);
    assert!(owner.verify(&verify_req(cluster.admin_key(), None)).await.unwrap().valid);
    // Equal rank stays allowed: the admin manages the other admin's keys.
    let (other_admin, _) = user_with_key(&owner, "third-admin", "admin").await;
    let admin = cluster.client_as(&admin_secret);
    let query = ListKeys { owner_id: Some(other_admin.id.clone()), ..ListKeys::default() };
    let their_key = admin.list_keys(&query).await.unwrap().keys.remove(0).id;
    assert_eq!(admin.disable_key(&their_key).await.unwrap().value.state, "disabled");
}

#[tokio::test]
async fn only_the_cluster_operator_creates_and_lists_accounts() {
    let cluster = Cluster::single().await;
    let operator = cluster.client(1);
    let req = |name: &str| wire::CreateAccountRequest { name: name.into(), owner_name: "boss".into() };
    let acme = operator.create_account(&req("acme")).await.unwrap().value;
    let acme_owner = cluster.client_as(&enroll(&operator, &acme.enrollment_code, "boss").await.secret);
    expect_refused(acme_owner.create_account(&req("beta")).await, 403, "permission_denied");
    expect_refused(acme_owner.list_accounts().await, 403, "permission_denied");
    // acme cannot raise the cluster's cap, which is the operator's setting.
    let cap = wire::UpdateSettingsRequest { max_accounts: Some(5), ..Default::default() };
    expect_refused(acme_owner.update_settings(&cap).await, 400, "invalid_argument");
    assert_eq!(acme_owner.get_settings().await.unwrap().max_accounts, None);

    let names: Vec<String> = operator.list_accounts().await.unwrap().accounts.into_iter().map(|a| a.name).collect();
    assert_eq!(names, ["acme", "default"]);
    // The operator's cap on accounts: 2 reached, one more is refused.
    let cap = wire::UpdateSettingsRequest { max_accounts: Some(2), ..Default::default() };
    assert_eq!(operator.update_settings(&cap).await.unwrap().value.max_accounts, Some(2));
    expect_refused(operator.create_account(&req("gamma")).await, 409, "limit_exceeded");
    let names: Vec<String> = operator.list_accounts().await.unwrap().accounts.into_iter().map(|a| a.name).collect();
    assert_eq!(names, ["acme", "default"], "nothing written");
    let out = succeeded(&cluster.cli(&["account", "list", "--output", "json"]), "account list");
    let listed: wire::AccountList = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.accounts.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["acme", "default"]);
}

#[tokio::test]
async fn caps_are_settings_and_refuse_one_more() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let users = admin.list_users().await.unwrap().users.len() as u32;
    let caps = wire::UpdateSettingsRequest {
        max_users: Some(users + 1),
        max_service_accounts: Some(1),
        max_namespaces: Some(1),
        ..Default::default()
    };
    let settings = admin.update_settings(&caps).await.unwrap().value;
    assert_eq!((settings.max_users, settings.max_service_accounts, settings.max_namespaces), (users + 1, 1, 1));
    assert_eq!(admin.get_settings().await.unwrap(), settings);

    let user = |name: &str| wire::CreateUserRequest { name: name.into(), role: "read".into() };
    let last = admin.create_user(&user("last")).await.unwrap().value;
    let refused = expect_refused(admin.create_user(&user("over")).await, 409, "limit_exceeded");
    assert!(refused.contains("cap of"), "{refused}");
    admin.create_service_account(&account_sa("one", "read")).await.unwrap();
    expect_refused(admin.create_service_account(&account_sa("two", "read")).await, 409, "limit_exceeded");
    admin.create_namespace("one").await.unwrap();
    expect_refused(admin.create_namespace("two").await, 409, "limit_exceeded");
    // A deleted user is not counted.
    admin.delete_user(&last.user.id).await.unwrap();
    admin.create_user(&user("over")).await.unwrap();

    // Out of bounds: 400 with a sentence; unknown fields too.
    for body in [r#"{"max_users":0}"#, r#"{"max_namespaces":10001}"#, r#"{"max_users":"many"}"#, r#"{"max_things":3}"#]
    {
        assert_eq!(raw(&cluster, cluster.admin_key(), Method::PATCH, "/v1/settings", body).await.0, 400, "{body}");
    }
    // `settings set` changes them from the command line.
    let out = succeeded(&cluster.cli(&["settings", "set", "--max-users", "50", "--output", "json"]), "settings set");
    let shown: wire::Settings = serde_json::from_str(&out).unwrap();
    assert_eq!(shown.max_users, 50);
}

#[tokio::test]
async fn lists_are_paged_and_a_cursor_walk_gives_everything_once() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    for i in 0..7 {
        admin.create_user(&wire::CreateUserRequest { name: format!("user-{i}"), role: "read".into() }).await.unwrap();
        admin.create_service_account(&account_sa(&format!("sa-{i}"), "read")).await.unwrap();
        admin.create_namespace(&format!("ns-{i}")).await.unwrap();
    }
    let all_users: Vec<String> = admin.list_users().await.unwrap().users.into_iter().map(|u| u.id).collect();
    assert_eq!(all_users.len(), 8, "the owner and seven");

    let mut walked = Vec::new();
    let mut page = Page { limit: Some(3), cursor: None };
    let mut pages = 0;
    loop {
        let answer = admin.list_users_page(&page).await.unwrap();
        pages += 1;
        assert!(answer.users.len() <= 3);
        walked.extend(answer.users.into_iter().map(|u| u.id));
        match answer.next_cursor {
            Some(next) => page.cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(walked, all_users, "every user once, in a stable order");
    assert_eq!(pages, 3);
    assert_eq!(walked.iter().collect::<BTreeSet<_>>().len(), walked.len());

    let first = admin.list_service_accounts_page(&Page { limit: Some(5), cursor: None }).await.unwrap();
    assert_eq!(first.service_accounts.len(), 5);
    let rest = admin.list_service_accounts_page(&Page { limit: Some(5), cursor: first.next_cursor }).await.unwrap();
    assert_eq!((rest.service_accounts.len(), rest.next_cursor), (2, None));
    let first = admin.list_namespaces_page(&Page { limit: Some(4), cursor: None }).await.unwrap();
    assert_eq!(first.next_cursor.as_deref(), Some("ns-3"));
    let rest = admin.list_namespaces_page(&Page { limit: Some(4), cursor: first.next_cursor }).await.unwrap();
    let names: Vec<_> = rest.namespaces.into_iter().map(|n| n.name).collect();
    assert_eq!((names, rest.next_cursor), (vec!["ns-4".into(), "ns-5".into(), "ns-6".into()], None));
    assert_eq!(admin.list_namespaces().await.unwrap().namespaces.len(), 7);

    for path in [
        "/v1/users?limit=0",
        "/v1/users?limit=1001",
        "/v1/service-accounts?cursor=nope",
        "/v1/namespaces?cursor=Bad!",
        "/v1/users?page=2",
    ] {
        assert_eq!(
            raw(&cluster, cluster.admin_key(), Method::GET, path, "").await,
            (400, "invalid_argument".into()),
            "{path}"
        );
    }
    // The CLI follows pages, or stops at --limit.
    let out = succeeded(&cluster.cli(&["user", "list", "--output", "json"]), "user list");
    assert_eq!(serde_json::from_str::<wire::UserList>(&out).unwrap().users.len(), 8);
    let out = succeeded(&cluster.cli(&["namespace", "list", "--limit", "2", "--output", "json"]), "namespace list");
    let cut: wire::NamespaceList = serde_json::from_str(&out).unwrap();
    assert_eq!((cut.namespaces.len(), cut.next_cursor.as_deref()), (2, Some("ns-1")));
}

#[tokio::test]
async fn names_with_bidi_controls_are_refused() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let spoof = "admin\u{202E}nimda";
    let req = wire::CreateUserRequest { name: spoof.into(), role: "read".into() };
    let refused = expect_refused(admin.create_user(&req).await, 400, "invalid_argument");
    assert!(refused.contains("bidirectional"), "{refused}");
    expect_refused(admin.create_key(&new_key(spoof)).await, 400, "invalid_argument");
    expect_refused(admin.create_service_account(&account_sa(spoof, "read")).await, 400, "invalid_argument");
}

/// README's first steps: the bootstrap key never expires, and the owner rotates it away with
/// `apikey rotate --grace 0 --duration ...`.
#[tokio::test]
async fn the_bootstrap_key_is_rotated_as_the_readme_says() {
    let cluster = Cluster::single().await;
    let owner = cluster.client(1);
    let me = owner.verify(&verify_req(cluster.admin_key(), None)).await.unwrap();
    let id = me.key_id.unwrap();
    assert_eq!(owner.get_key(&id).await.unwrap().value.expires_at, None, "the bootstrap key never expires");
    let file = cluster.dir().join("owner.key");
    let args = ["apikey", "rotate", "--id", &id, "--grace", "0", "--duration", "90d", "--file"];
    let file_arg = file.to_str().unwrap();
    succeeded(&cluster.cli(&[&args[..], &[file_arg]].concat()), "rotate the bootstrap key");
    let new_secret = std::fs::read_to_string(&file).unwrap();
    let new_secret = new_secret.trim();
    let old = owner.verify(&verify_req(cluster.admin_key(), None)).await.unwrap();
    assert!(!old.valid, "the old key ends at once: {old:?}");
    let new = owner.verify(&verify_req(new_secret, None)).await.unwrap();
    assert!(new.valid);
    let successor = cluster.client_as(new_secret).get_key(&new.key_id.unwrap()).await.unwrap().value;
    assert!(successor.expires_at.is_some(), "the successor expires");
}

/// Creating an account hands the operator no credential of it: the answer holds an enrollment
/// code for the new owner (redeemable once) and no key secret, and the operator's own key still
/// cannot see the new account's keys.
#[tokio::test]
async fn creating_an_account_hands_the_operator_no_credential_of_it() {
    let cluster = Cluster::single().await;
    let operator = cluster.client(1);
    let body = r#"{"name": "acme", "owner_name": "boss"}"#;
    let (status, text) = raw(&cluster, cluster.admin_key(), Method::POST, "/v1/accounts", body).await;
    assert_eq!(status, 201, "{text}");
    assert!(!text.contains("klk_"), "no key secret in the answer: {text}");
    let created: wire::CreatedAccount = serde_json::from_str(&text).unwrap();
    assert!(created.enrollment_code.starts_with("kle_"), "{text}");
    assert_eq!((created.owner.role.as_str(), created.owner.name.as_str()), ("owner", "boss"));
    // No key was made: the operator cannot list or verify anything of acme's.
    let answer = operator.verify(&verify_req(&created.enrollment_code, None)).await.unwrap();
    assert!(!answer.valid, "the code is no key: {answer:?}");

    // The new owner enrolls once, for a working owner key of acme.
    let first = enroll(&operator, &created.enrollment_code, "boss's laptop").await;
    assert_eq!((first.key.account.as_str(), first.key.owner.id.as_str()), ("acme", created.owner.id.as_str()));
    let answer = operator
        .verify(&wire::VerifyRequest { permission: Some("account:admin".into()), ..verify_req(&first.secret, None) })
        .await
        .unwrap();
    assert!(answer.valid, "{answer:?}");
    let anonymous = Client::new(operator.address(), None).unwrap();
    let again =
        wire::EnrollRequest { code: created.enrollment_code.clone(), name: "again".into(), ..Default::default() };
    expect_refused(anonymous.enroll(&again).await, 401, "unauthenticated");

    // The operator's own key still cannot read acme's keys or its owner.
    let status = operator.get_key(&first.key.id).await.unwrap_err().status();
    assert!(matches!(status, Some(403 | 404)), "{status:?}");
    let query = ListKeys { owner_id: Some(created.owner.id.clone()), ..Default::default() };
    match operator.list_keys(&query).await {
        Ok(list) => assert!(list.keys.is_empty(), "{list:?}"),
        Err(e) => assert!(matches!(e.status(), Some(403 | 404)), "{e}"),
    }
    expect_refused(operator.get_user(&created.owner.id).await, 404, "not_found");
}
