//! The metrics as rendered: counters as counted, histograms cumulative, requests by route
//! template, the gauges of a leader and of a follower, and the process metrics. Values are
//! read from the rendered text by exact series, as the encoder writes it (labels sorted by
//! name), so these tests also pin the names, labels and bucket bounds a dashboard relies on.

use std::time::{Duration, Instant};

use axum::extract::MatchedPath;
use axum::http::{Method, StatusCode};
use keyledger_cluster::{NodeGauges, RaftRole};
use keyledger_model::Invalid;

use super::*;
use crate::ROUTES;

/// The value of the sample `series` (its name and labels exactly as written) in `text`.
fn value(text: &str, series: &str) -> Option<f64> {
    let mut values = text.lines().filter_map(|line| line.strip_prefix(series)?.strip_prefix(' '));
    let found = values.next().map(|v| v.parse().unwrap_or_else(|_| panic!("{series} {v}")));
    assert!(values.next().is_none(), "{series} twice in:\n{text}");
    found
}

fn render(metrics: &Metrics, gauges: &NodeGauges) -> String {
    metrics.render(gauges).expect("the metrics render")
}

fn leader_gauges() -> NodeGauges {
    NodeGauges {
        node_id: 2,
        member: true,
        ready: true,
        role: RaftRole::Leader,
        leader: Some(2),
        term: 7,
        last_log_index: 40,
        applied_index: 39,
        snapshot_index: 0,
        purged_index: 0,
        log_bytes: 0,
        quorum_ack_ms: Some(150),
        voters: 3,
        learners: 0,
        replication: vec![(1, 40), (3, 31)],
        ledger_head_seq: 55,
        keys: 12,
        keys_expiring: [1, 4, 9],
        disk_free_bytes: 5 << 30,
        disk_reserve_bytes: 256 << 20,
        webhook_delivered: 5,
        webhook_failed: 1,
        webhook_attempts: 9,
        webhook_lag: 3,
    }
}

#[test]
fn results_and_reasons_have_one_counter_each() {
    for (i, result) in VerifyResult::ALL.into_iter().enumerate() {
        assert_eq!(result.slot(), i, "{result:?}");
    }
    for (i, why) in AuthFailure::ALL.into_iter().enumerate() {
        assert_eq!(why.slot(), i, "{why:?}");
    }
    for (i, why) in RateLimited::ALL.into_iter().enumerate() {
        assert_eq!(why.slot(), i, "{why:?}");
    }
    for (i, outcome) in WriteOutcome::ALL.into_iter().enumerate() {
        assert_eq!(outcome.slot(), i, "{outcome:?}");
    }
}

#[test]
fn counters_render_as_counted() {
    let metrics = Metrics::new();
    metrics.count_verification(VerifyResult::Valid);
    metrics.count_verification(VerifyResult::Valid);
    metrics.count_verification(VerifyResult::Invalid(Invalid::Expired));
    metrics.count_unauthenticated(AuthFailure::Missing);
    metrics.count_unauthenticated(AuthFailure::Invalid(Invalid::NotFound));
    metrics.count_rate_limited(RateLimited::Feeds);
    metrics.count_write(WriteOutcome::Committed, Duration::from_millis(3));
    metrics.count_write(WriteOutcome::OutcomeUnknown, Duration::from_secs(6));
    let text = render(&metrics, &leader_gauges());
    assert!(text.contains("# TYPE keyledger_verifications_total counter\n"), "{text}");

    let verifications = |result: &str| value(&text, &format!("keyledger_verifications_total{{result=\"{result}\"}}"));
    assert_eq!(verifications("valid"), Some(2.0));
    assert_eq!(verifications("expired"), Some(1.0));
    assert_eq!(verifications("forbidden"), Some(0.0), "every result is shown from the start");
    assert_eq!(verifications("identity_disabled"), Some(0.0));
    let unauthenticated =
        |reason: &str| value(&text, &format!("keyledger_unauthenticated_requests_total{{reason=\"{reason}\"}}"));
    assert_eq!(unauthenticated("missing"), Some(1.0));
    assert_eq!(unauthenticated("not_found"), Some(1.0));
    assert_eq!(unauthenticated("malformed"), Some(0.0));
    assert_eq!(unauthenticated("other"), Some(0.0));
    let rate_limited =
        |reason: &str| value(&text, &format!("keyledger_rate_limited_requests_total{{reason=\"{reason}\"}}"));
    assert_eq!(rate_limited("feeds"), Some(1.0));
    assert_eq!(rate_limited("auth_failures"), Some(0.0));
    let writes = |outcome: &str| value(&text, &format!("keyledger_writes_total{{outcome=\"{outcome}\"}}"));
    assert_eq!(writes("committed"), Some(1.0));
    assert_eq!(writes("outcome_unknown"), Some(1.0));
    assert_eq!(writes("refused"), Some(0.0));
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(value(&text, &format!("keyledger_build_info{{version=\"{version}\"}}")), Some(1.0));
}

#[test]
fn histograms_are_cumulative_and_end_in_their_count() {
    let metrics = Metrics::new();
    for took in
        [Duration::from_millis(1), Duration::from_micros(1500), Duration::from_millis(30), Duration::from_secs(9)]
    {
        metrics.count_write(WriteOutcome::Committed, took);
    }
    let text = render(&metrics, &NodeGauges::default());
    assert!(text.contains("# TYPE keyledger_write_duration_seconds histogram\n"), "{text}");
    let bucket = |le: &str| value(&text, &format!("keyledger_write_duration_seconds_bucket{{le=\"{le}\"}}"));
    // A bound is inclusive: 1 ms lands in `le="0.001"`.
    assert_eq!(bucket("0.001"), Some(1.0));
    assert_eq!(bucket("0.0025"), Some(2.0));
    assert_eq!(bucket("0.025"), Some(2.0));
    assert_eq!(bucket("0.05"), Some(3.0));
    assert_eq!(bucket("5"), Some(3.0));
    assert_eq!(bucket("+Inf"), Some(4.0));
    assert_eq!(value(&text, "keyledger_write_duration_seconds_count"), Some(4.0));
    let sum = value(&text, "keyledger_write_duration_seconds_sum").unwrap();
    assert!((sum - 9.0325).abs() < 1e-9, "sum {sum}");
    // Every bound shows under the label it always had, in order.
    for (name, labels) in [
        (
            "keyledger_verify_duration_seconds",
            &["0.00001", "0.000025", "0.00005", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.01", "0.1", "1"][..],
        ),
        (
            "keyledger_write_duration_seconds",
            &["0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5"][..],
        ),
    ] {
        let shown: Vec<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix(&format!("{name}_bucket{{le=\""))?.split_once('"'))
            .map(|(le, _)| le)
            .collect();
        assert_eq!(shown[..shown.len() - 1], *labels, "{name}");
        assert_eq!(shown.last(), Some(&"+Inf"));
    }
    assert_eq!(value(&text, "keyledger_verify_duration_seconds_count"), Some(0.0));
}

#[test]
fn requests_are_counted_by_route_template_and_status_class() {
    let metrics = Metrics::new();
    let key_path = Some(matched("/v1/keys/{id}"));
    let started = Instant::now();
    let route = metrics.route_of(&Method::GET, key_path.as_ref());
    assert_eq!(ROUTES[route], ("get", "/v1/keys/{id}"));
    metrics.count_request(route, StatusCode::OK, started);
    metrics.count_request(route, StatusCode::NOT_FOUND, started);
    metrics.count_request(route, StatusCode::NOT_FOUND, started);
    // A method the route does not take, and no route at all: both `unmatched`.
    assert_eq!(metrics.route_of(&Method::PUT, key_path.as_ref()), ROUTES.len());
    assert_eq!(metrics.route_of(&Method::GET, None), ROUTES.len());
    metrics.count_request(ROUTES.len(), StatusCode::METHOD_NOT_ALLOWED, started);
    let verify = metrics.route_of(&Method::POST, Some(&matched("/v1/verify")));
    assert_eq!(verify, metrics.verify_routes[0]);
    let auth_requests =
        [(1, "/v1/verify/auth-request"), (2, "/v1/verify/auth-request/"), (3, "/v1/verify/auth-request/{*rest}")];
    for (at, path) in auth_requests {
        assert_eq!(metrics.route_of(&Method::GET, Some(&matched(path))), metrics.verify_routes[at], "{path}");
    }
    metrics.count_request(verify, StatusCode::OK, started);

    let text = render(&metrics, &NodeGauges::default());
    let requests = |method: &str, route: &str, status: &str| {
        value(
            &text,
            &format!("keyledger_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}}"),
        )
    };
    assert_eq!(requests("get", "/v1/keys/{id}", "2xx"), Some(1.0));
    assert_eq!(requests("get", "/v1/keys/{id}", "4xx"), Some(2.0));
    assert_eq!(requests("get", "/v1/keys/{id}", "5xx"), None, "cells that counted nothing are left out");
    assert_eq!(requests("other", "unmatched", "4xx"), Some(1.0));
    assert_eq!(requests("post", "/v1/verify", "2xx"), Some(1.0));
    assert_eq!(value(&text, "keyledger_verify_duration_seconds_count"), Some(1.0), "verify is timed");
    let series = text.lines().filter(|line| line.starts_with("keyledger_http_requests_total{")).count();
    assert_eq!(series, 4);
}

/// A `MatchedPath` as the router makes one (it has no public constructor).
fn matched(template: &'static str) -> MatchedPath {
    use axum::routing::get;
    use tower::ServiceExt;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let keep = seen.clone();
    let router = axum::Router::new().route(
        template,
        get(move |path: MatchedPath| async move {
            *keep.lock().unwrap() = Some(path);
        }),
    );
    let uri = template.replace("{id}", "x");
    let request = axum::http::Request::get(uri).body(axum::body::Body::empty()).unwrap();
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(router.oneshot(request)).unwrap();
    let path = seen.lock().unwrap().take();
    path.expect("the router matched the template")
}

#[test]
fn gauges_show_the_leader_and_its_followers_lag() {
    let text = render(&Metrics::new(), &leader_gauges());
    let gauge = |name| value(&text, name);
    assert!(text.contains("# TYPE keyledger_raft_term gauge\n"), "{text}");
    assert_eq!(gauge("keyledger_node_id"), Some(2.0));
    assert_eq!(gauge("keyledger_member"), Some(1.0));
    assert_eq!(gauge("keyledger_raft_is_leader"), Some(1.0));
    assert_eq!(gauge("keyledger_raft_leader_id"), Some(2.0));
    assert_eq!(gauge("keyledger_raft_term"), Some(7.0));
    assert_eq!(gauge("keyledger_raft_last_log_index"), Some(40.0));
    assert_eq!(gauge("keyledger_raft_applied_index"), Some(39.0));
    assert_eq!(gauge("keyledger_raft_snapshot_index"), Some(0.0));
    assert_eq!(gauge("keyledger_raft_purged_index"), Some(0.0));
    assert_eq!(gauge("keyledger_raft_log_bytes"), Some(0.0));
    assert_eq!(gauge("keyledger_raft_voters"), Some(3.0));
    assert_eq!(gauge("keyledger_raft_learners"), Some(0.0));
    assert_eq!(gauge("keyledger_raft_quorum_ack_age_seconds"), Some(0.15));
    assert_eq!(gauge("keyledger_ledger_head_seq"), Some(55.0));
    assert_eq!(gauge("keyledger_keys"), Some(12.0));
    assert_eq!(gauge("keyledger_disk_free_bytes"), Some((5u64 << 30) as f64));
    assert_eq!(gauge("keyledger_disk_reserve_bytes"), Some((256u64 << 20) as f64));
    assert_eq!(gauge("keyledger_keys_expiring{within=\"1d\"}"), Some(1.0));
    assert_eq!(gauge("keyledger_keys_expiring{within=\"7d\"}"), Some(4.0));
    assert_eq!(gauge("keyledger_keys_expiring{within=\"30d\"}"), Some(9.0));
    assert_eq!(gauge("keyledger_webhook_deliveries{outcome=\"delivered\"}"), Some(5.0));
    assert_eq!(gauge("keyledger_webhook_deliveries{outcome=\"failed\"}"), Some(1.0));
    assert_eq!(gauge("keyledger_webhook_attempts"), Some(9.0));
    assert_eq!(gauge("keyledger_webhook_lag_positions"), Some(3.0));
    assert_eq!(gauge("keyledger_ready"), Some(1.0));
    assert_eq!(gauge("keyledger_raft_state{state=\"leader\"}"), Some(1.0));
    assert_eq!(gauge("keyledger_raft_state{state=\"follower\"}"), Some(0.0));
    assert_eq!(gauge("keyledger_raft_state{state=\"shutdown\"}"), Some(0.0));
    assert_eq!(gauge("keyledger_raft_replication_matched_index{peer=\"3\"}"), Some(31.0));
    assert_eq!(gauge("keyledger_raft_replication_lag{peer=\"3\"}"), Some(9.0));
    assert_eq!(gauge("keyledger_raft_replication_lag{peer=\"1\"}"), Some(0.0));

    // A follower: no replication series, no quorum age, leader 0 when it knows none.
    let follower = NodeGauges {
        role: RaftRole::Follower,
        leader: None,
        quorum_ack_ms: None,
        replication: vec![],
        ..leader_gauges()
    };
    let text = render(&Metrics::new(), &follower);
    assert_eq!(value(&text, "keyledger_raft_is_leader"), Some(0.0));
    assert_eq!(value(&text, "keyledger_raft_leader_id"), Some(0.0));
    assert_eq!(value(&text, "keyledger_raft_state{state=\"follower\"}"), Some(1.0));
    assert!(!text.contains("keyledger_raft_replication") && !text.contains("quorum"), "{text}");
}

#[cfg(target_os = "linux")]
#[test]
fn process_metrics_are_shown() {
    let text = render(&Metrics::new(), &NodeGauges::default());
    let resident = value(&text, "process_resident_memory_bytes").expect("resident memory");
    assert!(resident > 0.0, "{text}");
    assert!(value(&text, "process_open_fds").is_some_and(|fds| fds >= 1.0), "{text}");
    assert!(text.contains("# TYPE process_cpu_seconds_total counter\n"), "{text}");
    assert!(value(&text, "process_cpu_seconds_total").is_some(), "{text}");
}
