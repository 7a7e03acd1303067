//! `GET /metrics`: this node's counters, latency histograms, process metrics and its Raft and
//! ledger positions in the Prometheus text format (version 0.0.4).
//!
//! The registry, counters, histograms, text encoder and process collector are the `prometheus`
//! crate's (tikv/rust-prometheus), chosen over `prometheus-client` and over `metrics` with
//! `metrics-exporter-prometheus`: its histogram is lock-free (`prometheus-client`'s takes a
//! lock per observation, and a verification is timed), it keeps one registry per router
//! (`metrics` records into one global recorder, and tests run several routers in a process),
//! and its `process` feature gives the standard `process_*` metrics (resident and virtual
//! memory, open and maximum fds, CPU seconds, start time, threads) from `/proc` where
//! `prometheus-client` has none. Its protobuf encoding is left out.
//!
//! The request path stays as cheap as the hand-written counters it replaced: every counter
//! handle is made once (here, or at a request cell's first use, `requests.rs`) and kept, so
//! counting is one atomic add (a request: an atomic load, then the add) and timing a
//! verification or a write is a bucket search and four atomic operations (the crate's
//! histogram shards its counts so a scrape never blocks an observation): no lock, no
//! allocation, nothing a verification waits for. Gauges are read from the node only when
//! scraped (`keyledger_cluster::NodeGauges`, rendered by `node.rs`). Labels hold only fixed
//! words, route templates and node ids — never a path as sent, a key id or a secret.
//!
//! The endpoint needs no API key, like `/healthz`: a scraper holds none, and what it shows is
//! counts and log positions, no object. Like `/internal/*` it belongs on the operators' network.

mod labels;
mod node;
mod requests;

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use keyledger_cluster::NodeGauges;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

pub(crate) use labels::{AuthFailure, RateLimited, VerifyResult, WriteOutcome};
use requests::RequestCounters;

use crate::AppState;

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
    match app.metrics.render(&gauges) {
        Ok(text) => ([(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))], text).into_response(),
        Err(error) => {
            tracing::error!(%error, "metrics not rendered");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Upper bounds of the verification histogram, in seconds. A verification over loopback takes
/// tens of microseconds; `min_index` may wait up to 5 s.
const VERIFY_BUCKETS: [f64; 11] = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.1, 1.0];

/// Upper bounds of the write histogram, in seconds: a durable write through Raft takes
/// milliseconds; the deadline is 5 s.
const WRITE_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// The metrics of one node's API: a registry of its own, and a handle to each counter kept
/// in the slot order of its label enum so that counting looks nothing up.
pub(crate) struct Metrics {
    registry: Registry,
    verifications: [IntCounter; VerifyResult::ALL.len()],
    unauthenticated: [IntCounter; AuthFailure::ALL.len()],
    rate_limited: [IntCounter; RateLimited::ALL.len()],
    writes: [IntCounter; WriteOutcome::ALL.len()],
    requests: RequestCounters,
    /// The rows of `POST /v1/verify` and `GET /v1/verify/auth-request` (and below it), whose
    /// requests are also timed.
    verify_routes: [usize; 4],
    verify_seconds: Histogram,
    write_seconds: Histogram,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        // Every name, label and bucket list here is fixed and valid, so the crate refuses
        // none of them; a refusal would be a programming error seen at the first start.
        Metrics::registered().expect("the metrics' names, labels and buckets are valid")
    }

    fn registered() -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        let build_info = IntGaugeVec::new(
            Opts::new("keyledger_build_info", "Always 1; the version of keyledger this node runs."),
            &["version"],
        )?;
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        registry.register(Box::new(build_info))?;
        let requests = RequestCounters::new()?;
        registry.register(Box::new(requests.family()))?;
        let row = |route| crate::ROUTES.iter().position(|r| *r == route).unwrap_or(usize::MAX);
        let verify_routes = [
            row(("post", "/v1/verify")),
            row(("get", "/v1/verify/auth-request")),
            row(("get", "/v1/verify/auth-request/")),
            row(("get", "/v1/verify/auth-request/{*rest}")),
        ];
        #[cfg(target_os = "linux")]
        registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
        Ok(Metrics {
            verifications: counters(
                &registry,
                "keyledger_verifications_total",
                "Answers of POST /v1/verify and GET /v1/verify/auth-request on this node, by result (valid, forbidden, or the code of an invalid key).",
                "result",
                VerifyResult::ALL.map(VerifyResult::label),
            )?,
            unauthenticated: counters(
                &registry,
                "keyledger_unauthenticated_requests_total",
                "Requests refused 401 for want of a valid API key, by reason; counted here, never written to the ledger.",
                "reason",
                AuthFailure::ALL.map(AuthFailure::label),
            )?,
            rate_limited: counters(
                &registry,
                "keyledger_rate_limited_requests_total",
                "Requests refused 429 rate_limited, by reason: an address over its failed authentications, or a \
                    caller or the node at its cap of exports or change feeds.",
                "reason",
                RateLimited::ALL.map(RateLimited::label),
            )?,
            writes: counters(
                &registry,
                "keyledger_writes_total",
                "Writes requested through this node's API, by outcome (the node's own batched events are not counted).",
                "outcome",
                WriteOutcome::ALL.map(WriteOutcome::label),
            )?,
            requests,
            verify_routes,
            verify_seconds: histogram(
                &registry,
                "keyledger_verify_duration_seconds",
                "Time to answer POST /v1/verify and GET /v1/verify/auth-request, from the request reaching the router to the answer.",
                &VERIFY_BUCKETS,
            )?,
            write_seconds: histogram(
                &registry,
                "keyledger_write_duration_seconds",
                "Time from proposing a write to the cluster's answer (committed, refused or not), on this node.",
                &WRITE_BUCKETS,
            )?,
            registry,
        })
    }

    pub(crate) fn count_verification(&self, result: VerifyResult) {
        self.verifications[result.slot()].inc();
    }

    pub(crate) fn count_unauthenticated(&self, why: AuthFailure) {
        self.unauthenticated[why.slot()].inc();
    }

    pub(crate) fn count_rate_limited(&self, why: RateLimited) {
        self.rate_limited[why.slot()].inc();
    }

    /// Counts one write's outcome and how long the cluster took to give it.
    pub(crate) fn count_write(&self, outcome: WriteOutcome, took: Duration) {
        self.writes[outcome.slot()].inc();
        self.write_seconds.observe(took.as_secs_f64());
    }

    /// The row of the route that took the request: found by its template, never the path as
    /// sent (which holds ids).
    pub(crate) fn route_of(&self, method: &Method, matched: Option<&MatchedPath>) -> usize {
        self.requests.route_of(method, matched)
    }

    pub(crate) fn count_request(&self, route: usize, status: StatusCode, started: Instant) {
        self.requests.count(route, status);
        if self.verify_routes.contains(&route) {
            self.verify_seconds.observe(started.elapsed().as_secs_f64());
        }
    }

    /// The whole exposition: the counters, histograms and process metrics, then `gauges`.
    pub(crate) fn render(&self, gauges: &NodeGauges) -> prometheus::Result<String> {
        let mut families = self.registry.gather();
        families.extend(node::families(gauges)?);
        let mut text = String::new();
        TextEncoder::new().encode_utf8(&families, &mut text)?;
        Ok(text)
    }
}

/// A counter family with one label, registered, and its counters for `values` in that order:
/// each shown from the start, at zero until it counts.
fn counters<const N: usize>(
    registry: &Registry,
    name: &str,
    help: &str,
    label: &str,
    values: [&str; N],
) -> prometheus::Result<[IntCounter; N]> {
    let family = IntCounterVec::new(Opts::new(name, help), &[label])?;
    registry.register(Box::new(family.clone()))?;
    // `with_label_values` panics only when given another number of values than the family
    // has labels, and here it is given one for one.
    Ok(values.map(|value| family.with_label_values(&[value])))
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: &[f64]) -> prometheus::Result<Histogram> {
    let histogram = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))?;
    registry.register(Box::new(histogram.clone()))?;
    Ok(histogram)
}

#[cfg(test)]
mod tests;
