//! The audit trail end to end: a key's history, paging through `/v1/audit/events` with
//! filters, who may read it, the streamed export (JSON lines and CSV) and the CLI commands.

use keyledger_client::{AuditQuery, Client, ExportFormat, ExportRequest};
use keyledger_wire as wire;
use serde_json::Value;

use crate::util::{enroll, expect_refused, new_key, succeeded, user_with_key, Cluster};

/// Every event of the account, paging `limit` at a time.
async fn all_events(client: &Client, limit: u32) -> Vec<wire::AuditEvent> {
    let mut events = Vec::new();
    let mut after = None;
    loop {
        let page = client.audit_events(&AuditQuery { after, limit: Some(limit), ..Default::default() }).await.unwrap();
        assert!(page.events.len() <= limit as usize);
        events.extend(page.events);
        match page.next {
            Some(next) => {
                assert_eq!(Some(next), events.last().map(|e| e.seq), "`next` is the last seq of the page");
                after = Some(next);
            }
            None => return events,
        }
    }
}

async fn export_bytes(client: &Client, format: ExportFormat) -> Vec<u8> {
    let mut export = client.audit_export(&ExportRequest::new(format)).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = export.chunk().await.unwrap() {
        out.extend_from_slice(&chunk);
    }
    out
}

/// Checks the account's chain is continuous, the cluster chain wherever the account's events
/// are adjacent on it (the cluster's own checkpoints sit between them), and that every event's
/// hashes verify offline.
fn check_chain(events: &[wire::AuditEvent]) {
    let genesis = "0".repeat(64);
    for (i, event) in events.iter().enumerate() {
        let account_prev = match i {
            0 => genesis.clone(),
            _ => events[i - 1].account_hash.clone(),
        };
        assert_eq!(event.account_seq, i as u64 + 1, "account_seq is continuous");
        assert_eq!(event.account_prev_hash, account_prev, "seq {}: account_prev_hash", event.seq);
        match i {
            0 => assert_eq!((event.seq, &event.prev_hash), (1, &genesis), "the first event starts the cluster chain"),
            _ if event.seq == events[i - 1].seq + 1 => {
                assert_eq!(event.prev_hash, events[i - 1].hash, "seq {}: prev_hash", event.seq)
            }
            _ => assert!(event.seq > events[i - 1].seq, "seq grows"),
        }
        let model = keyledger_audit::from_export(event).unwrap_or_else(|e| panic!("seq {}: {e}", event.seq));
        assert!(model.hashes_are_valid(), "seq {} does not verify", event.seq);
    }
}

#[tokio::test]
async fn a_keys_history_lists_its_whole_life_in_order() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let key = admin.create_key(&new_key("audited")).await.unwrap().value.key;
    admin.disable_key(&key.id).await.unwrap();
    admin.enable_key(&key.id).await.unwrap();
    let update = wire::UpdateKeyRequest { name: Some("renamed".into()), description: None };
    admin.update_key(&key.id, &update, None).await.unwrap();
    let rotated = admin.rotate_key(&key.id, &wire::RotateKeyRequest::default()).await.unwrap().value;
    admin.delete_key(&key.id).await.unwrap();

    let history = admin.key_history(&key.id).await.unwrap();
    let types: Vec<&str> = history.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(types, ["created", "disabled", "enabled", "updated", "rotated", "deleted"]);
    assert!(history.events.windows(2).all(|w| w[0].seq < w[1].seq), "oldest first");
    assert_eq!(history.next, None);
    let admin_key = key.created_by.key_id.clone();
    for event in &history.events {
        assert_eq!(event.actor.kind, "user");
        assert_eq!(event.actor.id, key.created_by.id, "the admin did it");
        assert_eq!(event.actor.key_id, admin_key);
        assert!(!event.request_id.is_empty());
        assert_eq!(event.data["key_id"], key.id.as_str());
    }
    let request_ids: std::collections::BTreeSet<&str> = history.events.iter().map(|e| e.request_id.as_str()).collect();
    assert_eq!(request_ids.len(), history.events.len(), "one request each");
    assert_eq!(history.events[3].data["name"], "renamed");
    assert_eq!(history.events[4].data["replacement_key_id"], rotated.key.id.as_str());
    assert!(history.events[0].data.get("digest_commitment").is_some());

    // The replacement's history starts with its creation and has the rotation too.
    let replacement = admin.key_history(&rotated.key.id).await.unwrap();
    let types: Vec<&str> = replacement.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(types, ["created", "rotated"]);

    expect_refused(admin.key_history("key_nonexistent").await, 404, "not_found");
}

#[tokio::test]
async fn paging_covers_every_event_once_and_filters_work() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let mut ids = Vec::new();
    for i in 0..7 {
        let key = admin.create_key(&new_key(&format!("k{i}"))).await.unwrap().value.key;
        admin.disable_key(&key.id).await.unwrap();
        ids.push(key.id);
    }

    let events = all_events(&admin, 4).await;
    assert!(events.len() >= 3 + 14, "bootstrap and 14 changes: {}", events.len());
    check_chain(&events);
    let one_page = admin.audit_events(&AuditQuery::default()).await.unwrap();
    assert_eq!(one_page.next, None);
    assert_eq!(one_page.events[..events.len()], events[..], "a big page is the small pages together");

    let created =
        admin.audit_events(&AuditQuery { kind: Some("created".into()), ..Default::default() }).await.unwrap().events;
    assert_eq!(created.len(), 8, "the bootstrap key and seven more");
    assert!(created.iter().all(|e| e.kind == "created"));

    let of_key =
        admin.audit_events(&AuditQuery { key_id: Some(ids[3].clone()), ..Default::default() }).await.unwrap().events;
    let types: Vec<&str> = of_key.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(types, ["created", "disabled"]);
    let after_first = admin
        .audit_events(&AuditQuery { key_id: Some(ids[3].clone()), after: Some(of_key[0].seq), ..Default::default() })
        .await
        .unwrap()
        .events;
    assert_eq!(after_first, of_key[1..]);

    let by_system =
        admin.audit_events(&AuditQuery { actor: Some("system".into()), ..Default::default() }).await.unwrap().events;
    assert!(by_system.iter().all(|e| e.actor.kind == "system"));
    assert!(by_system.iter().any(|e| e.kind == "account_created"));

    for bad in [
        AuditQuery { kind: Some("nonsense".into()), ..Default::default() },
        AuditQuery { key_id: Some("usr_x".into()), ..Default::default() },
        AuditQuery { actor: Some("bob".into()), ..Default::default() },
        AuditQuery { limit: Some(0), ..Default::default() },
        AuditQuery { limit: Some(10_001), ..Default::default() },
        AuditQuery { from: Some("yesterday".into()), ..Default::default() },
    ] {
        expect_refused(admin.audit_events(&bad).await, 400, "invalid_argument");
    }
}

#[tokio::test]
async fn only_owners_and_admins_read_the_audit_trail() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let (_, dev_secret) = user_with_key(&admin, "dev", "developer").await;
    let dev = cluster.client_as(&dev_secret);
    expect_refused(dev.audit_events(&AuditQuery::default()).await, 403, "permission_denied");
    expect_refused(dev.audit_export(&ExportRequest::new(ExportFormat::Jsonl)).await, 403, "permission_denied");
    // A developer reads the history of its own key, not of the admin's.
    let own = dev.create_key(&new_key("mine")).await.unwrap().value.key;
    assert_eq!(dev.key_history(&own.id).await.unwrap().events[0].kind, "created");
    let admins = admin.create_key(&new_key("admins")).await.unwrap().value.key;
    expect_refused(dev.key_history(&admins.id).await, 404, "not_found");

    let (_, admin2_secret) = user_with_key(&admin, "second-admin", "admin").await;
    assert!(!cluster.client_as(&admin2_secret).audit_events(&AuditQuery::default()).await.unwrap().events.is_empty());
}

#[tokio::test]
async fn exports_hold_one_line_per_event_and_no_secret() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let mut secrets = vec![cluster.admin_key().to_string()];
    for i in 0..3 {
        let created = admin.create_key(&new_key(&format!("e{i}"))).await.unwrap().value;
        secrets.push(created.secret);
        admin.lock_key(&created.key.id).await.unwrap();
    }

    let jsonl = String::from_utf8(export_bytes(&admin, ExportFormat::Jsonl).await).unwrap();
    assert!(jsonl.ends_with('\n'));
    // The account's export carries the cluster chain's checkpoints too; the pages do not.
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["account"] != "_cluster")
        .collect();
    // Events written after the export began may follow in the pages, never precede.
    let events = all_events(&admin, 1000).await;
    assert!(events.len() >= lines.len() && lines.len() >= 9);
    for (line, event) in lines.iter().zip(&events) {
        assert_eq!(line, &serde_json::to_value(event).unwrap(), "a line is the events endpoint's object");
    }
    for secret in &secrets {
        assert!(!jsonl.contains(secret.as_str()));
    }
    assert!(!jsonl.contains("klk_"), "no secret in the export");

    let csv = String::from_utf8(export_bytes(&admin, ExportFormat::Csv).await).unwrap();
    let mut rows = csv.lines();
    assert_eq!(rows.next(), Some(keyledger_audit::CSV_HEADER));
    let rows: Vec<&str> = rows.filter(|row| !row.contains(",_cluster,")).collect();
    assert!(rows.len() >= lines.len());
    // Batched `used` events may have been written since the pages were read: compare the prefix.
    for (row, event) in rows.iter().zip(&events) {
        assert!(row.starts_with(&format!("{},{},", event.seq, event.time)), "{row}");
        assert!(row.ends_with(&event.account_hash));
    }
    assert!(!csv.contains("klk_"));

    // Only events in [from, to).
    let from = events[3].time.clone();
    let mut part = admin
        .audit_export(&ExportRequest { from: Some(from.clone()), ..ExportRequest::new(ExportFormat::Jsonl) })
        .await
        .unwrap();
    let mut text = Vec::new();
    while let Some(chunk) = part.chunk().await.unwrap() {
        text.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(text).unwrap();
    assert!(text.lines().all(|l| serde_json::from_str::<Value>(l).unwrap()["time"].as_str().unwrap() >= from.as_str()));
    expect_refused(
        admin
            .audit_export(&ExportRequest { from: Some("soon".into()), ..ExportRequest::new(ExportFormat::Jsonl) })
            .await,
        400,
        "invalid_argument",
    );
}

#[tokio::test]
async fn cli_history_and_export() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let key = admin.create_key(&new_key("cli-audited")).await.unwrap().value.key;
    admin.disable_key(&key.id).await.unwrap();

    let table = succeeded(&cluster.cli(&["history", "--id", &key.id]), "history");
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("SEQ") && lines[0].contains("REQUEST ID") && lines[0].contains("DETAILS"));
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[1].contains("created") && lines[2].contains("disabled"), "{table}");

    let json = succeeded(&cluster.cli(&["history", "--id", &key.id, "--output", "json"]), "history json");
    let list: wire::EventList = serde_json::from_str(&json).unwrap();
    assert_eq!(list.events, admin.key_history(&key.id).await.unwrap().events);

    let json = succeeded(&cluster.cli(&["audit", "events", "--type", "disabled", "--output", "json"]), "audit events");
    let list: wire::EventList = serde_json::from_str(&json).unwrap();
    assert_eq!(list.events.len(), 1);
    assert_eq!(list.events[0].data["key_id"], key.id.as_str());

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let out = cluster.cli(&["audit", "export", "--format", "jsonl", "--out", file.to_str().unwrap()]);
    succeeded(&out, "audit export");
    let text = std::fs::read_to_string(&file).unwrap();
    let events = all_events(&admin, 1000).await;
    let own = text.lines().filter(|l| !l.contains("\"account\":\"_cluster\"")).count();
    assert!(own >= 5 && own <= events.len(), "{own} of the account's events in the export");
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first, serde_json::to_value(&events[0]).unwrap());
    // An existing file is not overwritten.
    let again = cluster.cli(&["audit", "export", "--format", "csv", "--out", file.to_str().unwrap()]);
    assert!(!again.status.success());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
}

/// An auditor's check, with nothing but the binary: an export from a running node verifies
/// offline, and a tampered copy fails, naming the line.
#[tokio::test]
async fn an_export_verifies_offline_and_a_tampered_one_does_not() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    for name in ["a", "b", "c"] {
        let key = admin.create_key(&new_key(name)).await.unwrap().value.key;
        admin.disable_key(&key.id).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    succeeded(&cluster.cli(&["audit", "export", "--format", "jsonl", "--out", file.to_str().unwrap()]), "export");
    let report = succeeded(&cluster.cli(&["audit", "verify", file.to_str().unwrap()]), "verify");
    assert!(report.starts_with("OK:"), "{report}");

    // Rename a key in the third event and keep everything else: the hash no longer matches.
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let target = lines.iter().position(|l| l.contains("\"type\":\"created\"") && l.contains("\"name\":\"b\"")).unwrap();
    lines[target] = lines[target].replace("\"name\":\"b\"", "\"name\":\"B\"");
    let tampered = dir.path().join("tampered.jsonl");
    std::fs::write(&tampered, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    let out = cluster.cli(&["audit", "verify", tampered.to_str().unwrap()]);
    assert!(!out.status.success(), "a tampered export must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("line {}", target + 1)), "{stderr}");

    // A deleted line breaks its account's chain: the account's next line is named.
    lines = text.lines().map(str::to_string).collect();
    let removed = lines.remove(2);
    let account = |line: &str| serde_json::from_str::<Value>(line).unwrap()["account"].clone();
    let named = 1 + lines.iter().skip(2).position(|l| account(l) == account(&removed)).unwrap() + 2;
    std::fs::write(&tampered, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    let out = cluster.cli(&["audit", "verify", tampered.to_str().unwrap()]);
    assert!(!out.status.success(), "a gap must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("line {named}:")) && stderr.contains("missing"), "{stderr}");
}

/// "Was this key valid at that moment, and who disabled it?" — answered from the ledger.
#[tokio::test]
async fn verification_as_of_a_past_moment_names_the_deciding_event() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let created = admin.create_key(&new_key("incident")).await.unwrap().value;
    let id = created.key.id.clone();
    admin.disable_key(&id).await.unwrap();
    let history = admin.key_history(&id).await.unwrap().events;
    let (create_time, disable_time) = (history[0].time.clone(), history[1].time.clone());
    let as_of = |at: String, by_secret: bool| {
        let req = wire::VerifyAsOfRequest {
            key: by_secret.then(|| created.secret.clone()),
            key_id: (!by_secret).then(|| id.clone()),
            at,
            permission: None,
        };
        let admin = admin.clone();
        async move { admin.verify_as_of(&req).await.unwrap() }
    };

    // After the disable: refused, and the disable event (with its actor) is named.
    let after = as_of(disable_time.clone(), true).await;
    assert!(!after.verdict.valid);
    assert_eq!(after.verdict.code.as_deref(), Some("disabled"));
    let decided = after.decided_by.expect("the deciding event");
    assert_eq!((decided.kind.as_str(), decided.seq), ("disabled", history[1].seq));
    assert_eq!(decided.actor.key_id, created.key.created_by.key_id);

    // Between creation and disable (when they are a millisecond or more apart): valid.
    let before_disable = keyledger_model::Timestamp::parse_rfc3339(&disable_time).unwrap().0 - 1;
    let before_disable = keyledger_model::Timestamp(before_disable).to_string();
    if before_disable >= create_time {
        let during = as_of(before_disable, false).await;
        assert!(during.verdict.valid, "{during:?}");
        assert_eq!(during.decided_by.unwrap().kind, "created");
    }

    // Before the key existed: not found, nothing decided.
    let before = as_of("2020-01-01T00:00:00Z".into(), false).await;
    assert_eq!((before.verdict.code.as_deref(), before.decided_by), (Some("not_found"), None));

    // The same from the command line: exit 3 (not valid) and the deciding event named.
    let out = cluster.cli(&["verify", "--at", &disable_time, "--key-id", &id]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("disabled") && text.contains(&format!("decided by event {}", history[1].seq)), "{text}");

    // Only owners and admins may ask; a bad time is a 400.
    let (_, developer_key) = user_with_key(&admin, "dev", "developer").await;
    let req = wire::VerifyAsOfRequest { key_id: Some(id.clone()), at: disable_time, ..Default::default() };
    expect_refused(cluster.client_as(&developer_key).verify_as_of(&req).await, 403, "permission_denied");
    let req = wire::VerifyAsOfRequest { key_id: Some(id), at: "yesterday".into(), ..Default::default() };
    expect_refused(admin.verify_as_of(&req).await, 400, "invalid_argument");
}

/// Reads server-sent events from `response` until `want` messages arrived (or the deadline):
/// each as (id, EVENT).
async fn read_sse(response: &mut reqwest::Response, want: usize, buffer: &mut String) -> Vec<(u64, Value)> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut messages = Vec::new();
    while messages.len() < want {
        while let Some(end) = buffer.find("\n\n").filter(|_| messages.len() < want) {
            let block: String = buffer.drain(..end + 2).collect();
            let id = block.lines().find_map(|l| l.strip_prefix("id:")).map(|v| v.trim().parse::<u64>().unwrap());
            let data = block.lines().find_map(|l| l.strip_prefix("data:")).map(str::trim);
            if let (Some(id), Some(data)) = (id, data) {
                messages.push((id, serde_json::from_str(data).unwrap()));
            }
        }
        if messages.len() >= want {
            break;
        }
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("only {} of {want} events arrived in time", messages.len()))
            .unwrap()
            .expect("the stream stays open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
    messages
}

#[tokio::test]
async fn the_change_feed_replays_then_follows_and_resumes() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    admin.create_key(&new_key("before")).await.unwrap();
    let stored = all_events(&admin, 1000).await;
    let open = |after: Option<u64>| {
        let mut request = cluster
            .http()
            .get(format!("{}/v1/audit/stream", cluster.node(1).url()))
            .bearer_auth(cluster.admin_key())
            .timeout(std::time::Duration::from_secs(60));
        if let Some(after) = after {
            request = request.header("last-event-id", after.to_string());
        }
        request.send()
    };
    let mut response = open(None).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut buffer = String::new();
    let first = read_sse(&mut response, stored.len(), &mut buffer).await;
    let ids: Vec<u64> = first.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, stored.iter().map(|e| e.seq).collect::<Vec<_>>(), "every stored event, in order");
    assert_eq!(first[0].1, serde_json::to_value(&stored[0]).unwrap());

    // A new event arrives on the open stream (batched `used` events may come first).
    let key = admin.create_key(&new_key("after")).await.unwrap().value.key;
    let mut last_id = *ids.last().unwrap();
    loop {
        let (id, event) = read_sse(&mut response, 1, &mut buffer).await.remove(0);
        assert!(id > last_id, "ids only grow");
        last_id = id;
        if event["type"] == "created" {
            assert_eq!(event["data"]["key_id"], key.id.as_str());
            break;
        }
        assert_eq!(event["type"], "used", "only use records may come before it");
    }

    // Resuming after a seq starts right after it.
    let resume_after = ids[ids.len() / 2];
    let mut resumed = open(Some(resume_after)).await.unwrap();
    let mut buffer = String::new();
    let again = read_sse(&mut resumed, 1, &mut buffer).await;
    assert_eq!(again[0].0, ids[ids.len() / 2 + 1]);

    let (_, developer_key) = user_with_key(&admin, "dev", "developer").await;
    let refused = cluster
        .http()
        .get(format!("{}/v1/audit/stream", cluster.node(1).url()))
        .bearer_auth(developer_key)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
}

/// Each account reads its own trail only, and its export verifies on its own chain.
#[tokio::test]
async fn each_account_reads_and_exports_only_its_own_trail() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let request = wire::CreateAccountRequest { name: "acme".into(), owner_name: "acme-owner".into() };
    let code = admin.create_account(&request).await.unwrap().value.enrollment_code;
    let acme = cluster.client_as(&enroll(&admin, &code, "acme-owner").await.secret);
    acme.create_key(&new_key("acme-key")).await.unwrap();
    admin.create_key(&new_key("default-key")).await.unwrap();

    for (client, account) in [(&admin, "default"), (&acme, "acme")] {
        let events = all_events(client, 1000).await;
        assert!(!events.is_empty());
        assert!(events.iter().all(|e| e.account == account), "{account} sees only its own events");
        let jsonl = export_bytes(client, ExportFormat::Jsonl).await;
        let verified = keyledger_audit::verify::verify_jsonl(&jsonl[..], keyledger_audit::verify::Expect::Complete)
            .expect("an account's export verifies on its own chain");
        assert_eq!(verified.accounts.keys().collect::<Vec<_>>(), ["_cluster", account], "and the cluster's chain");
    }
}
