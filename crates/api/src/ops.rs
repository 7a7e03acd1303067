//! Operations: `/v1/cluster`, `/healthz`, `/readyz`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use keyledger_wire as wire;

use crate::extract::Caller;
use crate::AppState;

pub(crate) async fn cluster(State(app): State<AppState>, _caller: Caller) -> Json<wire::ClusterStatus> {
    let view = app.node.cluster_view().await;
    let members = view
        .members
        .into_iter()
        .map(|m| {
            let applied = m.status.as_ref().and_then(|s| s.applied_index);
            wire::Member {
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

pub(crate) async fn healthz() -> Json<wire::Health> {
    Json(wire::Health { status: "ok".into(), reason: None })
}

pub(crate) async fn readyz(State(app): State<AppState>) -> Response {
    match app.node.readiness() {
        Ok(()) => Json(wire::Health { status: "ready".into(), reason: None }).into_response(),
        Err(reason) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(wire::Health { status: "unavailable".into(), reason: Some(reason) }))
                .into_response()
        }
    }
}
