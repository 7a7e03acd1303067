//! Last use recorded with a granularity: a key verified over and over on every node of a
//! cluster gets one `used` event per period, and the period is the operator's setting.

use keyledger_wire as wire;

use crate::util::{expect_refused, new_key, poll, user_with_key, verify_req, Cluster};

/// The batched `used` events are written every 2 s; generous for a loaded machine.
const BACKGROUND: std::time::Duration = std::time::Duration::from_secs(15);

async fn used_events(client: &keyledger_client::Client, key: &str) -> usize {
    let history = client.key_history(key).await.unwrap();
    history.events.iter().filter(|e| e.kind == "used").count()
}

#[tokio::test]
async fn three_nodes_verifying_one_key_for_several_periods_write_one_used_event() {
    let cluster = Cluster::start(3).await;
    let admin = cluster.client(1);
    let created = admin.create_key(&new_key("busy")).await.unwrap().value;
    let id = created.key.id.clone();
    // Every node sees the key for at least three flush periods (2 s each).
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(7) {
        for node in cluster.running() {
            let answer = cluster.client(node).verify(&verify_req(&created.secret, None)).await.unwrap();
            assert!(answer.valid, "{answer:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let used = poll("last_used_at to be set", BACKGROUND, async || {
        let key = admin.get_key(&id).await.map_err(|e| e.to_string())?.value;
        key.last_used_at.clone().ok_or_else(|| "not yet".to_string())
    })
    .await;
    // One more flush period for any late report, then count.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(used_events(&admin, &id).await, 1, "one period, one event, whichever node reported it");
    let key = admin.get_key(&id).await.unwrap().value;
    assert_eq!(key.last_used_at.as_deref(), Some(used.as_str()));
    assert_eq!(key.revision, created.key.revision, "use is not a state change");
    // The admin's own key authenticated every call above: it too has at most one.
    let admin_key = admin.verify(&verify_req(cluster.admin_key(), None)).await.unwrap().key_id.unwrap();
    assert!(used_events(&admin, &admin_key).await <= 1);
}

#[tokio::test]
async fn the_granularity_is_the_operators_setting() {
    let cluster = Cluster::single().await;
    let operator = cluster.client(1);
    assert_eq!(operator.get_settings().await.unwrap().last_used_granularity, "1h");
    let set = |text: &str| wire::UpdateSettingsRequest {
        last_used_granularity: Some(text.to_string()),
        ..Default::default()
    };
    let changed = operator.update_settings(&set("5m")).await.unwrap().value;
    assert_eq!(changed.last_used_granularity, "5m");
    for bad in ["30s", "8d", "often"] {
        expect_refused(operator.update_settings(&set(bad)).await, 400, "invalid_argument");
    }
    // An admin of `default` is not the operator; everyone may read it.
    let (_, admin_secret) = user_with_key(&operator, "second-admin", "admin").await;
    let admin = cluster.client_as(&admin_secret);
    expect_refused(admin.update_settings(&set("2h")).await, 403, "permission_denied");
    assert_eq!(admin.get_settings().await.unwrap().last_used_granularity, "5m");
    let events = operator.audit_events(&Default::default()).await.unwrap().events;
    assert_eq!(events.iter().filter(|e| e.kind == "usage_granularity_changed").count(), 1);
}
