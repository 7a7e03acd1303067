//! `GET /metrics`: this node's counters and its Raft and ledger positions in the Prometheus
//! text format (version 0.0.4).
//!
//! Counters are plain atomics in one [`Metrics`] owned by the router's state and bumped with
//! `Relaxed` on the request path: no lock, no allocation, nothing a verification waits for.
//! Gauges are read from the node only when scraped ([`NodeGauges::read`]). Labels hold only
//! fixed words, route templates and node ids — never a path as sent, a key id or a secret.
//!
//! The endpoint needs no API key, like `/healthz`: a scraper holds none, and what it shows is
//! counts and log positions, no object. Like `/internal/*` it belongs on the operators' network.

use std::fmt::{Display, Write as _};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use keyledger_cluster::{ClusterNode, Committed, ProposeError};
use keyledger_model::{Invalid, Outcome};

use crate::{AppState, ROUTES};

/// The Prometheus text format's content type.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// This node's metrics: counters, then the gauges read from the node at the moment of asking.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "get_metrics",
    tag = "operations",
    responses((
        status = 200,
        description = "Counters (verifications by result, requests by route and status class, requests without \
            a valid API key, writes by outcome), latency histograms of verification and writes, and this node's \
            Raft and ledger positions, in the Prometheus text format 0.0.4. Needs no API key, like `/healthz`; \
            serve it only to the operators' network.",
        body = String,
        content_type = "text/plain",
    )),
)]
pub(crate) async fn serve(State(app): State<AppState>) -> Response {
    let gauges = NodeGauges::read(&app.node);
    let text = app.metrics.render(&gauges);
    ([(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))], text).into_response()
}

/// What `POST /v1/verify` answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VerifyResult {
    Valid,
    Forbidden,
    Invalid(Invalid),
}

impl VerifyResult {
    /// Every result, in the order of the counters.
    const ALL: [VerifyResult; 8] = [
        VerifyResult::Valid,
        VerifyResult::Forbidden,
        VerifyResult::Invalid(Invalid::Malformed),
        VerifyResult::Invalid(Invalid::NotFound),
        VerifyResult::Invalid(Invalid::Disabled),
        VerifyResult::Invalid(Invalid::Expired),
        VerifyResult::Invalid(Invalid::Deleted),
        VerifyResult::Invalid(Invalid::IdentityDisabled),
    ];

    fn slot(self) -> usize {
        match self {
            VerifyResult::Valid => 0,
            VerifyResult::Forbidden => 1,
            VerifyResult::Invalid(why) => 2 + invalid_slot(why),
        }
    }

    /// The label: `valid`, `forbidden`, or the answer's `code`.
    fn label(self) -> &'static str {
        match self {
            VerifyResult::Valid => "valid",
            VerifyResult::Forbidden => "forbidden",
            VerifyResult::Invalid(why) => why.as_str(),
        }
    }
}

/// Why a request that needs an API key was answered `401 unauthenticated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    /// No `Authorization: Bearer` header.
    Missing,
    /// The key does not verify, for this reason.
    Invalid(Invalid),
    /// The key verifies but yields no principal (its identity changed in between).
    Other,
}

impl AuthFailure {
    const ALL: [AuthFailure; 8] = [
        AuthFailure::Missing,
        AuthFailure::Invalid(Invalid::Malformed),
        AuthFailure::Invalid(Invalid::NotFound),
        AuthFailure::Invalid(Invalid::Disabled),
        AuthFailure::Invalid(Invalid::Expired),
        AuthFailure::Invalid(Invalid::Deleted),
        AuthFailure::Invalid(Invalid::IdentityDisabled),
        AuthFailure::Other,
    ];

    fn slot(self) -> usize {
        match self {
            AuthFailure::Missing => 0,
            AuthFailure::Invalid(why) => 1 + invalid_slot(why),
            AuthFailure::Other => 7,
        }
    }

    fn label(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Invalid(why) => why.as_str(),
            AuthFailure::Other => "other",
        }
    }
}

fn invalid_slot(why: Invalid) -> usize {
    match why {
        Invalid::Malformed => 0,
        Invalid::NotFound => 1,
        Invalid::Disabled => 2,
        Invalid::Expired => 3,
        Invalid::Deleted => 4,
        Invalid::IdentityDisabled => 5,
    }
}

/// Why a request was answered `429 rate_limited`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RateLimited {
    /// Its client address failed to authenticate too often this minute.
    AuthFailures,
    /// The caller or the node had as many audit exports running as allowed.
    Exports,
    /// The caller or the node had as many change feeds open as allowed.
    Feeds,
}

impl RateLimited {
    const ALL: [RateLimited; 3] = [RateLimited::AuthFailures, RateLimited::Exports, RateLimited::Feeds];

    fn slot(self) -> usize {
        self as usize
    }

    fn label(self) -> &'static str {
        match self {
            RateLimited::AuthFailures => "auth_failures",
            RateLimited::Exports => "exports",
            RateLimited::Feeds => "feeds",
        }
    }
}

/// How a write requested through the API ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteOutcome {
    /// Committed and applied.
    Committed,
    /// Committed, and refused when applied (a rule, a limit, a revision); nothing changed.
    Refused,
    /// A retry with a known `Idempotency-Key`: answered from the first request, nothing new.
    Replayed,
    /// Not proposed (no leader, no quorum): nothing was written.
    Unavailable,
    /// Proposed but not confirmed in time: it may still commit.
    OutcomeUnknown,
}

impl WriteOutcome {
    const ALL: [WriteOutcome; 5] = [
        WriteOutcome::Committed,
        WriteOutcome::Refused,
        WriteOutcome::Replayed,
        WriteOutcome::Unavailable,
        WriteOutcome::OutcomeUnknown,
    ];

    pub(crate) fn of(result: &Result<Committed, ProposeError>) -> WriteOutcome {
        match result {
            Ok(Committed { replayed: true, .. }) => WriteOutcome::Replayed,
            Ok(Committed { outcome: Outcome::Rejected(_), .. }) => WriteOutcome::Refused,
            Ok(_) => WriteOutcome::Committed,
            Err(ProposeError::Unavailable(_)) => WriteOutcome::Unavailable,
            Err(ProposeError::OutcomeUnknown(_)) => WriteOutcome::OutcomeUnknown,
        }
    }

    fn slot(self) -> usize {
        self as usize
    }

    fn label(self) -> &'static str {
        match self {
            WriteOutcome::Committed => "committed",
            WriteOutcome::Refused => "refused",
            WriteOutcome::Replayed => "replayed",
            WriteOutcome::Unavailable => "unavailable",
            WriteOutcome::OutcomeUnknown => "outcome_unknown",
        }
    }
}

/// Status classes `1xx` to `5xx`.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Upper bounds of the verification histogram, in nanoseconds and as the `le` label. A
/// verification over loopback takes tens of microseconds; `min_index` may wait up to 5 s.
const VERIFY_BUCKETS: &[(u64, &str)] = &[
    (10_000, "0.00001"),
    (25_000, "0.000025"),
    (50_000, "0.00005"),
    (100_000, "0.0001"),
    (250_000, "0.00025"),
    (500_000, "0.0005"),
    (1_000_000, "0.001"),
    (2_500_000, "0.0025"),
    (10_000_000, "0.01"),
    (100_000_000, "0.1"),
    (1_000_000_000, "1"),
];

/// Upper bounds of the write histogram: a durable write through Raft takes milliseconds; the
/// deadline is 5 s.
const WRITE_BUCKETS: &[(u64, &str)] = &[
    (1_000_000, "0.001"),
    (2_500_000, "0.0025"),
    (5_000_000, "0.005"),
    (10_000_000, "0.01"),
    (25_000_000, "0.025"),
    (50_000_000, "0.05"),
    (100_000_000, "0.1"),
    (250_000_000, "0.25"),
    (500_000_000, "0.5"),
    (1_000_000_000, "1"),
    (2_500_000_000, "2.5"),
    (5_000_000_000, "5"),
];

/// The counters of one node's API.
pub(crate) struct Metrics {
    verifications: [AtomicU64; VerifyResult::ALL.len()],
    unauthenticated: [AtomicU64; AuthFailure::ALL.len()],
    rate_limited: [AtomicU64; RateLimited::ALL.len()],
    writes: [AtomicU64; WriteOutcome::ALL.len()],
    /// One row per entry of [`ROUTES`], then one for requests no route takes; a column per
    /// status class.
    requests: Box<[[AtomicU64; STATUS_CLASSES.len()]]>,
    /// `(path, method, row)` sorted by path and method, for a binary search per request.
    route_table: Vec<(&'static str, &'static str, usize)>,
    /// The row of `POST /v1/verify`, whose requests are also timed.
    verify_route: usize,
    verify_seconds: Histogram,
    write_seconds: Histogram,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut route_table: Vec<_> =
            ROUTES.iter().enumerate().map(|(row, (method, path))| (*path, *method, row)).collect();
        route_table.sort_unstable();
        let verify_route = ROUTES.iter().position(|r| *r == ("post", "/v1/verify")).unwrap_or(usize::MAX);
        Metrics {
            verifications: Default::default(),
            unauthenticated: Default::default(),
            rate_limited: Default::default(),
            writes: Default::default(),
            requests: (0..=ROUTES.len()).map(|_| Default::default()).collect(),
            route_table,
            verify_route,
            verify_seconds: Histogram::new(VERIFY_BUCKETS),
            write_seconds: Histogram::new(WRITE_BUCKETS),
        }
    }

    pub(crate) fn count_verification(&self, result: VerifyResult) {
        self.verifications[result.slot()].fetch_add(1, Relaxed);
    }

    pub(crate) fn count_unauthenticated(&self, why: AuthFailure) {
        self.unauthenticated[why.slot()].fetch_add(1, Relaxed);
    }

    pub(crate) fn count_rate_limited(&self, why: RateLimited) {
        self.rate_limited[why.slot()].fetch_add(1, Relaxed);
    }

    /// Counts one write's outcome and how long the cluster took to give it.
    pub(crate) fn count_write(&self, outcome: WriteOutcome, took: Duration) {
        self.writes[outcome.slot()].fetch_add(1, Relaxed);
        self.write_seconds.observe(took);
    }

    /// The row of the route that took the request: found by its template, never the path as
    /// sent (which holds ids). No template, or a method the route does not take: the last row.
    pub(crate) fn route_of(&self, method: &Method, matched: Option<&MatchedPath>) -> usize {
        let unmatched = ROUTES.len();
        let Some(path) = matched.map(MatchedPath::as_str) else {
            return unmatched;
        };
        let start = self.route_table.partition_point(|(p, _, _)| *p < path);
        self.route_table[start..]
            .iter()
            .take_while(|(p, _, _)| *p == path)
            .find(|(_, m, _)| method.as_str().eq_ignore_ascii_case(m))
            .map_or(unmatched, |(_, _, row)| *row)
    }

    pub(crate) fn count_request(&self, route: usize, status: StatusCode, started: Instant) {
        let class = usize::from(status.as_u16() / 100).clamp(1, STATUS_CLASSES.len()) - 1;
        self.requests[route][class].fetch_add(1, Relaxed);
        if route == self.verify_route {
            self.verify_seconds.observe(started.elapsed());
        }
    }

    /// The whole exposition: the counters, then `gauges`.
    pub(crate) fn render(&self, gauges: &NodeGauges) -> String {
        let mut out = Exposition::default();
        out.header("keyledger_build_info", "gauge", "Always 1; the version of keyledger this node runs.");
        out.sample("keyledger_build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1);

        out.counters(
            "keyledger_verifications_total",
            "Answers of POST /v1/verify on this node, by result (valid, forbidden, or the code of an invalid key).",
            "result",
            VerifyResult::ALL.map(|result| (result.label(), self.verifications[result.slot()].load(Relaxed))),
        );
        out.counters(
            "keyledger_unauthenticated_requests_total",
            "Requests refused 401 for want of a valid API key, by reason; counted here, never written to the ledger.",
            "reason",
            AuthFailure::ALL.map(|why| (why.label(), self.unauthenticated[why.slot()].load(Relaxed))),
        );
        out.counters(
            "keyledger_rate_limited_requests_total",
            "Requests refused 429 rate_limited, by reason: an address over its failed authentications, or a caller \
                or the node at its cap of exports or change feeds.",
            "reason",
            RateLimited::ALL.map(|why| (why.label(), self.rate_limited[why.slot()].load(Relaxed))),
        );
        out.counters(
            "keyledger_writes_total",
            "Writes requested through this node's API, by outcome (the node's own batched events are not counted).",
            "outcome",
            WriteOutcome::ALL.map(|outcome| (outcome.label(), self.writes[outcome.slot()].load(Relaxed))),
        );

        // Only cells that have counted something: a zero for each of ~50 routes times five
        // classes would drown the page, and Prometheus client libraries also start a labelled
        // series at its first use.
        out.header(
            "keyledger_http_requests_total",
            "counter",
            "HTTP requests answered, by method, route template (`unmatched` when no route took it) and status class.",
        );
        for (row, cells) in self.requests.iter().enumerate() {
            let (method, route) = ROUTES.get(row).copied().unwrap_or(("other", "unmatched"));
            for (class, cell) in STATUS_CLASSES.iter().zip(cells.iter()) {
                let value = cell.load(Relaxed);
                if value > 0 {
                    let labels = [("method", method), ("route", route), ("status", *class)];
                    out.sample("keyledger_http_requests_total", &labels, value);
                }
            }
        }

        out.histogram(
            "keyledger_verify_duration_seconds",
            "Time to answer POST /v1/verify, from the request reaching the router to the answer.",
            &self.verify_seconds,
        );
        out.histogram(
            "keyledger_write_duration_seconds",
            "Time from proposing a write to the cluster's answer (committed, refused or not), on this node.",
            &self.write_seconds,
        );

        gauges.render(&mut out);
        out.0
    }
}

/// A histogram over fixed bounds: a count per bucket (not cumulative, so one add per
/// observation) and the sum in nanoseconds.
struct Histogram {
    bounds: &'static [(u64, &'static str)],
    /// One per bound, then one above the last.
    buckets: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [(u64, &'static str)]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn observe(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let bucket = self.bounds.partition_point(|(bound, _)| *bound < nanos);
        self.buckets[bucket].fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }
}

/// This node's state as the gauges show it, read when scraped.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeGauges {
    pub(crate) node_id: u64,
    pub(crate) member: bool,
    pub(crate) ready: bool,
    pub(crate) role: RaftRole,
    pub(crate) leader: Option<u64>,
    pub(crate) term: u64,
    pub(crate) last_log_index: u64,
    pub(crate) applied_index: u64,
    pub(crate) snapshot_index: u64,
    pub(crate) purged_index: u64,
    pub(crate) log_bytes: u64,
    /// On the leader: milliseconds since a quorum last acknowledged it.
    pub(crate) quorum_ack_ms: Option<u64>,
    pub(crate) voters: u64,
    pub(crate) learners: u64,
    /// On the leader: each other member's highest log index known to be replicated to it.
    pub(crate) replication: Vec<(u64, u64)>,
    pub(crate) ledger_head_seq: u64,
    pub(crate) keys: u64,
}

/// The Raft role of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum RaftRole {
    Leader,
    Follower,
    Candidate,
    #[default]
    Learner,
    Shutdown,
}

impl RaftRole {
    const ALL: [RaftRole; 5] =
        [RaftRole::Leader, RaftRole::Follower, RaftRole::Candidate, RaftRole::Learner, RaftRole::Shutdown];

    fn label(self) -> &'static str {
        match self {
            RaftRole::Leader => "leader",
            RaftRole::Follower => "follower",
            RaftRole::Candidate => "candidate",
            RaftRole::Learner => "learner",
            RaftRole::Shutdown => "shutdown",
        }
    }
}

impl NodeGauges {
    /// Reads the node's Raft metrics (one copy of openraft's latest report) and its ledger.
    pub(crate) fn read(node: &ClusterNode) -> NodeGauges {
        let raft = node.metrics();
        let role = match &raft.state {
            _ if raft.running_state.is_err() => RaftRole::Shutdown,
            state if state.is_leader() => RaftRole::Leader,
            state if state.is_follower() => RaftRole::Follower,
            state if state.is_candidate() => RaftRole::Candidate,
            state if state.is_learner() => RaftRole::Learner,
            _ => RaftRole::Shutdown,
        };
        let membership = raft.membership_config.membership();
        let replication = raft
            .replication
            .iter()
            .flatten()
            .filter(|(peer, _)| **peer != raft.id)
            .map(|(peer, matched)| (*peer, matched.map_or(0, |log_id| log_id.index)))
            .collect();
        let (ledger_head_seq, keys) = {
            let state = node.ledger().state();
            (state.head().seq, state.key_count() as u64)
        };
        NodeGauges {
            node_id: node.id(),
            member: node.is_member(),
            ready: node.readiness().is_ok(),
            role,
            leader: raft.current_leader,
            term: raft.current_term,
            last_log_index: raft.last_log_index.unwrap_or(0),
            applied_index: raft.last_applied.map_or(0, |log_id| log_id.index),
            snapshot_index: raft.snapshot.map_or(0, |log_id| log_id.index),
            purged_index: raft.purged.map_or(0, |log_id| log_id.index),
            log_bytes: node.raft_log_bytes(),
            quorum_ack_ms: raft.millis_since_quorum_ack.filter(|_| role == RaftRole::Leader),
            voters: membership.voter_ids().count() as u64,
            learners: membership.learner_ids().count() as u64,
            replication,
            ledger_head_seq,
            keys,
        }
    }

    fn render(&self, out: &mut Exposition) {
        let flag = |b: bool| u64::from(b);
        out.gauge("keyledger_node_id", "This node's id in the cluster.", self.node_id);
        out.gauge(
            "keyledger_member",
            "1 while this node is a member of the cluster (0 before joining, after removal).",
            flag(self.member),
        );
        out.gauge("keyledger_ready", "1 when /readyz would answer 200.", flag(self.ready));
        out.gauge("keyledger_raft_is_leader", "1 on the leader, 0 elsewhere.", flag(self.role == RaftRole::Leader));
        out.header("keyledger_raft_state", "gauge", "1 for this node's Raft role, 0 for the others.");
        for role in RaftRole::ALL {
            out.sample("keyledger_raft_state", &[("state", role.label())], flag(self.role == role));
        }
        out.gauge(
            "keyledger_raft_leader_id",
            "The leader this node knows of; 0 when it knows none.",
            self.leader.unwrap_or(0),
        );
        out.gauge("keyledger_raft_term", "The current Raft term.", self.term);
        out.gauge("keyledger_raft_last_log_index", "The last Raft log index appended here.", self.last_log_index);
        out.gauge(
            "keyledger_raft_applied_index",
            "The last Raft log index applied to the ledger here.",
            self.applied_index,
        );
        out.gauge(
            "keyledger_raft_snapshot_index",
            "The last Raft log index in this node's snapshot; 0 when none.",
            self.snapshot_index,
        );
        out.gauge(
            "keyledger_raft_purged_index",
            "The last Raft log index purged here (it is in the snapshot); 0 when none.",
            self.purged_index,
        );
        out.gauge(
            "keyledger_raft_log_bytes",
            "Encoded bytes of the Raft log entries kept here (a restart reads them all).",
            self.log_bytes,
        );
        out.gauge("keyledger_raft_voters", "Voters in the membership this node knows.", self.voters);
        out.gauge("keyledger_raft_learners", "Learners in the membership this node knows.", self.learners);
        if let Some(ms) = self.quorum_ack_ms {
            out.gauge(
                "keyledger_raft_quorum_ack_age_seconds",
                "On the leader: time since a quorum last acknowledged it (writes stop above 1 s).",
                ms as f64 / 1e3,
            );
        }
        if !self.replication.is_empty() {
            out.header(
                "keyledger_raft_replication_matched_index",
                "gauge",
                "On the leader: the highest log index known to be replicated to each other member.",
            );
            for (peer, matched) in &self.replication {
                out.sample("keyledger_raft_replication_matched_index", &[("peer", &peer.to_string())], *matched);
            }
            out.header(
                "keyledger_raft_replication_lag",
                "gauge",
                "On the leader: log entries each other member still lacks (last log index minus matched index).",
            );
            for (peer, matched) in &self.replication {
                let lag = self.last_log_index.saturating_sub(*matched);
                out.sample("keyledger_raft_replication_lag", &[("peer", &peer.to_string())], lag);
            }
        }
        out.gauge(
            "keyledger_ledger_head_seq",
            "The seq of the last event in this node's ledger.",
            self.ledger_head_seq,
        );
        out.gauge("keyledger_keys", "Keys in the verification index, deleted ones included.", self.keys);
    }
}

/// Text in the Prometheus exposition format, written family by family.
#[derive(Default)]
struct Exposition(String);

impl Exposition {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// A counter family with one label: a sample per `(label value, count)`, in order.
    fn counters(&mut self, name: &str, help: &str, label: &str, counts: impl IntoIterator<Item = (&'static str, u64)>) {
        self.header(name, "counter", help);
        for (value, count) in counts {
            self.sample(name, &[(label, value)], count);
        }
    }

    /// One sample; `value` as `Display` prints it (an `f64` never with an exponent, which
    /// Prometheus would read all the same).
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (label, text)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                self.0.push_str(label);
                self.0.push_str("=\"");
                for c in text.chars() {
                    match c {
                        '\\' => self.0.push_str("\\\\"),
                        '"' => self.0.push_str("\\\""),
                        '\n' => self.0.push_str("\\n"),
                        c => self.0.push(c),
                    }
                }
                self.0.push('"');
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A family with one unlabelled sample.
    fn gauge(&mut self, name: &str, help: &str, value: impl Display) {
        self.header(name, "gauge", help);
        self.sample(name, &[], value);
    }

    fn histogram(&mut self, name: &str, help: &str, histogram: &Histogram) {
        self.header(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (i, (_, le)) in histogram.bounds.iter().enumerate() {
            cumulative += histogram.buckets[i].load(Relaxed);
            self.sample(&bucket, &[("le", le)], cumulative);
        }
        // The count is the buckets' total, so `+Inf` and `_count` agree even while requests
        // are being counted.
        cumulative += histogram.buckets[histogram.bounds.len()].load(Relaxed);
        self.sample(&bucket, &[("le", "+Inf")], cumulative);
        self.sample(&format!("{name}_sum"), &[], histogram.sum_nanos.load(Relaxed) as f64 / 1e9);
        self.sample(&format!("{name}_count"), &[], cumulative);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// One sample line: `name`, `name{a="x",b="y"}`, then a space and a number.
    fn parse_line(line: &str) -> (String, BTreeMap<String, String>, f64) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("not a number: {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels: {line:?}"));
                let mut labels = BTreeMap::new();
                let mut chars = body.chars().peekable();
                while chars.peek().is_some() {
                    let label: String = chars.by_ref().take_while(|c| *c != '=').collect();
                    assert_eq!(chars.next(), Some('"'), "{line:?}");
                    let mut text = String::new();
                    loop {
                        match chars.next().unwrap_or_else(|| panic!("unclosed value: {line:?}")) {
                            '\\' => match chars.next() {
                                Some('n') => text.push('\n'),
                                Some(c @ ('\\' | '"')) => text.push(c),
                                other => panic!("bad escape {other:?}: {line:?}"),
                            },
                            '"' => break,
                            c => text.push(c),
                        }
                    }
                    assert!(matches!(chars.next(), None | Some(',')), "{line:?}");
                    labels.insert(label, text);
                }
                (name, labels)
            }
        };
        let valid_name =
            name.chars().enumerate().all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || (i > 0 && c.is_ascii_digit()));
        assert!(valid_name, "metric name {name:?}");
        (name.to_string(), labels, value)
    }

    /// Every line of `text` is a comment or a sample; every sample's family was declared
    /// with `# TYPE` before it. The samples, by name and labels.
    fn parse(text: &str) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
        let mut typed = Vec::new();
        let mut samples = BTreeMap::new();
        for line in text.lines() {
            if let Some(comment) = line.strip_prefix("# ") {
                if let Some(rest) = comment.strip_prefix("TYPE ") {
                    let (name, kind) = rest.split_once(' ').unwrap();
                    assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                    typed.push(name.to_string());
                }
                continue;
            }
            let (name, labels, value) = parse_line(line);
            let family = typed.last().unwrap_or_else(|| panic!("{name} before any # TYPE"));
            assert!(
                name.strip_prefix(family.as_str()).is_some_and(|s| ["", "_bucket", "_sum", "_count"].contains(&s)),
                "{name} under {family}"
            );
            assert!(samples.insert((name, labels), value).is_none(), "a series twice: {line}");
        }
        samples
    }

    fn get(
        samples: &BTreeMap<(String, BTreeMap<String, String>), f64>,
        name: &str,
        labels: &[(&str, &str)],
    ) -> Option<f64> {
        let labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        samples.get(&(name.to_string(), labels)).copied()
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
        metrics.count_write(WriteOutcome::Committed, Duration::from_millis(3));
        metrics.count_write(WriteOutcome::OutcomeUnknown, Duration::from_secs(6));
        let samples = parse(&metrics.render(&leader_gauges()));

        let verifications = |result| get(&samples, "keyledger_verifications_total", &[("result", result)]);
        assert_eq!(verifications("valid"), Some(2.0));
        assert_eq!(verifications("expired"), Some(1.0));
        assert_eq!(verifications("forbidden"), Some(0.0), "every result is shown from the start");
        assert_eq!(verifications("identity_disabled"), Some(0.0));
        let unauthenticated = |reason| get(&samples, "keyledger_unauthenticated_requests_total", &[("reason", reason)]);
        assert_eq!(unauthenticated("missing"), Some(1.0));
        assert_eq!(unauthenticated("not_found"), Some(1.0));
        assert_eq!(unauthenticated("malformed"), Some(0.0));
        let writes = |outcome| get(&samples, "keyledger_writes_total", &[("outcome", outcome)]);
        assert_eq!(writes("committed"), Some(1.0));
        assert_eq!(writes("outcome_unknown"), Some(1.0));
        assert_eq!(writes("refused"), Some(0.0));
        assert_eq!(get(&samples, "keyledger_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), Some(1.0));
    }

    #[test]
    fn histograms_are_cumulative_and_end_in_their_count() {
        let metrics = Metrics::new();
        for took in
            [Duration::from_millis(1), Duration::from_micros(1500), Duration::from_millis(30), Duration::from_secs(9)]
        {
            metrics.count_write(WriteOutcome::Committed, took);
        }
        let samples = parse(&metrics.render(&NodeGauges::default()));
        let bucket = |le| get(&samples, "keyledger_write_duration_seconds_bucket", &[("le", le)]);
        // A bound is inclusive: 1 ms lands in `le="0.001"`.
        assert_eq!(bucket("0.001"), Some(1.0));
        assert_eq!(bucket("0.0025"), Some(2.0));
        assert_eq!(bucket("0.025"), Some(2.0));
        assert_eq!(bucket("0.05"), Some(3.0));
        assert_eq!(bucket("5"), Some(3.0));
        assert_eq!(bucket("+Inf"), Some(4.0));
        assert_eq!(get(&samples, "keyledger_write_duration_seconds_count", &[]), Some(4.0));
        let sum = get(&samples, "keyledger_write_duration_seconds_sum", &[]).unwrap();
        assert!((sum - 9.0325).abs() < 1e-9, "sum {sum}");
        // Bounds render in order, each above the last.
        let bounds: Vec<f64> = VERIFY_BUCKETS.iter().chain(WRITE_BUCKETS).map(|(_, le)| le.parse().unwrap()).collect();
        for (bounds, table) in
            [(&bounds[..VERIFY_BUCKETS.len()], VERIFY_BUCKETS), (&bounds[VERIFY_BUCKETS.len()..], WRITE_BUCKETS)]
        {
            for (le, (nanos, _)) in bounds.iter().zip(table) {
                assert_eq!((le * 1e9).round() as u64, *nanos, "label {le} and bound {nanos} ns disagree");
            }
            assert!(bounds.windows(2).all(|w| w[0] < w[1]), "{bounds:?}");
        }
        assert_eq!(get(&samples, "keyledger_verify_duration_seconds_count", &[]), Some(0.0));
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
        assert_eq!(verify, metrics.verify_route);
        metrics.count_request(verify, StatusCode::OK, started);

        let samples = parse(&metrics.render(&NodeGauges::default()));
        let requests = |method, route, status| {
            get(&samples, "keyledger_http_requests_total", &[("method", method), ("route", route), ("status", status)])
        };
        assert_eq!(requests("get", "/v1/keys/{id}", "2xx"), Some(1.0));
        assert_eq!(requests("get", "/v1/keys/{id}", "4xx"), Some(2.0));
        assert_eq!(requests("get", "/v1/keys/{id}", "5xx"), None, "cells that counted nothing are left out");
        assert_eq!(requests("other", "unmatched", "4xx"), Some(1.0));
        assert_eq!(requests("post", "/v1/verify", "2xx"), Some(1.0));
        assert_eq!(get(&samples, "keyledger_verify_duration_seconds_count", &[]), Some(1.0), "verify is timed");
        let families: usize = samples.keys().filter(|(name, _)| name == "keyledger_http_requests_total").count();
        assert_eq!(families, 4);
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
        let samples = parse(&Metrics::new().render(&leader_gauges()));
        let gauge = |name| get(&samples, name, &[]);
        assert_eq!(gauge("keyledger_node_id"), Some(2.0));
        assert_eq!(gauge("keyledger_raft_is_leader"), Some(1.0));
        assert_eq!(gauge("keyledger_raft_leader_id"), Some(2.0));
        assert_eq!(gauge("keyledger_raft_term"), Some(7.0));
        assert_eq!(gauge("keyledger_raft_last_log_index"), Some(40.0));
        assert_eq!(gauge("keyledger_raft_applied_index"), Some(39.0));
        assert_eq!(gauge("keyledger_raft_quorum_ack_age_seconds"), Some(0.15));
        assert_eq!(gauge("keyledger_ledger_head_seq"), Some(55.0));
        assert_eq!(gauge("keyledger_keys"), Some(12.0));
        assert_eq!(gauge("keyledger_ready"), Some(1.0));
        assert_eq!(get(&samples, "keyledger_raft_state", &[("state", "leader")]), Some(1.0));
        assert_eq!(get(&samples, "keyledger_raft_state", &[("state", "follower")]), Some(0.0));
        assert_eq!(get(&samples, "keyledger_raft_replication_matched_index", &[("peer", "3")]), Some(31.0));
        assert_eq!(get(&samples, "keyledger_raft_replication_lag", &[("peer", "3")]), Some(9.0));
        assert_eq!(get(&samples, "keyledger_raft_replication_lag", &[("peer", "1")]), Some(0.0));

        // A follower: no replication series, no quorum age, leader 0 when it knows none.
        let follower = NodeGauges {
            role: RaftRole::Follower,
            leader: None,
            quorum_ack_ms: None,
            replication: vec![],
            ..leader_gauges()
        };
        let samples = parse(&Metrics::new().render(&follower));
        assert_eq!(get(&samples, "keyledger_raft_is_leader", &[]), Some(0.0));
        assert_eq!(get(&samples, "keyledger_raft_leader_id", &[]), Some(0.0));
        assert_eq!(get(&samples, "keyledger_raft_state", &[("state", "follower")]), Some(1.0));
        assert!(samples
            .keys()
            .all(|(name, _)| !name.starts_with("keyledger_raft_replication") && !name.contains("quorum")));
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut out = Exposition::default();
        out.header("x", "gauge", "a \\ and a\nnewline");
        out.sample("x", &[("a", "quote \" back \\ new\nline"), ("b", "{id}")], 3);
        assert_eq!(
            out.0,
            "# HELP x a \\\\ and a\\nnewline\n# TYPE x gauge\nx{a=\"quote \\\" back \\\\ new\\nline\",b=\"{id}\"} 3\n"
        );
        let samples = parse(&out.0);
        assert_eq!(get(&samples, "x", &[("a", "quote \" back \\ new\nline"), ("b", "{id}")]), Some(3.0));
    }
}
