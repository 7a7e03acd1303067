//! Leak reports: `POST /v1/keys/leaked` needs no credential, answers the same `202 {}` for any
//! well-formed key, and the account's `action_when_leaked` decides what happens to the key.

use std::time::Duration;

use keyledger_wire as wire;

use crate::enrollment::export_jsonl;
use crate::util::{expect_refused, new_key, poll, user_with_key, verify_req, Cluster};

fn report(key: &str, source: &str) -> wire::LeakReport {
    wire::LeakReport { key: key.into(), source: source.into() }
}

/// Waits until verifying `secret` answers `code` (`valid` for a valid key).
async fn wait_verdict(cluster: &Cluster, secret: &str, code: &str) {
    let client = cluster.client(1);
    poll(&format!("the key to verify as {code}"), Duration::from_secs(10), async || {
        let answer = client.verify(&verify_req(secret, None)).await.map_err(|e| e.to_string())?;
        let got = if answer.valid { "valid".to_string() } else { answer.code.unwrap_or_default() };
        if got == code {
            Ok(())
        } else {
            Err(got)
        }
    })
    .await
}

/// The `leaked` events of the export, as JSON.
async fn leaked_events(cluster: &Cluster) -> Vec<serde_json::Value> {
    export_jsonl(cluster)
        .await
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|event| event["type"] == "leaked")
        .collect()
}

#[tokio::test]
async fn a_leak_report_disables_the_key_and_unknown_keys_get_the_same_answer() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let (_, secret) = user_with_key(&admin, "dev", "developer").await;
    let anonymous = keyledger_client::Client::new(cluster.node(1).url(), None).unwrap();

    let source = "https://scanner.example/findings/42";
    assert_eq!(anonymous.report_leaked(&report(&secret, source)).await.unwrap(), wire::LeakReportAccepted {});
    wait_verdict(&cluster, &secret, "disabled").await;

    // The same status and body, byte for byte, for a key that never existed, a deleted one
    // and the one already reported.
    let deleted = admin.create_key(&new_key("throwaway")).await.unwrap().value;
    admin.delete_key(&deleted.key.id).await.unwrap();
    let raw = |key: String| {
        let body = serde_json::to_string(&report(&key, "x")).unwrap();
        let request = cluster
            .http()
            .post(format!("{}/v1/keys/leaked", cluster.node(1).url()))
            .header("content-type", "application/json")
            .body(body);
        async move {
            let answer = request.send().await.unwrap();
            (answer.status().as_u16(), answer.text().await.unwrap())
        }
    };
    let known = raw(secret.clone()).await;
    assert_eq!(known, (202, "{}".to_string()));
    assert_eq!(raw(never_existed()).await, known);
    assert_eq!(raw(deleted.secret.clone()).await, known);
    // Repeating the report wrote nothing more: one leaked event for the key, with its source.
    let events = poll("the leaked event", Duration::from_secs(10), async || {
        let events = leaked_events(&cluster).await;
        if events.is_empty() {
            Err("none yet".to_string())
        } else {
            Ok(events)
        }
    })
    .await;
    let of_key: Vec<_> = events.iter().filter(|e| e["data"]["source"] == source).collect();
    assert_eq!(of_key.len(), 1, "{events:?}");
    assert_eq!(of_key[0]["data"]["action"], "disable");
    assert_eq!(of_key[0]["data"]["reporter"], "127.0.0.1");
    assert_eq!(of_key[0]["actor"]["kind"], "system");

    // A body that is not a report, or a string that is not a keyledger key: 400.
    expect_refused(anonymous.report_leaked(&report("klk_nope", "x")).await, 400, "invalid_argument");
}

/// A well-formed token that no key has (a freshly generated one).
fn never_existed() -> String {
    use rand_core::SeedableRng;
    keyledger_model::token::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(7)).expose().to_string()
}

#[tokio::test]
async fn with_action_none_the_key_stays_valid_but_the_leak_is_recorded() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let none = wire::UpdateSettingsRequest { action_when_leaked: Some("none".into()), ..Default::default() };
    assert_eq!(admin.update_settings(&none).await.unwrap().value.action_when_leaked, "none");
    assert_eq!(admin.get_settings().await.unwrap().action_when_leaked, "none");
    let bad = wire::UpdateSettingsRequest { action_when_leaked: Some("ignore".into()), ..Default::default() };
    expect_refused(admin.update_settings(&bad).await, 400, "invalid_argument");
    let (_, secret) = user_with_key(&admin, "dev", "developer").await;

    let anonymous = keyledger_client::Client::new(cluster.node(1).url(), None).unwrap();
    anonymous.report_leaked(&report(&secret, "gist")).await.unwrap();
    let events = poll("the leaked event", Duration::from_secs(10), async || {
        let events = leaked_events(&cluster).await;
        if events.is_empty() {
            Err("none yet".to_string())
        } else {
            Ok(events)
        }
    })
    .await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["data"]["action"], "none");
    wait_verdict(&cluster, &secret, "valid").await;

    // `delete`: the next leak deletes.
    let delete = wire::UpdateSettingsRequest { action_when_leaked: Some("delete".into()), ..Default::default() };
    admin.update_settings(&delete).await.unwrap();
    let (_, other) = user_with_key(&admin, "ops", "developer").await;
    anonymous.report_leaked(&report(&other, "paste")).await.unwrap();
    wait_verdict(&cluster, &other, "deleted").await;
}
