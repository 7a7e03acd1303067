//! Webhooks on real nodes: signed deliveries in ledger order, retries recorded in the delivery
//! log, a leader killed mid-stream (no delivery lost, a repeat keeps its id), refused URLs, and
//! who may see and change a webhook.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use keyledger_client::{Client, Page};
use keyledger_wire as wire;

use crate::util::{enroll, expect_refused, new_key, poll, user_with_key, Cluster, CONVERGE};
use crate::webhook_receiver::Receiver;

/// Loopback receivers need both: the tests' receivers are plain HTTP on 127.0.0.1.
const OPEN: &[&str] = &["--webhook-allow-http", "--webhook-allow-private-networks"];

fn hook(url: &str, types: &[&str]) -> wire::CreateWebhookRequest {
    wire::CreateWebhookRequest {
        url: url.to_string(),
        event_types: types.iter().map(|t| t.to_string()).collect(),
        description: Some("test".into()),
    }
}

const ALL: &[&str] = &["key.created", "key.disabled", "key.deleted", "key.leaked"];

async fn deliveries(client: &Client, id: &str) -> Vec<wire::WebhookDelivery> {
    client.list_webhook_deliveries_page(id, &Page::default()).await.unwrap().deliveries
}

#[tokio::test]
async fn deliveries_arrive_signed_in_ledger_order_and_are_logged() {
    let cluster = Cluster::start_with(1, OPEN).await;
    let admin = cluster.client(1);
    let before = admin.create_key(&new_key("before-the-webhook")).await.unwrap().value;
    let receiver = Receiver::start(0, Duration::ZERO).await;
    let created = admin.create_webhook(&hook(&receiver.url, ALL)).await.unwrap().value;
    let (webhook, secret) = (created.webhook, created.secret);
    assert!(secret.starts_with("whsec_"), "{secret}");
    let shown = serde_json::to_string(&admin.get_webhook(&webhook.id).await.unwrap()).unwrap();
    assert!(!shown.contains(&secret), "the secret is shown only once");

    let a = admin.create_key(&new_key("a")).await.unwrap().value;
    admin.disable_key(&a.key.id).await.unwrap();
    admin.delete_key(&a.key.id).await.unwrap();
    let b = admin.create_key(&new_key("b")).await.unwrap().value;
    admin.report_leaked(&wire::LeakReport { key: b.secret.clone(), source: "a paste".into() }).await.unwrap();

    let expected = [
        ("key.created", &a.key.id),
        ("key.disabled", &a.key.id),
        ("key.deleted", &a.key.id),
        ("key.created", &b.key.id),
        ("key.leaked", &b.key.id),
        ("key.disabled", &b.key.id),
    ];
    let got = poll("six deliveries", CONVERGE, async || {
        let got = receiver.accepted();
        if got.len() >= expected.len() {
            Ok(got)
        } else {
            Err(format!("{} so far", got.len()))
        }
    })
    .await;
    assert_eq!(got.len(), expected.len(), "nothing else is delivered: {got:?}");
    let mut last_position = 0;
    for (received, (event_type, key_id)) in got.iter().zip(expected) {
        let body = received.json();
        assert_eq!(received.event, event_type);
        assert_eq!(body["type"], event_type);
        assert_eq!(body["data"]["key_id"], key_id.as_str());
        assert_ne!(body["data"]["key_id"], before.key.id.as_str());
        assert_eq!(body["account"], "default");
        let position = body["position"].as_u64().unwrap();
        assert!(position > last_position, "in ledger order");
        last_position = position;
        assert_eq!(received.delivery, format!("{}-{position}", webhook.id));
        assert_eq!(body["id"], received.delivery.as_str());
        assert!(received.verifies_with(&secret), "signed with the secret the API showed");
        assert!(!received.verifies_with(&format!("{secret}0")), "a wrong secret does not verify");
        let text = String::from_utf8_lossy(&received.body);
        assert!(!text.contains(&b.secret) && !text.contains("digest"), "no secret in a payload: {text}");
    }
    // A tampered body does not verify either.
    let mut tampered = got[0].body.clone();
    tampered[0] = b' ';
    assert!(!crate::webhook_receiver::verify(&secret, &got[0].signature, &tampered));

    // The log: every delivery once, newest first, one attempt each; the cursor at the last.
    let log = poll("the delivery log", CONVERGE, async || {
        let log = deliveries(&admin, &webhook.id).await;
        if log.len() == expected.len() {
            Ok(log)
        } else {
            Err(format!("{log:?}"))
        }
    })
    .await;
    assert!(log.iter().all(|d| d.delivered && d.attempts == 1 && d.result == "204"), "{log:?}");
    assert_eq!(log[0].position, last_position);
    assert_eq!(admin.get_webhook(&webhook.id).await.unwrap().cursor, last_position);
    let page = admin.list_webhook_deliveries_page(&webhook.id, &Page { limit: Some(4), cursor: None }).await.unwrap();
    let rest =
        admin.list_webhook_deliveries_page(&webhook.id, &Page { limit: Some(4), cursor: page.next_cursor }).await;
    assert_eq!(page.deliveries.len() + rest.unwrap().deliveries.len(), expected.len());

    // Rotated: the old secret no longer signs; deleted: nothing more arrives.
    let rotated = admin.rotate_webhook_secret(&webhook.id).await.unwrap().value;
    assert_ne!(rotated.secret, secret);
    admin.create_key(&new_key("c")).await.unwrap();
    let after_rotation = poll("a delivery after the rotation", CONVERGE, async || {
        receiver.accepted().get(expected.len()).cloned().ok_or_else(|| "not yet".to_string())
    })
    .await;
    assert!(after_rotation.verifies_with(&rotated.secret) && !after_rotation.verifies_with(&secret));
    admin.delete_webhook(&webhook.id).await.unwrap();
    expect_refused(admin.get_webhook(&webhook.id).await, 404, "not_found");
}

#[tokio::test]
async fn a_receiver_failing_twice_gets_the_delivery_on_the_third_attempt() {
    let cluster = Cluster::start_with(1, OPEN).await;
    let admin = cluster.client(1);
    let receiver = Receiver::start(2, Duration::ZERO).await;
    let webhook = admin.create_webhook(&hook(&receiver.url, &["key.created"])).await.unwrap().value.webhook;
    let key = admin.create_key(&new_key("retried")).await.unwrap().value;
    let log = poll("a delivery after three attempts", Duration::from_secs(30), async || {
        let log = deliveries(&admin, &webhook.id).await;
        if log.is_empty() {
            Err("no delivery recorded yet".to_string())
        } else {
            Ok(log)
        }
    })
    .await;
    assert_eq!(log.len(), 1);
    assert!(log[0].delivered && log[0].attempts == 3 && log[0].result == "204", "{log:?}");
    let received = receiver.received();
    assert_eq!(received.iter().map(|r| r.answered).collect::<Vec<_>>(), [503, 503, 204]);
    assert!(received.iter().all(|r| r.delivery == received[0].delivery), "every attempt has the same id");
    assert_eq!(received[2].json()["data"]["key_id"], key.key.id.as_str());
    // The node counts them: one delivery, three attempts.
    let metrics = cluster.http().get(format!("{}/metrics", cluster.node(1).url())).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    for line in [
        "keyledger_webhook_deliveries{outcome=\"delivered\"} 1",
        "keyledger_webhook_deliveries{outcome=\"failed\"} 0",
        "keyledger_webhook_attempts 3",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
}

#[tokio::test]
async fn a_leader_killed_mid_stream_loses_no_delivery() {
    let mut cluster = Cluster::start_with(3, OPEN).await;
    let leader = cluster.leader().await;
    let survivor = if leader == 1 { 2 } else { 1 };
    let admin = cluster.client(survivor);
    let room = wire::UpdateSettingsRequest { max_keys_per_user: Some(100), ..Default::default() };
    admin.update_settings(&room).await.unwrap();
    // A slow receiver, so that deliveries are still going when the leader dies.
    let receiver = Receiver::start(0, Duration::from_millis(150)).await;
    let webhook = admin.create_webhook(&hook(&receiver.url, &["key.created"])).await.unwrap().value;
    let mut keys = BTreeSet::new();
    for i in 0..12 {
        keys.insert(admin.create_key(&new_key(&format!("k{i}"))).await.unwrap().value.key.id);
    }
    poll("a few deliveries", CONVERGE, async || {
        let n = receiver.accepted().len();
        if n >= 3 {
            Ok(())
        } else {
            Err(format!("{n} so far"))
        }
    })
    .await;
    let before_kill = receiver.accepted().len();
    cluster.kill(leader);
    assert!(before_kill < keys.len(), "the leader died with deliveries still to make");
    for i in 12..17 {
        let key = poll("a write after the failover", CONVERGE, async || {
            admin.create_key(&new_key(&format!("k{i}"))).await.map_err(|e| e.to_string())
        })
        .await;
        keys.insert(key.value.key.id);
    }
    let got = poll("every key's delivery", Duration::from_secs(60), async || {
        let got = receiver.accepted();
        let delivered: BTreeSet<String> =
            got.iter().map(|r| r.json()["data"]["key_id"].as_str().unwrap().to_string()).collect();
        if delivered == keys {
            Ok(got)
        } else {
            Err(format!("{} of {} keys", delivered.len(), keys.len()))
        }
    })
    .await;
    // A delivery sent twice (by the old leader and again by the new) keeps its id and body.
    let mut by_id: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut first_positions = Vec::new();
    for received in &got {
        assert!(received.verifies_with(&webhook.secret));
        match by_id.get(&received.delivery) {
            Some(body) => assert_eq!(body, &received.body, "a repeat is the same delivery"),
            None => {
                first_positions.push(received.json()["position"].as_u64().unwrap());
                by_id.insert(received.delivery.clone(), received.body.clone());
            }
        }
    }
    assert_eq!(by_id.len(), keys.len());
    assert!(first_positions.windows(2).all(|w| w[0] < w[1]), "first arrivals in ledger order: {first_positions:?}");
    // The log records each delivery once, on every surviving node.
    poll("the log of every delivery", CONVERGE, async || {
        let log = deliveries(&admin, &webhook.webhook.id).await;
        let ids: BTreeSet<String> = log.iter().map(|d| d.id.clone()).collect();
        if log.len() == keys.len() && ids.len() == keys.len() {
            Ok(())
        } else {
            Err(format!("{} logged", log.len()))
        }
    })
    .await;
}

#[tokio::test]
async fn refused_urls_are_400_and_nothing_is_written() {
    let strict = Cluster::single().await;
    let admin = strict.client(1);
    let head = strict.own_ledger_head(1).await.unwrap();
    let receiver = Receiver::start(0, Duration::ZERO).await;
    let https_loopback = receiver.url.replace("http://", "https://");
    for url in [
        receiver.url.as_str(),
        https_loopback.as_str(),
        "ftp://example.com/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.1/hook",
        "https://[::1]/hook",
        "https://user:pw@example.com/hook",
        "not a url",
    ] {
        let message = expect_refused(admin.create_webhook(&hook(url, ALL)).await, 400, "invalid_argument");
        assert!(message.contains("url"), "{url}: {message}");
    }
    expect_refused(admin.create_webhook(&hook("https://example.com/", &[])).await, 400, "invalid_argument");
    expect_refused(
        admin.create_webhook(&hook("https://example.com/", &["key.rotated"])).await,
        400,
        "invalid_argument",
    );
    assert!(admin.list_webhooks_page(&Page::default()).await.unwrap().webhooks.is_empty());
    assert_eq!(strict.own_ledger_head(1).await.unwrap(), head, "nothing written");

    // Even where private networks are allowed: link-local (cloud metadata) and the cluster's
    // own address stay refused.
    let open = Cluster::start_with(1, OPEN).await;
    let admin = open.client(1);
    let own = format!("{}/v1/keys", open.node(1).url());
    for url in ["http://169.254.169.254/latest/meta-data", own.as_str()] {
        expect_refused(admin.create_webhook(&hook(url, ALL)).await, 400, "invalid_argument");
    }
}

#[tokio::test]
async fn other_accounts_and_lesser_roles_cannot_see_or_change_a_webhook() {
    let cluster = Cluster::start_with(1, OPEN).await;
    let admin = cluster.client(1);
    let receiver = Receiver::start(0, Duration::ZERO).await;
    let webhook = admin.create_webhook(&hook(&receiver.url, ALL)).await.unwrap().value.webhook;

    let acme = admin
        .create_account(&wire::CreateAccountRequest { name: "acme".into(), owner_name: "boss".into() })
        .await
        .unwrap()
        .value;
    let acme_owner = cluster.client_as(&enroll(&admin, &acme.enrollment_code, "boss").await.secret);
    expect_refused(acme_owner.get_webhook(&webhook.id).await, 404, "not_found");
    expect_refused(acme_owner.delete_webhook(&webhook.id).await, 404, "not_found");
    expect_refused(acme_owner.rotate_webhook_secret(&webhook.id).await, 404, "not_found");
    expect_refused(acme_owner.list_webhook_deliveries_page(&webhook.id, &Page::default()).await, 404, "not_found");
    assert!(acme_owner.list_webhooks_page(&Page::default()).await.unwrap().webhooks.is_empty());

    let (_, developer) = user_with_key(&admin, "dev", "developer").await;
    let developer = cluster.client_as(&developer);
    expect_refused(developer.list_webhooks_page(&Page::default()).await, 403, "permission_denied");
    expect_refused(developer.get_webhook(&webhook.id).await, 403, "permission_denied");
    expect_refused(developer.create_webhook(&hook(&receiver.url, ALL)).await, 403, "permission_denied");
    expect_refused(developer.delete_webhook(&webhook.id).await, 403, "permission_denied");
    assert_eq!(admin.get_webhook(&webhook.id).await.unwrap().id, webhook.id, "still there");
}

#[tokio::test]
async fn the_cli_manages_webhooks() {
    let cluster = Cluster::start_with(1, OPEN).await;
    let receiver = Receiver::start(0, Duration::ZERO).await;
    let json = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let stdout = crate::util::succeeded(&cluster.cli(&all), &format!("keyledger {args:?}"));
        serde_json::from_str::<serde_json::Value>(&stdout).expect("JSON output")
    };
    let created =
        json(&["webhook", "create", "--url", &receiver.url, "--event", "key.created", "--event", "key.leaked"]);
    let id = created["webhook"]["id"].as_str().unwrap().to_string();
    let secret = created["secret"].as_str().unwrap().to_string();
    assert_eq!(created["webhook"]["event_types"], serde_json::json!(["key.created", "key.leaked"]));
    assert_eq!(json(&["webhook", "list"])["webhooks"][0]["id"], id.as_str());
    assert!(!json(&["webhook", "show", "--id", &id]).to_string().contains(&secret));
    cluster.client(1).create_key(&new_key("seen")).await.unwrap();
    let log = poll("a delivery in the log", CONVERGE, async || {
        let log = json(&["webhook", "deliveries", "--id", &id]);
        if log["deliveries"].as_array().unwrap().is_empty() {
            Err(log.to_string())
        } else {
            Ok(log)
        }
    })
    .await;
    assert_eq!(log["deliveries"][0]["type"], "key.created");
    let rotated = json(&["webhook", "rotate-secret", "--id", &id]);
    assert_ne!(rotated["secret"], secret.as_str());
    let table = crate::util::succeeded(&cluster.cli(&["webhook", "list"]), "webhook list");
    assert!(table.contains(&id) && !table.contains("whsec_"), "{table}");

    // Refusals: a clear message and a non-zero exit, nothing created.
    let refused = cluster.cli(&["webhook", "create", "--url", &receiver.url, "--event", "key.rotated"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unknown webhook event type"), "{refused:?}");
    let refused = cluster.cli(&["webhook", "create", "--url", "ftp://example.com/", "--event", "key.created"]);
    assert!(!refused.status.success());
    // Deleting asks first; without a terminal to ask at, only --yes deletes.
    let refused = cluster.cli(&["webhook", "delete", "--id", &id]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"), "{refused:?}");
    assert_eq!(json(&["webhook", "delete", "--id", &id, "--yes"])["deleted"], true);
    assert!(json(&["webhook", "list"])["webhooks"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_key_entering_the_warning_window_is_delivered_as_expiring() {
    let cluster = Cluster::start_with(1, OPEN).await;
    let admin = cluster.client(1);
    let receiver = Receiver::start(0, Duration::ZERO).await;
    let webhook = admin.create_webhook(&hook(&receiver.url, &["key.expiring"])).await.unwrap().value;
    let later = admin.create_key(&new_key("in-30-days")).await.unwrap().value;
    let soon = wire::CreateKeyRequest { expires_in: Some("3d".into()), ..new_key("in-3-days") };
    let soon = admin.create_key(&soon).await.unwrap().value;
    let got = poll("the expiry warning", CONVERGE, async || {
        receiver.accepted().first().cloned().ok_or_else(|| "none yet".to_string())
    })
    .await;
    let body = got.json();
    assert_eq!((got.event.as_str(), &body["type"]), ("key.expiring", &serde_json::json!("key.expiring")));
    assert_eq!(body["data"]["key_id"], soon.key.id.as_str());
    assert_eq!(body["data"]["expires_at"], serde_json::json!(soon.key.expires_at));
    assert!(got.verifies_with(&webhook.secret));
    // Once: the sweep runs every second and finds nothing more to warn of.
    poll("the delivery recorded", CONVERGE, async || {
        let n = deliveries(&admin, &webhook.webhook.id).await.len();
        if n == 1 {
            Ok(())
        } else {
            Err(format!("{n} recorded"))
        }
    })
    .await;
    tokio::time::timeout(Duration::from_secs(3), async {
        while receiver.accepted().len() == 1 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect_err("no second warning for the same expiry");
    assert!(receiver.accepted().iter().all(|r| r.json()["data"]["key_id"] != later.key.id.as_str()));
}
