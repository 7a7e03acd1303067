//! Operations: `/v1/cluster`, `/healthz`, `/readyz`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use keyledger_wire as wire;

use crate::extract::Caller;
use crate::AppState;

/// The cluster as this node sees it: members, leader, term, applied index and lag.
#[utoipa::path(
    get,
    path = "/v1/cluster",
    operation_id = "get_cluster",
    tag = "operations",
    responses(
        (status = 200, description = "The cluster status.", body = wire::ClusterStatus),
        (status = 401, response = crate::openapi::Unauthenticated),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn cluster(State(app): State<AppState>, _caller: Caller) -> Json<wire::ClusterStatus> {
    let view = app.node.cluster_view().await;
    let members = view
        .members
        .into_iter()
        .map(|m| {
            let applied = m.status.as_ref().and_then(|s| s.applied_index);
            let ledger_agrees = m.status.as_ref().and_then(|s| agrees_with_local(&app, m.node_id, s.ledger_head));
            wire::Member {
                ledger_agrees,
                node_id: m.node_id,
                address: m.address,
                role: if m.voter { "voter" } else { "learner" }.into(),
                applied_index: applied,
                lag: applied.map(|a| view.last_log_index.saturating_sub(a)),
                ledger_head: m
                    .status
                    .map(|s| wire::LedgerHead { seq: s.ledger_head.seq, hash: s.ledger_head.hash.to_hex() }),
            }
        })
        .collect();
    Json(wire::ClusterStatus { node_id: view.node_id, leader: view.leader, term: view.term, members })
}

/// Whether the process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    responses(
        (status = 200, description = "The process is up.", body = wire::Health),
    ),
)]
pub(crate) async fn healthz() -> Json<wire::Health> {
    Json(wire::Health { status: "ok".into(), reason: None })
}

/// Whether this node has a leader and has applied the committed log.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready.", body = wire::Health),
        (status = 503, description = "Not ready; `reason` says why.", body = wire::Health),
    ),
)]
pub(crate) async fn readyz(State(app): State<AppState>) -> Response {
    match app.node.readiness() {
        Ok(()) => Json(wire::Health { status: "ready".into(), reason: None }).into_response(),
        Err(reason) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(wire::Health { status: "unavailable".into(), reason: Some(reason) }))
                .into_response()
        }
    }
}

/// Compares a member's ledger head with this node's event at the same seq. A mismatch means
/// the ledgers diverged, which must never happen: it is logged loudly.
fn agrees_with_local(app: &AppState, node_id: u64, head: keyledger_model::ChainHead) -> Option<bool> {
    if head.seq == 0 {
        return Some(true);
    }
    let ledger = app.node.ledger();
    if head.seq > ledger.state().head().seq {
        return None;
    }
    let local = ledger.entries(head.seq, head.seq).next()?.ok()?;
    let agrees = local.event.hash == head.hash;
    if !agrees {
        tracing::error!(
            node_id,
            seq = head.seq,
            theirs = %head.hash,
            ours = %local.event.hash,
            "LEDGER DIVERGENCE: a member's ledger differs from this node's at the same seq"
        );
    }
    Some(agrees)
}
