//! Operations: `/v1/cluster` and its members, `/healthz`, `/readyz`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use keyledger_wire as wire;

use keyledger_cluster::{MembershipChange, MembershipRefusal};

use crate::error::ApiError;
use crate::extract::{Caller, Path};
use crate::AppState;

/// The cluster as this node sees it: members, leader, term, applied index and lag.
#[utoipa::path(
    get,
    path = "/v1/cluster",
    operation_id = "get_cluster",
    tag = "operations",
    responses(
        (status = 200, description = "The cluster status.", body = wire::ClusterStatus),
        crate::responses::ReadErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn cluster(State(app): State<AppState>, _caller: Caller) -> Json<wire::ClusterStatus> {
    Json(status(&app).await)
}

/// Adds a node to the cluster: as a learner, then, once it has caught up, as a voter (the
/// cluster operator). The node must be running and reachable at `address`, and prove there it
/// is node `node_id` of this cluster, else `400` and nothing changes; one that does not catch
/// up stays a learner (`409`): add it again to promote it, or remove it.
#[utoipa::path(
    post,
    path = "/v1/cluster/members",
    operation_id = "add_cluster_member",
    tag = "operations",
    request_body = wire::AddMemberRequest,
    responses(
        (status = 200, description = "The node is a voter; the cluster status after the change.", body = wire::ClusterStatus),
        (status = 400, response = crate::responses::BadRequest),
        (status = 401, response = crate::responses::Unauthenticated),
        (status = 403, response = crate::responses::PermissionDenied),
        (status = 409, response = crate::responses::Conflict),
        (status = 503, response = crate::responses::Unavailable),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn add_member(
    State(app): State<AppState>,
    caller: Caller,
    crate::extract::Json(req): crate::extract::Json<wire::AddMemberRequest>,
) -> Result<Json<wire::ClusterStatus>, ApiError> {
    require_operator(&caller)?;
    if req.node_id == 0 {
        return Err(ApiError::invalid("`node_id` must be 1 or more"));
    }
    let change = MembershipChange::Add { node_id: req.node_id, address: req.address };
    app.node.change_members(change).await.map_err(refused)?;
    Ok(Json(status(&app).await))
}

/// Removes a node, live or dead, from the cluster (the cluster operator). A removed node that
/// learns of it stops answering as a member.
#[utoipa::path(
    delete,
    path = "/v1/cluster/members/{node_id}",
    operation_id = "remove_cluster_member",
    tag = "operations",
    params(("node_id" = u64, Path, description = "The node to remove.")),
    responses(
        (status = 200, description = "The node is out; the cluster status after the change.", body = wire::ClusterStatus),
        crate::responses::ChangeErrors,
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn remove_member(
    State(app): State<AppState>,
    caller: Caller,
    Path(node_id): Path<String>,
) -> Result<Json<wire::ClusterStatus>, ApiError> {
    require_operator(&caller)?;
    let node_id: u64 = node_id.parse().map_err(|_| ApiError::not_found("no such member"))?;
    app.node.change_members(MembershipChange::Remove { node_id }).await.map_err(refused)?;
    Ok(Json(status(&app).await))
}

fn require_operator(caller: &Caller) -> Result<(), ApiError> {
    if keyledger_model::visibility::may_change_members(&caller.principal) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "permission_denied",
        "only the cluster operator (an owner of the `default` account) may change the cluster's members",
    ))
}

fn refused(refusal: MembershipRefusal) -> ApiError {
    match refusal {
        MembershipRefusal::NotFound(why) => ApiError::not_found(why),
        MembershipRefusal::Invalid(why) => ApiError::invalid(why),
        MembershipRefusal::Conflict(why) => ApiError::new(StatusCode::CONFLICT, "conflict", why),
        MembershipRefusal::Unavailable(why) => ApiError::unavailable(format!("the change was not made: {why}")),
    }
}

async fn status(app: &AppState) -> wire::ClusterStatus {
    let view = app.node.cluster_view().await;
    let members = view
        .members
        .into_iter()
        .map(|m| {
            let applied = m.status.as_ref().and_then(|s| s.applied_index);
            let ledger_agrees = m.status.as_ref().and_then(|s| agrees_with_local(app, m.node_id, s.ledger_head));
            wire::Member {
                ledger_agrees,
                release: m.release,
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
    wire::ClusterStatus { node_id: view.node_id, leader: view.leader, term: view.term, members }
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
    let local = ledger.entry(head.seq).ok()??;
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
