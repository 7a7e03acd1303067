//! keyledger's HTTP API on axum: keys, users, service accounts, namespaces, settings,
//! accounts, the audit trail, verification, cluster status, health and metrics.
//!
//! Main items: [`router`] (the whole public API for one node, ready to serve or to drive
//! with `oneshot` in tests), [`ApiError`] (the single error type and its JSON shape),
//! [`openapi_json`] (the OpenAPI 3 document of it all, served at `/v1/openapi.json` and
//! checked in as `docs/openapi.json`) and [`ROUTES`] (every route the router serves).
//!
//! Design decision: handlers are thin. They authenticate, fix everything nondeterministic
//! (time, ids, the secret) on this node, hand one complete proposal to the cluster, and
//! render the outcome. Every rule lives in `keyledger-model`, applied in log order.

mod abuse;
mod access;
mod accounts;
mod audit;
mod auth_request;
mod backup;
mod consistency;
mod enroll;
mod error;
mod extract;
mod idempotency;
mod key_batch;
mod key_ops;
mod keys;
mod leaked;
mod metrics;
mod namespaces;
mod openapi;
mod ops;
mod paging;
mod proofs;
mod render;
mod replay;
mod responses;
pub mod serve;
mod service_accounts;
mod settings;
mod stream;
mod users;
mod verify;
mod webhooks;
mod write;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::Router;
use keyledger_cluster::{ClusterNode, MemberFlags};
use keyledger_model::StateReader;
use keyledger_wire::REQUEST_ID_HEADER;
use rand_core::RngCore;

pub use abuse::{Closing, Limits};
pub use access::{ACCESS_TARGET, VERIFY_ACCESS_TARGET};
pub use error::ApiError;
pub use openapi::{openapi_json, ApiDoc};
pub use replay::replay_account;

/// Bodies over this are refused with `413 payload_too_large`.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub node: Arc<ClusterNode>,
    /// What verification reads, without a call into the node or the ledger: the state and
    /// whether this node is a member.
    pub(crate) verifying: StateReader,
    pub(crate) member: MemberFlags,
    /// The counters `GET /metrics` shows; one set per router.
    pub(crate) metrics: Arc<metrics::Metrics>,
    /// The limits on hostile callers and the shutdown signal.
    pub(crate) guards: Arc<Guards>,
    pub(crate) request_ids: Arc<RequestIds>,
}

/// Request ids made here: unique, not secret, and made without a lock (every request needs
/// one): a random prefix per router, so ids differ across restarts, and a counter.
pub(crate) struct RequestIds {
    node: u64,
    prefix: u32,
    next: std::sync::atomic::AtomicU32,
}

impl RequestIds {
    fn new(node: &ClusterNode) -> RequestIds {
        let prefix = node.with_rng(|rng| rng.next_u32());
        RequestIds { node: node.id(), prefix, next: std::sync::atomic::AtomicU32::new(0) }
    }

    fn next(&self) -> String {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("req_{}_{:08x}{n:08x}", self.node, self.prefix)
    }
}

/// What the API holds against hostile callers (`abuse.rs`).
pub(crate) struct Guards {
    pub(crate) limits: Limits,
    /// `None` when `--auth-failures-per-minute` is 0.
    pub(crate) auth_failures: Option<abuse::AuthLimiter>,
    pub(crate) exports: Arc<abuse::ReadSlots>,
    pub(crate) feeds: Arc<abuse::ReadSlots>,
    pub(crate) closing: Closing,
}

/// The one list of the API's routes: `"path" => method(handler).method(handler);`. It
/// defines both [`ROUTES`] (what the OpenAPI document is checked against) and the router's
/// routes, so the two cannot drift apart.
macro_rules! api_routes {
    ($($path:literal => $($method:ident($handler:path)).+;)+) => {
        /// Every route the router serves, as `(method, path)`: the method in lower case as in an
        /// OpenAPI path item (`get`, `post`, ...), the path with `{param}` segments.
        pub const ROUTES: &[(&str, &str)] = &[$($((stringify!($method), $path),)+)+];

        fn routes() -> Router<AppState> {
            Router::new()$(.route($path, MethodRouter::new()$(.$method($handler))+))+
        }
    };
}

api_routes! {
    "/v1/keys" => post(keys::create).get(keys::list);
    "/v1/keys/batch" => post(key_batch::create_batch);
    "/v1/keys/summary" => get(keys::summary);
    "/v1/keys/leaked" => post(leaked::report);
    "/v1/keys/{id}" => get(keys::get).patch(key_ops::update).delete(keys::delete);
    "/v1/keys/{id}/enable" => post(key_ops::enable);
    "/v1/keys/{id}/disable" => post(key_ops::disable);
    "/v1/keys/{id}/lock" => post(key_ops::lock);
    "/v1/keys/{id}/unlock" => post(key_ops::unlock);
    "/v1/keys/{id}/rotate" => post(key_ops::rotate);
    "/v1/keys/{id}/history" => get(audit::key_history);
    "/v1/users" => post(users::create).get(users::list);
    "/v1/users/{id}" => get(users::get).patch(users::update).delete(users::delete);
    "/v1/users/{id}/enrollment" => post(users::issue_enrollment);
    "/v1/enroll" => post(enroll::enroll);
    "/v1/users/{id}/disable" => post(users::disable);
    "/v1/users/{id}/enable" => post(users::enable);
    "/v1/users/{id}/namespaces/{namespace}" => put(users::set_namespace).delete(users::remove_namespace);
    "/v1/service-accounts" => post(service_accounts::create).get(service_accounts::list);
    "/v1/service-accounts/{id}" => get(service_accounts::get).delete(service_accounts::delete);
    "/v1/service-accounts/{id}/disable" => post(service_accounts::disable);
    "/v1/service-accounts/{id}/enable" => post(service_accounts::enable);
    "/v1/namespaces" => post(namespaces::create).get(namespaces::list);
    "/v1/settings" => get(settings::get).patch(settings::update);
    "/v1/accounts" => post(accounts::create).get(accounts::list);
    "/v1/audit/events" => get(audit::events);
    "/v1/audit/export" => get(audit::export);
    "/v1/audit/stream" => get(stream::stream);
    "/v1/audit/public-key" => get(proofs::public_key);
    "/v1/audit/checkpoints" => get(proofs::checkpoints);
    "/v1/audit/checkpoints/latest" => get(proofs::latest_checkpoint);
    "/v1/audit/proof/inclusion" => get(proofs::inclusion);
    "/v1/audit/proof/consistency" => get(proofs::consistency);
    "/v1/audit/replay" => get(replay::replay);
    "/v1/admin/backup" => get(backup::backup);
    "/v1/webhooks" => post(webhooks::create).get(webhooks::list);
    "/v1/webhooks/{id}" => get(webhooks::get).delete(webhooks::delete);
    "/v1/webhooks/{id}/rotate-secret" => post(webhooks::rotate_secret);
    "/v1/webhooks/{id}/deliveries" => get(webhooks::deliveries);
    "/v1/verify" => post(verify::verify);
    "/v1/verify/as-of" => post(verify::verify_as_of);
    "/v1/verify/auth-request" => get(auth_request::auth_request);
    "/v1/verify/auth-request/" => get(auth_request::auth_request_slash);
    "/v1/verify/auth-request/{*rest}" => get(auth_request::auth_request_below);
    "/v1/cluster" => get(ops::cluster);
    "/v1/cluster/members" => post(ops::add_member);
    "/v1/cluster/members/{node_id}" => delete(ops::remove_member);
    "/v1/openapi.json" => get(openapi::serve);
    "/healthz" => get(ops::healthz);
    "/readyz" => get(ops::readyz);
    "/metrics" => get(metrics::serve);
}

/// The public API of one node, with the default [`Limits`] and a shutdown signal of its own.
pub fn router(node: Arc<ClusterNode>) -> Router {
    router_with(node, Limits::default(), Closing::new())
}

/// The public API of one node: `limits` on its callers, and `closing`, which ends change
/// feeds and (after their grace) exports once the node shuts down. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()` (or insert `ConnectInfo<SocketAddr>`
/// into each request), or failed authentications are not limited per address.
pub fn router_with(node: Arc<ClusterNode>, limits: Limits, closing: Closing) -> Router {
    let guards = Guards {
        auth_failures: (limits.auth_failures_per_minute > 0)
            .then(|| abuse::AuthLimiter::new(limits.auth_failures_per_minute)),
        exports: abuse::ReadSlots::new(abuse::LongRead::Export, limits.exports_per_caller, limits.exports_per_node),
        feeds: abuse::ReadSlots::new(abuse::LongRead::Feed, limits.feeds_per_caller, limits.feeds_per_node),
        limits,
        closing,
    };
    let request_ids = Arc::new(RequestIds::new(&node));
    let state = AppState {
        verifying: node.ledger().state_reader(),
        member: node.member_flags(),
        node,
        metrics: Arc::new(metrics::Metrics::new()),
        guards: Arc::new(guards),
        request_ids,
    };
    let v1 = routes();
    // One middleware function around every route (`request_frame`), not a layer per concern:
    // each layer costs every request a boxed future and a clone of the route, and four of them
    // and a trace span were a third of a verification's time (docs/benchmarks.md). The body
    // limit applies to every extractor that reads a body. Failures are logged where they
    // happen, not per request.
    v1.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(state.clone(), request_frame))
        .with_state(state)
}

/// The handler's answer, or `500 internal` if it panicked (the panic hook has printed why), so a
/// bug costs one request its answer, never the connection or the node.
async fn answer_or_500(handler: impl std::future::Future<Output = Response>) -> Response {
    match futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(handler)).await {
        Ok(response) => response,
        Err(_panic) => ApiError::internal("a handler panicked").into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this endpoint does not take that method")
}

/// Around every request, in this order: the request id — `X-Request-Id` taken from the
/// request (if short and printable) or made, visible to the handler (error bodies, proposals)
/// and returned on the answer; what the request asks of its answer — `?consistency=`
/// (`consistency.rs`) and `Idempotency-Key` (`idempotency.rs`); a handler's panic answered
/// `500`; the request counted by route and status class (`metrics.rs`), a caught panic as
/// its 500; and its line in the access log (`access.rs`), when that is on.
async fn request_frame(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = state.metrics.route_of(request.method(), request.extensions().get::<axum::extract::MatchedPath>());
    let started = std::time::Instant::now();
    let template = ROUTES.get(route).map_or("unmatched", |(_, path)| *path);
    let verification = template == "/v1/verify" || template.starts_with("/v1/verify/auth-request");
    let logged = access::enabled(verification).then(|| request.method().clone());
    let given = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string);
    let id = given.unwrap_or_else(|| state.request_ids.next());
    let answer = async {
        let request = match consistency::prepare(&state, request).await {
            Ok(request) => request,
            Err(refused) => return refused,
        };
        let (idempotency, request) = match idempotency::prepare(request).await {
            Ok(prepared) => prepared,
            Err(refused) => return refused,
        };
        answer_or_500(idempotency::scope(idempotency, next.run(request))).await
    };
    let framed = error::REQUEST_ID.scope(id.clone(), answer);
    let (mut response, caller_key) = match logged {
        Some(_) => access::with_caller_slot(framed).await,
        None => (framed.await, None),
    };
    state.metrics.count_request(route, response.status(), started);
    if let Some(method) = logged {
        access::record(&method, template, response.status(), started, &id, caller_key, verification);
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_is_answered_500_in_the_error_shape() {
        let answer = answer_or_500(async { panic!("a bug") }).await;
        assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(answer.into_body(), 4096).await.unwrap();
        let error: keyledger_wire::ErrorBody = serde_json::from_slice(&body).unwrap();
        assert_eq!(error.error.code, "internal");
        let fine = answer_or_500(async { StatusCode::NO_CONTENT.into_response() }).await;
        assert_eq!(fine.status(), StatusCode::NO_CONTENT);
    }
}
