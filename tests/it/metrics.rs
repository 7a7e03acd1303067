//! `GET /metrics`: the Prometheus text parses line by line, counters move by exactly what was
//! sent (verifications by result, requests by route template, requests without a valid key,
//! writes by outcome), no secret or key id shows, the Raft gauges name one leader, and the
//! process metrics are there.

use std::collections::BTreeMap;

use keyledger_wire as wire;

use crate::util::{new_key, poll, verify_req, Cluster, CONVERGE};

/// One scrape: the raw text and its samples by name and labels.
struct Scrape {
    text: String,
    samples: BTreeMap<(String, BTreeMap<String, String>), f64>,
}

impl Scrape {
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.samples.get(&(name.to_string(), labels)).copied()
    }

    /// A gauge that must be there.
    fn gauge(&self, name: &str) -> f64 {
        self.value(name, &[]).unwrap_or_else(|| panic!("no {name} in:\n{}", self.text))
    }

    /// A counter; one not shown yet has counted nothing.
    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or(0.0)
    }

    fn has_family(&self, prefix: &str) -> bool {
        self.samples.keys().any(|(name, _)| name.starts_with(prefix))
    }
}

/// `GET /metrics` on node `id`, without a key, checked for the format as it is parsed.
async fn scrape(cluster: &Cluster, id: u64) -> Scrape {
    let answer = cluster.http().get(format!("{}/metrics", cluster.node(id).url())).send().await.expect("an answer");
    assert_eq!(answer.status().as_u16(), 200);
    let content_type = answer.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "content type {content_type:?}");
    let text = answer.text().await.expect("a body");
    let samples = parse(&text);
    Scrape { text, samples }
}

/// Every line is `# HELP name ...`, `# TYPE name counter|gauge|histogram` or a sample
/// `name{label="value",...} number` of the family typed last; no series appears twice.
fn parse(text: &str) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    assert!(text.ends_with('\n'), "the text ends with a newline");
    let mut family = None;
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("HELP"), Some(name), Some(_)) => assert!(is_name(name), "{line}"),
                (Some("TYPE"), Some(name), Some("counter" | "gauge" | "histogram")) => family = Some(name.to_owned()),
                _ => panic!("not a HELP or TYPE line: {line:?}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("not a number: {line:?}"));
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                (name, parse_labels(rest.strip_suffix('}').unwrap_or_else(|| panic!("{line:?}")), line))
            }
        };
        assert!(is_name(name), "metric name in {line:?}");
        let family = family.as_deref().unwrap_or_else(|| panic!("a sample before any # TYPE: {line:?}"));
        let suffix = name.strip_prefix(family).unwrap_or_else(|| panic!("{line:?} under # TYPE {family}"));
        assert!(["", "_bucket", "_sum", "_count"].contains(&suffix), "{line:?} under # TYPE {family}");
        assert!(samples.insert((name.to_owned(), labels), value).is_none(), "a series twice: {line:?}");
    }
    samples
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().enumerate().all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || (i > 0 && c.is_ascii_digit()))
}

/// `a="x",b="y"` (values with `\\`, `\"` and `\n` escapes).
fn parse_labels(body: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (label, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("bad labels: {line:?}"));
        assert!(is_name(label), "label {label:?} in {line:?}");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().unwrap_or_else(|| panic!("unclosed label value: {line:?}")) {
                (_, '\\') => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    other => panic!("bad escape {other:?}: {line:?}"),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        rest = &after[end + 1..];
        if let Some(next) = rest.strip_prefix(',') {
            rest = next;
        } else {
            assert!(rest.is_empty(), "junk after a label value: {line:?}");
        }
        assert!(labels.insert(label.to_owned(), value).is_none(), "label {label} twice: {line:?}");
    }
    labels
}

/// How much each counter moved between two scrapes.
fn moved(before: &Scrape, after: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.counter(name, labels) - before.counter(name, labels)
}

const VERIFY: &str = "keyledger_verifications_total";
const UNAUTHENTICATED: &str = "keyledger_unauthenticated_requests_total";
const WRITES: &str = "keyledger_writes_total";
const REQUESTS: &str = "keyledger_http_requests_total";

/// On one node: gauges that fit a cluster of one, and counters that move by exactly the
/// requests sent between two scrapes, under route templates and without any secret or id.
#[tokio::test]
async fn metrics_count_what_one_node_was_asked() {
    let cluster = Cluster::single().await;
    let client = cluster.client(1);
    let before = scrape(&cluster, 1).await;

    assert_eq!(before.gauge("keyledger_node_id"), 1.0);
    assert_eq!(before.gauge("keyledger_raft_is_leader"), 1.0);
    assert_eq!(before.gauge("keyledger_raft_leader_id"), 1.0);
    assert_eq!(before.value("keyledger_raft_state", &[("state", "leader")]), Some(1.0));
    assert_eq!(before.value("keyledger_raft_state", &[("state", "follower")]), Some(0.0));
    assert!(before.gauge("keyledger_raft_term") >= 1.0);
    let applied = before.gauge("keyledger_raft_applied_index");
    assert!(applied >= 1.0 && applied <= before.gauge("keyledger_raft_last_log_index"), "{}", before.text);
    assert!(before.gauge("keyledger_ledger_head_seq") >= 1.0, "bootstrap wrote events");
    assert!(before.gauge("keyledger_keys") >= 1.0, "the bootstrap key");
    assert_eq!((before.gauge("keyledger_ready"), before.gauge("keyledger_member")), (1.0, 1.0));
    assert_eq!((before.gauge("keyledger_raft_voters"), before.gauge("keyledger_raft_learners")), (1.0, 0.0));
    assert!(!before.has_family("keyledger_raft_replication"), "a leader alone has no one to replicate to");
    assert!(before.gauge("keyledger_raft_quorum_ack_age_seconds") >= 0.0);
    // The node process's own: memory, open files (at least its listener and its database), CPU.
    assert!(before.gauge("process_resident_memory_bytes") > 0.0, "{}", before.text);
    assert!(before.gauge("process_open_fds") >= 2.0, "{}", before.text);
    assert!(before.gauge("process_cpu_seconds_total") >= 0.0, "{}", before.text);

    // Writes: two committed, one refused when applied (a stale revision).
    let created = client.create_key(&new_key("metrics")).await.unwrap();
    let key_id = created.value.key.id.clone();
    let secret = created.value.secret.clone();
    client.disable_key(&key_id).await.unwrap();
    let rename = wire::UpdateKeyRequest { name: Some("renamed".into()), description: None };
    let stale = client.update_key(&key_id, &rename, Some(999)).await;
    assert!(stale.is_err(), "a stale If-Match is refused: {stale:?}");

    // Verifications: one of each of three results.
    assert!(client.verify(&verify_req(cluster.admin_key(), None)).await.unwrap().valid);
    let disabled = client.verify(&verify_req(&secret, None)).await.unwrap();
    assert_eq!(disabled.code.as_deref(), Some("disabled"));
    let malformed = client.verify(&verify_req("klk_not_a_key", None)).await.unwrap();
    assert_eq!(malformed.code.as_deref(), Some("malformed"));

    // Requests without a valid key: none at all, one that is not a key, a disabled one.
    let url = cluster.node(1).url();
    for auth in [None, Some("Bearer klk_not_a_key".to_owned()), Some(format!("Bearer {secret}"))] {
        let path = if auth.is_some() { format!("/v1/keys/{key_id}") } else { "/v1/keys".to_owned() };
        let mut request = cluster.http().get(format!("{url}{path}"));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        assert_eq!(request.send().await.unwrap().status().as_u16(), 401);
    }

    let after = scrape(&cluster, 1).await;
    for (result, expected) in [
        ("valid", 1.0),
        ("disabled", 1.0),
        ("malformed", 1.0),
        ("forbidden", 0.0),
        ("not_found", 0.0),
        ("expired", 0.0),
        ("deleted", 0.0),
        ("identity_disabled", 0.0),
    ] {
        assert_eq!(moved(&before, &after, VERIFY, &[("result", result)]), expected, "verifications {result}");
    }
    for (reason, expected) in
        [("missing", 1.0), ("malformed", 1.0), ("disabled", 1.0), ("not_found", 0.0), ("other", 0.0)]
    {
        assert_eq!(
            moved(&before, &after, UNAUTHENTICATED, &[("reason", reason)]),
            expected,
            "unauthenticated {reason}"
        );
    }
    for (outcome, expected) in
        [("committed", 2.0), ("refused", 1.0), ("replayed", 0.0), ("unavailable", 0.0), ("outcome_unknown", 0.0)]
    {
        assert_eq!(moved(&before, &after, WRITES, &[("outcome", outcome)]), expected, "writes {outcome}");
    }
    let requests = |method, route, status| {
        moved(&before, &after, REQUESTS, &[("method", method), ("route", route), ("status", status)])
    };
    assert_eq!(requests("post", "/v1/verify", "2xx"), 3.0);
    assert_eq!(requests("post", "/v1/keys", "2xx"), 1.0);
    assert_eq!(requests("post", "/v1/keys/{id}/disable", "2xx"), 1.0);
    assert_eq!(requests("patch", "/v1/keys/{id}", "4xx"), 1.0);
    assert_eq!(requests("get", "/v1/keys", "4xx"), 1.0);
    assert_eq!(requests("get", "/v1/keys/{id}", "4xx"), 2.0);
    assert_eq!(requests("get", "/metrics", "2xx"), 1.0, "the first scrape");
    let histogram_count = |name| after.gauge(name) - before.gauge(name);
    assert_eq!(histogram_count("keyledger_verify_duration_seconds_count"), 3.0);
    assert_eq!(histogram_count("keyledger_write_duration_seconds_count"), 3.0);
    assert_eq!(
        after.value("keyledger_write_duration_seconds_bucket", &[("le", "+Inf")]),
        Some(after.gauge("keyledger_write_duration_seconds_count"))
    );

    assert_eq!(after.gauge("keyledger_keys"), before.gauge("keyledger_keys") + 1.0);
    assert!(after.gauge("keyledger_ledger_head_seq") > before.gauge("keyledger_ledger_head_seq"));
    assert!(after.gauge("keyledger_raft_applied_index") >= created.index as f64);

    // Labels name route templates, never a path as sent: no key id, and no secret anywhere.
    for secret_or_id in [cluster.admin_key(), secret.as_str(), key_id.as_str()] {
        assert!(!after.text.contains(secret_or_id), "{secret_or_id} shows in:\n{}", after.text);
    }
    let routes: Vec<&String> = after.samples.keys().filter_map(|(_, labels)| labels.get("route")).collect();
    assert!(!routes.is_empty());
    for route in routes {
        assert!(route == "unmatched" || keyledger_api::ROUTES.iter().any(|(_, r)| r == route), "route {route:?}");
    }
}

/// Three nodes: exactly one reports itself leader, every node names it and the same term, the
/// leader shows both followers' replication catching up to zero lag, and each node counts only
/// the requests it answered.
#[tokio::test]
async fn metrics_on_three_nodes_name_one_leader() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let before = scrape(&cluster, follower).await;
    let created = cluster.client(follower).create_key(&new_key("via-follower")).await.unwrap();
    let answer =
        cluster.client(follower).verify(&verify_req(&created.value.secret, Some(created.index))).await.unwrap();
    assert!(answer.valid, "{answer:?}");
    let after = scrape(&cluster, follower).await;
    assert_eq!(
        moved(&before, &after, WRITES, &[("outcome", "committed")]),
        1.0,
        "the follower counts the write it took"
    );
    assert_eq!(moved(&before, &after, VERIFY, &[("result", "valid")]), 1.0);

    poll("every node's metrics to agree on one leader with followers caught up", CONVERGE, async || {
        let mut scrapes = Vec::new();
        for id in 1..=3 {
            scrapes.push((id, scrape(&cluster, id).await));
        }
        let leaders: Vec<u64> =
            scrapes.iter().filter(|(_, s)| s.gauge("keyledger_raft_is_leader") == 1.0).map(|(id, _)| *id).collect();
        if leaders != [leader] {
            return Err(format!("nodes reporting leader: {leaders:?}, expected [{leader}]"));
        }
        let terms: Vec<f64> = scrapes.iter().map(|(_, s)| s.gauge("keyledger_raft_term")).collect();
        let named: Vec<f64> = scrapes.iter().map(|(_, s)| s.gauge("keyledger_raft_leader_id")).collect();
        if terms.iter().any(|t| *t != terms[0] || *t < 1.0) || named.iter().any(|l| *l != leader as f64) {
            return Err(format!("terms {terms:?}, leaders named {named:?}"));
        }
        let (_, on_leader) = &scrapes[(leader - 1) as usize];
        let last = on_leader.gauge("keyledger_raft_last_log_index");
        for (id, s) in &scrapes {
            assert_eq!(s.gauge("keyledger_node_id"), *id as f64);
            assert_eq!(s.gauge("keyledger_raft_voters"), 3.0, "node {id}");
            let applied = s.gauge("keyledger_raft_applied_index");
            if applied < created.index as f64 {
                return Err(format!("node {id} has applied {applied}, not yet {}", created.index));
            }
            let role = if *id == leader { "leader" } else { "follower" };
            if s.value("keyledger_raft_state", &[("state", role)]) != Some(1.0) {
                return Err(format!("node {id} is not a {role}:\n{}", s.text));
            }
            if *id == leader {
                continue;
            }
            assert!(!s.has_family("keyledger_raft_replication"), "follower {id} shows replication:\n{}", s.text);
            let peer = id.to_string();
            let matched = on_leader
                .value("keyledger_raft_replication_matched_index", &[("peer", &peer)])
                .unwrap_or_else(|| panic!("the leader shows no matched index for {id}:\n{}", on_leader.text));
            let lag = on_leader.value("keyledger_raft_replication_lag", &[("peer", &peer)]).unwrap();
            assert_eq!(lag, last - matched, "lag of {id}");
            if lag != 0.0 {
                return Err(format!("node {id} lags by {lag}"));
            }
        }
        assert!(
            on_leader.value("keyledger_raft_replication_matched_index", &[("peer", &leader.to_string())]).is_none(),
            "the leader lists itself as a follower"
        );
        Ok(())
    })
    .await;
}
